"""Copy images between repositories and registries, moving as few bytes as possible.

The source is resolved once into an :class:`ImageGraph` (every manifest's exact bytes); each
destination then gets, in dependency order:

1. blobs: HEAD to skip what exists; on the same registry a cross-repository mount (no bytes
   move); otherwise a stream GET -> upload through bounded memory, hashed on the way and
   refused before commit if the digest or size is wrong;
2. child manifests by digest (for an index);
3. the top manifest under the tag, last, so a tag never points at something incomplete.

Blobs above ``chunked_threshold`` go up in ``chunk_size`` PATCHes; a dropped PATCH is resumed
from the offset the registry reports, so at most one chunk is sent twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum

from .client import Client
from .digest import DigestVerifier
from .errors import APIError, DigestMismatch, RegistryError, TransportError, Unauthorized
from .manifest import Descriptor, Manifest, Platform, parse_manifest
from .mediatypes import is_foreign
from .progress import ProgressCallback, ProgressEvent, ProgressState, ignore
from .reference import Reference, parse_reference, parse_repository

log = logging.getLogger(__name__)

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyOptions:
    """How to copy.

    Attributes:
        platforms: copy only these platforms of an index (empty: all, digest preserved).
        jobs: blobs transferred at once.
        dry_run: plan only; write nothing.
        include_foreign: also copy non-distributable (foreign) layers.
        force: copy even when the destination tag already has the source digest.
        chunk_size: bytes per PATCH for chunked uploads (also the most re-sent on resume).
        chunked_threshold: blobs larger than this are uploaded in chunks.
        attempts: tries per blob before the copy fails (resumes do not count).
        progress: receives :class:`ProgressEvent` s (from worker threads).
    """

    platforms: tuple[Platform, ...] = ()
    jobs: int = 4
    dry_run: bool = False
    include_foreign: bool = False
    force: bool = False
    chunk_size: int = 16 * MiB
    chunked_threshold: int = 128 * MiB
    attempts: int = 3
    progress: ProgressCallback = ignore


class BlobAction(StrEnum):
    """What a copy does (or, in a dry run, would do) with one blob."""

    SKIP = "skip"
    MOUNT = "mount"
    STREAM = "stream"
    FOREIGN = "foreign"  # non-distributable layer, not copied


@dataclass(frozen=True, slots=True)
class BlobStep:
    """One blob of the plan and what happened to it (``outcome`` is set after the copy)."""

    descriptor: Descriptor
    action: BlobAction
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class ImageGraph:
    """A resolved source: the top manifest and every image manifest below it, as raw bytes."""

    source: Reference
    top: Manifest
    images: tuple[Manifest, ...]
    derived: bool = False  # the top manifest was built by regshift (platform filter)

    def blobs(self, include_foreign: bool) -> list[Descriptor]:
        """Every blob of every image once, config first; foreign layers only on request."""
        seen: dict[str, Descriptor] = {}
        for image in self.images:
            for desc in image.blobs():
                if include_foreign or not is_foreign(desc.media_type):
                    seen.setdefault(desc.digest, desc)
        return list(seen.values())

    def foreign(self) -> list[Descriptor]:
        """The non-distributable layers."""
        return [d for i in self.images for d in i.layers if is_foreign(d.media_type)]

    def children(self) -> list[Manifest]:
        """Manifests to PUT by digest before the top one (the images of an index)."""
        return [m for m in self.images if m.digest != self.top.digest]


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What one ``copy`` to one destination did.

    ``blobs`` and ``bytes`` count by outcome: ``mounted``, ``streamed``, ``skipped``.
    """

    source: Reference
    destination: Reference
    digest: str
    media_type: str
    tags: tuple[str, ...]
    previous: str | None
    blobs: dict[str, int]
    bytes: dict[str, int]
    manifests: int
    requests: int
    seconds: float
    dry_run: bool = False
    up_to_date: bool = False
    steps: tuple[BlobStep, ...] = ()
    notes: tuple[str, ...] = ()
    resent_bytes: int = 0


_OUTCOMES = ("mounted", "streamed", "skipped")


@dataclass
class _Tally:
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


class _Restart(Exception):
    """The upload session is gone; the blob must be sent again from the start."""


