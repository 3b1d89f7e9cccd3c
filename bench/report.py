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

from cases import (
    CASE_FAILED,
    FLOOR_KEY,
    HEAVY_FOR_HELP,
    PEER_KEYS,
    REGSHIFT_KEY,
    SKOPEO_KEY,
    Context,
    Row,
    Settings,
    peer_bin,
    retag_case,
)
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
        "registry": _output(["docker-registry", "--version"]),
        "skopeo": _output(["skopeo", "--version"]),
        "crane": _output([peer_bin("crane"), "version"]),
        "regctl": _output([peer_bin("regctl"), "version"]).replace("VCSTag:", "").strip(),
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
    if row.info and not runs:
        mib = "-" if row.computed_mib is None else f"{row.computed_mib:.1f}"
        shown = "computed" if row.computed_mib is not None else "skipped"
        return [row.case, row.tool, "-", shown, "-", "-", "-", mib, "-", row.info]
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
        row.tool.replace("|", "\\|"),
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
COPY_CASES = ("copy-1g", "copy-100-layers", "copy-same-registry", "copy-multi-platform")


@dataclass
class Target:
    """One goal, checked against this run's medians. Reported only: not part of the exit
    status, which is about correctness (✗ cells)."""

    name: str
    required: str
    case: str  # the bench case it is judged from (a crash of that case makes it a FAIL)
    measured: str = "-"
    #: PASS, FAIL, FLOOR (failed, and the case's Python floor is above the limit too), or n/a
    status: str = "n/a"
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
            "pass": {"PASS": True, "FAIL": False, "FLOOR": False}.get(self.status),
            "belowPythonFloor": self.status == "FLOOR",
            "detail": self.detail or None,
            "values": self.values,
        }


def _find(rows: Sequence[Row], case: str, key: str) -> Row | None:
    found = [r for r in rows if r.case == case and r.key == key and r.runs]
    return found[0] if found else None


def _peers(rows: Sequence[Row], case: str, keys: Sequence[str] = PEER_KEYS) -> list[Row]:
    """The case's peer rows (skopeo, crane, regctl) that ran, fastest first."""
    found = [r for key in keys if (r := _find(rows, case, key)) is not None and r.median]
    return sorted(found, key=lambda r: r.median or 0.0)


def _faster(
    name: str, rows: Sequence[Row], case: str, factor: float = 1.0, only: str = ""
) -> Target:
    """regshift's median wall time <= factor x the fastest peer's (or ``only`` that peer's),
    in one case."""
    best = only or "the best peer"
    best = best if factor == 1 else f"{factor:g} x {best}"
    target = Target(name, f"regshift <= {best}", case.split(" ", 1)[0])
    ours, peers = (
        _find(rows, case, REGSHIFT_KEY),
        _peers(rows, case, (only,) if only else PEER_KEYS),
    )
    if ours is None or not peers or not ours.median:
        target.detail = f"{case} not measured"
        return target
    theirs = peers[0]
    assert theirs.median is not None
    ratio = ours.median / theirs.median
    target.measured = (
        f"{_secs(ours.median)} s vs {theirs.key} {_secs(theirs.median)} s ({ratio:.2f}x)"
    )
    target.detail = "peers: " + ", ".join(f"{r.key} {_secs(r.median or 0)} s" for r in peers)
    target.values = {
        "regshiftMedianSeconds": round(ours.median, 4),
        "bestPeer": theirs.key,
        "peerMedianSeconds": {r.key: round(r.median or 0, 4) for r in peers},
        "ratio": round(ratio, 4),
        "limitRatio": factor,
    }
    limit = factor * theirs.median
    floor = _find(rows, case, FLOOR_KEY)
    target.judge(ours.median <= limit, [ours, *peers, *([floor] if floor else [])])
    if floor is not None and floor.median:
        _against_floor(target, ours.median, floor.median, limit)
    return target


def _against_floor(target: Target, ours: float, floor: float, limit: float) -> None:
    """Say where the case's Python floor sits: a failed target whose limit is below the floor
    too is FLOOR (no Python program sending the same requests meets it on this machine) --
    provided the floor is one in this run, i.e. regshift was not faster than it; otherwise
    the gap between regshift and the floor is regshift's own cost."""
    target.values["pythonFloorSeconds"] = round(floor, 4)
    target.values["limitSeconds"] = round(limit, 4)
    below = floor > limit and ours >= floor
    if target.status == "FAIL" and below and "✗" not in target.detail:
        target.status = "FLOOR"
        where = f"below the Python floor ({_secs(floor)} s > the limit {_secs(limit)} s)"
    else:
        where = f"Python floor {_secs(floor)} s"
    gap = ours - floor
    own = (
        f"regshift {ours / floor:.2f}x the floor (+{_secs(gap)} s its own)"
        if gap >= 0
        else f"regshift {ours / floor:.2f}x the floor ({_secs(-gap)} s faster than it)"
    )
    target.detail = "; ".join((where, own, target.detail))


