"""Header authentication (``--header 'X-JFrog-Art-Api: KEY'``): the header goes to the
registry's own origin only -- never to a token server on another origin, never to a redirect
target -- and its value is never printed, not even with ``--debug``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from regshift import ClientOptions, TransportOptions
from regshift.client import Client
from regshift.reference import parse_reference
from regshift.sample import random_image

from harness.proxy import FaultProxy, HeaderRecorder, Respond, RewriteHeader, Rule
from harness.registry import RegistryServer
from support import SECRETS, registry_user, run_cli, seed, write_docker_config

KEY = "AKCp8jQ-header-api-key-5150"
HEADER = f"X-JFrog-Art-Api: {KEY}"


@pytest.fixture(autouse=True)
def _remember() -> None:
    SECRETS.add(KEY)  # run_cli asserts no output of any test contains it


@contextlib.contextmanager
def _token_server_elsewhere(
    token_registry: RegistryServer,
) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """Proxies recording what reaches the registry and its token server, the challenge
    rewritten to name the token proxy (another port = another origin) as realm."""
    server = token_registry.token_server
    assert server is not None
    with (
        FaultProxy(token_registry.host) as registry,
        FaultProxy(server.url.split("//")[1]) as tokens,
    ):
        realm = f"{tokens.url}/token"
        rewrite = RewriteHeader("WWW-Authenticate", lambda v: v and v.replace(server.realm, realm))
        registry.add_rule(Rule(action=rewrite))
        yield registry, tokens


def test_header_reaches_the_registry_but_not_a_token_server_elsewhere(
    token_registry: RegistryServer, repo_name: str
) -> None:
    user, password = registry_user(token_registry)
    src = seed(
        token_registry.host,
        repo_name,
        "v1",
        random_image(seed=1601),
        username=user,
        password=password,
    )
    with _token_server_elsewhere(token_registry) as (registry, tokens):
        ref = f"{registry.host}/{repo_name}:v1"
        result = run_cli(
            "tag", "--header", HEADER, "-u", user, "--password-stdin", ref, "v2", input=password
        )
        assert result.code == 0, result.stderr
        assert registry.requests and tokens.requests, "the test proves nothing"
        assert all(r.headers.get("x-jfrog-art-api") == KEY for r in registry.requests)
        assert [r.path for r in tokens.requests if "x-jfrog-art-api" in r.headers] == []
    assert src.repository == repo_name


def test_header_is_not_sent_to_a_redirect_target(
    open_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=1602)
    seed(open_registry.host, repo_name, "v1", image)
    with FaultProxy(open_registry.host) as proxy, HeaderRecorder() as storage:
        storage.serve(
            "/storage/manifest", image.manifest.raw, {"Content-Type": image.manifest.media_type}
        )
        proxy.add_rule(
            Rule(method="GET", path="/manifests/v1", action=storage.redirect("/storage/manifest"))
        )
        result = run_cli("manifest", "--header", HEADER, f"{proxy.host}/{repo_name}:v1")
        assert result.code == 0, result.stderr
        assert result.stdout_bytes == image.manifest.raw
        assert storage.requests, "the redirect was not followed"
        assert [r.path for r in storage.requests if "x-jfrog-art-api" in r.headers] == []
        assert (
            next(r for r in proxy.requests if "/manifests/v1" in r.path).headers.get(
                "x-jfrog-art-api"
            )
            == KEY
        )


def test_header_is_redacted_in_debug_output_and_errors(
    open_registry: RegistryServer, repo_name: str
) -> None:
    """--debug says the header went, masked; a registry echoing it back is masked too."""
    with FaultProxy(open_registry.host) as proxy:
        echo = Respond.oci_error(403, "DENIED", f"api key {KEY} is not allowed")
        proxy.add_rule(Rule(method="GET", path="/manifests/", action=echo))
        result = run_cli("manifest", "--debug", "--header", HEADER, f"{proxy.host}/{repo_name}:v1")
    assert result.code == 3
    assert "X-JFrog-Art-Api: ***" in result.stderr  # run_cli already checked KEY is absent


@pytest.mark.parametrize(
    "value",
    [
        "X-JFrog-Art-Api",  # no colon
        ": value-only",
        f"X-Api: {KEY}\r\nX-Injected: 1",
        f"X-Api: {KEY}\n",
        "Authorization: Bearer abcdef",
        "Host: evil.example",
        f"Bad Name: {KEY}",
        "X-Empty:   ",
    ],
)
def test_malformed_header_is_a_usage_error(value: str, open_registry: RegistryServer) -> None:
    result = run_cli("manifest", "--header", value, f"{open_registry.host}/x:v1")
    assert result.code == 2, result.stderr
    message = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert "--header" in message and "No such option" not in message
    assert KEY not in result.stderr


def test_repeated_header_name_is_a_usage_error(open_registry: RegistryServer) -> None:
    args = ["--header", "X-A: one-1", "--header", "x-a: two-2"]
    result = run_cli("manifest", *args, f"{open_registry.host}/x:v1")
    assert result.code == 2 and "more than once" in result.stderr


def test_library_option_sends_the_header(open_registry: RegistryServer, repo_name: str) -> None:
    seed(open_registry.host, repo_name, "v1", random_image(seed=1603))
    with FaultProxy(open_registry.host) as proxy:
        options = ClientOptions(transport=TransportOptions(headers=(("X-Api-Key", KEY),)))
        with Client(options) as client:
            client.get_manifest(parse_reference(f"{proxy.host}/{repo_name}:v1"))
        assert [r.headers.get("x-api-key") for r in proxy.requests] == [KEY]
    with pytest.raises(ValueError, match="Authorization"):
        TransportOptions(headers=(("Authorization", "Basic x"),))


def test_docker_config_http_headers_go_to_the_registry_only(
    token_registry: RegistryServer, repo_name: str
) -> None:
    """Docker's ``config.json`` ``HttpHeaders`` are sent like ``--header``: to the registry's
    own origin, not to a token server on another origin."""
    user, password = registry_user(token_registry)
    seed(token_registry.host, repo_name, "v1", random_image(seed=1611), username=user,
         password=password)  # fmt: skip
    write_docker_config({"HttpHeaders": {"X-JFrog-Art-Api": KEY}})
    with _token_server_elsewhere(token_registry) as (registry, tokens):
        ref = f"{registry.host}/{repo_name}:v1"
        result = run_cli("tag", "-u", user, "--password-stdin", ref, "v2", input=password)
        assert result.code == 0, result.stderr
        assert registry.requests and tokens.requests, "the test proves nothing"
        assert all(r.headers.get("x-jfrog-art-api") == KEY for r in registry.requests)
        assert [r.path for r in tokens.requests if "x-jfrog-art-api" in r.headers] == []


def test_header_flag_replaces_a_configured_header_of_the_same_name(
    open_registry: RegistryServer, repo_name: str
) -> None:
    seed(open_registry.host, repo_name, "v1", random_image(seed=1612))
    write_docker_config({"HttpHeaders": {"x-jfrog-art-api": "configured-key-0000", "X-Team": "a"}})
    SECRETS.add("configured-key-0000")
    with FaultProxy(open_registry.host) as proxy:
        result = run_cli("digest", "--header", HEADER, f"{proxy.host}/{repo_name}:v1")
        assert result.code == 0, result.stderr
        assert proxy.requests
        for request in proxy.requests:
            assert request.headers.get("x-jfrog-art-api") == KEY  # once: repeats are joined
            assert request.headers.get("x-team") == "a"


def test_configured_headers_regshift_cannot_send_are_left_out_with_a_warning(
    open_registry: RegistryServer, repo_name: str
) -> None:
    """As docker does not let HttpHeaders replace its own headers, a configured
    ``User-Agent`` or a value with CR/LF is left out; the warning names the header only."""
    seed(open_registry.host, repo_name, "v1", random_image(seed=1613))
    write_docker_config(
        {"HttpHeaders": {"User-Agent": KEY, "X-Split": f"{KEY}\r\nX-Injected: 1", "X-Ok": "yes"}}
    )
    with FaultProxy(open_registry.host) as proxy:
        result = run_cli("digest", f"{proxy.host}/{repo_name}:v1")
        assert result.code == 0, result.stderr
        assert proxy.requests
        for request in proxy.requests:
            assert KEY not in request.headers.get("user-agent", "")
            assert "x-split" not in request.headers and "x-injected" not in request.headers
            assert request.headers.get("x-ok") == "yes"
    warnings = [line for line in result.stderr.splitlines() if "HttpHeaders" in line]
    assert len(warnings) == 2, result.stderr
    assert "User-Agent" in warnings[0] and "X-Split" in warnings[1]
