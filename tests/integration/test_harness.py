"""The harness itself: real registries, real tokens, exact request accounting."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import ssl
import time
from pathlib import Path

import httpx
import pytest

from harness.peers import PEERS, VERSIONS, peer
from harness.pki import libtrust_kid
from harness.registry import LoggedRequest, RefregServer, RegistryServer, parse_access_log_line
from harness.tokenserver import TokenServer

# distribution's reference grammar for a repository path (reference/regexp.go).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")


def _decode_jwt_part(part: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _fetch_token(
    token_server: TokenServer, scopes: list[str], auth: tuple[str, str] | None = None
) -> httpx.Response:
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("service", token_server.service),
        *(("scope", s) for s in scopes),
    ]
    return httpx.get(token_server.realm, params=params, auth=auth)


def _push_blob(client: httpx.Client, base: str, repo: str, data: bytes, token: str) -> str:
    """Monolithic upload: POST to open a session, PUT the bytes with ``?digest=``."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = client.post(f"{base}/v2/{repo}/blobs/uploads/", headers=_bearer(token))
    assert start.status_code == 202, start.text
    location = str(start.url.join(start.headers["Location"]))
    separator = "&" if "?" in location else "?"
    put = client.put(
        f"{location}{separator}digest={digest}",
        content=data,
        headers={**_bearer(token), "Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == digest
    return digest


# -- open registry and access-log accounting ----------------------------------------------


def test_open_registry_answers_and_logs_the_request(open_registry: RegistryServer) -> None:
    open_registry.mark()
    response = httpx.get(f"{open_registry.url}/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert open_registry.host.startswith("127.0.0.1:")
    assert open_registry.url == f"http://{open_registry.host}"
    assert open_registry.ca_file is None
    logged = open_registry.requests()
    assert [(r.method, r.path, r.status, r.bytes_sent) for r in logged] == [("GET", "/v2/", 200, 2)]
    assert logged[0].user_agent.startswith("python-httpx/")


def test_access_log_counts_are_exact(any_registry: RegistryServer, repo_name: str) -> None:
    """distribution 2.8 and 3 and refreg write the same access log: one parser counts all."""
    open_registry = any_registry
    httpx.get(f"{open_registry.url}/v2/")  # before the mark: must not be counted
    open_registry.mark()
    missing = "sha256:" + "0" * 64
    with httpx.Client(base_url=open_registry.url) as client:
        for _ in range(3):
            assert client.get("/v2/").status_code == 200
        for _ in range(2):
            assert client.head(f"/v2/{repo_name}/blobs/{missing}").status_code == 404
        assert client.get(f"/v2/{repo_name}/tags/list", params={"n": 5}).status_code == 404

    logged = open_registry.requests()
    assert len(logged) == 6
    assert open_registry.count() == 6
    assert open_registry.count("GET") == 4
    assert open_registry.count("get", "/v2/") == 4
    assert open_registry.count(method="HEAD", path_contains="/blobs/") == 2
    assert open_registry.count(path_contains=repo_name, status=404) == 3
    assert open_registry.count(path_contains="/manifests/") == 0
    tags = logged[-1]
    assert tags.path == f"/v2/{repo_name}/tags/list?n=5"
    assert tags.route == f"/v2/{repo_name}/tags/list"
    assert open_registry.count(since_mark=False) >= 7

    open_registry.mark()
    assert open_registry.requests() == []
    httpx.head(f"{open_registry.url}/v2/{repo_name}/blobs/{missing}")
    assert [(r.method, r.status) for r in open_registry.requests()] == [("HEAD", 404)]


# -- the Go peers of tests/peers/versions.txt ------------------------------------------------

# How each peer says which version it is: the command, then what its output must contain
# (``{v}``: the pinned version, ``{bare}``: without its leading "v").
_VERSION_CHECKS = {
    "crane": (["version"], "{v}"),
    "regctl": (["version"], "VCSTag:     {v}"),
    "oras": (["version"], "Version:    {bare}"),
    "cosign": (["version"], "GitVersion:    {v}"),
    "registry3": (["--version"], "distribution/v3 {v}"),
}


def _pinned_version(name: str) -> str:
    for line in VERSIONS.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words and words[0] == name:
            return words[2]
    raise AssertionError(f"{name} is not in {VERSIONS}")


def test_every_peer_has_a_check() -> None:
    assert sorted(PEERS) == sorted([*_VERSION_CHECKS, "refreg"])


@pytest.mark.parametrize("name", sorted(_VERSION_CHECKS))
def test_peer_is_built_at_its_pinned_version(name: str) -> None:
    """A peer that scripts/peers did not build fails here, loudly (peer() raises)."""
    import subprocess

    args, expected = _VERSION_CHECKS[name]
    version = _pinned_version(name)
    proc = subprocess.run(
        [str(peer(name)), *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert expected.format(v=version, bare=version.removeprefix("v")) in proc.stdout + proc.stderr


def test_refreg_starts_and_serves_the_referrers_api(tmp_path: Path) -> None:
    server = RefregServer(tmp_path / "refreg", binary=str(peer("refreg"))).start()
    try:
        server.mark()  # after the start-up probe
        assert httpx.get(f"{server.url}/v2/").status_code == 200
        digest = "sha256:" + "0" * 64
        answer = httpx.get(f"{server.url}/v2/none/referrers/{digest}")
        assert answer.status_code == 404 and "NAME_UNKNOWN" in answer.text  # an API answer
        assert [(r.method, r.status) for r in server.requests()] == [
            ("GET", 200),
            ("GET", 404),
        ]
    finally:
        server.stop()
    assert not server.running


def test_access_log_line_parsing() -> None:
    line = (
        '127.0.0.1 - - [27/Nov/2026:03:29:24 +0000] "GET /v2/x/y/tags/list?n=10&last=a%20b '
        'HTTP/1.1" 404 111 "" "we\\"ird agent"\n'
    )
    assert parse_access_log_line(line) == LoggedRequest(
        method="GET",
        path="/v2/x/y/tags/list?n=10&last=a%20b",
        status=404,
        bytes_sent=111,
        protocol="HTTP/1.1",
        user_agent='we"ird agent',
        line=line.rstrip("\n"),
    )
    with pytest.raises(ValueError, match="Combined Log Format"):
        parse_access_log_line("time=... level=info msg=hello")


# -- basic auth -----------------------------------------------------------------------------


def test_basic_registry_requires_credentials(basic_registry: RegistryServer) -> None:
    assert (basic_registry.username, basic_registry.password) == ("alice", "alice-secret-pw-1")
    url = f"{basic_registry.url}/v2/"
    basic_registry.mark()

    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="regshift-test"'
    assert httpx.get(url, auth=("alice", "wrong")).status_code == 401
    assert httpx.get(url, auth=("mallory", "alice-secret-pw-1")).status_code == 401
    ok = httpx.get(url, auth=("alice", "alice-secret-pw-1"))
    assert ok.status_code == 200

    assert [r.status for r in basic_registry.requests()] == [401, 401, 401, 200]


# -- token auth -----------------------------------------------------------------------------


def test_token_registry_challenges_with_bearer(
    token_registry: RegistryServer, token_server: TokenServer
) -> None:
    response = httpx.get(f"{token_registry.url}/v2/")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'realm="{token_server.realm}"' in challenge
    assert 'service="regshift-registry"' in challenge
    assert token_registry.token_server is token_server
    assert (token_registry.username, token_registry.password) == ("bob", "bob-secret-pw-2")


def test_token_push_and_head_blob(
    token_registry: RegistryServer, token_server: TokenServer, repo_name: str
) -> None:
    token_server.reset()
    scope = f"repository:{repo_name}:pull,push"
    response = _fetch_token(token_server, [scope], auth=("bob", "bob-secret-pw-2"))
    assert response.status_code == 200
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["issued_at"])

    header_b64, claims_b64, _ = body["token"].split(".")
    header = _decode_jwt_part(header_b64)
    assert header == {"typ": "JWT", "alg": "RS256", "kid": token_server.kid}
    assert token_server.kid == libtrust_kid(token_server.signing.private_key.public_key())
    claims = _decode_jwt_part(claims_b64)
    assert claims["iss"] == "regshift-test-issuer"
    assert claims["aud"] == "regshift-registry"
    assert claims["sub"] == "bob"
    access = [{"type": "repository", "name": repo_name, "actions": ["pull", "push"]}]
    assert claims["access"] == access

    data = os.urandom(1024)
    with httpx.Client() as client:
        digest = _push_blob(client, token_registry.url, repo_name, data, body["token"])
        head = client.head(
            f"{token_registry.url}/v2/{repo_name}/blobs/{digest}", headers=_bearer(body["token"])
        )
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == digest
    assert int(head.headers["Content-Length"]) == len(data)

    [recorded] = token_server.requests
    assert recorded.method == "GET"
    assert recorded.scopes == [scope]
    assert recorded.user == "bob"
    assert recorded.grant_type is None
    assert recorded.granted == access
    assert recorded.service == "regshift-registry"


def test_token_registry_answers_401_for_insufficient_scope(
    token_registry: RegistryServer, token_server: TokenServer, repo_name: str
) -> None:
    pull_only = _fetch_token(
        token_server, [f"repository:{repo_name}:pull"], auth=("bob", "bob-secret-pw-2")
    )
    token = pull_only.json()["token"]
    response = httpx.post(
        f"{token_registry.url}/v2/{repo_name}/blobs/uploads/", headers=_bearer(token)
    )
    # distribution answers 401 (not 403), naming the scope it needs.
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge
    # The order of the actions varies from response to response (a Go map): compare sets.
    match = re.search(rf'scope="repository:{re.escape(repo_name)}:([a-z,]+)"', challenge)
    assert match is not None, challenge
    assert set(match[1].split(",")) == {"pull", "push"}


@pytest.mark.parametrize(
    ("claim", "value"),
    [("audience", "another-service"), ("issuer", "another-issuer"), ("expired", None)],
)
def test_token_registry_rejects_bad_tokens(
    token_registry: RegistryServer, token_server: TokenServer, claim: str, value: str | None
) -> None:
    access = [{"type": "registry", "name": "catalog", "actions": ["*"]}]
    if claim == "audience":
        token = token_server.make_jwt(access, subject="bob", audience=value)
    elif claim == "issuer":
        token = token_server.make_jwt(access, subject="bob", issuer=value)
    else:
        token = token_server.make_jwt(access, subject="bob", issued_at=time.time() - 3600)
    good = token_server.make_jwt(access, subject="bob")
    url = f"{token_registry.url}/v2/_catalog"
    assert httpx.get(url, headers=_bearer(good)).status_code == 200
    assert httpx.get(url, headers=_bearer(token)).status_code == 401


def test_anonymous_token_grants_only_pull_on_public(
    token_registry: RegistryServer,
    token_server: TokenServer,
    public_repo_name: str,
    repo_name: str,
) -> None:
    assert public_repo_name.startswith("public/")
    token_server.reset()
    public_scope = f"repository:{public_repo_name}:pull,push"
    private_scope = f"repository:{repo_name}:pull"
    response = _fetch_token(token_server, [public_scope, private_scope, "registry:catalog:*"])
    assert response.status_code == 200
    claims = _decode_jwt_part(response.json()["token"].split(".")[1])
    only_pull = [{"type": "repository", "name": public_repo_name, "actions": ["pull"]}]
    assert claims["access"] == only_pull
    assert claims["sub"] == ""
    [recorded] = token_server.requests
    assert recorded.user is None
    assert recorded.scopes == [public_scope, private_scope, "registry:catalog:*"]
    assert recorded.granted == only_pull

    # Push as bob, then pull anonymously; anonymous push is refused.
    bob = _fetch_token(token_server, [public_scope], auth=("bob", "bob-secret-pw-2"))
    anonymous = response.json()["token"]
    with httpx.Client() as client:
        digest = _push_blob(
            client, token_registry.url, public_repo_name, b"public", bob.json()["token"]
        )
        blob_url = f"{token_registry.url}/v2/{public_repo_name}/blobs/{digest}"
        assert client.get(blob_url, headers=_bearer(anonymous)).content == b"public"
        upload = f"{token_registry.url}/v2/{public_repo_name}/blobs/uploads/"
        assert client.post(upload, headers=_bearer(anonymous)).status_code == 401


@pytest.mark.parametrize(
    "auth", [("bob", "wrong-password"), ("mallory", "bob-secret-pw-2"), ("bob", "")]
)
def test_token_server_rejects_bad_credentials(
    token_server: TokenServer, auth: tuple[str, str]
) -> None:
    token_server.reset()
    response = _fetch_token(token_server, ["repository:t/x:pull"], auth=auth)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    form = {
        "grant_type": "password",
        "username": auth[0],
        "password": auth[1],
        "service": token_server.service,
        "scope": "repository:t/x:pull",
    }
    assert httpx.post(token_server.realm, data=form).status_code == 401
    assert [(r.method, r.status, r.user) for r in token_server.requests] == [
        ("GET", 401, None),
        ("POST", 401, None),
    ]


def test_password_and_refresh_token_grants(
    token_registry: RegistryServer, token_server: TokenServer, repo_name: str
) -> None:
    token_server.reset()
    scope = f"repository:{repo_name}:pull,push"
    password_grant = httpx.post(
        token_server.realm,
        data={
            "grant_type": "password",
            "username": "bob",
            "password": "bob-secret-pw-2",
            "service": token_server.service,
            "scope": scope,
            "access_type": "offline",
            "client_id": "regshift-tests",
        },
    )
    assert password_grant.status_code == 200
    refresh_token = password_grant.json()["refresh_token"]

    refresh_grant = httpx.post(
        token_server.realm,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "service": token_server.service,
            "scope": scope,
            "client_id": "regshift-tests",
        },
    )
    assert refresh_grant.status_code == 200
    with httpx.Client() as client:
        _push_blob(
            client, token_registry.url, repo_name, b"refreshed", refresh_grant.json()["token"]
        )

    issued = token_server.issue_refresh_token("bob")
    unknown = "rt-not-issued-by-this-server"
    statuses = []
    for candidate in (issued, unknown):
        response = httpx.post(
            token_server.realm,
            data={
                "grant_type": "refresh_token",
                "refresh_token": candidate,
                "service": token_server.service,
                "scope": scope,
                "client_id": "regshift-tests",
            },
        )
        statuses.append(response.status_code)
    assert statuses == [200, 401]
    assert [(r.grant_type, r.user, r.status) for r in token_server.requests] == [
        ("password", "bob", 200),
        ("refresh_token", "bob", 200),
        ("refresh_token", "bob", 200),
        ("refresh_token", None, 401),
    ]
    assert token_server.requests[0].offline
    assert token_server.requests[1].client_id == "regshift-tests"


def test_several_scope_parameters_and_catalog(
    token_registry: RegistryServer, token_server: TokenServer
) -> None:
    scopes = ["repository:t/a:pull", "repository:t/b:pull,push", "registry:catalog:*"]
    response = _fetch_token(token_server, scopes, auth=("bob", "bob-secret-pw-2"))
    claims = _decode_jwt_part(response.json()["token"].split(".")[1])
    assert claims["access"] == [
        {"type": "repository", "name": "t/a", "actions": ["pull"]},
        {"type": "repository", "name": "t/b", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    catalog = httpx.get(
        f"{token_registry.url}/v2/_catalog", headers=_bearer(response.json()["token"])
    )
    assert catalog.status_code == 200
    assert "repositories" in catalog.json()


def test_es256_tokens_are_accepted(binaries: object, tmp_path: Path, repo_name: str) -> None:
    token_server = TokenServer(
        {"carol": "carol-pw"}, algorithm="ES256", directory=tmp_path / "token"
    ).start()
    registry = RegistryServer(tmp_path / "registry", token=token_server)
    try:
        registry.start()
        response = _fetch_token(
            token_server, [f"repository:{repo_name}:pull,push"], auth=("carol", "carol-pw")
        )
        token = response.json()["token"]
        assert _decode_jwt_part(token.split(".")[0])["alg"] == "ES256"
        with httpx.Client() as client:
            _push_blob(client, registry.url, repo_name, b"es256", token)
    finally:
        registry.stop()
        token_server.stop()
    assert not registry.running


# -- TLS ------------------------------------------------------------------------------------


def test_tls_registry_verifies_against_its_ca(tls_registry: RegistryServer) -> None:
    assert tls_registry.url == f"https://{tls_registry.host}"
    assert tls_registry.ca_file is not None and tls_registry.ca_file.is_file()
    context = ssl.create_default_context(cafile=str(tls_registry.ca_file))
    assert httpx.get(f"{tls_registry.url}/v2/", verify=context).status_code == 200
    localhost = tls_registry.url.replace("127.0.0.1", "localhost")
    assert httpx.get(f"{localhost}/v2/", verify=context).status_code == 200

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_registry.url}/v2/")
    # Plain HTTP to the TLS port: Go answers 400 and closes.
    assert httpx.get(f"http://{tls_registry.host}/v2/").status_code == 400


# -- fixtures -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["plain", "UPPER_and.dots", "x" * 120])
def test_repo_names_are_unique_and_valid(
    repo_name: str, public_repo_name: str, suffix: str
) -> None:
    for name in (repo_name, public_repo_name):
        assert len(name) <= 60
        assert _REPOSITORY_RE.fullmatch(name), name
    assert repo_name.startswith("t/repo-names-are-unique-and-valid-")
    assert public_repo_name.startswith("public/")
    assert repo_name != public_repo_name


def test_environment_is_isolated() -> None:
    for name in ("HTTP_PROXY", "https_proxy", "NO_PROXY", "all_proxy", "REGISTRY_AUTH_FILE"):
        assert name not in os.environ
    for name in ("REGSHIFT_USERNAME", "REGSHIFT_PASSWORD", "REGSHIFT_TOKEN", "XDG_RUNTIME_DIR"):
        assert name not in os.environ
    docker_config = Path(os.environ["DOCKER_CONFIG"])
    assert docker_config.is_dir() and not any(docker_config.iterdir())
    assert Path(os.environ["HOME"]).is_dir()
    assert Path(os.environ["REGSHIFT_CACHE_DIR"]).is_dir()
    assert Path(os.environ["HOME"]) != Path(os.environ["REGSHIFT_CACHE_DIR"])
