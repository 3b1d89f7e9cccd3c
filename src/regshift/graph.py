"""The image graph: a reference resolved to every manifest below it, as exact bytes.

Shared by copy (what to transfer) and inspect (what to describe): the top manifest, nested
indexes walked depth first (each once, cycles refused, depth bounded), platform selection,
and the configs read to learn a single image's platform.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .digests import DigestVerifier
from .errors import ManifestError, PlatformNotFound
from .manifests import Descriptor, Manifest, Platform, parse_manifest
from .mediatypes import is_foreign, is_index, is_manifest

if TYPE_CHECKING:
    from .storage import Repository

__all__ = ["MAX_INDEX_DEPTH", "ImageGraph", "config_platform", "read_config", "resolve", "suffix"]


@dataclass(frozen=True, slots=True)
class ImageGraph:
    """A resolved source: the top manifest and every manifest below it, as raw bytes.

    Attributes:
        images: the image manifests, each once.
        derived: the top manifest was built (or picked out of the source) by a platform filter.
        indexes: the indexes below the top one (nested indexes), each once, children before
            parents.
        entries: the index entries chosen, in source order through every nested level, each
            as listed (its own platform and annotations: a manifest listed under two
            platforms is two entries); empty for a single image.
    """

    source: Repository
    top: Manifest
    images: tuple[Manifest, ...]
    derived: bool = False
    indexes: tuple[Manifest, ...] = ()
    entries: tuple[Descriptor, ...] = ()

    def blobs(self, include_foreign: bool) -> list[Descriptor]:
        """Every blob of every image once, config first; foreign layers only on request."""
        seen: dict[str, Descriptor] = {}
        for image in self.images:
            for desc in image.blobs():
                if include_foreign or not is_foreign(desc.media_type):
                    seen.setdefault(desc.digest, desc)
        return list(seen.values())

    def foreign(self) -> list[Descriptor]:
        """The non-distributable layers, once each."""
        return _unique(d for i in self.images for d in i.layers if is_foreign(d.media_type))

    def children(self) -> list[Manifest]:
        """Manifests to PUT by digest before the top one, each after everything it lists:
        the images, then the nested indexes innermost first."""
        images = [m for m in self.images if m.digest != self.top.digest]
        return images + [m for m in self.indexes if m.digest != self.top.digest]


#: OCI lets an index list indexes; deeper nesting than this many levels is refused.
MAX_INDEX_DEPTH = 4
_MAX_CONFIG = 4 * 1024 * 1024


def resolve(source: Repository, identifier: str, platforms: Sequence[Platform] = ()) -> ImageGraph:
    """Fetch the source manifest and every manifest below it (exact bytes), through nested
    indexes up to :data:`MAX_INDEX_DEPTH` levels.

    With ``platforms`` (compared in normalised form, see :meth:`Platform.matches`), the
    image entries of every level whose platform matches are chosen: one image makes that
    image the top manifest; several make a new flat index of the chosen entries, each as
    the source lists it, in source order (its digest differs from the source's), unless
    they are every entry of the source, which is then kept byte for byte. A single image
    is kept when its config says it is for one of ``platforms``.

    Raises:
        NotFound: the source does not exist.
        PlatformNotFound: no image of the source is for any of ``platforms``.
        ManifestError: indexes nested too deep, in a cycle, or an entry that is not what
            its index says.
    """
    top = source.get_manifest(identifier)
    where = f"{source.name}{suffix(identifier)}"
    if not top.is_index:
        if platforms:
            _require_platform(source, top, platforms, where)
        return ImageGraph(source, top, (top,))
    tree = _IndexTree(source, top)
    entries = _select(tree.entries, platforms, where)
    images = tuple(tree.image(d) for d in _unique(e.descriptor for e in entries))
    chosen = tuple(e.descriptor for e in entries)
    if not platforms or len(entries) == len(tree.entries) > 1:  # every entry: bytes kept
        return ImageGraph(source, top, images, indexes=tuple(tree.indexes), entries=chosen)
    if len(images) == 1:  # one image asked for (also an index with a single entry)
        return ImageGraph(source, images[0], images, derived=True, entries=chosen)
    return ImageGraph(source, _sub_index(top, entries), images, derived=True, entries=chosen)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One entry of an index: parsed, and its JSON object exactly as the index lists it."""

    descriptor: Descriptor
    raw: dict[str, object]


class _IndexTree:
    """An index and the indexes it lists, depth first in source order, each fetched once.

    ``entries`` are the entries that are not indexes, from every level; ``indexes`` the
    nested indexes, children before parents. A nested index listed again (by two parents)
    is walked once; one that lists itself or an ancestor is refused, never followed.
    """

    def __init__(self, source: Repository, top: Manifest) -> None:
        self.source = source
        self.fetched: dict[str, Manifest] = {top.digest: top}
        self.entries: list[_Entry] = []
        self.indexes: list[Manifest] = []
        self._walk(top, (top.digest,))

    def _walk(self, index: Manifest, path: tuple[str, ...]) -> None:
        listed: list[dict[str, object]] = json.loads(index.raw).get("manifests", [])
        for desc, raw in zip(index.manifests, listed, strict=True):
            if not is_index(desc.media_type):
                self.entries.append(_Entry(desc, raw))
            elif desc.digest in path:
                raise ManifestError(f"{self.source.name}: index {desc.digest} lists itself")
            elif desc.digest not in self.fetched:
                if len(path) >= MAX_INDEX_DEPTH:
                    raise ManifestError(
                        f"{self.source.name}: index {desc.digest} is nested more than "
                        f"{MAX_INDEX_DEPTH} levels deep (the limit)"
                    )
                child = self._get(desc)
                if not child.is_index:
                    raise ManifestError(
                        f"{self.source.name}: {desc.digest} is listed as an index but is "
                        f"a {child.media_type}"
                    )
                self._walk(child, (*path, child.digest))
                self.indexes.append(child)

    def _get(self, desc: Descriptor) -> Manifest:
        if desc.digest not in self.fetched:
            self.fetched[desc.digest] = self.source.get_manifest(desc.digest)
        return self.fetched[desc.digest]

    def image(self, desc: Descriptor) -> Manifest:
        """The image manifest an entry names."""
        child = self._get(desc)
        if child.is_index:
            listed = desc.media_type or "an entry without a media type"
            raise ManifestError(
                f"{self.source.name}: {desc.digest} is listed as {listed} but is an index"
            )
        return child


def _select(entries: list[_Entry], platforms: Sequence[Platform], where: str) -> list[_Entry]:
    """The entries to copy. Without a platform filter that is every entry: the index is kept
    byte for byte, so everything it names must reach the destination (or the copy fails
    before writing anything, for an entry regshift cannot copy)."""
    if not platforms:
        return list(entries)
    images = [
        e for e in entries if is_manifest(e.descriptor.media_type) or not e.descriptor.media_type
    ]
    chosen = [e for e in images if _is_for(e.descriptor, platforms)]
    if not chosen:
        have = dict.fromkeys(str(e.descriptor.platform) for e in images if e.descriptor.platform)
        raise PlatformNotFound(where, [str(p) for p in platforms], list(have))
    return chosen


def _is_for(desc: Descriptor, platforms: Sequence[Platform]) -> bool:
    return desc.platform is not None and any(desc.platform.matches(p) for p in platforms)


def _require_platform(
    source: Repository, image: Manifest, platforms: Sequence[Platform], where: str
) -> None:
    """A single image is only "found" for a platform its config says it is for."""
    have = config_platform(source, image)
    if have is None or not any(have.matches(p) for p in platforms):
        available = [str(have)] if have else []
        raise PlatformNotFound(where, [str(p) for p in platforms], available)


def config_platform(source: Repository, image: Manifest) -> Platform | None:
    """The platform an image's config names (``os``, ``architecture``, ``variant``,
    ``os.version``, ``os.features``), or None for an artifact whose config is not an image
    config.

    Raises:
        ManifestError: the config is announced larger than the limit.
        DigestMismatch: the config served does not match its digest and size.
    """
    if image.config is None:
        return None
    try:
        doc = json.loads(read_config(source, image.config))
    except (ValueError, RecursionError):
        return None
    fields = [doc.get(k) if isinstance(doc, dict) else None for k in _PLATFORM_FIELDS]
    os, arch, variant, os_version = (f if isinstance(f, str) else "" for f in fields)
    features = doc.get("os.features") if isinstance(doc, dict) else None
    if not (os and arch):
        return None
    listed = tuple(f for f in features if isinstance(f, str)) if isinstance(features, list) else ()
    return Platform(os, arch, variant, os_version, listed)


_PLATFORM_FIELDS = ("os", "architecture", "variant", "os.version")


def read_config(source: Repository, desc: Descriptor) -> bytes:
    """A config blob, bounded by its descriptor's size and verified as it is read.

    Raises:
        ManifestError: the config is announced larger than the limit.
        DigestMismatch: the bytes served do not match the descriptor's digest and size.
    """
    if desc.size > _MAX_CONFIG:
        raise ManifestError(f"config {desc.digest} is {desc.size} bytes, above the limit")
    verifier = DigestVerifier(desc.digest, desc.size, what="config")
    parts = []
    with source.open_blob(desc) as chunks:
        for chunk in chunks:
            verifier.update(chunk)
            parts.append(chunk)
    verifier.verify()
    return b"".join(parts)


def _unique(entries: Iterable[Descriptor]) -> list[Descriptor]:
    """Entries by digest, once each (an index may list the same manifest twice)."""
    return list({d.digest: d for d in entries}.values())


def _sub_index(index: Manifest, entries: list[_Entry]) -> Manifest:
    """A new index of ``entries``: each entry's JSON object as its source index lists it
    (platform, annotations and all), in source order."""
    doc = {
        "schemaVersion": 2,
        "mediaType": index.media_type,
        "manifests": [e.raw for e in entries],
    }
    return parse_manifest((json.dumps(doc, indent=2) + "\n").encode())


def suffix(identifier: str | None) -> str:
    """``:tag`` or ``@digest``, to follow a repository name in messages."""
    if not identifier:
        return ""
    return f"@{identifier}" if ":" in identifier else f":{identifier}"
