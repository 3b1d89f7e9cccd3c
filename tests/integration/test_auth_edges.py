"""Authentication edge cases where a secret could leak or a bad input could crash.

Each test drives the CLI against the real registries (token auth, htpasswd) with a
:class:`~harness.proxy.FaultProxy` rewriting what the registry or token server says:

* a token realm on another host over plain HTTP gets nothing (a loopback registry is no
  licence for its realm);
* a 401 from a redirect target (blob storage) is not the registry's challenge;
* malformed credential sources are one-line auth errors, not "internal error";
* token requests are retried like any idempotent request, and an unreachable token
  server is a network error (exit 1), not an authentication failure (exit 3);
* parallel ``tag --from-file`` with a rotating one-time OAuth2 refresh token.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regshift.sample import random_image

from harness.proxy import FaultProxy, HeaderRecorder, ResetRequest, Respond, RewriteHeader, Rule
from harness.registry import RegistryServer
from harness.tokenserver import TokenServer, _first, _HTTPError, _Reply
from support import SECRETS, CliResult, registry_user, run_cli, seed, write_docker_config


@pytest.fixture(autouse=True)
def _remember_secrets(token_registry: RegistryServer, basic_registry: RegistryServer) -> None:
    registry_user(token_registry)
    registry_user(basic_registry)


_creds = registry_user


def _seed(registry: RegistryServer, repo: str, seed_: int) -> str:
    user, password = _creds(registry)
    image = random_image(seed=seed_)
    return str(seed(registry.host, repo, "v1", image, username=user, password=password))


def _run_as_user(registry: RegistryServer, *args: str) -> CliResult:
    user, password = _creds(registry)
    command, *rest = args
    return run_cli(command, "-u", user, "--password-stdin", *rest, input=password)


def _realm_to(token_registry: RegistryServer, realm: str) -> Rule:
    """A rule making the registry's challenges name ``realm`` as the token endpoint."""
    server = token_registry.token_server
    assert server is not None
    return Rule(
        action=RewriteHeader("WWW-Authenticate", lambda v: v and v.replace(server.realm, realm))
    )


def _decoded_basic(headers: dict[str, str]) -> str:
    auth = headers.get("authorization", "")
    return base64.b64decode(auth.split(" ", 1)[1]).decode() if auth.startswith("Basic ") else ""


# -- plain-HTTP realm on another host --------------------------------------------------------


def test_plain_http_realm_on_another_host_gets_no_credentials(
    token_registry: RegistryServer, repo_name: str
) -> None:
    """A loopback registry naming ``http://<not loopback>/token`` as realm: refused, nothing sent.

    ``0.0.0.0`` is not a loopback name, yet on Linux connecting to it reaches this machine's
    listeners: the token server behind ``tsproxy`` would get the password in clear text.
    """
    server = token_registry.token_server
    assert server is not None
    src = _seed(token_registry, repo_name, 1)
    with FaultProxy(server.url) as tsproxy, FaultProxy(token_registry.host) as regproxy:
        port = tsproxy.host.rsplit(":", 1)[1]
        regproxy.add_rule(_realm_to(token_registry, f"http://0.0.0.0:{port}/token"))
        ref = src.replace(token_registry.host, regproxy.host)
        result = _run_as_user(token_registry, "tag", ref, "leaked")
        assert result.code == 3, result.stderr
        assert "refusing to send credentials over plain HTTP to 0.0.0.0" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert tsproxy.requests == [], "the realm got a request"


# -- 401 from a redirect target --------------------------------------------------------------


