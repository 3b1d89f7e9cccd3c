"""regshift.wire on real sockets: the registry (distribution 2.8 on loopback), the harness's
fault proxy in front of it where a fault is injected or the connections have to be seen, and
squid for CONNECT tunnels.

Which connection a request went on is read from the fault proxy's log (``connection``: the
number of the client connection it arrived on). Where no proxy sits in between (TLS straight
to the registry), the registry's access log cannot tell (it logs no client port), so those
tests look at the transport's idle pool and the local port of its socket.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import resource
import select
import shutil
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from regshift import wire
from regshift.transport import RequestStats, TransportOptions, build_http_client
from regshift.wire import connections

from harness.pki import PROXIED_NAME
from harness.proxy import (
    Delay,
    FaultProxy,
    ResetRequest,
    ResetResponse,
    Respond,
    Rule,
    TruncateResponse,
)
from harness.registry import RegistryServer
from harness.squid import SquidProxy

BLOB = os.urandom(300_000)  # several reads of a body, several chunks of an upload
SECRET = "s3cret-header-value"
PROXY_USER, PROXY_PASSWORD = "erin", "erin-proxy-pw-7"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


# --------------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------------


def make_pool(**options: Any) -> wire.HTTPTransport:
    settings: dict[str, Any] = {
        "ssl_context": ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
        "connect_timeout": 5.0,
        "read_timeout": 10.0,
    }
    settings.update(options)
    return wire.HTTPTransport(**settings)


@pytest.fixture
def pool() -> Iterator[wire.HTTPTransport]:
    transport = make_pool()
    yield transport
    transport.close()


@pytest.fixture
def proxy(open_registry: RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(open_registry.host) as fault_proxy:
        yield fault_proxy
    assert fault_proxy.errors == []


def send(
    pool: wire.HTTPTransport,
    method: str,
    url: str | wire.URL,
    *,
    headers: Any = None,
    content: wire.Content = None,
) -> wire.Response:
    return pool.handle_request(wire.Request(method, url, headers=headers, content=content))


def get(pool: wire.HTTPTransport, url: str | wire.URL, **options: Any) -> wire.Response:
    return send(pool, "GET", url, **options)


def status_of(pool: wire.HTTPTransport, url: str | wire.URL, **options: Any) -> int:
    """GET ``url`` and read the answer; its status."""
    answer = get(pool, url, **options)
    answer.read()
    return answer.status_code


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def start_upload(pool: wire.HTTPTransport, base: str, repo: str) -> wire.URL:
    """POST an upload session; its ``Location``, absolute."""
    answer = send(pool, "POST", f"{base}/v2/{repo}/blobs/uploads/")
    assert answer.status_code == 202, answer.read()
    answer.read()
    return answer.url.join(answer.headers["location"])


def push_blob(pool: wire.HTTPTransport, base: str, repo: str, data: bytes = BLOB) -> str:
    digest = digest_of(data)
    location = start_upload(pool, base, repo)
    answer = send(pool, "PUT", location.copy_merge_params([("digest", digest)]), content=data)
    assert answer.status_code == 201, answer.read()
    answer.read()
    return digest


def in_chunks(data: bytes, size: int = 50_000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def idle(pool: wire.HTTPTransport) -> list[Any]:
    """Every idle pooled connection (introspection: nothing public shows the pool)."""
    return [conn for conns in pool._idle.values() for conn in conns]


def wait_for_fin(pool: wire.HTTPTransport) -> None:
    """Block until the server's FIN reached the one idle connection (it turns readable)."""
    (conn,) = idle(pool)
    readable, _, _ = select.select([conn.sock], [], [], 5)
    assert readable, "the server's close did not arrive"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def rendered(exc: BaseException) -> str:
    """The exception as a log or a terminal would show it, causes and contexts included."""
    return "".join(traceback.format_exception(exc))


# --------------------------------------------------------------------------------------------
# keep-alive
# --------------------------------------------------------------------------------------------


