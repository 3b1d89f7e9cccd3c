"""The benchmark cases. Each seeds what it needs (not timed) and returns one :class:`Row` per
tool, holding one :class:`~runner.Run` per repetition; tools alternate within a repetition so
slow drift of the machine affects them alike."""

from __future__ import annotations

import json
import re
import shlex
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from registry_io import (
    MiB,
    RegistryIO,
    SeededImage,
    SeededIndex,
    TarEntry,
    build_image,
    build_index,
    random_blob,
    tar_blob,
    tar_layer_entries,
)
from runner import BENCH_DIR, PYTHON, RAW, REGSHIFT, REPO_DIR, Run, Sandbox, measure, timed

sys.path.insert(0, str(REPO_DIR / "tests"))

from harness.imports import NOT_FOR_TAG
from harness.peers import peer
from harness.proxy import Delay, FaultProxy, Rule
from harness.registry import RegistryServer

STDLIB_FLOOR = str(BENCH_DIR / "stdlib_floor.py")

KiB = 1024

#: Stable names for the rows the targets (report.py) are computed from, independent of the
#: labels shown in the table.
CASE_FAILED = "(case failed)"  # the tool of the one row a case that raised leaves behind
REGSHIFT_KEY = "regshift"  # regshift's main CLI row of a case (the base)
SKOPEO_KEY = "skopeo"  # skopeo with an empty blob-info cache
CRANE_KEY = "crane"
REGCTL_KEY = "regctl"
#: The peers the targets compare regshift with (each from a fair, empty start).
PEER_KEYS = (SKOPEO_KEY, CRANE_KEY, REGCTL_KEY)
#: The Python floor of a case (``stdlib_floor.py``): a target below it is below what any
#: Python program sending the same requests reaches on this machine.
FLOOR_KEY = "python-floor"
FLOOR_LABEL = "python floor: stdlib, same requests"
FLOOR_NOTE = (
    "stdlib_floor.py: interpreter, http.client, the same requests at regshift's concurrency; "
    "no CLI, no auth, no retries"
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Sizes and counts; ``--quick`` shrinks the sizes, not the repetitions."""

    quick: bool
    repeat: int
    short_repeat: int  # runs per tool for rows of a second or two (100 layers, retag, promote)
    copy_bytes: int
    copy_layers: int
    many_layers: int
    many_layer_size: int
    platforms: tuple[str, ...]
    platform_layers: int
    platform_layer_size: int
    same_bytes: int
    same_layers: int
    retag_layers: int
    retag_layer_size: int
    promote_images: int
    promote_layer_size: int
    startup_samples: int
    merge_images: int
    merge_layers: int
    merge_layer_size: int
    sync_tags: int
    sync_changed: int
    sync_images: int
    sync_new_images: int
    sync_layer_size: int
    proxy_delay: float = 0.02  # the delay the retag target is judged at
    more_proxy_delays: tuple[float, ...] = (0.03,)  # measured too: where the lines cross
    curl_jobs: int = 4

    @classmethod
    def create(cls, *, quick: bool, repeat: int) -> Settings:
        return cls(
            quick=quick,
            repeat=repeat,
            short_repeat=max(9, 3 * repeat),
            copy_bytes=(64 if quick else 1024) * MiB,
            copy_layers=4,
            many_layers=20 if quick else 100,
            many_layer_size=256 * KiB,
            platforms=("linux/amd64", "linux/arm64", "linux/ppc64le", "linux/s390x"),
            platform_layers=2,
            platform_layer_size=(256 if quick else 4096) * KiB,
            same_bytes=(16 if quick else 256) * MiB,
            same_layers=4,
            retag_layers=10,
            retag_layer_size=1 * MiB,
            promote_images=5 if quick else 50,
            promote_layer_size=16 * KiB,
            startup_samples=3 if quick else 10,
            merge_images=3,
            merge_layers=4,
            merge_layer_size=(4 if quick else 64) * MiB,
            sync_tags=20 if quick else 200,
            sync_changed=5 if quick else 50,
            sync_images=4 if quick else 20,
            sync_new_images=2 if quick else 10,
            sync_layer_size=16 * KiB,
        )

    def describe(self) -> dict[str, str]:
        """One line per case: what exactly was measured at these settings."""
        per = self.copy_bytes // self.copy_layers
        same_per = self.same_bytes // self.same_layers
        ms = " and ".join(
            f"{round(d * 1000)} ms" for d in (self.proxy_delay, *self.more_proxy_delays)
        )
        return {
            "copy-1g": (
                f"registry A → registry B, one OCI image of {_mib(self.copy_bytes)} in "
                f"{self.copy_layers} uncompressed layers of {_mib(per)}, fresh destination "
                "repository per run"
            ),
            "copy-100-layers": (
                f"A → B, one image of {self.many_layers} layers x "
                f"{self.many_layer_size // KiB} KiB, fresh destination repository per run"
            ),
            "copy-same-registry": (
                f"A → A (another repository), {_mib(self.same_bytes)} in {self.same_layers} "
                f"layers of {_mib(same_per)}"
            ),
            "copy-multi-platform": (
                f"A → B, an OCI index of {len(self.platforms)} platforms "
                f"({', '.join(self.platforms)}), each an image of {self.platform_layers} "
                f"layers x {self.platform_layer_size // KiB} KiB of its own, fresh destination "
                "repository per run"
            ),
            "retag": (
                f"one new tag for an image of {self.retag_layers} layers x "
                f"{self.retag_layer_size // KiB} KiB in the same repository; bare loopback, "
                f"and through a loopback proxy adding {ms} to every request; plus the "
                "`-X importtime` profile of one `regshift tag` on bare loopback (untimed)"
            ),
            "promote-50": (
                f"{self.promote_images} different images (repositories) of 2 layers x "
                f"{self.promote_layer_size // KiB} KiB, one new tag each"
            ),
            "startup": f"median of {self.startup_samples} starts each; no registry involved",
            "merge-same-registry": (
                f"`regshift merge` of {self.merge_images} images of {self.merge_layers} layers x "
                f"{_mib(self.merge_layer_size)} (none shared) into a new repository of A"
            ),
            "merge-cross-registry": (
                f"the same merge into B, against copying the {self.merge_images} images to B "
                "(the same layers)"
            ),
            "flatten-1g": (
                f"the copy-1g image ({_mib(self.copy_bytes)} in {self.copy_layers} tar layers "
                "with files, links and whiteouts) flattened into one gzip layer on A, against "
                "umoci unpack + tar | gzip of the same image"
            ),
            "sync-200": (
                f"{self.sync_tags} tags over {self.sync_images} images of 2 layers x "
                f"{self.sync_layer_size // KiB} KiB, A → B; {self.sync_changed} tags moved to "
                f"{self.sync_new_images} new images since the destination's last sync; then "
                "a re-run with everything up to date"
            ),
        }


def _mib(n: int) -> str:
    return f"{n / MiB:g} MiB" if n < 1024 * MiB else f"{n / (1024 * MiB):g} GiB"


@dataclass
class Row:
    """One tool in one case: its runs and how to show them."""

    case: str
    tool: str
    group: str
    command: str
    runs: list[Run] = field(default_factory=list)
    baseline: bool = False
    note: str = ""
    error: str = ""
    key: str = ""  # REGSHIFT_KEY or one of PEER_KEYS for the rows targets compare, else empty
    #: A row that is not run: a computed figure, or why a tool was skipped (never a ✗).
    info: str = ""
    computed_mib: float | None = None  # a computed row's figure for the "MiB" column

    @property
    def ok(self) -> bool:
        if self.info and not self.runs:
            return not self.error
        return not self.error and bool(self.runs) and all(r.ok for r in self.runs)

    @property
    def median(self) -> float | None:
        return statistics.median(r.seconds for r in self.runs) if self.runs else None

    @property
    def peak_rss_kib(self) -> int | None:
        values = [r.max_rss_kib for r in self.runs if r.max_rss_kib is not None]
        return max(values) if values else None

    @property
    def median_rss_kib(self) -> float | None:
        values = [r.max_rss_kib for r in self.runs if r.max_rss_kib is not None]
        return statistics.median(values) if values else None

    @property
    def median_requests(self) -> float | None:
        values = [r.requests for r in self.runs if r.requests is not None]
        return statistics.median(values) if values else None

    def as_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "tool": self.tool,
            "group": self.group,
            "command": self.command,
            "baseline": self.baseline,
            "key": self.key or None,
            "ok": self.ok,
            "medianSeconds": round(self.median, 4) if self.median is not None else None,
            "peakRssKiB": self.peak_rss_kib,
            "note": self.note or None,
            "info": self.info or None,
            "computedMiB": self.computed_mib,
            "error": self.error or None,
            "runs": [r.as_json() for r in self.runs],
        }


@dataclass
class Context:
    """What every case needs: settings, a scratch directory, the registries, a logger."""

    settings: Settings
    workdir: Path
    log: Callable[[str], None]
    a: RegistryServer | None = None
    b: RegistryServer | None = None
    startup: dict[str, Any] = field(default_factory=dict)
    tag_startup: dict[str, Any] = field(default_factory=dict)  # retag: `-X importtime` of a tag

    @property
    def reg_a(self) -> RegistryServer:
        assert self.a is not None
        return self.a

    @property
    def reg_b(self) -> RegistryServer:
        assert self.b is not None
        return self.b


Maker = Callable[[int], Run]


def _repeat(
    ctx: Context,
    plan: Sequence[tuple[Row, Maker]],
    times: int | None = None,
    *,
    fewer: Mapping[str, int] | None = None,
) -> None:
    """Run every row's maker once per repetition, rows interleaved.

    ``fewer`` caps the runs of the named tools (a slow row in a case of short ones).
    """
    times = times or ctx.settings.repeat
    caps = fewer or {}
    for rep in range(1, times + 1):
        for row, make in plan:
            if rep > caps.get(row.tool, times):
                continue
            ctx.log(f"  {row.case}: {row.tool}, run {rep}/{times}")
            run = make(rep)
            row.runs.append(run)
            ctx.log(
                f"    {run.seconds:.3f} s, rss {run.max_rss_kib} KiB, "
                f"{run.requests} requests, {'ok' if run.ok else 'FAILED: ' + run.problem}"
            )


@cache
def peer_bin(name: str) -> str:
    """A Go peer built by ``scripts/peers`` (``bench/run`` runs it first)."""
    return str(peer(name))


def skopeo_copy(src: str, dst: str) -> list[str]:
    return [
        "skopeo",
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{src}",
        f"docker://{dst}",
    ]


def crane_copy(src: str, dst: str) -> list[str]:
    """``crane copy``: every platform by default; ``--insecure`` allows plain HTTP."""
    return [peer_bin("crane"), "copy", "--insecure", src, dst]


def crane_tag(src: str, dst: str) -> list[str]:
    """``crane tag SRC NEWTAG``, crane's own retag (DST's repository must be SRC's)."""
    return [peer_bin("crane"), "tag", "--insecure", src, dst.rsplit(":", 1)[1]]


def regctl_copy(src: str, dst: str) -> list[str]:
    """``regctl image copy`` (also regctl's retag: it has no ``tag add``). Plain HTTP per host
    with ``--host reg=H,tls=disabled``, which writes no configuration (the documented
    one-command form of ``regctl registry set --tls disabled H``)."""
    hosts = dict.fromkeys(ref.split("/", 1)[0] for ref in (src, dst))
    return [
        peer_bin("regctl"),
        "image",
        "copy",
        *(f"--host=reg={host},tls=disabled" for host in hosts),
        src,
        dst,
    ]


def regshift_copy(src: str, dst: str) -> list[str]:
    return [REGSHIFT, "copy", "--json", src, dst]


def floor_copy(src: str, dst: str) -> list[str]:
    return [PYTHON, STDLIB_FLOOR, "copy", src, dst]


@dataclass(frozen=True, slots=True)
class Tool:
    """A command line that copies SRC to DST (within one repository: retags it)."""

    key: str
    label: str
    argv: Callable[[str, str], list[str]]
    note: str = ""
    skopeo: bool = False  # its sandbox moves skopeo's blob-info cache (runner.Sandbox)


SKOPEO = Tool(
    SKOPEO_KEY, "skopeo copy (empty cache)", skopeo_copy, "blob-info cache empty", skopeo=True
)
CRANE = Tool(CRANE_KEY, "crane copy", crane_copy, "no cache; no config (empty DOCKER_CONFIG)")
REGCTL = Tool(
    REGCTL_KEY, "regctl image copy", regctl_copy, "no cache; empty REGCTL_CONFIG (in the sandbox)"
)
FLOOR = Tool(FLOOR_KEY, FLOOR_LABEL, floor_copy, FLOOR_NOTE)
#: The copy cases' rows: regshift (the base), the peers, then the Python floor.
COPY_TOOLS = (Tool(REGSHIFT_KEY, "regshift copy", regshift_copy), SKOPEO, CRANE, REGCTL, FLOOR)
#: The peers' natural retag: skopeo copies to the new tag, crane tags, regctl copies.
RETAG_PEERS = (
    Tool(SKOPEO_KEY, "skopeo copy (same repo)", skopeo_copy, skopeo=True),
    Tool(CRANE_KEY, "crane tag", crane_tag),
    Tool(REGCTL_KEY, "regctl image copy (same repo)", regctl_copy),
)

CheckAt = Callable[[str, str], str]  # (repository, tag) -> what is wrong, or ""


def _regshift_json(check: Callable[[Run], str]) -> Callable[[Run], str]:
    """``check``, after reading ``regshift copy --json``'s blob and request counts."""

    def run_check(run: Run) -> str:
        try:
            doc = json.loads(run.stdout)
        except ValueError:
            return f"regshift copy --json printed no JSON: {run.stdout[:200]!r}"
        run.extra["blobs"] = doc.get("blobs")
        run.extra["clientRequests"] = doc.get("requests")
        return check(run)

    return run_check


def _tool_maker(
    ctx: Context,
    tool: Tool,
    src: str,
    dst: Callable[[int], tuple[str, str, str]],
    registries: Sequence[RegistryServer],
    check_at: CheckAt,
) -> Maker:
    """Run ``tool`` from ``src`` to ``dst(rep)`` = (host, repository, tag), then check there."""

    def make(rep: int) -> Run:
        host, repo, tag = dst(rep)

        def check(run: Run) -> str:
            return check_at(repo, tag)

        return measure(
            tool.argv(src, f"{host}/{repo}:{tag}"),
            workdir=ctx.workdir,
            registries=registries,
            skopeo=tool.skopeo,
            check=_regshift_json(check) if tool.argv is regshift_copy else check,
        )

    return make


def _new_tags(host: str, repo: str, prefix: str) -> Callable[[int], tuple[str, str, str]]:
    """Destinations for :func:`_tool_maker`: ``host/repo:prefix-RUN``, a new tag per run."""
    return lambda rep: (host, repo, f"{prefix}-{rep}")


def _new_repos(host: str, prefix: str) -> Callable[[int], tuple[str, str, str]]:
    """Destinations for :func:`_tool_maker`: ``host/prefix-RUN:1.0``, a new repository per run."""
    return lambda rep: (host, f"{prefix}-{rep}", "1.0")


def _tool_row(case: str, tool: Tool, dst: str = "DST") -> Row:
    return Row(
        case,
        tool.label,
        case,
        _cmd(tool.argv("SRC", dst)),
        baseline=tool.key == REGSHIFT_KEY,
        note=tool.note,
        key=tool.key,
    )


def _copy_plan(
    ctx: Context,
    case: str,
    src: str,
    dst_host: str,
    prefix: str,
    registries: Sequence[RegistryServer],
    check_at: CheckAt,
) -> list[tuple[Row, Maker]]:
    """The rows every copy case has (regshift, the base, and the peers), each copying ``src``
    into a new repository ``dst_host/prefix/TOOL-RUN:1.0`` per run."""
    return [
        (
            _tool_row(case, tool),
            _tool_maker(
                ctx,
                tool,
                src,
                _new_repos(dst_host, f"{prefix}/{tool.key}"),
                registries,
                check_at,
            ),
        )
        for tool in COPY_TOOLS
    ]


def _shell_loop(commands: Sequence[Sequence[str]]) -> list[str]:
    """One bash process running ``commands`` one after another, stopping at a failure."""
    return ["bash", "-ec", "\n".join(shlex.join(c) for c in commands)]


def _blob_note(row: Row) -> str:
    blobs = row.runs[-1].extra.get("blobs") if row.runs else None
    if not isinstance(blobs, dict):
        return ""
    return ", ".join(f"{v} {k}" for k, v in blobs.items() if v)


def _seed(ctx: Context, image: SeededImage | SeededIndex) -> None:
    ctx.log(
        f"  seeding {image.repository}:{image.tag} ({_mib(image.size)}, {len(image.blobs)} blobs)"
    )
    io = RegistryIO(ctx.reg_a.host)
    if isinstance(image, SeededIndex):
        io.push_index(image)
    else:
        io.push_image(image)


def _cmd(argv: Sequence[str]) -> str:
    named = {
        REGSHIFT,
        PYTHON,
        RAW,
        STDLIB_FLOOR,
        *(peer_bin(n) for n in ("crane", "regctl")),
    }
    shown = [Path(a).name if a in named else a for a in argv]
    text = " ".join(shown)
    return text if len(text) < 160 else text[:157] + "..."


# -- 1. copy-1g ------------------------------------------------------------------------------


def big_layer_entries(settings: Settings) -> list[list[TarEntry]]:
    """The members of the 1 GiB image's layers (copy-1g and flatten-1g): layer i > 0 deletes
    ``data0/f0i`` with a whiteout."""
    per = settings.copy_bytes // settings.copy_layers
    return [
        tar_layer_entries(i, per, (f"data0/f{i:02d}",) if i else ())
        for i in range(settings.copy_layers)
    ]


@cache
def big_image(settings: Settings) -> SeededImage:
    """The 1 GiB image: ``copy_layers`` uncompressed tar layers (copy-1g, flatten-1g)."""
    layers = [tar_blob(entries) for entries in big_layer_entries(settings)]
    return build_image("bench/big", "1.0", layers, label="copy-1g")


def copy_1g(ctx: Context) -> list[Row]:
    s, a, b = ctx.settings, ctx.reg_a, ctx.reg_b
    ctx.log(f"copy-1g: generating {_mib(s.copy_bytes)} of layers")
    image = big_image(s)
    layers = image.layers
    _seed(ctx, image)
    src, dst_io = f"{a.host}/bench/big:1.0", RegistryIO(b.host)
    digests = [blob.digest for blob in image.blobs]
    case, regs = "copy-1g", [a, b]

    def check_at(repo: str, tag: str) -> str:
        return dst_io.check_image(repo, tag, image)

    def curl_copy(rep: int) -> Run:
        repo = f"copy1g/curl-{rep}"
        cmd = [RAW, "copy", a.url, "bench/big", "1.0", b.url, repo, "1.0", str(s.curl_jobs)]
        return measure(
            [*cmd, *digests],
            workdir=ctx.workdir,
            registries=regs,
            check=lambda run: check_at(repo, "1.0"),
        )

    def curl_read(rep: int) -> Run:
        expected = sum(blob.size for blob in layers)

        def check(run: Run) -> str:
            got = sum(int(x) for x in run.stdout.split() if x.isdigit())
            return "" if got == expected else f"read {got} bytes, expected {expected}"

        cmd = [RAW, "read", a.url, "bench/big", *(blob.digest for blob in layers)]
        return measure(cmd, workdir=ctx.workdir, registries=regs, check=check)

    plan = _copy_plan(ctx, case, src, b.host, "copy1g", regs, check_at)
    raw = [
        Row(
            case,
            "raw: curl GET | curl PUT",
            case,
            f"raw.sh copy (each blob GET piped into a monolithic PUT, {s.curl_jobs} at a time; "
            "then the manifest)",
        ),
        Row(
            case,
            "raw: curl GET → /dev/null",
            case,
            f"raw.sh read ({s.copy_layers} layers in parallel, one curl -Z)",
            note="reads only: the floor for moving the bytes once",
        ),
    ]
    _repeat(ctx, [*plan, *zip(raw, (curl_copy, curl_read), strict=True)])
    return _copy_rows(plan, raw)


# -- 2. copy-100-layers ----------------------------------------------------------------------


def copy_many_layers(ctx: Context) -> list[Row]:
    s, a, b = ctx.settings, ctx.reg_a, ctx.reg_b
    layers = [random_blob(5000 + i, s.many_layer_size) for i in range(s.many_layers)]
    image = build_image("bench/layers", "1.0", layers, label="copy-100-layers")
    _seed(ctx, image)
    src, dst_io = f"{a.host}/bench/layers:1.0", RegistryIO(b.host)
    case, regs = "copy-100-layers", [a, b]

    def check_at(repo: str, tag: str) -> str:
        return dst_io.check_image(repo, tag, image)

    plan = _copy_plan(ctx, case, src, b.host, "layers", regs, check_at)
    _repeat(ctx, plan, times=s.short_repeat)
    return _copy_rows(plan)


def _copy_rows(plan: Sequence[tuple[Row, Maker]], more: Sequence[Row] = ()) -> list[Row]:
    """The rows of a copy case after its runs: regshift's notes what its blobs did."""
    rows = [row for row, _ in plan]
    rows[0].note = _blob_note(rows[0])
    return [*rows, *more]


# -- 2b. copy-multi-platform -----------------------------------------------------------------


def copy_multi_platform(ctx: Context) -> list[Row]:
    s, a, b = ctx.settings, ctx.reg_a, ctx.reg_b
    index = build_index(
        "bench/multi",
        "1.0",
        list(s.platforms),
        s.platform_layers,
        s.platform_layer_size,
        seed=13000,
    )
    _seed(ctx, index)
    src, dst_io = f"{a.host}/bench/multi:1.0", RegistryIO(b.host)
    case = "copy-multi-platform"

    def check_at(repo: str, tag: str) -> str:
        return dst_io.check_index(repo, tag, index)

    plan = _copy_plan(ctx, case, src, b.host, "multi", [a, b], check_at)
    _repeat(ctx, plan, times=s.short_repeat)
    return _copy_rows(plan)


# -- 3. copy-same-registry -------------------------------------------------------------------


def copy_same_registry(ctx: Context) -> list[Row]:
    s, a = ctx.settings, ctx.reg_a
    per = s.same_bytes // s.same_layers
    layers = [random_blob(7000 + i, per) for i in range(s.same_layers)]
    image = build_image("bench/same", "1.0", layers, label="copy-same-registry")
    _seed(ctx, image)
    io = RegistryIO(a.host)
    src = f"{a.host}/bench/same:1.0"
    digests = [blob.digest for blob in image.blobs]
    case, regs = "copy-same-registry", [a]

    # A skopeo blob-info cache that has seen the image: one earlier skopeo copy of it (within
    # the same registry). Reading the source layers is enough for skopeo 1.9 to record them.
    ctx.log("  warming a skopeo blob-info cache (one earlier skopeo copy, not timed)")
    warm = Sandbox(ctx.workdir, skopeo=True)
    seeded = timed(skopeo_copy(src, f"{a.host}/bench/same-warmup:1.0"), warm.env())
    if seeded.returncode != 0 or not warm.skopeo_cache.exists():
        warm.close()
        raise RuntimeError(f"could not warm the skopeo cache: {seeded.stderr[-300:]}")

    def check_at(repo: str, tag: str) -> str:
        return io.check_image(repo, tag, image)

    def skopeo_warm(rep: int) -> Run:
        repo = f"same/skopeo-warm-{rep}"
        cmd = skopeo_copy(src, f"{a.host}/{repo}:1.0")
        return measure(
            cmd,
            workdir=ctx.workdir,
            registries=regs,
            skopeo=True,
            seed_sandbox=warm.dir,
            check=lambda run: check_at(repo, "1.0"),
        )

    def curl_mount(rep: int) -> Run:
        repo = f"same/curl-{rep}"
        cmd = [RAW, "mount", a.url, "bench/same", "1.0", repo, "1.0", *digests]
        return measure(
            cmd, workdir=ctx.workdir, registries=regs, check=lambda run: check_at(repo, "1.0")
        )

    plan = _copy_plan(ctx, case, src, a.host, "same", regs, check_at)
    plan[1][0].note = "streams every byte through the client (documented behaviour)"
    more = [
        Row(
            case,
            "skopeo copy (warm cache)",
            case,
            _cmd(skopeo_copy("SRC", "DST")) + ", with a copy of the cache of one earlier copy",
            note="cache from one earlier skopeo copy of SRC: layers mounted, config re-uploaded",
        ),
        Row(
            case,
            "raw: curl mount POSTs + manifest",
            case,
            "raw.sh mount (one POST ?mount=&from= per blob, then GET + PUT manifest)",
        ),
    ]
    try:
        _repeat(ctx, [*plan, *zip(more, (skopeo_warm, curl_mount), strict=True)])
    finally:
        warm.close()
    return _copy_rows(plan, more)


# -- 4. retag --------------------------------------------------------------------------------


def retag_case(delay: float) -> str:
    """The case name of the retag variant on bare loopback (0) or through the delaying proxy."""
    return f"retag (+{round(delay * 1000)} ms/req)" if delay else "retag (loopback)"


def _warm_regshift_cache(ctx: Context, src: str, key: str) -> tuple[Path, str]:
    """A REGSHIFT_CACHE_DIR that has seen the registry behind ``src``: one untimed
    ``regshift tag`` with it. Returns the directory and what it remembers (for the note)."""
    cache = ctx.workdir / f"regshift-cache-{key}"
    sandbox = Sandbox(ctx.workdir, overrides={"REGSHIFT_CACHE_DIR": str(cache)})
    try:
        warmed = timed([REGSHIFT, "tag", src, f"regshift-warmup-{key}"], sandbox.env())
    finally:
        sandbox.close()
    capabilities = cache / "capabilities.json"
    if warmed.returncode != 0 or not capabilities.exists():
        raise RuntimeError(f"could not warm regshift's cache: {warmed.stderr[-300:]}")
    doc = json.loads(capabilities.read_text())
    learnt = sorted(
        f"{feature}={'yes' if entry[0] else 'no'}"
        for features in doc.values()
        for feature, entry in features.items()
    )
    return cache, ", ".join(learnt) or "nothing"


def retag(ctx: Context) -> list[Row]:
    s, a = ctx.settings, ctx.reg_a
    layers = [random_blob(9000 + i, s.retag_layer_size) for i in range(s.retag_layers)]
    image = build_image("bench/retag", "1.0", layers, label="retag")
    _seed(ctx, image)
    io = RegistryIO(a.host)

    def check_at(repo: str, new_tag: str) -> str:
        found = io.manifest_digest(repo, new_tag)
        return "" if found == image.digest else f"{new_tag}: {found} != {image.digest}"

    def check(new_tag: str) -> Callable[[Run], str]:
        return lambda run: check_at("bench/retag", new_tag)

    proxy = FaultProxy(a.host).start()
    rows: list[Row] = []
    try:
        for delay in (0.0, s.proxy_delay, *s.more_proxy_delays):
            proxy.clear_rules()
            proxy.add_rule(Rule(action=Delay(delay)))
            host = proxy.host if delay else a.host
            key = f"proxy{round(delay * 1000)}" if delay else "lo"
            case = retag_case(delay)
            src = f"{host}/bench/retag:1.0"
            ctx.log(f"  warming a regshift cache directory for {host} (one untimed tag)")
            cache, learnt = _warm_regshift_cache(ctx, src, key)

            def regshift(rep: int, src: str = src, key: str = key) -> Run:
                tag = f"regshift-{key}-{rep}"
                return measure(
                    [REGSHIFT, "tag", src, tag],
                    workdir=ctx.workdir,
                    registries=[a],
                    check=check(tag),
                )

            def regshift_warm(rep: int, src: str = src, key: str = key, cache: Path = cache) -> Run:
                tag = f"regshift-warm-{key}-{rep}"
                run = measure(
                    [REGSHIFT, "tag", src, tag],
                    workdir=ctx.workdir,
                    registries=[a],
                    check=check(tag),
                    overrides={"REGSHIFT_CACHE_DIR": str(cache)},
                )
                run.extra["regshiftCacheDir"] = str(cache)
                return run

            def curl(rep: int, host: str = host, key: str = key) -> Run:
                tag = f"curl-{key}-{rep}"
                return measure(
                    [RAW, "retag", f"http://{host}", tag, "bench/retag:1.0"],
                    workdir=ctx.workdir,
                    registries=[a],
                    check=check(tag),
                )

            def stdlib_floor(rep: int, host: str = host, key: str = key) -> Run:
                tag = f"stdlib-{key}-{rep}"
                return measure(
                    [PYTHON, STDLIB_FLOOR, "retag", f"http://{host}", tag, "bench/retag:1.0"],
                    workdir=ctx.workdir,
                    registries=[a],
                    check=check(tag),
                )

            group = [
                Row(
                    case,
                    "regshift tag",
                    case,
                    "regshift tag SRC NEW",
                    baseline=True,
                    key=REGSHIFT_KEY,
                ),
                Row(
                    case,
                    "regshift tag (warm cache)",
                    case,
                    "regshift tag SRC NEW, REGSHIFT_CACHE_DIR kept across runs",
                ),
                *(_tool_row(case, tool, "REPO:NEW") for tool in RETAG_PEERS),
                Row(
                    case,
                    "raw: curl GET + curl PUT",
                    case,
                    "raw.sh retag (GET manifest to a file, PUT it with its Content-Type)",
                ),
                Row(
                    case,
                    FLOOR_LABEL,
                    case,
                    "python stdlib_floor.py retag (http.client: the Python floor)",
                    note=FLOOR_NOTE,
                    key=FLOOR_KEY,
                ),
            ]
            peers = [
                _tool_maker(
                    ctx,
                    tool,
                    src,
                    _new_tags(host, "bench/retag", f"{tool.key}-{key}"),
                    [a],
                    check_at,
                )
                for tool in RETAG_PEERS
            ]
            makers = (regshift, regshift_warm, *peers, curl, stdlib_floor)
            _repeat(ctx, list(zip(group, makers, strict=True)), times=s.short_repeat)
            group[0].note = "empty REGSHIFT_CACHE_DIR each run"
            group[1].note = (
                "REGSHIFT_CACHE_DIR kept across runs, pre-warmed by one untimed regshift tag "
                f"(it remembers: {learnt}); the rest of the sandbox fresh"
            )
            rows += group
            if not delay:
                ctx.log("  import profile of regshift tag (python -X importtime, untimed)")
                ctx.tag_startup = tag_import_profile(ctx, src)
    finally:
        proxy.stop()
    return rows


# -- 5. promote-50 ---------------------------------------------------------------------------


def promote(ctx: Context) -> list[Row]:
    s, a = ctx.settings, ctx.reg_a
    images = [
        build_image(
            f"bench/promote-{i:02d}",
            "1.0",
            [random_blob(11000 + 2 * i + j, s.promote_layer_size) for j in range(2)],
            label=f"promote-{i}",
        )
        for i in range(s.promote_images)
    ]
    ctx.log(f"  seeding {len(images)} small images")
    io = RegistryIO(a.host)
    for image in images:
        io.push_image(image)
    refs = [f"{a.host}/{im.repository}:1.0" for im in images]
    case, regs, n = "promote-50", [a], len(images)

    def check(new_tag: str) -> Callable[[Run], str]:
        def run_check(run: Run) -> str:
            bad = [
                im.repository
                for im in images
                if io.manifest_digest(im.repository, new_tag) != im.digest
            ]
            return f"{len(bad)} of {n} not promoted, e.g. {bad[0]}" if bad else ""

        return run_check

    def from_file(rep: int) -> Run:
        tag = f"batch-{rep}"
        listing = ctx.workdir / f"promote-{tag}.txt"
        listing.write_text("".join(f"{ref} {tag}\n" for ref in refs))
        cmd = [REGSHIFT, "tag", "--json", "--from-file", str(listing)]

        def check_batch(run: Run) -> str:
            try:
                docs = json.loads(run.stdout)
            except ValueError:
                return f"regshift tag --json printed no JSON: {run.stdout[:200]!r}"
            if not isinstance(docs, list) or len(docs) != n:
                return f"regshift tag --json: expected a list of {n} results: {run.stdout[:200]!r}"
            errors = [d for d in docs if d.get("error")]
            if errors:
                return f"{len(errors)} of {n} reported errors, e.g. {errors[0]['error']}"
            return check(tag)(run)

        try:
            return measure(cmd, workdir=ctx.workdir, registries=regs, check=check_batch)
        finally:
            listing.unlink(missing_ok=True)

    def library(rep: int) -> Run:
        tag = f"lib-{rep}"
        cmd = [PYTHON, str(BENCH_DIR / "promote_lib.py"), tag, *refs]
        run = measure(cmd, workdir=ctx.workdir, registries=regs, check=check(tag))
        try:
            run.extra.update(json.loads(run.stdout))
        except ValueError:
            run.problem = run.problem or f"no JSON from promote_lib.py: {run.stdout[:200]!r}"
        return run

    def cli(rep: int) -> Run:
        tag = f"cli-{rep}"
        cmd = _shell_loop([[REGSHIFT, "tag", ref, tag] for ref in refs])
        return measure(cmd, workdir=ctx.workdir, registries=regs, check=check(tag))

    def peer_loop(tool: Tool) -> Maker:
        """The peer's retag of every image, one process each (one sandbox for the batch)."""

        def make(rep: int) -> Run:
            tag = f"{tool.key}-{rep}"
            cmd = _shell_loop([tool.argv(ref, f"{ref.rsplit(':', 1)[0]}:{tag}") for ref in refs])
            return measure(
                cmd, workdir=ctx.workdir, registries=regs, skopeo=tool.skopeo, check=check(tag)
            )

        return make

    def curl(rep: int) -> Run:
        tag = f"curl-{rep}"
        cmd = [RAW, "retag", a.url, tag, *(f"{im.repository}:1.0" for im in images)]
        return measure(cmd, workdir=ctx.workdir, registries=regs, check=check(tag))

    def stdlib_floor(rep: int) -> Run:
        tag = f"stdlib-{rep}"
        cmd = [
            PYTHON,
            STDLIB_FLOOR,
            "promote",
            a.url,
            tag,
            *(f"{im.repository}:1.0" for im in images),
        ]
        return measure(cmd, workdir=ctx.workdir, registries=regs, check=check(tag))

    rows = [
        Row(
            case,
            "regshift tag --from-file, 1 process",
            case,
            f"regshift tag --json --from-file FILE ({n} lines 'SRC NEW')",
            baseline=True,
            key=REGSHIFT_KEY,
        ),
        Row(
            case,
            "regshift library, 1 process",
            case,
            f"promote_lib.py: one Client, regshift.tag() x {n}",
        ),
        Row(case, f"regshift tag CLI x {n}", case, f"regshift tag SRC NEW, {n} processes"),
        *(
            Row(
                case,
                f"{tool.label.split(' (')[0]} x {n}",
                case,
                f"{_cmd(tool.argv('SRC', 'REPO:NEW'))}, {n} processes",
                note="sequential; one empty blob-info cache for the batch"
                if tool.skopeo
                else "sequential",
                key=tool.key,
            )
            for tool in RETAG_PEERS
        ),
        Row(case, f"raw: curl GET + PUT x {n}", case, f"raw.sh retag, {2 * n} curl processes"),
        Row(
            case,
            FLOOR_LABEL,
            case,
            f"python stdlib_floor.py promote ({n} GET + PUT, 1 process)",
            note=FLOOR_NOTE,
            key=FLOOR_KEY,
        ),
    ]
    makers = (from_file, library, cli, *map(peer_loop, RETAG_PEERS), curl, stdlib_floor)
    # The 50-process regshift loop takes seconds per run; it gets the usual number of runs.
    _repeat(
        ctx,
        list(zip(rows, makers, strict=True)),
        times=s.short_repeat,
        fewer={rows[2].tool: s.repeat},
    )
    rows[0].note = "images in parallel on one connection pool; whole process incl. start-up"
    loops = [r.extra.get("loopSeconds") for r in rows[1].runs]
    loop_times = [x for x in loops if isinstance(x, int | float)]
    if loop_times:
        rows[1].note = (
            f"sequential; whole process incl. interpreter start and import; the tag loop "
            f"alone: {statistics.median(loop_times):.3f} s"
        )
    rows[2].note = "sequential"
    return rows


# -- 6. startup ------------------------------------------------------------------------------


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)\s*$")


