"""Every way of authenticating, against the real registry and token server."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from regshift.sample import random_image

from harness.registry import RegistryServer
from support import SECRETS, CliResult, registry_user, run_cli, seed, write_docker_config


@pytest.fixture(autouse=True)
def _remember_secrets(token_registry: RegistryServer, basic_registry: RegistryServer) -> None:
    registry_user(token_registry)
    registry_user(basic_registry)


_creds = registry_user


def _seed_as_user(registry: RegistryServer, repo: str, seed_: int = 1) -> str:
    """Push ``random_image(seed=seed_)`` as ``repo:v1``, as ``registry``'s user; its reference."""
    user, password = _creds(registry)
    return str(
        seed(registry.host, repo, "v1", random_image(seed=seed_), username=user, password=password)
    )


def _run_as_user(registry: RegistryServer, command: str, *args: str) -> CliResult:
    """``regshift COMMAND -u USER --password-stdin ARGS``, as ``registry``'s user."""
    user, password = _creds(registry)
    return run_cli(command, "-u", user, "--password-stdin", *args, input=password)


def _tags(registry: RegistryServer, repo: str, *extra: str) -> list[str]:
    out = _run_as_user(registry, "ls", "--json", *extra, f"{registry.host}/{repo}")
    assert out.code == 0, out.stderr
    return sorted(out.json()["tags"])


def test_anonymous_pull_from_token_registry(
    token_registry: RegistryServer, public_repo_name: str
) -> None:
    src = _seed_as_user(token_registry, public_repo_name)
    server = token_registry.token_server
    server.reset()
    digest = run_cli("digest", src)
    assert digest.code == 0, digest.stderr
    assert digest.stdout.strip() == random_image(seed=1).manifest.digest
    assert run_cli("ls", f"{token_registry.host}/{public_repo_name}").stdout.split() == ["v1"]
    assert run_cli("manifest", src).stdout_bytes == random_image(seed=1).manifest.raw
    assert server.requests and all(r.user is None for r in server.requests)

    # Anonymous users may not push: exit 3, and nothing was written.
    denied = run_cli("tag", src, "anon")
    assert denied.code == 3, denied.stderr
    assert "no credentials found" in denied.stderr
    assert _tags(token_registry, public_repo_name) == ["v1"]


def test_token_auth_denied_without_credentials(
    token_registry: RegistryServer, repo_name: str
) -> None:
    src = _seed_as_user(token_registry, repo_name)
    result = run_cli("digest", src)
    assert result.code == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert src in result.stderr and "401" in result.stderr


def test_basic_auth_flags_and_env(basic_registry: RegistryServer, repo_name: str) -> None:
    user, password = _creds(basic_registry)
    src = _seed_as_user(basic_registry, repo_name, 2)
    assert run_cli("digest", src).code == 3
    ok = run_cli("tag", "-u", user, "--password-stdin", src, "flags", input=password + "\n")
    assert ok.code == 0, ok.stderr
    env = {"REGSHIFT_USERNAME": user, "REGSHIFT_PASSWORD": password}
    assert run_cli("tag", src, "env", env=env).code == 0
    assert _tags(basic_registry, repo_name) == ["env", "flags", "v1"]


def test_basic_auth_wrong_password(basic_registry: RegistryServer, repo_name: str) -> None:
    user, _ = _creds(basic_registry)
    src = _seed_as_user(basic_registry, repo_name, 3)
    basic_registry.mark()
    wrong = run_cli("tag", "-u", user, "--password-stdin", src, "x", input="not-the-password")
    assert wrong.code == 3
    assert "refused" in wrong.stderr and "not-the-password" not in wrong.stderr
    assert not [r for r in basic_registry.requests() if r.method == "PUT"]


def test_token_with_config_json_auth(token_registry: RegistryServer, repo_name: str) -> None:
    src = _seed_as_user(token_registry, repo_name)
    user, password = _creds(token_registry)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    write_docker_config({"auths": {token_registry.host: {"auth": auth}}})
    result = run_cli("tag", "--json", src, "from-config")
    assert result.code == 0, result.stderr
    assert _tags(token_registry, repo_name) == ["from-config", "v1"]


def test_expired_credentials_in_config(token_registry: RegistryServer, repo_name: str) -> None:
    src = _seed_as_user(token_registry, repo_name)
    user, _ = _creds(token_registry)
    auth = base64.b64encode(f"{user}:an-expired-password".encode()).decode()
    SECRETS.add("an-expired-password")
    write_docker_config({"auths": {token_registry.host: {"auth": auth}}})
    token_registry.mark()
    result = run_cli("tag", src, "never")
    assert result.code == 3
    assert "token server" in result.stderr and "refused the credentials" in result.stderr
    assert str(Path(os.environ["DOCKER_CONFIG"]) / "config.json") in result.stderr
    assert not [r for r in token_registry.requests() if r.method == "PUT"]


