"""Tests for regshift.auth.credentials: real files in tmp_path, real credential helper scripts."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from regshift.auth import credentials as creds
from regshift.auth.credentials import (
    ANONYMOUS,
    DOCKER_HUB_KEY,
    ChainKeychain,
    Credential,
    EnvKeychain,
    FileKeychain,
    StaticKeychain,
    default_keychain,
    docker_config_path,
    erase_credential,
    store_credential,
)
from regshift.errors import AuthError

SECRET = "s3cr3t:with:colons"

# A docker-credential-helpers compatible helper. It keeps its secrets in "<own name>.json"
# next to itself and appends "<own name> <action> <server>" to calls.log.
HELPER_SCRIPT = """#!__PYTHON__
import json, pathlib, sys, time

me = pathlib.Path(__file__)
store_path = me.with_name(me.name + ".json")
store = json.loads(store_path.read_text()) if store_path.exists() else {}
action = sys.argv[1]
request = sys.stdin.read()
server = json.loads(request)["ServerURL"] if action == "store" else request.strip()
with me.with_name("calls.log").open("a") as log:
    log.write(f"{me.name} {action} {server}\\n")
if server == "sleep.example":
    time.sleep(60)
if server == "broken.example":
    print("leaked-helper-output " + store.get("leak", ""))
    sys.exit(3)
if action == "get":
    if server not in store:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({"ServerURL": server, **store[server]}))
elif action == "store":
    body = json.loads(request)
    store[server] = {"Username": body["Username"], "Secret": body["Secret"]}
    store_path.write_text(json.dumps(store))
elif action == "erase":
    if store.pop(server, None) is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    store_path.write_text(json.dumps(store))
else:
    sys.exit(2)