def targets(rows: Sequence[Row], ctx: Context) -> list[Target]:
    """Every target, from the medians of this run (n/a for cases that were not run, FAIL for
    cases that crashed)."""
    s = ctx.settings
    out: list[Target] = []

    lo = retag_case(0.0)
    t = Target(f"{lo}: regshift tag requests", f"= {RETAG_REQUESTS} (the minimum)", "retag")
    row = _find(rows, lo, REGSHIFT_KEY)
    if row is not None and row.median_requests is not None:
        methods = row.runs[-1].extra.get("byMethod") or {}
        t.measured = (
            f"{row.median_requests:g} (" + ", ".join(f"{n} {m}" for m, n in methods.items()) + ")"
        )
        peers = {r.key: r.median_requests for r in _peers(rows, lo)}
        t.detail = "peers: " + ", ".join(f"{k} {v:g}" for k, v in peers.items() if v is not None)
        t.values = {"medianRequests": row.median_requests, "byMethod": methods, "peers": peers}
        t.judge(row.median_requests == RETAG_REQUESTS, [row])
    else:
        t.detail = f"{lo} not measured"
    out.append(t)

    proxied = retag_case(s.proxy_delay)
    out.append(_faster(f"{proxied}: regshift tag wall time", rows, proxied))
    out.append(
        _faster(
            f"promote-50 ({s.promote_images} images): regshift tag --from-file vs the peers' loops",
            rows,
            "promote-50",
            PROMOTE_FACTOR,
        )
    )
    for case in COPY_CASES:
        out.append(_faster(f"{case}: regshift copy vs the peers", rows, case))

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

    t = Target(
        "`regshift --help` imports neither the HTTP layer (http.client) nor rich",
        "neither imported",
        "startup",
    )
    if ctx.startup:
        imported = ctx.startup["imported"]
        t.measured = ", ".join(
            f"{m} {'imported' if imported.get(m) else 'not imported'}" for m in HEAVY_FOR_HELP
        )
        t.values = {m: bool(imported.get(m)) for m in HEAVY_FOR_HELP}
        t.status = (
            "PASS" if ctx.startup["returncode"] == 0 and not any(t.values.values()) else "FAIL"
        )
        if ctx.startup["returncode"] != 0:
            t.detail = f"`--help` exited {ctx.startup['returncode']}"
    else:
        t.detail = "startup not measured"
    out.append(t)
    out.append(_tag_imports(ctx.tag_startup))
    out += build_targets(rows)
    crashed = {r.case: r.error for r in rows if r.tool == CASE_FAILED}
    for t in out:
        if t.status == "n/a" and t.case in crashed:
            t.status, t.detail = "FAIL", f"case {t.case} failed: {crashed[t.case]}"
    return out


def build_targets(rows: Sequence[Row]) -> list[Target]:
    """The targets of the merge, flatten and sync cases."""
    out = [_merge_bytes(rows)]
    out.append(
        _faster(
            "merge-cross-registry: regshift merge vs copying the same layers",
            rows,
            "merge-cross-registry",
            only=SKOPEO_KEY,
        )
    )
    t = Target("flatten-1g: regshift flatten peak RSS", f"<= {RSS_LIMIT_MIB} MiB", "flatten-1g")
    row = _find(rows, "flatten-1g", REGSHIFT_KEY)
    skipped = [r.info for r in rows if r.case == "flatten-1g" and r.key == REGSHIFT_KEY]
    if row is not None and row.median_rss_kib is not None and row.peak_rss_kib is not None:
        median_rss, peak = row.median_rss_kib, row.peak_rss_kib
        t.measured = f"{median_rss / 1024:.0f} MiB (median; max {peak / 1024:.0f})"
        t.values = {"medianPeakRssKiB": median_rss, "maxPeakRssKiB": peak}
        t.judge(median_rss / 1024 <= RSS_LIMIT_MIB, [row])
    else:
        t.detail = skipped[0] if skipped and skipped[0] else "flatten-1g not measured"
    out.append(t)
    out.append(_faster("sync-200: regshift sync vs skopeo sync", rows, "sync-200", only=SKOPEO_KEY))
    out.append(_up_to_date(rows))
    return out