def test_redirect_target_challenge_gets_no_credentials(
    basic_registry: RegistryServer, open_registry: RegistryServer, repo_name: str
) -> None:
    """Storage answering a redirected blob GET with 401 + its own Bearer realm: no token
    request, and the copy fails with that 401."""
    src = _seed(basic_registry, repo_name, 2)
    with (
        FaultProxy(basic_registry.host) as regproxy,
        FaultProxy(basic_registry.host) as storage,
        HeaderRecorder() as collector,
    ):
        challenge = f'Bearer realm="{collector.url}/token",service="storage"'
        storage.add_rule(Rule(action=Respond(401, {"WWW-Authenticate": challenge})))
        # Blob GETs come after the manifest GET taught us the Basic challenge: they are sent
        # with credentials at once, so storage's 401 is the first one their auth flow sees.
        redirect = Respond(307, {"Location": f"{storage.url}/blob"})
        regproxy.add_rule(Rule(method="GET", path="/blobs/sha256:", action=redirect))
        ref = src.replace(basic_registry.host, regproxy.host)
        result = _run_as_user(basic_registry, "copy", ref, f"{open_registry.host}/{repo_name}:v1")
        assert result.code == 3, result.stderr
        assert storage.requests, "the redirect was followed"
        assert all("authorization" not in r.headers for r in storage.requests)
        assert collector.requests == [], "the storage host's realm got a token request"


# -- malformed credential sources --------------------------------------------------------------


def _deep_json() -> str:
    return "[" * 100_000 + "]" * 100_000


