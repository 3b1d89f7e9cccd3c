"""Manifests as registries store them: the exact bytes, plus a typed view for walking them.

A :class:`Manifest` always keeps ``raw``, the bytes as the registry served them; its digest is
the sha256 of those bytes. regshift never re-serialises a manifest it did not create, so the
parsed view (descriptors, platforms) is read-only information for planning a copy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .digests import compute_digest, split_digest
from .errors import InvalidReference, ManifestError, UnsupportedMediaType
from .mediatypes import MediaType, is_index, is_manifest

#: Registries must accept manifests of at least 4 MiB (distribution-spec); we refuse larger ones.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_MAX_DESCRIPTORS = 10_000


# Other spellings of one platform, as containerd's platforms.Normalize (database.go) reads
# them, so `--platform` means what it means to docker, podman and containerd.
_OS_ALIASES = {"macos": "darwin"}
#: architecture alias -> (architecture, the variant it implies, or None to keep the given one)
_ARCH_ALIASES: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None),
    "x86-64": ("amd64", None),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "aarch64": ("arm64", None),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
}
#: architecture -> variant spelling -> canonical variant ("" is the base of the architecture)
_VARIANT_ALIASES: dict[str, dict[str, str]] = {
    "amd64": {"v1": ""},
    "arm64": {"8": "", "v8": ""},
    "arm": {"": "v7", "7": "v7", "5": "v5", "6": "v6", "8": "v8"},
}


@dataclass(frozen=True, slots=True)
class Platform:
    """The platform of an index entry: ``os/architecture[/variant]``, and for Windows images
    ``os.version`` and ``os.features`` (kept, but not compared by :meth:`matches`)."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]``.

        Raises:
            ValueError: the text is not of that form.
        """
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else "")

    def normalized(self) -> Platform:
        """The canonical spelling, as docker and containerd compare platforms.

        Lower case; ``macos`` is ``darwin``; ``x86_64``/``x86-64`` are ``amd64`` (``amd64/v1``
        is plain ``amd64``); ``i386``/``i686`` are ``386``; ``aarch64`` is ``arm64`` and its
        ``v8`` is the base (plain ``arm64``); ``armhf`` is ``arm/v7``, ``armel`` is ``arm/v6``;
        ``arm`` without a variant is ``arm/v7``, and a bare number variant gains its ``v``.
        """
        os = self.os.lower()
        arch, variant = self.architecture.lower(), self.variant.lower()
        arch, forced = _ARCH_ALIASES.get(arch, (arch, None))
        variant = forced if forced is not None else variant
        variant = _VARIANT_ALIASES.get(arch, {}).get(variant, variant)
        return Platform(
            os=_OS_ALIASES.get(os, os),
            architecture=arch,
            variant=variant,
            os_version=self.os_version,
            os_features=self.os_features,
        )

    def matches(self, wanted: Platform) -> bool:
        """Whether this platform is ``wanted``, both compared in normalised form
        (:meth:`normalized`): ``linux/arm64/v8`` is ``linux/arm64``, ``linux/arm`` is
        ``linux/arm/v7``. A variant is part of the platform: ``linux/amd64`` is not
        ``linux/amd64/v3``. ``os.version`` is not compared."""
        mine, theirs = self.normalized(), wanted.normalized()
        return (mine.os, mine.architecture, mine.variant) == (
            theirs.os,
            theirs.architecture,
            theirs.variant,
        )


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor: what a manifest says about a blob or child manifest."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    artifact_type: str = ""


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest: its exact bytes, media type and digest, plus parsed descriptors.

    Attributes:
        raw: the bytes exactly as stored; PUT these, never a re-encoding.
        media_type: the manifest's media type (``Content-Type`` to send on PUT).
        digest: sha256 of ``raw``.
        config: the config descriptor of an image manifest (None for an index).
        layers: layer descriptors of an image manifest.
        manifests: child descriptors of an index.
        subject: the ``subject`` descriptor, when the manifest refers to another one.
    """

    raw: bytes = field(repr=False)
    media_type: str
    digest: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str = ""

    @property
    def is_index(self) -> bool:
        """Whether this is a multi-platform index / manifest list."""
        return is_index(self.media_type)

    @property
    def size(self) -> int:
        """Size of the raw bytes."""
        return len(self.raw)

    def blobs(self) -> tuple[Descriptor, ...]:
        """Config then layers: every blob an image manifest needs."""
        return ((self.config,) if self.config else ()) + self.layers

    def descriptor(self) -> Descriptor:
        """A descriptor pointing at this manifest."""
        return Descriptor(media_type=self.media_type, digest=self.digest, size=self.size)