def _merge_bytes(rows: Sequence[Row]) -> Target:
    """Same-registry merge: no layer byte read or uploaded at the registry (all mounted)."""
    case = "merge-same-registry"
    t = Target(f"{case}: layer bytes moved", "0 (every layer mounted)", case)
    row = _find(rows, case, REGSHIFT_KEY)
    docker = [r for r in rows if r.case == case and r.computed_mib is not None]
    if row is None:
        t.detail = f"{case} not measured"
        return t
    moved = [m for run in row.runs if isinstance(m := run.extra.get("layerBytesMoved"), int)]
    worst = max(moved) if moved else None
    t.measured = "-" if worst is None else f"{worst / MiB:g} MiB (most of any run)"
    if docker:
        t.detail = f"docker pull + build + push would move {docker[0].computed_mib:g} MiB"
    t.values = {"layerBytesMovedPerRun": moved}
    t.judge(worst == 0 and len(moved) == len(row.runs), [row])
    return t


def _up_to_date(rows: Sequence[Row]) -> Target:
    """The up-to-date sync re-run: no write request at the destination."""
    case = "sync-200"
    t = Target(f"{case}: up-to-date re-run writes", "no write at the destination", case)
    row = _find(rows, case, "regshift-current")
    if row is None:
        t.detail = f"{case} not measured"
        return t
    methods = [r.extra.get("destMethods") for r in row.runs]
    writes = [sum(n for m, n in (d or {}).items() if m not in ("GET", "HEAD")) for d in methods]
    last = methods[-1] or {}
    t.measured = f"{max(writes)} writes; at B: " + ", ".join(f"{n} {m}" for m, n in last.items())
    t.values = {"writesPerRun": writes, "destMethods": last}
    t.judge(max(writes) == 0 and all(d is not None for d in methods), [row])
    return t


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


# -- retag: start-up and the crossover latency ------------------------------------------------


Line = tuple[float, float]  # (fixed s, s per s of delay): time = fixed + slope x delay


@dataclass
class RetagLine:
    """One tool's single retag over the proxy's delays, as a line: time = fixed + n x delay.

    ``n`` is the tool's median request count in the registry log (every request passes the
    proxy, which delays each one); ``fixed`` is the least-squares intercept with that slope:
    start-up plus the requests' own cost on loopback. ``free`` is the line fitted with its
    slope free too (the slope then counts round trips in sequence: below ``n`` when requests
    overlap; noisy, from three points).
    """

    key: str
    tool: str
    points: list[tuple[float, float]]  # (delay s, median s)
    n: float
    fixed: float
    free: Line | None
    startup: float | None  # median of the tool's row in the `startup` case

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "tool": self.tool,
            "points": [{"delaySeconds": d, "medianSeconds": round(m, 4)} for d, m in self.points],
            "requests": self.n,
            "fixedSeconds": round(self.fixed, 4),
            "freeFit": None
            if self.free is None
            else {"fixedSeconds": round(self.free[0], 4), "roundTrips": round(self.free[1], 2)},
            "startupSeconds": round(self.startup, 4) if self.startup is not None else None,
        }


def retag_lines(rows: Sequence[Row], settings: Settings) -> list[RetagLine]:
    """regshift's line first, then each peer's, from the retag cases' correct rows."""
    delays = (0.0, settings.proxy_delay, *settings.more_proxy_delays)
    lines = []
    for key in (REGSHIFT_KEY, *PEER_KEYS):
        found = [(d, _find(rows, retag_case(d), key)) for d in delays]
        points = [
            (d, r.median, r.median_requests)
            for d, r in found
            if r is not None and r.ok and r.median is not None and r.median_requests is not None
        ]
        if not points:
            continue
        n = statistics.median(p[2] for p in points)
        fixed = statistics.fmean(m - n * d for d, m, _ in points)
        xs, ys = [d for d, _, _ in points], [m for _, m, _ in points]
        free = None
        if len(set(xs)) > 1:
            fit = statistics.linear_regression(xs, ys)
            free = (fit.intercept, fit.slope)
        start = _find(rows, "startup", key)
        tool = next(r.tool for _, r in found if r is not None)
        curve = list(zip(xs, ys, strict=True))
        lines.append(RetagLine(key, tool, curve, n, fixed, free, start.median if start else None))
    return lines


def crossover(ours: Line | None, theirs: Line | None) -> tuple[float | None, str]:
    """The delay per request above which regshift's retag (``ours``) is faster than a peer's:
    where ``fixed + slope x delay`` are equal. Returns (delay in s or None, what it means)."""
    if ours is None or theirs is None:
        return None, "-"
    if ours[1] < 0 or theirs[1] < 0:
        return None, "- (a slope below 0: the medians are noise)"
    gap = ours[0] - theirs[0]  # regshift's extra fixed cost (start-up, mostly)
    extra = theirs[1] - ours[1]  # the peer's extra time per second of delay (requests)
    if extra > 0:
        at = max(gap / extra, 0.0)
        return at, ("ahead at any latency" if at == 0 else f"from {at * 1000:.0f} ms/request")
    if extra == 0:
        return None, "ahead at any latency" if gap < 0 else "never (as many requests)"
    if gap >= 0:
        return None, "never (the peer's slope is lower)"
    at = gap / extra
    return at, f"ahead only below {at * 1000:.0f} ms/request (the peer's slope is lower)"