class _Cancelled(Exception):
    """The copy was interrupted (Ctrl-C): workers stop at their next chunk."""


class _Cancel:
    """A flag the main thread raises and workers check between chunks."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def check(self) -> None:
        if self._event.is_set():
            raise _Cancelled


@contextlib.contextmanager
def _workers(jobs: int) -> Iterator[tuple[ThreadPoolExecutor, _Cancel]]:
    """A thread pool that, on Ctrl-C or any error, tells its workers to stop, then waits."""
    cancel = _Cancel()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="regshift")
    try:
        yield pool, cancel
    except BaseException:
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


# -- resolving the source ----------------------------------------------------------------


def resolve(
    client: Client,
    source: Reference,
    platforms: Sequence[Platform] = (),
    *,
    scopes: Sequence[str] = (),
) -> ImageGraph:
    """Fetch the source manifest and, for an index, every child manifest (exact bytes).

    With ``platforms``: one match makes that image the top manifest; several make a new
    index of just those (its digest differs from the source's).

    Raises:
        NotFound: the source, or a platform asked for, does not exist.
    """
    top = client.get_manifest(source, scopes=scopes)
    if not top.is_index:
        return ImageGraph(source, top, (top,))
    entries = _select(top, platforms, source)
    images = tuple(_child(client, source, d, scopes) for d in entries)
    if not platforms:
        return ImageGraph(source, top, images)
    if len(images) == 1:
        return ImageGraph(source, images[0], images, derived=True)
    return ImageGraph(source, _sub_index(top, entries), images, derived=True)


def _select(index: Manifest, platforms: Sequence[Platform], source: Reference) -> list[Descriptor]:
    entries = [d for d in index.manifests if d.media_type != "" and _is_image_entry(d)]
    if not platforms:
        return entries
    chosen = [d for d in entries if d.platform and any(d.platform.matches(p) for p in platforms)]
    if not chosen:
        from .errors import NotFound

        have = ", ".join(str(d.platform) for d in entries if d.platform) or "none"
        raise NotFound(
            status=404,
            method="GET",
            url=str(source),
            text=f"no platform matches {', '.join(map(str, platforms))} (has: {have})",
        )
    return chosen


def _is_image_entry(desc: Descriptor) -> bool:
    from .mediatypes import is_manifest

    return is_manifest(desc.media_type)


def _child(client: Client, source: Reference, desc: Descriptor, scopes: Sequence[str]) -> Manifest:
    child = client.get_manifest(source.repo_only().with_digest(desc.digest), scopes=scopes)
    if child.is_index:
        raise RegistryError(f"{source}: nested index {desc.digest} is not supported")
    return child


def _sub_index(index: Manifest, entries: list[Descriptor]) -> Manifest:
    """A new index holding ``entries``, raw JSON copied from the source entries' fields."""
    original = json.loads(index.raw)
    by_digest = {m["digest"]: m for m in original.get("manifests", []) if isinstance(m, dict)}
    doc = {
        "schemaVersion": 2,
        "mediaType": index.media_type,
        "manifests": [by_digest[d.digest] for d in entries],
    }
    raw = (json.dumps(doc, indent=2) + "\n").encode()
    return parse_manifest(raw)


# -- copying -----------------------------------------------------------------------------


def copy(
    client: Client,
    source: str | Reference,
    destinations: Sequence[str | Reference],
    *,
    options: CopyOptions | None = None,
) -> list[CopyResult]:
    """Copy ``source`` to every destination, resolving the source only once.

    A destination without tag or digest takes the source's tag (or digest).

    Raises:
        RegistryError: the copy failed; no tag was written for a failed destination.
    """
    opts = options or CopyOptions()
    src = parse_reference(source) if isinstance(source, str) else source
    dsts = [_destination(d, src) for d in destinations]
    graph = resolve(client, src, opts.platforms, scopes=operation_scopes(src, dsts)[src.endpoint])
    with _workers(opts.jobs) as (pool, cancel):
        return [_copy_one(client, graph, dst, opts, pool, cancel) for dst in dsts]


def operation_scopes(src: Reference, dsts: Sequence[Reference]) -> dict[str, list[str]]:
    """Token scopes per registry for a whole copy, so each registry issues one token.

    The source gets pull; each destination pull,push. On a shared registry the token also
    carries the source pull scope, which a cross-repository mount needs.
    """
    scopes: dict[str, list[str]] = {src.endpoint: [src.scope("pull")]}
    for dst in dsts:
        scopes.setdefault(dst.endpoint, []).append(dst.scope("pull,push"))
    return scopes


def _destination(text: str | Reference, src: Reference) -> Reference:
    dst = parse_reference(text, default_tag=None) if isinstance(text, str) else text
    if dst.tag is None and dst.digest is None:
        return replace(dst, tag=src.tag) if src.tag else dst.with_digest(src.digest or "")
    return dst


def _copy_one(
    client: Client,
    graph: ImageGraph,
    dst: Reference,
    opts: CopyOptions,
    pool: ThreadPoolExecutor,
    cancel: _Cancel,
    previous: tuple[str | None] | None = None,
) -> CopyResult:
    """Copy a resolved graph to one destination; ``previous`` is its tag's digest if known."""
    start_time, start_requests = time.monotonic(), client.requests
    ctx = _Context(client, graph.source, dst, opts, pool, cancel)
    before = previous[0] if previous is not None else ctx.current_digest()
    if before == graph.top.digest and not opts.force:
        return ctx.result(graph, before, start_time, start_requests, up_to_date=True, steps=())
    if dst.digest and dst.digest != graph.top.digest:
        raise DigestMismatch(f"destination {dst}", dst.digest, graph.top.digest)
    steps = ctx.plan(graph)
    if opts.dry_run:
        return ctx.result(graph, before, start_time, start_requests, steps=steps)
    done = ctx.copy_blobs(steps)
    written = ctx.put_manifests(graph)
    return ctx.result(graph, before, start_time, start_requests, steps=done, manifests=written)


class _Context:
    """Everything one source -> destination copy needs; methods are the copy's steps."""

    def __init__(
        self,
        client: Client,
        src: Reference,
        dst: Reference,
        opts: CopyOptions,
        pool: ThreadPoolExecutor,
        cancel: _Cancel,
    ) -> None:
        self.client, self.src, self.dst, self.opts, self.pool = client, src, dst, opts, pool
        self._cancel = cancel
        self.same_registry = src.endpoint == dst.endpoint
        self.same_repository = self.same_registry and src.repository == dst.repository
        self.tally = _Tally()
        self.chunked = False  # set once the destination refused a monolithic upload (413)
        scopes = operation_scopes(src, [dst])
        self.dst_scopes = scopes[dst.endpoint]
        self.src_scopes = scopes[src.endpoint]

    def emit(
        self, desc: Descriptor, state: ProgressState, done: int = 0, kind: str = "blob"
    ) -> None:
        self.opts.progress(
            ProgressEvent(kind, desc.digest, state, done, desc.size, destination=self.dst.name)
        )

    def current_digest(self) -> str | None:
        """What the destination tag points at now (one HEAD), or None."""
        if self.dst.tag is None:
            return None
        head = self.client.head_manifest(
            self.dst.repo_only().with_tag(self.dst.tag), scopes=self.dst_scopes
        )
        return head.digest if head else None

    # -- plan -----------------------------------------------------------------------------

    def plan(self, graph: ImageGraph) -> tuple[BlobStep, ...]:
        """Decide skip / mount / stream per blob (HEADs run concurrently)."""
        blobs = graph.blobs(self.opts.include_foreign)
        foreign = [
            BlobStep(d, BlobAction.FOREIGN)
            for d in graph.foreign()
            if not self.opts.include_foreign
        ]
        if self.same_repository:
            return tuple(BlobStep(d, BlobAction.SKIP) for d in blobs) + tuple(foreign)
        present = list(self.pool.map(self._exists, blobs))
        move = BlobAction.MOUNT if self.same_registry else BlobAction.STREAM
        steps = [
            BlobStep(d, BlobAction.SKIP if p else move) for d, p in zip(blobs, present, strict=True)
        ]
        return tuple(steps) + tuple(foreign)

    def _exists(self, desc: Descriptor) -> bool:
        return self.client.blob_exists(self.dst, desc.digest, scopes=self.dst_scopes)

    # -- blobs ----------------------------------------------------------------------------

    def copy_blobs(self, steps: tuple[BlobStep, ...]) -> tuple[BlobStep, ...]:
        """Run the plan; return the steps with their outcomes."""
        return tuple(self.pool.map(self._run_step, steps))

    def _run_step(self, step: BlobStep) -> BlobStep:
        self._cancel.check()
        desc = step.descriptor
        if step.action is BlobAction.FOREIGN:
            return step
        if step.action is BlobAction.SKIP:
            self.tally.add("skipped", desc.size)
            self.emit(desc, ProgressState.SKIPPED, desc.size)
            return replace(step, outcome="skipped")
        location = None
        if step.action is BlobAction.MOUNT:
            mounted, location = self._mount(desc)
            if mounted:
                self.tally.add("mounted", desc.size)
                self.emit(desc, ProgressState.MOUNTED, desc.size)
                return replace(step, outcome="mounted")
        self._stream_with_retries(desc, location)
        self.tally.add("streamed", desc.size)
        self.emit(desc, ProgressState.DONE, desc.size)
        return replace(step, outcome="streamed")

    def _mount(self, desc: Descriptor) -> tuple[bool, str | None]:
        """Try a cross-repository mount: (True, None), or (False, session to upload into)."""
        try:
            start = self.client.start_upload(
                self.dst,
                mount=desc.digest,
                from_repository=self.src.repository,
                scopes=self.dst_scopes,
            )
        except APIError as exc:
            # Some registries answer a refused mount with an error instead of 202 (Harbor:
            # 401 for an unknown source project, goharbor/harbor#17097): upload instead.
            log.info("mount of %s refused (%s); uploading", desc.digest, exc)
            return False, None
        return start.mounted, start.location

    def _stream_with_retries(self, desc: Descriptor, location: str | None) -> None:
        """Stream one blob; on a transient failure restart it (a fresh session, a fresh GET)."""
        for attempt in range(1, self.opts.attempts + 1):
            try:
                if location is None:
                    location = self.client.start_upload(self.dst, scopes=self.dst_scopes).location
                assert location is not None
                self._stream(desc, location)
                return
            except DigestMismatch:
                self._abandon(location)
                raise
            except (TransportError, _Restart, APIError) as exc:
                self._abandon(location)
                location = None
                if not self._may_restart(exc, attempt):
                    raise
                if self._exists(desc):  # the commit landed; only its answer was lost
                    return
                log.info("blob %s: attempt %d failed (%s); restarting", desc.digest, attempt, exc)
                self.emit(desc, ProgressState.RETRYING)
                self._cancel.check()
                if isinstance(exc, APIError) and exc.retry_after:
                    time.sleep(min(exc.retry_after, self.client.options.transport.max_retry_after))

    def _may_restart(self, exc: Exception, attempt: int) -> bool:
        if isinstance(exc, APIError) and exc.status == 413 and not self.chunked:
            # The registry (or a proxy in front of it) caps request bodies: use chunks.
            log.info("monolithic upload refused (413); switching to chunked uploads")
            self.chunked = True
            return True
        if attempt >= self.opts.attempts:
            return False
        # 401 mid-stream: the token expired while a body that cannot be replayed was in
        # flight; the restart's first request re-authenticates.
        return not isinstance(exc, APIError) or exc.retryable or isinstance(exc, Unauthorized)

    def _abandon(self, location: str | None) -> None:
        if location is not None:
            self.client.cancel_upload(self.dst, location, scopes=self.dst_scopes)

    def _stream(self, desc: Descriptor, location: str) -> None:
        self.emit(desc, ProgressState.STARTED)
        with self.client.open_blob(self.src, desc.digest, scopes=self.src_scopes) as response:
            chunks = _source_chunks(response.iter_bytes(), self._progress_for(desc), self._cancel)
            verified = _verified(
                chunks, DigestVerifier(desc.digest, desc.size, what=f"blob {desc.digest}")
            )
            if self.chunked or desc.size > self.opts.chunked_threshold:
                self._chunked(desc, location, verified)
            else:
                self.client.finish_upload(
                    self.dst,
                    location,
                    desc.digest,
                    verified,
                    size=desc.size,
                    scopes=self.dst_scopes,
                )

    def _progress_for(self, desc: Descriptor) -> Callable[[int], None]:
        return lambda done: self.emit(desc, ProgressState.PROGRESS, done)

    def _chunked(self, desc: Descriptor, location: str, data: Iterator[bytes]) -> None:
        offset = 0
        for chunk in _rechunk(data, self.opts.chunk_size):
            location, offset = self._patch(location, chunk, offset)
        self.client.finish_upload(self.dst, location, desc.digest, b"", scopes=self.dst_scopes)

    def _patch(self, location: str, chunk: bytes, start: int) -> tuple[str, int]:
        """PATCH one chunk; after a dropped connection resume from the registry's offset."""
        sent_from = start
        for _ in range(self.opts.attempts + 1):
            try:
                status = self.client.patch_upload(
                    self.dst,
                    location,
                    chunk[sent_from - start :],
                    sent_from,
                    scopes=self.dst_scopes,
                )
                return status.location or location, status.offset
            except (TransportError, APIError) as exc:
                if isinstance(exc, APIError) and not exc.retryable:
                    raise
                resumed = self._resume_point(location, start, len(chunk))
                log.info("chunk at %d failed (%s); registry has %d bytes", start, exc, resumed[1])
                location, sent_from = resumed
                self.tally.add_resent(start + len(chunk) - sent_from)
        raise _Restart(f"chunk at offset {start} failed {self.opts.attempts + 1} times")

    def _resume_point(self, location: str, start: int, length: int) -> tuple[str, int]:
        try:
            status = self.client.upload_status(self.dst, location, scopes=self.dst_scopes)
        except RegistryError as exc:
            raise _Restart(f"upload session lost: {exc}") from None
        if not start <= status.offset <= start + length:
            raise _Restart(f"registry holds {status.offset} bytes, outside chunk at {start}")
        return status.location or location, status.offset

    # -- manifests ------------------------------------------------------------------------

    def put_manifests(self, graph: ImageGraph) -> int:
        """Children by digest (skipping present ones), then the top manifest under the tag."""
        repo = self.dst.repo_only()
        children = graph.children() if not self.same_repository else []
        missing = [m for m in children if not self._manifest_exists(repo.with_digest(m.digest))]
        for manifest in missing:
            self.client.put_manifest(
                repo.with_digest(manifest.digest), manifest, scopes=self.dst_scopes
            )
            self.emit(manifest.descriptor(), ProgressState.WRITTEN, kind="manifest")
        target = repo.with_tag(self.dst.tag) if self.dst.tag else repo.with_digest(graph.top.digest)
        self.client.put_manifest(target, graph.top, scopes=self.dst_scopes)
        self.emit(graph.top.descriptor(), ProgressState.WRITTEN, kind="manifest")
        return len(missing) + 1

    def _manifest_exists(self, ref: Reference) -> bool:
        return self.client.head_manifest(ref, scopes=self.dst_scopes) is not None

    def result(
        self,
        graph: ImageGraph,
        previous: str | None,
        start_time: float,
        start_requests: int,
        *,
        steps: tuple[BlobStep, ...],
        up_to_date: bool = False,
        manifests: int = 0,
    ) -> CopyResult:
        notes = _notes(graph, self.opts, steps)
        return CopyResult(
            source=self.src,
            destination=self.dst,
            digest=graph.top.digest,
            media_type=graph.top.media_type,
            tags=(self.dst.tag,) if self.dst.tag else (),
            previous=previous,
            blobs=dict(self.tally.blobs),
            bytes=dict(self.tally.bytes),
            manifests=manifests,
            requests=self.client.requests - start_requests,
            seconds=time.monotonic() - start_time,
            dry_run=self.opts.dry_run,
            up_to_date=up_to_date,
            steps=steps,
            notes=notes,
            resent_bytes=self.tally.resent,
        )


def _notes(graph: ImageGraph, opts: CopyOptions, steps: tuple[BlobStep, ...]) -> tuple[str, ...]:
    notes = []
    foreign = [s for s in steps if s.action is BlobAction.FOREIGN]
    if foreign:
        size = sum(s.descriptor.size for s in foreign)
        notes.append(
            f"{len(foreign)} foreign (non-distributable) layer(s), {size} bytes, not copied; "
            "use --include-foreign to copy them"
        )
    if graph.derived and graph.top.is_index:
        notes.append(
            f"copied {len(graph.images)} platforms as a new index: its digest {graph.top.digest} "
            f"differs from the source's"
        )
    elif graph.derived:
        notes.append(f"copied one platform: the destination is that image ({graph.top.digest})")
    return tuple(notes)


# -- streaming helpers -------------------------------------------------------------------


def _source_chunks(
    chunks: Iterable[bytes], progress: Callable[[int], None], cancel: _Cancel
) -> Iterator[bytes]:
    """Pass chunks through, reporting bytes read (at most every 4 MiB), stopping on cancel."""
    done = reported = 0
    try:
        for chunk in chunks:
            cancel.check()
            done += len(chunk)
            if done - reported >= 4 * MiB:
                progress(done)
                reported = done
            yield chunk
    except Exception as exc:
        import httpx

        if isinstance(exc, httpx.TransportError):
            raise TransportError(f"reading source blob: {exc}") from None
        raise
    progress(done)


def _verified(chunks: Iterable[bytes], verifier: DigestVerifier) -> Iterator[bytes]:
    """Yield chunks while hashing them; the last chunk is held back until the digest checks.

    So a corrupted or truncated blob raises :class:`DigestMismatch` before its final bytes
    reach the registry, and the upload can never be committed.
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


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup a stream into pieces of exactly ``size`` bytes (the last may be shorter)."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


# -- whole repositories ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepositoryCopyResult:
    """What ``copy --all-tags`` did, tag by tag."""

    source: Reference
    destination: Reference
    results: tuple[CopyResult, ...]
    excluded: tuple[str, ...]
    requests: int
    seconds: float


def copy_repository(
    client: Client,
    source: str | Reference,
    destination: str | Reference,
    *,
    include: str | None = None,
    exclude: str | None = None,
    options: CopyOptions | None = None,
) -> RepositoryCopyResult:
    """Copy every tag of a repository (filtered by regular expressions on the tag name).

    Tags whose destination already has the source digest cost one HEAD at each side.

    Raises:
        re.error: ``include`` or ``exclude`` is not a valid regular expression.
    """
    opts = options or CopyOptions()
    src = parse_repository(source) if isinstance(source, str) else source.repo_only()
    dst = parse_repository(destination) if isinstance(destination, str) else destination.repo_only()
    start_time, start_requests = time.monotonic(), client.requests
    chosen, excluded = _filter_tags(client.list_tags(src), include, exclude)
    results = []
    with _workers(opts.jobs) as (pool, cancel):
        for tag in chosen:
            results.append(
                _copy_tag(client, src.with_tag(tag), dst.with_tag(tag), opts, pool, cancel)
            )
    return RepositoryCopyResult(
        source=src,
        destination=dst,
        results=tuple(results),
        excluded=tuple(excluded),
        requests=client.requests - start_requests,
        seconds=time.monotonic() - start_time,
    )


def _filter_tags(
    tags: list[str], include: str | None, exclude: str | None
) -> tuple[list[str], list[str]]:
    inc = re.compile(include) if include else None
    exc = re.compile(exclude) if exclude else None
    chosen = [t for t in tags if (inc is None or inc.search(t)) and not (exc and exc.search(t))]
    return chosen, [t for t in tags if t not in chosen]


def _copy_tag(
    client: Client,
    src: Reference,
    dst: Reference,
    opts: CopyOptions,
    pool: ThreadPoolExecutor,
    cancel: _Cancel,
) -> CopyResult:
    """Copy one tag, checking the cheap way first: HEAD both sides, compare digests."""
    start_time, start_requests = time.monotonic(), client.requests
    ctx = _Context(client, src, dst, opts, pool, cancel)
    previous = ctx.current_digest()
    if not opts.force and not opts.platforms and previous is not None:
        src_head = client.head_manifest(src, scopes=ctx.src_scopes)
        if src_head is not None and src_head.digest == previous:
            top = Manifest(raw=b"", media_type=src_head.media_type, digest=previous)
            graph = ImageGraph(src, top, ())
            return ctx.result(
                graph, previous, start_time, start_requests, steps=(), up_to_date=True
            )
    graph = resolve(client, src, opts.platforms, scopes=ctx.src_scopes)
    return _copy_one(client, graph, dst, opts, pool, cancel, previous=(previous,))