def _install_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, store: dict[str, object]
) -> Path:
    """A real docker-credential-<name> program on PATH, keeping its secrets in a JSON file."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    db = bindir / f"{name}.json"
    db.write_text(json.dumps(store))
    script = bindir / f"docker-credential-{name}"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"db = {str(db)!r}\n"
        "data = json.load(open(db))\n"
        "op = sys.argv[1]\n"
        "if op == 'get':\n"
        "    url = sys.stdin.read().strip()\n"
        "    if url not in data:\n"
        "        print('credentials not found in native keychain'); sys.exit(1)\n"
        "    json.dump(data[url], sys.stdout)\n"
        "elif op == 'store':\n"
        "    entry = json.load(sys.stdin); data[entry['ServerURL']] = entry\n"
        "    json.dump(data, open(db, 'w'))\n"
        "elif op == 'erase':\n"
        "    data.pop(sys.stdin.read().strip(), None); json.dump(data, open(db, 'w'))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return db


def test_credential_helper(
    token_registry: RegistryServer, repo_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _seed_as_user(token_registry, repo_name)
    user, password = _creds(token_registry)
    entry = {"ServerURL": token_registry.host, "Username": user, "Secret": password}
    _install_helper(tmp_path, monkeypatch, "regtest", {token_registry.host: entry})
    write_docker_config({"credHelpers": {token_registry.host: "regtest"}})
    result = run_cli("tag", src, "via-helper")
    assert result.code == 0, result.stderr
    assert _tags(token_registry, repo_name) == ["v1", "via-helper"]


def test_identity_token(token_registry: RegistryServer, repo_name: str) -> None:
    src = _seed_as_user(token_registry, repo_name)
    user, _ = _creds(token_registry)
    server = token_registry.token_server
    refresh = server.issue_refresh_token(user)
    SECRETS.add(refresh)
    write_docker_config(
        {
            "auths": {
                token_registry.host: {
                    "auth": base64.b64encode(b"<token>:").decode(),
                    "identitytoken": refresh,
                }
            }
        }
    )
    server.reset()
    result = run_cli("tag", src, "via-identity-token")
    assert result.code == 0, result.stderr
    grants = [(r.method, r.grant_type) for r in server.requests]
    assert grants == [("POST", "refresh_token")]
    assert _tags(token_registry, repo_name) == ["v1", "via-identity-token"]


def test_revoked_identity_token(token_registry: RegistryServer, repo_name: str) -> None:
    src = _seed_as_user(token_registry, repo_name)
    SECRETS.add("revoked-refresh-token")
    write_docker_config(
        {"auths": {token_registry.host: {"identitytoken": "revoked-refresh-token"}}}
    )
    result = run_cli("tag", src, "never")
    assert result.code == 3
    assert "refused" in result.stderr


def test_login_tag_logout(token_registry: RegistryServer, repo_name: str) -> None:
    src = _seed_as_user(token_registry, repo_name)
    user, password = _creds(token_registry)
    bad = run_cli(
        "login", token_registry.host, "-u", user, "--password-stdin", input="wrong-password\n"
    )
    assert bad.code == 3
    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    assert not config.exists(), "a failed login must not store anything"

    login = run_cli(
        "login", token_registry.host, "-u", user, "--password-stdin", input=password + "\n"
    )
    assert login.code == 0, login.stderr
    assert "Login succeeded" in login.stdout
    stored = json.loads(config.read_text())["auths"][token_registry.host]["auth"]
    assert base64.b64decode(stored).decode() == f"{user}:{password}"
    assert oct(config.stat().st_mode & 0o777) == "0o600"

    assert run_cli("tag", src, "after-login").code == 0
    logout = run_cli("logout", token_registry.host)
    assert logout.code == 0 and "Removed" in logout.stdout
    assert token_registry.host not in json.loads(config.read_text()).get("auths", {})
    assert run_cli("tag", src, "after-logout").code == 3
    assert _tags(token_registry, repo_name) == ["after-login", "v1"]


def test_login_writes_to_registry_auth_file_when_set(
    basic_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """podman and skopeo log in to $REGISTRY_AUTH_FILE, the first file read: so does regshift
    (a login written to config.json would be shadowed by an older entry there)."""
    user, password = _creds(basic_registry)
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {basic_registry.host: {"auth": "eDp5"}}}))  # x:y
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))
    login = run_cli("login", basic_registry.host, "-u", user, "--password-stdin", input=password)
    assert login.code == 0, login.stderr
    stored = json.loads(auth_file.read_text())["auths"][basic_registry.host]["auth"]
    assert base64.b64decode(stored).decode() == f"{user}:{password}"
    assert not (Path(os.environ["DOCKER_CONFIG"]) / "config.json").exists()
    assert run_cli("ls", f"{basic_registry.host}/nothing-here").code == 4  # authenticated, 404
    assert run_cli("logout", basic_registry.host).code == 0
    assert basic_registry.host not in json.loads(auth_file.read_text()).get("auths", {})


def test_login_with_credential_store(
    basic_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, password = _creds(basic_registry)
    db = _install_helper(tmp_path, monkeypatch, "regstore", {})
    config = write_docker_config({"credsStore": "regstore"})
    assert (
        run_cli("login", basic_registry.host, "-u", user, "--password-stdin", input=password).code
        == 0
    )
    assert password not in config.read_text(), "with a credential store the file holds no secret"
    assert json.loads(db.read_text())[basic_registry.host]["Secret"] == password
    assert run_cli("ls", f"{basic_registry.host}/nothing-here").code == 4  # authenticated, then 404
    assert run_cli("logout", basic_registry.host).code == 0
    assert basic_registry.host not in json.loads(db.read_text())


def test_tls_registry(tls_registry: RegistryServer, repo_name: str) -> None:
    assert tls_registry.ca_file is not None
    ca = str(tls_registry.ca_file)
    from regshift.reference import parse_reference
    from regshift.sample import push_sample

    from support import client_for

    ref = parse_reference(f"{tls_registry.host}/{repo_name}:v1")
    with client_for(ca_file=ca) as client:
        push_sample(client, ref, random_image(seed=5))
    ok = run_cli("tag", "--ca-file", ca, "--json", str(ref), "tls-tagged")
    assert ok.code == 0, ok.stderr
    assert ok.json()["digest"] == random_image(seed=5).manifest.digest
    unverified = run_cli("digest", str(ref))
    assert unverified.code == 1
    assert (
        "certificate verification failed" in unverified.stderr and "--ca-file" in unverified.stderr
    )
    insecure = run_cli("digest", "--insecure", str(ref))
    assert insecure.code == 0 and insecure.stdout.strip() == random_image(seed=5).manifest.digest


def test_redirect_to_other_host_drops_authorization(
    basic_registry: RegistryServer, repo_name: str
) -> None:
    """A GET redirected to another host (as S3-backed registries do) carries no credentials."""
    from harness.proxy import FaultProxy, HeaderRecorder, Rule

    user, password = _creds(basic_registry)
    image = random_image(seed=6)
    seed(basic_registry.host, repo_name, "v1", image, username=user, password=password)
    with FaultProxy(basic_registry.host) as proxy, HeaderRecorder() as storage:
        storage.serve(
            "/storage/manifest", image.manifest.raw, {"Content-Type": image.manifest.media_type}
        )
        # The first GET learns the Basic challenge (401); the authenticated retry is redirected.
        redirect = storage.redirect("/storage/manifest")
        proxy.add_rule(Rule(method="GET", path="/manifests/v1", skip=1, action=redirect))
        result = _run_as_user(basic_registry, "manifest", "--debug", f"{proxy.host}/{repo_name}:v1")
        assert result.code == 0, result.stderr
        assert result.stdout_bytes == image.manifest.raw
        sent = [r for r in proxy.requests if "/manifests/v1" in r.path]
        assert sent[-1].headers.get("authorization", "").startswith("Basic ")
        assert storage.requests, "the redirect was followed"
        assert all("authorization" not in r.headers for r in storage.requests)


@pytest.mark.parametrize("flow", ["basic", "token", "identity"])
def test_debug_output_has_no_secrets(
    flow: str, basic_registry: RegistryServer, token_registry: RegistryServer, repo_name: str
) -> None:
    """--debug logs every request, and never a password, token or Authorization value."""
    registry = basic_registry if flow == "basic" else token_registry
    user, password = _creds(registry)
    src = _seed_as_user(registry, repo_name, 7)
    args = ["-u", user, "--password-stdin"]
    if flow == "identity":
        refresh = token_registry.token_server.issue_refresh_token(user)
        SECRETS.add(refresh)
        write_docker_config({"auths": {registry.host: {"identitytoken": refresh, "auth": ""}}})
        args = []
    result = run_cli("tag", "--debug", *args, src, "debugged", input=password)
    assert result.code == 0, result.stderr
    assert "debug: " in result.stderr and "PUT" in result.stderr
    for secret in (password, "Bearer ", "Basic ", "eyJ"):  # eyJ: the start of every JWT
        assert secret not in result.stderr + result.stdout