"""

MakeHelper = Callable[..., Path]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def read_json(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "docker" / "config.json"


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", f"{path}{os.pathsep}{os.environ.get('PATH', '')}")
    return path


@pytest.fixture
def make_helper(bin_dir: Path) -> MakeHelper:
    """Install ``docker-credential-<name>`` with optional initial entries; return its store."""

    def make(name: str, entries: dict[str, dict[str, str]] | None = None) -> Path:
        script = bin_dir / f"docker-credential-{name}"
        script.write_text(HELPER_SCRIPT.replace("__PYTHON__", sys.executable))
        script.chmod(0o755)
        store = bin_dir / f"{script.name}.json"
        if entries is not None:
            write_json(store, entries)
        return store

    return make


def helper_calls(bin_dir: Path) -> list[str]:
    log = bin_dir / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


# --- Credential ------------------------------------------------------------------------------


def test_repr_never_shows_secrets() -> None:
    credential = Credential("alice", "pw-123", "idtok-456", "regtok-789", source="env")
    for text in (repr(credential), str(credential), repr(StaticKeychain(credential))):
        assert "alice" in text
        for secret in ("pw-123", "idtok-456", "regtok-789"):
            assert secret not in text


def test_is_anonymous() -> None:
    assert ANONYMOUS.is_anonymous
    assert Credential(source="x").is_anonymous
    assert not Credential(registry_token="t").is_anonymous
    assert not Credential("u", "p").is_anonymous


# --- auth file entries -----------------------------------------------------------------------


def test_auth_base64_password_with_colons(config: Path) -> None:
    write_json(config, {"auths": {"ghcr.io": {"auth": b64(f"alice:{SECRET}")}}})
    credential = FileKeychain(config).resolve("ghcr.io")
    assert (credential.username, credential.password) == ("alice", SECRET)
    assert credential.source == str(config)


def test_username_password_fields(config: Path) -> None:
    write_json(config, {"auths": {"quay.io": {"username": "bob", "password": SECRET}}})
    credential = FileKeychain(config).resolve("quay.io")
    assert (credential.username, credential.password) == ("bob", SECRET)


@pytest.mark.parametrize(
    ("entry", "username"),
    [
        ({"auth": b64("carol:"), "identitytoken": "refresh-tok"}, "carol"),
        ({"username": "dave", "identitytoken": "refresh-tok"}, "dave"),
        ({"identitytoken": "refresh-tok"}, ""),
    ],
)
def test_identity_token(config: Path, entry: dict[str, str], username: str) -> None:
    write_json(config, {"auths": {"myacr.azurecr.io": entry}})
    credential = FileKeychain(config).resolve("myacr.azurecr.io")
    assert credential.identity_token == "refresh-tok"
    assert credential.username == username
    assert credential.password == ""


def test_registry_token(config: Path) -> None:
    write_json(config, {"auths": {"reg.example": {"registrytoken": "bearer-tok"}}})
    credential = FileKeychain(config).resolve("reg.example")
    assert credential.registry_token == "bearer-tok"
    assert not credential.is_anonymous


def test_unknown_registry_and_empty_entry_are_anonymous(config: Path) -> None:
    write_json(config, {"auths": {"ghcr.io": {}, "other.io": {"auth": b64("u:p")}}})
    assert FileKeychain(config).resolve("ghcr.io") is ANONYMOUS
    assert FileKeychain(config).resolve("nothing.example") is ANONYMOUS


def test_missing_and_empty_files_are_anonymous(tmp_path: Path) -> None:
    assert FileKeychain(tmp_path / "nope" / "config.json").resolve("ghcr.io") is ANONYMOUS
    empty = tmp_path / "empty.json"
    empty.write_text("")
    assert FileKeychain(empty).resolve("ghcr.io") is ANONYMOUS


def test_invalid_json_names_file_not_secrets(config: Path) -> None:
    config.parent.mkdir(parents=True)
    config.write_text('{"auths": {"ghcr.io": {"auth": "' + b64("u:" + SECRET) + '"}')
    with pytest.raises(AuthError) as info:
        FileKeychain(config).resolve("ghcr.io")
    message = str(info.value)
    assert str(config) in message
    assert b64("u:" + SECRET) not in message
    assert SECRET not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_non_object_file_is_an_error(config: Path) -> None:
    write_json(config, ["not", "an", "object"])
    with pytest.raises(AuthError, match="not a JSON object"):
        FileKeychain(config).resolve("ghcr.io")


@pytest.mark.parametrize("value", ["!!not-base64!!", b64("no-colon-here")])
def test_invalid_auth_value_names_file_and_key_not_value(config: Path, value: str) -> None:
    write_json(config, {"auths": {"ghcr.io": {"auth": value}}})
    with pytest.raises(AuthError) as info:
        FileKeychain(config).resolve("ghcr.io")
    message = str(info.value)
    assert str(config) in message and "'ghcr.io'" in message
    assert value not in message and "no-colon-here" not in message


# --- key normalisation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "host.example:5000",
        "https://host.example:5000/",
        "http://host.example:5000",
        "https://host.example:5000/v2/",
        "HOST.example:5000/",
    ],
)
def test_key_normalisation(config: Path, key: str) -> None:
    write_json(config, {"auths": {key: {"auth": b64("u:p")}}})
    assert FileKeychain(config).resolve("host.example:5000").username == "u"
    assert FileKeychain(config).resolve("host.example:5001") is ANONYMOUS


@pytest.mark.parametrize(
    "key",
    [DOCKER_HUB_KEY, "index.docker.io", "registry-1.docker.io", "docker.io", "https://docker.io"],
)
def test_docker_hub_keys(config: Path, key: str) -> None:
    write_json(config, {"auths": {key: {"auth": b64("hubuser:p")}}})
    assert FileKeychain(config).resolve("docker.io").username == "hubuser"


def test_docker_written_key_wins_over_other_spellings(config: Path) -> None:
    auths = {"https://ghcr.io": {"auth": b64("old:p")}, "ghcr.io": {"auth": b64("new:p")}}
    write_json(config, {"auths": auths})
    assert FileKeychain(config).resolve("ghcr.io").username == "new"


def test_podman_per_repository_keys(config: Path) -> None:
    auths = {
        "ghcr.io": {"auth": b64("host-user:p")},
        "ghcr.io/org": {"auth": b64("org-user:p")},
        "ghcr.io/org/app": {"auth": b64("app-user:p")},
        "docker.io/library/nginx": {"auth": b64("nginx-user:p")},
    }
    write_json(config, {"auths": auths})
    keychain = FileKeychain(config)
    assert keychain.resolve("ghcr.io", "org/app").username == "app-user"
    assert keychain.resolve("ghcr.io", "org/other").username == "org-user"
    assert keychain.resolve("ghcr.io", "someone/app").username == "host-user"
    assert keychain.resolve("ghcr.io").username == "host-user"
    assert keychain.resolve("docker.io", "library/nginx").username == "nginx-user"
    assert keychain.resolve("docker.io", "library/redis") is ANONYMOUS


# --- credential helpers ----------------------------------------------------------------------


def test_cred_helpers_beat_creds_store(
    config: Path, make_helper: MakeHelper, bin_dir: Path
) -> None:
    make_helper("test", {"ghcr.io": {"Username": "from-test", "Secret": SECRET}})
    make_helper("other", {"ghcr.io": {"Username": "from-other", "Secret": "x"}})
    write_json(config, {"credsStore": "other", "credHelpers": {"https://ghcr.io": "test"}})
    credential = FileKeychain(config).resolve("ghcr.io")
    assert (credential.username, credential.password) == ("from-test", SECRET)
    assert credential.source == "credential helper docker-credential-test"
    assert helper_calls(bin_dir) == ["docker-credential-test get ghcr.io"]


def test_creds_store_used_for_other_registries(config: Path, make_helper: MakeHelper) -> None:
    make_helper("test", {"ghcr.io": {"Username": "x", "Secret": "y"}})
    make_helper("other", {DOCKER_HUB_KEY: {"Username": "hub", "Secret": "z"}})
    write_json(config, {"credsStore": "other", "credHelpers": {"ghcr.io": "test"}})
    assert FileKeychain(config).resolve("docker.io").username == "hub"


def test_helper_token_username_means_identity_token(config: Path, make_helper: MakeHelper) -> None:
    make_helper("test", {"myacr.azurecr.io": {"Username": "<token>", "Secret": "refresh"}})
    write_json(config, {"credHelpers": {"myacr.azurecr.io": "test"}})
    credential = FileKeychain(config).resolve("myacr.azurecr.io")
    assert credential.identity_token == "refresh"
    assert (credential.username, credential.password) == ("", "")


def test_helper_not_found_on_path(config: Path, bin_dir: Path) -> None:
    write_json(config, {"credsStore": "regshift-missing"})
    with pytest.raises(AuthError, match="docker-credential-regshift-missing"):
        FileKeychain(config).resolve("ghcr.io")


def test_helper_without_entry_is_anonymous(config: Path, make_helper: MakeHelper) -> None:
    make_helper("test", {})
    write_json(config, {"credHelpers": {"ghcr.io": "test"}})
    assert FileKeychain(config).resolve("ghcr.io") is ANONYMOUS


def test_creds_store_without_entry_falls_back_to_auths(
    config: Path, make_helper: MakeHelper
) -> None:
    make_helper("test", {})
    write_json(config, {"credsStore": "test", "auths": {"ghcr.io": {"auth": b64("u:p")}}})
    credential = FileKeychain(config).resolve("ghcr.io")
    assert credential.username == "u"
    assert credential.source == str(config)


def test_helper_failure_reports_exit_code_not_output(config: Path, make_helper: MakeHelper) -> None:
    store = make_helper("test", {})
    write_json(store, {"leak": SECRET})
    write_json(config, {"credHelpers": {"broken.example": "test"}})
    with pytest.raises(AuthError) as info:
        FileKeychain(config).resolve("broken.example")
    message = str(info.value)
    assert "docker-credential-test" in message and "exit code 3" in message
    assert SECRET not in message and "leaked-helper-output" not in message


def test_helper_timeout(
    config: Path, make_helper: MakeHelper, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_helper("test", {})
    monkeypatch.setattr(creds, "HELPER_TIMEOUT", 0.5)
    write_json(config, {"credHelpers": {"sleep.example": "test"}})
    with pytest.raises(AuthError, match="timed out"):
        FileKeychain(config).resolve("sleep.example")


# --- env, static, chain, default -------------------------------------------------------------


def test_env_keychain() -> None:
    both = {"REGSHIFT_USERNAME": "eve", "REGSHIFT_PASSWORD": SECRET}
    credential = EnvKeychain(both).resolve("ghcr.io")
    assert (credential.username, credential.password, credential.source) == ("eve", SECRET, "env")
    token = EnvKeychain({"REGSHIFT_TOKEN": "bearer"}).resolve("ghcr.io")
    assert (token.registry_token, token.username) == ("bearer", "")
    assert EnvKeychain({}).resolve("ghcr.io") is ANONYMOUS
    assert "eve" not in repr(EnvKeychain(both))


def test_env_keychain_needs_both_username_and_password() -> None:
    with pytest.raises(AuthError, match="REGSHIFT_PASSWORD") as info:
        EnvKeychain({"REGSHIFT_USERNAME": "eve"}).resolve("ghcr.io")
    assert "eve" not in str(info.value)
    with pytest.raises(AuthError, match="REGSHIFT_USERNAME") as info:
        EnvKeychain({"REGSHIFT_PASSWORD": SECRET}).resolve("ghcr.io")
    assert SECRET not in str(info.value)


def test_static_keychain() -> None:
    alice = Credential("alice", "p")
    assert StaticKeychain(alice).resolve("anything.example") is alice
    by_registry = StaticKeychain(
        {"https://ghcr.io": alice, "index.docker.io": Credential("b", "p")}
    )
    assert by_registry.resolve("ghcr.io") is alice
    assert by_registry.resolve("docker.io").username == "b"
    assert by_registry.resolve("quay.io") is ANONYMOUS


def test_chain_first_non_anonymous_wins(config: Path) -> None:
    write_json(config, {"auths": {"ghcr.io": {"auth": b64("file-user:p")}}})
    env = {"REGSHIFT_USERNAME": "env-user", "REGSHIFT_PASSWORD": "p"}
    assert ChainKeychain(EnvKeychain(env), FileKeychain(config)).resolve("ghcr.io").username == (
        "env-user"
    )
    assert ChainKeychain(EnvKeychain({}), FileKeychain(config)).resolve("ghcr.io").username == (
        "file-user"
    )
    assert ChainKeychain(EnvKeychain({}), FileKeychain(config)).resolve("quay.io") is ANONYMOUS


def test_docker_config_path(tmp_path: Path) -> None:
    assert docker_config_path({"HOME": str(tmp_path)}) == tmp_path / ".docker" / "config.json"
    custom = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "d")}
    assert docker_config_path(custom) == tmp_path / "d" / "config.json"


def test_default_keychain_order(tmp_path: Path) -> None:
    home, runtime = tmp_path / "home", tmp_path / "run"
    env = {
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "REGISTRY_AUTH_FILE": str(tmp_path / "auth-file.json"),
    }
    sources = [
        tmp_path / "auth-file.json",
        home / ".docker" / "config.json",
        runtime / "containers" / "auth.json",
        home / ".config" / "containers" / "auth.json",
    ]
    for n, path in enumerate(sources):
        # file n knows r0 .. rn, so file n is the first source that knows rn.
        auths = {f"r{i}.example": {"auth": b64(f"user{n}:p")} for i in range(n + 1)}
        write_json(path, {"auths": auths})
    keychain = default_keychain(env)
    for n, path in enumerate(sources):
        credential = keychain.resolve(f"r{n}.example")
        assert (credential.username, credential.source) == (f"user{n}", str(path))
    env_first = {**env, "REGSHIFT_USERNAME": "env-user", "REGSHIFT_PASSWORD": "p"}
    assert default_keychain(env_first).resolve("r0.example").username == "env-user"


def test_default_keychain_skips_missing_files(tmp_path: Path) -> None:
    assert default_keychain({"HOME": str(tmp_path)}).resolve("ghcr.io") is ANONYMOUS


# --- store / erase ---------------------------------------------------------------------------


def test_store_then_resolve_round_trip(config: Path) -> None:
    where = store_credential("127.0.0.1:5000", "alice", SECRET, config_path=config)
    assert where == str(config)
    assert SECRET not in where
    credential = FileKeychain(config).resolve("127.0.0.1:5000")
    assert (credential.username, credential.password) == ("alice", SECRET)
    assert read_json(config) == {"auths": {"127.0.0.1:5000": {"auth": b64(f"alice:{SECRET}")}}}


def test_store_docker_hub_uses_legacy_key(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    store_credential("docker.io", "hubuser", SECRET, env=env)
    path = tmp_path / ".docker" / "config.json"
    assert read_json(path) == {"auths": {DOCKER_HUB_KEY: {"auth": b64(f"hubuser:{SECRET}")}}}
    assert default_keychain(env).resolve("docker.io").password == SECRET


def test_store_keeps_other_keys_and_replaces_old_spellings(config: Path) -> None:
    original = {
        "auths": {
            "https://ghcr.io/": {"auth": b64("old:old")},
            "quay.io": {"auth": b64("q:q")},
            "ghcr.io/org/app": {"auth": b64("scoped:s")},
        },
        "HttpHeaders": {"User-Agent": "Docker-Client/24"},
        "psFormat": "table {{.ID}}",
        "currentContext": "default",
        "plugins": {"x": {"enabled": True, "n": 1.5}},
    }
    write_json(config, original)
    store_credential("ghcr.io", "alice", SECRET, config_path=config)
    data = read_json(config)
    assert {k: v for k, v in data.items() if k != "auths"} == {
        k: v for k, v in original.items() if k != "auths"
    }
    assert data["auths"] == {
        "quay.io": {"auth": b64("q:q")},
        "ghcr.io/org/app": {"auth": b64("scoped:s")},
        "ghcr.io": {"auth": b64(f"alice:{SECRET}")},
    }


def test_store_file_and_directory_modes(tmp_path: Path) -> None:
    config = tmp_path / "new" / ".docker" / "config.json"
    store_credential("ghcr.io", "alice", SECRET, config_path=config)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert [p.name for p in config.parent.iterdir()] == ["config.json"]  # no temp file left


def test_store_tightens_existing_file_mode(config: Path) -> None:
    write_json(config, {"auths": {}})
    config.chmod(0o644)
    store_credential("ghcr.io", "alice", SECRET, config_path=config)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_store_writes_through_symlink(tmp_path: Path) -> None:
    real = write_json(tmp_path / "real" / "config.json", {"auths": {}})
    link = tmp_path / "config.json"
    link.symlink_to(real)
    store_credential("ghcr.io", "alice", SECRET, config_path=link)
    assert link.is_symlink()
    assert FileKeychain(real).resolve("ghcr.io").password == SECRET


def test_store_with_creds_store_helper(config: Path, make_helper: MakeHelper) -> None:
    store = make_helper("test")
    write_json(config, {"credsStore": "test", "auths": {"ghcr.io": {"auth": b64("old:old")}}})
    where = store_credential("ghcr.io", "alice", SECRET, config_path=config)
    assert where == "credential helper docker-credential-test"
    assert SECRET not in config.read_text()
    assert read_json(config) == {"credsStore": "test", "auths": {"ghcr.io": {}}}
    assert read_json(store) == {"ghcr.io": {"Username": "alice", "Secret": SECRET}}
    credential = FileKeychain(config).resolve("ghcr.io")
    assert (credential.username, credential.password) == ("alice", SECRET)


def test_store_with_cred_helpers_for_docker_hub(
    config: Path, make_helper: MakeHelper, bin_dir: Path
) -> None:
    store = make_helper("test")
    write_json(config, {"credHelpers": {"index.docker.io": "test"}})
    store_credential("docker.io", "hubuser", SECRET, config_path=config)
    assert read_json(store) == {DOCKER_HUB_KEY: {"Username": "hubuser", "Secret": SECRET}}
    assert FileKeychain(config).resolve("docker.io").password == SECRET
    assert helper_calls(bin_dir) == [
        f"docker-credential-test store {DOCKER_HUB_KEY}",
        f"docker-credential-test get {DOCKER_HUB_KEY}",
    ]


def test_store_rejects_bad_input_without_echoing_it(config: Path) -> None:
    with pytest.raises(AuthError) as info:
        store_credential("ghcr.io", "a:b", SECRET, config_path=config)
    assert SECRET not in str(info.value)
    with pytest.raises(AuthError):
        store_credential("ghcr.io", "alice", "", config_path=config)
    assert not config.exists()


def test_erase_without_helper(config: Path) -> None:
    auths = {"https://ghcr.io": {"auth": b64("a:b")}, "quay.io": {"auth": b64("q:q")}}
    write_json(config, {"auths": auths, "psFormat": "x"})
    assert erase_credential("ghcr.io", config_path=config) is True
    assert read_json(config) == {"auths": {"quay.io": {"auth": b64("q:q")}}, "psFormat": "x"}
    assert FileKeychain(config).resolve("ghcr.io") is ANONYMOUS
    assert erase_credential("ghcr.io", config_path=config) is False
    assert erase_credential("ghcr.io", config_path=config.with_name("missing.json")) is False


def test_erase_with_helper(config: Path, make_helper: MakeHelper) -> None:
    store = make_helper("test")
    write_json(config, {"credsStore": "test"})
    store_credential("ghcr.io", "alice", SECRET, config_path=config)
    assert erase_credential("ghcr.io", config_path=config) is True
    assert read_json(store) == {}
    assert read_json(config) == {"credsStore": "test", "auths": {}}
    assert FileKeychain(config).resolve("ghcr.io") is ANONYMOUS
    assert erase_credential("ghcr.io", config_path=config) is False


def test_no_home_directory_skips_the_files_under_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOME unset and a uid without a passwd entry (some containers): lookups go on without
    the files under ``~``; only writing Docker's config there is an error."""

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    env = {"REGSHIFT_USERNAME": "u", "REGSHIFT_PASSWORD": "p"}
    cred = creds.default_keychain(env).resolve("registry.example")
    assert (cred.username, cred.source) == ("u", "env")
    with pytest.raises(AuthError, match="set HOME or DOCKER_CONFIG"):
        creds.docker_config_path({})
