"""One result image, planned: its layers and where each comes from, its config, its
manifest; and the index over several of them.

Media types: a result whose inputs are all Docker schema 2 stays Docker (config and layer
types); otherwise it is OCI, and Docker layer types become their OCI twins (the same blob
bytes, so the same digests). Foreign layers keep their ``urls`` and are never copied.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..digests import compute_digest
from ..layerfs.reading import file_chunks
from ..manifests import Descriptor, Manifest, Platform, encode_document, parse_manifest
from ..mediatypes import MediaType
from .configs import JSONObject

if TYPE_CHECKING:
    from ..storage import Repository

_FOREIGN_OCI_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
_OCI_TWINS = {
    MediaType.DOCKER_LAYER: MediaType.OCI_LAYER_GZIP,
    MediaType.DOCKER_FOREIGN_LAYER: _FOREIGN_OCI_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": MediaType.OCI_LAYER,
}
_DOCKER_TWINS = {
    MediaType.OCI_LAYER_GZIP: MediaType.DOCKER_LAYER,
    _FOREIGN_OCI_GZIP: MediaType.DOCKER_FOREIGN_LAYER,
}


class LocalBlobs:
    """Blobs made by the build (configs, in memory) or given as files (new layers), read
    like a source repository's blobs by the copy machinery, which uploads them verified.
    Only what a copy reads of its source is here: ``name``, ``endpoint``, ``open_blob``."""

    name = "local"
    endpoint = None
    identifier = None

    def __init__(self) -> None:
        self._data: dict[str, bytes | Path] = {}

    def add(self, digest: str, content: bytes | Path) -> None:
        self._data.setdefault(digest, content)

    @contextlib.contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[Iterator[bytes]]:
        content = self._data[desc.digest]
        if isinstance(content, bytes):
            yield iter((content,))
            return
        with content.open("rb") as file:
            yield file_chunks(file)


@dataclass(frozen=True, slots=True)
class PlannedLayer:
    """A layer of the result: its descriptor as an input lists it, its diff_id, and where
    its blob is (``where`` names it in the plan)."""

    descriptor: Descriptor
    diff_id: str
    source: Repository | LocalBlobs
    where: str


@dataclass(frozen=True, slots=True)
class ImagePlan:
    """One result image before it is written.

    Attributes:
        platform: its platform (None: a single image whose config names none).
        entry: the index entry of the first input (platform and annotations to keep).
        config: the new config document.
        layers: its layers, in order.
        annotations: the manifest's annotations.
        docker: write Docker schema 2 types (every input was Docker, nothing needs OCI).
    """

    platform: Platform | None
    entry: Descriptor | None
    config: JSONObject
    layers: tuple[PlannedLayer, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    docker: bool = False


@dataclass(frozen=True, slots=True)
class Composed:
    """An image plan made concrete: config bytes, its descriptor, the manifest."""

    plan: ImagePlan
    config: bytes
    config_descriptor: Descriptor
    manifest: Manifest

    def layer_descriptors(self) -> list[Descriptor]:
        return list(self.manifest.layers)


def layer_type(media_type: str, docker: bool) -> str:
    """The layer media type in a Docker or OCI result."""
    if docker:
        return _DOCKER_TWINS.get(media_type, media_type)
    return _OCI_TWINS.get(media_type, media_type)


def has_docker_twin(media_type: str) -> bool:
    return media_type.startswith("application/vnd.docker.") or media_type in _DOCKER_TWINS


def manifest_annotations(manifest: Manifest) -> dict[str, str]:
    """The ``annotations`` of a manifest (parsed from its bytes; not in the typed view)."""
    found = json.loads(manifest.raw).get("annotations")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def compose(plan: ImagePlan) -> Composed:
    """The config bytes and the manifest of one planned image, in regshift's JSON form."""
    config = encode_document(plan.config)
    config_type = MediaType.DOCKER_CONFIG if plan.docker else MediaType.OCI_CONFIG
    config_desc = Descriptor(str(config_type), compute_digest(config), len(config))
    layers = [
        _descriptor_doc(layer.descriptor, layer_type(layer.descriptor.media_type, plan.docker))
        for layer in plan.layers
    ]
    media_type = MediaType.DOCKER_MANIFEST if plan.docker else MediaType.OCI_MANIFEST
    doc: JSONObject = {
        "schemaVersion": 2,
        "mediaType": str(media_type),
        "config": _descriptor_doc(config_desc, config_desc.media_type),
        "layers": layers,
    }
    if plan.annotations and not plan.docker:
        doc["annotations"] = dict(plan.annotations)
    return Composed(plan, config, config_desc, parse_manifest(encode_document(doc), media_type))


def compose_index(
    images: Sequence[Composed], docker: bool, annotations: Mapping[str, str]
) -> Manifest:
    """An index of the result images, each entry with its platform and the first input's
    entry annotations."""
    entries = []
    for image in images:
        entry: JSONObject = {
            "mediaType": image.manifest.media_type,
            "digest": image.manifest.digest,
            "size": image.manifest.size,
        }
        if image.plan.platform is not None:
            entry["platform"] = _platform_doc(image.plan.platform)
        kept = image.plan.entry.annotations if image.plan.entry is not None else {}
        if kept and not docker:
            entry["annotations"] = dict(kept)
        entries.append(entry)
    media_type = MediaType.DOCKER_MANIFEST_LIST if docker else MediaType.OCI_INDEX
    doc: JSONObject = {"schemaVersion": 2, "mediaType": str(media_type), "manifests": entries}
    if annotations and not docker:
        doc["annotations"] = dict(annotations)
    return parse_manifest(encode_document(doc), media_type)


def _descriptor_doc(desc: Descriptor, media_type: str) -> JSONObject:
    doc: dict[str, Any] = {"mediaType": media_type, "digest": desc.digest, "size": desc.size}
    if desc.urls:
        doc["urls"] = list(desc.urls)
    if desc.annotations:
        doc["annotations"] = dict(desc.annotations)
    return doc


def _platform_doc(platform: Platform) -> JSONObject:
    doc: JSONObject = {"architecture": platform.architecture, "os": platform.os}
    if platform.os_version:
        doc["os.version"] = platform.os_version
    if platform.variant:
        doc["variant"] = platform.variant
    return doc
