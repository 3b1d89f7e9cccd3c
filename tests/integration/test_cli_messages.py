"""Issue 15, misleading messages: tag files writing one tag twice, stdin read twice,
--password-stdin without a user, the login error, --ca-file checked the same way everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from regshift.sample import random_image

from harness.registry import RegistryServer
from support import registry_user, run_cli, seed


def _tags(registry: RegistryServer, repo: str) -> list[str]:
    result = run_cli("ls", "--json", f"{registry.host}/{repo}")
    assert result.code == 0, result.stderr
    return sorted(result.json()["tags"])


def test_tag_file_refuses_two_sources_for_one_tag_naming_the_lines(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    host = open_registry.host
    seed(host, repo_name, "a", random_image(seed=1511))
    seed(host, repo_name, "b", random_image(seed=1512))
    tags_file = tmp_path / "tags.txt"
    tags_file.write_text(
        f"{host}/{repo_name}:a stable one\n# comment\n\n{host}/{repo_name}:b two stable\n"
    )
    open_registry.mark()
    result = run_cli("tag", "--from-file", str(tags_file))
    assert result.code == 2, result.stderr
    assert f"tags.txt:4: {host}/{repo_name}:stable is also written by line 1" in result.stderr
    assert "nothing tagged" in result.stderr
    assert open_registry.requests() == [], "nothing may be sent before the file is checked"
    assert _tags(open_registry, repo_name) == ["a", "b"]


def test_tag_file_conflicts_are_found_after_normalising_references(tmp_path: Path) -> None:
    tags_file = tmp_path / "hub.txt"
    tags_file.write_text("docker.io/library/app:1 latest\napp:2 latest\n")
    result = run_cli("tag", "--from-file", str(tags_file))
    assert result.code == 2
    assert "hub.txt:2: docker.io/library/app:latest is also written by line 1" in result.stderr


def test_tag_file_same_tag_from_the_same_source_is_written_once(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    host = open_registry.host
    image = random_image(seed=1513)
    seed(host, repo_name, "a", image)
    tags_file = tmp_path / "tags.txt"
    # The same source, spelled as given: no race, both lines want the same bytes.
    tags_file.write_text(f"{host}/{repo_name}:a stable\n{host}/{repo_name}:a stable extra\n")
    open_registry.mark()
    result = run_cli("tag", "--json", "--from-file", str(tags_file))
    assert result.code == 0, result.stderr
    docs = result.json()
    assert [[t["tag"] for t in d["tags"]] for d in docs] == [["stable"], ["extra"]]
    assert open_registry.count("PUT", "/manifests/stable") == 1
    assert _tags(open_registry, repo_name) == ["a", "extra", "stable"]


def test_from_file_stdin_with_password_stdin_is_refused(open_registry: RegistryServer) -> None:
    result = run_cli(
        "tag", "--from-file", "-", "-u", "me", "--password-stdin",
        input=f"{open_registry.host}/x:1 y\n",
    )  # fmt: skip
    assert result.code == 2
    assert "--from-file - and --password-stdin both read standard input" in result.stderr


@pytest.mark.parametrize("command", [["ls", "127.0.0.1:1/x"], ["login", "127.0.0.1:1"]])
def test_password_stdin_without_username_is_a_usage_error(command: list[str]) -> None:
    result = run_cli(*command, "--password-stdin", input="secret-pw-never-used\n")
    assert result.code == 2, result.stderr
    assert "--password-stdin needs -u/--username" in result.stderr


def test_failed_login_names_the_registry_not_a_made_up_repository(
    basic_registry: RegistryServer,
) -> None:
    user, _ = registry_user(basic_registry)
    result = run_cli(
        "login", basic_registry.host, "-u", user, "--password-stdin", input="wrong-password\n"
    )
    assert result.code == 3
    assert "ping" not in result.stderr
    assert f"regshift: error: {basic_registry.host}: " in result.stderr


@pytest.mark.parametrize("kind", ["missing", "directory", "not-pem"])
@pytest.mark.parametrize("scheme", ["plain-http", "tls"])
def test_a_bad_ca_file_is_one_usage_error_before_anything_is_sent(
    kind: str,
    scheme: str,
    open_registry: RegistryServer,
    tls_registry: RegistryServer,
    tmp_path: Path,
) -> None:
    ca = {"missing": tmp_path / "nope.pem", "directory": tmp_path, "not-pem": tmp_path / "x.pem"}
    ca[kind].parent.mkdir(exist_ok=True)
    if kind == "not-pem":
        ca[kind].write_text("not a certificate\n")
    registry = open_registry if scheme == "plain-http" else tls_registry
    registry.mark()
    result = run_cli("ls", "--ca-file", str(ca[kind]), f"{registry.host}/x")
    assert result.code == 2, result.stderr
    assert f"--ca-file {ca[kind]}: " in result.stderr
    assert registry.requests() == []


def test_failed_token_login_names_the_registry(token_registry: RegistryServer) -> None:
    user, _ = registry_user(token_registry)
    result = run_cli(
        "login", token_registry.host, "-u", user, "--password-stdin", input="wrong-password\n"
    )
    assert result.code == 3
    assert "ping" not in result.stderr, result.stderr
    assert token_registry.host in result.stderr
