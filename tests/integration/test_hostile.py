"""Hostile registries: every answer is bounded and refused with one clear line.

A registry (or something pretending to be one) may send oversized, endless, malformed or
lying documents, point uploads and pagination at other hosts, or redirect downloads. regshift
must read a bounded amount, print one short ``regshift: error:`` line with a documented exit
code, write nothing at the destination, and never hand credentials to another host nor print
them (also not with ``--debug``).

Faults come from :class:`~harness.proxy.FaultProxy` in front of a real registry, or, for
bodies without ``Content-Length`` that never end, from :class:`HostileServer` below.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from regshift import MediaType, Reference, parse_manifest
from regshift.sample import SampleImage, random_image, random_index

from harness.proxy import FaultProxy, HeaderRecorder, Respond, RewriteHeader, Rule
from harness.registry import RegistryServer
from support import SECRETS, CliResult, run_cli, run_cli_process, seed, write_docker_config

MiB = 1024 * 1024
ACCEPT = ", ".join(
    [
        MediaType.OCI_INDEX,
        MediaType.DOCKER_MANIFEST_LIST,
        MediaType.OCI_MANIFEST,
        MediaType.DOCKER_MANIFEST,
    ]
)
JSON = [("Content-Type", "application/json")]
OCI_MANIFEST = [("Content-Type", MediaType.OCI_MANIFEST)]
MAX_LINE = 1024  # an error line longer than this is not "short"
ENDLESS_CAP = 64 * MiB  # what HostileServer sends at most of an "endless" body
READ_BOUND = 24 * MiB  # far above 4 MiB + the socket buffers of a peer that stopped reading


def compute_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# a registry that never stops talking
# --------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted answer.

    ``repeat`` makes the body endless: it is sent chunked (no ``Content-Length``) after
    ``body``, again and again until the server's cap, then ``tail`` ends it.
    """

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    repeat: bytes = b""
    tail: bytes = b""


