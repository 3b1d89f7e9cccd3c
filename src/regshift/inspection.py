"""What an image is, without pulling its layers: platforms, config summaries, sizes, referrers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from .copying import resolve
from .errors import ManifestError
from .manifests import Descriptor, Manifest, Platform
from .referrers import ReferrerNode
from .store import Source

_MAX_CONFIG = 4 * 1024 * 1024
_MAX_LISTINGS = 10_000


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer: digest, size, media type."""

    digest: str
    size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class PlatformImage:
    """One image of an index (or the image itself), with its config summary."""

    platform: str
    digest: str
    media_type: str
    size: int
    created: str
    labels: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    layers: tuple[Layer, ...]

    @property
    def total_size(self) -> int:
        """Manifest, config and layer bytes of this image."""
        return self.size + sum(layer.size for layer in self.layers)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """The result of :func:`describe`."""

    name: str
    digest: str
    media_type: str
    size: int
    images: tuple[PlatformImage, ...]
    referrers: int
    notes: tuple[str, ...] = field(default=())

    @property
    def total_size(self) -> int:
        """Every byte of the image: the index and each platform's manifest, config and layers."""
        extra = self.size if len(self.images) != 1 or self.images[0].digest != self.digest else 0
        return extra + sum(i.total_size for i in self.images)


def describe(source: Source, identifier: str, platforms: Sequence[Platform] = ()) -> ImageInfo:
    """Summarise an image: media type, digest, platforms, config of each, layers, referrers.

    Raises:
        RegistryError: the image or one of its manifests or configs cannot be read.
    """
    graph = resolve(source, identifier, platforms)
    top = graph.top if not graph.derived else source.get_manifest(identifier)
    images = tuple(_image(source, m, _platform_of(top, m)) for m in graph.images)
    return ImageInfo(
        name=f"{source.name}:{identifier}"
        if ":" not in identifier
        else f"{source.name}@{identifier}",
        digest=top.digest,
        media_type=top.media_type,
        size=top.size,
        images=images,
        referrers=len(source.list_referrers(top.digest)),
    )


def _platform_of(top: Manifest, image: Manifest) -> str:
    for entry in top.manifests:
        if entry.digest == image.digest and entry.platform:
            return str(entry.platform)
    return ""


def _image(source: Source, manifest: Manifest, platform: str) -> PlatformImage:
    config = _config(source, manifest.config) if manifest.config else {}
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    assert isinstance(inner, dict)
    if not platform:
        parts = [str(config.get(k, "")) for k in ("os", "architecture", "variant")]
        platform = "/".join(p for p in parts if p)
    return PlatformImage(
        platform=platform,
        digest=manifest.digest,
        media_type=manifest.media_type,
        size=manifest.size + (manifest.config.size if manifest.config else 0),
        created=str(config.get("created", "")),
        labels={str(k): str(v) for k, v in (inner.get("Labels") or {}).items()},
        entrypoint=[str(x) for x in inner.get("Entrypoint") or []],
        cmd=[str(x) for x in inner.get("Cmd") or []],
        layers=tuple(Layer(d.digest, d.size, d.media_type) for d in manifest.layers),
    )


def _config(source: Source, desc: Descriptor) -> dict[str, object]:
    """The image config as JSON (bounded); empty for artifacts whose config is not JSON."""
    if desc.size > _MAX_CONFIG:
        raise ManifestError(f"config {desc.digest} is {desc.size} bytes, above the limit")
    with source.open_blob(desc) as chunks:
        data = b"".join(chunks)
    try:
        doc = json.loads(data)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def referrer_tree(
    source: Source, digest: str, *, artifact_type: str | None = None, max_depth: int = 8
) -> list[ReferrerNode]:
    """Referrers of ``digest`` and theirs, for a registry or a layout; each digest once.

    ``artifact_type`` filters the first level only.
    """
    seen = {digest}
    budget = [_MAX_LISTINGS]

    def level(subject: str, depth: int, wanted: str | None) -> list[ReferrerNode]:
        budget[0] -= 1
        if budget[0] < 0:
            raise ManifestError("too many referrers to list")
        nodes = []
        for desc in source.list_referrers(subject):
            if desc.digest in seen or (wanted and desc.artifact_type != wanted):
                continue
            seen.add(desc.digest)
            children = level(desc.digest, depth - 1, None) if depth > 1 else []
            nodes.append(ReferrerNode(desc, desc.artifact_type, dict(desc.annotations), children))
        return nodes

    return level(digest, max_depth, artifact_type)