# The HTTP stack and CLI library regshift is built on, imported the way the regshift process
# does it (the collector off: see regshift.cli.process).
_STACK = "import gc; gc.disable(); import http.client, ssl, json, click; gc.freeze()"


#: What ``regshift --help`` must not import: the HTTP layer, and rich (a progress bar's).
HEAVY_FOR_HELP = ("http.client", "rich")


def startup(ctx: Context) -> list[Row]:
    s = ctx.settings
    case = "startup"
    no_pyc: dict[str, str | None] = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": None}
    commands: list[tuple[str, list[str], dict[str, str | None] | None]] = [
        ("regshift --help", [REGSHIFT, "--help"], None),
        ("python -c 'import regshift.cli.main'", [PYTHON, "-c", "import regshift.cli.main"], None),
        ("python -c pass (interpreter floor)", [PYTHON, "-c", "pass"], None),
        ("python: import http.client, ssl, json, click (the stack)", [PYTHON, "-c", _STACK], None),
        ("skopeo --help", ["skopeo", "--help"], None),
        ("crane version", [peer_bin("crane"), "version"], None),
        ("regctl version", [peer_bin("regctl"), "version"], None),
        ("regshift --help, src/ .pyc not cached", [REGSHIFT, "--help"], no_pyc),
    ]
    # Keys for the retag start-up comparison (report.py): regshift's and each Go peer's.
    keys = {0: REGSHIFT_KEY, 4: SKOPEO_KEY, 5: CRANE_KEY, 6: REGCTL_KEY}
    rows = [
        Row(case, label, case, _cmd(cmd), baseline=(i == 0), key=keys.get(i, ""))
        for i, (label, cmd, _) in enumerate(commands)
    ]
    rows[3].note = (
        "what any command line on the standard library's HTTP client and click pays before "
        "its own code (collector off, as in regshift's process); `regshift tag` = this + "
        "regshift's modules + its requests"
    )
    rows[-1].note = (
        "PYTHONDONTWRITEBYTECODE=1, as this machine's environment sets: regshift's own "
        "modules are compiled from source on every start"
    )
    makers = [_startup_maker(ctx, cmd, env) for _, cmd, env in commands]
    _repeat(ctx, list(zip(rows, makers, strict=True)), times=s.startup_samples)
    details = import_profile(ctx)
    ctx.startup = details
    heavy = [m for m in HEAVY_FOR_HELP if details["imported"].get(m)]
    own = details["selfMsByPackage"]
    rows[0].note = f"`-X importtime`: {details['totalMs']:.0f} ms of imports; " + ", ".join(
        f"{m} imported ({own[m]:.0f} ms)" if details["imported"][m] else f"{m} not imported"
        for m in HEAVY_FOR_HELP
    )
    if heavy:
        for run in rows[0].runs:
            run.problem = f"--help imports {' and '.join(heavy)}"
    return rows


