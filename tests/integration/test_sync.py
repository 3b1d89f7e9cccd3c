"""``regshift sync`` and ``regshift catalog`` against two real open registries (2.8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from regshift.reference import parse_reference
from regshift.sample import random_image, random_index

from harness.registry import RegistryServer
from support import client_for, run_cli, seed

TAGS = ["1.0.0", "1.2.0", "1.3.0-rc.1", "1.4.0", "2.0.0", "latest", "1.4.0-debug"]


def _digest(host: str, ref: str) -> str | None:
    with client_for() as client:
        return client.digest_of(parse_reference(f"{host}/{ref}"))


def _seed_repo(host: str, repo: str, tags: list[str], base: int = 0) -> dict[str, str]:
    digests = {}
    for number, tag in enumerate(tags):
        sample = random_image(seed=base + number, layers=1, layer_size=256)
        seed(host, repo, tag, sample)
        digests[tag] = sample.manifest.digest
    return digests


def _write(tmp_path: Path, text: str, name: str = "sync.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _plan(src: RegistryServer, dst: RegistryServer, repo: str, tool: str) -> str:
    return f"""\
defaults:
  referrers: false
sync:
  - source: {src.host}/{repo}
    destination: {dst.host}/{repo}
    tags:
      include: ['^1\\.', '^2\\.']
      exclude: ['-debug$']
      semver: '>=1.2.0 <2.0.0'
  - source: {src.host}/{tool}:2.0
    destination: {dst.host}/mirror/{tool}
