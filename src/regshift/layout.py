"""OCI image layouts: a directory of blobs plus ``index.json``, per the OCI image-spec.

A layout looks like this on disk::

    DIR/oci-layout               {"imageLayoutVersion": "1.0.0"}
    DIR/index.json               an image index; its entries are the layout's "tags"
    DIR/blobs/<alg>/<hex>        content-addressed blobs (manifests, configs, layers)

A tag is the ``org.opencontainers.image.ref.name`` annotation of an ``index.json`` entry.
Blobs (manifests included) are written byte for byte and never re-serialised; the only
file regshift ever re-encodes is ``index.json``, and of that only the ``manifests`` list
changes. Every write is atomic: a temporary file in the same directory, ``fsync``, then
``os.replace``, so a crash leaves either the old or the new file, never half of one.

References to layouts are written ``oci:PATH``, ``oci:PATH:TAG`` or ``oci:PATH@DIGEST``
(see :func:`parse_layout_reference`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .digests import DigestVerifier, split_digest
from .errors import (  # the layout errors live with the others; re-exported here
    DigestMismatch,
    InvalidReference,
    LayoutError,
    ManifestError,
    NotFoundInLayout,
    RegistryError,
)
from .hostos import replace_file
from .layout_reference import LayoutReference, parse_layout_reference
from .locking import lock_within, unlock
from .manifests import MAX_MANIFEST_BYTES, Descriptor, Manifest, Platform, parse_manifest
from .mediatypes import MediaType, is_foreign, is_manifest
from .reference import (
    DEFAULT_TAG,
    LAYOUT_PREFIX,
    is_layout_reference,
    validate_digest,
    validate_tag,
)

__all__ = [
    "LAYOUT_PREFIX",
    "REF_NAME_ANNOTATION",
    "Layout",
    "LayoutError",
    "LayoutReference",
    "NotFoundInLayout",
    "is_layout_reference",
    "parse_layout_reference",
]

#: The prefix that marks a layout reference on the command line.
#: The index.json annotation that names an entry: the layout's notion of a tag.
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

_LAYOUT_FILE = "oci-layout"
_INDEX_FILE = "index.json"
_BLOBS_DIR = "blobs"
_LAYOUT_VERSION = "1.0.0"
_CHUNK = 1024 * 1024
_TMP_PREFIX = ".regshift-tmp-"
#: mkstemp creates 0600 files; layouts are shared with other tools and users.
_FILE_MODE = 0o644
_MAX_LISTED_TAGS = 20
_DIGEST_PREFIXES = ("sha256:", "sha512:")
_LOCK_WAIT = 60.0  # seconds another process may hold index.json before we give up

# index.json updates are read-modify-write: one lock per layout directory in this process,
# plus a lock between processes (see Layout._index_update and _lock_target).
_INDEX_LOCKS: dict[str, threading.Lock] = {}
_INDEX_LOCKS_GUARD = threading.Lock()


# --------------------------------------------------------------------------- the layout


class Layout:
    """An OCI image layout directory. Thread-safe for concurrent blob writes.

    ``index.json`` is read afresh by every call (other programs may change it). Each
    read-modify-write of it holds a lock shared by every ``Layout`` on the same directory in
    this process and an exclusive lock between processes (``flock`` on the layout directory
    itself; on Windows a byte-range lock on ``oci-layout``, see :func:`_lock_target`: no
    lock file is added to the layout), so concurrent regshift processes never lose each
    other's updates. The lock is advisory: tools that do not take it are not kept out, and
    on a file system without lock support updates go ahead unlocked. Each replacement is
    atomic anyway.

    Attributes:
        path: The layout directory.
    """

    def __init__(self, path: Path, *, create: bool = False) -> None:
        """Open the layout at ``path``.

        Args:
            path: The layout directory.
            create: Make the directory, ``oci-layout``, ``blobs/`` and an empty
                ``index.json`` when they are missing (existing files are kept).

        Raises:
            NotFoundInLayout: the directory or its ``index.json`` is missing (without
                ``create``).
            LayoutError: ``oci-layout`` is missing, or a file is unreadable or invalid.
        """
        self.path = Path(path)
        self._name = f"{LAYOUT_PREFIX}{self.path}"
        if create:
            self._create()
        self._index_lock = _index_lock_for(self.path)
        self._check_layout_file()
        self._read_index()

    def __repr__(self) -> str:
        return f"Layout({str(self.path)!r})"

    # ---- tags and manifests

    def tags(self) -> list[str]:
        """The ``ref.name`` annotations of the ``index.json`` entries, in order, without repeats.

        Raises:
            LayoutError: ``index.json`` is unreadable or invalid.
        """
        return _tag_names(self._read_index()[1])

    def default_identifier(self) -> str:
        """What ``oci:PATH`` names without tag or digest: the ``latest`` tag if there is one,
        else the only manifest of a layout that holds exactly one (skopeo and umoci write an
        image copied without a tag that way, and read such a layout back as ``oci:PATH``).

        Raises:
            NotFoundInLayout: there is no layout here.
            LayoutError: ``index.json`` is unreadable or invalid.
        """
        entries = self._read_index()[1]
        if len(entries) == 1 and _ref_name(entries[0]) != DEFAULT_TAG:
            return entries[0].digest
        return DEFAULT_TAG

    def resolve(self, tag_or_digest: str) -> Descriptor:
        """Find a manifest by tag (an ``index.json`` entry) or by digest (any manifest blob).

        A digest found among the ``index.json`` entries gives that entry; any other digest
        is looked up in ``blobs/``, and its media type read from the manifest itself.

        Raises:
            NotFoundInLayout: no entry has that tag, or there is no blob with that digest.
            InvalidReference: the text starts like a digest but is not a valid one.
            DigestMismatch: a manifest blob read to learn its media type is corrupt.
            ManifestError: the blob is not a manifest.
            LayoutError: the layout is unreadable or invalid.
        """
        return self._find(self._read_index()[1], tag_or_digest)

    def head_manifest(self, tag_or_digest: str) -> Descriptor | None:
        """Like :meth:`resolve`, but ``None`` when the tag or manifest is not in the layout.

        A missing layout (no directory or no ``index.json``) is still an error.
        """
        entries = self._read_index()[1]
        try:
            return self._find(entries, tag_or_digest)
        except NotFoundInLayout:
            return None

    def _find(self, entries: list[Descriptor], tag_or_digest: str) -> Descriptor:
        """:meth:`resolve` among ``entries`` (the ``index.json`` entries just read)."""
        if not tag_or_digest.startswith(_DIGEST_PREFIXES):
            for entry in entries:
                if _ref_name(entry) == tag_or_digest:
                    return entry
            raise NotFoundInLayout(
                f"tag {_quote(tag_or_digest)} not found in {self._name} ({self._tag_list(entries)})"
            )
        validate_digest(tag_or_digest)
        for entry in entries:
            if entry.digest == tag_or_digest:
                return entry
        manifest = self._load_manifest(tag_or_digest, size=None, media_type="")
        return manifest.descriptor()

    def get_manifest(self, tag_or_digest: str) -> Manifest:
        """Read a manifest by tag or digest, verifying its digest and size.

        The media type is the manifest's ``mediaType`` field, else the descriptor's.

        Raises:
            NotFoundInLayout: no such tag, or the manifest blob is missing.
            DigestMismatch: the blob does not hash to its digest (or has another size).
            ManifestError: the blob is not a manifest regshift can read.
            LayoutError: the layout is unreadable or invalid.
        """
        desc = self.resolve(tag_or_digest)
        return self._load_manifest(desc.digest, size=desc.size, media_type=desc.media_type)

    def put_manifest(self, manifest: Manifest, tag: str | None = None) -> None:
        """Store a manifest's exact bytes and record it in ``index.json``.

        With ``tag``, the entry named ``tag`` now points at this manifest (an existing
        entry of that name is replaced in place; every other entry is kept as it was).
        Without, an untagged entry is added unless an entry for this digest exists.

        The children of an index are not entries of ``index.json``: store them with
        :meth:`write_blob` (``write_blob(m.digest, m.size, [m.raw], check_existing=True)``).

        Raises:
            InvalidReference: ``tag`` is not a valid tag.
            DigestMismatch: ``manifest.raw`` does not hash to ``manifest.digest``.
            LayoutError: the layout is invalid, or a file cannot be written.
        """
        if tag is not None:
            validate_tag(tag)
        self.write_blob(manifest.digest, manifest.size, [manifest.raw], check_existing=True)
        entry: dict[str, Any] = {
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": manifest.size,
        }
        if tag is not None:
            entry["annotations"] = {REF_NAME_ANNOTATION: tag}
        with self._index_update():
            doc, entries = self._read_index()
            raw_entries: list[Any] = doc["manifests"]
            if tag is None:
                if any(e.digest == manifest.digest for e in entries):
                    return
                raw_entries.append(entry)
            else:
                positions = [i for i, e in enumerate(entries) if _ref_name(e) == tag]
                if [entries[i].digest for i in positions] == [manifest.digest]:
                    return  # already tagged so: keep the entry (and its annotations) as is
                if positions:
                    raw_entries[positions[0]] = entry
                    for i in reversed(positions[1:]):
                        del raw_entries[i]
                else:
                    raw_entries.append(entry)
            self._write_index(doc)

    def delete_tag(self, tag: str) -> bool:
        """Remove every ``index.json`` entry named ``tag``; blobs are left in place.

        Returns:
            Whether an entry was removed.

        Raises:
            LayoutError: the layout is invalid, or ``index.json`` cannot be written.
        """
        with self._index_update():
            doc, entries = self._read_index()
            keep = [
                raw for raw, e in zip(doc["manifests"], entries, strict=True) if _ref_name(e) != tag
            ]
            if len(keep) == len(entries):
                return False
            doc["manifests"] = keep
            self._write_index(doc)
            return True

    # ---- blobs

    def blob_path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives: ``blobs/<alg>/<hex>``.

        Raises:
            InvalidReference: the digest is malformed (so no path can escape ``blobs/``).
        """
        algorithm, hexpart = split_digest(digest)
        return self.path / _BLOBS_DIR / algorithm / hexpart

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
            raise LayoutError(
                f"{self._name}: cannot stat blob {digest}: {_os_reason(exc)}"
            ) from exc
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
            raise LayoutError(f"cannot open {path}: {_os_reason(exc)}") from exc
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
            return _os_errors(f"cannot write {path}")

        with own_errors():
            path.parent.mkdir(parents=True, exist_ok=True)
        # Only our own file operations become LayoutError; whatever the source of
        # ``chunks`` raises (say, a dropped connection) propagates unchanged.
        _replace_file(path, _fed(verifier, chunks), check=verifier.verify, errors=own_errors)

    # ---- checking

    def verify(self) -> list[str]:
        """Check everything reachable from ``index.json``; return the problems found.

        Every manifest, config and layer blob reachable from an ``index.json`` entry must
        exist and match its digest and size. Missing blobs of descriptors with ``urls``
        or a non-distributable media type are allowed (the spec lets those live elsewhere).
        Returns an empty list for a sound layout; each problem is one line naming a path.

        Raises:
            LayoutError: ``oci-layout`` or ``index.json`` itself is invalid.
        """
        self._check_layout_file()
        problems: list[str] = []
        checked: set[str] = set()
        # index.json entries are manifests whatever their media type says; below them,
        # the media type tells manifests (followed) from other blobs (only hashed).
        pending = deque((desc, True) for desc in self._read_index()[1])
        while pending:
            desc, is_root = pending.popleft()
            if desc.digest in checked:
                continue
            checked.add(desc.digest)
            children = self._verify_descriptor(desc, problems, as_manifest=is_root)
            pending.extend((child, False) for child in children)
        return problems

    # ---- internals

    def _create(self) -> None:
        try:
            (self.path / _BLOBS_DIR).mkdir(parents=True, exist_ok=True)
            if not (self.path / _LAYOUT_FILE).exists():
                layout = {"imageLayoutVersion": _LAYOUT_VERSION}
                _replace_file(self.path / _LAYOUT_FILE, [_encode(layout)])
            if not (self.path / _INDEX_FILE).exists():
                index = {
                    "schemaVersion": 2,
                    "mediaType": MediaType.OCI_INDEX.value,
                    "manifests": [],
                }
                _replace_file(self.path / _INDEX_FILE, [_encode(index)])
        except OSError as exc:
            raise LayoutError(f"cannot create layout {self.path}: {_os_reason(exc)}") from exc

    def _check_layout_file(self) -> None:
        path = self.path / _LAYOUT_FILE
        doc = self._read_json(path, "oci-layout")
        version = doc.get("imageLayoutVersion")
        if not isinstance(version, str):
            raise LayoutError(f"{path}: no imageLayoutVersion string; not an OCI image layout")
        if version.split(".", 1)[0] != _LAYOUT_VERSION.split(".", 1)[0]:
            raise LayoutError(
                f"{path}: unsupported imageLayoutVersion {_quote(version)}"
                f" (expected {_LAYOUT_VERSION})"
            )

    @contextlib.contextmanager
    def _index_update(self) -> Iterator[None]:
        """Hold ``index.json`` for one read-modify-write: against other threads of this
        process (the shared lock) and against other processes (:func:`_dir_flock`)."""
        with self._index_lock, _dir_flock(self.path):
            yield

    def _read_index(self) -> tuple[dict[str, Any], list[Descriptor]]:
        """Load ``index.json``: the whole document, and its entries as descriptors."""
        path = self.path / _INDEX_FILE
        doc = self._read_json(path, "index.json")
        raw_entries = doc.get("manifests")
        if not isinstance(raw_entries, list):
            raise LayoutError(f'{path}: "manifests" is not a list')
        entries = [_entry_descriptor(path, i, e) for i, e in enumerate(raw_entries)]
        return doc, entries

    def _read_json(self, path: Path, what: str) -> dict[str, Any]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if not self.path.is_dir():
                raise NotFoundInLayout(f"{self.path}: no such layout directory") from None
            missing = NotFoundInLayout if path.name == _INDEX_FILE else LayoutError
            raise missing(f"{path}: missing; not an OCI image layout") from None
        except OSError as exc:
            raise LayoutError(f"cannot read {path}: {_os_reason(exc)}") from exc
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise LayoutError(f"{path}: {what} is not valid JSON: {_one_line(str(exc))}") from None
        if not isinstance(doc, dict):
            raise LayoutError(f"{path}: {what} is not a JSON object")
        return doc

    def _write_index(self, doc: dict[str, Any]) -> None:
        path = self.path / _INDEX_FILE
        with _os_errors(f"cannot write {path}"):
            _replace_file(path, [_encode(doc)])

    def _tag_list(self, entries: list[Descriptor]) -> str:
        names = _tag_names(entries)
        if not names:
            return "no tags"
        shown = ", ".join(names[:_MAX_LISTED_TAGS])
        more = (
            f", ... {len(names) - _MAX_LISTED_TAGS} more" if len(names) > _MAX_LISTED_TAGS else ""
        )
        return f"tags: {shown}{more}"

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
            raise LayoutError(f"cannot read {path}: {_os_reason(exc)}") from exc
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
            return parse_manifest(raw, media_type or _guess_media_type(raw))
        except ManifestError as exc:
            raise type(exc)(f"{self.blob_path(digest)}: {exc}") from exc

    def _chunks(self, handle: BinaryIO, digest: str, path: Path) -> Iterator[bytes]:
        verifier = DigestVerifier(digest, what=str(path))
        while True:
            try:
                chunk: bytes = handle.read(_CHUNK)
            except OSError as exc:
                raise LayoutError(f"cannot read {path}: {_os_reason(exc)}") from exc
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
            problems.append(_one_line(str(exc)))
        return []

    def _verify_blob(self, desc: Descriptor) -> None:
        verifier = DigestVerifier(desc.digest, desc.size, what=str(self.blob_path(desc.digest)))
        with self.open_blob(desc.digest) as chunks:
            for chunk in chunks:
                verifier.update(chunk)
        verifier.verify()


