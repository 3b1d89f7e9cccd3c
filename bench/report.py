"""Machine information, the Markdown table and the JSON document."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from cases import Context, Row, Settings
from registry_io import MiB
from runner import PYTHON, REPO_DIR


def _output(cmd: Sequence[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=REPO_DIR)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else ""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def machine_info() -> dict[str, Any]:
    """What the numbers depend on (read-only commands only; git is not asked to refresh)."""
    commit = _output(["git", "--no-optional-locks", "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "--no-optional-locks", "diff", "--quiet", "HEAD", "--", "src"],
        cwd=REPO_DIR,
        capture_output=True,
    ).returncode
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": _cpu_model(),
        "memory": _mem_total(),
        "kernel": platform.release(),
        "loadavg at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": _output([PYTHON, "--version"]),
        "regshift": f"{metadata.version('regshift')} (git {commit or '?'}"
        + (", src/ has uncommitted changes)" if dirty == 1 else ")"),
        "httpx": metadata.version("httpx"),
        "registry": _output(["docker-registry", "--version"]),
        "skopeo": _output(["skopeo", "--version"]),
        "curl": _output(["curl", "--version"]),
    }


def _secs(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def _range(values: list[int]) -> str:
    if not values:
        return "-"
    lo, hi, mid = min(values), max(values), statistics.median(values)
    return f"{mid:g}" if lo == hi else f"{mid:g} ({lo}-{hi})"


def _cells(row: Row, base: Row | None) -> list[str]:
    runs = row.runs
    med = row.median
    if not runs or med is None:
        return [row.case, row.tool, "-", "-", "-", "-", "-", "-", "✗", row.error or "no runs"]
    secs = [r.seconds for r in runs]
    shown = (
        " / ".join(_secs(x) for x in secs)
        if len(secs) <= 5
        else (f"{_secs(min(secs))}-{_secs(max(secs))} (n={len(secs)})")
    )
    if row.baseline:
        ratio = "1.00 (base)"
    elif base is not None and base.median:
        ratio = f"{med / base.median:.2f}"
    else:
        ratio = "-"
    rss = row.peak_rss_kib
    requests = [r.requests for r in runs if r.requests is not None]
    served = [r.bytes_served for r in runs if r.bytes_served is not None]
    failed = [r for r in runs if not r.ok]
    ok = "✓" if row.ok else f"✗ ({len(failed)}/{len(runs)})"
    notes = [row.note] if row.note else []
    methods = runs[-1].extra.get("byMethod")
    if methods:
        notes.append("requests: " + ", ".join(f"{n} {m}" for m, n in methods.items()))
    if failed:
        notes.append(failed[0].problem[:120].replace("|", "\\|").replace("\n", " "))
    if row.error:
        notes.append(row.error[:120])
    return [
        row.case,
        row.tool,
        _secs(med),
        shown,
        ratio,
        f"{rss / 1024:.0f}" if rss is not None else "-",
        _range(requests) if requests else "-",
        f"{statistics.median(served) / MiB:.1f}" if served else "-",
        ok,
        "; ".join(notes),
    ]


HEADER = [
    "case",
    "tool",
    "median s",
    "runs (s)",
    "x base",
    "peak RSS MiB",
    "requests",
    "MiB served",
    "ok",
    "notes",
]


def table(rows: list[Row]) -> str:
    bases = {r.group: r for r in rows if r.baseline}
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|"
        + "|".join(["---", "---", "--:", "--:", "--:", "--:", "--:", "--:", ":-:", "---"])
        + "|",
    ]
    for row in rows:
        cells = _cells(row, bases.get(row.group))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(
    machine: dict[str, Any],
    settings: Settings,
    rows: list[Row],
    ctx: Context,
    cases: list[str],
    seconds: float,
) -> str:
    out = ["## regshift benchmark", ""]
    out += [f"- **{k}**: {v}" for k, v in machine.items()]
    mode = "quick" if settings.quick else "full"
    out += [
        f"- **run**: {mode}, {settings.repeat} repetition(s) per tool (median shown), "
        f"cases: {', '.join(cases)}; {seconds:.0f} s in total",
        "",
        table(rows),
        "",
        "`x base`: median ÷ the median of the row marked `base` in the same case. "
        "`requests`: every request the registries logged during the run (median; range "
        "if runs differ). `MiB served`: response bodies the registries sent (GETs). "
        "`ok`: the result was checked at the registry with plain HTTP (manifest sha256 = "
        "source digest, every blob present) after each run.",
        "",
        "Cases at these settings:",
        "",
    ]
    described = settings.describe()
    out += [f"- `{c}`: {described[c]}" for c in cases]
    if ctx.startup:
        out += ["", *_startup_details(ctx.startup)]
    return "\n".join(out)


def document(
    machine: dict[str, Any],
    settings: Settings,
    rows: list[Row],
    ctx: Context,
    cases: list[str],
    started: str,
    seconds: float,
) -> dict[str, Any]:
    return {
        "started": started,
        "durationSeconds": round(seconds, 1),
        "machine": machine,
        "settings": {k: getattr(settings, k) for k in Settings.__dataclass_fields__},
        "cases": {c: settings.describe()[c] for c in cases},
        "rows": [r.as_json() for r in rows],
        "startup": ctx.startup or None,
        "ok": all(r.ok for r in rows),
    }


def _startup_details(s: dict[str, Any]) -> list[str]:
    own = s["selfMsByPackage"]
    imported = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in s["imported"].items())
    packages = ", ".join(f"{k} {v:.0f} ms" for k, v in own.items() if v)
    return [
        f"`{s['command']}` (median of {s['samples']} by total): {s['modules']} modules, "
        f"{s['totalMs']:.0f} ms of imports. Imported: {imported}. "
        f"Own import time by package: {packages}.",
        "",
        "- httpx comes in via " + " → ".join(s["httpxImportedVia"] or ["-"]),
        "- rich comes in via " + " → ".join(s["richImportedVia"] or ["-"]),
        "",
        "| top-level import | cumulative ms | self ms |",
        "|---|--:|--:|",
        *(f"| {t['module']} | {t['cumulativeMs']:.1f} | {t['selfMs']:.1f} |" for t in s["top"]),
    ]
