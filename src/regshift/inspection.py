"""What an image is, without pulling its layers: platforms, config summaries, sizes, referrers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .client import Client
from .graph import ImageGraph, read_config, resolve
from .manifests import Descriptor, Manifest, Platform
from .reference import Reference
from .storage import Repository, open_repository

if TYPE_CHECKING:
    from .layout_reference import LayoutReference


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
    nested_size: int = 0  # bytes of the indexes below the top one

    @property
    def total_size(self) -> int:
        """Every byte of the image: the index (and those it nests) and each platform's
        manifest, config and layers (a manifest listed under several platforms counted once)."""
        distinct = {i.digest: i for i in self.images}
        extra = self.size if list(distinct) != [self.digest] else 0
        return extra + self.nested_size + sum(i.total_size for i in distinct.values())


def describe(
    client: Client,
    ref: str | Reference | LayoutReference,
    *,
    platforms: Sequence[Platform | str] = (),
) -> ImageInfo:
    """Summarise the image ``ref`` names, like ``regshift inspect``: media type, digest,
    platforms, config of each, layers, referrers.

    Args:
        client: the client to use.
        ref: an image reference (a string, :class:`Reference` or :class:`LayoutReference`;
            a string may name an OCI layout, ``oci:PATH[:TAG]``).
        platforms: only these platforms (:class:`Platform` s or ``"os/arch[/variant]"``).

    Raises:
        InvalidReference: a malformed reference (nothing is sent).
        ValueError: a malformed platform string.
        RegistryError: the image cannot be read (see :func:`describe_source`).
    """
    wanted = [p if isinstance(p, Platform) else Platform.parse(p) for p in platforms]
    source = open_repository(client, ref)
    return describe_source(source, source.identifier or "latest", wanted)


def describe_source(
    source: Repository, identifier: str, platforms: Sequence[Platform] = ()
) -> ImageInfo:
    """Summarise an image: media type, digest, platforms, config of each, layers, referrers.

    An index entry is one platform: a manifest listed under two platforms is shown twice.
    The platforms of nested indexes are shown with those of the top index, in source order.
    ``platforms`` narrows the view as :func:`~regshift.graph.resolve` selects for a copy.

    Raises:
        RegistryError: the image or one of its manifests or configs cannot be read, or a
            config does not match its digest and size (:class:`DigestMismatch`).
        PlatformNotFound: no image of the source is for any of ``platforms``.
    """
    graph = resolve(source, identifier, platforms)
    top = graph.top if not graph.derived else source.get_manifest(identifier)
    return ImageInfo(
        name=f"{source.name}:{identifier}"
        if ":" not in identifier
        else f"{source.name}@{identifier}",
        digest=top.digest,
        media_type=top.media_type,
        size=top.size,
        images=_images(source, graph),
        referrers=len({d.digest for d in source.list_referrers(top.digest)}),
        nested_size=sum(m.size for m in graph.indexes),
    )


def _images(source: Repository, graph: ImageGraph) -> tuple[PlatformImage, ...]:
    """One summary per index entry chosen (each config read once), or the image itself."""
    by_digest = {m.digest: _image(source, m) for m in graph.images}
    if not graph.top.is_index and not graph.entries:
        return tuple(by_digest.values())
    return tuple(
        replace(by_digest[entry.digest], platform=str(entry.platform))
        if entry.platform
        else by_digest[entry.digest]
        for entry in graph.entries
    )


def _image(source: Repository, manifest: Manifest) -> PlatformImage:
    """The image's summary; its platform from the config (an index entry's wins later)."""
    config = _config(source, manifest.config) if manifest.config else {}
    inner = _object(config.get("config"))
    parts = [_string(config.get(k)) for k in ("os", "architecture", "variant")]
    return PlatformImage(
        platform="/".join(p for p in parts if p),
        digest=manifest.digest,
        media_type=manifest.media_type,
        size=manifest.size + (manifest.config.size if manifest.config else 0),
        created=_string(config.get("created")),
        labels=_labels(inner.get("Labels")),
        entrypoint=_strings(inner.get("Entrypoint")),
        cmd=_strings(inner.get("Cmd")),
        layers=tuple(Layer(d.digest, d.size, d.media_type) for d in manifest.layers),
    )


# The image spec's types; a config that breaks them (any tool can push one) is shown with
# those fields absent rather than guessed at.


def _object(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _labels(value: object) -> dict[str, str]:
    """``Labels``: an object of strings; entries of any other type are left out."""
    items = value.items() if isinstance(value, dict) else ()
    return {k: v for k, v in items if isinstance(k, str) and isinstance(v, str)}


def _strings(value: object) -> list[str]:
    """``Entrypoint`` / ``Cmd``: an array of strings, else absent (a bare string too)."""
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return list(value)
    return []


def _config(source: Repository, desc: Descriptor) -> dict[str, object]:
    """The image config as JSON; empty for artifacts whose config is not JSON (or is too
    deeply nested to parse).

    Raises:
        ManifestError: the config is announced larger than the limit.
        DigestMismatch: the bytes served do not match the descriptor's digest and size.
    """
    try:
        doc = json.loads(read_config(source, desc))
    except (ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}