def _entry_descriptor(path: Path, position: int, entry: object) -> Descriptor:
    """An ``index.json`` entry as a :class:`Descriptor`; LayoutError when malformed."""
    where = f"{path}: manifests[{position}]"
    if not isinstance(entry, dict):
        raise LayoutError(f"{where} is not an object")
    digest, size, media_type = entry.get("digest"), entry.get("size"), entry.get("mediaType", "")
    if not isinstance(digest, str):
        raise LayoutError(f"{where} has no digest")
    try:
        split_digest(digest)
    except InvalidReference as exc:
        raise LayoutError(f"{where}: {exc}") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise LayoutError(f"{where} ({digest}) has no valid size")
    if not isinstance(media_type, str):
        raise LayoutError(f"{where} ({digest}) has a mediaType that is not a string")
    annotations = entry.get("annotations") or {}
    urls = entry.get("urls") or []
    if not isinstance(annotations, dict) or not isinstance(urls, list):
        raise LayoutError(f"{where} ({digest}) has invalid annotations or urls")
    platform = entry.get("platform")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        platform=_platform(platform) if isinstance(platform, dict) else None,
        urls=tuple(str(u) for u in urls),
        annotations={str(k): str(v) for k, v in annotations.items()},
        artifact_type=str(entry.get("artifactType", "")),
    )


