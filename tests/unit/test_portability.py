"""Decisions that differ between Linux, macOS and Windows, each made for every system here.

Every function under test takes the system (or ``windows``) and the environment as
parameters, so the Windows and macOS answers are checked on Linux. What these tests cannot
show (that ``msvcrt`` locks, ``PATHEXT`` lookups and pipes behave on a real Windows as the
code expects) is listed in the README's "Platforms" section.
"""

from __future__ import annotations

import errno
import itertools
from pathlib import Path

import pytest

from regshift.auth.credentials import ANONYMOUS, FileKeychain, default_keychain, docker_config_path
from regshift.capabilities import default_cache_dir
from regshift.cli.exits import reader_gone
from regshift.errors import AuthError
from regshift.hostos import home_dir, home_variable, replace_file
from regshift.layout.files import lock_target
from regshift.locking import lock_failure, wait_for_lock

LINUX, MACOS, WINDOWS = "linux", "darwin", "win32"

# --- cache directory ----------------------------------------------------------------------

_HOME = {"HOME": "/home/u", "USERPROFILE": "C:\\Users\\u"}


@pytest.mark.parametrize(
    ("system", "env", "expected"),
    [
        (LINUX, _HOME, "/home/u/.cache/regshift"),
        (MACOS, _HOME, "/home/u/Library/Caches/regshift"),
        (WINDOWS, {**_HOME, "LOCALAPPDATA": "C:\\Users\\u\\AppData\\Local"}, None),
        (WINDOWS, _HOME, "C:\\Users\\u/AppData/Local/regshift"),  # no LOCALAPPDATA
        (LINUX, {**_HOME, "XDG_CACHE_HOME": "/xdg"}, "/xdg/regshift"),
        (MACOS, {**_HOME, "XDG_CACHE_HOME": "/xdg"}, "/xdg/regshift"),  # set: a choice
        (WINDOWS, {**_HOME, "XDG_CACHE_HOME": "D:\\xdg"}, "D:\\xdg/regshift"),
        (WINDOWS, {**_HOME, "REGSHIFT_CACHE_DIR": "D:\\c", "XDG_CACHE_HOME": "/x"}, "D:\\c"),
        (MACOS, {**_HOME, "REGSHIFT_CACHE_DIR": "/c"}, "/c"),
    ],
)
def test_default_cache_dir(system: str, env: dict[str, str], expected: str | None) -> None:
    if expected is None:
        expected = str(Path(env["LOCALAPPDATA"]) / "regshift")
    assert default_cache_dir(env, system=system) == Path(expected)


def test_home_is_userprofile_on_windows_and_home_elsewhere() -> None:
    assert [home_variable(s) for s in (LINUX, MACOS, WINDOWS)] == ["HOME", "HOME", "USERPROFILE"]
    assert home_dir(_HOME, WINDOWS) == Path("C:\\Users\\u")
    assert home_dir(_HOME, MACOS) == Path("/home/u")


# --- credential files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "home"), [(LINUX, "/home/u"), (MACOS, "/home/u"), (WINDOWS, "C:\\Users\\u")]
)
def test_docker_config_path_per_system(system: str, home: str) -> None:
    assert docker_config_path(_HOME, system=system) == Path(home) / ".docker" / "config.json"
    env = {**_HOME, "DOCKER_CONFIG": "D:\\dc"}
    assert docker_config_path(env, system=system) == Path("D:\\dc") / "config.json"


def _auth_file_order(tmp_path: Path, system: str, env: dict[str, str]) -> list[Path]:
    """Which files the default keychain reads, in order: each candidate file gets a
    credential for its own registry, and the source of each answer names the file."""
    candidates = [
        tmp_path / "auth-file.json",
        tmp_path / "home" / ".docker" / "config.json",
        tmp_path / "profile" / ".docker" / "config.json",
        tmp_path / "run" / "containers" / "auth.json",
        tmp_path / "home" / ".config" / "containers" / "auth.json",
        tmp_path / "profile" / ".config" / "containers" / "auth.json",
        tmp_path / "xdg" / "containers" / "auth.json",
    ]
    for n, path in enumerate(candidates):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'{{"auths": {{"r{n}.example": {{"username": "u", "password": "p"}}}}}}')
    keychain = default_keychain(env, system=system)
    found = [keychain.resolve(f"r{n}.example") for n in range(len(candidates))]
    return [Path(c.source) for c in sorted(found, key=lambda c: c.source) if c is not ANONYMOUS]