def test_sequential_requests_share_one_keepalive_connection(
    pool: wire.HTTPTransport, proxy: FaultProxy, repo_name: str
) -> None:
    digest = push_blob(pool, proxy.url, repo_name)
    blob = f"{proxy.url}/v2/{repo_name}/blobs/{digest}"
    for _ in range(10):
        answer = get(pool, f"{proxy.url}/v2/")
        assert answer.status_code == 200
        assert answer.read() == b"{}"
    head = send(pool, "HEAD", blob)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(BLOB))  # the size a GET would send
    assert head.read() == b""
    assert get(pool, blob).read() == BLOB
    missing = get(pool, f"{proxy.url}/v2/{repo_name}/manifests/absent")
    assert missing.status_code == 404
    missing.read()
    assert missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"

    log = proxy.requests
    assert [q.method for q in log] == ["POST", "PUT", *["GET"] * 10, "HEAD", "GET", "GET"]
    assert {q.connection for q in log} == {1}
    assert len(idle(pool)) == 1


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (204, {}),
        (304, {"Content-Length": "1234", "ETag": '"abc"'}),  # a 304's length is not its body's
        (200, {"Content-Length": "0"}),
    ],
)
def test_bodiless_answers_keep_the_connection(
    pool: wire.HTTPTransport, proxy: FaultProxy, status: int, headers: dict[str, str]
) -> None:
    proxy.add_rule(Rule(path="^/bodiless$", action=Respond(status, headers)))
    answer = get(pool, f"{proxy.url}/bodiless")
    assert answer.status_code == status
    assert answer.read() == b""
    assert status_of(pool, f"{proxy.url}/v2/") == 200
    assert [q.connection for q in proxy.requests] == [1, 1]


def test_an_answer_announcing_close_is_not_pooled(
    pool: wire.HTTPTransport, proxy: FaultProxy
) -> None:
    proxy.add_rule(Rule(path="^/closing$", action=Respond(200, {"Connection": "close"}, b"ok")))
    answer = get(pool, f"{proxy.url}/closing")
    assert answer.read() == b"ok"
    assert idle(pool) == []
    assert status_of(pool, f"{proxy.url}/v2/") == 200
    assert [q.connection for q in proxy.requests] == [1, 2]


def test_a_body_closed_early_closes_its_connection_a_discarded_small_one_does_not(
    pool: wire.HTTPTransport, proxy: FaultProxy, repo_name: str
) -> None:
    digest = push_blob(pool, proxy.url, repo_name)
    blob = f"{proxy.url}/v2/{repo_name}/blobs/{digest}"
    partial = get(pool, blob)
    assert len(next(partial.iter_raw())) < len(BLOB)
    partial.close()
    assert idle(pool) == []
    small = get(pool, f"{proxy.url}/v2/{repo_name}/manifests/absent")
    small.discard()
    assert get(pool, f"{proxy.url}/v2/").read() == b"{}"
    assert [q.connection for q in proxy.requests][-3:] == [1, 2, 2]


def test_tls_requests_reuse_one_connection(tls_registry: RegistryServer) -> None:
    pool = make_pool(ssl_context=tls_registry.ssl_context)
    try:
        local_ports = set()
        for _ in range(8):
            answer = get(pool, f"{tls_registry.url}/v2/")
            assert answer.status_code == 200
            answer.read()
            (conn,) = idle(pool)
            local_ports.add(conn.sock.getsockname()[1])
        assert len(local_ports) == 1
    finally:
        pool.close()
    assert idle(pool) == []


