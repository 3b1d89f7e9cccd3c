"""Proxies from the environment, through a real squid on loopback.

The registries are addressed as ``registry.regshift.test:PORT``: a name this machine cannot
resolve and only squid maps (its ``hosts_file``) to 127.0.0.1. A run that succeeds by that
name therefore went through the proxy, and squid's access log shows each request. squid
demands Basic proxy authentication, so the credentials in the proxy URL must be sent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from conftest import TOKEN_USER, Binaries
from regshift import Client, ClientOptions, Credential, StaticKeychain, TransportOptions
from regshift.reference import parse_reference
from regshift.sample import push_sample, random_image

from harness.pki import PROXIED_NAME
from harness.registry import RegistryServer
from harness.squid import ProxiedRequest, SquidProxy
from harness.tokenserver import TokenServer
from support import SECRETS, client_for, registry_user, run_cli, seed

PROXY_USER = "carol"
PROXY_PASSWORD = "carol-proxy-pw-9"


@pytest.fixture(scope="module")
def squid() -> Iterator[SquidProxy]:
    """squid on a free loopback port, demanding carol's credentials; a missing squid fails."""
    binary = shutil.which("squid") or shutil.which("squid", path="/usr/sbin")  # not on users' PATH
    if binary is None:
        pytest.fail("squid not found; install with: apt-get install -y squid", pytrace=False)
    SECRETS.add(PROXY_PASSWORD)
    users = {PROXY_USER: PROXY_PASSWORD}
    with SquidProxy({PROXIED_NAME: "127.0.0.1"}, users=users, binary=binary) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def named_token_registry(
    binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    """A token-auth registry whose realm names the token server by the proxied name too."""
    user, password = TOKEN_USER
    tokens = TokenServer(
        {user: password},
        directory=tmp_path_factory.mktemp("named-token-server"),
        realm_host=PROXIED_NAME,
    ).start()
    registry = RegistryServer(
        tmp_path_factory.mktemp("named-token-registry"),
        token=tokens,
        binary=binaries.docker_registry,
    ).start()
    yield registry
    registry.stop()
    tokens.stop()


def by_name(registry: RegistryServer) -> str:
    return f"{PROXIED_NAME}:{registry.port}"


def proxy_env(squid: SquidProxy, password: str | None = PROXY_PASSWORD) -> dict[str, str]:
    url = squid.url(PROXY_USER, password) if password is not None else squid.url()
    return {"HTTPS_PROXY": url, "HTTP_PROXY": url}


def since(squid: SquidProxy, count: int) -> list[ProxiedRequest]:
    return squid.requests()[count:]


def test_https_registry_through_https_proxy(
    tls_registry: RegistryServer, squid: SquidProxy, repo_name: str
) -> None:
    ca = str(tls_registry.ca_file)
    src = seed(tls_registry.host, repo_name, "1.0", random_image(seed=151), ca_file=ca)
    before = len(squid.requests())
    env = {"HTTPS_PROXY": squid.url(PROXY_USER, PROXY_PASSWORD)}
    result = run_cli(
        "tag", "--debug", "--ca-file", ca, f"{by_name(tls_registry)}/{repo_name}:1.0", "stable",
        env=env,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    # --debug names the proxy of the registry, never its credentials (not even the user)
    assert (
        f"https://{by_name(tls_registry)}: through proxy http://{squid.address} "
        "(with credentials)" in result.stderr
    )
    assert PROXY_USER not in result.stderr
    logged = since(squid, before)
    assert logged and all(
        (r.method, r.url, r.user, r.status) == ("CONNECT", by_name(tls_registry), PROXY_USER, 200)
        for r in logged
    ), logged
    with client_for(ca_file=ca) as client:
        tagged = client.resolve_digest(parse_reference(f"{tls_registry.host}/{repo_name}:stable"))
        assert tagged.digest == client.resolve_digest(src).digest


def test_plain_http_registries_through_http_proxy(
    open_registry: RegistryServer, other_registry: RegistryServer, squid: SquidProxy, repo_name: str
) -> None:
    """A copy between two --insecure registries by name: HTTPS is tried first (a CONNECT
    whose handshake meets plain HTTP), then every request, blobs too, goes through squid."""
    sample = random_image(seed=152, layers=3)
    seed(open_registry.host, repo_name, "1.0", sample)
    before = len(squid.requests())
    src = f"{by_name(open_registry)}/{repo_name}:1.0"
    dst = f"{by_name(other_registry)}/{repo_name}:1.0"
    result = run_cli("copy", "--insecure", src, dst, env=proxy_env(squid))
    assert result.code == 0, result.stderr
    logged = since(squid, before)
    assert all(r.user == PROXY_USER for r in logged), logged
    plain = {(r.method, r.url.split("/v2/", 1)[0]) for r in logged if r.method != "CONNECT"}
    assert ("GET", f"http://{by_name(open_registry)}") in plain
    assert ("PUT", f"http://{by_name(other_registry)}") in plain
    with client_for() as client:
        copied = client.resolve_digest(parse_reference(f"{other_registry.host}/{repo_name}:1.0"))
    assert copied.digest == sample.manifest.digest


@pytest.mark.parametrize("spelling", ["127.0.0.1", "localhost"])
def test_loopback_registry_always_direct(
    open_registry: RegistryServer, squid: SquidProxy, repo_name: str, spelling: str
) -> None:
    seed(open_registry.host, repo_name, "1.0", random_image(seed=153))
    before = len(squid.requests())
    registry = f"{spelling}:{open_registry.port}"
    result = run_cli(
        "tag", "--debug", f"{registry}/{repo_name}:1.0", "stable", env=proxy_env(squid)
    )
    assert result.code == 0, result.stderr
    assert f"http://{registry}: direct" in result.stderr
    assert "through proxy" not in result.stderr
    assert since(squid, before) == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NO_PROXY", "regshift.test"),
        ("NO_PROXY", ".regshift.test"),
        ("no_proxy", "*.regshift.test"),
        ("NO_PROXY", "other.example, {name}"),
        ("NO_PROXY", "*"),
    ],
)
def test_no_proxy_goes_direct(
    tls_registry: RegistryServer, squid: SquidProxy, repo_name: str, variable: str, value: str
) -> None:
    """Direct, the name resolves nowhere: the run fails at the name, and squid saw nothing."""
    before = len(squid.requests())
    env = {**proxy_env(squid), variable: value.format(name=by_name(tls_registry))}
    ref = f"{by_name(tls_registry)}/{repo_name}:1.0"
    result = run_cli(
        "tag", "--debug", "--retries", "0", "--ca-file", str(tls_registry.ca_file), ref, "x",
        env=env,
    )  # fmt: skip
    assert result.code == 1
    assert f"https://{by_name(tls_registry)}: direct" in result.stderr
    assert "through proxy" not in result.stderr
    assert since(squid, before) == []


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("password", ["wrong-proxy-pw-7", None])
def test_proxy_refusing_credentials_is_one_clear_error(
    open_registry: RegistryServer,
    tls_registry: RegistryServer,
    squid: SquidProxy,
    repo_name: str,
    scheme: str,
    password: str | None,
) -> None:
    """squid's 407 (to a CONNECT, or to a plain-HTTP request) names the proxy, is not
    retried, and neither password appears in the output, --debug included."""
    if password:
        SECRETS.add(password)
    registry, flags = (
        (tls_registry, ["--ca-file", str(tls_registry.ca_file)])
        if scheme == "https"
        else (open_registry, ["--insecure"])
    )
    ca = str(registry.ca_file) if registry.ca_file else None
    seed(registry.host, repo_name, "1.0", random_image(seed=154), ca_file=ca)
    ref = f"{by_name(registry)}/{repo_name}:1.0"
    if scheme == "http":  # learn that it speaks plain HTTP, so that is tried first next time
        assert run_cli("tag", *flags, ref, "learnt", env=proxy_env(squid)).code == 0
    before = len(squid.requests())
    result = run_cli("tag", "--debug", *flags, ref, "stable", env=proxy_env(squid, password))
    assert result.code == 1
    assert (
        f"proxy http://{squid.address}{' (with credentials)' if password else ''} refused the "
        "request: 407 Proxy Authentication Required; check the credentials in its URL"
    ) in result.stderr
    denied = since(squid, before)
    assert [(r.status, r.result) for r in denied] == [(407, "TCP_DENIED")], denied
    assert denied[0].method == ("CONNECT" if scheme == "https" else "GET")


