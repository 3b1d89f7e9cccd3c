"""``sync``: mirror what a sync file describes, unit by unit, shardable across machines.

A sync file (:mod:`regshift.syncfile`) is expanded into a :class:`Plan` of units, each one
(source image, destination tag): a repository entry lists the source's tags and filters them,
an image entry is one unit, a registry entry reads the source's catalog and expands every
repository it keeps. Planning only reads.

Each unit then runs on its own: one HEAD at each side, and when the digests are equal
nothing else (``up-to-date``); otherwise the copy machinery of :mod:`regshift.copying`
copies it (blobs mounted or streamed, manifests by digest, the tag last). Units run ``jobs``
at a time on one shared client; blob transfers stay within the per-registry slots.

Sharding: unit ``(source, destination)`` belongs to shard
``int.from_bytes(sha256(f"{source}\\n{destination}".encode())[:8], "big") % count``, where
both are the normalised references as printed (``registry/repository:tag``, or ``@digest``).
That is the same on every machine and Python version, so N processes with ``shard=(i, N)``,
i = 0..N-1, cover a plan exactly once with no shared state. Nothing is kept between runs.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum

from .client import Client
from .copying.options import CopyOptions, CopyResult
from .copying.running import Run
from .copying.single import copy_graph, destination, shared_scopes
from .copying.workers import Cancel, workers
from .digests import matches
from .errors import APIError, NotFound, RegistryError
from .graph import resolve
from .reference import Reference, is_fallback_tag, parse_repository
from .semver import parse_version, version_order
from .storage import open_repository
from .syncfile import Entry, Settings, SyncFile, SyncFileError, TagFilter
from .transport import default_jobs

__all__ = [
    "Excluded",
    "Plan",
    "SyncAction",
    "SyncOptions",
    "SyncResult",
    "Unit",
    "UnitResult",
    "list_catalog",
    "plan_sync",
    "shard_of",
    "sync",
]


class SyncAction(StrEnum):
    """What happened to a unit (or, with dry-run / check, what would)."""

    COPIED = "copied"
    UP_TO_DATE = "up-to-date"
    WOULD_COPY = "would-copy"
    STALE = "stale"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Unit:
    """One unit of work: a source image and the destination tag (or digest) it goes to."""

    source: Reference
    destination: Reference
    settings: Settings = field(default_factory=Settings)

    def shard(self, count: int) -> int:
        return shard_of(str(self.source), str(self.destination), count)


@dataclass(frozen=True, slots=True)
class Excluded:
    """A tag (or repository) a filter left out, and which filter did."""

    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class UnitResult:
    """What one unit did. ``bytes`` counts bytes streamed through regshift (mounted blobs
    move none); ``error`` is the one-line failure, ``exception`` the error itself."""

    source: str
    destination: str
    digest: str | None
    action: SyncAction
    bytes: int = 0
    seconds: float = 0.0
    error: str | None = None
    exception: RegistryError | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Plan:
    """The units of a sync file (of one shard), the filters' decisions, and the entries that
    could not be expanded (as failed results; only with ``keep_going``)."""

    units: tuple[Unit, ...]
    excluded: tuple[Excluded, ...]
    failures: tuple[UnitResult, ...] = ()
    total: int = 0  # units of the whole plan, every shard


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncOptions:
    """How to run a sync.

    Attributes:
        jobs: units at once (each copy's blob transfers share one pool of as many threads,
            within the per-registry slots).
        dry_run: say what each unit would do (``would-copy``/``up-to-date``); write nothing.
        check: like ``dry_run``, reporting ``stale`` instead of ``would-copy``.
        keep_going: a failing unit (or entry) does not stop the others.
        shard: ``(index, count)``: run only the units of shard ``index`` (0-based) of ``count``.
        progress: called with each unit's result as it finishes (one at a time).
    """

    jobs: int = field(default_factory=lambda: default_jobs())
    dry_run: bool = False
    check: bool = False
    keep_going: bool = False
    shard: tuple[int, int] | None = None
    progress: Callable[[UnitResult], None] = lambda _result: None

    def __post_init__(self) -> None:
        if self.shard is not None:
            index, count = self.shard
            if count < 1 or not 0 <= index < count:
                raise ValueError(f"shard {index}/{count}: expected 0 <= index < count")


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a sync did, unit by unit, in plan order."""

    units: tuple[UnitResult, ...]
    excluded: tuple[Excluded, ...]
    shard: tuple[int, int] | None
    planned: int
    requests: int
    seconds: float

    @property
    def failed(self) -> tuple[UnitResult, ...]:
        return tuple(u for u in self.units if u.action is SyncAction.FAILED)

    @property
    def stale(self) -> tuple[UnitResult, ...]:
        return tuple(u for u in self.units if u.action is SyncAction.STALE)