def _platform(p: dict[str, Any]) -> Platform:
    return Platform(
        os=str(p.get("os", "")),
        architecture=str(p.get("architecture", "")),
        variant=str(p.get("variant", "")),
        os_version=str(p.get("os.version", "")),
    )


def _ref_name(desc: Descriptor) -> str | None:
    return desc.annotations.get(REF_NAME_ANNOTATION)


def _tag_names(entries: list[Descriptor]) -> list[str]:
    return list(dict.fromkeys(n for e in entries if (n := _ref_name(e)) is not None))


def _index_lock_for(path: Path) -> threading.Lock:
    """The lock for one layout's ``index.json``, shared by every :class:`Layout` on that path."""
    key = os.path.realpath(path)
    with _INDEX_LOCKS_GUARD:
        return _INDEX_LOCKS.setdefault(key, threading.Lock())


@contextlib.contextmanager
def _dir_flock(directory: Path) -> Iterator[None]:
    """Hold the layout's inter-process lock (see :func:`_lock_target`). Closing releases it.

    Raises:
        LayoutError: the lock target cannot be opened or locked (a file system without
            lock support is not an error: the caller goes ahead unlocked).
    """
    windows = os.name == "nt"
    target = _lock_target(directory, windows=windows)
    with _os_errors(f"cannot lock {directory}"):
        fd = os.open(target, os.O_RDONLY | (0 if windows else getattr(os, "O_DIRECTORY", 0)))
    try:
        _lock_within(fd, directory, _LOCK_WAIT)
        try:
            yield
        finally:
            unlock(fd)
    finally:
        os.close(fd)