def test_token_registry_and_realm_through_the_proxy(
    named_token_registry: RegistryServer,
    squid: SquidProxy,
    repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The token realm is judged by its own host: here the proxied name too, so the token
    request goes through squid as well, with the registry's credentials inside it."""
    registry, tokens = named_token_registry, named_token_registry.token_server
    assert tokens is not None
    user, password = registry_user(registry)
    monkeypatch.setenv("HTTP_PROXY", squid.url(PROXY_USER, PROXY_PASSWORD))  # for the realm
    src = parse_reference(f"{registry.host}/{repo_name}:1.0")
    with _client(registry) as client:
        push_sample(client, src, random_image(seed=155))
    tokens.reset()
    before = len(squid.requests())
    env = {**proxy_env(squid), "REGSHIFT_USERNAME": user, "REGSHIFT_PASSWORD": password}
    ref = f"{by_name(registry)}/{repo_name}:1.0"
    result = run_cli("tag", "--debug", "--insecure", ref, "stable", env=env)
    assert result.code == 0, result.stderr
    through = f"through proxy http://{squid.address} (with credentials)"
    assert f"http://{by_name(registry)}: {through}" in result.stderr
    assert f"{tokens.url}: {through}" in result.stderr
    logged = since(squid, before)
    assert any(r.method == "GET" and r.url.startswith(tokens.realm + "?") for r in logged), logged
    assert any(r.url.startswith(f"http://{by_name(registry)}/v2/") for r in logged), logged
    assert tokens.requests and all(t.user == user for t in tokens.requests)
    with _client(registry) as client:
        tagged = client.resolve_digest(parse_reference(f"{registry.host}/{repo_name}:stable"))
        assert tagged.digest == client.resolve_digest(src).digest


def _client(registry: RegistryServer) -> Client:
    """bob's client; the realm's plain-HTTP host is named insecure, so it gets his password."""
    user, password = registry_user(registry)
    keychain = StaticKeychain(Credential(username=user, password=password, source="test"))
    transport = TransportOptions(insecure=frozenset({by_name(registry)}))
    return Client(ClientOptions(transport=transport, keychain=keychain, cache_dir=None))


def test_https_registry_through_an_https_proxy_is_refused_at_once(
    tls_registry: RegistryServer, squid: SquidProxy, repo_name: str
) -> None:
    """TLS inside TLS is beyond http.client: an ``https://`` proxy in front of an HTTPS
    registry is one line naming the way out (the proxy's http:// address), sent nowhere and
    not retried; the same proxy variable with ``http://`` works (the first test here)."""
    ca = str(tls_registry.ca_file)
    seed(tls_registry.host, repo_name, "1.0", random_image(seed=157), ca_file=ca)
    before = len(squid.requests())
    https_proxy = "https://" + squid.url().removeprefix("http://")
    ref = f"{by_name(tls_registry)}/{repo_name}:1.0"
    result = run_cli("tag", "--ca-file", ca, ref, "stable", env={"HTTPS_PROXY": https_proxy})
    assert result.code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "https:// proxy" in lines[0] and "http://" in lines[0], lines
    assert "retrying" not in result.stderr
    assert since(squid, before) == [], "nothing reached the proxy"