@pytest.fixture
def high_descriptors() -> Iterator[int]:
    """Hold the descriptors below 1100 open, so that sockets get numbers above FD_SETSIZE
    (1024, the most ``select()`` watches) as in a process with many files open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    held: list[int] = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        yield held[-1]
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_keepalive_with_descriptors_above_fd_setsize(
    pool: wire.HTTPTransport, proxy: FaultProxy, high_descriptors: int
) -> None:
    for _ in range(4):
        assert status_of(pool, f"{proxy.url}/v2/") == 200
    (conn,) = idle(pool)
    assert conn.sock.fileno() > high_descriptors
    assert [q.connection for q in proxy.requests] == [1, 1, 1, 1]


def test_concurrent_requests_never_share_a_connection(proxy: FaultProxy) -> None:
    pool = make_pool(max_idle=3)
    threads, rounds = 6, 8
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            for _ in range(rounds):
                answer = get(pool, f"{proxy.url}/v2/")
                assert answer.read() == b"{}"
        except BaseException as exc:
            failures.append(exc)

    try:
        workers = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(30)
        assert failures == []
        log = proxy.requests
        assert len(log) == threads * rounds
        assert all(q.status == 200 for q in log)
        assert len({q.connection for q in log}) <= threads * rounds // 2  # they were reused
        assert len(idle(pool)) <= 3  # max_idle
    finally:
        pool.close()


# --------------------------------------------------------------------------------------------
# broken answers
# --------------------------------------------------------------------------------------------


def test_truncated_body_is_remote_protocol_error_and_the_connection_is_dropped(
    pool: wire.HTTPTransport, proxy: FaultProxy, repo_name: str
) -> None:
    digest = push_blob(pool, proxy.url, repo_name)
    blob = f"{proxy.url}/v2/{repo_name}/blobs/{digest}"
    proxy.add_rule(Rule(method="GET", path="/blobs/", times=1, action=TruncateResponse(70_000)))
    answer = get(pool, blob)
    assert answer.headers["content-length"] == str(len(BLOB))
    received = bytearray()
    with pytest.raises(wire.RemoteProtocolError, match="before the end"):
        for chunk in answer.iter_raw():
            received += chunk
    assert bytes(received) == BLOB[:70_000]
    assert answer.is_closed
    assert idle(pool) == []
    assert get(pool, blob).read() == BLOB
    truncated, again = proxy.requests[-2:]
    assert truncated.rule == "TruncateResponse"
    assert again.connection != truncated.connection


def test_reset_mid_body_is_a_network_error(
    pool: wire.HTTPTransport, proxy: FaultProxy, repo_name: str
) -> None:
    digest = push_blob(pool, proxy.url, repo_name)
    proxy.add_rule(Rule(method="GET", path="/blobs/", times=1, action=ResetResponse(70_000)))
    answer = get(pool, f"{proxy.url}/v2/{repo_name}/blobs/{digest}")
    with pytest.raises((wire.ReadError, wire.RemoteProtocolError)):
        answer.read()
    assert answer.is_closed
    assert idle(pool) == []


def test_reset_before_answering_on_a_fresh_connection_fails_fast(proxy: FaultProxy) -> None:
    pool = make_pool(read_timeout=30.0)
    proxy.add_rule(Rule(path="^/v2/$", times=1, action=ResetRequest(0)))
    started = time.monotonic()
    try:
        with pytest.raises((wire.RemoteProtocolError, wire.ReadError)):
            get(pool, f"{proxy.url}/v2/")
    finally:
        pool.close()
    assert time.monotonic() - started < 5  # an error, not a wait for the read timeout
    (only,) = proxy.requests  # a fresh connection: not tried again
    assert only.rule == "ResetRequest"


def test_read_timeout(proxy: FaultProxy) -> None:
    pool = make_pool(read_timeout=0.3)
    proxy.add_rule(Rule(path="^/v2/$", times=1, action=Delay(3.0)))
    started = time.monotonic()
    try:
        with pytest.raises(wire.ReadTimeout):
            get(pool, f"{proxy.url}/v2/")
        assert time.monotonic() - started < 2.5
        assert idle(pool) == []
        assert status_of(pool, f"{proxy.url}/v2/") == 200  # the delay is over
    finally:
        pool.close()


def test_connect_refused_is_connect_error_and_never_counted_as_sent(proxy: FaultProxy) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v2/"
    pool = make_pool()
    with pytest.raises(wire.ConnectError, match="refused") as caught:
        get(pool, url)
    assert not isinstance(caught.value, wire.TimeoutException)

    stats = RequestStats()
    client = build_http_client(TransportOptions(connect_timeout=5, read_timeout=5), stats)
    try:
        with pytest.raises(wire.ConnectError):
            client.send(client.build_request("GET", url))
        assert stats.total == 0
        # One that went out and lost its answer is counted: the count above could fail.
        proxy.add_rule(Rule(path="^/v2/$", times=1, action=ResetRequest(0)))
        with pytest.raises(wire.NetworkError):
            client.send(client.build_request("GET", f"{proxy.url}/v2/"))
        assert stats.total == 1
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# a keep-alive connection the server closed
# --------------------------------------------------------------------------------------------


def test_idle_connection_closed_by_the_server_is_not_used(
    pool: wire.HTTPTransport, proxy: FaultProxy, repo_name: str
) -> None:
    """A server ends idle keep-alive connections (its idle timeout): the next request, even a
    one-shot stream that could not be sent twice, goes out on a new connection."""
    location = start_upload(pool, proxy.url, repo_name)
    assert proxy.drop_connections() == 1
    wait_for_fin(pool)
    digest = digest_of(BLOB)
    put = location.copy_merge_params([("digest", digest)])
    answer = send(pool, "PUT", put, content=in_chunks(BLOB))
    assert answer.status_code == 201, answer.read()
    answer.read()
    post, upload = proxy.requests
    assert (post.connection, upload.connection) == (1, 2)
    assert upload.bytes_in == len(BLOB)


@pytest.fixture
def closes_after_check(
    proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], list[bool]]:
    """The race a liveness check cannot win: the server closes the connection just after the
    check found it open (its idle timeout expired in between). The real check runs; then the
    proxy closes its connections and the FIN arrives before the request is written."""
    checked: list[bool] = []
    real = connections._alive

    def check(conn: Any) -> bool:
        alive = real(conn)
        checked.append(alive)
        proxy.drop_connections()
        readable, _, _ = select.select([conn.sock], [], [], 5)
        assert readable
        return alive

    def arm() -> list[bool]:
        checked.clear()
        monkeypatch.setattr(connections, "_alive", check)
        return checked

    return arm


def test_stale_connection_is_retried_for_a_replayable_request(
    pool: wire.HTTPTransport,
    proxy: FaultProxy,
    repo_name: str,
    closes_after_check: Callable[[], list[bool]],
) -> None:
    location = start_upload(pool, proxy.url, repo_name)
    checked = closes_after_check()
    digest = digest_of(BLOB)
    answer = send(pool, "PUT", location.copy_merge_params([("digest", digest)]), content=BLOB)
    assert answer.status_code == 201, answer.read()
    answer.read()
    assert checked == [True]
    checked = closes_after_check()
    assert get(pool, f"{proxy.url}/v2/{repo_name}/blobs/{digest}").read() == BLOB
    assert checked == [True]
    log = proxy.requests
    assert [q.method for q in log] == ["POST", "PUT", "GET"]
    assert [q.connection for q in log] == [1, 2, 3]  # each retry on a new connection


def test_stale_connection_is_not_retried_for_a_patch(
    pool: wire.HTTPTransport,
    proxy: FaultProxy,
    repo_name: str,
    closes_after_check: Callable[[], list[bool]],
) -> None:
    """A PATCH (a chunk of an upload) is not idempotent: even with a bytes body the transport
    does not send it again; the upload's resume logic knows where the registry stands."""
    location = start_upload(pool, proxy.url, repo_name)
    checked = closes_after_check()
    headers = {"Content-Type": "application/octet-stream", "Content-Range": f"0-{len(BLOB) - 1}"}
    with pytest.raises(wire.RemoteProtocolError):
        send(pool, "PATCH", location, headers=headers, content=BLOB)
    assert checked == [True]
    assert [q.method for q in proxy.requests] == ["POST"]  # nothing sent on a new connection


