"""Fault matrix: whatever the network does, the destination ends up complete or untouched.

Every cell drives `regshift tag` / `regshift copy` (CLI or library) through a
:class:`~harness.proxy.FaultProxy` in front of a real registry, then checks the FINAL STATE at
the destination, straight from the registry: either the tag resolves to the source digest and
every child manifest and blob is there with the right bytes, or (for cells that must fail) the
tag is absent and no manifest was written.

Cross-registry copies go from ``open_registry`` to ``other_registry`` with the proxy on the
source side (``side="src"``) or on the destination side (``side="dst"``).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import math
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import regshift
from regshift import (
    Client,
    ClientOptions,
    DigestMismatch,
    TransportOptions,
    parse_reference,
)
from regshift.copying import CopyOptions, copy
from regshift.sample import SampleImage, SampleIndex, push_sample, random_image, random_index

from harness import pki
from harness.proxy import (
    Delay,
    FaultProxy,
    FlipByte,
    ProxiedRequest,
    ResetRequest,
    ResetResponse,
    Respond,
    RewriteHeader,
    Rule,
    TruncateResponse,
)
from harness.registry import RegistryServer
from harness.tokenserver import TokenServer
from support import SECRETS, CliResult, client_for, run_cli, seed

MiB = 1024 * 1024
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
SHORT_TOKEN_USER = ("carol", "carol-secret-pw-3")
SHORT_TOKEN_LIFETIME = 5

Sample = SampleImage | SampleIndex


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture
def src_proxy(open_registry: RegistryServer) -> Iterator[FaultProxy]:
    """A proxy in front of the source registry (``open_registry``)."""
    with FaultProxy(open_registry.host) as proxy:
        yield proxy
    assert proxy.errors == []


@pytest.fixture
def dst_proxy(other_registry: RegistryServer) -> Iterator[FaultProxy]:
    """A proxy in front of the destination registry (``other_registry``)."""
    with FaultProxy(other_registry.host) as proxy:
        yield proxy
    assert proxy.errors == []


@pytest.fixture(scope="session")
def short_token_registry(
    binaries: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    """A token-auth registry whose token server issues 5-second tokens."""
    user, password = SHORT_TOKEN_USER
    server = TokenServer(
        {user: password},
        token_lifetime=SHORT_TOKEN_LIFETIME,
        directory=tmp_path_factory.mktemp("short-token-server"),
    ).start()
    registry = RegistryServer(
        tmp_path_factory.mktemp("short-token-registry"),
        token=server,
        binary=binaries.docker_registry,
    )
    try:
        registry.start()
        yield registry
    finally:
        registry.stop()
        server.stop()


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Where a cross-registry copy reads and writes, and which proxy carries the faults."""

    src: str  # host[:port] regshift reads from
    dst: str  # host[:port] regshift writes to
    proxy: FaultProxy


def _route(side: str, src_proxy: FaultProxy, dst_proxy: FaultProxy) -> Route:
    src_upstream, dst_upstream = src_proxy.upstream, dst_proxy.upstream
    if side == "src":
        return Route(src_proxy.host, dst_upstream, src_proxy)
    return Route(src_upstream, dst_proxy.host, dst_proxy)


def compute_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _images(sample: Sample) -> tuple[SampleImage, ...]:
    return sample.images if isinstance(sample, SampleIndex) else (sample,)


def _blobs(sample: Sample) -> list[bytes]:
    seen: dict[str, bytes] = {}
    for image in _images(sample):
        for blob in image.blobs:
            seen.setdefault(compute_digest(blob), blob)
    return list(seen.values())


def _http(registry: RegistryServer, headers: dict[str, str] | None = None) -> httpx.Client:
    """A plain client talking to the registry itself (trusting its CA when it has TLS)."""
    context = registry.ssl_context
    verify: ssl.SSLContext | bool = context if context is not None else True
    return httpx.Client(base_url=registry.url, headers=headers or {}, verify=verify, timeout=10)