@pytest.mark.parametrize(
    ("system", "xdg_config", "expected"),
    [
        # Linux: podman's file under $XDG_RUNTIME_DIR, then $XDG_CONFIG_HOME or ~/.config.
        (LINUX, False, ["auth-file", "home/.docker", "run", "home/.config"]),
        (LINUX, True, ["auth-file", "home/.docker", "run", "xdg"]),
        # macOS and Windows: podman's file is ~/.config/containers/auth.json, no runtime dir.
        (MACOS, False, ["auth-file", "home/.docker", "home/.config"]),
        (MACOS, True, ["auth-file", "home/.docker", "home/.config", "xdg"]),
        (WINDOWS, False, ["auth-file", "profile/.docker", "profile/.config"]),
        (WINDOWS, True, ["auth-file", "profile/.docker", "profile/.config", "xdg"]),
    ],
)
def test_auth_files_per_system(
    tmp_path: Path, system: str, xdg_config: bool, expected: list[str]
) -> None:
    env = {
        "HOME": str(tmp_path / "home"),
        "USERPROFILE": str(tmp_path / "profile"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "REGISTRY_AUTH_FILE": str(tmp_path / "auth-file.json"),
    }
    if xdg_config:
        env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    names = {
        "auth-file": tmp_path / "auth-file.json",
        "home/.docker": tmp_path / "home" / ".docker" / "config.json",
        "profile/.docker": tmp_path / "profile" / ".docker" / "config.json",
        "run": tmp_path / "run" / "containers" / "auth.json",
        "home/.config": tmp_path / "home" / ".config" / "containers" / "auth.json",
        "profile/.config": tmp_path / "profile" / ".config" / "containers" / "auth.json",
        "xdg": tmp_path / "xdg" / "containers" / "auth.json",
    }
    read = _auth_file_order(tmp_path, system, env)
    assert sorted(read) == sorted(names[n] for n in expected)  # exactly these files are read
    # ... and in this order: a registry known to two files is answered by the earlier one.
    order = [names[n] for n in expected]
    for earlier, later in itertools.pairwise(order):
        both = '{"auths": {"both.example": {"username": "%s", "password": "p"}}}'
        earlier.write_text(both % "earlier")
        later.write_text(both % "later")
        assert default_keychain(env, system=system).resolve("both.example").username == "earlier"
        earlier.write_text("{}")
        later.write_text("{}")


@pytest.mark.parametrize("name", ["wincred", "desktop", "osxkeychain"])
def test_a_missing_platform_helper_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Docker Desktop's helpers (``docker-credential-desktop(.exe)``, ``-wincred.exe``,
    ``-osxkeychain``) are found on PATH; a missing one is named in the error."""
    monkeypatch.setenv("PATH", str(tmp_path))  # an environment without the helper
    config = tmp_path / "config.json"
    config.write_text(f'{{"credsStore": "{name}"}}')
    with pytest.raises(AuthError, match=f"^credential helper docker-credential-{name} not found"):
        FileKeychain(config).resolve("ghcr.io")


# --- locks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "windows", "expected"),
    [
        (BlockingIOError(errno.EWOULDBLOCK, "busy"), False, "busy"),
        (OSError(errno.ENOLCK, "no locks"), False, "unsupported"),
        (OSError(errno.EOPNOTSUPP, "not supported"), False, "unsupported"),
        (OSError(errno.EBADF, "bad fd"), False, "error"),
        (PermissionError(errno.EACCES, "denied"), False, "error"),  # POSIX: a real error
        # msvcrt.locking(LK_NBLCK): EACCES = the range is held by another handle.
        (PermissionError(errno.EACCES, "locked"), True, "busy"),
        (OSError(errno.EINVAL, "not supported"), True, "unsupported"),
        (OSError(errno.EBADF, "bad fd"), True, "error"),
        (BlockingIOError(errno.EWOULDBLOCK, "busy"), True, "error"),  # no such thing there
    ],
)
def test_lock_failure(exc: OSError, windows: bool, expected: str) -> None:
    assert lock_failure(exc, windows=windows) == expected


class _Attempts:
    """A lock attempt that fails with the given errors, then succeeds."""

    def __init__(self, *failures: OSError) -> None:
        self.failures, self.calls = list(failures), 0

    def __call__(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


@pytest.mark.parametrize("windows", [False, True])
def test_wait_for_lock(windows: bool) -> None:
    busy = PermissionError(errno.EACCES, "x") if windows else BlockingIOError(errno.EAGAIN, "x")
    unsupported = OSError(errno.EINVAL if windows else errno.ENOLCK, "x")
    attempts = _Attempts(busy, busy)
    assert wait_for_lock(attempts, 5.0, 0.001, windows=windows) is True
    assert attempts.calls == 3  # waited through two busy answers
    attempts = _Attempts(unsupported)
    assert wait_for_lock(attempts, 5.0, 0.001, windows=windows) is True  # go ahead unlocked
    assert attempts.calls == 1
    attempts = _Attempts(*[busy] * 1000)
    assert wait_for_lock(attempts, 0.05, 0.001, windows=windows) is False  # gave up in time
    assert 1 < attempts.calls < 1000
    with pytest.raises(OSError, match="bad"):
        wait_for_lock(_Attempts(OSError(errno.EBADF, "bad")), 5.0, 0.001, windows=windows)


def test_layoutlock_target(tmp_path: Path) -> None:
    """POSIX locks the layout directory itself; Windows, which cannot open a directory as a
    file, its oci-layout file. Neither adds a file to the layout."""
    assert lock_target(tmp_path, windows=False) == tmp_path
    assert lock_target(tmp_path, windows=True) == tmp_path / "oci-layout"


# --- replacing a file another program has open -------------------------------------------


class _Replace:
    """A replacement that fails with the given errors, then succeeds."""

    def __init__(self, *failures: OSError) -> None:
        self.failures, self.calls = list(failures), 0

    def __call__(self, src: object, dst: object) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


def test_replace_waits_for_a_reader_on_windows_only() -> None:
    """Windows refuses to replace a file open elsewhere (PermissionError) until it is
    closed: retried for a bounded time there; on POSIX the error is real and raised."""
    denied = PermissionError(errno.EACCES, "The process cannot access the file")
    replace = _Replace(denied, denied)
    replace_file("a", "b", windows=True, replace=replace)
    assert replace.calls == 3
    replace = _Replace(denied)
    with pytest.raises(PermissionError):
        replace_file("a", "b", windows=False, replace=replace)
    assert replace.calls == 1
    replace = _Replace(*[denied] * 1000)
    with pytest.raises(PermissionError):
        replace_file("a", "b", windows=True, wait=0.05, replace=replace)
    assert 1 < replace.calls < 1000
    replace = _Replace(FileNotFoundError(errno.ENOENT, "gone"))
    with pytest.raises(FileNotFoundError):  # not a sharing problem: no wait
        replace_file("a", "b", windows=True, replace=replace)
    assert replace.calls == 1


# --- a reader of standard output that goes away -------------------------------------------


@pytest.mark.parametrize(
    ("exc", "windows", "stdout_broken", "expected"),
    [
        (BrokenPipeError(errno.EPIPE, "x"), False, False, True),
        (BrokenPipeError(errno.EPIPE, "x"), True, False, True),
        # Windows reports a closed pipe as EINVAL: only when stdout really is broken.
        (OSError(errno.EINVAL, "Invalid argument"), True, True, True),
        (OSError(errno.EINVAL, "Invalid argument"), True, False, False),
        (OSError(errno.EINVAL, "Invalid argument"), False, True, False),
        (OSError(errno.EIO, "x"), True, True, False),
        (ValueError("x"), True, True, False),
    ],
)
def test_reader_gone(
    exc: BaseException, windows: bool, stdout_broken: bool, expected: bool
) -> None:
    assert reader_gone(exc, windows=windows, stdout_fails=lambda: stdout_broken) is expected