def test_stale_connection_is_not_retried_with_a_one_shot_body(
    pool: wire.HTTPTransport,
    proxy: FaultProxy,
    repo_name: str,
    closes_after_check: Callable[[], list[bool]],
) -> None:
    location = start_upload(pool, proxy.url, repo_name)
    pulled: list[int] = []

    def upload() -> Iterator[bytes]:
        for chunk in in_chunks(BLOB):
            pulled.append(len(chunk))
            yield chunk

    checked = closes_after_check()
    digest = digest_of(BLOB)
    body = upload()
    with pytest.raises(wire.RemoteProtocolError):
        send(pool, "PUT", location.copy_merge_params([("digest", digest)]), content=body)
    assert checked == [True]
    assert sum(pulled) <= len(BLOB)  # read once at most, never from the start again
    assert [q.method for q in proxy.requests] == ["POST"]  # nothing sent on a new connection
    assert idle(pool) == []
    head = send(pool, "HEAD", f"{proxy.url}/v2/{repo_name}/blobs/{digest}")
    assert head.status_code == 404
    head.read()


# --------------------------------------------------------------------------------------------
# what is sent: headers, bodies
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Token", f"{SECRET}\r\nX-Injected: 1"),
        ("X-Token", f"{SECRET}\n"),
        ("X-Token", f"{SECRET}\r"),
        ("X-Token", f"{SECRET}\x00"),
        ("X-Token", f" {SECRET}"),
        ("X-Token", f"{SECRET}\t"),
        ("X-Token", f"{SECRET}\u20ac"),  # not even Latin-1
        ("X Token", SECRET),
        ("X-Token:", SECRET),
        (f"{SECRET}\r\nX", "1"),
    ],
)
def test_invalid_header_is_refused_before_anything_is_sent(
    pool: wire.HTTPTransport, proxy: FaultProxy, name: str, value: str
) -> None:
    with pytest.raises(wire.LocalProtocolError) as caught:
        get(pool, f"{proxy.url}/v2/", headers=[("Accept", "*/*"), (name, value)])
    assert SECRET not in rendered(caught.value)
    assert proxy.requests == []
    assert status_of(pool, f"{proxy.url}/v2/") == 200
    (seen,) = proxy.requests
    assert seen.connection == 1  # the first connection the proxy ever accepted


