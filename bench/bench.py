"""regshift against skopeo and against plain curl, in one run, on loopback registries.

Usage: bench/run [--quick] [--repeat N] [--cases a,b,c] [--output FILE]

Prints machine information and a Markdown table on stdout (progress on stderr) and writes
the full results as JSON (default bench/results/latest.json). Exits 1 if any result was
wrong (a ✗ in the table). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from build_cases import BUILD_CASES
from cases import (
    CASE_FAILED,
    CASES as COPY_CASES,
    Context,
    Row,
    Settings,
    start_registries,
    stop_registries,
)
from report import document, machine_info, render
from runner import BENCH_DIR, warm_bytecode
from sync_case import SYNC_CASES

CASES = {**COPY_CASES, **BUILD_CASES, **SYNC_CASES}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (64 MiB, 20 layers): checks the harness"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, metavar="N", help="runs per tool; the median is shown"
    )
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        metavar="A,B,C",
        help=f"cases to run (default all): {', '.join(CASES)}",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=BENCH_DIR / "results" / "latest.json",
        help="JSON results file (default bench/results/latest.json)",
    )
    args = parser.parse_args(argv)
    chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CASES]
    if unknown or not chosen:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.cases = [c for c in CASES if c in chosen]
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run_cases(ctx: Context, cases: list[str]) -> list[Row]:
    rows: list[Row] = []
    log("warming the Python bytecode cache (not timed)")
    warm_bytecode(ctx.workdir)
    start_registries(ctx, cases)
    for case in cases:
        log(f"case {case}")
        started = time.monotonic()
        try:
            rows += CASES[case](ctx)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            rows.append(Row(case, CASE_FAILED, case, "", error=f"{type(exc).__name__}: {exc}"))
        log(f"case {case} took {time.monotonic() - started:.0f} s")
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    settings = Settings.create(quick=args.quick, repeat=args.repeat)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    machine = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="regshift-bench-"))
    ctx = Context(settings=settings, workdir=workdir, log=log)
    try:
        rows = run_cases(ctx, args.cases)
    finally:
        stop_registries(ctx)
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - started
    machine["loadavg at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(render(machine, settings, rows, ctx, args.cases, seconds))
    doc = document(machine, settings, rows, ctx, args.cases, started_at, seconds)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {args.output}")
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
