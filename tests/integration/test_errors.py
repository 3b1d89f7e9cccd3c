"""Bad input and failing registries: one clear line, a documented exit code, nothing written."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from regshift.sample import random_image, random_index

from harness.proxy import FaultProxy, Respond, RewriteHeader, Rule
from harness.registry import RegistryServer
from support import run_cli, run_cli_process, seed


@pytest.fixture
def proxy(open_registry: RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(open_registry.host) as p:
        yield p


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("regshift: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["tag", "Upper/Case:1", "x"], "must be lowercase"),
        (["tag", "127.0.0.1:5000/a:1", "bad tag!"], "invalid tag"),
        (["tag", "127.0.0.1:5000/a:1", ".dot"], "invalid tag"),
        (["tag", "127.0.0.1:5000/a@sha256:abc", "x"], "digest"),
        (["digest", "127.0.0.1:5000/a:"], "invalid tag"),
        (["ls", "127.0.0.1:5000/a:tagged"], "invalid repository"),
        (["manifest", ""], "empty reference"),
        (["delete", "127.0.0.1:notaport/a:1"], "invalid port"),
    ],
)
def test_malformed_references(open_registry: RegistryServer, args: list[str], needle: str) -> None:
    open_registry.mark()
    result = run_cli(*args)
    assert result.code == 2
    assert needle in _one_line(result.stderr)
    assert open_registry.requests() == []


def test_usage_errors() -> None:
    missing = run_cli("tag", "127.0.0.1:5000/a:1")
    assert missing.code == 2 and "at least one NEW_TAG" in missing.stderr
    assert run_cli("nosuchcommand").code == 2


def test_missing_tag_and_repository(open_registry: RegistryServer, repo_name: str) -> None:
    src = seed(open_registry.host, repo_name, "v1", random_image(seed=31))
    open_registry.mark()
    gone = run_cli("tag", f"{open_registry.host}/{repo_name}:nope", "x")
    assert gone.code == 4
    line = _one_line(gone.stderr)
    assert f"{repo_name}:nope" in line and "MANIFEST_UNKNOWN" in line
    no_repo = run_cli("ls", f"{open_registry.host}/{repo_name}-missing")
    assert no_repo.code == 4 and "NAME_UNKNOWN" in _one_line(no_repo.stderr)
    assert not [r for r in open_registry.requests() if r.method == "PUT"]
    assert run_cli("ls", f"{open_registry.host}/{repo_name}").stdout.split() == [src.tag]


def test_403_from_registry(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    seed(open_registry.host, repo_name, "v1", random_image(seed=32))
    body = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
    proxy.add_rule(
        Rule(method="PUT", action=Respond(403, {"Content-Type": "application/json"}, body))
    )
    result = run_cli("tag", "--json", f"{proxy.host}/{repo_name}:v1", "blocked")
    assert result.code == 3
    assert "DENIED: requested access to the resource is denied" in result.stderr
    assert result.json()["tags"][0]["action"] == "failed"
    assert run_cli("ls", f"{open_registry.host}/{repo_name}").stdout.split() == ["v1"]


def test_401_from_registry_without_challenge(proxy: FaultProxy, repo_name: str) -> None:
    proxy.add_rule(Rule(action=Respond(401, {}, b"")))
    result = run_cli("digest", f"{proxy.host}/{repo_name}:v1")
    assert result.code == 3
    assert "401" in _one_line(result.stderr)


def test_registry_down() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli("tag", f"127.0.0.1:{port}/a/b:1", "x")
    assert result.code == 1
    line = _one_line(result.stderr)
    assert f"127.0.0.1:{port}" in line and ("refused" in line.lower() or "connect" in line.lower())


def test_digest_falls_back_to_get(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    sample = random_index(seed=33)
    seed(open_registry.host, repo_name, "v1", sample)
    proxy.add_rule(Rule(method="HEAD", action=RewriteHeader("Docker-Content-Digest", None)))
    proxy.reset_log()
    result = run_cli("digest", f"{proxy.host}/{repo_name}:v1")
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == sample.manifest.digest
    assert [r.method for r in proxy.requests if "/manifests/" in r.path] == ["HEAD", "GET"]


def test_ls_follows_pagination(proxy: FaultProxy, repo_name: str) -> None:
    # distribution 2.8 ignores ?n= on tag lists, so the pages come from the proxy.
    base = f"/v2/{repo_name}/tags/list"
    pages = [
        ("n=1000$", ["a", "b"], f"{base}?n=1000&last=b"),
        ("last=b$", ["c", "d"], f"http://{proxy.host}{base}?n=1000&last=d"),  # absolute, same host
        ("last=d$", ["e"], None),
    ]
    for pattern, tags, nxt in pages:
        headers = [("Content-Type", "application/json")]
        if nxt:
            headers.append(("Link", f'<{nxt}>; rel="next"'))
        body = json.dumps({"name": repo_name, "tags": tags}).encode()
        proxy.add_rule(Rule(method="GET", path=pattern, action=Respond(200, headers, body)))
    result = run_cli("ls", "--json", f"{proxy.host}/{repo_name}")
    assert result.code == 0, result.stderr
    assert result.json()["tags"] == ["a", "b", "c", "d", "e"]
    assert len([r for r in proxy.requests if "/tags/list" in r.path]) == 3


def test_ls_refuses_pagination_loop(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    seed(open_registry.host, repo_name, "v1", random_image(seed=35))
    loop = f'</v2/{repo_name}/tags/list?n=1000>; rel="next"'
    proxy.add_rule(Rule(method="GET", path="/tags/list", action=RewriteHeader("Link", loop)))
    result = run_cli("ls", f"{proxy.host}/{repo_name}")
    assert result.code == 1
    assert "pagination" in _one_line(result.stderr)


def test_delete_tag_semantics(open_registry: RegistryServer, repo_name: str) -> None:
    shared = seed(open_registry.host, repo_name, "a", random_image(seed=36))
    seed(open_registry.host, repo_name, "solo", random_image(seed=37))
    assert run_cli("tag", str(shared), "b").code == 0
    repo = f"{open_registry.host}/{repo_name}"

    refused = run_cli("delete", f"{repo}:a")
    assert refused.code == 5
    assert "b" in _one_line(refused.stderr) and "--force" in refused.stderr
    assert sorted(run_cli("ls", repo).stdout.split()) == ["a", "b", "solo"]

    alone = run_cli("delete", "--json", f"{repo}:solo")
    assert alone.code == 0, alone.stderr
    assert alone.json()["removedTags"] == ["solo"] and alone.json()["method"] == "digest"

    digest = random_image(seed=36).manifest.digest
    by_digest = run_cli("delete", f"{repo}@{digest}")
    assert by_digest.code == 5
    forced = run_cli("delete", "--force", "--json", f"{repo}:a")
    assert forced.code == 0
    assert sorted(forced.json()["removedTags"]) == ["a", "b"]
    assert run_cli("ls", repo).stdout.split() == []


def test_delete_refused_by_registry(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    seed(open_registry.host, repo_name, "only", random_image(seed=38))
    body = b'{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}'
    proxy.add_rule(
        Rule(method="DELETE", action=Respond(405, {"Content-Type": "application/json"}, body))
    )
    result = run_cli("delete", f"{proxy.host}/{repo_name}:only")
    assert result.code == 1
    line = _one_line(result.stderr)
    assert "UNSUPPORTED" in line and "does not allow deletes" in line
    assert run_cli("ls", f"{open_registry.host}/{repo_name}").stdout.split() == ["only"]


def test_module_and_console_script(open_registry: RegistryServer, repo_name: str) -> None:
    src = seed(open_registry.host, repo_name, "v1", random_image(seed=39))
    result = run_cli_process("digest", "--json", str(src))
    assert result.code == 0, result.stderr
    assert result.json()["digest"] == random_image(seed=39).manifest.digest
    bad = run_cli_process("digest", "NOT/valid")
    assert bad.code == 2 and bad.stderr.startswith("regshift: error: invalid reference")


def test_real_process_prints_one_line_even_after_retries() -> None:
    """The library logs retries, but stays silent unless asked (--debug): one error line."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ref = f"127.0.0.1:{port}/a/b:1"
    result = run_cli_process("digest", "--retries", "2", ref)
    assert result.code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"regshift: error: {ref}: ")
    debug = run_cli_process("digest", "--retries", "1", "--debug", ref)
    assert "retrying in" in debug.stderr