def put_streamed(
    pool: wire.HTTPTransport, base: str, repo: str, headers: dict[str, str]
) -> wire.Response:
    """Upload ``BLOB`` to ``repo`` as one PUT whose body is a generator; the 201, read."""
    location = start_upload(pool, base, repo)
    answer = send(
        pool,
        "PUT",
        location.copy_merge_params([("digest", digest_of(BLOB))]),
        headers=headers,
        content=in_chunks(BLOB),
    )
    assert answer.status_code == 201, answer.read()
    answer.read()
    return answer


def test_streamed_upload_without_length_is_sent_chunked(
    pool: wire.HTTPTransport, proxy: FaultProxy, repo_name: str
) -> None:
    digest = digest_of(BLOB)
    answer = put_streamed(pool, proxy.url, repo_name, {"Content-Type": "application/octet-stream"})
    assert answer.headers["docker-content-digest"] == digest
    upload = proxy.requests[-1]
    assert upload.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in upload.headers
    assert upload.bytes_in == len(BLOB)
    assert get(pool, f"{proxy.url}/v2/{repo_name}/blobs/{digest}").read() == BLOB


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
def test_streamed_upload_straight_to_the_registry(
    pool: wire.HTTPTransport, open_registry: RegistryServer, repo_name: str, length: bool
) -> None:
    data = os.urandom(200_001)
    digest = digest_of(data)
    location = start_upload(pool, open_registry.url, repo_name)
    headers = {"Content-Length": str(len(data))} if length else {}
    answer = send(
        pool,
        "PUT",
        location.copy_merge_params([("digest", digest)]),
        headers=headers,
        content=in_chunks(data, 65_536),
    )
    assert answer.status_code == 201, answer.read()
    answer.read()
    blob = get(pool, f"{open_registry.url}/v2/{repo_name}/blobs/{digest}")
    assert blob.headers["docker-content-digest"] == digest
    assert blob.read() == data


def test_streamed_upload_with_explicit_length_is_not_chunked(
    pool: wire.HTTPTransport, proxy: FaultProxy, repo_name: str
) -> None:
    digest = digest_of(BLOB)
    location = start_upload(pool, proxy.url, repo_name)
    answer = send(
        pool,
        "PUT",
        location.copy_merge_params([("digest", digest)]),
        headers={"Content-Length": str(len(BLOB))},
        content=in_chunks(BLOB),
    )
    assert answer.status_code == 201, answer.read()
    answer.read()
    upload = proxy.requests[-1]
    assert upload.headers["content-length"] == str(len(BLOB))
    assert "transfer-encoding" not in upload.headers
    assert upload.bytes_in == len(BLOB)


@pytest.mark.parametrize(
    "failure",
    [
        PermissionError(13, "Permission denied", "/layout/blobs/sha256/ab"),
        ConnectionResetError(104, "Connection reset by peer"),  # another registry's stream
        ValueError("layer changed while being read"),
    ],
    ids=["permission", "source-reset", "value"],
)
def test_a_failing_body_source_is_reraised_as_it_is(
    pool: wire.HTTPTransport, proxy: FaultProxy, repo_name: str, failure: Exception
) -> None:
    location = start_upload(pool, proxy.url, repo_name)

    def source() -> Iterator[bytes]:
        yield BLOB[:100_000]
        raise failure

    put = location.copy_merge_params([("digest", digest_of(BLOB))])
    with pytest.raises(type(failure)) as caught:
        send(pool, "PUT", put, content=source())
    assert caught.value is failure
    assert not isinstance(caught.value, wire.HTTPError)
    assert idle(pool) == []  # half a request went out on it
    assert status_of(pool, f"{proxy.url}/v2/") == 200
    # the upload's record may come after the GET's: its connection is read on another thread
    (after,) = [q for q in proxy.requests if q.method == "GET"]
    assert after.connection != 1


