"""capabilities.json edge cases: malformed entries, concurrent writers, failed writes,
no home directory, and expiry measured against the clock of each read and write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from regshift.capabilities import MULTI_TAG_PUSH, PLAIN_HTTP, Capabilities

REG = "registry.example:5000"
WEEK = 7 * 24 * 3600.0


def _write(directory: Path, doc: object) -> None:
    (directory / "capabilities.json").write_text(json.dumps(doc))


def _file(directory: Path) -> dict[str, dict[str, list[object]]]:
    doc: dict[str, dict[str, list[object]]] = json.loads(
        (directory / "capabilities.json").read_text()
    )
    return doc


def _temp_files(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith(".capabilities."))


# --- malformed entries count as unknown ----------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [True, 5, 2.5, {"a": 1, "b": 2}, [True, 10**400]],
    ids=["bool", "int", "float", "dict", "huge-int-stamp"],
)
def test_malformed_entry_is_unknown_and_can_be_replaced(tmp_path: Path, bad: object) -> None:
    _write(tmp_path, {REG: {PLAIN_HTTP: bad, MULTI_TAG_PUSH: bad}})
    caps = Capabilities(tmp_path)
    assert caps.get(REG, PLAIN_HTTP) is None
    assert caps.get(REG, MULTI_TAG_PUSH) is None
    caps.set(REG, PLAIN_HTTP, True)
    assert caps.get(REG, PLAIN_HTTP) is True
    assert Capabilities(tmp_path).get(REG, PLAIN_HTTP) is True


def test_deeply_nested_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "capabilities.json").write_text("[" * 100_000)
    caps = Capabilities(tmp_path)
    assert caps.get(REG, PLAIN_HTTP) is None
    caps.set(REG, PLAIN_HTTP, False)
    assert Capabilities(tmp_path).get(REG, PLAIN_HTTP) is False


# --- concurrent writers keep each other's entries ------------------------------------------

_WRITER = """
    import sys
    from pathlib import Path
    from regshift.capabilities import MULTI_TAG_PUSH, PLAIN_HTTP, Capabilities
    caps = Capabilities(Path(sys.argv[1]))  # every writer has read the file before any writes
    print("ready", flush=True)
    sys.stdin.readline()
    for k in range(5):
        caps.set(f"reg{sys.argv[2]}-{k}.example:5000", PLAIN_HTTP, True)
        caps.set(f"reg{sys.argv[2]}-{k}.example:5000", MULTI_TAG_PUSH, k % 2 == 0)
"""


def test_concurrent_processes_keep_every_entry(tmp_path: Path) -> None:
    _write(tmp_path, {REG: {PLAIN_HTTP: [True, time.time()]}})
    procs = []
    for i in range(8):
        args = [sys.executable, "-c", textwrap.dedent(_WRITER), str(tmp_path), str(i)]
        procs.append(
            subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:  # go, all at once
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
    assert [proc.wait(timeout=60) for proc in procs] == [0] * 8
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.close()
    expected = {REG} | {f"reg{i}-{k}.example:5000" for i in range(8) for k in range(5)}
    assert set(_file(tmp_path)) == expected
    caps = Capabilities(tmp_path)
    assert all(caps.get(r, PLAIN_HTTP) is True for r in expected)
    assert caps.get("reg7-4.example:5000", MULTI_TAG_PUSH) is True
    assert caps.get("reg7-3.example:5000", MULTI_TAG_PUSH) is False
    assert _temp_files(tmp_path) == []


def test_two_instances_on_one_directory_merge(tmp_path: Path) -> None:
    first, second = Capabilities(tmp_path), Capabilities(tmp_path)
    first.set("one.example", PLAIN_HTTP, True)
    second.set("two.example", PLAIN_HTTP, False)
    assert second.get("one.example", PLAIN_HTTP) is True  # picked up while writing
    fresh = Capabilities(tmp_path)
    assert fresh.get("one.example", PLAIN_HTTP) is True
    assert fresh.get("two.example", PLAIN_HTTP) is False


# --- failed writes leave no temporary files ------------------------------------------------


def test_failed_replace_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "capabilities.json").mkdir()  # os.replace onto a directory fails
    caps = Capabilities(tmp_path)
    for _ in range(3):
        caps.set(REG, PLAIN_HTTP, True)
    assert caps.get(REG, PLAIN_HTTP) is True  # still known for this run
    assert _temp_files(tmp_path) == []


def test_failed_write_leaves_no_temp_file_and_the_file_intact(tmp_path: Path) -> None:
    _write(tmp_path, {REG: {PLAIN_HTTP: [True, time.time()]}})
    before = (tmp_path / "capabilities.json").read_text()
    code = """
        import resource, sys
        from pathlib import Path
        from regshift.capabilities import MULTI_TAG_PUSH, Capabilities
        resource.setrlimit(resource.RLIMIT_FSIZE, (20, 20))  # writes beyond 20 bytes: EFBIG
        caps = Capabilities(Path(sys.argv[1]))
        for i in range(3):
            caps.set(f"r{i}.example", MULTI_TAG_PUSH, True)
        print(caps.get("r2.example", MULTI_TAG_PUSH))
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["True"]
    assert _temp_files(tmp_path) == []
    assert (tmp_path / "capabilities.json").read_text() == before