def shard_of(source: str, destination: str, count: int) -> int:
    """The shard (0-based, of ``count``) of a unit: see the module's description."""
    digest = hashlib.sha256(f"{source}\n{destination}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def list_catalog(client: Client, registry: str) -> list[str]:
    """Every repository of a registry (``/v2/_catalog``, all pages).

    Raises:
        APIError: the registry refuses its catalog (many public registries do); the error
            says so.
    """
    try:
        return client.list_repositories(registry)
    except APIError as exc:
        exc.add_note(f"registry {registry} does not list its repositories (/v2/_catalog)")
        raise


# -- planning -------------------------------------------------------------------------------


def plan_sync(
    client: Client,
    sync_file: SyncFile,
    *,
    shard: tuple[int, int] | None = None,
    keep_going: bool = False,
) -> Plan:
    """Expand a sync file into units (only reads: tag lists, catalogs).

    Raises:
        RegistryError: an entry could not be expanded (unless ``keep_going``: then it is
            reported in :attr:`Plan.failures`).
        SyncFileError: two entries write one destination tag from different sources (the
            whole plan is checked, whatever the shard).
    """
    units: list[Unit] = []
    placed: list[tuple[Entry, Unit]] = []
    excluded: list[Excluded] = []
    failures: list[UnitResult] = []
    for entry in sync_file.entries:
        try:
            found, left_out = _expand(client, entry)
        except RegistryError as exc:
            if not keep_going:
                exc.add_note(f"{sync_file.path}:{entry.line}: entry {entry.source}")
                raise
            failures.append(_failure(str(entry.source), str(entry.destination), exc, 0.0))
            continue
        units.extend(found)
        placed.extend((entry, unit) for unit in found)
        excluded.extend(left_out)
    _refuse_conflicts(sync_file.path, placed)
    # One unit named twice (by two entries) is done once, as the first entry says.
    seen: set[tuple[str, str]] = set()
    unique = []
    for unit in units:
        key = (str(unit.source), str(unit.destination))
        if key not in seen:
            seen.add(key)
            unique.append(unit)
    mine = [u for u in unique if shard is None or u.shard(shard[1]) == shard[0]]
    return Plan(tuple(mine), tuple(excluded), tuple(failures), total=len(unique))


def _refuse_conflicts(path: str, placed: list[tuple[Entry, Unit]]) -> None:
    """Two entries writing one destination tag from different sources would race: which
    image the tag ends up at would depend on timing (or on the shard). Refused before
    anything is written, as ``tag --from-file`` refuses two lines doing so. The same tag
    from the same source again is no conflict (the unit is done once); a destination by
    digest is the same bytes whatever the source.

    Raises:
        SyncFileError: ``FILE:LINE: ...`` for each pair of conflicting entries.
    """
    writers: dict[str, tuple[int, str]] = {}  # destination tag -> (entry line, source)
    clashes: dict[tuple[int, int], list[tuple[str, str, str]]] = {}
    for entry, unit in placed:
        if unit.destination.tag is None:
            continue
        dest, source = str(unit.destination), str(unit.source)
        first_line, first_source = writers.setdefault(dest, (entry.line, source))
        if first_source != source:
            clashes.setdefault((first_line, entry.line), []).append((dest, source, first_source))
    if not clashes:
        return
    problems = []
    for (first_line, line), found in clashes.items():
        dest, source, first_source = found[0]
        more = f" (and {len(found) - 1} more tags)" if len(found) > 1 else ""
        problems.append(
            f"{path}:{line}: destination {dest}{more} is written from {source} here and from "
            f"{first_source} by the entry at {path}:{first_line}"
        )
    raise SyncFileError("; ".join(problems) + "; nothing synced")


def _expand(client: Client, entry: Entry) -> tuple[list[Unit], list[Excluded]]:
    if entry.kind == "image":
        assert isinstance(entry.source, Reference) and isinstance(entry.destination, Reference)
        return [_image_unit(entry.source, entry.destination, entry.settings)], []
    if entry.kind == "repository":
        assert isinstance(entry.source, Reference) and isinstance(entry.destination, Reference)
        return _repository_units(client, entry.source, entry.destination, entry)
    units: list[Unit] = []
    excluded: list[Excluded] = []
    registry = str(entry.source)
    repositories = list_catalog(client, registry)
    chosen, left_out = _choose(repositories, entry.repositories, versions=False)
    excluded += [Excluded(f"{registry}/{name}", why) for name, why in left_out]
    for name in chosen:
        source = parse_repository(f"{registry}/{name}")
        dest = parse_repository(f"{entry.destination}/{name}")
        found, skipped = _repository_units(client, source, dest, entry)
        units += found
        excluded += skipped
    return units, excluded


def _image_unit(source: Reference, dest: Reference, settings: Settings) -> Unit:
    """An image entry: the destination keeps the source's tag unless it names one; a source
    given by digest alone goes to the destination by digest."""
    if dest.tag is None:
        dest = dest.with_tag(source.tag) if source.tag else dest.with_digest(source.identifier)
    return Unit(source, dest, settings)


def _repository_units(
    client: Client, source: Reference, dest: Reference, entry: Entry
) -> tuple[list[Unit], list[Excluded]]:
    # Referrers fallback tags (sha256-<hex>) are indexes to merge, not tags to copy: the
    # referrers setting carries them entry by entry (as copy --all-tags does).
    tags = [t for t in client.list_tags(source, scopes=[source.scope("pull")])]
    plain = [t for t in tags if not is_fallback_tag(t)]
    chosen, left_out = _choose(plain, entry.tags, versions=True)
    excluded = [Excluded(f"{source}:{tag}", why) for tag, why in left_out]
    excluded += [Excluded(f"{source}:{t}", "referrers tag") for t in tags if is_fallback_tag(t)]
    units = [Unit(source.with_tag(t), dest.with_tag(t), entry.settings) for t in chosen]
    return units, excluded


def _choose(
    names: list[str], rules: TagFilter, *, versions: bool
) -> tuple[list[str], list[tuple[str, str]]]:
    """The names the filter keeps (in the order given, or newest first with ``newest``) and
    those it leaves out, each with the rule that did."""
    kept: list[str] = []
    out: list[tuple[str, str]] = []
    for name in names:
        why = _rejection(name, rules)
        if why:
            out.append((name, why))
        else:
            kept.append(name)
    if versions and rules.newest is not None:
        ranked = _ranked(kept)
        kept, dropped = ranked[: rules.newest], ranked[rules.newest :]
        out += [(name, f"not among the newest {rules.newest}") for name in dropped]
    return kept, out


def _rejection(name: str, rules: TagFilter) -> str | None:
    if rules.include and not any(p.search(name) for p in rules.include):
        return "not included (include)"
    for pattern in rules.exclude:
        if pattern.search(name):
            return f"excluded ({pattern.pattern})"
    if rules.semver is not None:
        version = parse_version(name)
        if version is None:
            return "not a semantic version (semver)"
        if not rules.semver.contains(version):
            return f"outside {rules.semver.text} (semver)"
    return None


def _ranked(tags: list[str]) -> list[str]:
    """Highest first: versions in semver order, above every other tag (by name)."""
    parsed = [(tag, parse_version(tag)) for tag in tags]
    versions = [(v, tag) for tag, v in parsed if v is not None]
    versions.sort(key=lambda pair: (version_order(pair[0]), pair[1]), reverse=True)
    others = sorted((tag for tag, v in parsed if v is None), reverse=True)
    return [tag for _, tag in versions] + others


# -- running --------------------------------------------------------------------------------


def sync(client: Client, sync_file: SyncFile, options: SyncOptions | None = None) -> SyncResult:
    """Mirror what ``sync_file`` describes (this shard of it, with ``options.shard``).

    Raises:
        RegistryError: the first failure, when not ``keep_going`` (units already done stay
            done; the error names how many). With ``keep_going`` failures are results.
        SyncFileError: two entries write one destination tag from different sources
            (found while planning: nothing is written).
    """
    opts = options or SyncOptions()
    started, start_requests = time.monotonic(), client.requests
    plan = plan_sync(client, sync_file, shard=opts.shard, keep_going=opts.keep_going)
    for failure in plan.failures:
        opts.progress(failure)
    results = _run_units(client, plan.units, opts)
    return SyncResult(
        units=(*plan.failures, *results),
        excluded=plan.excluded,
        shard=opts.shard,
        planned=plan.total,
        requests=client.requests - start_requests,
        seconds=time.monotonic() - started,
    )


def _run_units(client: Client, units: tuple[Unit, ...], opts: SyncOptions) -> list[UnitResult]:
    """Run units ``opts.jobs`` at a time; results in plan order."""
    done: dict[int, UnitResult] = {}
    stop = threading.Event()
    jobs = max(1, opts.jobs)
    with (
        workers(jobs) as (blob_pool, cancel),
        ThreadPoolExecutor(jobs, thread_name_prefix="regshift-sync") as unit_pool,
    ):
        pending: dict[Future[UnitResult], int] = {}
        queue = list(enumerate(units))
        queue.reverse()
        while queue or pending:
            while queue and len(pending) < jobs and not stop.is_set():
                number, unit = queue.pop()
                future = unit_pool.submit(_run_unit, client, unit, opts, blob_pool, cancel)
                pending[future] = number
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                done[pending.pop(future)] = result
                opts.progress(result)
                if result.action is SyncAction.FAILED and not opts.keep_going:
                    stop.set()
                    queue.clear()
    failed = [r for r in done.values() if r.action is SyncAction.FAILED]
    if failed and not opts.keep_going and failed[0].exception is not None:
        exc = failed[0].exception
        finished_ok = len(done) - len(failed)
        exc.add_note(f"{failed[0].source} -> {failed[0].destination}")
        exc.add_note(f"units done before stopping: {finished_ok} of {len(units)}")
        raise exc
    return [done[n] for n in sorted(done)]


def _run_unit(
    client: Client, unit: Unit, opts: SyncOptions, pool: ThreadPoolExecutor, cancel: Cancel
) -> UnitResult:
    started = time.monotonic()
    try:
        return _sync_unit(client, unit, opts, pool, cancel, started)
    except RegistryError as exc:
        return _failure(str(unit.source), str(unit.destination), exc, started)


def _failure(source: str, dest: str, exc: RegistryError, started: float) -> UnitResult:
    seconds = time.monotonic() - started if started else 0.0
    text = "; ".join([str(exc), *getattr(exc, "__notes__", [])])
    return UnitResult(source, dest, None, SyncAction.FAILED, 0, seconds, text, exc)


def _sync_unit(
    client: Client,
    unit: Unit,
    opts: SyncOptions,
    pool: ThreadPoolExecutor,
    cancel: Cancel,
    started: float,
) -> UnitResult:
    """HEAD both sides; copy only when the destination does not have the source digest."""
    settings, read_only = unit.settings, opts.dry_run or opts.check
    src = open_repository(client, unit.source)
    identifier = src.identifier or "latest"
    dest = destination(client, unit.destination, src, identifier, force=False)
    src = shared_scopes(src, [dest])
    wanted = SyncAction.STALE if opts.check else SyncAction.WOULD_COPY

    def result(
        action: SyncAction, digest: str | None, copied: CopyResult | None = None
    ) -> UnitResult:
        moved = copied.bytes.get("streamed", 0) if copied else 0
        seconds = time.monotonic() - started
        return UnitResult(str(unit.source), str(unit.destination), digest, action, moved, seconds)

    previous = dest.current_digest() if dest.tag else None
    if not settings.platforms:  # the destination holds the source's own digest: compare
        current = src.head(identifier)
        if current is None:
            raise NotFound(status=404, method="HEAD", url=str(unit.source), text="manifest unknown")
        if dest.tag is None:  # by digest: is the manifest there?
            previous = current if dest.repo.has_manifest(current) else None
        if previous is not None and previous == current:
            return result(SyncAction.UP_TO_DATE, current)
        if read_only:
            return result(wanted, current)
    graph = resolve(src, identifier, settings.platforms)
    if previous is not None and matches(graph.top.raw, previous):
        return result(SyncAction.UP_TO_DATE, graph.top.digest)
    if read_only:
        return result(wanted, graph.top.digest)
    copy_options = CopyOptions(
        platforms=settings.platforms,
        referrers=settings.referrers,
        digest_tags=settings.digest_tags,
        jobs=opts.jobs,
    )
    copied = copy_graph(Run(client, src, dest, copy_options, pool, cancel), graph, (previous,))
    action = SyncAction.UP_TO_DATE if copied.up_to_date else SyncAction.COPIED
    return result(action, copied.digest, copied)
