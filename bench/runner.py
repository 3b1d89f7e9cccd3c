"""Running one tool invocation: a fresh sandbox, wall time, peak RSS, registry accounting.

Every invocation gets its own empty HOME / XDG / Docker / regshift cache directories, so no
tool profits from state left by an earlier run (credentials, capability caches, skopeo's
blob-info cache, regctl's configuration). See README.md, "Cache state".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
VENV_BIN = REPO_DIR / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
REGSHIFT = str(VENV_BIN / "regshift")
RAW = str(BENCH_DIR / "raw.sh")
GNU_TIME = "/usr/bin/time"
MAXRSS_WRAPPER = str(BENCH_DIR / "maxrss.py")

#: skopeo (containers/image) keeps its blob-info cache in /var/lib/containers/cache when the
#: effective uid is 0, with no flag to move it. containers/image takes the uid from
#: _CONTAINERS_ROOTLESS_UID when set; any non-zero value makes it use
#: $XDG_DATA_HOME/containers/cache instead, which is inside the sandbox.
SKOPEO_CACHE_FILE = Path("containers") / "cache" / "blob-info-cache-v1.boltdb"

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@dataclass
class Run:
    """One timed invocation and everything observed about it."""

    seconds: float
    max_rss_kib: int | None
    returncode: int
    stdout: str = ""
    stderr: str = ""
    requests: int | None = None
    bytes_served: int | None = None
    problem: str = ""  # empty when the result was checked and is correct
    extra: dict[str, Any] = field(default_factory=dict)
    #: (registry host, request) for every request logged during the run, for checks that
    #: look closer than the counts (not in the JSON).
    logged: list[tuple[str, Any]] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.problem

    def as_json(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 4),
            "maxRssKiB": self.max_rss_kib,
            "returncode": self.returncode,
            "requests": self.requests,
            "bytesServed": self.bytes_served,
            "ok": self.ok,
            "problem": self.problem or None,
            "stderrTail": self.stderr[-2000:] if not self.ok else None,
            **({"extra": self.extra} if self.extra else {}),
        }


class Sandbox:
    """A fresh, empty home for one tool invocation (removed by :meth:`close`).

    Python bytecode is the exception: it is cached across invocations in ``parent/pycache``
    (``PYTHONPYCACHEPREFIX``), as on any normal installation. This machine's environment sets
    ``PYTHONDONTWRITEBYTECODE=1``, which would make every regshift start recompile regshift's
    own modules (the editable install under src/ has no ``__pycache__``).
    """

    def __init__(
        self,
        parent: Path,
        *,
        skopeo: bool = False,
        seed_from: Path | None = None,
        overrides: dict[str, str | None] | None = None,
    ):
        self.dir = Path(tempfile.mkdtemp(prefix="sandbox-", dir=parent))
        if seed_from is not None:
            shutil.copytree(seed_from, self.dir, dirs_exist_ok=True)
        self.skopeo = skopeo
        self.pycache = parent / "pycache"
        self.overrides = overrides or {}

    @property
    def skopeo_cache(self) -> Path:
        return self.dir / "data" / SKOPEO_CACHE_FILE

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
        for name in ("REGISTRY_AUTH_FILE", "REGSHIFT_USERNAME", "REGSHIFT_PASSWORD"):
            env.pop(name, None)
        env.pop("REGSHIFT_TOKEN", None)
        d = self.dir
        env.update(
            HOME=str(d),
            XDG_DATA_HOME=str(d / "data"),
            XDG_CONFIG_HOME=str(d / "config"),
            XDG_CACHE_HOME=str(d / "cache"),
            XDG_RUNTIME_DIR=str(d / "run"),
            DOCKER_CONFIG=str(d / "docker"),
            REGSHIFT_CACHE_DIR=str(d / "regshift-cache"),
            REGCTL_CONFIG=str(d / "config" / "regctl.json"),  # regctl's default: ~/.regctl
            TMPDIR=str(d / "tmp"),
        )
        for sub in ("data", "config", "cache", "run", "docker", "tmp"):
            (d / sub).mkdir(exist_ok=True)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.pycache)
        if self.skopeo:
            env["_CONTAINERS_ROOTLESS_UID"] = "1000"
        for name, value in self.overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def timed(cmd: Sequence[str], env: dict[str, str], timeout: float = 900) -> Run:
    """Run ``cmd``; wall time from here, peak RSS from GNU time (or the Python wrapper).

    The peak RSS is the largest of the process and every descendant it waited for (both
    GNU time and ``RUSAGE_CHILDREN`` report the maximum over the reaped tree).
    """
    with tempfile.NamedTemporaryFile("r", suffix=".rss", dir=env.get("TMPDIR")) as out:
        if os.access(GNU_TIME, os.X_OK):
            wrapped = [GNU_TIME, "-f", "%M", "-o", out.name, *cmd]
        else:
            wrapped = [sys.executable, MAXRSS_WRAPPER, out.name, *cmd]
        start = time.perf_counter()
        # Own process group, so an interrupted benchmark can stop the tool and everything
        # it started (GNU time's child, bash loops, curl pipelines), not just the wrapper.
        proc = subprocess.Popen(
            wrapped,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return Run(time.perf_counter() - start, None, -1, problem=f"timeout after {timeout} s")
        except BaseException:
            _kill_group(proc)
            raise
        seconds = time.perf_counter() - start
        rss = _last_int(Path(out.name).read_text())
    return Run(seconds, rss, proc.returncode, stdout, stderr)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _last_int(text: str) -> int | None:
    for line in reversed(text.splitlines()):
        if line.strip().isdigit():
            return int(line.strip())
    return None


class Meter:
    """Request accounting over registries' access logs around one invocation."""

    def __init__(self, registries: Iterable[Any]) -> None:
        self.registries = list(registries)

    def __enter__(self) -> Meter:
        for r in self.registries:
            r.mark()
        os.sync()  # flush earlier runs' writes so they do not land in this run's time
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def collect(self, run: Run) -> None:
        """Count every request the registries logged since the mark, and bytes served.

        Bytes served are response bodies of non-HEAD requests (distribution logs the
        would-be body size for HEAD).
        """
        run.logged = [(r.host, req) for r in self.registries for req in r.requests()]
        logged = [req for _, req in run.logged]
        run.requests = len(logged)
        run.bytes_served = sum(q.bytes_sent for q in logged if q.method != "HEAD")
        run.extra["byMethod"] = _by_method(logged)


