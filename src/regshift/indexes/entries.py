"""Index entries, pure: each as regshift writes it (platform first from the config or the
listing), what makes two entries "the same platform", duplicates refused, entries merged,
named, annotated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import DuplicatePlatform, UnsupportedMediaType
from ..manifests import Descriptor, Platform
from ..mediatypes import MediaType

JSONObject = dict[str, object]


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One entry of the index: a child manifest, its platform, and where it came from."""

    digest: str
    media_type: str
    size: int
    platform: Platform | None
    source: str
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class Item:
    """One entry: its JSON object as the index lists it, and what it says."""

    doc: JSONObject
    entry: IndexEntry


def new_item(desc: Descriptor, platform: Platform | None, source: str) -> Item:
    """An entry in regshift's form: mediaType, digest, size, platform, then what else the
    descriptor says (annotations, urls, artifactType)."""
    doc: JSONObject = {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}
    if platform is not None:
        doc["platform"] = _platform_doc(platform)
    if desc.annotations:
        doc["annotations"] = dict(desc.annotations)
    if desc.urls:
        doc["urls"] = list(desc.urls)
    if desc.artifact_type:
        doc["artifactType"] = desc.artifact_type
    entry = IndexEntry(
        desc.digest, desc.media_type, desc.size, platform, source, dict(desc.annotations)
    )
    return Item(doc, entry)


def _platform_doc(platform: Platform) -> JSONObject:
    """The ``platform`` object, its fields in the image-spec's order."""
    doc: JSONObject = {"architecture": platform.architecture, "os": platform.os}
    if platform.os_version:
        doc["os.version"] = platform.os_version
    if platform.os_features:
        doc["os.features"] = list(platform.os_features)
    if platform.variant:
        doc["variant"] = platform.variant
    return doc


def platform_key(platform: Platform | None) -> tuple[str, ...] | None:
    """What makes two entries "the same platform": os, architecture and variant in their
    normalised spelling, os.version and os.features (Windows images of two versions are two
    platforms). Entries without a real platform (none, or ``unknown/unknown`` like buildx's
    attestation manifests) are never duplicates: None."""
    if platform is None:
        return None
    p = platform.normalized()
    if not p.os or not p.architecture or "unknown" in (p.os, p.architecture):
        return None
    return (p.os, p.architecture, p.variant, p.os_version, *sorted(p.os_features))


def label(platform: Platform | None) -> str:
    if platform is None:
        return "(no platform)"
    return f"{platform} ({platform.os_version})" if platform.os_version else str(platform)


def refuse_duplicates(items: Sequence[Item], allowed: bool) -> None:
    if allowed:
        return
    seen: dict[tuple[str, ...], IndexEntry] = {}
    for item in items:
        key = platform_key(item.entry.platform)
        if key is None:
            continue
        first = seen.setdefault(key, item.entry)
        if first is not item.entry:
            raise DuplicatePlatform(
                f"two entries for {label(item.entry.platform)}: {first.digest} "
                f"({first.source}) and {item.entry.digest} ({item.entry.source}); "
                "nothing written"
            )


def check_children(media_type: str, items: Sequence[Item]) -> None:
    """A Docker manifest list lists Docker schema 2 manifests only (docker knows no other
    child type there); an OCI index may list both kinds."""
    if media_type != MediaType.DOCKER_MANIFEST_LIST:
        return
    for item in items:
        if item.entry.media_type != MediaType.DOCKER_MANIFEST:
            raise UnsupportedMediaType(
                f"{item.entry.source}: a Docker manifest list can only list Docker schema 2 "
                f"manifests, not {item.entry.media_type or 'an entry without a media type'}"
            )


def merge(
    kept: Sequence[Item], added: Sequence[Item], allow_duplicates: bool
) -> tuple[list[Item], list[tuple[Item, Item]]]:
    """``kept``, then ``added``; an added entry for a platform already listed takes that
    entry's place instead (unless duplicates are allowed)."""
    items = list(kept)
    replaced: list[tuple[Item, Item]] = []
    for new in added:
        key = platform_key(new.entry.platform)
        at = next(
            (
                n
                for n, old in enumerate(items[: len(kept)])
                if key is not None and platform_key(old.entry.platform) == key
            ),
            None,
        )
        if at is None or allow_duplicates:
            items.append(new)
        else:
            replaced.append((items[at], new))
            items[at] = new
    return items, replaced


def replaced_note(old: IndexEntry, new: IndexEntry) -> str:
    if old.digest == new.digest:
        return f"the {label(old.platform)} entry {old.digest} was listed already (rewritten)"
    return f"replaced the {label(old.platform)} entry {old.digest} with {new.digest}"


def is_named(item: Item, platforms: Sequence[Platform], digests: Sequence[str]) -> bool:
    platform = item.entry.platform
    if platform is not None and any(platform.matches(p) for p in platforms):
        return True
    return item.entry.digest in digests


def annotated(item: Item, annotations: Mapping[str, str]) -> Item:
    old = item.doc.get("annotations")
    merged = {**(old if isinstance(old, dict) else {}), **annotations}
    e = item.entry
    entry = IndexEntry(e.digest, e.media_type, e.size, e.platform, e.source, merged)
    return Item({**item.doc, "annotations": merged}, entry)


def listed(desc: Descriptor, where: str) -> IndexEntry:
    platform, annotations = desc.platform, dict(desc.annotations)
    return IndexEntry(desc.digest, desc.media_type, desc.size, platform, where, annotations)


def parse_platforms(values: object) -> tuple[Platform, ...]:
    """Platforms from strings or :class:`Platform` s (one of either, or a sequence)."""
    if isinstance(values, str | Platform):
        values = (values,)
    if not isinstance(values, Sequence):
        raise TypeError(f"platforms: expected a sequence, not {values!r}")
    return tuple(p if isinstance(p, Platform) else Platform.parse(str(p)) for p in values)