def _lock_target(directory: Path, *, windows: bool) -> Path:
    """What a layout update locks, so that no lock file is added to the layout.

    POSIX: the directory itself (Linux and macOS ``flock`` a directory descriptor).
    Windows cannot open a directory as a file: there it is the layout's ``oci-layout``
    file, locked at a byte far past its end (:mod:`regshift.locking`), so readers of the
    file are not blocked. Every layout has that file, and regshift never replaces it.
    """
    return directory / _LAYOUT_FILE if windows else directory


def _lock_within(fd: int, directory: Path, seconds: float) -> None:
    """Take the lock, waiting at most ``seconds``; a file system that cannot lock lets
    the update go ahead unlocked, as before."""
    try:
        locked = lock_within(fd, seconds, poll=0.05)
    except OSError as exc:
        raise LayoutError(f"cannot lock {directory}: {_os_reason(exc)}") from exc
    if not locked:
        raise LayoutError(
            f"cannot lock {directory}: another process has held it for {seconds:.0f} s"
        )


def _guess_media_type(raw: bytes) -> str:
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


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _replace_file(
    path: Path,
    chunks: Iterable[bytes],
    *,
    check: Callable[[], None] | None = None,
    errors: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> None:
    """Replace ``path`` with ``chunks``: temp file in the same directory, fsync, rename.

    ``check`` runs before anything is committed. Our own file operations run inside
    ``errors()`` (a caller may turn them into :class:`LayoutError`); what ``chunks`` or
    ``check`` raise propagates unchanged. The temporary file never outlives a failure.
    """
    with errors():
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with errors():
                    out.write(chunk)
            if check is not None:
                check()
            with errors():
                out.flush()
                os.fsync(out.fileno())
        with errors():
            os.chmod(tmp, _FILE_MODE)
            replace_file(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fed(verifier: DigestVerifier, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks``, each fed to ``verifier`` before it is passed on."""
    for chunk in chunks:
        verifier.update(chunk)
        yield chunk


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; best effort (not every platform can open a directory)."""
    if os.name == "nt":  # Windows cannot open a directory as a file; NTFS journals renames
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _os_errors(doing: str) -> Iterator[None]:
    """Translate an OSError into a one-line :class:`LayoutError`: ``<doing>: <reason>``."""
    try:
        yield
    except OSError as exc:
        raise LayoutError(f"{doing}: {_os_reason(exc)}") from exc


def _os_reason(exc: OSError) -> str:
    return exc.strerror or _one_line(str(exc))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _quote(value: str) -> str:
    """Double-quote ``value`` on one line, escaping quotes and unprintable characters."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return '"' + "".join(out) + '"'