def _push_oci_manifest(pool: wire.HTTPTransport, base: str, repo: str) -> bytes:
    config = b"{}"
    config_digest = push_blob(pool, base, repo, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    answer = send(
        pool,
        "PUT",
        f"{base}/v2/{repo}/manifests/latest",
        headers={"Content-Type": OCI_MANIFEST},
        content=manifest,
    )
    assert answer.status_code == 201, answer.read()
    answer.read()
    return manifest


def test_repeated_header_names_all_reach_the_server(
    pool: wire.HTTPTransport, proxy: FaultProxy, repo_name: str
) -> None:
    manifest = _push_oci_manifest(pool, proxy.url, repo_name)
    accept = [("Accept", OCI_MANIFEST), ("Accept", DOCKER_MANIFEST)]
    answer = get(pool, f"{proxy.url}/v2/{repo_name}/manifests/latest", headers=accept)
    # distribution answers an OCI manifest by tag only to a client that accepts OCI
    assert answer.status_code == 200, answer.read()
    assert answer.read() == manifest
    assert proxy.requests[-1].headers["accept"] == f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"


def test_host_comes_from_the_url_once(
    pool: wire.HTTPTransport, proxy: FaultProxy, open_registry: RegistryServer
) -> None:
    direct = get(pool, f"{open_registry.url}/v2/", headers={"host": "elsewhere.example"})
    assert direct.status_code == 200  # Go answers 400 to a request with two Host lines
    direct.read()
    get(pool, f"{proxy.url}/v2/", headers={"HOST": "elsewhere.example"}).read()
    assert proxy.requests[-1].headers["host"] == proxy.host


def test_explicit_chunked_transfer_encoding_is_framed(proxy: FaultProxy, repo_name: str) -> None:
    pool = make_pool(read_timeout=3.0)
    try:
        digest = digest_of(BLOB)
        put_streamed(pool, proxy.url, repo_name, {"Transfer-Encoding": "chunked"})
        assert proxy.requests[-1].bytes_in == len(BLOB)
        assert get(pool, f"{proxy.url}/v2/{repo_name}/blobs/{digest}").read() == BLOB
    finally:
        pool.close()


# --------------------------------------------------------------------------------------------
# proxies
# --------------------------------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://registry.example:5000/v2/", "registry.example:5000"),
        ("http://registry.example/v2/", "registry.example"),
        ("http://[fd00::5]:5000/v2/", "[fd00::5]:5000"),
    ],
)
def test_plain_http_through_a_proxy_sends_the_absolute_url(
    proxy: FaultProxy, url: str, host: str
) -> None:
    """The fault proxy stands in for a forward proxy: it relays whatever it is sent to the
    registry, so an answer proves the request went to the proxy only (the names do not
    resolve, and nothing connects to the IPv6 address)."""
    pool = make_pool(proxy=wire.Proxy(f"http://{PROXY_USER}:{PROXY_PASSWORD}@{proxy.host}"))
    try:
        answer = get(pool, url, headers={"Authorization": "Basic c2VjcmV0"})
        assert answer.status_code == 200
        assert answer.read() == b"{}"
        assert status_of(pool, url) == 200
    finally:
        pool.close()
    first, second = proxy.requests
    assert first.path == url
    assert first.headers["host"] == host
    assert first.headers["proxy-authorization"] == _basic(PROXY_USER, PROXY_PASSWORD)
    assert first.headers["authorization"] == "Basic c2VjcmV0"
    assert second.connection == first.connection