class _HostileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _HostileHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        owner.record(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        reply = owner.script(self.command, self.path)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            if self.command == "HEAD":
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if not reply.repeat:
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                owner.count(len(reply.body))
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._chunk(reply.body)
            while owner.sent < ENDLESS_CAP:
                self._chunk(reply.repeat)
            self._chunk(reply.tail)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the client hung up: exactly what we hope for

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
            self.server.owner.count(len(data))

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _answer


class _HostileHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: HostileServer


class HostileServer:
    """A loopback HTTP/1.1 "registry" answering every request from ``script(method, path)``.

    ``sent`` counts the body bytes the client accepted (the socket took them).
    """

    def __init__(self, script: Callable[[str, str], Reply]) -> None:
        self.script = script
        self.sent = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._httpd = _HostileHTTPServer(("127.0.0.1", 0), _HostileHandler)
        self._httpd.owner = self
        self.host = f"127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def record(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((method, path, headers))

    def count(self, n: int) -> None:
        with self._lock:
            self.sent += n


# --------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def proxy(open_registry: RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(open_registry.host) as p:
        yield p
    assert p.errors == []


@pytest.fixture
def recorder() -> Iterator[HeaderRecorder]:
    """Another host, which must never hear from regshift unless a test says so."""
    with HeaderRecorder() as r:
        yield r


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[:2000]
    assert lines[0].startswith("regshift: error: ")
    assert len(lines[0]) < MAX_LINE, f"error line of {len(lines[0])} characters"
    return lines[0]


def _no_writes(*registries: RegistryServer) -> None:
    for registry in registries:
        writes = [r for r in registry.requests() if r.method in ("PUT", "POST", "PATCH")]
        assert writes == [], f"written at {registry.host}: {writes}"


def _tag_absent(registry: RegistryServer, repo: str, tag: str) -> None:
    response = httpx.head(f"{registry.url}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
    assert response.status_code == 404, f"{repo}:{tag} must not exist"


def _manifest_json(**extra: object) -> bytes:
    """A structurally valid OCI image manifest document (its blobs need not exist)."""
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MediaType.OCI_MANIFEST,
        "config": {
            "mediaType": MediaType.OCI_CONFIG,
            "digest": compute_digest(b"{}"),
            "size": 2,
        },
        "layers": [],
    }
    doc.update(extra)
    return json.dumps(doc).encode()


def _run(command: str, src: str, dst: str, *flags: str) -> Any:
    if command == "tag":
        return run_cli("tag", *flags, src, "hostile")
    if command == "copy":
        return run_cli("copy", *flags, src, dst)
    return run_cli("manifest", *flags, src)


# --------------------------------------------------------------------------------------------
# oversized and endless manifests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["tag", "copy", "manifest"])
def test_manifest_above_4mib_is_refused(
    command: str,
    proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    seed(open_registry.host, repo_name, "v1", random_image(seed=951))
    huge = _manifest_json(annotations={"padding": "x" * (5 * MiB)})
    proxy.add_rule(Rule(method="GET", path="/manifests/", action=Respond(200, OCI_MANIFEST, huge)))
    open_registry.mark()
    other_registry.mark()
    result = _run(command, f"{proxy.host}/{repo_name}:v1", f"{other_registry.host}/{repo_name}")
    assert result.code == 1
    line = _one_line(result.stderr)
    assert "above the 4194304 limit" in line
    assert result.stdout == ""
    _no_writes(open_registry, other_registry)
    _tag_absent(other_registry, repo_name, "v1")


def test_manifest_with_lying_content_length_is_refused_at_once(
    proxy: FaultProxy, open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """``Content-Length`` says 5 MiB, the body is small and then nothing: don't wait for it."""
    image = random_image(seed=952)
    seed(open_registry.host, repo_name, "v1", image)
    headers = [*OCI_MANIFEST, ("Content-Length", str(5 * MiB))]
    proxy.add_rule(
        Rule(method="GET", path="/manifests/", action=Respond(200, headers, image.manifest.raw))
    )
    other_registry.mark()
    start = time.monotonic()
    result = run_cli("copy", f"{proxy.host}/{repo_name}:v1", f"{other_registry.host}/{repo_name}")
    assert time.monotonic() - start < 5, "waited for a body that was never going to come"
    assert result.code == 1
    assert "limit" in _one_line(result.stderr)
    _no_writes(other_registry)


@pytest.mark.parametrize("command", ["copy", "manifest"])
def test_endless_manifest_is_cut_at_the_limit(command: str, repo_name: str) -> None:
    """No ``Content-Length`` and a body that never ends: stop reading after 4 MiB."""
    start = b'{"schemaVersion":2,"mediaType":"' + MediaType.OCI_MANIFEST.encode() + b'","x":"'
    endless = Reply(200, list(OCI_MANIFEST), start, repeat=b"x" * 65536, tail=b'"}')
    with HostileServer(lambda method, path: endless) as server:
        result = _run(command, f"{server.host}/{repo_name}:v1", f"{server.host}/{repo_name}-b")
        methods = [m for m, _, _ in server.requests]
    assert result.code == 1
    assert "limit" in _one_line(result.stderr)
    assert server.sent < READ_BOUND, f"regshift read {server.sent} bytes of an endless manifest"
    assert set(methods) <= {"GET", "HEAD"}, "nothing may be written"


# --------------------------------------------------------------------------------------------
# oversized error bodies
# --------------------------------------------------------------------------------------------


def _error_json(message: str, *, code: str = "MANIFEST_INVALID", pad: int = 0) -> bytes:
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]})
    return body.encode() + b" " * pad