def crossover_table(lines: Sequence[RetagLine]) -> list[str]:
    if not lines or lines[0].key != REGSHIFT_KEY:
        return []
    ours = lines[0]
    startup = {line.key: line.startup for line in lines}
    ours_startup = startup.get(REGSHIFT_KEY)
    go = [f"{k} {v * 1000:.0f} ms" for k, v in startup.items() if k != REGSHIFT_KEY and v]
    out = [
        "### Single retag: start-up and crossover",
        "",
        "Per tool, the medians of the three retag cases fitted as `time = fixed + n x delay` "
        "(n = the tool's requests in the registry log; fixed = least-squares intercept: "
        "start-up plus loopback cost). regshift overtakes a peer at the delay per request "
        "where the lines cross: `(fixed_regshift - fixed_peer) / (n_peer - n_regshift)`; the "
        "last column does the same with both lines fitted freely (slope = round trips in "
        "sequence). Reported, not a target.",
        "",
    ]
    if ours_startup:
        out += [
            f"Start-up (`startup` case): regshift `--help` {ours_startup * 1000:.0f} ms "
            f"against Go {', '.join(go) or '-'} (`skopeo --help`, `crane version`, "
            "`regctl version`).",
            "",
        ]
    out += [
        "| tool | start-up s | retag s at "
        + " / ".join(f"{round(d * 1000)} ms" for d, _ in ours.points)
        + " | n requests | fixed s | regshift overtakes it | free fit: fixed s, round trips |"
        " free fit: regshift overtakes it |",
        "|---|--:|--:|--:|--:|---|--:|---|",
    ]
    for line in lines:
        mine = line is ours
        free = "-" if line.free is None else f"{line.free[0]:.3f}, {line.free[1]:.1f}"
        out.append(
            f"| {line.tool} | {'-' if line.startup is None else f'{line.startup:.3f}'} | "
            + " / ".join(_secs(m) for _, m in line.points)
            + f" | {line.n:g} | {line.fixed:.3f} | "
            + ("-" if mine else crossover((ours.fixed, ours.n), (line.fixed, line.n))[1])
            + f" | {free} | "
            + ("-" if mine else crossover(ours.free, line.free)[1])
            + " |"
        )
    return out


def crossover_json(lines: Sequence[RetagLine]) -> list[dict[str, Any]]:
    if not lines or lines[0].key != REGSHIFT_KEY:
        return [line.as_json() for line in lines]
    ours = lines[0]
    out = [ours.as_json()]
    for line in lines[1:]:
        at, meaning = crossover((ours.fixed, ours.n), (line.fixed, line.n))
        free_at, free_meaning = crossover(ours.free, line.free)
        out.append(
            {
                **line.as_json(),
                "regshiftOvertakesAtSeconds": None if at is None else round(at, 4),
                "regshiftOvertakes": meaning,
                "freeFitOvertakesAtSeconds": None if free_at is None else round(free_at, 4),
                "freeFitOvertakes": free_meaning,
            }
        )
    return out


def targets_table(found: Sequence[Target]) -> list[str]:
    counts = {status: sum(t.status == status for t in found) for status in ("PASS", "FAIL")}
    floor = sum(t.status == "FLOOR" for t in found)
    unmeasured = len(found) - sum(counts.values()) - floor
    return [
        "### Targets",
        "",
        f"{counts['PASS']} PASS, {counts['FAIL']} FAIL, {floor} FLOOR, {unmeasured} n/a. From "
        "the medians of this run (wall time as in the table, so including process start-up). "
        "FLOOR: not met, and the case's Python floor (the same requests from the standard "
        "library alone) does not meet it either. Reported only: the exit status is about "
        "correctness (✗ cells), not targets.",
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
    crossing = crossover_table(retag_lines(rows, settings))
    out = ["## regshift benchmark", ""]
    out += [f"- **{k}**: {v}" for k, v in machine.items()]
    mode = "quick" if settings.quick else "full"
    out += [
        f"- **run**: {mode}, {settings.repeat} repetition(s) per tool (median shown); "
        f"{settings.short_repeat} for the short rows of copy-100-layers, copy-multi-platform, "
        "retag and promote-50 "
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
        *([*crossing, ""] if crossing else []),
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
        "retagCrossover": crossover_json(retag_lines(rows, settings)) or None,
        "ok": all(r.ok for r in rows),
    }


def _startup_details(s: dict[str, Any]) -> list[str]:
    return _import_details(
        s,
        "http.client comes in via " + " → ".join(s["httpImportedVia"] or ["-"]),
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
