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
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..digests import split_digest
from ..errors import (  # the layout errors live with the others; re-exported here
    InvalidReference,
    LayoutError,
    NotFoundInLayout,
)
from ..layout_reference import LayoutReference, parse_layout_reference, quote
from ..manifests import Descriptor, Manifest, platform_of
from ..mediatypes import MediaType
from ..reference import (
    DEFAULT_TAG,
    LAYOUT_PREFIX,
    is_layout_reference,
    validate_digest,
    validate_tag,
)
from .blobs import BLOBS_DIR, LayoutBlobs
from .files import (
    LAYOUT_FILE,
    dir_flock,
    encode,
    index_lock_for,
    one_line,
    os_errors,
    os_reason,
    write_atomically,
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

#: The index.json annotation that names an entry: the layout's notion of a tag.
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

_INDEX_FILE = "index.json"
_LAYOUT_VERSION = "1.0.0"
_MAX_LISTED_TAGS = 20
_DIGEST_PREFIXES = ("sha256:", "sha512:")


# --------------------------------------------------------------------------- the layout


class Layout(LayoutBlobs):
    """An OCI image layout directory. Thread-safe for concurrent blob writes.

    ``index.json`` is read afresh by every call (other programs may change it). Each
    read-modify-write of it holds a lock shared by every ``Layout`` on the same directory in
    this process and an exclusive lock between processes (``flock`` on the layout directory
    itself; on Windows a byte-range lock on ``oci-layout``, see :func:`lock_target`: no
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
        self._index_lock = index_lock_for(self.path)
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

    def untagged(self) -> list[Descriptor]:
        """The ``index.json`` entries without a ``ref.name``, in order (oras keeps referrers
        there, and skopeo an image copied without a tag).

        Raises:
            LayoutError: ``index.json`` is unreadable or invalid.
        """
        return [e for e in self._read_index()[1] if _ref_name(e) is None]

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
                f"tag {quote(tag_or_digest)} not found in {self._name} ({self._tag_list(entries)})"
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
        return self.load_manifest(desc)

    def load_manifest(self, desc: Descriptor) -> Manifest:
        """Read the manifest ``desc`` (e.g. an ``index.json`` entry) describes, verifying its
        digest and size; errors as :meth:`get_manifest`."""
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
            (self.path / BLOBS_DIR).mkdir(parents=True, exist_ok=True)
            if not (self.path / LAYOUT_FILE).exists():
                layout = {"imageLayoutVersion": _LAYOUT_VERSION}
                write_atomically(self.path / LAYOUT_FILE, [encode(layout)])
            if not (self.path / _INDEX_FILE).exists():
                index = {
                    "schemaVersion": 2,
                    "mediaType": MediaType.OCI_INDEX.value,
                    "manifests": [],
                }
                write_atomically(self.path / _INDEX_FILE, [encode(index)])
        except OSError as exc:
            raise LayoutError(f"cannot create layout {self.path}: {os_reason(exc)}") from exc

    def _check_layout_file(self) -> None:
        path = self.path / LAYOUT_FILE
        doc = self._read_json(path, "oci-layout")
        version = doc.get("imageLayoutVersion")
        if not isinstance(version, str):
            raise LayoutError(f"{path}: no imageLayoutVersion string; not an OCI image layout")
        if version.split(".", 1)[0] != _LAYOUT_VERSION.split(".", 1)[0]:
            raise LayoutError(
                f"{path}: unsupported imageLayoutVersion {quote(version)}"
                f" (expected {_LAYOUT_VERSION})"
            )

    @contextlib.contextmanager
    def _index_update(self) -> Iterator[None]:
        """Hold ``index.json`` for one read-modify-write: against other threads of this
        process (the shared lock) and against other processes (:func:`dir_flock`)."""
        with self._index_lock, dir_flock(self.path):
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
            raise LayoutError(f"cannot read {path}: {os_reason(exc)}") from exc
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise LayoutError(f"{path}: {what} is not valid JSON: {one_line(str(exc))}") from None
        if not isinstance(doc, dict):
            raise LayoutError(f"{path}: {what} is not a JSON object")
        return doc

    def _write_index(self, doc: dict[str, Any]) -> None:
        path = self.path / _INDEX_FILE
        with os_errors(f"cannot write {path}"):
            write_atomically(path, [encode(doc)])

    def _tag_list(self, entries: list[Descriptor]) -> str:
        names = _tag_names(entries)
        if not names:
            return "no tags"
        shown = ", ".join(names[:_MAX_LISTED_TAGS])
        more = (
            f", ... {len(names) - _MAX_LISTED_TAGS} more" if len(names) > _MAX_LISTED_TAGS else ""
        )
        return f"tags: {shown}{more}"


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
        platform=platform_of(platform) if isinstance(platform, dict) else None,
        urls=tuple(str(u) for u in urls),
        annotations={str(k): str(v) for k, v in annotations.items()},
        artifact_type=str(entry.get("artifactType", "")),
    )


def _ref_name(desc: Descriptor) -> str | None:
    return desc.annotations.get(REF_NAME_ANNOTATION)


def _tag_names(entries: list[Descriptor]) -> list[str]:
    return list(dict.fromkeys(n for e in entries if (n := _ref_name(e)) is not None))