@pytest.mark.parametrize(
    ("method", "status", "body"),
    [
        # 1 MiB of JSON: unparsable once cut at 64 KiB.
        ("GET", 500, _error_json("x" * MiB)),
        ("PUT", 500, _error_json("x" * MiB)),
        # Valid JSON in the first 64 KiB (a 60 KiB message), then 1 MiB of whitespace.
        ("GET", 400, _error_json("y" * 60_000, pad=MiB)),
        ("PUT", 400, _error_json("y" * 60_000, pad=MiB)),
        # One endless line of text.
        ("PUT", 400, b"z" * (2 * MiB)),
    ],
    ids=["get-500-cut-json", "put-500-cut-json", "get-400-long-message", "put-400-long-message",
         "put-400-text"],
)  # fmt: skip
def test_huge_error_body_gives_one_short_line(
    method: str,
    status: int,
    body: bytes,
    proxy: FaultProxy,
    open_registry: RegistryServer,
    repo_name: str,
) -> None:
    seed(open_registry.host, repo_name, "v1", random_image(seed=953))
    proxy.add_rule(Rule(method=method, path="/manifests/", action=Respond(status, JSON, body)))
    open_registry.mark()
    result = run_cli("tag", "--retries", "0", f"{proxy.host}/{repo_name}:v1", "hostile")
    assert result.code == 1
    assert f"HTTP {status}" in _one_line(result.stderr)
    _no_writes(open_registry)


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_endless_error_body_is_not_read_whole(
    method: str, open_registry: RegistryServer, repo_name: str
) -> None:
    """A 400 whose body never ends: read at most 64 KiB of it, whatever the request."""
    image = random_image(seed=954)

    def script(verb: str, path: str) -> Reply:
        if verb == method:
            start = b'{"errors":[{"code":"MANIFEST_INVALID","message":"'
            return Reply(400, JSON, start, repeat=b"e" * 65536)
        return Reply(200, list(OCI_MANIFEST), image.manifest.raw)

    with HostileServer(script) as server:
        result = run_cli("tag", "--retries", "0", f"{server.host}/{repo_name}:v1", "hostile")
    assert result.code == 1
    assert "HTTP 400" in _one_line(result.stderr)
    assert server.sent < READ_BOUND, f"regshift read {server.sent} bytes of an error body"