"""


def test_sync_copies_exactly_the_selected_tags_then_costs_heads_only(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    digests = _seed_repo(open_registry.host, repo_name, TAGS)
    tool = f"{repo_name}-tool"
    seed(open_registry.host, tool, "2.0", random_index(seed=77, layers=1, layer_size=128))
    tool_digest = _digest(open_registry.host, f"{tool}:2.0")
    plan = _write(tmp_path, _plan(open_registry, other_registry, repo_name, tool))

    result = run_cli("sync", plan, "--json", "-q")
    assert result.code == 0, result.stderr
    doc = result.json()
    copied = sorted(u["destination"] for u in doc["units"] if u["action"] == "copied")
    wanted = ["1.2.0", "1.4.0"]  # 1.3.0-rc.1: a pre-release; 2.0.0: outside; debug: excluded
    assert copied == sorted(
        [f"{other_registry.host}/{repo_name}:{t}" for t in wanted]
        + [f"{other_registry.host}/mirror/{tool}:2.0"]
    )
    for tag in wanted:
        assert _digest(other_registry.host, f"{repo_name}:{tag}") == digests[tag]
    with client_for() as client:
        dst_tags = client.list_tags(parse_reference(f"{other_registry.host}/{repo_name}"))
    assert sorted(dst_tags) == wanted
    assert _digest(other_registry.host, f"mirror/{tool}:2.0") == tool_digest
    reasons = {e["source"].rsplit(":", 1)[1]: e["reason"] for e in doc["excluded"]}
    assert "semver" in reasons["1.3.0-rc.1"] and "semver" in reasons["2.0.0"]
    assert "excluded" in reasons["1.4.0-debug"] and "include" in reasons["latest"]

    # Second run: nothing to do; one HEAD per unit at the destination, no write at all.
    other_registry.mark()
    again = run_cli("sync", plan, "--json", "-q")
    assert again.code == 0, again.stderr
    assert {u["action"] for u in again.json()["units"]} == {"up-to-date"}
    logged = other_registry.requests()
    writes = [r for r in logged if r.method in ("PUT", "POST", "PATCH", "DELETE")]
    assert writes == []
    heads = [r for r in logged if r.method == "HEAD" and "/manifests/" in r.path]
    assert len(heads) == 3
    assert not [r for r in logged if r.method == "GET" and "/manifests/" in r.path]

    # --check: 0 while up to date, 5 once a new selected tag appears at the source.
    assert run_cli("sync", plan, "--check").code == 0
    _seed_repo(open_registry.host, repo_name, ["1.5.0"], base=50)
    other_registry.mark()
    check = run_cli("sync", plan, "--check")
    assert check.code == 5, check.stdout + check.stderr
    assert f"stale      {open_registry.host}/{repo_name}:1.5.0" in check.stdout
    assert other_registry.count("PUT") == 0 and other_registry.count("POST") == 0


def test_dry_run_prints_plan_and_filter_decisions(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    _seed_repo(open_registry.host, repo_name, ["1.0.0", "1.1.0", "1.2.0", "0.9.0", "edge", "zz"])
    plan = _write(
        tmp_path,
        f"sync:\n  - source: {open_registry.host}/{repo_name}\n"
        f"    destination: {other_registry.host}/{repo_name}\n"
        "    tags: {newest: 3}\n",
    )
    other_registry.mark()
    result = run_cli("sync", plan, "--dry-run")
    assert result.code == 0, result.stderr
    would = sorted(
        line.split()[1].rsplit(":", 1)[1]
        for line in result.stdout.splitlines()
        if line.startswith("would-copy")
    )
    assert would == ["1.0.0", "1.1.0", "1.2.0"]  # versions rank above other tags
    assert "not among the newest 3" in result.stdout
    assert other_registry.count("PUT") == 0


def test_two_shards_at_once_cover_the_plan_once(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    tags = [f"1.{n}.0" for n in range(12)]
    _seed_repo(open_registry.host, repo_name, tags, base=100)
    plan = _write(
        tmp_path,
        f"sync:\n  - source: {open_registry.host}/{repo_name}\n"
        f"    destination: {other_registry.host}/{repo_name}\n",
    )
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "regshift", "sync", plan, "--shard", f"{i}/2", "--json", "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outputs]
    docs = [json.loads(out) for out, _ in outputs]
    shards = [{u["destination"] for u in d["units"]} for d in docs]
    assert shards[0].isdisjoint(shards[1])
    assert shards[0] and shards[1]
    assert shards[0] | shards[1] == {f"{other_registry.host}/{repo_name}:{t}" for t in tags}
    assert all(u["action"] == "copied" for d in docs for u in d["units"])
    assert all(d["summary"]["planned"] == len(tags) for d in docs)
    # Each destination tag was written once, by one of the two processes.
    puts = [
        r
        for r in other_registry.requests(since_mark=False)
        if r.method == "PUT" and f"/v2/{repo_name}/manifests/1." in r.path
    ]
    assert sorted(r.path for r in puts) == sorted(f"/v2/{repo_name}/manifests/{t}" for t in tags)


_ENTRY = "sync:\n  - source: a.example/x\n    destination: b.example/x\n"


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        (
            "sync:\n  - source: a.example/x\n    destinaton: b.example/x\n",
            3,
            "sync[0].destinaton: unknown key",
        ),
        (
            _ENTRY + "    tags:\n      include: ['(']\n",
            5,
            "sync[0].tags.include: bad regular expression",
        ),
        (
            _ENTRY + "    tags: {semver: '>=1.x'}\n",
            4,
            "sync[0].tags.semver",
        ),
        (
            _ENTRY + "    tags: {newest: 0}\n",
            4,
            "sync[0].tags.newest",
        ),
        (
            _ENTRY.replace("/x\n", "/x:1\n", 1) + "    tags: {newest: 2}\n",
            4,
            "sync[0].tags: not for an image entry",
        ),
        (
            "sync:\n  - source: a.example/X\n    destination: b.example/x\n",
            2,
            "sync[0].source: invalid repository",
        ),
        (
            "defaults:\n  referrers: yes please\nsync: []\n",
            2,
            "defaults.referrers: expected true or false",
        ),
        ("sync:\n  - source: a.example/x\n   destination: [\n", 3, "not valid YAML"),
        ("sync:\n  - destination: b.example/x\n", 2, "sync[0].source: missing"),
        ("sink: []\n", 1, "sink: unknown key"),
    ],
)
def test_bad_files_are_usage_errors_naming_line_and_key(
    tmp_path: Path, text: str, line: int, key: str
) -> None:
    plan = _write(tmp_path, text)
    result = run_cli("sync", plan)
    assert result.code == 2
    message = [ln for ln in result.stderr.splitlines() if ln.strip()][-1]
    assert f"{plan}:{line}: " in message and key in message, message


@pytest.mark.parametrize("flags", [(), ("--dry-run",), ("--shard", "1/2", "--keep-going")])
def test_two_entries_writing_one_tag_from_different_sources_are_refused(
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
    tmp_path: Path,
    flags: tuple[str, ...],
) -> None:
    """Which image the tag would end at depends on timing: refused (exit 2) before anything
    is written, naming both entries, whatever the shard (as tag --from-file refuses it)."""
    _seed_repo(open_registry.host, repo_name, ["1.0.0", "1.1.0"], base=500)
    _seed_repo(open_registry.host, f"{repo_name}-other", ["1.0.0"], base=510)
    dst = f"{other_registry.host}/{repo_name}"
    text = (
        "sync:\n"
        f"  - source: {open_registry.host}/{repo_name}\n"
        f"    destination: {dst}\n"
        f"  - source: {open_registry.host}/{repo_name}-other:1.0.0\n"
        f"    destination: {dst}\n"
    )
    plan = _write(tmp_path, text)
    result = run_cli("sync", plan, *flags)
    assert result.code == 2, result.stderr
    message = [ln for ln in result.stderr.splitlines() if ln.strip()][-1]
    assert f"{plan}:4: destination {dst}:1.0.0 " in message, message
    assert f"by the entry at {plan}:2" in message and "nothing synced" in message, message
    assert f"{repo_name}-other:1.0.0" in message and f"{repo_name}:1.0.0 by" in message
    assert _digest(other_registry.host, f"{repo_name}:1.1.0") is None  # nothing ran


def test_the_same_tag_from_the_same_source_twice_is_done_once(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    digests = _seed_repo(open_registry.host, repo_name, ["1.0.0"], base=520)
    dst = f"{other_registry.host}/{repo_name}"
    text = (
        "sync:\n"
        f"  - source: {open_registry.host}/{repo_name}\n"
        f"    destination: {dst}\n"
        f"  - source: {open_registry.host}/{repo_name}:1.0.0\n"
        f"    destination: {dst}:1.0.0\n"
    )
    result = run_cli("sync", _write(tmp_path, text), "--json", "-q")
    assert result.code == 0, result.stderr
    assert [(u["destination"], u["action"]) for u in result.json()["units"]] == [
        (f"{dst}:1.0.0", "copied")
    ]
    assert _digest(other_registry.host, f"{repo_name}:1.0.0") == digests["1.0.0"]


def test_source_down_stops_or_keeps_going(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    _seed_repo(open_registry.host, repo_name, ["1.0.0"], base=200)
    text = (
        "sync:\n"
        f"  - source: 127.0.0.1:9/{repo_name}\n"  # the discard port: nothing listens
        f"    destination: {other_registry.host}/{repo_name}-down\n"
        f"  - source: {open_registry.host}/{repo_name}:1.0.0\n"
        f"    destination: {other_registry.host}/{repo_name}\n"
    )
    plan = _write(tmp_path, text)
    stopped = run_cli("sync", plan, "--retries", "0")
    assert stopped.code == 1
    assert "127.0.0.1:9" in stopped.stderr and f"{plan}:2" in stopped.stderr
    assert _digest(other_registry.host, f"{repo_name}:1.0.0") is None  # nothing ran

    going = run_cli("sync", plan, "--retries", "0", "--keep-going", "--json")
    assert going.code == 1
    units = {u["source"]: u for u in going.json()["units"]}
    assert units[f"127.0.0.1:9/{repo_name}"]["action"] == "failed"
    assert "127.0.0.1:9" in units[f"127.0.0.1:9/{repo_name}"]["error"]
    assert units[f"{open_registry.host}/{repo_name}:1.0.0"]["action"] == "copied"
    assert _digest(other_registry.host, f"{repo_name}:1.0.0") is not None
    assert "regshift: error: 127.0.0.1:9/" in going.stderr


def test_registry_entry_through_the_catalog(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    keep, scratch = f"{repo_name}/app", f"{repo_name}/scratch"
    _seed_repo(open_registry.host, keep, ["1.0.0"], base=300)
    _seed_repo(open_registry.host, scratch, ["1.0.0"], base=310)
    listed = run_cli("catalog", open_registry.host)
    assert listed.code == 0 and keep in listed.stdout.splitlines()
    prefix = repo_name.replace("/", "-")
    plan = _write(
        tmp_path,
        f"sync:\n  - source: {open_registry.host}\n"
        f"    destination: {other_registry.host}/{prefix}\n"
        f"    repositories:\n      include: ['^{repo_name}/']\n      exclude: ['/scratch$']\n",
    )
    result = run_cli("sync", plan, "--json", "-q")
    assert result.code == 0, result.stderr
    assert [u["destination"] for u in result.json()["units"]] == [
        f"{other_registry.host}/{prefix}/{keep}:1.0.0"
    ]


def test_announced_pull_budget_stops_before_the_reserve(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    """A source announcing Docker Hub's ``ratelimit-remaining`` (added by the fault proxy,
    counting down one per manifest GET): pulls stop, with a clear message, while the
    announced budget is still at the reserve."""
    from harness.proxy import FaultProxy, RewriteHeader, Rule

    tags = [f"1.{n}.0" for n in range(8)]
    _seed_repo(open_registry.host, repo_name, tags, base=400)
    left = iter(range(13, 0, -1))
    budget = RewriteHeader("ratelimit-remaining", lambda _old: f"{next(left)};w=21600")
    with FaultProxy(open_registry.host) as proxy:
        proxy.add_rule(Rule(method="GET", path=r"/manifests/", action=budget))
        plan = _write(
            tmp_path,
            f"sync:\n  - source: {proxy.host}/{repo_name}\n"
            f"    destination: {other_registry.host}/{repo_name}\n",
        )
        result = run_cli("sync", plan, "-j", "1", "--rate-limit-reserve", "10", "--json")
        pulls = [r for r in proxy.requests if r.method == "GET" and "/manifests/" in r.path]
    assert result.code == 1, result.stderr
    assert "ratelimit-remaining" in result.stderr and "10 pulls left" in result.stderr
    assert "units done before stopping: 4 of 8" in result.stderr
    assert len(pulls) == 4  # announced 13, 12, 11, 10 after them: the fifth is not sent
    with client_for() as client:
        copied = client.list_tags(parse_reference(f"{other_registry.host}/{repo_name}"))
    assert len(copied) == 4
