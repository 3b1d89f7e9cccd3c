"""Writing an index as a copy writes: the children and their blobs brought into the
destination repository first (the copy machinery: mounted, streamed, verified), then the
index by digest and under its tag, last; and the result."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..client import Client
from ..copying.options import BlobAction, BlobStep, CopyOptions
from ..copying.running import Destination, Run
from ..copying.workers import workers
from ..digests import matches
from ..errors import DigestMismatch, PreconditionFailed
from ..graph import suffix
from ..manifests import Descriptor, Manifest
from ..storage import Repository
from .entries import IndexEntry, Item
from .options import IndexOptions, IndexResult
from .sources import Current, Missing, Part


@dataclass(frozen=True, slots=True)
class Plan:
    """The index to write and how it came about."""

    index: Manifest
    items: tuple[Item, ...]
    added: tuple[IndexEntry, ...] = ()
    replaced: tuple[IndexEntry, ...] = ()
    removed: tuple[IndexEntry, ...] = ()
    notes: tuple[str, ...] = ()


class _Tally:
    """What the runs of one write moved, summed."""

    def __init__(self, steps: Sequence[BlobStep] = ()) -> None:
        self.blobs = dict.fromkeys(_OUTCOMES, 0)
        self.bytes = dict.fromkeys(_OUTCOMES, 0)
        self.manifests = 0
        self.steps: list[BlobStep] = list(steps)
        self.referrers: list[str] = []

    def add(self, run: Run, steps: Sequence[BlobStep]) -> None:
        self.steps.extend(steps)
        for outcome in _OUTCOMES:
            self.blobs[outcome] += run.tally.blobs[outcome]
            self.bytes[outcome] += run.tally.bytes[outcome]
        self.manifests += run.manifests
        self.referrers.extend(run.referrers)


_OUTCOMES = ("mounted", "streamed", "skipped")


def write(
    client: Client,
    target: Repository | Missing,
    parts: Sequence[Part],
    plan: Plan,
    opts: IndexOptions,
    current: Current | None = None,
) -> IndexResult:
    """Children (blobs, then manifests by digest), then the index by digest and under the
    tag, last; in a dry run, only the plan."""
    index = plan.index
    if target.digest and not matches(index.raw, target.digest):
        raise DigestMismatch(f"destination {target.name}", target.digest, index.digest)
    if isinstance(target, Missing):  # a dry run into a layout not made yet
        steps = [BlobStep(d, BlobAction.STREAM) for p in parts for d in _blobs(p, opts)]
        return _result(target, plan, None, opts, _Tally(steps))
    back = current is not None and current.back
    if current is not None and back:
        previous: str | None = current.manifest.digest
    else:
        previous = target.head(target.tag) if target.tag else None
    if previous is not None and matches(index.raw, previous):
        return _result(target, plan, previous, opts, _Tally(), up_to_date=True)
    tally = _Tally()
    copy_opts = CopyOptions(
        jobs=opts.jobs,
        include_foreign=opts.include_foreign,
        referrers=opts.referrers,
        progress=opts.progress,
    )
    with workers(opts.jobs) as (pool, cancel):
        for part in parts:
            source = part.graph.source
            run = Run(client, source, Destination(target, source), copy_opts, pool, cancel)
            tally.add(run, _bring(run, part, dry_run=opts.dry_run))
    if not opts.dry_run:
        _put_index(target, index, previous, back)
        tally.manifests += 1
    return _result(target, plan, previous, opts, tally)


def _blobs(part: Part, opts: IndexOptions) -> list[Descriptor]:
    return part.graph.blobs(opts.include_foreign)


def _put_index(target: Repository, index: Manifest, previous: str | None, back: bool) -> None:
    """The index under the target's tag (by digest when it has none). Written back over
    the index it changes only if that tag has not moved meanwhile (a registry that honours
    conditional requests, a layout checked just before)."""
    tag = target.tag
    if back and tag:
        if not target.replace_manifest(tag, index, previous):
            raise PreconditionFailed(
                f"{target.name}{suffix(tag)} changed while it was being updated; not tagged"
            )
        return
    target.put_manifest(index, [tag] if tag else [], listed=True)


def _bring(run: Run, part: Part, *, dry_run: bool) -> tuple[BlobStep, ...]:
    """One source's blobs, then its manifests by digest and, as asked, its referrers, at
    the run's destination; return the blob steps (planned only, in a dry run)."""
    steps = run.plan(part.graph)
    if dry_run:
        return steps
    done = run.copy_blobs(steps)
    target, source = run.writer.repo, part.graph.source
    if target.same_repository(source):
        return done
    for manifest in part.manifests:
        looked = time.monotonic()
        if not target.has_manifest(manifest.digest):
            run.manifests += run.put_child(manifest, looked)
    if run.opts.referrers:
        run.copy_referrers(part.graph)
    return done


def _result(
    target: Repository | Missing,
    plan: Plan,
    previous: str | None,
    opts: IndexOptions,
    tally: _Tally,
    *,
    up_to_date: bool = False,
) -> IndexResult:
    tag = target.tag
    return IndexResult(
        destination=f"{target.name}{suffix(tag or target.digest)}",
        index=plan.index,
        entries=tuple(i.entry for i in plan.items),
        tags=(tag,) if tag else (),
        previous=previous,
        dry_run=opts.dry_run,
        up_to_date=up_to_date,
        added=plan.added,
        replaced=plan.replaced,
        removed=plan.removed,
        blobs=tally.blobs,
        bytes=tally.bytes,
        manifests=tally.manifests,
        steps=tuple(tally.steps),
        referrers=tuple(tally.referrers),
        notes=plan.notes,
    )