def test_retry_after_is_capped_and_reported(
    proxy: FaultProxy,
    open_registry: RegistryServer,
    repo_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A registry asking for an hour gets the cap (here 0.5 s), and the wait is reported."""
    import time

    from regshift import Client, ClientOptions, TransportOptions
    from regshift.reference import parse_reference

    image = random_image(seed=40)
    seed(open_registry.host, repo_name, "v1", image)
    proxy.add_rule(Rule(method="HEAD", times=1, action=Respond(429, {"Retry-After": "3600"}, b"")))
    options = ClientOptions(
        transport=TransportOptions(retries=2, max_retry_after=0.5), cache_dir=None
    )
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="regshift"), Client(options) as client:
        found = client.resolve_digest(parse_reference(f"{proxy.host}/{repo_name}:v1"))
        assert client.stats.retries == 1
        assert 0.45 <= client.stats.retry_wait <= 0.6
    assert found.digest == image.manifest.digest
    assert time.monotonic() - started < 5
    assert any("Retry-After 3600s capped" in r.getMessage() for r in caplog.records)


def test_untrustworthy_digest_header_falls_back_to_get(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    sample = random_index(seed=41)
    seed(open_registry.host, repo_name, "v1", sample)
    proxy.add_rule(Rule(method="HEAD", action=RewriteHeader("Docker-Content-Digest", "md5:0123")))
    result = run_cli("digest", f"{proxy.host}/{repo_name}:v1")
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == sample.manifest.digest
    assert [r.method for r in proxy.requests if "/manifests/" in r.path] == ["HEAD", "GET"]
