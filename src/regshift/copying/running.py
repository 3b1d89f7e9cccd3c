"""Running a copy: the worker pool and cancellation, one destination, one source -> destination run.

A :class:`Run` plans (skip / mount / stream per blob, existence checks in parallel), moves
the blobs on the pool, writes the child manifests, referrers and cosign digest tags, and
reports a :class:`CopyResult`. Progress events are serialised under one lock.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TypeVar

from ..client import Client
from ..digests import DigestVerifier
from ..errors import APIError
from ..graph import ImageGraph, resolve, suffix
from ..manifests import Descriptor, Manifest
from ..mediatypes import is_foreign
from ..progress import ProgressEvent, ProgressState
from ..storage import BlobMounter, ChunkedUploads, Repository
from .options import BlobAction, BlobStep, CopyOptions, CopyResult, MiB
from .uploading import Uploader
from .workers import Cancel

T = TypeVar("T")

# Progress callbacks run one at a time, whichever worker thread reports (see CopyOptions).
_PROGRESS_LOCK = threading.Lock()

_OUTCOMES = ("mounted", "streamed", "skipped")
_COSIGN_SUFFIXES = ("sig", "att", "sbom")


@dataclass
class Tally:
    """Thread-safe counters for one destination."""

    blobs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_OUTCOMES, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_OUTCOMES, 0))
    resent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: str, size: int) -> None:
        with self.lock:
            self.blobs[outcome] += 1
            self.bytes[outcome] += size

    def add_resent(self, size: int) -> None:
        with self.lock:
            self.resent += size


class Destination:
    """Where one copy writes: a repository at the tag (or digest) to write, and how a
    missing blob gets there (a mount within one registry, else a stream)."""

    def __init__(self, repo: Repository, source: Repository) -> None:
        self.repo, self.source = repo, source
        self.name, self.tag, self.digest = repo.name, repo.tag, repo.digest
        self._move: BlobAction | None = None
        self.uploader = Uploader(repo) if isinstance(repo, ChunkedUploads) else None

    @property
    def move(self) -> BlobAction:
        """MOUNT when the destination can take blobs from the source without moving them
        (one registry, one credential for both repositories), else STREAM. Decided when
        the plan is made, after the destination was asked for its blobs: a registry that
        never asked for credentials by then has none resolved."""
        if self._move is None:
            mount = isinstance(self.repo, BlobMounter) and self.repo.can_mount_from(self.source)
            self._move = BlobAction.MOUNT if mount else BlobAction.STREAM
        return self._move

    def current_digest(self) -> str | None:
        """What the destination tag points at now, or None."""
        return self.repo.head(self.tag) if self.tag is not None else None

    def has_blob(self, desc: Descriptor) -> bool:
        return self.repo.has_blob(desc)

    def has_manifest(self, digest: str) -> bool:
        return self.repo.has_manifest(digest)

    def transfer(self, run: Run, desc: Descriptor, action: BlobAction, looked: float) -> str:
        """Bring one missing blob over; return the outcome: ``mounted``, ``streamed``, or
        ``skipped`` when another unit of this process placed it here meanwhile.

        One transfer per registry repository and blob at a time (the client's
        :class:`~regshift.inflight.InFlight`): a unit needing a blob that another unit is
        sending here waits for it and then counts it as skipped; if that transfer failed,
        it sends the blob itself. ``looked``: when the destination was asked for the blob
        (:func:`time.monotonic`); a transfer done here before then is done again.
        """
        key = self.key(desc.digest)
        if key is None:  # a layout: blobs land by rename, each write whole
            return self._transfer(run, desc, action)
        work = lambda: self._transfer(run, desc, action)  # noqa: E731
        done = run.client.inflight.once(key, work, looked=looked, check=run.cancel.check)
        return "skipped" if done is None else done

    def key(self, digest: str, kind: str = "blob") -> Hashable | None:
        """What :class:`~regshift.inflight.InFlight` knows a transfer here by (None for a
        layout)."""
        endpoint = self.repo.endpoint
        return None if endpoint is None else (kind, endpoint, self.name, digest)

    def _transfer(self, run: Run, desc: Descriptor, action: BlobAction) -> str:
        if self.uploader is not None:
            return self.uploader.transfer(run, desc, action, self.source)
        with run.chunks(desc) as chunks:
            self.repo.write_blob(desc, chunks)
        return "streamed"

    def put_child(self, manifest: Manifest) -> None:
        """A manifest below the top one (or written before its referrers): by digest."""
        self.repo.put_manifest(manifest)

    def put_top(self, manifest: Manifest) -> None:
        self.repo.put_manifest(manifest, [self.tag] if self.tag else [], listed=True)

    def attach(self, manifest: Manifest) -> int:
        """Store a referrer and make it listable under its subject; return the manifests
        written (the referrer, and each write of its subject's fallback index)."""
        return 1 + self.repo.attach(manifest).writes

    def retagged(self, tag: str) -> Destination:
        """The same destination, at another tag."""
        return Destination(self.repo.at(tag), self.source)


class Run:
    """One source -> destination copy: plan, blobs, manifests, result."""

    def __init__(
        self,
        client: Client,
        source: Repository,
        writer: Destination,
        opts: CopyOptions,
        pool: ThreadPoolExecutor,
        cancel: Cancel,
    ) -> None:
        self.client, self.source, self.writer = client, source, writer
        self.opts, self.pool, self.cancel = opts, pool, cancel
        self.tally = Tally()
        self.referrers: list[str] = []  # copied in this run
        self.seen_referrers: list[str] = []  # every referrer found, copied now or before
        self.digest_tags: list[str] = []
        self.manifests = 0  # manifest writes at the destination (CopyResult.manifests)
        self.children: dict[str, Manifest] = {}  # manifests below those written, by digest
        self.started = time.monotonic()
        self.looked = self.started  # when the destination was last asked for the blobs
        self.start_requests = self._requests()
        self.start_retries = self._retries()

    def _requests(self) -> int:
        """Requests sent through the client (none for layouts at both ends)."""
        return self.client.requests

    def _retries(self) -> int:
        return self.client.stats.retries

    def emit(
        self, desc: Descriptor, state: ProgressState, done: int = 0, kind: str = "blob"
    ) -> None:
        event = ProgressEvent(kind, desc.digest, state, done, desc.size, self.writer.name)
        with _PROGRESS_LOCK:
            self.opts.progress(event)

    def plan(self, graph: ImageGraph) -> tuple[BlobStep, ...]:
        """Decide skip / mount / stream per blob (existence checks run concurrently)."""
        blobs = graph.blobs(self.opts.include_foreign)
        if self._same_repository():
            return tuple(BlobStep(d, BlobAction.SKIP) for d in blobs) + self._foreign(graph)
        self.looked = time.monotonic()
        present = list(self.pool.map(self.writer.has_blob, blobs))
        steps = [
            BlobStep(d, BlobAction.SKIP if p else self.writer.move)
            for d, p in zip(blobs, present, strict=True)
        ]
        return tuple(steps) + self._foreign(graph)

    def plan_and_copy(self, graph: ImageGraph) -> tuple[BlobStep, ...]:
        """:meth:`plan` then :meth:`copy_blobs`, pipelined: each blob is looked up and then
        moved by one task, so transfers start while other blobs are still being looked up
        (a whole plan first leaves the source idle while the destination answers HEADs)."""
        if self._same_repository():
            return self.copy_blobs(self.plan(graph))
        blobs = graph.blobs(self.opts.include_foreign)
        futures = [self.pool.submit(self._look_then_run, desc) for desc in blobs]
        return self._gather(futures) + self._foreign(graph)

    def _foreign(self, graph: ImageGraph) -> tuple[BlobStep, ...]:
        if self.opts.include_foreign:
            return ()
        return tuple(BlobStep(d, BlobAction.FOREIGN) for d in graph.foreign())

    def _same_repository(self) -> bool:
        return self.writer.repo.same_repository(self.source)

    def copy_blobs(self, steps: tuple[BlobStep, ...]) -> tuple[BlobStep, ...]:
        """Run the plan; return the steps with their outcomes."""
        return self._gather([self.pool.submit(self._run_step, step) for step in steps])

    def _gather(self, futures: list[Future[BlobStep]]) -> tuple[BlobStep, ...]:
        """The steps the tasks return, in order.

        The first failure stops the other transfers at their next chunk (and the ones not
        started yet) and is raised at once, not after every blob before it in the plan.
        """
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            error = future.exception()
            if error is not None:
                self.cancel.set()
                for other in futures:
                    other.cancel()
                raise error
        return tuple(f.result() for f in futures)

    def _look_then_run(self, desc: Descriptor) -> BlobStep:
        self.cancel.check()
        looked = time.monotonic()
        present = self.writer.has_blob(desc)
        return self._run_step(
            BlobStep(desc, BlobAction.SKIP if present else self.writer.move), looked
        )

    def _run_step(self, step: BlobStep, looked: float | None = None) -> BlobStep:
        self.cancel.check()
        desc = step.descriptor
        if step.action is BlobAction.FOREIGN:
            return step
        if step.action is BlobAction.SKIP:
            outcome = "skipped"
        else:
            when = self.looked if looked is None else looked
            outcome = self.writer.transfer(self, desc, step.action, when)
        self.tally.add(outcome, desc.size)
        state = {"skipped": ProgressState.SKIPPED, "mounted": ProgressState.MOUNTED}
        self.emit(desc, state.get(outcome, ProgressState.DONE), desc.size)
        return replace(step, outcome=outcome)

    @contextlib.contextmanager
    def chunks(self, desc: Descriptor) -> Iterator[Iterator[bytes]]:
        """The source blob as verified chunks, with progress and Ctrl-C checks."""
        self.emit(desc, ProgressState.STARTED)
        with self.source.open_blob(desc) as raw:
            progress = lambda done: self.emit(desc, ProgressState.PROGRESS, done)  # noqa: E731
            counted = source_chunks(raw, progress, self.cancel)
            yield verified(
                counted, DigestVerifier(desc.digest, desc.size, what=f"blob {desc.digest}")
            )

    def put_children(self, graph: ImageGraph) -> int:
        """The manifests below the top one, by digest, skipping those already there."""
        children = [] if self._same_repository() else graph.children()
        self.children.update((m.digest, m) for m in children)
        looked = time.monotonic()
        missing = [m for m in children if not self.writer.has_manifest(m.digest)]
        written = sum(self.put_child(m, looked) for m in missing)
        self.manifests += written
        return written

    def put_child(self, manifest: Manifest, looked: float) -> bool:
        """PUT one manifest by digest (through :meth:`placed`), unless another unit of this
        process is writing it here, or wrote it since ``looked`` (when the destination was
        found without it); return whether this run wrote it."""
        key = self.writer.key(manifest.digest, "manifest")

        def put() -> bool:
            self.placed(manifest, lambda: self.writer.put_child(manifest))
            self.emit(manifest.descriptor(), ProgressState.WRITTEN, kind="manifest")
            return True

        if key is None:
            return put()
        return bool(self.client.inflight.once(key, put, looked=looked, check=self.cancel.check))

    def placed(self, manifest: Manifest, write: Callable[[], T]) -> T:
        """``write`` a manifest whose blobs (or children) were placed; a refusal naming a
        missing one is retried once, after each was checked and any missing placed again.

        CNCF distribution's filesystem driver rewrites a repository's blob link file
        non-atomically (truncate, then write) on every upload or mount of that blob: when
        another process (a second shard, another tool) sends one of these blobs at the same
        moment, the PUT reads an empty link and is refused with 400 MANIFEST_BLOB_UNKNOWN
        (or DIGEST_INVALID: the empty link is no digest). Within one process
        :meth:`Destination.transfer` sends each blob once, so this is the other processes'.
        """
        return self.client.retry_policy.run(
            write,
            retry_on=_blob_unknown,
            before_retry=lambda _: self._replace_missing(manifest),
            tries=2,
            stop=self.cancel.event,
            on_retry=self.client.on_retry(f"manifest {manifest.digest}"),
        )

    def _replace_missing(self, manifest: Manifest) -> None:
        """HEAD what ``manifest`` needs at the destination; place again what is missing."""
        foreign = not self.opts.include_foreign
        blobs = [d for d in manifest.blobs() if not (foreign and is_foreign(d.media_type))]
        looked = time.monotonic()
        missing = [d for d in blobs if not self.writer.has_blob(d)]
        for desc in missing:
            outcome = self.writer.transfer(self, desc, self.writer.move, looked)
            if outcome == "streamed":
                self.tally.add_resent(desc.size)
        for child in manifest.manifests:
            known = self.children.get(child.digest)
            if known is not None and not self.writer.has_manifest(child.digest):
                self.writer.put_child(known)

    def _copy_artifact(self, digest_or_tag: str) -> ImageGraph:
        """Blobs and child manifests of one more manifest (a referrer or a digest tag)."""
        graph = resolve(self.source, digest_or_tag)
        self.copy_blobs(self.plan(graph))
        self.put_children(graph)
        return graph

    def copy_referrers(self, graph: ImageGraph) -> None:
        """Referrers of every copied manifest, and theirs (a signature of an SBOM), once each."""
        subjects = list(dict.fromkeys([graph.top.digest, *(m.digest for m in graph.images)]))
        seen, queue = set(subjects), list(subjects)
        while queue:
            for desc in self.source.list_referrers(queue.pop(0)):
                if desc.digest in seen:
                    continue
                seen.add(desc.digest)
                queue.append(desc.digest)  # its own referrers (a signature of an SBOM)
                self.seen_referrers.append(desc.digest)
                if self.writer.has_manifest(desc.digest):
                    # Copied before: list it again (attaching is idempotent), in case the
                    # earlier run stored it but failed to update the listing.
                    self.manifests += self.writer.attach(self.source.get_manifest(desc.digest))
                    continue
                artifact = self._copy_artifact(desc.digest)
                self.manifests += self.placed(
                    artifact.top, partial(self.writer.attach, artifact.top)
                )
                self.emit(artifact.top.descriptor(), ProgressState.WRITTEN, kind="referrer")
                self.referrers.append(desc.digest)

    def copy_digest_tags(self, graph: ImageGraph) -> None:
        """The legacy cosign tags ``sha256-<hex>.sig/.att/.sbom`` of every copied manifest."""
        digests = {graph.top.digest, *(m.digest for m in graph.images), *self.seen_referrers}
        wanted = {f"{d.replace(':', '-')}.{kind}" for d in digests for kind in _COSIGN_SUFFIXES}
        for tag in (t for t in self.source.list_tags() if t in wanted):
            target = self.writer.retagged(tag)
            current = target.current_digest()
            if current is not None and self.source.head(tag) == current:
                continue  # copied before and unchanged since
            artifact = self._copy_artifact(tag)
            self.placed(artifact.top, partial(target.put_top, artifact.top))
            self.manifests += 1
            self.emit(artifact.top.descriptor(), ProgressState.WRITTEN, kind="tag")
            self.digest_tags.append(tag)

    def result(
        self,
        top: Descriptor,
        previous: str | None,
        *,
        steps: tuple[BlobStep, ...],
        up_to_date: bool = False,
        notes: tuple[str, ...] = (),
    ) -> CopyResult:
        """What this run did; ``top`` is the manifest the destination now has (its media
        type empty when only its digest was compared)."""
        tag = self.writer.tag
        return CopyResult(
            source=f"{self.source.name}{suffix(self.source.identifier)}",
            destination=f"{self.writer.name}{suffix(tag or self.writer.digest)}",
            digest=top.digest,
            media_type=top.media_type,
            tags=(tag,) if tag else (),
            previous=previous,
            blobs=dict(self.tally.blobs),
            bytes=dict(self.tally.bytes),
            manifests=self.manifests,
            requests=self._requests() - self.start_requests,
            seconds=time.monotonic() - self.started,
            dry_run=self.opts.dry_run,
            up_to_date=up_to_date,
            steps=steps,
            notes=notes,
            resent_bytes=self.tally.resent,
            referrers=tuple(self.referrers),
            digest_tags=tuple(self.digest_tags),
            retries=self._retries() - self.start_retries,
        )


def _blob_unknown(exc: Exception) -> bool:
    """A manifest PUT refused because the registry did not find one of its blobs (or
    children): distribution answers 400 MANIFEST_BLOB_UNKNOWN, or DIGEST_INVALID when the
    blob's link file was empty as it read it (see :meth:`Run.placed`)."""
    if not isinstance(exc, APIError) or exc.status != 400:
        return False
    return bool({"MANIFEST_BLOB_UNKNOWN", "DIGEST_INVALID"} & set(exc.codes))


def source_chunks(
    chunks: Iterable[bytes], progress: Callable[[int], None], cancel: Cancel
) -> Iterator[bytes]:
    """Pass chunks through, reporting bytes read (at most every 4 MiB), stopping on cancel."""
    done = reported = 0
    for chunk in chunks:
        cancel.check()
        done += len(chunk)
        if done - reported >= 4 * MiB:
            progress(done)
            reported = done
        yield chunk
    progress(done)


def verified(chunks: Iterable[bytes], verifier: DigestVerifier) -> Iterator[bytes]:
    """Yield chunks while hashing them; the last chunk is held back until the digest checks.

    So a corrupted or truncated blob raises :class:`DigestMismatch` before its final bytes
    reach the destination, and the upload can never be committed.
    """
    held: bytes | None = None
    for chunk in chunks:
        if not chunk:
            continue
        verifier.update(chunk)
        if held is not None:
            yield held
        held = chunk
    verifier.verify()
    if held is not None:
        yield held