class ConnectRecorder:
    """A loopback listener that reads one request head (a CONNECT) and refuses it."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.head = b""
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._listener.accept()
        with conn:
            conn.settimeout(5)
            while b"\r\n\r\n" not in self.head:
                data = conn.recv(4096)
                if not data:
                    break
                self.head += data
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self._thread.join(5)
        self._listener.close()


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("https://registry.example:5000/v2/", "registry.example:5000"),
        ("https://registry.example/v2/", "registry.example:443"),
        ("https://[2001:db8::7]:5000/v2/", "[2001:db8::7]:5000"),
        ("https://[2001:db8::7]/v2/", "[2001:db8::7]:443"),
    ],
)
def test_connect_request_names_the_target(url: str, target: str) -> None:
    recorder = ConnectRecorder()
    pool = make_pool(proxy=wire.Proxy(f"http://{PROXY_USER}:{PROXY_PASSWORD}@{recorder.host}"))
    try:
        with pytest.raises(wire.ProxyError, match="403"):
            get(pool, url)
    finally:
        pool.close()
        recorder.close()
    lines = recorder.head.decode("latin-1").split("\r\n")
    method, authority, _ = lines[0].split(" ")
    assert (method, authority) == ("CONNECT", target)
    assert f"Proxy-Authorization: {_basic(PROXY_USER, PROXY_PASSWORD)}" in lines


@pytest.fixture(scope="module")
def squid() -> Iterator[SquidProxy]:
    binary = shutil.which("squid") or shutil.which("squid", path="/usr/sbin")
    if binary is None:
        pytest.fail("squid not found; install with: apt-get install -y squid", pytrace=False)
    users = {PROXY_USER: PROXY_PASSWORD}
    with SquidProxy({PROXIED_NAME: "127.0.0.1"}, users=users, binary=binary) as proxy:
        yield proxy


def test_tls_through_a_connect_tunnel_reuses_it(
    squid: SquidProxy, tls_registry: RegistryServer
) -> None:
    before = len(squid.requests(settle=0.2))
    pool = make_pool(
        ssl_context=tls_registry.ssl_context,
        proxy=wire.Proxy(squid.url(PROXY_USER, PROXY_PASSWORD)),
    )
    try:
        for _ in range(5):
            answer = get(pool, f"https://{PROXIED_NAME}:{tls_registry.port}/v2/")
            assert answer.status_code == 200
            assert answer.read() == b"{}"
    finally:
        pool.close()
    (tunnel,) = squid.requests()[before:]
    assert (tunnel.method, tunnel.url) == ("CONNECT", f"{PROXIED_NAME}:{tls_registry.port}")
    assert (tunnel.status, tunnel.user) == (200, PROXY_USER)


def test_refused_proxy_credentials_are_a_proxy_error(
    squid: SquidProxy, tls_registry: RegistryServer
) -> None:
    pool = make_pool(
        ssl_context=tls_registry.ssl_context,
        proxy=wire.Proxy(squid.url(PROXY_USER, "wrong-password")),
    )
    try:
        with pytest.raises(wire.ProxyError, match="407") as caught:
            get(pool, f"https://{PROXIED_NAME}:{tls_registry.port}/v2/")
    finally:
        pool.close()
    assert "wrong-password" not in rendered(caught.value)


class Ipv6Relay:
    """A TCP relay on ``[::1]`` to a server on 127.0.0.1: an IPv6 address to reach the TLS
    registry at, for a proxy to tunnel to (the registry listens on IPv4 only)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
        self.port: int = self._listener.getsockname()[1]
        self._target = target
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            source.close()

    def close(self) -> None:
        self._listener.close()


def test_tls_to_an_ipv6_registry_through_a_connect_tunnel(
    squid: SquidProxy, tls_registry: RegistryServer
) -> None:
    relay = Ipv6Relay(("127.0.0.1", tls_registry.port))
    context = ssl.create_default_context(cafile=str(tls_registry.ca_file))
    context.check_hostname = False  # its certificate names 127.0.0.1, not ::1; the CA is checked
    before = len(squid.requests(settle=0.2))
    pool = make_pool(ssl_context=context, proxy=wire.Proxy(squid.url(PROXY_USER, PROXY_PASSWORD)))
    try:
        for _ in range(3):
            answer = get(pool, f"https://[::1]:{relay.port}/v2/")
            assert answer.status_code == 200
            assert answer.read() == b"{}"
    finally:
        pool.close()
        relay.close()
    (tunnel,) = squid.requests()[before:]
    assert (tunnel.method, tunnel.url, tunnel.status) == ("CONNECT", f"[::1]:{relay.port}", 200)


def test_a_body_finished_after_the_pool_closed_does_not_go_back(
    open_registry: RegistryServer,
) -> None:
    """Closing the pool closes idle connections; one still carrying an answer is closed when
    that answer ends, never pooled again."""
    transport = make_pool()
    answer = get(transport, f"{open_registry.url}/v2/")
    conn = answer._body._conn  # type: ignore[union-attr]
    transport.close()
    assert answer.read() is not None
    assert transport._idle == {}
    assert conn.sock is None, "the connection was closed, not kept"
