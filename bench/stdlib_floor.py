"""The Python floor of each benchmark case: the same requests from the standard library alone.

    stdlib_floor.py retag URL NEW_TAG REPO:TAG
    stdlib_floor.py promote URL NEW_TAG REPO:TAG [REPO:TAG ...]
    stdlib_floor.py copy SRC DST          (HOST/REPO:TAG each; an index: every platform)

What no Python program can avoid for the same work: the interpreter's start-up, importing
``http.client`` (which brings ``ssl`` and ``email``), ``json``, ``hashlib`` and a thread
pool, and the requests themselves, sent with regshift's concurrency (4 at once on this
machine's two cores: ``transport.default_jobs``), one keep-alive connection per thread
and registry. It sends the request set regshift sends for the case (a copy: HEAD at the
destination, then a mount within one registry, else GET, POST and one streamed PUT per
blob, verified by sha256; a HEAD of each manifest at the destination; children before the
index), and nothing else: no argument parser, no authentication, no retries, no progress,
no checks beyond the HTTP status and the blob digests. bench.py times it beside regshift
and the Go peers, so a target below it is a target below what Python can do here, and the
gap between it and regshift is regshift's own cost (click, its modules, its checks).

Plain HTTP only: the benchmark's registries are on loopback.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

JOBS = 4
CHUNK = 1024 * 1024
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
_local = threading.local()


def _connection(host: str) -> http.client.HTTPConnection:
    """This thread's keep-alive connection to ``host``."""
    connections: dict[str, http.client.HTTPConnection] = _local.__dict__.setdefault("c", {})
    if host not in connections:
        connections[host] = http.client.HTTPConnection(host, timeout=600)
    return connections[host]


def _send(
    host: str,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
    expect: tuple[int, ...] = (200,),
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = _connection(host)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    if response.status not in expect:
        raise SystemExit(f"{method} {host}{path}: HTTP {response.status}")
    return response, data


def _split(ref: str) -> tuple[str, str, str]:
    host, rest = ref.split("/", 1)
    repo, tag = rest.rsplit(":", 1)
    return host, repo, tag


def retag(url: str, new_tag: str, *sources: str) -> None:
    """GET each manifest and PUT the same bytes under ``new_tag``, ``JOBS`` at once."""
    host = urlsplit(url).netloc

    def one(source: str) -> None:
        repo, tag = source.rsplit(":", 1)
        got, raw = _send(host, "GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
        kind = got.getheader("Content-Type") or ""
        put = f"/v2/{repo}/manifests/{new_tag}"
        _send(host, "PUT", put, raw, {"Content-Type": kind}, expect=(201,))

    _parallel(one, sources)


def _parallel(work: Callable[[str], None], items: Iterable[str]) -> None:
    items = list(items)
    if len(items) == 1:
        work(items[0])
        return
    with ThreadPoolExecutor(JOBS) as pool:
        for _ in pool.map(work, items):
            pass


class Copy:
    """One image or index from SRC to DST: manifests in order, every blob ``JOBS`` at once."""

    def __init__(self, src: str, dst: str) -> None:
        self.src_host, self.src_repo, tag = _split(src)
        self.dst_host, self.dst_repo, self.dst_tag = _split(dst)
        self.src_tag = tag
        self.same = self.src_host == self.dst_host

    def run(self) -> None:
        got, raw = self._get_manifest(self.src_tag)
        self._head_manifest(self.dst_tag)
        doc: dict[str, Any] = json.loads(raw)
        children: list[tuple[str, http.client.HTTPResponse, bytes]] = []
        if "manifests" in doc:  # an index: every platform's image, then the index
            for entry in doc["manifests"]:
                child, child_raw = self._get_manifest(entry["digest"])
                self._head_manifest(entry["digest"])
                children.append((entry["digest"], child, child_raw))
        images = [json.loads(r) for _, _, r in children] if children else [doc]
        _parallel(self._blob, [d for image in images for d in _blob_digests(image)])
        for digest, child, child_raw in children:
            self._put_manifest(digest, child_raw, child.getheader("Content-Type") or "")
        self._put_manifest(self.dst_tag, raw, got.getheader("Content-Type") or "")

    def _blob(self, digest: str) -> None:
        head, _ = self._dst("HEAD", f"/blobs/{digest}", expect=(200, 404))
        if head.status == 200:
            return
        if self.same:
            query = f"?mount={digest}&from={self.src_repo}"
            self._dst("POST", f"/blobs/uploads/{query}", expect=(201,))
            return
        started, _ = self._dst("POST", "/blobs/uploads/", expect=(202,))
        location = urlsplit(started.getheader("Location") or "")
        conn = _connection(self.src_host)
        conn.request("GET", f"/v2/{self.src_repo}/blobs/{digest}")
        source = conn.getresponse()
        if source.status != 200:
            raise SystemExit(f"GET blob {digest}: HTTP {source.status}")
        hashed = hashlib.sha256()
        query = f"{location.query}&" if location.query else ""
        path = f"{location.path}?{query}digest={digest}"
        headers = {"Content-Type": "application/octet-stream"}
        _send(self.dst_host, "PUT", path, _hashing(source, hashed), headers, expect=(201,))
        if f"sha256:{hashed.hexdigest()}" != digest:
            raise SystemExit(f"blob {digest}: the bytes read hash differently")

    def _get_manifest(self, ref: str) -> tuple[http.client.HTTPResponse, bytes]:
        path = f"/v2/{self.src_repo}/manifests/{ref}"
        return _send(self.src_host, "GET", path, headers={"Accept": ACCEPT})

    def _head_manifest(self, ref: str) -> None:
        self._dst("HEAD", f"/manifests/{ref}", headers={"Accept": ACCEPT}, expect=(200, 404))

    def _put_manifest(self, ref: str, raw: bytes, kind: str) -> None:
        self._dst("PUT", f"/manifests/{ref}", raw, {"Content-Type": kind}, expect=(201,))

    def _dst(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> tuple[http.client.HTTPResponse, bytes]:
        return _send(self.dst_host, method, f"/v2/{self.dst_repo}{path}", body, headers, expect)


def _blob_digests(manifest: dict[str, Any]) -> list[str]:
    return [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]


def _hashing(source: http.client.HTTPResponse, hashed: Any) -> Iterator[bytes]:
    """The source blob in chunks, hashed on the way (sent with chunked encoding)."""
    while chunk := source.read(CHUNK):
        hashed.update(chunk)
        yield chunk


def main(argv: list[str]) -> None:
    if len(argv) >= 4 and argv[0] in ("retag", "promote"):
        retag(argv[1], argv[2], *argv[3:])
    elif len(argv) == 3 and argv[0] == "copy":
        Copy(argv[1], argv[2]).run()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