def assert_complete(
    registry: RegistryServer,
    repo: str,
    tag: str,
    sample: Sample,
    *,
    headers: dict[str, str] | None = None,
) -> None:
    """The tag resolves to the sample's digest; every child manifest and blob is intact."""
    with _http(registry, headers) as http:
        top = http.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
        assert top.status_code == 200, f"{repo}:{tag} missing: {top.status_code}"
        assert top.content == sample.manifest.raw
        assert top.headers["docker-content-digest"] == sample.manifest.digest
        if isinstance(sample, SampleIndex):
            for image in sample.images:
                child = http.get(
                    f"/v2/{repo}/manifests/{image.manifest.digest}", headers={"Accept": ACCEPT}
                )
                assert child.status_code == 200 and child.content == image.manifest.raw
        for blob in _blobs(sample):
            digest = compute_digest(blob)
            got = http.get(f"/v2/{repo}/blobs/{digest}")
            assert got.status_code == 200, f"blob {digest} missing"
            assert compute_digest(got.content) == digest, f"blob {digest} corrupted"


def assert_untouched(
    registry: RegistryServer, repo: str, tag: str, sample: Sample, *, absent_blobs: tuple[str, ...]
) -> None:
    """No tag, no manifest written since the registry's mark, and the given blobs absent."""
    with _http(registry) as http:
        top = http.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
        assert top.status_code == 404, f"{repo}:{tag} must not exist"
        for image in _images(sample):
            child = http.head(f"/v2/{repo}/manifests/{image.manifest.digest}")
            assert child.status_code == 404, "no partial manifest may be written"
        for digest in absent_blobs:
            assert http.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
    written = [r for r in registry.requests() if r.method == "PUT" and "/manifests/" in r.path]
    assert written == [], "no manifest PUT may reach the registry"


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("regshift: error: ")
    return lines[0]


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def _blob_put(digest: str) -> str:
    """Proxy path regex of the PUT committing ``digest`` (the query may encode the colon)."""
    return rf"/blobs/uploads/.*digest=sha256(:|%3A){_hex(digest)}"


def _sent(proxy: FaultProxy, method: str, part: str) -> list[ProxiedRequest]:
    """The ``method`` requests ``proxy`` saw with ``part`` in the path, oldest first."""
    return [r for r in proxy.requests if r.method == method and part in r.path]


def _copy_from(src_proxy: FaultProxy, dst: RegistryServer, repo: str) -> CliResult:
    """``regshift copy --json`` of ``repo:v1`` read through ``src_proxy``, written to ``dst``."""
    return run_cli("copy", "--json", f"{src_proxy.host}/{repo}:v1", f"{dst.host}/{repo}")


def _library_client(*, retries: int = 2) -> Client:
    """A client with a 0.05 s backoff, so retries show up in stats without slowing tests."""
    transport = TransportOptions(retries=retries, backoff=0.05, read_timeout=30.0)
    return Client(ClientOptions(transport=transport, cache_dir=None))


def _creds(registry: RegistryServer) -> tuple[str, str]:
    assert registry.username and registry.password
    SECRETS.add(registry.password)
    return registry.username, registry.password


def _bearer(server: TokenServer, repo: str) -> dict[str, str]:
    """A token of our own, for checking a token registry directly."""
    token = server.make_jwt([{"type": "repository", "name": repo, "actions": ["pull"]}])
    return {"Authorization": f"Bearer {token}"}


def _jwt_claims(authorization: str) -> dict[str, object]:
    payload = authorization.removeprefix("Bearer ").split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert isinstance(claims, dict)
    return claims


class ArrivalClock:
    """Time-stamps the requests a proxy sees (by polling its log every 10 ms)."""

    def __init__(self, proxy: FaultProxy) -> None:
        self._proxy = proxy
        self._seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ArrivalClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._poll()

    def _poll(self) -> None:
        now = time.time()
        for rec in self._proxy.requests:
            self._seen.setdefault(id(rec), now)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self._poll()

    def arrival(self, rec: object) -> float:
        return self._seen[id(rec)]


# --------------------------------------------------------------------------------------------
# 5xx and 429
# --------------------------------------------------------------------------------------------


UNAVAILABLE = Respond.oci_error(503, "UNAVAILABLE", "injected fault")


