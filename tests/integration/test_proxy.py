"""FaultProxy in front of the real registry (CNCF distribution) on loopback, driven by httpx."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from harness.proxy import (
    Delay,
    FaultProxy,
    FlipByte,
    HeaderRecorder,
    Redirect,
    RefuseMount,
    ResetRequest,
    ResetResponse,
    Respond,
    RewriteHeader,
    Rule,
    TruncateResponse,
    http_date,
)
from harness.registry import RegistryServer

BLOB_URL = "/v2/{repo}/blobs/{digest}"


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture
def upstream(open_registry: RegistryServer) -> str:
    """``host:port`` of the shared open (no auth, plain HTTP) registry."""
    return open_registry.host


@pytest.fixture
def proxy(upstream: str) -> Iterator[FaultProxy]:
    with FaultProxy(upstream) as p:
        yield p
    assert p.errors == []
    assert p.live_threads() == []


@pytest.fixture
def client(proxy: FaultProxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=10) as c:
        yield c


@pytest.fixture
def direct(upstream: str) -> Iterator[httpx.Client]:
    """A client talking to the registry directly (bypassing the proxy)."""
    with httpx.Client(base_url=f"http://{upstream}", timeout=10) as c:
        yield c


def _repo() -> str:
    return f"proxytest/{uuid.uuid4().hex[:12]}"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _with_digest(location: str, digest: str) -> httpx.URL:
    # httpx's ``params=`` would replace the Location's own query (distribution's ``_state``)
    return httpx.URL(location).copy_merge_params({"digest": digest})


def _push(client: httpx.Client, repo: str, data: bytes) -> str:
    """Monolithic upload: POST to open a session, PUT ?digest= with the whole body."""
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    digest = _digest(data)
    r = client.put(_with_digest(r.headers["location"], digest), content=data)
    assert r.status_code == 201, r.text
    return digest


# --------------------------------------------------------------------------------------------
# pass-through
# --------------------------------------------------------------------------------------------


def test_passthrough_v2(proxy: FaultProxy, client: httpx.Client) -> None:
    r = client.get("/v2/", headers={"X-Probe": "1"})
    assert r.status_code == 200
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    (seen,) = proxy.requests
    assert (seen.method, seen.path, seen.status, seen.rule) == ("GET", "/v2/", 200, None)
    assert seen.headers["x-probe"] == "1"
    assert seen.upstream_path == "/v2/"


def test_monolithic_upload_get_head_keepalive(
    proxy: FaultProxy, client: httpx.Client, upstream: str
) -> None:
    repo, data = _repo(), os.urandom(300_000)
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202
    location = r.headers["location"]
    # distribution answers with an absolute upstream URL; the proxy points it at itself
    assert upstream not in location
    assert location.startswith((proxy.url, "/"))
    digest = _digest(data)
    r = client.put(_with_digest(location, digest), content=data)
    assert r.status_code == 201
    assert r.headers["docker-content-digest"] == digest

    r = client.get(BLOB_URL.format(repo=repo, digest=digest))
    assert r.status_code == 200
    assert r.content == data
    r = client.head(BLOB_URL.format(repo=repo, digest=digest))
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(data))
    assert r.content == b""

    log = proxy.requests
    assert [q.method for q in log] == ["POST", "PUT", "GET", "HEAD"]
    assert log[1].bytes_in == len(data)
    assert log[2].bytes_out == len(data)
    assert log[3].bytes_out == 0
    assert len({q.connection for q in log}) == 1  # one persistent client connection


def test_chunked_request_body_is_streamed(proxy: FaultProxy, client: httpx.Client) -> None:
    repo, data = _repo(), os.urandom(200_000)
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(data), 30_000):
            yield data[i : i + 30_000]

    r = client.patch(r.headers["location"], content=pieces())  # no length: chunked
    assert r.status_code == 202, r.text
    assert proxy.requests[-1].headers["transfer-encoding"] == "chunked"
    assert proxy.requests[-1].bytes_in == len(data)
    digest = _digest(data)
    r = client.put(_with_digest(r.headers["location"], digest))
    assert r.status_code == 201, r.text
    assert client.get(BLOB_URL.format(repo=repo, digest=digest)).content == data


def test_multiple_header_values_preserved(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.add_rule(
        Rule(
            path=r"^/v2/$",
            action=Respond(
                401,
                [
                    ("WWW-Authenticate", 'Bearer realm="https://a.example/token"'),
                    ("WWW-Authenticate", 'Basic realm="b"'),
                ],
            ),
        )
    )
    r = client.get("/v2/")
    assert r.status_code == 401
    assert r.headers.get_list("www-authenticate") == [
        'Bearer realm="https://a.example/token"',
        'Basic realm="b"',
    ]


# --------------------------------------------------------------------------------------------
# actions
# --------------------------------------------------------------------------------------------


def test_respond_429_then_success(proxy: FaultProxy, client: httpx.Client) -> None:
    rule = proxy.add_rule(
        Rule(name="throttle", path=r"^/v2/$", times=1, action=Respond.retry_after(429, 1))
    )
    r = client.get("/v2/")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert client.get("/v2/").status_code == 200
    assert rule.hits == 1
    assert [(q.status, q.rule) for q in proxy.requests] == [(429, "throttle"), (200, None)]
    assert proxy.requests[0].upstream_path is None  # upstream never contacted


def test_respond_503_with_http_date(proxy: FaultProxy, client: httpx.Client) -> None:
    when = http_date(2)
    proxy.add_rule(Rule(times=1, action=Respond(503, {"Retry-After": when})))
    r = client.get("/v2/")
    assert (r.status_code, r.headers["retry-after"]) == (503, when)


def test_every_third_request(proxy: FaultProxy, client: httpx.Client) -> None:
    rule = proxy.add_rule(Rule(method="GET", path=r"^/v2/$", every=3, action=Respond(503)))
    codes = [client.get("/v2/").status_code for _ in range(9)]
    assert codes == [200, 200, 503] * 3
    assert rule.hits == 3
    assert rule.matched == 9
    assert client.head("/v2/").status_code == 200  # method does not match


def test_skip_every_times(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.add_rule(Rule(path=r"^/v2/$", skip=1, every=2, times=2, action=Respond(500)))
    codes = [client.get("/v2/").status_code for _ in range(8)]
    assert codes == [200, 200, 500, 200, 500, 200, 200, 200]


def test_refuse_mount(
    proxy: FaultProxy,
    client: httpx.Client,
    direct: httpx.Client,
    open_registry: RegistryServer,
) -> None:
    source, target, data = _repo(), _repo(), os.urandom(10_000)
    digest = _push(client, source, data)
    rule = proxy.add_rule(Rule(method="POST", path=r"[?&]mount=", action=RefuseMount()))
    open_registry.mark()

    r = client.post(f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": source})
    assert r.status_code == 202  # a mounting registry would answer 201
    assert rule.hits == 1
    seen = proxy.requests[-1]
    assert "mount=" in seen.path
    assert seen.upstream_path is not None
    assert "mount" not in seen.upstream_path
    assert "from" not in seen.upstream_path
    assert direct.head(BLOB_URL.format(repo=target, digest=digest)).status_code == 404
    (post,) = [q for q in open_registry.requests() if q.method == "POST"]
    assert (post.route, post.status) == (f"/v2/{target}/blobs/uploads/", 202)
    assert "mount" not in post.path

    r = client.put(_with_digest(r.headers["location"], digest), content=data)
    assert r.status_code == 201, r.text
    assert client.get(BLOB_URL.format(repo=target, digest=digest)).content == data

    # control: without the rule the real registry mounts
    proxy.clear_rules()
    other = _repo()
    r = client.post(f"/v2/{other}/blobs/uploads/", params={"mount": digest, "from": source})
    assert r.status_code == 201


def test_reset_response_mid_body(proxy: FaultProxy, client: httpx.Client) -> None:
    repo, data = _repo(), os.urandom(500_000)
    digest = _push(client, repo, data)
    proxy.add_rule(Rule(method="GET", path=r"/blobs/sha256:", action=ResetResponse(100_000)))
    received = bytearray()
    with (
        pytest.raises(httpx.TransportError),
        client.stream("GET", BLOB_URL.format(repo=repo, digest=digest)) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-length"] == str(len(data))
        for chunk in r.iter_raw():
            received += chunk
    assert len(received) <= 100_000
    assert bytes(received) == data[: len(received)]
    assert proxy.requests[-1].bytes_out == 100_000
    proxy.clear_rules()  # the same client recovers on a new connection
    assert client.get(BLOB_URL.format(repo=repo, digest=digest)).content == data


def test_truncate_response(proxy: FaultProxy, client: httpx.Client) -> None:
    repo, data = _repo(), os.urandom(200_000)
    digest = _push(client, repo, data)
    proxy.add_rule(Rule(method="GET", path=r"/blobs/", times=1, action=TruncateResponse(50_000)))
    received = bytearray()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("GET", BLOB_URL.format(repo=repo, digest=digest)) as r,
    ):
        assert r.headers["content-length"] == str(len(data))
        for chunk in r.iter_raw():
            received += chunk
    assert bytes(received) == data[:50_000]
    assert client.get(BLOB_URL.format(repo=repo, digest=digest)).content == data


def test_flip_byte(proxy: FaultProxy, client: httpx.Client) -> None:
    repo, data = _repo(), os.urandom(150_000)
    digest = _push(client, repo, data)
    offset = 70_000  # inside the second 64 KiB chunk
    proxy.add_rule(Rule(method="GET", path=r"/blobs/", times=1, action=FlipByte(offset)))
    got = client.get(BLOB_URL.format(repo=repo, digest=digest)).content
    assert len(got) == len(data)
    diffs = [i for i in range(len(data)) if got[i] != data[i]]
    assert diffs == [offset]
    assert got[offset] == data[offset] ^ 0xFF
    assert _digest(got) != digest


def test_reset_request_during_upload(
    proxy: FaultProxy,
    client: httpx.Client,
    direct: httpx.Client,
    open_registry: RegistryServer,
) -> None:
    repo, data = _repo(), os.urandom(8 * 1024 * 1024)
    digest = _digest(data)
    rule = proxy.add_rule(Rule(method="PUT", path=r"/blobs/uploads/", action=ResetRequest(65536)))
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202
    open_registry.mark()
    # WriteError, ReadError or RemoteProtocolError depending on when httpx notices the RST
    with pytest.raises(httpx.TransportError):
        client.put(_with_digest(r.headers["location"], digest), content=data)
    assert rule.hits == 1
    seen = proxy.requests[-1]
    assert seen.status is None
    assert seen.upstream_path is None
    assert 0 < seen.bytes_in <= 65536
    assert open_registry.count("PUT") == 0  # the registry never saw the upload's PUT
    assert direct.head(BLOB_URL.format(repo=repo, digest=digest)).status_code == 404


def test_rewrite_header(proxy: FaultProxy, client: httpx.Client) -> None:
    repo, data = _repo(), os.urandom(1000)
    digest = _push(client, repo, data)
    proxy.add_rule(
        Rule(
            method="POST",
            path=r"/blobs/uploads/$",
            action=RewriteHeader(
                "Location", lambda v: (v or "").replace(proxy.host, "elsewhere.invalid:9")
            ),
        )
    )
    proxy.add_rule(
        Rule(method="GET", path=r"/blobs/", action=RewriteHeader("Docker-Content-Digest", None))
    )
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202
    assert r.headers["location"].startswith("http://elsewhere.invalid:9/v2/")
    r = client.get(BLOB_URL.format(repo=repo, digest=digest))
    assert r.content == data
    assert "docker-content-digest" not in r.headers


def test_redirect_to_other_host_drops_authorization(
    proxy: FaultProxy, client: httpx.Client
) -> None:
    payload = os.urandom(4096)
    with HeaderRecorder() as recorder:
        recorder.serve("/cdn/blob", payload, {"Content-Type": "application/octet-stream"})
        proxy.add_rule(Rule(method="GET", path=r"/blobs/", action=recorder.redirect("/cdn/blob")))
        r = client.get(
            "/v2/some/repo/blobs/sha256:" + "0" * 64,
            headers={"Authorization": "Bearer secret-token"},
            follow_redirects=True,
        )
        assert r.status_code == 200
        assert r.content == payload
        # the proxy saw the credentials ...
        assert proxy.requests[-1].headers["authorization"] == "Bearer secret-token"
        assert proxy.requests[-1].status == 307
        # ... but httpx drops Authorization on a cross-origin redirect (other port = other origin)
        (hit,) = recorder.requests
        assert hit.path == "/cdn/blob"
        assert "authorization" not in hit.headers
    assert recorder.live_threads() == []


def test_redirect_path_placeholder(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.add_rule(Rule(method="GET", action=Redirect("http://cdn.invalid{path}", status=302)))
    r = client.get("/v2/a/b/blobs/x?y=1")
    assert r.status_code == 302
    assert r.headers["location"] == "http://cdn.invalid/v2/a/b/blobs/x?y=1"


def test_delay(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.add_rule(Rule(path=r"^/v2/$", times=1, action=Delay(0.3)))
    proxy.add_rule(Rule(path=r"^/v2/$", times=1, action=Delay(0.2, then=Respond(503))))
    t0 = time.monotonic()
    assert client.get("/v2/").status_code == 200
    t1 = time.monotonic()
    assert client.get("/v2/").status_code == 503
    t2 = time.monotonic()
    assert client.get("/v2/").status_code == 200
    assert t1 - t0 >= 0.3
    assert t2 - t1 >= 0.2
    proxy.add_rule(Rule(times=1, action=Delay(1.0)))
    with pytest.raises(httpx.ReadTimeout):  # slow responses trip client timeouts
        client.get("/v2/", timeout=0.2)


def test_stop_unblocks_idle_and_busy_connections(upstream: str) -> None:
    proxy = FaultProxy(upstream).start()
    proxy.add_rule(Rule(path="slow", action=Delay(30)))
    idle = httpx.Client(base_url=proxy.url, timeout=10)
    assert idle.get("/v2/").status_code == 200  # leaves an idle keep-alive connection
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            httpx.get(f"{proxy.url}/slow", timeout=10)
        except httpx.TransportError as exc:
            errors.append(exc)

    t = threading.Thread(target=slow)
    t.start()
    deadline = time.monotonic() + 2
    while len(proxy.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    proxy.stop()
    assert time.monotonic() - t0 < 1.5
    assert proxy.live_threads() == []
    t.join(5)
    assert len(errors) == 1
    idle.close()
    assert proxy.errors == []
