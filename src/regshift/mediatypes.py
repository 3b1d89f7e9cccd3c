"""Media types of manifests and blobs, and the predicates the copy logic needs."""

from __future__ import annotations

from enum import StrEnum


class MediaType(StrEnum):
    """The manifest and layer media types regshift understands."""

    DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
    DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
    DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
    DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
    DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
    OCI_INDEX = "application/vnd.oci.image.index.v1+json"
    OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
    OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
    OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
    OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
    OCI_EMPTY = "application/vnd.oci.empty.v1+json"


INDEX_TYPES = frozenset({MediaType.DOCKER_MANIFEST_LIST, MediaType.OCI_INDEX})
IMAGE_TYPES = frozenset({MediaType.DOCKER_MANIFEST, MediaType.OCI_MANIFEST})
SCHEMA1_TYPES = frozenset({MediaType.DOCKER_SCHEMA1, MediaType.DOCKER_SCHEMA1_SIGNED})

#: Every manifest type we can handle, best first: sent as ``Accept`` on every manifest request.
#: Without the schema-2 types, distribution down-converts to schema 1 (another digest), and with
#: only Docker types it answers 404 for OCI content (see shared/REGISTRY-NOTES.md).
MANIFEST_ACCEPT: tuple[str, ...] = (
    MediaType.OCI_INDEX,
    MediaType.DOCKER_MANIFEST_LIST,
    MediaType.OCI_MANIFEST,
    MediaType.DOCKER_MANIFEST,
)

FOREIGN_LAYER_TYPES = frozenset(
    {
        MediaType.DOCKER_FOREIGN_LAYER,
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


def is_index(media_type: str) -> bool:
    """Whether ``media_type`` is a multi-platform index (OCI index or Docker manifest list)."""
    return media_type in INDEX_TYPES


def is_image(media_type: str) -> bool:
    """Whether ``media_type`` is a single-image manifest (OCI or Docker schema 2)."""
    return media_type in IMAGE_TYPES


def is_manifest(media_type: str) -> bool:
    """Whether ``media_type`` is any manifest type regshift can store and move."""
    return is_index(media_type) or is_image(media_type)


def is_foreign(media_type: str) -> bool:
    """Whether a layer is non-distributable ("foreign"): registries need not hold its bytes."""
    return media_type in FOREIGN_LAYER_TYPES