def _by_method(logged: Iterable[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for q in logged:
        counts[q.method] = counts.get(q.method, 0) + 1
    return dict(sorted(counts.items()))


def measure(
    cmd: Sequence[str],
    *,
    workdir: Path,
    registries: Iterable[Any] = (),
    skopeo: bool = False,
    seed_sandbox: Path | None = None,
    check: Callable[[Run], str] | None = None,
    overrides: dict[str, str | None] | None = None,
) -> Run:
    """One measured invocation in a fresh sandbox, with request accounting and a check."""
    sandbox = Sandbox(workdir, skopeo=skopeo, seed_from=seed_sandbox, overrides=overrides)
    try:
        env = sandbox.env()
        with Meter(registries) as meter:
            run = timed(cmd, env)
        if registries:
            meter.collect(run)
        if skopeo:
            run.extra["skopeoCacheInSandbox"] = sandbox.skopeo_cache.exists()
        if run.returncode != 0 and not run.problem:
            run.problem = f"exit {run.returncode}: {run.stderr.strip()[-300:]}"
        elif check is not None and not run.problem:
            run.problem = check(run)
        return run
    finally:
        sandbox.close()


def warm_bytecode(workdir: Path) -> None:
    """Import every regshift module once so the timed runs find their bytecode cached.

    A client is built and closed too: that imports what its first transport needs.
    """
    code = (
        "import importlib, pkgutil, regshift, regshift.cli.main\n"
        "for m in pkgutil.walk_packages(regshift.__path__, 'regshift.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "regshift.Client().close()\n"
    )
    sandbox = Sandbox(workdir)
    try:
        env = sandbox.env()
        subprocess.run([PYTHON, "-c", code], env=env, check=True, capture_output=True)
        subprocess.run([REGSHIFT, "--help"], env=env, check=True, capture_output=True)
    finally:
        sandbox.close()