def _startup_maker(ctx: Context, cmd: list[str], env: dict[str, str | None] | None) -> Maker:
    return lambda rep: measure(cmd, workdir=ctx.workdir, overrides=env)


ImportEntry = tuple[int, int, int, str]  # self µs, cumulative µs, nesting depth, module


def import_profile(
    ctx: Context, args: Sequence[str] = ("--help",), samples: int = 3
) -> dict[str, Any]:
    """``python -X importtime -m regshift ARGS`` (the sample with the median total).

    ``{n}`` in an argument becomes the sample's number (1, 2, ...), e.g. for a new tag per
    sample; ``command`` is the median sample's. ``returncode`` is the first non-zero exit of
    any sample (0 when all succeeded). Reports top-level imports by cumulative time, whether
    http.client / rich are imported, the import chain that brings in http.client, and per
    package the summed self time of its modules.
    """
    return _import_profile(ctx, args, samples)[1]


def tag_import_profile(ctx: Context, src: str, samples: int = 3) -> dict[str, Any]:
    """:func:`import_profile` of ``regshift tag SRC NEW`` (a new tag per sample), plus
    ``unusedRegshiftModules``: those of :data:`NOT_FOR_TAG` it imported (should be none)."""
    modules, profile = _import_profile(ctx, ("tag", src, "regshift-importtime-{n}"), samples)
    profile["unusedRegshiftModules"] = [
        m for m in NOT_FOR_TAG if m.startswith("regshift.") and _has(modules, m)
    ]
    return profile


