"""Plain ``http.client`` access to a registry: seeding images and checking results.

Deliberately independent of regshift (the thing being measured): seeding and every
correctness check go through this module, never through regshift or skopeo.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

MiB = 1024 * 1024

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

#: Every manifest type, so distribution serves what it stores instead of converting it
#: (no Accept: schema 1; only Docker types: 404 for OCI content; see REGISTRY-NOTES.md).
MANIFEST_ACCEPT = ", ".join(
    (
        OCI_INDEX,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)

_CHUNK = 8 * MiB


@dataclass(frozen=True, slots=True)
class Blob:
    """A blob to seed: its digest, size and a way to produce its bytes (more than once)."""

    digest: str
    size: int
    media_type: str
    chunks: Callable[[], Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class SeededImage:
    """What was pushed: the manifest (exact bytes) and its blobs, config first."""

    repository: str
    tag: str
    manifest: bytes
    media_type: str
    digest: str
    blobs: tuple[Blob, ...]

    @property
    def layers(self) -> tuple[Blob, ...]:
        return self.blobs[1:]

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blobs)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _random_chunks(seed: int, size: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    left = size
    while left:
        n = min(_CHUNK, left)
        yield rng.randbytes(n)
        left -= n


def random_blob(seed: int, size: int, media_type: str = OCI_LAYER) -> Blob:
    """A blob of ``size`` seeded random bytes, generated on demand in 8 MiB pieces.

    The bytes are produced twice (once to hash, once per upload), never held whole, so
    gigabyte layers cost no memory. ``random.randbytes`` cannot make 256 MiB at once.
    """
    hasher = hashlib.sha256()
    for chunk in _random_chunks(seed, size):
        hasher.update(chunk)
    return Blob(
        "sha256:" + hasher.hexdigest(), size, media_type, lambda: _random_chunks(seed, size)
    )


@dataclass(frozen=True, slots=True)
class TarEntry:
    """One member of a generated tar layer: content is ``size`` seeded random bytes."""

    name: str
    kind: bytes  # tarfile.REGTYPE, DIRTYPE, SYMTYPE or LNKTYPE
    size: int = 0
    seed: int = 0
    target: str = ""  # symlink / hard link target


def _tar_header(entry: TarEntry) -> bytes:
    info = tarfile.TarInfo(entry.name)
    info.type, info.size, info.linkname = entry.kind, entry.size, entry.target
    info.mode = 0o755 if entry.kind == tarfile.DIRTYPE else 0o644
    info.mtime, info.uid, info.gid = 1704067200, 0, 0  # 2024-01-01, numeric owner 0:0
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _tar_chunks(entries: tuple[TarEntry, ...]) -> Iterator[bytes]:
    for entry in entries:
        yield _tar_header(entry)
        if entry.size:
            yield from _random_chunks(entry.seed, entry.size)
            yield b"\0" * (-entry.size % 512)
    yield b"\0" * 1024


def tar_layer_entries(index: int, size: int, deletes: tuple[str, ...] = ()) -> list[TarEntry]:
    """The members of layer ``index``, a tar of exactly ``size`` bytes (a multiple of 512).

    Directory ``data{index}/`` holding a symlink ``link`` and a hard link ``hard`` to ``f00``,
    one whiteout (``.wh.NAME``) per path of ``deletes``, and files ``f00``, ``f01``, ... of
    seeded random content (at most 16 MiB each, at least 8 of them) filling the rest.
    """
    d = f"data{index}"
    fixed = [
        TarEntry(f"{d}/", tarfile.DIRTYPE),
        *(
            TarEntry(f"{p.rpartition('/')[0]}/.wh.{p.rpartition('/')[2]}", tarfile.REGTYPE)
            for p in deletes
        ),
    ]
    links = [
        TarEntry(f"{d}/link", tarfile.SYMTYPE, target="f00"),
        TarEntry(f"{d}/hard", tarfile.LNKTYPE, target=f"{d}/f00"),
    ]
    room = size - 512 * (len(fixed) + len(links)) - 1024
    unit = min(16 * MiB, size // 8)  # header + content of one file
    count = room // unit
    files = [
        TarEntry(f"{d}/f{i:02d}", tarfile.REGTYPE, unit - 512, seed=100 * index + i)
        for i in range(count)
    ]
    last = files[-1]
    files[-1] = TarEntry(last.name, last.kind, last.size + room - count * unit, last.seed)
    return [*fixed, files[0], *links, *files[1:]]


def tar_blob(entries: Iterable[TarEntry], media_type: str = OCI_LAYER) -> Blob:
    """An uncompressed tar layer of ``entries``, generated on demand (never held whole)."""
    members = tuple(entries)
    hasher, size = hashlib.sha256(), 0
    for chunk in _tar_chunks(members):
        hasher.update(chunk)
        size += len(chunk)
    return Blob("sha256:" + hasher.hexdigest(), size, media_type, lambda: _tar_chunks(members))


def bytes_blob(data: bytes, media_type: str) -> Blob:
    return Blob(sha256_digest(data), len(data), media_type, lambda: (data,))


def build_image(
    repository: str,
    tag: str,
    layers: list[Blob],
    *,
    label: str = "regshift-bench",
    platform: str = "linux/amd64",
) -> SeededImage:
    """An OCI image manifest over ``layers`` with a small config naming them."""
    os_name, architecture = platform.split("/")
    config = json.dumps(
        {
            "architecture": architecture,
            "os": os_name,
            "created": "2024-01-01T00:00:00Z",
            "config": {"Labels": {"org.regshift.bench": label}},
            "rootfs": {"type": "layers", "diff_ids": [b.digest for b in layers]},
        },
        separators=(",", ":"),
    ).encode()
    config_blob = bytes_blob(config, OCI_CONFIG)
    manifest = (
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": _descriptor(config_blob),
                "layers": [_descriptor(b) for b in layers],
            },
            indent=2,
        )
        + "\n"
    ).encode()
    return SeededImage(
        repository,
        tag,
        manifest,
        OCI_MANIFEST,
        sha256_digest(manifest),
        (config_blob, *layers),
    )


@dataclass(frozen=True, slots=True)
class SeededIndex:
    """An OCI image index over per-platform images (pushed by digest, the index by tag)."""

    repository: str
    tag: str
    manifest: bytes
    digest: str
    images: tuple[SeededImage, ...]
    media_type: str = OCI_INDEX

    @property
    def size(self) -> int:
        return sum(im.size for im in self.images)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return tuple(b for im in self.images for b in im.blobs)


def build_index(
    repository: str, tag: str, platforms: list[str], layers: int, layer_size: int, seed: int
) -> SeededIndex:
    """An index of one image per platform, each with ``layers`` random layers of its own."""
    images = tuple(
        build_image(
            repository,
            "",
            [random_blob(seed + 100 * i + j, layer_size) for j in range(layers)],
            label=f"{repository} {platform}",
            platform=platform,
        )
        for i, platform in enumerate(platforms)
    )
    manifests = []
    for platform, image in zip(platforms, images, strict=True):
        os_name, architecture = platform.split("/")
        manifests.append(
            {
                "mediaType": image.media_type,
                "digest": image.digest,
                "size": len(image.manifest),
                "platform": {"architecture": architecture, "os": os_name},
            }
        )
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    raw = (json.dumps(doc, indent=2) + "\n").encode()
    return SeededIndex(repository, tag, raw, sha256_digest(raw), images)


def _descriptor(blob: Blob) -> dict[str, object]:
    return {"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size}


@dataclass(frozen=True, slots=True)
class LayerListing:
    """What one pass over a layer found: the blob's digest, the sha256 of the uncompressed
    tar (its diff_id) and every member as ``name -> (type, size, link target)``."""

    digest: str
    diff_id: str
    members: dict[str, tuple[bytes, int, str]]


class _Unpacking:
    """A file-like reader over a (gzip) stream that hashes both sides as it goes."""

    def __init__(self, raw: Any, gzip: bool) -> None:
        self.raw, self.pending, self.pos = raw, b"", 0
        self.inflate = zlib.decompressobj(wbits=31) if gzip else None
        self.outer, self.inner = hashlib.sha256(), hashlib.sha256()

    def _more(self) -> bool:
        data = self.raw.read(1 << 20)
        if data:
            self.outer.update(data)
            out = self.inflate.decompress(data) if self.inflate is not None else data
        elif self.inflate is not None:
            out = self.inflate.flush()
        else:
            out = b""
        self.inner.update(out)
        self.pending, self.pos = self.pending[self.pos :] + out, 0
        return bool(data)

    def read(self, n: int = -1) -> bytes:
        while (n < 0 or len(self.pending) - self.pos < n) and self._more():
            pass
        end = len(self.pending) if n < 0 else self.pos + n
        out, self.pos = self.pending[self.pos : end], min(end, len(self.pending))
        return out

    def drain(self) -> None:
        while self._more():
            self.pending, self.pos = b"", 0


def list_layer(raw: Any, media_type: str) -> LayerListing:
    """Read a layer (plain tar or gzip) from the file-like ``raw`` in one streaming pass.

    Member names are normalised (no leading ``./``, no trailing ``/``; the root ``.`` left
    out). Raises ValueError for a compression this module does not read (zstd).
    """
    if "zstd" in media_type:
        raise ValueError(f"cannot read {media_type} with the standard library")
    stream = _Unpacking(raw, gzip=media_type.endswith("gzip"))
    members: dict[str, tuple[bytes, int, str]] = {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
        for info in tar:
            name = info.name.removeprefix("./").rstrip("/")
            if name and name != ".":
                members[name] = (info.type, info.size, info.linkname.removeprefix("./"))
    stream.drain()  # the tar's end blocks and any padding count for the digests too
    return LayerListing(
        "sha256:" + stream.outer.hexdigest(), "sha256:" + stream.inner.hexdigest(), members
    )


class RegistryIO:
    """One registry on loopback, spoken to with ``http.client`` (plain HTTP, no auth)."""

    def __init__(self, host: str) -> None:
        self.host = host

    def _conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, timeout=600)

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = self._conn()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    # -- writing ---------------------------------------------------------------------------

    def push_blob(self, repository: str, blob: Blob) -> None:
        """POST an upload session, then one streamed monolithic PUT (skipped if present)."""
        if self.blob_exists(repository, blob.digest):
            return
        status, headers, body = self._request("POST", f"/v2/{repository}/blobs/uploads/")
        if status != 202:
            raise RuntimeError(f"POST upload {repository}: HTTP {status}: {body[:200]!r}")
        location = urlsplit(headers["location"])
        target = f"{location.path}?{location.query}&digest={quote(blob.digest)}"
        conn = self._conn()
        try:
            conn.putrequest("PUT", target)
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Content-Length", str(blob.size))
            conn.endheaders()
            for chunk in blob.chunks():
                conn.send(chunk)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status != 201:
            raise RuntimeError(f"PUT blob {blob.digest}: HTTP {resp.status}: {data[:200]!r}")

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> None:
        status, _, body = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            body=raw,
            headers={"Content-Type": media_type},
        )
        if status != 201:
            raise RuntimeError(f"PUT manifest {repository}:{reference}: HTTP {status}: {body!r}")

    def push_image(self, image: SeededImage) -> None:
        for blob in image.blobs:
            self.push_blob(image.repository, blob)
        self.put_manifest(image.repository, image.tag, image.manifest, image.media_type)

    def push_index(self, index: SeededIndex) -> None:
        """Every platform's image by digest, then the index under its tag."""
        for image in index.images:
            for blob in image.blobs:
                self.push_blob(index.repository, blob)
            self.put_manifest(index.repository, image.digest, image.manifest, image.media_type)
        self.put_manifest(index.repository, index.tag, index.manifest, index.media_type)

    # -- checking --------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        status, _, _ = self._request("HEAD", f"/v2/{repository}/blobs/{digest}")
        return status == 200

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """sha256 of the manifest bytes the registry serves (``None`` if absent)."""
        status, _, body = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        return sha256_digest(body) if status == 200 else None

    def manifest_json(self, repository: str, reference: str) -> dict[str, Any] | None:
        """The manifest ``repository:reference`` as JSON (``None`` if absent)."""
        status, _, body = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        return json.loads(body) if status == 200 else None

    def blob_json(self, repository: str, digest: str) -> dict[str, Any]:
        """A small JSON blob (a config), checked against its digest."""
        status, _, body = self._request("GET", f"/v2/{repository}/blobs/{digest}")
        if status != 200 or sha256_digest(body) != digest:
            raise RuntimeError(f"GET blob {repository}@{digest}: HTTP {status} or wrong digest")
        doc: dict[str, Any] = json.loads(body)
        return doc

    def read_layer(self, repository: str, digest: str, media_type: str) -> LayerListing:
        """Stream one layer blob: its digest, its diff_id and its tar members."""
        conn = self._conn()
        try:
            conn.request("GET", f"/v2/{repository}/blobs/{digest}")
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError(f"GET blob {repository}@{digest}: HTTP {resp.status}")
            return list_layer(resp, media_type)
        finally:
            conn.close()

    def check_image(self, repository: str, reference: str, image: SeededImage) -> str:
        """Empty when ``repository:reference`` is ``image`` complete; else what is wrong."""
        found = self.manifest_digest(repository, reference)
        if found != image.digest:
            return f"manifest digest {found} != source {image.digest}"
        missing = [b.digest for b in image.blobs if not self.blob_exists(repository, b.digest)]
        if missing:
            return f"{len(missing)} blob(s) missing at destination, e.g. {missing[0]}"
        return ""

    def check_index(self, repository: str, reference: str, index: SeededIndex) -> str:
        """Empty when ``repository:reference`` is ``index`` with every platform's image
        complete (each fetched by its digest); else what is wrong."""
        found = self.manifest_digest(repository, reference)
        if found != index.digest:
            return f"index digest {found} != source {index.digest}"
        for image in index.images:
            problem = self.check_image(repository, image.digest, image)
            if problem:
                return f"platform image {image.digest[:19]}: {problem}"
        return ""
