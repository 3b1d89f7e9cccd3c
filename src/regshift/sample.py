"""Seeded random images for demos, tests and benchmarks (like go-containerregistry's ``random``).

Everything is deterministic for a given seed, so two runs build byte-identical images.
Layers are real gzip-compressed tar files (one random file each) unless ``raw_layers`` is
set, which skips compression for large benchmark images.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .client import Client
from .digests import compute_digest
from .manifests import Manifest, Platform, parse_manifest
from .mediatypes import MediaType
from .reference import Reference

_CREATED = "2024-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True)
class SampleImage:
    """An image manifest and the blobs (config first, then layers) it needs."""

    manifest: Manifest
    blobs: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class SampleIndex:
    """A multi-platform index and its images."""

    manifest: Manifest
    images: tuple[SampleImage, ...]


def _encode(doc: Mapping[str, object], pretty: bool) -> bytes:
    if pretty:
        return (json.dumps(doc, indent=2) + "\n").encode()
    return json.dumps(doc, separators=(",", ":")).encode()


def _layer(rng: random.Random, size: int, raw: bool) -> tuple[bytes, str]:
    """A layer blob and its uncompressed digest (diff_id)."""
    # randbytes() takes at most 2**31 bits at once: build large layers piecewise.
    step = 64 * 1024 * 1024
    payload = b"".join(rng.randbytes(min(step, size - i)) for i in range(0, size, step))
    if raw:
        return payload, compute_digest(payload)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(f"data-{hashlib.sha256(payload).hexdigest()[:12]}")
        info.size, info.mtime, info.mode = size, 0, 0o644
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = buf.getvalue()
    return gzip.compress(tar_bytes, compresslevel=1, mtime=0), compute_digest(tar_bytes)


def random_image(
    *,
    seed: int = 0,
    layers: int = 2,
    layer_size: int = 1024,
    platform: Platform | None = None,
    docker: bool = False,
    pretty: bool | None = None,
    raw_layers: bool = False,
) -> SampleImage:
    """Build an image with ``layers`` random layers.

    Args:
        seed: makes the image reproducible.
        layers: number of layers.
        layer_size: bytes of random content per layer.
        platform: os/architecture recorded in the config (default linux/amd64).
        docker: Docker schema 2 media types instead of OCI.
        pretty: indent the manifest and end it with a newline (default: OCI yes, Docker no).
        raw_layers: use the random bytes as layers directly (no tar/gzip).
    """
    rng = random.Random(seed)
    plat = platform or Platform("linux", "amd64")
    blobs = [_layer(rng, layer_size, raw_layers) for _ in range(layers)]
    config = {
        "architecture": plat.architecture,
        "os": plat.os,
        **({"variant": plat.variant} if plat.variant else {}),
        "created": _CREATED,
        "config": {"Labels": {"org.regshift.sample.seed": str(seed)}},
        "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in blobs]},
        "history": [
            {"created": _CREATED, "created_by": f"regshift sample layer {i}"} for i in range(layers)
        ],
    }
    config_bytes = _encode(config, pretty=False)
    types = _types(docker, raw_layers)
    doc = {
        "schemaVersion": 2,
        "mediaType": types["manifest"],
        "config": {
            "mediaType": types["config"],
            "digest": compute_digest(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": types["layer"], "digest": compute_digest(b), "size": len(b)}
            for b, _ in blobs
        ],
    }
    raw = _encode(doc, pretty if pretty is not None else not docker)
    return SampleImage(parse_manifest(raw), (config_bytes, *(b for b, _ in blobs)))


def _types(docker: bool, raw_layers: bool) -> dict[str, str]:
    if docker:
        return {
            "manifest": MediaType.DOCKER_MANIFEST,
            "config": MediaType.DOCKER_CONFIG,
            "layer": MediaType.DOCKER_LAYER,
        }
    layer = MediaType.OCI_LAYER if raw_layers else MediaType.OCI_LAYER_GZIP
    return {"manifest": MediaType.OCI_MANIFEST, "config": MediaType.OCI_CONFIG, "layer": layer}


def random_index(
    *,
    seed: int = 0,
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64/v8"),
    layers: int = 2,
    layer_size: int = 1024,
    docker: bool = False,
    pretty: bool | None = None,
) -> SampleIndex:
    """Build a multi-platform index (OCI index, or Docker manifest list with ``docker``)."""
    images = tuple(
        random_image(
            seed=seed * 1000 + i,
            layers=layers,
            layer_size=layer_size,
            platform=Platform.parse(p),
            docker=docker,
        )
        for i, p in enumerate(platforms)
    )
    doc = {
        "schemaVersion": 2,
        "mediaType": MediaType.DOCKER_MANIFEST_LIST if docker else MediaType.OCI_INDEX,
        "manifests": [
            _entry(img, Platform.parse(p)) for img, p in zip(images, platforms, strict=True)
        ],
    }
    raw = _encode(doc, pretty if pretty is not None else not docker)
    return SampleIndex(parse_manifest(raw), images)


def _entry(image: SampleImage, platform: Platform) -> dict[str, object]:
    plat: dict[str, str] = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        plat["variant"] = platform.variant
    m = image.manifest
    return {"mediaType": m.media_type, "digest": m.digest, "size": m.size, "platform": plat}


def push_sample(client: Client, ref: Reference, sample: SampleImage | SampleIndex) -> str:
    """Upload a sample: blobs, then manifests by digest, then the tag last. Returns the digest."""
    images = sample.images if isinstance(sample, SampleIndex) else (sample,)
    for image in images:
        for blob in image.blobs:
            if not client.blob_exists(ref, compute_digest(blob), scopes=[ref.scope("pull,push")]):
                client.put_blob(ref, blob)
        if isinstance(sample, SampleIndex):
            client.put_manifest(ref.with_digest(image.manifest.digest), image.manifest)
    client.put_manifest(ref, sample.manifest)
    return sample.manifest.digest
