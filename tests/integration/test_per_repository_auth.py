"""Per-repository credentials (podman/skopeo ``auth.json`` keys with a path): the most
specific key wins, tokens are never shared between the accounts, and a copy between two
repositories of different accounts streams instead of mounting."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from regshift.sample import random_image

from harness.proxy import FaultProxy
from harness.registry import RegistryServer
from harness.tokenserver import parse_scope
from support import SECRETS, registry_user, run_cli, seed


def _second_user(registry: RegistryServer) -> tuple[str, str]:
    """Another account of ``registry`` than its first user (see conftest); a secret."""
    users = registry.htpasswd or (registry.token_server.users if registry.token_server else {})
    user, password = next((u, p) for u, p in users.items() if u != registry.username)
    SECRETS.add(password)
    return user, password


def _auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def _auth_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, auths: dict[str, dict[str, str]]
) -> None:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"auths": auths}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))


def _basic_user(header: str) -> str:
    assert header.startswith("Basic "), "no Basic credentials were sent"
    return base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")[0]


def test_most_specific_key_wins_for_basic_auth(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, basic_registry: RegistryServer, repo_name: str
) -> None:
    """``HOST/ns/team`` -> carol for ``ns/team/app``; ``HOST`` -> alice for ``ns/other``."""
    alice, alice_pw = registry_user(basic_registry)
    carol, carol_pw = _second_user(basic_registry)
    for repo in (f"{repo_name}/team/app", f"{repo_name}/other"):
        seed(
            basic_registry.host,
            repo,
            "v1",
            random_image(seed=1501),
            username=alice,
            password=alice_pw,
        )
    with FaultProxy(basic_registry.host) as proxy:
        _auth_file(
            monkeypatch,
            tmp_path,
            {
                f"{proxy.host}/{repo_name}/team": _auth(carol, carol_pw),
                proxy.host: _auth(alice, alice_pw),
            },
        )
        for repo in (f"{repo_name}/team/app", f"{repo_name}/other"):
            result = run_cli("digest", f"{proxy.host}/{repo}:v1")
            assert result.code == 0, result.stderr
        sent = {
            r.path.split("/manifests/")[0]: _basic_user(r.headers.get("authorization", ""))
            for r in proxy.requests
            if "/manifests/" in r.path and r.status == 200
        }
    assert sent == {f"/v2/{repo_name}/team/app": carol, f"/v2/{repo_name}/other": alice}


def _token_users(registry: RegistryServer) -> dict[str, set[str]]:
    """Repository -> the users whose token requests named it."""
    users: dict[str, set[str]] = {}
    for request in registry.token_server.requests:
        assert request.user is not None, "a token request went out without credentials"
        for scope in request.scopes:
            users.setdefault(parse_scope(scope).name, set()).add(request.user)
    return users


def test_copy_between_two_accounts_streams_with_each_accounts_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, token_registry: RegistryServer, repo_name: str
) -> None:
    """A mount needs one token for both repositories; two accounts have none: stream."""
    bob, bob_pw = registry_user(token_registry)
    dave, dave_pw = _second_user(token_registry)
    image = random_image(seed=1502)
    src = seed(
        token_registry.host, f"{repo_name}/team/app", "v1", image, username=bob, password=bob_pw
    )
    _auth_file(
        monkeypatch,
        tmp_path,
        {
            f"{token_registry.host}/{repo_name}/team": _auth(dave, dave_pw),
            token_registry.host: _auth(bob, bob_pw),
        },
    )
    token_registry.token_server.reset()
    token_registry.mark()
    dst = f"{token_registry.host}/{repo_name}/other:v1"
    result = run_cli("copy", "--json", str(src), dst)
    assert result.code == 0, result.stderr
    assert result.json()["blobs"]["mounted"] == 0
    assert _token_users(token_registry) == {
        f"{repo_name}/team/app": {dave},
        f"{repo_name}/other": {bob},
    }
    posts = [r for r in token_registry.requests() if r.method == "POST"]
    assert posts and not [r for r in posts if "mount=" in r.path]
    assert run_cli("digest", dst).stdout.strip() == image.manifest.digest


def test_same_account_for_both_repositories_still_mounts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, token_registry: RegistryServer, repo_name: str
) -> None:
    bob, bob_pw = registry_user(token_registry)
    src = seed(
        token_registry.host,
        f"{repo_name}/a",
        "v1",
        random_image(seed=1503),
        username=bob,
        password=bob_pw,
    )
    _auth_file(monkeypatch, tmp_path, {f"{token_registry.host}/{repo_name}": _auth(bob, bob_pw)})
    result = run_cli("copy", "--json", str(src), f"{token_registry.host}/{repo_name}/b:v1")
    assert result.code == 0, result.stderr
    assert result.json()["blobs"]["streamed"] == 0 and result.json()["blobs"]["mounted"] > 0


def test_flags_apply_to_every_repository(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, token_registry: RegistryServer, repo_name: str
) -> None:
    """``-u`` beats the auth file, whatever key of it would match."""
    bob, bob_pw = registry_user(token_registry)
    dave, dave_pw = _second_user(token_registry)
    src = seed(
        token_registry.host,
        f"{repo_name}/team/app",
        "v1",
        random_image(seed=1504),
        username=bob,
        password=bob_pw,
    )
    _auth_file(
        monkeypatch, tmp_path, {f"{token_registry.host}/{repo_name}/team": _auth(dave, dave_pw)}
    )
    token_registry.token_server.reset()
    result = run_cli("digest", "-u", bob, "--password-stdin", str(src), input=bob_pw)
    assert result.code == 0, result.stderr
    assert _token_users(token_registry) == {f"{repo_name}/team/app": {bob}}
