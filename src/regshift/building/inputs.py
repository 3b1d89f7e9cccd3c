"""The inputs of a build, read and paired by platform.

Each input reference is resolved once (:func:`regshift.graph.resolve`: every manifest, exact
bytes). All single images make one result (their configs must name one platform); all
indexes make one result per platform present in every input (in the first input's order,
narrowed by the platforms asked for). A single image mixed with an index is refused. Only
manifests and configs are read here, never a layer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import IncompatibleInputs, ManifestError, PlatformNotFound
from ..graph import ImageGraph, read_config, resolve, suffix
from ..manifests import Descriptor, Manifest, Platform
from ..mediatypes import MediaType
from .configs import JSONObject, diff_ids_of, history_of

if TYPE_CHECKING:
    from ..storage import Repository


@dataclass(frozen=True, slots=True)
class Input:
    """One input image at one platform: its manifest and its config, parsed."""

    name: str
    repo: Repository
    manifest: Manifest
    config: JSONObject
    entry: Descriptor | None  # the index entry it was listed under (platform, annotations)

    @property
    def diff_ids(self) -> list[str]:
        return diff_ids_of(self.config)

    @property
    def history(self) -> list[JSONObject]:
        return history_of(self.config)

    @property
    def docker(self) -> bool:
        return self.manifest.media_type == MediaType.DOCKER_MANIFEST

    def layers(self) -> list[tuple[Descriptor, str]]:
        """(descriptor, diff_id) of every layer."""
        return list(zip(self.manifest.layers, self.diff_ids, strict=True))


@dataclass(frozen=True, slots=True)
class Source:
    """One input reference, resolved: its graph and name for messages."""

    name: str
    graph: ImageGraph

    @property
    def index(self) -> Manifest | None:
        return self.graph.top if self.graph.top.is_index else None


@dataclass(frozen=True, slots=True)
class PlatformInputs:
    """The inputs of one result image: one per input reference, in order."""

    platform: Platform | None
    inputs: tuple[Input, ...]


def read_sources(repos: Sequence[Repository]) -> list[Source]:
    """Resolve every input (manifests only).

    Raises:
        NotFound / NotFoundInLayout: an input does not exist.
    """
    return [
        Source(f"{r.name}{suffix(r.identifier)}", resolve(r, r.identifier or "latest"))
        for r in repos
    ]


def pair(sources: Sequence[Source], wanted: Sequence[Platform]) -> list[PlatformInputs]:
    """The result images to build: each platform's inputs, configs read.

    Raises:
        IncompatibleInputs: an index mixed with a single image, single images of different
            platforms, or indexes with no platform in common.
        PlatformNotFound: a platform asked for is missing from an input.
    """
    indexes = [s.index is not None for s in sources]
    if any(indexes) and not all(indexes):
        kinds = ", ".join(
            f"{s.name} ({'index' if i else 'single image'})"
            for s, i in zip(sources, indexes, strict=True)
        )
        raise IncompatibleInputs(f"cannot combine an index with a single image: {kinds}")
    if all(indexes):
        return _pair_indexes(sources, wanted)
    inputs = tuple(_input(s, s.graph.top, None) for s in sources)
    platforms = [_config_platform(i) for i in inputs]
    first = platforms[0]
    for source, platform in zip(sources, platforms, strict=True):
        if first is not None and platform is not None and not platform.matches(first):
            raise IncompatibleInputs(
                f"platform mismatch: {sources[0].name} is {first}, {source.name} is {platform}"
            )
    if wanted and (first is None or not any(first.matches(p) for p in wanted)):
        raise PlatformNotFound(
            sources[0].name, [str(p) for p in wanted], [str(first)] if first else []
        )
    return [PlatformInputs(first, inputs)]


def _pair_indexes(sources: Sequence[Source], wanted: Sequence[Platform]) -> list[PlatformInputs]:
    entries = [_platform_entries(s) for s in sources]
    for source, found in zip(sources, entries, strict=True):
        for platform in wanted:
            if not any(_key(e.platform) == _key(platform) for e in found):
                have = list(dict.fromkeys(str(e.platform) for e in found))
                raise PlatformNotFound(source.name, [str(platform)], have)
    keys = [k for k in dict.fromkeys(_key(e.platform) for e in entries[0])]
    common = [k for k in keys if all(any(_key(e.platform) == k for e in f) for f in entries)]
    if wanted:
        common = [k for k in common if any(_key(p) == k for p in wanted)]
    if not common:
        listed = "; ".join(
            f"{s.name}: {', '.join(dict.fromkeys(str(e.platform) for e in f)) or 'none'}"
            for s, f in zip(sources, entries, strict=True)
        )
        raise IncompatibleInputs(f"no platform is in every input ({listed})")
    result = []
    for key in common:
        chosen = [next(e for e in f if _key(e.platform) == key) for f in entries]
        inputs = tuple(_input(s, _image(s, e), e) for s, e in zip(sources, chosen, strict=True))
        result.append(PlatformInputs(chosen[0].platform, inputs))
    return result


def _platform_entries(source: Source) -> list[Descriptor]:
    """The image entries that name a real platform (buildx lists its attestations under
    ``unknown/unknown``; those are no platform to build)."""
    return [
        e
        for e in source.graph.entries
        if e.platform is not None
        and e.platform.os not in ("", "unknown")
        and e.platform.architecture not in ("", "unknown")
    ]


def _key(platform: Platform | None) -> tuple[str, str, str]:
    assert platform is not None
    p = platform.normalized()
    return (p.os, p.architecture, p.variant)


def _image(source: Source, entry: Descriptor) -> Manifest:
    return next(m for m in source.graph.images if m.digest == entry.digest)


def _input(source: Source, manifest: Manifest, entry: Descriptor | None) -> Input:
    if manifest.config is None:
        raise ManifestError(f"{source.name}: {manifest.digest} has no config")
    try:
        doc: Any = json.loads(read_config(source.graph.source, manifest.config))
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        raise ManifestError(f"{source.name}: config {manifest.config.digest} is not a JSON object")
    image = Input(source.name, source.graph.source, manifest, doc, entry)
    if len(image.diff_ids) != len(manifest.layers):
        raise ManifestError(
            f"{source.name}: {manifest.digest} has {len(manifest.layers)} layers but its config "
            f"lists {len(image.diff_ids)} diff_ids"
        )
    return image


def _config_platform(image: Input) -> Platform | None:
    os, arch = image.config.get("os"), image.config.get("architecture")
    if not isinstance(os, str) or not isinstance(arch, str) or not os or not arch:
        return None
    variant = image.config.get("variant")
    return Platform(os, arch, variant if isinstance(variant, str) else "")
