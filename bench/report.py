"""Machine information, the Markdown table and the JSON document."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from cases import CASE_FAILED, REGSHIFT_KEY, SKOPEO_KEY, Context, Row, Settings, retag_case
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


# -- targets ----------------------------------------------------------------------------------

RETAG_REQUESTS = 2
PROMOTE_FACTOR = 0.25
RSS_LIMIT_MIB = 150
COPY_CASES = ("copy-1g", "copy-100-layers", "copy-same-registry")


@dataclass
class Target:
    """One goal, checked against this run's medians. Reported only: not part of the exit
    status, which is about correctness (✗ cells)."""

    name: str
    required: str
    case: str  # the bench case it is judged from (a crash of that case makes it a FAIL)
    measured: str = "-"
    status: str = "n/a"  # PASS, FAIL, or n/a (case not run)
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    def judge(self, passed: bool, rows: Sequence[Row]) -> None:
        wrong = [r.tool for r in rows if not r.ok]
        self.status = "PASS" if passed and not wrong else "FAIL"
        if wrong:
            self.detail = "; ".join(
                x for x in (self.detail, f"✗ in the table ({', '.join(wrong)})") if x
            )

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "required": self.required,
            "measured": self.measured,
            "status": self.status,
            "pass": {"PASS": True, "FAIL": False}.get(self.status),
            "detail": self.detail or None,
            "values": self.values,
        }


def _find(rows: Sequence[Row], case: str, key: str) -> Row | None:
    found = [r for r in rows if r.case == case and r.key == key and r.runs]
    return found[0] if found else None


def _faster(name: str, rows: Sequence[Row], case: str, factor: float = 1.0) -> Target:
    """regshift's median wall time <= factor x skopeo's, in one case."""
    required = f"regshift <= {factor:g} x skopeo" if factor != 1 else "regshift <= skopeo"
    target = Target(name, required, case.split(" ", 1)[0])
    ours, theirs = _find(rows, case, REGSHIFT_KEY), _find(rows, case, SKOPEO_KEY)
    if ours is None or theirs is None or not ours.median or not theirs.median:
        target.detail = f"{case} not measured"
        return target
    ratio = ours.median / theirs.median
    target.measured = f"{_secs(ours.median)} s vs {_secs(theirs.median)} s ({ratio:.2f}x)"
    target.values = {
        "regshiftMedianSeconds": round(ours.median, 4),
        "skopeoMedianSeconds": round(theirs.median, 4),
        "ratio": round(ratio, 4),
        "limitRatio": factor,
    }
    target.judge(ours.median <= factor * theirs.median, [ours, theirs])
    return target


def targets(rows: Sequence[Row], ctx: Context) -> list[Target]:
    """Every target, from the medians of this run (n/a for cases that were not run, FAIL for
    cases that crashed)."""
    s = ctx.settings
    out: list[Target] = []

    lo = retag_case(0.0)
    t = Target(f"{lo}: regshift tag requests", f"= {RETAG_REQUESTS}", "retag")
    row = _find(rows, lo, REGSHIFT_KEY)
    if row is not None and row.median_requests is not None:
        methods = row.runs[-1].extra.get("byMethod") or {}
        t.measured = (
            f"{row.median_requests:g} (" + ", ".join(f"{n} {m}" for m, n in methods.items()) + ")"
        )
        t.values = {"medianRequests": row.median_requests, "byMethod": methods}
        t.judge(row.median_requests == RETAG_REQUESTS, [row])
    else:
        t.detail = f"{lo} not measured"
    out.append(t)

    proxied = retag_case(s.proxy_delay)
    out.append(_faster(f"{proxied}: regshift tag wall time", rows, proxied))
    out.append(
        _faster(
            f"promote-50 ({s.promote_images} images): regshift tag --from-file vs skopeo loop",
            rows,
            "promote-50",
            PROMOTE_FACTOR,
        )
    )
    for case in COPY_CASES:
        out.append(_faster(f"{case}: regshift copy vs skopeo (empty cache)", rows, case))

    t = Target("copy-1g: regshift copy peak RSS", f"< {RSS_LIMIT_MIB} MiB", "copy-1g")
    row = _find(rows, "copy-1g", REGSHIFT_KEY)
    median_rss, peak = (row.median_rss_kib, row.peak_rss_kib) if row else (None, None)
    if row is not None and median_rss is not None and peak is not None:
        t.measured = f"{median_rss / 1024:.0f} MiB (median; max {peak / 1024:.0f})"
        t.values = {"medianPeakRssKiB": median_rss, "maxPeakRssKiB": peak}
        t.judge(median_rss / 1024 < RSS_LIMIT_MIB, [row])
        if s.quick:
            t.detail = "--quick: small layers, says nothing about 1 GiB"
    else:
        t.detail = "copy-1g not measured"
    out.append(t)

    t = Target("`regshift --help` imports neither httpx nor rich", "neither imported", "startup")
    if ctx.startup:
        imported = ctx.startup["imported"]
        t.measured = ", ".join(
            f"{m} {'imported' if imported.get(m) else 'not imported'}" for m in ("httpx", "rich")
        )
        t.values = {m: bool(imported.get(m)) for m in ("httpx", "rich")}
        t.status = (
            "PASS" if ctx.startup["returncode"] == 0 and not any(t.values.values()) else "FAIL"
        )
        if ctx.startup["returncode"] != 0:
            t.detail = f"`--help` exited {ctx.startup['returncode']}"
    else:
        t.detail = "startup not measured"
    out.append(t)
    out.append(_tag_imports(ctx.tag_startup))
    crashed = {r.case: r.error for r in rows if r.tool == CASE_FAILED}
    for t in out:
        if t.status == "n/a" and t.case in crashed:
            t.status, t.detail = "FAIL", f"case {t.case} failed: {crashed[t.case]}"
    return out


def _tag_imports(s: dict[str, Any]) -> Target:
    """The `regshift tag` import profile of the retag case: no UI, copy or inspect modules."""
    t = Target(
        "`regshift tag` imports only what it uses",
        "no rich/pygments, no copy/layout/referrers/inspect modules",
        "retag",
    )
    if not s:
        t.detail = "retag not measured"
        return t
    ui = {m: bool(s["imported"].get(m)) for m in ("rich", "pygments")}
    unused = s["unusedRegshiftModules"]
    t.measured = (
        f"{s['modules']} modules, {s['totalMs']:.0f} ms of imports; "
        + ", ".join(f"{m} {'yes' if v else 'no'}" for m, v in ui.items())
        + "; "
        + (", ".join(unused) + " imported" if unused else "none of the copy/layout/... modules")
    )
    t.values = {**ui, "unusedRegshiftModules": unused, "returncode": s["returncode"]}
    t.status = "PASS" if s["returncode"] == 0 and not any(ui.values()) and not unused else "FAIL"
    if s["returncode"] != 0:
        t.detail = f"`tag` exited {s['returncode']}"
    return t


def targets_table(found: Sequence[Target]) -> list[str]:
    passed = sum(t.status == "PASS" for t in found)
    failed = sum(t.status == "FAIL" for t in found)
    return [
        "### Targets",
        "",
        f"{passed} PASS, {failed} FAIL, {len(found) - passed - failed} n/a. From the medians "
        "of this run (wall time as in the table, so including process start-up). Reported "
        "only: the exit status is about correctness (✗ cells), not targets.",
        "",
        "| target | required | measured | result | notes |",
        "|---|---|---|:-:|---|",
        *(f"| {t.name} | {t.required} | {t.measured} | {t.status} | {t.detail} |" for t in found),
    ]


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
        f"- **run**: {mode}, {settings.repeat} repetition(s) per tool (median shown); "
        f"{settings.short_repeat} for the short rows of copy-100-layers, retag and promote-50 "
        f"(all but the 50-process regshift loop), cases: {', '.join(cases)}; "
        f"{seconds:.0f} s in total",
        "",
        table(rows),
        "",
        "`x base`: median ÷ the median of the row marked `base` in the same case. "
        "`requests`: every request the registries logged during the run (median; range "
        "if runs differ). `MiB served`: response bodies the registries sent (GETs). "
        "`ok`: the result was checked at the registry with plain HTTP (manifest sha256 = "
        "source digest, every blob present) after each run.",
        "",
        *targets_table(targets(rows, ctx)),
        "",
        "Cases at these settings:",
        "",
    ]
    described = settings.describe()
    out += [f"- `{c}`: {described[c]}" for c in cases]
    if ctx.startup:
        out += ["", *_startup_details(ctx.startup)]
    if ctx.tag_startup:
        out += ["", *_tag_startup_details(ctx.tag_startup)]
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
        "tagStartup": ctx.tag_startup or None,
        "targets": [t.as_json() for t in targets(rows, ctx)],
        "ok": all(r.ok for r in rows),
    }


def _startup_details(s: dict[str, Any]) -> list[str]:
    return _import_details(
        s,
        "httpx comes in via " + " → ".join(s["httpxImportedVia"] or ["-"]),
        "rich comes in via " + " → ".join(s["richImportedVia"] or ["-"]),
    )


def _tag_startup_details(s: dict[str, Any]) -> list[str]:
    return _import_details(
        s,
        "rich comes in via " + " → ".join(s["richImportedVia"] or ["-"]),
        "modules a tag has no use for (copy, layout, referrers, inspect, progress), imported: "
        + (", ".join(s["unusedRegshiftModules"]) or "none"),
    )


def _import_details(s: dict[str, Any], *points: str) -> list[str]:
    """An `-X importtime` profile: totals, ``points`` as a list, the top-level imports."""
    own = s["selfMsByPackage"]
    imported = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in s["imported"].items())
    packages = ", ".join(f"{k} {v:.0f} ms" for k, v in own.items() if v)
    return [
        f"`{s['command']}` (median of {s['samples']} by total): {s['modules']} modules, "
        f"{s['totalMs']:.0f} ms of imports. Imported: {imported}. "
        f"Own import time by package: {packages}.",
        "",
        *(f"- {p}" for p in points),
        "",
        "| top-level import | cumulative ms | self ms |",
        "|---|--:|--:|",
        *(f"| {t['module']} | {t['cumulativeMs']:.1f} | {t['selfMs']:.1f} |" for t in s["top"]),
    ]