@pytest.mark.parametrize("side", ["src", "dst"])
def test_503_every_third_request_copy(
    side: str,
    src_proxy: FaultProxy,
    dst_proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    sample = random_index(seed=901, layers=1, layer_size=4096)
    seed(open_registry.host, repo_name, "v1", sample)
    route = _route(side, src_proxy, dst_proxy)
    rule = route.proxy.add_rule(Rule(every=3, action=UNAVAILABLE))
    # The library, for a short backoff (the CLI's 0.5 s doubling backoff would make this slow),
    # and one job, so which request gets the 503 does not depend on thread scheduling.
    with _library_client(retries=3) as client:
        (result,) = copy(
            client,
            f"{route.src}/{repo_name}:v1",
            [f"{route.dst}/{repo_name}:v1"],
            options=CopyOptions(jobs=1),
        )
        retries = client.stats.retries
    assert result.digest == sample.manifest.digest
    assert rule.hits >= 2, "the fault must actually have been injected"
    assert retries >= 2
    assert_complete(other_registry, repo_name, "v1", sample)


def test_503_every_third_request_tag(
    src_proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=902)
    seed(open_registry.host, repo_name, "v1", image)
    rule = src_proxy.add_rule(Rule(every=3, action=UNAVAILABLE))
    new_tags = ["a", "b", "c"]
    with _library_client(retries=3) as client:
        result = regshift.tag(client, f"{src_proxy.host}/{repo_name}:v1", new_tags)
        retries = client.stats.retries
    assert result.ok and [o.action for o in result.outcomes] == ["tagged"] * 3
    assert rule.hits >= 2 and retries == rule.hits
    for tag in new_tags:
        assert_complete(open_registry, repo_name, tag, image)


def _retry_after_value(form: str) -> tuple[str, float]:
    """A Retry-After header value asking for at least ~1 s, and the epoch it points at."""
    if form == "seconds":
        return "1", time.time() + 1
    when = math.ceil(time.time() + 1)  # an HTTP-date has whole seconds: 1-2 s from now
    return email.utils.formatdate(when, usegmt=True), float(when)


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_retry_after_is_honoured_by_tag(
    form: str, src_proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=903)
    seed(open_registry.host, repo_name, "v1", image)
    value, not_before = _retry_after_value(form)
    src_proxy.add_rule(
        Rule(method="GET", path="/manifests/", times=1, action=Respond.retry_after(429, value))
    )
    start = time.monotonic()
    with _library_client() as client:
        result = regshift.tag(client, f"{src_proxy.host}/{repo_name}:v1", ["limited"])
        retries, waited = client.stats.retries, client.stats.retry_wait
    elapsed = time.monotonic() - start
    assert result.ok and result.digest == image.manifest.digest
    assert retries == 1
    # The backoff is 0.05 s: only Retry-After explains a wait this long.
    assert waited >= (0.95 if form == "seconds" else 0.5)
    assert elapsed >= waited
    gets = _sent(src_proxy, "GET", "/manifests/")
    assert [r.status for r in gets] == [429, 200]
    assert time.time() >= not_before - 0.1, "the retry came before the registry allowed it"
    assert_complete(open_registry, repo_name, "limited", image)


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_retry_after_is_honoured_by_copy(
    form: str,
    dst_proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    image = random_image(seed=904, layers=2)
    src = seed(open_registry.host, repo_name, "v1", image)
    value, not_before = _retry_after_value(form)
    dst_proxy.add_rule(
        Rule(method="HEAD", path="/blobs/", times=1, action=Respond.retry_after(429, value))
    )
    start = time.monotonic()
    with _library_client() as client:
        (result,) = copy(client, src, [f"{dst_proxy.host}/{repo_name}:v1"])
        retries, waited = client.stats.retries, client.stats.retry_wait
    elapsed = time.monotonic() - start
    assert result.digest == image.manifest.digest
    assert retries == 1 and waited >= (0.95 if form == "seconds" else 0.5)
    assert elapsed >= waited
    assert time.time() >= not_before - 0.1
    statuses = [r.status for r in dst_proxy.requests]
    assert statuses.count(429) == 1
    # Every destination request (the 429 and its retry included) + one GET per source blob.
    assert result.requests == len(statuses) + len(image.blobs)
    assert_complete(other_registry, repo_name, "v1", image)


def test_429_on_streamed_blob_put_restarts_that_blob(
    dst_proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    image = random_image(seed=905, layers=2, layer_size=64 * 1024)
    src = seed(open_registry.host, repo_name, "v1", image)
    layer = image.manifest.layers[0].digest
    dst_proxy.add_rule(
        Rule(method="PUT", path=_blob_put(layer), times=1, action=Respond.retry_after(429, 1))
    )
    open_registry.mark()
    start = time.monotonic()
    result = run_cli("copy", "--json", str(src), f"{dst_proxy.host}/{repo_name}:v1")
    elapsed = time.monotonic() - start
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["digest"] == image.manifest.digest and doc["blobs"]["streamed"] == 3
    assert elapsed >= 1.0, "Retry-After of the refused upload was not honoured"
    puts = _sent(dst_proxy, "PUT", _hex(layer))
    assert [r.status for r in puts] == [429, 201]
    # The streamed body cannot be replayed: the blob was read from the source again.
    assert open_registry.count("GET", f"/blobs/{layer}") == 2
    assert_complete(other_registry, repo_name, "v1", image)


# --------------------------------------------------------------------------------------------
# dropped connections, truncation, corruption
# --------------------------------------------------------------------------------------------


def test_reset_mid_blob_download_restarts(
    src_proxy: FaultProxy, other_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=906, layers=2, layer_size=256 * 1024)
    seed(src_proxy.upstream, repo_name, "v1", image)
    layer = image.manifest.layers[1].digest
    src_proxy.add_rule(
        Rule(method="GET", path=f"/blobs/{layer}", times=1, action=ResetResponse(100_000))
    )
    result = _copy_from(src_proxy, other_registry, repo_name)
    assert result.code == 0, result.stderr
    assert result.json()["digest"] == image.manifest.digest
    gets = _sent(src_proxy, "GET", layer)
    assert [r.error for r in gets] == ["ResetResponse", None]
    assert_complete(other_registry, repo_name, "v1", image)


def test_reset_mid_monolithic_upload_restarts(
    dst_proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    image = random_image(seed=907, layers=2, layer_size=256 * 1024)
    src = seed(open_registry.host, repo_name, "v1", image)
    layer = image.manifest.layers[0].digest
    dst_proxy.add_rule(
        Rule(method="PUT", path=_blob_put(layer), times=1, action=ResetRequest(100_000))
    )
    result = run_cli("copy", "--json", str(src), f"{dst_proxy.host}/{repo_name}:v1")
    assert result.code == 0, result.stderr
    puts = _sent(dst_proxy, "PUT", _hex(layer))
    assert [r.error for r in puts] == ["ResetRequest", None]
    assert_complete(other_registry, repo_name, "v1", image)


def test_reset_mid_chunk_resumes(
    dst_proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    image = random_image(seed=908, layers=1, layer_size=3 * MiB + 1234, raw_layers=True)
    src = seed(open_registry.host, repo_name, "v1", image)
    chunk = 1 * MiB
    patch = dst_proxy.add_rule(
        Rule(method="PATCH", skip=1, times=1, action=ResetRequest(chunk // 2))
    )
    with _library_client() as client:
        (result,) = copy(
            client,
            src,
            [f"{dst_proxy.host}/{repo_name}:v1"],
            options=CopyOptions(chunk_size=chunk, chunked_threshold=2 * MiB),
        )
    assert patch.hits == 1
    assert result.digest == image.manifest.digest
    assert 0 < result.resent_bytes <= chunk, "a resume re-sends at most one chunk"
    layer_posts = [r for r in dst_proxy.requests if r.method == "POST"]
    assert len(layer_posts) == 2, "config + layer: one session each, the layer was resumed"
    status_gets = _sent(dst_proxy, "GET", "/blobs/uploads/")
    assert len(status_gets) == 1
    assert_complete(other_registry, repo_name, "v1", image)


def test_truncated_blob_download_is_never_committed(
    src_proxy: FaultProxy, other_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=909, layers=2, layer_size=256 * 1024)
    seed(src_proxy.upstream, repo_name, "v1", image)
    layer = image.manifest.layers[0].digest
    src_proxy.add_rule(
        Rule(method="GET", path=f"/blobs/{layer}", times=1, action=TruncateResponse(150_000))
    )
    other_registry.mark()
    result = _copy_from(src_proxy, other_registry, repo_name)
    assert result.code == 0, result.stderr
    gets = _sent(src_proxy, "GET", layer)
    assert [r.error for r in gets] == ["TruncateResponse", None]
    commits = [
        r
        for r in other_registry.requests()
        if r.method == "PUT" and _hex(layer) in r.path and r.status == 201
    ]
    assert len(commits) == 1, "only the complete upload may be committed"
    assert_complete(other_registry, repo_name, "v1", image)


def test_flipped_byte_on_every_attempt_fails_and_writes_nothing(
    src_proxy: FaultProxy, other_registry: RegistryServer, repo_name: str
) -> None:
    sample = random_index(seed=910, layers=2, layer_size=64 * 1024)
    seed(src_proxy.upstream, repo_name, "v1", sample)
    layer = sample.images[1].manifest.layers[0].digest
    rule = src_proxy.add_rule(Rule(method="GET", path=f"/blobs/{layer}", action=FlipByte(5000)))
    other_registry.mark()
    result = _copy_from(src_proxy, other_registry, repo_name)
    assert result.code == 1
    line = _one_line(result.stderr)
    assert "digest mismatch" in line and layer in line
    assert result.json()["error"]["exitCode"] == 1
    assert rule.hits >= 1
    assert_untouched(other_registry, repo_name, "v1", sample, absent_blobs=(layer,))


# --------------------------------------------------------------------------------------------
# slow and hanging registries
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["tag", "copy-src", "copy-dst"])
def test_slow_registry_succeeds(
    command: str,
    src_proxy: FaultProxy,
    dst_proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    image = random_image(seed=911, layers=1)
    seed(open_registry.host, repo_name, "v1", image)
    slow = Rule(action=Delay(0.2))
    if command == "tag":
        src_proxy.add_rule(slow)
        result = run_cli("tag", f"{src_proxy.host}/{repo_name}:v1", "slow")
        assert result.code == 0, result.stderr
        assert_complete(open_registry, repo_name, "slow", image)
        return
    route = _route(command.removeprefix("copy-"), src_proxy, dst_proxy)
    route.proxy.add_rule(slow)
    result = run_cli("copy", f"{route.src}/{repo_name}:v1", f"{route.dst}/{repo_name}:v1")
    assert result.code == 0, result.stderr
    assert slow.hits >= 3
    assert_complete(other_registry, repo_name, "v1", image)


@pytest.mark.parametrize("command", ["tag", "copy-src", "copy-dst"])
def test_hanging_registry_times_out(
    command: str,
    src_proxy: FaultProxy,
    dst_proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    image = random_image(seed=912)
    seed(open_registry.host, repo_name, "v1", image)
    other_registry.mark()
    flags = ("--timeout", "1", "--retries", "0")
    start = time.monotonic()
    if command == "tag":
        src_proxy.add_rule(Rule(action=Delay(30)))
        result = run_cli("tag", *flags, f"{src_proxy.host}/{repo_name}:v1", "never")
    else:
        route = _route(command.removeprefix("copy-"), src_proxy, dst_proxy)
        route.proxy.add_rule(Rule(action=Delay(30)))
        result = run_cli(
            "copy", *flags, f"{route.src}/{repo_name}:v1", f"{route.dst}/{repo_name}:v1"
        )
    elapsed = time.monotonic() - start
    assert result.code == 1
    assert "timed out" in _one_line(result.stderr)
    assert elapsed < 5, f"took {elapsed:.1f}s"
    if command == "tag":
        with _http(open_registry) as http:
            assert http.head(f"/v2/{repo_name}/manifests/never").status_code == 404
    else:
        assert_untouched(other_registry, repo_name, "v1", image, absent_blobs=())


# --------------------------------------------------------------------------------------------
# tokens: refresh before expiry, one re-authentication on a fresh challenge
# --------------------------------------------------------------------------------------------


def test_token_refreshed_during_long_copy(
    short_token_registry: RegistryServer, open_registry: RegistryServer, repo_name: str
) -> None:
    user, password = _creds(short_token_registry)
    server = short_token_registry.token_server
    assert server is not None
    image = random_image(seed=913, layers=3, layer_size=2048)
    src = seed(open_registry.host, repo_name, "v1", image)
    server.reset()
    with FaultProxy(short_token_registry.host) as proxy, ArrivalClock(proxy) as clock:
        # 4 blob uploads, one at a time, 1.6 s each: the copy outlives a 5 s token.
        proxy.add_rule(Rule(method="PUT", path="/blobs/uploads/", action=Delay(1.6)))
        start = time.monotonic()
        result = run_cli(
            "copy",
            "--json",
            "-j",
            "1",
            "-u",
            user,
            "--password-stdin",
            str(src),
            f"{proxy.host}/{repo_name}:v1",
            input=password,
        )
        elapsed = time.monotonic() - start
    assert result.code == 0, result.stderr
    assert elapsed > SHORT_TOKEN_LIFETIME + 1
    issued = server.requests
    assert len(issued) >= 2, "the token was never refreshed"
    assert all(r.status == 200 and r.user == user for r in issued)
    with_token = [r for r in proxy.requests if r.headers.get("authorization", "")]
    tokens = {r.headers["authorization"] for r in with_token}
    assert len(tokens) >= 2, "every request used the first token"
    for rec in with_token:
        exp = _jwt_claims(rec.headers["authorization"])["exp"]
        assert isinstance(exp, int)
        assert clock.arrival(rec) < exp, f"{rec.method} {rec.path} sent with an expired token"
    assert [r.status for r in proxy.requests if r.status == 401] == [401], (
        "only the very first request may be challenged"
    )
    assert_complete(
        short_token_registry, repo_name, "v1", image, headers=_bearer(server, repo_name)
    )


@pytest.mark.parametrize("command", ["tag", "copy"])
def test_fresh_challenge_on_put_reauthenticates_once(
    command: str,
    token_registry: RegistryServer,
    open_registry: RegistryServer,
    repo_name: str,
) -> None:
    user, password = _creds(token_registry)
    server = token_registry.token_server
    assert server is not None
    image = random_image(seed=914)
    if command == "tag":
        seed(token_registry.host, repo_name, "v1", image, username=user, password=password)
        new_tag = "again"
    else:
        src = seed(open_registry.host, repo_name, "v1", image)
        new_tag = "v1"
    challenge = (
        f'Bearer realm="{server.realm}",service="{server.service}",'
        f'scope="repository:{repo_name}:pull,push",error="invalid_token"'
    )
    expired = Respond.oci_error(
        401, "UNAUTHORIZED", "token expired", headers=[("WWW-Authenticate", challenge)]
    )
    with FaultProxy(token_registry.host) as proxy:
        rule = proxy.add_rule(
            Rule(method="PUT", path=f"/manifests/{new_tag}$", times=1, action=expired)
        )
        server.reset()
        if command == "tag":
            args = ["tag", f"{proxy.host}/{repo_name}:v1", new_tag]
        else:
            args = ["copy", str(src), f"{proxy.host}/{repo_name}:{new_tag}"]
        result = run_cli(*args, "-u", user, "--password-stdin", input=password)
        assert result.code == 0, result.stderr
        assert rule.hits == 1
        puts = _sent(proxy, "PUT", "/manifests/")
    assert [r.status for r in puts] == [401, 201], "retried exactly once"
    assert puts[0].headers["authorization"] != puts[1].headers["authorization"]
    assert len(server.requests) == 2, "one token for the operation, one re-authentication"
    assert_complete(token_registry, repo_name, new_tag, image, headers=_bearer(server, repo_name))


def test_a_failure_ends_the_other_blobs_retry_pauses(
    src_proxy: FaultProxy,
    dst_proxy: FaultProxy,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    """One blob fails for good while another waits out a long ``Retry-After``: the copy
    stops at once, the waiting blob starts no new upload, and no tag is written."""
    image = random_image(seed=918, layers=2, layer_size=32 * 1024)
    seed(src_proxy.upstream, repo_name, "v1", image)
    bad, busy = (d.digest for d in image.manifest.layers)
    src_proxy.add_rule(Rule(method="GET", path=f"/blobs/{bad}", action=Delay(1.0, FlipByte(10))))
    busy_put = f"digest=sha256(:|%3A){busy.split(':')[1]}"
    dst_proxy.add_rule(
        Rule(method="PUT", path=busy_put, times=1, action=Respond.retry_after(429, 30))
    )
    started = time.monotonic()
    with _library_client(retries=1) as client, pytest.raises(DigestMismatch):
        copy(client, f"{src_proxy.host}/{repo_name}:v1", [f"{dst_proxy.host}/{repo_name}:v1"])
    assert time.monotonic() - started < 10, "the 30 s pause was not cut short"
    busy_hex = busy.split(":")[1]
    busy_sessions = [r for r in dst_proxy.requests if r.method == "PUT" and busy_hex in r.path]
    assert len(busy_sessions) == 1, "no second upload of the waiting blob"
    assert not [
        r for r in other_registry.requests() if r.method == "PUT" and "/manifests/" in r.path
    ]


# --------------------------------------------------------------------------------------------
# a manifest PUT whose answer is lost
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["tag", "copy"])
def test_lost_manifest_put_response_is_checked_not_resent(
    command: str,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    """The registry stored the manifest; the answer never arrived.

    distribution answers a manifest PUT with ``Content-Length: 0``, so a connection reset
    right after the headers goes unnoticed. The inner proxy therefore announces a one-byte
    body that never comes, and the outer one resets the connection after the headers: the
    client sees the PUT fail although the registry processed it.
    """
    image = random_image(seed=915)
    registry = open_registry if command == "tag" else other_registry
    src = seed(open_registry.host, repo_name, "v1", image)
    new_tag = "lost" if command == "tag" else "v1"
    put = f"/manifests/{new_tag}$"
    with FaultProxy(registry.host) as inner, FaultProxy(inner.host) as outer:
        inner.add_rule(Rule(method="PUT", path=put, action=RewriteHeader("Content-Length", "1")))
        outer.add_rule(Rule(method="PUT", path=put, times=1, action=ResetResponse(0)))
        if command == "tag":
            args = ["tag", "--json", f"{outer.host}/{repo_name}:v1", new_tag]
        else:
            args = ["copy", "--json", str(src), f"{outer.host}/{repo_name}:{new_tag}"]
        result = run_cli(*args)
        assert result.code == 0, result.stderr
        seen = [(r.method, r.error) for r in outer.requests if r.path.endswith(f"/{new_tag}")]
        reached = [r for r in inner.requests if r.method == "PUT" and r.path.endswith(new_tag)]
    assert seen[-2:] == [("PUT", "ResetResponse"), ("HEAD", None)], "checked before re-sending"
    assert len(reached) == 1, "the manifest was not sent again"
    assert_complete(registry, repo_name, new_tag, image)


@pytest.mark.parametrize("already_tagged", [False, True])
def test_lost_multi_tag_put_response_is_checked_tag_by_tag(
    already_tagged: bool, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    """The same for a multi-tag push (``PUT /manifests/<digest>?tag=a&tag=b``).

    A HEAD of each tag tells whether the push did its work. Where the tags already resolve to
    the digest nothing is sent again; otherwise the push is sent again (distribution ignores
    ``?tag=``, so each tag then gets its own PUT). Neither teaches regshift anything about the
    registry's multi-tag support.
    """
    from regshift.capabilities import MULTI_TAG_PUSH, Capabilities

    image = random_image(seed=917)
    src = seed(open_registry.host, repo_name, "v1", image)
    if already_tagged:
        for name in ("a", "b"):
            seed(open_registry.host, repo_name, name, image)
    multi = r"/manifests/sha256:[0-9a-f]+\?tag=a&tag=b$"
    with FaultProxy(open_registry.host) as inner, FaultProxy(inner.host) as outer:
        lying = RewriteHeader("Content-Length", "1")
        inner.add_rule(Rule(method="PUT", path=multi, times=1, action=lying))
        outer.add_rule(Rule(method="PUT", path=multi, times=1, action=ResetResponse(0)))
        with client_for(cache_dir=tmp_path) as client:
            result = regshift.tag(client, f"{outer.host}/{repo_name}:{src.tag}", ["a", "b"])
        seen = [
            (r.method, r.path.rsplit("/", 1)[1].split("?")[0][:7], r.error)
            for r in outer.requests
            if "/manifests/" in r.path
        ]
    assert seen[:2] == [("GET", "v1", None), ("PUT", "sha256:", "ResetResponse")]
    if already_tagged:
        assert seen[2:] == [("HEAD", "a", None), ("HEAD", "b", None)], "nothing sent again"
        assert [o.method for o in result.outcomes] == ["multi-tag", "multi-tag"]
    else:
        assert seen[2:] == [
            ("HEAD", "a", None),  # not there: no need to look at b
            ("PUT", "sha256:", None),
            ("PUT", "a", None),
            ("PUT", "b", None),
        ]
        assert [o.method for o in result.outcomes] == ["put", "put"]
    assert Capabilities(tmp_path).get(outer.host, MULTI_TAG_PUSH) is (
        None if already_tagged else False
    )
    for name in ("a", "b"):
        assert_complete(open_registry, repo_name, name, image)


# --------------------------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------------------------


def test_ctrl_c_mid_copy_exits_130_and_writes_no_tag(
    dst_proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    image = random_image(seed=916, layers=3, layer_size=2048)
    src = seed(open_registry.host, repo_name, "v1", image)
    dst_proxy.add_rule(Rule(action=Delay(0.5)))
    other_registry.mark()
    # A Python-level handler here makes the child start with SIGINT at its default (a
    # KeyboardInterrupt), even when this test runs in a background job that ignores SIGINT.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "regshift", "copy", str(src), f"{dst_proxy.host}/{repo_name}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 15
        while not any(r.method == "POST" for r in dst_proxy.requests):  # uploads under way
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the copy never started uploading"
            time.sleep(0.05)
        time.sleep(0.3)
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=15)
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = stderr.decode()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert took < 5, f"the process took {took:.1f}s to stop"
    assert_untouched(other_registry, repo_name, "v1", image, absent_blobs=())


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["tag", "copy"])
def test_tls_wrong_ca_file_then_right_one(
    command: str,
    tls_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
    tmp_path: Path,
) -> None:
    assert tls_registry.ca_file is not None
    right = str(tls_registry.ca_file)
    wrong = str(pki.make_server_tls(tmp_path / "another-ca").ca_file)
    image = random_image(seed=917)
    ref = parse_reference(f"{tls_registry.host}/{repo_name}:v1")
    with client_for(ca_file=right) as client:
        push_sample(client, ref, image)
    if command == "tag":
        args = ["tag", str(ref), "promoted"]
        target, tag = tls_registry, "promoted"
    else:
        args = ["copy", str(ref), f"{other_registry.host}/{repo_name}:v1"]
        target, tag = other_registry, "v1"
    other_registry.mark()
    # --retries 1: see test_tls_verification_failure_is_not_retried for the default.
    refused = run_cli(args[0], "--retries", "1", "--ca-file", wrong, *args[1:])
    assert refused.code == 1
    line = _one_line(refused.stderr)
    assert "certificate verification failed" in line and "--ca-file" in line
    if command == "copy":
        assert other_registry.requests() == [], "nothing may be sent to the destination"
    with _http(target) as http:
        assert http.head(f"/v2/{repo_name}/manifests/{tag}").status_code == 404
    ok = run_cli(args[0], "--ca-file", right, *args[1:])
    assert ok.code == 0, ok.stderr
    assert_complete(target, repo_name, tag, image)


def test_tls_verification_failure_is_not_retried(
    tls_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    """A certificate that does not verify will not verify a second later: fail at once."""
    wrong = str(pki.make_server_tls(tmp_path / "another-ca").ca_file)
    ref = f"{tls_registry.host}/{repo_name}:v1"
    result = run_cli("digest", "--debug", "--retries", "1", "--ca-file", wrong, ref)
    assert result.code == 1
    assert "certificate verification failed" in result.stderr
    retried = [line for line in result.stderr.splitlines() if "retrying" in line]
    assert retried == [], "a certificate verification failure was retried"