def _install_printing_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``docker-credential-deep``, answering ``get`` with JSON nested 100,000 deep."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "docker-credential-deep"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stdin.read()\nprint('[' * 100000 + ']' * 100000)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.parametrize("source", ["deep-config", "deep-helper", "non-ascii-auth"])
def test_malformed_credential_source_is_an_auth_error(
    source: str,
    basic_registry: RegistryServer,
    repo_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = _seed(basic_registry, repo_name, 3)
    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    if source == "deep-config":
        config.write_text('{"auths": ' + _deep_json() + "}")
        where = str(config)
    elif source == "deep-helper":
        _install_printing_helper(tmp_path, monkeypatch)
        write_docker_config({"credsStore": "deep"})
        where = "docker-credential-deep"
    else:
        bad = "Ym9iOnBhc3M" + "é"  # base64 of "bob:pass" with a non-ASCII character
        SECRETS.add(bad)
        write_docker_config({"auths": {basic_registry.host: {"auth": bad}}})
        where = str(config)
    result = run_cli("digest", src)
    assert result.code == 3, result.stderr
    assert "internal error" not in result.stderr
    assert where in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# -- token requests: retries, unreachable token server -------------------------------------


@contextlib.contextmanager
def _token_server_failing_once(
    token_registry: RegistryServer, status: int
) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """Proxies in front of the token server (answering its first GET with ``status`` and
    ``Retry-After: 0``) and of the registry (whose challenges name the first one)."""
    server = token_registry.token_server
    assert server is not None
    with FaultProxy(server.url) as tsproxy, FaultProxy(token_registry.host) as regproxy:
        regproxy.add_rule(_realm_to(token_registry, f"{tsproxy.url}/token"))
        tsproxy.add_rule(Rule(method="GET", times=1, action=Respond.retry_after(status, 0)))
        yield tsproxy, regproxy


@pytest.mark.parametrize("status", [503, 429])
def test_token_request_retried_after_transient_error(
    status: int, token_registry: RegistryServer, repo_name: str
) -> None:
    src = _seed(token_registry, repo_name, 4)
    with _token_server_failing_once(token_registry, status) as (tsproxy, regproxy):
        result = _run_as_user(
            token_registry, "digest", src.replace(token_registry.host, regproxy.host)
        )
        assert result.code == 0, result.stderr
        assert result.stdout.strip() == random_image(seed=4).manifest.digest
        assert [r.status for r in tsproxy.requests] == [status, 200]


def test_a_retried_token_request_counts_in_the_json(
    token_registry: RegistryServer, repo_name: str
) -> None:
    """`retries` in tag's JSON counts token requests retried, as it counts every other."""
    src = _seed(token_registry, repo_name, 6)
    with _token_server_failing_once(token_registry, 503) as (_, regproxy):
        via = src.replace(token_registry.host, regproxy.host)
        result = _run_as_user(token_registry, "tag", "--json", via, "retried")
    assert result.code == 0, result.stderr
    assert result.json()["retries"] == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("fault", ["refused", "reset"])
def test_unreachable_token_server_is_a_network_error(
    fault: str, token_registry: RegistryServer, repo_name: str
) -> None:
    """Connection refused / reset at every attempt: retried (1 + 3 default retries), exit 1."""
    server = token_registry.token_server
    assert server is not None
    src = _seed(token_registry, repo_name, 5)
    with FaultProxy(server.url) as tsproxy, FaultProxy(token_registry.host) as regproxy:
        tsproxy.add_rule(Rule(action=ResetRequest(0)))
        base = f"http://127.0.0.1:{_closed_port()}" if fault == "refused" else tsproxy.url
        regproxy.add_rule(_realm_to(token_registry, f"{base}/token"))
        result = _run_as_user(
            token_registry, "digest", src.replace(token_registry.host, regproxy.host)
        )
        assert result.code == 1, result.stderr
        assert "token server 127.0.0.1" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        if fault == "reset":
            assert len(tsproxy.requests) == 4


# -- rotating refresh tokens -----------------------------------------------------------------


class _RotatingTokenServer(TokenServer):
    """A token server whose refresh tokens are single-use: each refresh_token grant returns a
    new one and forgets the old (OAuth2 refresh token rotation). Uses the harness server's
    internals: it has no rotation switch of its own."""

    def _handle_post(self, form: dict[str, list[str]]) -> _Reply:
        if _first(form, "grant_type") != "refresh_token":
            return super()._handle_post(form)
        with self._lock:
            owner = self._refresh_tokens.pop(_first(form, "refresh_token") or "", None)
        if owner is None:
            raise _HTTPError(401, "invalid_grant", "unknown refresh token")
        time.sleep(0.2)  # latency: parallel requests overlap
        scopes = [s for value in form.get("scope", []) for s in value.split()]
        reply = self._token_body(owner, scopes)
        reply.body["refresh_token"] = self.issue_refresh_token(owner)
        return reply


@pytest.fixture
def rotating_registry(binaries: Any, tmp_path: Path) -> Iterator[RegistryServer]:
    """A token-auth registry whose token server rotates refresh tokens (one per test)."""
    server = _RotatingTokenServer({"carol": "carol-rotating-pw-3"}, directory=tmp_path / "ts")
    server.start()
    binary = binaries.docker_registry
    registry = RegistryServer(tmp_path / "registry", token=server, binary=binary).start()
    try:
        yield registry
    finally:
        registry.stop()
        server.stop()


def test_parallel_tags_with_rotating_refresh_token(
    rotating_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    """Each token fetch sends the refresh token the previous one got back, never a used one."""
    server = rotating_registry.token_server
    assert server is not None
    SECRETS.add("carol-rotating-pw-3")
    lines = []
    for i in range(4):
        image = random_image(seed=10 + i)
        ref = seed(
            rotating_registry.host, f"{repo_name}-{i}", "v1", image,
            username="carol", password="carol-rotating-pw-3",
        )  # fmt: skip
        lines.append(f"{ref} promoted\n")
    refresh = server.issue_refresh_token("carol")
    SECRETS.add(refresh)
    write_docker_config({"auths": {rotating_registry.host: {"identitytoken": refresh}}})
    plan = tmp_path / "plan.txt"
    plan.write_text("".join(lines))
    server.reset()
    result = run_cli("tag", "--from-file", str(plan))
    assert result.code == 0, result.stderr
    assert server.requests, "the refresh grant was used"
    assert [r.status for r in server.requests] == [200] * len(server.requests)
    assert all(r.grant_type == "refresh_token" for r in server.requests)