# --- no home directory: run without a cache ------------------------------------------------


def test_no_home_and_no_passwd_entry_means_no_cache(tmp_path: Path) -> None:
    code = """
        import pwd
        def no_entry(uid):
            raise KeyError(f"getpwuid(): uid not found: {uid}")
        pwd.getpwuid = no_entry  # a uid without a passwd entry, as in some containers
        from regshift.capabilities import PLAIN_HTTP, Capabilities, default_cache_dir
        from regshift.client import ClientOptions
        options = ClientOptions()
        caps = Capabilities(options.cache_dir)
        caps.set("r.example", PLAIN_HTTP, True)
        print(default_cache_dir(), options.cache_dir, caps.get("r.example", PLAIN_HTTP))
        print(default_cache_dir({"REGSHIFT_CACHE_DIR": sys.argv[1]}))
    """
    unset = ("HOME", "XDG_CACHE_HOME", "REGSHIFT_CACHE_DIR")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    out = subprocess.run(
        [sys.executable, "-c", "import sys\n" + textwrap.dedent(code), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "None", "True", str(tmp_path)]
    assert os.listdir(tmp_path) == []


# --- expiry uses the time of each read and write -------------------------------------------


def test_entries_expire_while_an_instance_lives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_000_000_000.0]
    monkeypatch.setattr("regshift.capabilities.time.time", lambda: now[0])
    _write(tmp_path, {REG: {MULTI_TAG_PUSH: [False, now[0] - WEEK + 60]}})
    caps = Capabilities(tmp_path)
    assert caps.get(REG, MULTI_TAG_PUSH) is False
    now[0] += 120  # the same instance, two minutes later: the entry is now a week old
    assert caps.get(REG, MULTI_TAG_PUSH) is None


def test_set_stamps_the_time_it_learnt(tmp_path: Path) -> None:
    caps = Capabilities(tmp_path)
    time.sleep(0.2)
    before = time.time()
    caps.set(REG, MULTI_TAG_PUSH, True)
    stamp = _file(tmp_path)[REG][MULTI_TAG_PUSH][1]
    assert isinstance(stamp, float)
    assert before <= stamp <= time.time()


@pytest.mark.parametrize(
    "offset",
    [60.0, 10 * 365 * 86400.0, float("inf"), float("nan")],
    ids=["a-minute-ahead", "ten-years-ahead", "infinity", "nan"],
)
def test_future_or_non_finite_stamps_are_stale(tmp_path: Path, offset: float) -> None:
    _write(tmp_path, {REG: {MULTI_TAG_PUSH: [False, time.time() + offset]}})
    assert Capabilities(tmp_path).get(REG, MULTI_TAG_PUSH) is None