def test_error_message_cannot_drive_the_terminal(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    """The registry's message is printed; its escape sequences and control bytes are not."""
    seed(open_registry.host, repo_name, "v1", random_image(seed=964))
    message = "bad\x1b]0;owned\x07 \x1b[2J\x1b[31mred\x08\x00 end"
    hostile = Respond.oci_error(400, "MANIFEST_INVALID", message)
    proxy.add_rule(Rule(method="GET", path="/manifests/", action=hostile))
    result = run_cli("tag", f"{proxy.host}/{repo_name}:v1", "hostile")
    assert result.code == 1
    line = _one_line(result.stderr)
    assert "MANIFEST_INVALID" in line
    control = sorted({hex(ord(c)) for c in line if ord(c) < 0x20 or ord(c) == 0x7F})
    assert control == [], f"control characters from the registry were printed: {control}"


@pytest.mark.parametrize("case", ["endless", "nested"])
def test_hostile_token_response_is_refused(case: str, repo_name: str) -> None:
    """The registry's token server answers with an endless or a deeply nested document."""
    hosts: list[str] = []

    def script(method: str, path: str) -> Reply:
        if path.startswith("/token"):
            if case == "endless":
                return Reply(200, JSON, b'{"token":"', repeat=b"t" * 65536, tail=b'"}')
            nested = b"[" * 100_000 + b"]" * 100_000  # 200 KB: under the 256 KiB token cap
            return Reply(200, JSON, b'{"token":' + nested + b"}")
        challenge = f'Bearer realm="http://{hosts[0]}/token",service="hostile"'
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        return Reply(401, [("WWW-Authenticate", challenge), *JSON], body)

    with HostileServer(script) as server:
        hosts.append(server.host)
        result = run_cli("digest", f"{server.host}/{repo_name}:v1")
    assert result.code == 3
    line = _one_line(result.stderr)
    assert "token" in line and "internal error" not in line
    assert server.sent < READ_BOUND, f"regshift read {server.sent} bytes of a token response"


# --------------------------------------------------------------------------------------------
# malformed and lying manifests
# --------------------------------------------------------------------------------------------


_BAD_DIGEST_LAYER = {"mediaType": MediaType.OCI_LAYER, "size": 3}

HOSTILE_MANIFESTS: dict[str, tuple[bytes, str, str]] = {
    # id: (body, Content-Type, what the error must say)
    "nested-objects": (
        b'{"a":' * 200_000 + b"1" + b"}" * 200_000,
        MediaType.OCI_MANIFEST,
        "not valid JSON",
    ),
    "nested-arrays": (b"[" * 200_000 + b"]" * 200_000, MediaType.OCI_MANIFEST, "not valid JSON"),
    "not-json": (b"\x00\x01GIF89a not a manifest", MediaType.OCI_MANIFEST, "not valid JSON"),
    "not-an-object": (b'["schemaVersion", 2]', MediaType.OCI_MANIFEST, "not a JSON object"),
    "unknown-media-type": (
        json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.example+json"}).encode(),
        "application/vnd.example+json",
        "unsupported manifest media type",
    ),
    "bad-digest-algorithm": (
        _manifest_json(layers=[{**_BAD_DIGEST_LAYER, "digest": "md5:" + "0" * 32}]),
        MediaType.OCI_MANIFEST,
        "invalid digest",
    ),
    "path-in-digest": (
        _manifest_json(layers=[{**_BAD_DIGEST_LAYER, "digest": "sha256:../../../../etc/passwd"}]),
        MediaType.OCI_MANIFEST,
        "invalid digest",
    ),
    "uppercase-digest": (
        _manifest_json(layers=[{**_BAD_DIGEST_LAYER, "digest": "sha256:" + "A" * 64}]),
        MediaType.OCI_MANIFEST,
        "invalid digest",
    ),
    "negative-size": (
        _manifest_json(layers=[{**_BAD_DIGEST_LAYER, "digest": compute_digest(b"x"), "size": -1}]),
        MediaType.OCI_MANIFEST,
        "invalid size",
    ),
}


@pytest.mark.parametrize("command", ["copy", "tag"])
@pytest.mark.parametrize("case", list(HOSTILE_MANIFESTS))
def test_hostile_manifest_is_refused(
    case: str,
    command: str,
    proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    body, content_type, needle = HOSTILE_MANIFESTS[case]
    seed(open_registry.host, repo_name, "v1", random_image(seed=955))
    headers = [("Content-Type", content_type)]
    proxy.add_rule(Rule(method="GET", path="/manifests/", action=Respond(200, headers, body)))
    open_registry.mark()
    other_registry.mark()
    result = _run(command, f"{proxy.host}/{repo_name}:v1", f"{other_registry.host}/{repo_name}")
    assert result.code == 1
    line = _one_line(result.stderr)
    assert needle in line and "internal error" not in line
    _no_writes(open_registry, other_registry)


def test_index_child_with_other_bytes_is_refused(
    proxy: FaultProxy, open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """An index names a child by digest; the registry serves other bytes for it."""
    sample = random_index(seed=956)
    seed(open_registry.host, repo_name, "v1", sample)
    child = sample.images[1].manifest.digest
    impostor = random_image(seed=957).manifest.raw
    proxy.add_rule(
        Rule(method="GET", path=f"/manifests/{child}", action=Respond(200, OCI_MANIFEST, impostor))
    )
    other_registry.mark()
    result = run_cli("copy", f"{proxy.host}/{repo_name}:v1", f"{other_registry.host}/{repo_name}")
    assert result.code == 1
    line = _one_line(result.stderr)
    assert "digest mismatch" in line and child in line
    assert other_registry.requests() == [], "the source must be checked before any write"


@pytest.mark.parametrize("lie", [-7, 7], ids=["blob-bigger-than-descriptor", "blob-smaller"])
def test_descriptor_size_lie_is_refused(
    lie: int, open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """The manifest's layer size is off by a few bytes; the registry stores it as is."""
    honest = random_image(seed=958, layers=2)
    doc = json.loads(honest.manifest.raw)
    doc["layers"][1]["size"] += lie
    lying = SampleImage(parse_manifest(json.dumps(doc, indent=2).encode()), honest.blobs)
    src = seed(open_registry.host, repo_name, "v1", lying)
    layer = doc["layers"][1]["digest"]
    other_registry.mark()
    result = run_cli("copy", str(src), f"{other_registry.host}/{repo_name}:v1")
    assert result.code == 1
    line = _one_line(result.stderr)
    assert "digest mismatch" in line and layer in line and "bytes" in line
    _tag_absent(other_registry, repo_name, "v1")
    blob = httpx.head(f"{other_registry.url}/v2/{repo_name}/blobs/{layer}")
    assert blob.status_code == 404, "a blob that does not match its descriptor was committed"
    assert not [
        r for r in other_registry.requests() if "/manifests/" in r.path and r.method == "PUT"
    ]


@pytest.mark.parametrize("what", ["gzip-layer", "raw-layer", "manifest"])
def test_content_encoding_label_leaves_the_bytes_as_stored(
    what: str,
    proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    """A storage backend labels a .tar.gz layer (or a manifest) ``Content-Encoding: gzip``.

    Digests are over the bytes as stored: they are asked for unencoded and copied as sent,
    never decoded (a decoded gzip layer fails its digest; a body that is no gzip at all must
    not crash the decoder either).
    """
    image = random_image(seed=965, layers=1, raw_layers=what == "raw-layer")
    layer = image.manifest.layers[0].digest
    seed(open_registry.host, repo_name, "v1", image)
    path = "/manifests/" if what == "manifest" else f"/blobs/{layer}"
    label = proxy.add_rule(
        Rule(method="GET", path=path, action=RewriteHeader("Content-Encoding", "gzip"))
    )
    result = run_cli(
        "copy", f"{proxy.host}/{repo_name}:v1", f"{other_registry.host}/{repo_name}:v1"
    )
    assert result.code == 0, result.stderr
    assert label.hits >= 1
    gets = [r for r in proxy.requests if r.method == "GET" and path in r.path]
    assert gets and all(r.headers.get("accept-encoding") == "identity" for r in gets)
    copied = httpx.get(f"{other_registry.url}/v2/{repo_name}/blobs/{layer}")
    assert copied.content == image.blobs[1]
    top = httpx.get(f"{other_registry.url}/v2/{repo_name}/manifests/v1", headers={"Accept": ACCEPT})
    assert top.content == image.manifest.raw


def test_tag_list_falsely_labelled_gzip_is_a_clean_error(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    """A small answer (the tag list) that claims gzip but is not: one line, not a crash."""
    seed(open_registry.host, repo_name, "v1", random_image(seed=967))
    label = proxy.add_rule(
        Rule(method="GET", path="/tags/list", action=RewriteHeader("Content-Encoding", "gzip"))
    )
    result = run_cli("ls", f"{proxy.host}/{repo_name}")
    assert label.hits == 1
    assert result.code == 1, result.stderr
    assert "internal error" not in result.stderr
    assert "reading the answer" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------
# upload locations and pagination links elsewhere
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["other-host", "scheme-relative", "ftp", "file"])
def test_upload_location_elsewhere_is_refused(
    where: str,
    recorder: HeaderRecorder,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    image = random_image(seed=959)
    src = seed(open_registry.host, repo_name, "v1", image)
    location = {
        "other-host": recorder.url_for("/v2/steal/blobs/uploads/1"),
        "scheme-relative": f"//{recorder.host}/v2/steal/blobs/uploads/1",
        "ftp": f"ftp://{recorder.host}/upload",
        "file": "file:///etc/passwd",
    }[where]
    result, sent = _copy_with_upload_location(src, other_registry, repo_name, location)
    assert result.code == 1
    assert "refusing upload Location" in _one_line(result.stderr)
    assert recorder.requests == [], "a request went to the host the Location named"
    assert sent == [], "no upload may be sent anywhere"
    _tag_absent(other_registry, repo_name, "v1")


@pytest.mark.parametrize(
    "location",
    ["http://[::1/v2/x/blobs/uploads/1", "//:abc/", "http://127.0.0.1/up\x01load"],
    ids=["unclosed-ipv6", "bad-port", "control-character"],
)
def test_malformed_upload_location_is_refused(
    location: str, open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    src = seed(open_registry.host, repo_name, "v1", random_image(seed=966))
    result, sent = _copy_with_upload_location(src, other_registry, repo_name, location)
    assert result.code == 1
    line = _one_line(result.stderr)
    assert "refusing upload Location that is not a valid URL" in line, line
    assert "\x01" not in line, "a control character reached the terminal"
    assert sent == [], "no upload may be sent anywhere"
    _tag_absent(other_registry, repo_name, "v1")


def _copy_with_upload_location(
    src: Reference, dst_registry: RegistryServer, repo: str, location: str
) -> tuple[CliResult, list[tuple[str, str]]]:
    """``regshift copy`` to ``dst_registry`` through a proxy answering every upload POST
    with ``location``; the result and the uploads (PUT, PATCH) that reached the proxy."""
    with FaultProxy(dst_registry.host) as dst:
        dst.add_rule(
            Rule(method="POST", path="/blobs/uploads/", action=RewriteHeader("Location", location))
        )
        result = run_cli("copy", str(src), f"{dst.host}/{repo}:v1")
        sent = [(r.method, r.path) for r in dst.requests if r.method in ("PUT", "PATCH")]
    return result, sent


def _seed_for_ls(open_registry: RegistryServer, repo: str) -> None:
    seed(open_registry.host, repo, "v1", random_image(seed=960))


@pytest.mark.parametrize("shape", ["self", "two-page-cycle"])
def test_ls_pagination_loop_is_refused(
    shape: str, proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    _seed_for_ls(open_registry, repo_name)
    base = f"/v2/{repo_name}/tags/list"
    first = f'<{base}?n=1000>; rel="next"'
    if shape == "self":
        proxy.add_rule(Rule(method="GET", path="/tags/list", action=RewriteHeader("Link", first)))
    else:
        second = f'<{base}?n=1000&last=v1>; rel="next"'
        proxy.add_rule(
            Rule(method="GET", path=r"last=v1$", action=RewriteHeader("Link", first))
        )  # page 2 -> page 1
        proxy.add_rule(
            Rule(method="GET", path=r"n=1000$", action=RewriteHeader("Link", second))
        )  # page 1 -> page 2
    result = run_cli("ls", f"{proxy.host}/{repo_name}")
    assert result.code == 1
    assert "pagination" in _one_line(result.stderr)
    assert result.stdout == ""
    pages = [r for r in proxy.requests if "/tags/list" in r.path]
    assert len(pages) == (1 if shape == "self" else 2)


@pytest.mark.parametrize("where", ["other-host", "other-scheme", "other-repository"])
def test_ls_link_elsewhere_is_refused(
    where: str,
    proxy: FaultProxy,
    recorder: HeaderRecorder,
    open_registry: RegistryServer,
    repo_name: str,
) -> None:
    _seed_for_ls(open_registry, repo_name)
    target = {
        "other-host": recorder.url_for(f"/v2/{repo_name}/tags/list?n=1000&last=v1"),
        "other-scheme": f"ftp://{proxy.host}/v2/{repo_name}/tags/list?last=v1",
        "other-repository": f"/v2/{repo_name}-secret/tags/list?last=v1",
    }[where]
    link = f'<{target}>; rel="next"'
    proxy.add_rule(Rule(method="GET", path="/tags/list", action=RewriteHeader("Link", link)))
    result = run_cli("ls", f"{proxy.host}/{repo_name}")
    assert result.code == 1
    assert "refusing to follow pagination link" in _one_line(result.stderr)
    assert recorder.requests == []
    assert len([r for r in proxy.requests if "/tags/list" in r.path]) == 1


@pytest.mark.parametrize(
    "target",
    ["http://[::1/v2/{repo}/tags/list?last=v1", "/v2/{repo}/tags/list?last=\x01"],
    ids=["unclosed-ipv6", "control-character"],
)
def test_ls_malformed_link_is_refused(
    target: str, proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    _seed_for_ls(open_registry, repo_name)
    link = f'<{target.format(repo=repo_name)}>; rel="next"'
    proxy.add_rule(Rule(method="GET", path="/tags/list", action=RewriteHeader("Link", link)))
    result = run_cli("ls", f"{proxy.host}/{repo_name}")
    assert result.code == 1
    line = _one_line(result.stderr)
    assert "refusing to follow pagination link" in line and "not a valid URL" in line, line
    assert len([r for r in proxy.requests if "/tags/list" in r.path]) == 1


def test_ls_deeply_nested_tag_list_is_refused(proxy: FaultProxy, repo_name: str) -> None:
    body = b'{"name":"x","tags":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    proxy.add_rule(Rule(method="GET", path="/tags/list", action=Respond(200, JSON, body)))
    result = run_cli("ls", f"{proxy.host}/{repo_name}")
    assert result.code == 1
    line = _one_line(result.stderr)
    assert "internal error" not in line, "hostile JSON must be a clean refusal, not a crash"


def test_ls_endless_tag_list_is_bounded(repo_name: str) -> None:
    """A tag list page that never ends must be cut off like a manifest, not read whole."""
    endless = Reply(200, JSON, b'{"name":"x","tags":["', repeat=b"t" * 65536, tail=b'"]}')
    with HostileServer(lambda method, path: endless) as server:
        result = run_cli("ls", f"{server.host}/{repo_name}")
    assert server.sent < READ_BOUND, f"regshift read {server.sent} bytes of one tag list page"
    assert result.code == 1
    _one_line(result.stderr)


# --------------------------------------------------------------------------------------------
# credentials: never to another host, never printed
# --------------------------------------------------------------------------------------------


def _creds(registry: RegistryServer) -> tuple[str, str]:
    assert registry.username and registry.password
    SECRETS.add(registry.password)
    return registry.username, registry.password


@pytest.mark.parametrize("auth", ["basic", "token"])
def test_blob_redirect_to_another_host_gets_no_credentials(
    auth: str,
    basic_registry: RegistryServer,
    token_registry: RegistryServer,
    other_registry: RegistryServer,
    recorder: HeaderRecorder,
    repo_name: str,
) -> None:
    registry = basic_registry if auth == "basic" else token_registry
    user, password = _creds(registry)
    image = random_image(seed=961, layers=2)
    seed(registry.host, repo_name, "v1", image, username=user, password=password)
    layer = image.manifest.layers[1].digest
    recorder.serve(f"/storage/{layer}", image.blobs[2])
    with FaultProxy(registry.host) as src:
        src.add_rule(
            Rule(
                method="GET", path=f"/blobs/{layer}", action=recorder.redirect(f"/storage/{layer}")
            )
        )
        result = run_cli(
            "copy",
            "--json",
            "-u",
            user,
            "--password-stdin",
            f"{src.host}/{repo_name}:v1",
            f"{other_registry.host}/{repo_name}:v1",
            input=password,
        )
        asked = [r for r in src.requests if r.method == "GET" and layer in r.path]
    assert result.code == 0, result.stderr
    assert result.json()["digest"] == image.manifest.digest
    scheme = "Basic " if auth == "basic" else "Bearer "
    assert asked and asked[0].headers.get("authorization", "").startswith(scheme)
    assert recorder.requests, "the redirect was followed"
    assert all("authorization" not in r.headers for r in recorder.requests)
    assert all(password not in json.dumps(r.headers) for r in recorder.requests)
    copied = httpx.get(f"{other_registry.url}/v2/{repo_name}/blobs/{layer}")
    assert compute_digest(copied.content) == layer


def _forbidden(user: str, password: str, *extra: str) -> list[str]:
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    return [password, basic, "eyJ", "Bearer ", "Basic ", *extra]


def _assert_clean(output: str, forbidden: list[str]) -> None:
    for secret in forbidden:
        assert secret not in output, f"{secret[:12]!r}... was printed"
    assert "authorization:" not in output.lower()


@pytest.mark.parametrize(
    ("auth", "source"),
    [
        ("basic", "flags"),
        ("basic", "env"),
        ("basic", "config"),
        ("token", "flags"),
        ("token", "env"),
        ("token", "config"),
        ("token", "identity-token"),
        ("token", "registry-token"),
    ],
)
def test_debug_output_never_shows_secrets(
    auth: str,
    source: str,
    basic_registry: RegistryServer,
    token_registry: RegistryServer,
    repo_name: str,
) -> None:
    registry = basic_registry if auth == "basic" else token_registry
    user, password = _creds(registry)
    src = seed(
        registry.host, repo_name, "v1", random_image(seed=962), username=user, password=password
    )
    forbidden = _forbidden(user, password)
    args: list[str] = []
    env: dict[str, str] = {}
    if source == "flags":
        args = ["-u", user, "--password-stdin"]
    elif source == "env":
        env = {"REGSHIFT_USERNAME": user, "REGSHIFT_PASSWORD": password}
    elif source == "config":
        auth_value = base64.b64encode(f"{user}:{password}".encode()).decode()
        write_docker_config({"auths": {registry.host: {"auth": auth_value}}})
    elif source == "identity-token":
        assert token_registry.token_server is not None
        refresh = token_registry.token_server.issue_refresh_token(user)
        SECRETS.add(refresh)
        forbidden.append(refresh)
        write_docker_config({"auths": {registry.host: {"identitytoken": refresh, "auth": ""}}})
    else:
        assert token_registry.token_server is not None
        actions = ["pull", "push"]
        token = token_registry.token_server.make_jwt(
            [
                {"type": "repository", "name": repo_name, "actions": actions},
                {"type": "repository", "name": f"{repo_name}-copy", "actions": actions},
            ]
        )
        SECRETS.add(token)
        forbidden.append(token)
        env = {"REGSHIFT_TOKEN": token}
    repo = f"{registry.host}/{repo_name}"
    for command in (
        ["tag", str(src), "debugged"],
        ["copy", str(src), f"{repo}-copy:v1"],
        ["ls", repo],
    ):
        result = run_cli(command[0], "--debug", *args, *command[1:], input=password, env=env)
        assert result.code == 0, result.stderr
        assert "debug: " in result.stderr
        _assert_clean(result.stdout + result.stderr, forbidden)


@pytest.mark.parametrize("auth", ["basic", "token"])
def test_login_debug_output_never_shows_secrets(
    auth: str, basic_registry: RegistryServer, token_registry: RegistryServer
) -> None:
    registry = basic_registry if auth == "basic" else token_registry
    user, password = _creds(registry)
    result = run_cli(
        "login", "--debug", registry.host, "-u", user, "--password-stdin", input=password
    )
    assert result.code == 0, result.stderr
    assert "debug: " in result.stderr and "Login succeeded" in result.stdout
    _assert_clean(result.stdout + result.stderr, _forbidden(user, password))


def test_debug_output_of_a_real_process_never_shows_secrets(
    token_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same, with the real process's stderr and logging set-up (not click's runner)."""
    user, password = _creds(token_registry)
    src = seed(
        token_registry.host,
        repo_name,
        "v1",
        random_image(seed=963),
        username=user,
        password=password,
    )
    # Credentials from the environment: support.run_cli_process cannot pass a str as stdin.
    monkeypatch.setenv("REGSHIFT_USERNAME", user)
    monkeypatch.setenv("REGSHIFT_PASSWORD", password)
    result = run_cli_process("copy", "--debug", str(src), f"{other_registry.host}/{repo_name}:v1")
    assert result.code == 0, result.stderr
    assert "debug: " in result.stderr
    _assert_clean(result.stdout + result.stderr, _forbidden(user, password))
