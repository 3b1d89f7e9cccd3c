"""The ``blobs/`` half of an OCI image layout: content-addressed files, verified as read and
before they are committed. :class:`~regshift.layout.Layout` adds ``index.json`` on top."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..digests import DigestVerifier, split_digest
from ..errors import DigestMismatch, LayoutError, ManifestError, NotFoundInLayout, RegistryError
from ..manifests import MAX_MANIFEST_BYTES, Descriptor, Manifest, parse_manifest
from ..mediatypes import MediaType, is_foreign, is_manifest
from .files import fed, one_line, os_errors, os_reason, write_atomically

BLOBS_DIR = "blobs"
_CHUNK = 1024 * 1024


class LayoutBlobs:
    """The blobs of the layout at ``path`` (``blobs/<alg>/<hex>``). Thread-safe."""

    path: Path
    _name: str  # oci:PATH, for messages

    def blob_path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives: ``blobs/<alg>/<hex>``.

        Raises:
            InvalidReference: the digest is malformed (so no path can escape ``blobs/``).
        """
        algorithm, hexpart = split_digest(digest)
        return self.path / BLOBS_DIR / algorithm / hexpart

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        """Whether the blob exists (and, when ``size`` is given, has that size).

        The content is not hashed: copying into an existing layout would otherwise read
        every layer already there (gigabytes) on every run. Blobs regshift writes are
        verified before their atomic rename, so a wrong one of the right size comes only
        from another tool; :meth:`verify` finds it. Manifests, which are small and whose
        corruption would be written under a tag, are checked by :meth:`has_manifest_blob`.

        Raises:
            InvalidReference: the digest is malformed.
        """
        try:
            st = self.blob_path(digest).stat()
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise LayoutError(f"{self._name}: cannot stat blob {digest}: {os_reason(exc)}") from exc
        return size is None or st.st_size == size

    def has_manifest_blob(self, digest: str, size: int | None = None) -> bool:
        """Whether a manifest blob exists and its bytes match ``digest`` (and ``size``).

        The file is read and hashed (manifests are at most 4 MiB): a truncated or corrupt
        one, say left by a tool that does not write atomically, does not count.

        Raises:
            InvalidReference: the digest is malformed.
            LayoutError: the blob exists but cannot be read.
        """
        try:
            raw = self._read_blob_bytes(digest, MAX_MANIFEST_BYTES)
        except (NotFoundInLayout, ManifestError, DigestMismatch):
            return False
        return size is None or len(raw) == size

    @contextlib.contextmanager
    def open_blob(self, digest: str) -> Iterator[Iterator[bytes]]:
        """Open a blob for streaming: ``with layout.open_blob(d) as chunks: for c in chunks: ...``.

        Chunks are at most 1 MiB. The bytes are hashed as they are read: when the last
        chunk has been read and they do not match ``digest``, iteration raises
        :class:`DigestMismatch`.

        Raises:
            InvalidReference: the digest is malformed.
            NotFoundInLayout: the blob is missing.
            LayoutError: the blob cannot be read.
        """
        path = self.blob_path(digest)
        try:
            handle = path.open("rb")
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundInLayout(f"blob {digest} not found in {self._name} ({path})") from None
        except OSError as exc:
            raise LayoutError(f"cannot open {path}: {os_reason(exc)}") from exc
        with handle:
            yield self._chunks(handle, digest, path)

    def write_blob(
        self,
        digest: str,
        size: int | None,
        chunks: Iterable[bytes],
        *,
        check_existing: bool = False,
    ) -> None:
        """Store a blob, verifying its digest (and size, when given) while streaming.

        The bytes go to a temporary file in ``blobs/<alg>/`` that is renamed into place
        only once verified and flushed to disk. An existing blob of the right size is
        kept and ``chunks`` is not consumed; with ``check_existing`` (for manifests, see
        :meth:`has_manifest_blob`) it must also hash to ``digest``, else it is replaced.

        Raises:
            InvalidReference: the digest is malformed.
            DigestMismatch: the bytes do not hash to ``digest`` or have another size
                (nothing is stored).
            LayoutError: the blob cannot be written.
        """
        path = self.blob_path(digest)
        present = self.has_manifest_blob if check_existing else self.has_blob
        if present(digest, size):
            return
        verifier = DigestVerifier(digest, size, what=f"{self._name} blob")

        def own_errors() -> contextlib.AbstractContextManager[None]:
            return os_errors(f"cannot write {path}")

        with own_errors():
            path.parent.mkdir(parents=True, exist_ok=True)
        # Only our own file operations become LayoutError; whatever the source of
        # ``chunks`` raises (say, a dropped connection) propagates unchanged.
        write_atomically(path, fed(verifier, chunks), check=verifier.verify, errors=own_errors)

    def _read_blob_bytes(self, digest: str, limit: int) -> bytes:
        """Read a whole (small) blob, verifying its digest."""
        path = self.blob_path(digest)
        try:
            with path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size > limit:
                    raise ManifestError(
                        f"{path}: {size} bytes, above the {limit}-byte manifest limit"
                    )
                data = handle.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundInLayout(f"blob {digest} not found in {self._name} ({path})") from None
        except OSError as exc:
            raise LayoutError(f"cannot read {path}: {os_reason(exc)}") from exc
        verifier = DigestVerifier(digest, what=str(path))
        verifier.update(data)
        verifier.verify()
        return data

    def _load_manifest(self, digest: str, *, size: int | None, media_type: str) -> Manifest:
        raw = self._read_blob_bytes(digest, MAX_MANIFEST_BYTES)
        if size is not None and len(raw) != size:
            raise DigestMismatch(
                str(self.blob_path(digest)), f"{digest} ({size} bytes)", f"{len(raw)} bytes"
            )
        try:
            return parse_manifest(raw, media_type or guess_media_type(raw))
        except ManifestError as exc:
            raise type(exc)(f"{self.blob_path(digest)}: {exc}") from exc

    def _chunks(self, handle: BinaryIO, digest: str, path: Path) -> Iterator[bytes]:
        verifier = DigestVerifier(digest, what=str(path))
        while True:
            try:
                chunk: bytes = handle.read(_CHUNK)
            except OSError as exc:
                raise LayoutError(f"cannot read {path}: {os_reason(exc)}") from exc
            if not chunk:
                break
            verifier.update(chunk)
            yield chunk
        verifier.verify()

    def _verify_descriptor(
        self, desc: Descriptor, problems: list[str], *, as_manifest: bool
    ) -> list[Descriptor]:
        """Check one blob; return the descriptors it refers to (for a manifest)."""
        path = self.blob_path(desc.digest)
        if not self.has_blob(desc.digest):
            if not (desc.urls or is_foreign(desc.media_type)):
                problems.append(
                    f"{path}: missing blob {desc.digest} ({desc.media_type or 'no media type'})"
                )
            return []
        try:
            if as_manifest or is_manifest(desc.media_type):
                manifest = self._load_manifest(
                    desc.digest, size=desc.size, media_type=desc.media_type
                )
                return [*manifest.manifests, *manifest.blobs()]
            self._verify_blob(desc)
        except RegistryError as exc:
            problems.append(one_line(str(exc)))
        return []

    def _verify_blob(self, desc: Descriptor) -> None:
        verifier = DigestVerifier(desc.digest, desc.size, what=str(self.blob_path(desc.digest)))
        with self.open_blob(desc.digest) as chunks:
            for chunk in chunks:
                verifier.update(chunk)
        verifier.verify()


def guess_media_type(raw: bytes) -> str:
    """The media type of a manifest whose JSON has no ``mediaType`` (the OCI spec allows it)."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(doc, dict) or doc.get("mediaType"):
        return ""
    if "manifests" in doc:
        return MediaType.OCI_INDEX.value
    if "config" in doc:
        return MediaType.OCI_MANIFEST.value
    return ""