def _import_profile(
    ctx: Context, args: Sequence[str], samples: int
) -> tuple[set[str], dict[str, Any]]:
    """The profile of :func:`import_profile` and the names of every module imported."""
    runs = [
        _import_sample(ctx, [a.replace("{n}", str(n)) for a in args]) for n in range(1, samples + 1)
    ]
    total_us, _, entries, argv = sorted(runs, key=lambda p: p[0])[len(runs) // 2]
    returncode = next((r[1] for r in runs if r[1] != 0), 0)
    modules = {name for _, _, _, name in entries}
    top = sorted((e for e in entries if e[2] == 0), key=lambda e: -e[1])[:10]
    families = ("regshift", "http", "ssl", "email", "click", "rich", "pygments")
    self_ms = {fam: sum(e[0] for e in entries if _within(e[3], fam)) / 1000 for fam in families}
    self_ms["other (stdlib, ...)"] = total_us / 1000 - sum(self_ms.values())
    return modules, {
        "command": "python -X importtime -m regshift " + " ".join(argv),
        "samples": samples,
        "returncode": returncode,
        "modules": len(modules),
        "totalMs": total_us / 1000,
        "imported": {
            name: _has(modules, name)
            for name in ("http.client", "httpx", "rich", "pygments", "click")
        },
        "selfMsByPackage": self_ms,
        "httpImportedVia": _import_chain(entries, "http.client"),
        "richImportedVia": _import_chain(entries, "rich"),
        "top": [{"module": e[3], "cumulativeMs": e[1] / 1000, "selfMs": e[0] / 1000} for e in top],
    }


def _within(module: str, name: str) -> bool:
    """Whether ``module`` is ``name`` or a submodule of it."""
    return module == name or module.startswith(name + ".")


def _has(modules: set[str], name: str) -> bool:
    return any(_within(m, name) for m in modules)


def _import_sample(ctx: Context, args: list[str]) -> tuple[int, int, list[ImportEntry], list[str]]:
    """One ``-X importtime`` run in a fresh sandbox, the environment of the timed runs (a
    timeout counts as exit -1): total µs, exit status, the imports, ``args``."""
    sandbox = Sandbox(ctx.workdir)
    try:
        run = timed([PYTHON, "-X", "importtime", "-m", "regshift", *args], sandbox.env(), 60)
    finally:
        sandbox.close()
    entries = []
    for line in run.stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if m:
            entries.append((int(m[1]), int(m[2]), len(m[3]) // 2, m[4]))
    total = sum(e[1] for e in entries if e[2] == 0)
    return total, run.returncode, entries, args


def _import_chain(entries: list[ImportEntry], name: str) -> list[str]:
    """The chain of modules whose import led to ``name`` (outermost first)."""
    for i, (_, _, depth, module) in enumerate(entries):
        if module != name:
            continue
        chain, want = [module], depth - 1
        for _, _, d, parent in entries[i + 1 :]:
            if want < 0:
                break
            if d == want:
                chain.append(parent)
                want -= 1
        return chain[::-1]
    return []


CASES: dict[str, Callable[[Context], list[Row]]] = {
    "copy-1g": copy_1g,
    "copy-100-layers": copy_many_layers,
    "copy-same-registry": copy_same_registry,
    "copy-multi-platform": copy_multi_platform,
    "retag": retag,
    "promote-50": promote,
    "startup": startup,
}

#: Which registries each case needs.
NEEDS: dict[str, tuple[str, ...]] = {
    "copy-1g": ("a", "b"),
    "copy-100-layers": ("a", "b"),
    "copy-same-registry": ("a",),
    "copy-multi-platform": ("a", "b"),
    "retag": ("a",),
    "promote-50": ("a",),
    "startup": (),
    "merge-same-registry": ("a",),
    "merge-cross-registry": ("a", "b"),
    "flatten-1g": ("a",),
    "sync-200": ("a", "b"),
}


def start_registries(ctx: Context, cases: Sequence[str]) -> None:
    """Start registry A (and B) if a chosen case needs them; storage under the workdir."""
    needs = {r for c in cases for r in NEEDS[c]}
    if "a" in needs:
        ctx.a = RegistryServer(ctx.workdir / "registry-a").start()
        ctx.log(f"registry A on {ctx.a.host}")
    if "b" in needs:
        ctx.b = RegistryServer(ctx.workdir / "registry-b").start()
        ctx.log(f"registry B on {ctx.b.host}")


def stop_registries(ctx: Context) -> None:
    for server in (ctx.a, ctx.b):
        if server is not None:
            server.stop()
