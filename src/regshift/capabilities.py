"""What each registry turned out to support, remembered across runs.

Some features can only be discovered by trying them (the OCI multi-tag push costs one extra
request on a registry that ignores it). The answer is kept per registry in a small JSON file
(``$REGSHIFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/regshift``, else the system's cache
directory: see :func:`default_cache_dir`) for a week, so a registry upgrade is noticed.
The file holds no secrets; losing it only costs one probe, so every failure to read or
write it is ignored, and without a cache directory (no home) nothing is remembered.

The file is read once, lock-free; each write takes an exclusive lock (:mod:`.locking`) on
``capabilities.json.lock`` next to it, re-reads the file, merges in what this process
learnt and replaces the file atomically, so concurrent runs keep each other's entries.
Malformed entries count as unknown; an entry whose age is negative or not finite is stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from .hostos import MACOS, WINDOWS, current_system, home_dir, replace_file
from .locking import lock_within, unlock

MULTI_TAG_PUSH = "multi_tag_push"
PLAIN_HTTP = "plain_http"  # a loopback / insecure registry that speaks plain HTTP
_TTL = 7 * 24 * 3600.0
_FILE = "capabilities.json"
_LOCK_SUFFIX = ".lock"
_TMP_PREFIX = ".capabilities."
#: How long a write waits for another process's lock before going ahead unlocked.
_LOCK_WAIT = 5.0
_LOCK_POLL = 0.01

_Doc = dict[str, dict[str, object]]


def default_cache_dir(
    env: Mapping[str, str] | None = None, *, system: str | None = None
) -> Path | None:
    """The directory for regshift's cache files, or ``None`` when none can be determined.

    ``$REGSHIFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/regshift`` (on every system: setting it
    is a choice), else the system's own place for caches: ``%LOCALAPPDATA%\\regshift`` on
    Windows, ``~/Library/Caches/regshift`` on macOS (neither is backed up or roamed),
    ``~/.cache/regshift`` elsewhere (XDG's default). Only the last two need a home directory.

    Args:
        env: the environment; ``os.environ`` when omitted.
        system: the operating system as :data:`sys.platform` spells it; this one by default.
    """
    env = os.environ if env is None else env
    system = current_system() if system is None else system
    if env.get("REGSHIFT_CACHE_DIR"):
        return Path(env["REGSHIFT_CACHE_DIR"])
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "regshift"
    if system == WINDOWS and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]) / "regshift"
    home = home_dir(env, system)
    if home is None:
        return None
    if system == WINDOWS:
        return home / "AppData" / "Local" / "regshift"
    if system == MACOS:
        return home / "Library" / "Caches" / "regshift"
    return home / ".cache" / "regshift"


class Capabilities:
    """Per-registry feature flags learnt at run time; file-backed when given a directory.

    Args:
        directory: where ``capabilities.json`` lives; ``None`` keeps everything in memory.
        clock: a fixed "now" (seconds since the epoch) for tests; by default the clock is
            read on every :meth:`get` and :meth:`set`.
    """

    def __init__(self, directory: Path | None = None, *, clock: float | None = None) -> None:
        self._path = directory / _FILE if directory else None
        self._clock = clock
        self._lock = threading.Lock()
        self._data: _Doc = _read(self._path) if self._path else {}
        self._learnt: _Doc = {}  # what this instance set and has not written yet

    def get(self, registry: str, feature: str) -> bool | None:
        """True/False when known and not stale, else None."""
        with self._lock:
            entry = self._data.get(registry, {}).get(feature)
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], bool):
            return None
        return entry[0] if _fresh(entry[1], self._now()) else None

    def set(self, registry: str, feature: str, value: bool) -> None:
        """Record what we learnt and persist it (best effort: a read-only home is fine)."""
        with self._lock:
            entry: list[object] = [value, self._now()]
            self._data.setdefault(registry, {})[feature] = entry
            self._learnt.setdefault(registry, {})[feature] = entry
            if self._path is not None:
                self._save(self._path)

    def _now(self) -> float:
        return self._clock if self._clock is not None else time.time()

    def _save(self, path: Path) -> None:
        """Merge what this instance learnt into the file, under the lock (caller holds
        ``self._lock``); on any failure the file is left as it was."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _file_lock(path.with_name(path.name + _LOCK_SUFFIX)):
                merged = _merge(_read(path), self._learnt)
                _write_atomically(path, merged)
        except (OSError, ValueError, RecursionError):
            return  # kept in self._learnt for the next write
        self._data, self._learnt = merged, {}


def _fresh(learnt: object, now: float) -> bool:
    """Was an entry stamped ``learnt`` learnt at most a week before ``now`` (and not later)?"""
    if isinstance(learnt, bool) or not isinstance(learnt, int | float):
        return False
    try:
        age = now - learnt
    except OverflowError:  # an integer too large for a float
        return False
    return 0.0 <= age <= _TTL  # False for NaN; negative = stamped in the future


def _read(path: Path) -> _Doc:
    """The registries in ``path`` (entries unchecked), or nothing if it is unreadable."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {k: v for k, v in doc.items() if isinstance(v, dict)}


def _merge(doc: _Doc, learnt: _Doc) -> _Doc:
    """``doc`` with every entry of ``learnt`` put in (``doc`` is modified)."""
    for registry, features in learnt.items():
        doc.setdefault(registry, {}).update(features)
    return doc


def _write_atomically(path: Path, doc: _Doc) -> None:
    """Replace ``path`` with ``doc`` via a temporary file, which never outlives a failure."""
    import tempfile  # only a run that learnt something writes: most never import it

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=1, sort_keys=True)
        replace_file(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if missing, never removed)."""
    # No O_CLOEXEC (POSIX only): os.open's descriptors are not inherited anyway (PEP 446).
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _flock(fd)
        try:
            yield
        finally:
            unlock(fd)
    finally:
        os.close(fd)


def _flock(fd: int) -> None:
    """Lock ``fd`` exclusively, best effort: on a file system that cannot lock, or when the
    holder keeps it longer than :data:`_LOCK_WAIT` (a stopped process), go ahead unlocked;
    each replacement of the file is atomic anyway."""
    with contextlib.suppress(OSError):
        lock_within(fd, _LOCK_WAIT, _LOCK_POLL)
