"""Helpers shared by the integration tests: seeding images, running the CLI, reading results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from regshift import Client, ClientOptions, Credential, StaticKeychain, TransportOptions
from regshift.cli.main import cli
from regshift.reference import Reference, parse_reference
from regshift.sample import SampleImage, SampleIndex, push_sample

from harness.registry import RegistryServer

SECRETS: set[str] = set()  # every password/token a test used; checked against all CLI output


@dataclass(frozen=True)
class CliResult:
    """Exit code and output of one CLI run."""

    code: int
    stdout: str
    stderr: str
    stdout_bytes: bytes

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> CliResult:
    """Run ``regshift ARGS`` in-process (click's runner); secrets must never appear in output."""
    runner = CliRunner()
    result = runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False)
    out = CliResult(result.exit_code, result.stdout, result.stderr, result.stdout_bytes)
    _no_secrets(out.stdout + out.stderr)
    return out


def _no_secrets(text: str) -> None:
    """No password or token a test used, no bearer token (every JWT starts with ``eyJ``)."""
    for secret in SECRETS:
        assert secret not in text, "a secret was printed"
    assert "eyJ" not in text and "Bearer " not in text and "Basic " not in text


def run_cli_process(*args: str, input: str | None = None) -> CliResult:
    """Run ``python -m regshift ARGS`` as a real process."""
    proc = subprocess.run(
        [sys.executable, "-m", "regshift", *args],
        input=input,
        capture_output=True,
        env=os.environ.copy(),
    )
    stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
    _no_secrets(stdout + stderr)
    return CliResult(proc.returncode, stdout, stderr, proc.stdout)


def client_for(
    *,
    username: str | None = None,
    password: str | None = None,
    ca_file: str | None = None,
    cache_dir: Path | None = None,
) -> Client:
    """A library client, optionally with fixed credentials."""
    keychain = None
    if username and password:
        SECRETS.add(password)
        keychain = StaticKeychain(Credential(username=username, password=password, source="test"))
    transport = TransportOptions(ca_file=ca_file, retries=1, backoff=0.05)
    return Client(ClientOptions(transport=transport, keychain=keychain, cache_dir=cache_dir))


def seed(
    registry_host: str, repo: str, tag: str, sample: SampleImage | SampleIndex, **creds: Any
) -> Reference:
    """Push ``sample`` as ``registry/repo:tag`` with our own client; return the reference."""
    ref = parse_reference(f"{registry_host}/{repo}:{tag}")
    with client_for(**creds) as client:
        push_sample(client, ref, sample)
    return ref


def write_docker_config(doc: dict[str, Any]) -> Path:
    """Write ``$DOCKER_CONFIG/config.json`` (the test's isolated one)."""
    path = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    path.write_text(json.dumps(doc))
    return path


def manifest_paths(requests: list[Any]) -> list[tuple[str, str]]:
    """(method, path) of every logged request, for readable assertions."""
    return [(r.method, r.path) for r in requests]


def registry_user(server: RegistryServer) -> tuple[str, str]:
    """The user name and password of an htpasswd or token registry; the password is
    remembered in :data:`SECRETS`, so no output of a test may contain it."""
    assert server.username and server.password
    SECRETS.add(server.password)
    return server.username, server.password