def encode_document(doc: Mapping[str, object]) -> bytes:
    """The one JSON form of the documents regshift creates (configs, manifests, indexes):
    compact, keys in the order given, UTF-8, so the same inputs always give the same bytes
    and digest. Documents regshift did not create are never re-serialised."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def parse_manifest(raw: bytes, content_type: str = "") -> Manifest:
    """Parse manifest bytes, keeping them verbatim.

    The media type is the document's ``mediaType`` field, else ``content_type``
    (the OCI image-spec lets ``mediaType`` be omitted).

    Raises:
        ManifestError: too large, not JSON, or structurally invalid.
        UnsupportedMediaType: not an image manifest or index (e.g. Docker schema 1).
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is {len(raw)} bytes, above the {MAX_MANIFEST_BYTES} limit")
    doc = _load_json(raw)
    media_type = _media_type(doc, content_type)
    digest = compute_digest(raw)
    if is_index(media_type):
        children = tuple(_descriptor(d) for d in _list(doc, "manifests"))
        return Manifest(
            raw=raw,
            media_type=media_type,
            digest=digest,
            manifests=children,
            subject=_optional_descriptor(doc, "subject"),
            artifact_type=_str(doc, "artifactType"),
        )
    config = doc.get("config")
    if not isinstance(config, dict):
        raise ManifestError("image manifest has no config descriptor")
    return Manifest(
        raw=raw,
        media_type=media_type,
        digest=digest,
        config=_descriptor(config),
        layers=tuple(_descriptor(d) for d in _list(doc, "layers")),
        subject=_optional_descriptor(doc, "subject"),
        artifact_type=_str(doc, "artifactType"),
    )


def _load_json(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    return doc


def _media_type(doc: dict[str, Any], content_type: str) -> str:
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestError("manifest mediaType is not a string")
    header = content_type.split(";", 1)[0].strip()
    media_type = declared or header
    if doc.get("schemaVersion") == 1 or media_type in (
        MediaType.DOCKER_SCHEMA1,
        MediaType.DOCKER_SCHEMA1_SIGNED,
    ):
        raise UnsupportedMediaType("Docker schema 1 manifests are not supported")
    if not media_type and "manifests" in doc:
        media_type = MediaType.OCI_INDEX
    if not is_manifest(media_type):
        raise UnsupportedMediaType(f"unsupported manifest media type {media_type or '(none)'!r}")
    return media_type


def _list(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ManifestError(f"manifest field {key!r} is not a list of descriptors")
    if len(value) > _MAX_DESCRIPTORS:
        raise ManifestError(
            f"manifest field {key!r} has {len(value)} entries (limit {_MAX_DESCRIPTORS})"
        )
    return value


def _str(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str):
        raise ManifestError(f"manifest field {key!r} is not a string")
    return value


def _optional_descriptor(doc: dict[str, Any], key: str) -> Descriptor | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ManifestError(f"manifest field {key!r} is not a descriptor")
    return _descriptor(value)


def _descriptor(d: dict[str, Any]) -> Descriptor:
    media_type, digest, size = d.get("mediaType", ""), d.get("digest"), d.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str):
        raise ManifestError("descriptor has no valid mediaType/digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"descriptor {digest} has an invalid size {size!r}")
    try:
        split_digest(digest)
    except InvalidReference as exc:
        raise ManifestError(f"descriptor has an invalid digest: {exc}") from None
    urls = d.get("urls") or []
    annotations = d.get("annotations") or {}
    if not isinstance(urls, list) or not isinstance(annotations, dict):
        raise ManifestError(f"descriptor {digest} has invalid urls/annotations")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        platform=platform_of(d.get("platform")),
        urls=tuple(str(u) for u in urls),
        annotations={str(k): str(v) for k, v in annotations.items()},
        artifact_type=str(d.get("artifactType", "")),
    )


def platform_of(p: object) -> Platform | None:
    """A descriptor's ``platform`` object as a :class:`Platform` (``None`` when absent).

    Raises:
        ManifestError: it is not a JSON object.
    """
    if p is None:
        return None
    if not isinstance(p, dict):
        raise ManifestError("descriptor platform is not an object")
    features = p.get("os.features")
    features = features if isinstance(features, list) else []  # informational: never fatal
    return Platform(
        os=str(p.get("os", "")),
        architecture=str(p.get("architecture", "")),
        variant=str(p.get("variant", "")),
        os_version=str(p.get("os.version", "")),
        os_features=tuple(str(f) for f in features),
    )
