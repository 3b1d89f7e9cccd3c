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

Either side may be an OCI image layout (``oci:PATH[:TAG]``, see :mod:`regshift.store`): the
same plan, verification and ordering apply, with files instead of requests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from enum import StrEnum

from . import referrers
from .client import Client
from .digests import DigestVerifier, matches
from .errors import (
    APIError,
    DigestMismatch,
    ManifestError,
    NotFound,
    PlatformNotFound,
    RegistryError,
    TransportError,
    Unauthorized,
)
from .layout import is_layout_reference, parse_layout_reference
from .manifests import Descriptor, Manifest, Platform, parse_manifest
from .mediatypes import is_foreign, is_index, is_manifest
from .progress import ProgressCallback, ProgressEvent, ProgressState, ignore
from .reference import Reference, parse_reference, parse_repository
from .store import LayoutTarget, RegistrySource, Source, open_layout_target, open_source
from .transport import default_jobs

log = logging.getLogger(__name__)

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyOptions:
    """How to copy.

    Attributes:
        platforms: copy only these platforms of an index (empty, or every one: digest kept);
            :class:`Platform` s or strings such as ``"linux/arm64"`` (parsed with
            :meth:`Platform.parse`).
        jobs: blobs transferred at once.
        dry_run: plan only; write nothing.
        include_foreign: also copy non-distributable (foreign) layers.
        force: copy even when the destination tag already has the source digest, and write
            a destination tag that is a referrers tag (``sha256-<hex>``), replacing that list.
        chunk_size: bytes per PATCH for chunked uploads (also the most re-sent on resume).
        chunked_threshold: blobs larger than this are uploaded in chunks.
        referrers: also copy the referrers (signatures, SBOMs, attestations) of every manifest
            copied, recursively, and list them at the destination as it supports.
        digest_tags: also copy the legacy cosign tags ``sha256-<hex>.sig/.att/.sbom``.
        attempts: tries per blob before the copy fails (resumes do not count).
        progress: receives :class:`ProgressEvent` s. Events come from worker threads, but
            calls are serialised (one at a time, under one lock), so a plain ``print`` or a
            non-thread-safe callback is safe; keep it quick, transfers wait for it.

    Raises:
        ValueError: a platform string is not ``os/arch[/variant]``.
        TypeError: a platform is neither a string nor a :class:`Platform`.
    """

    platforms: tuple[Platform, ...] = ()
    jobs: int = field(default_factory=lambda: default_jobs())
    dry_run: bool = False
    include_foreign: bool = False
    force: bool = False
    chunk_size: int = 16 * MiB
    chunked_threshold: int = 512 * MiB
    attempts: int = 3
    referrers: bool = False
    digest_tags: bool = False
    progress: ProgressCallback = ignore

    def __post_init__(self) -> None:
        if isinstance(self.platforms, str | Platform):  # one platform, not its characters
            object.__setattr__(self, "platforms", (self.platforms,))
        object.__setattr__(self, "platforms", tuple(_platform(p) for p in self.platforms))


def _platform(value: object) -> Platform:
    if isinstance(value, Platform):
        return value
    if isinstance(value, str):
        return Platform.parse(value)
    raise TypeError(f"platforms: expected 'os/arch[/variant]' or a Platform, not {value!r}")


# Progress callbacks run one at a time, whichever worker thread reports (see CopyOptions).
_PROGRESS_LOCK = threading.Lock()


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
    """A resolved source: the top manifest and every manifest below it, as raw bytes.

    Attributes:
        images: the image manifests, each once.
        derived: the top manifest was built (or picked out of the source) by a platform filter.
        indexes: the indexes below the top one (nested indexes), each once, children before
            parents.
        entries: the index entries chosen, in source order through every nested level, each
            as listed (its own platform and annotations: a manifest listed under two
            platforms is two entries); empty for a single image.
    """

    source: Source
    top: Manifest
    images: tuple[Manifest, ...]
    derived: bool = False
    indexes: tuple[Manifest, ...] = ()
    entries: tuple[Descriptor, ...] = ()

    def blobs(self, include_foreign: bool) -> list[Descriptor]:
        """Every blob of every image once, config first; foreign layers only on request."""
        seen: dict[str, Descriptor] = {}
        for image in self.images:
            for desc in image.blobs():
                if include_foreign or not is_foreign(desc.media_type):
                    seen.setdefault(desc.digest, desc)
        return list(seen.values())

    def foreign(self) -> list[Descriptor]:
        """The non-distributable layers, once each."""
        return _unique(d for i in self.images for d in i.layers if is_foreign(d.media_type))

    def children(self) -> list[Manifest]:
        """Manifests to PUT by digest before the top one, each after everything it lists:
        the images, then the nested indexes innermost first."""
        images = [m for m in self.images if m.digest != self.top.digest]
        return images + [m for m in self.indexes if m.digest != self.top.digest]


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What one ``copy`` to one destination did.

    ``blobs`` and ``bytes`` count by outcome: ``mounted``, ``streamed``, ``skipped``.
    ``manifests`` counts manifest writes at the destination, each once however often its
    request was retried: child manifests, the image by digest before its referrers, every
    referrer (and its children), every write of a referrers fallback index, cosign digest
    tags, and the tag itself. ``requests`` counts every HTTP request sent for it.
    """

    source: str
    destination: str
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
    referrers: tuple[str, ...] = ()
    digest_tags: tuple[str, ...] = ()
    retries: int = 0


_OUTCOMES = ("mounted", "streamed", "skipped")
_COSIGN_SUFFIXES = ("sig", "att", "sbom")


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

    @property
    def event(self) -> threading.Event:
        """Set once the copy is cancelled (pauses wait on it, so they end at once)."""
        return self._event

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


#: OCI lets an index list indexes; deeper nesting than this many levels is refused.
MAX_INDEX_DEPTH = 4
_MAX_CONFIG = 4 * 1024 * 1024


def resolve(source: Source, identifier: str, platforms: Sequence[Platform] = ()) -> ImageGraph:
    """Fetch the source manifest and every manifest below it (exact bytes), through nested
    indexes up to :data:`MAX_INDEX_DEPTH` levels.

    With ``platforms`` (compared in normalised form, see :meth:`Platform.matches`), the
    image entries of every level whose platform matches are chosen: one image makes that
    image the top manifest; several make a new flat index of the chosen entries, each as
    the source lists it, in source order (its digest differs from the source's), unless
    they are every entry of the source, which is then kept byte for byte. A single image
    is kept when its config says it is for one of ``platforms``.

    Raises:
        NotFound: the source does not exist.
        PlatformNotFound: no image of the source is for any of ``platforms``.
        ManifestError: indexes nested too deep, in a cycle, or an entry that is not what
            its index says.
    """
    top = source.get_manifest(identifier)
    where = f"{source.name}{_suffix(identifier)}"
    if not top.is_index:
        if platforms:
            _require_platform(source, top, platforms, where)
        return ImageGraph(source, top, (top,))
    tree = _IndexTree(source, top)
    entries = _select(tree.entries, platforms, where)
    images = tuple(tree.image(d) for d in _unique(e.descriptor for e in entries))
    chosen = tuple(e.descriptor for e in entries)
    if not platforms or len(entries) == len(tree.entries) > 1:  # every entry: bytes kept
        return ImageGraph(source, top, images, indexes=tuple(tree.indexes), entries=chosen)
    if len(images) == 1:  # one image asked for (also an index with a single entry)
        return ImageGraph(source, images[0], images, derived=True, entries=chosen)
    return ImageGraph(source, _sub_index(top, entries), images, derived=True, entries=chosen)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One entry of an index: parsed, and its JSON object exactly as the index lists it."""

    descriptor: Descriptor
    raw: dict[str, object]


class _IndexTree:
    """An index and the indexes it lists, depth first in source order, each fetched once.

    ``entries`` are the entries that are not indexes, from every level; ``indexes`` the
    nested indexes, children before parents. A nested index listed again (by two parents)
    is walked once; one that lists itself or an ancestor is refused, never followed.
    """

    def __init__(self, source: Source, top: Manifest) -> None:
        self.source = source
        self.fetched: dict[str, Manifest] = {top.digest: top}
        self.entries: list[_Entry] = []
        self.indexes: list[Manifest] = []
        self._walk(top, (top.digest,))

    def _walk(self, index: Manifest, path: tuple[str, ...]) -> None:
        listed: list[dict[str, object]] = json.loads(index.raw).get("manifests", [])
        for desc, raw in zip(index.manifests, listed, strict=True):
            if not is_index(desc.media_type):
                self.entries.append(_Entry(desc, raw))
            elif desc.digest in path:
                raise ManifestError(f"{self.source.name}: index {desc.digest} lists itself")
            elif desc.digest not in self.fetched:
                if len(path) >= MAX_INDEX_DEPTH:
                    raise ManifestError(
                        f"{self.source.name}: index {desc.digest} is nested more than "
                        f"{MAX_INDEX_DEPTH} levels deep (the limit)"
                    )
                child = self._get(desc)
                if not child.is_index:
                    raise ManifestError(
                        f"{self.source.name}: {desc.digest} is listed as an index but is "
                        f"a {child.media_type}"
                    )
                self._walk(child, (*path, child.digest))
                self.indexes.append(child)

    def _get(self, desc: Descriptor) -> Manifest:
        if desc.digest not in self.fetched:
            self.fetched[desc.digest] = self.source.get_manifest(desc.digest)
        return self.fetched[desc.digest]

    def image(self, desc: Descriptor) -> Manifest:
        """The image manifest an entry names."""
        child = self._get(desc)
        if child.is_index:
            listed = desc.media_type or "an entry without a media type"
            raise ManifestError(
                f"{self.source.name}: {desc.digest} is listed as {listed} but is an index"
            )
        return child


def _select(entries: list[_Entry], platforms: Sequence[Platform], where: str) -> list[_Entry]:
    """The entries to copy. Without a platform filter that is every entry: the index is kept
    byte for byte, so everything it names must reach the destination (or the copy fails
    before writing anything, for an entry regshift cannot copy)."""
    if not platforms:
        return list(entries)
    images = [
        e for e in entries if is_manifest(e.descriptor.media_type) or not e.descriptor.media_type
    ]
    chosen = [e for e in images if _is_for(e.descriptor, platforms)]
    if not chosen:
        have = dict.fromkeys(str(e.descriptor.platform) for e in images if e.descriptor.platform)
        raise PlatformNotFound(where, [str(p) for p in platforms], list(have))
    return chosen


def _is_for(desc: Descriptor, platforms: Sequence[Platform]) -> bool:
    return desc.platform is not None and any(desc.platform.matches(p) for p in platforms)


def _require_platform(
    source: Source, image: Manifest, platforms: Sequence[Platform], where: str
) -> None:
    """A single image is only "found" for a platform its config says it is for."""
    have = config_platform(source, image)
    if have is None or not any(have.matches(p) for p in platforms):
        available = [str(have)] if have else []
        raise PlatformNotFound(where, [str(p) for p in platforms], available)


def config_platform(source: Source, image: Manifest) -> Platform | None:
    """The platform an image's config names (``os``, ``architecture``, ``variant``), or None
    for an artifact whose config is not an image config.

    Raises:
        ManifestError: the config is announced larger than the limit.
        DigestMismatch: the config served does not match its digest and size.
    """
    if image.config is None:
        return None
    try:
        doc = json.loads(read_config(source, image.config))
    except (ValueError, RecursionError):
        return None
    fields = [doc.get(k) if isinstance(doc, dict) else None for k in _PLATFORM_FIELDS]
    os, arch, variant = (f if isinstance(f, str) else "" for f in fields)
    return Platform(os, arch, variant) if os and arch else None


_PLATFORM_FIELDS = ("os", "architecture", "variant")


def read_config(source: Source, desc: Descriptor) -> bytes:
    """A config blob, bounded by its descriptor's size and verified as it is read.

    Raises:
        ManifestError: the config is announced larger than the limit.
        DigestMismatch: the bytes served do not match the descriptor's digest and size.
    """
    if desc.size > _MAX_CONFIG:
        raise ManifestError(f"config {desc.digest} is {desc.size} bytes, above the limit")
    verifier = DigestVerifier(desc.digest, desc.size, what="config")
    parts = []
    with source.open_blob(desc) as chunks:
        for chunk in chunks:
            verifier.update(chunk)
            parts.append(chunk)
    verifier.verify()
    return b"".join(parts)


def _unique(entries: Iterable[Descriptor]) -> list[Descriptor]:
    """Entries by digest, once each (an index may list the same manifest twice)."""
    return list({d.digest: d for d in entries}.values())


def _sub_index(index: Manifest, entries: list[_Entry]) -> Manifest:
    """A new index of ``entries``: each entry's JSON object as its source index lists it
    (platform, annotations and all), in source order."""
    doc = {
        "schemaVersion": 2,
        "mediaType": index.media_type,
        "manifests": [e.raw for e in entries],
    }
    return parse_manifest((json.dumps(doc, indent=2) + "\n").encode())


# -- copying -----------------------------------------------------------------------------


def copy(
    client: Client,
    source: str | Reference,
    destinations: Sequence[str | Reference],
    *,
    options: CopyOptions | None = None,
) -> list[CopyResult]:
    """Copy ``source`` to every destination, resolving the source only once.

    Either side may be an OCI image layout (``oci:PATH[:TAG]``). A destination without tag
    or digest takes the source's tag (or digest).

    Raises:
        ForceRequired: a destination tag is a referrers tag (``sha256-<hex>``) and
            ``options.force`` is not set; checked before anything is sent or created.
        RegistryError: the copy failed; no tag was written for a failed destination.
    """
    opts = options or CopyOptions()
    src = open_source(client, source)
    identifier = src.identifier or "latest"
    if isinstance(destinations, str):  # one destination, not its characters
        destinations = [destinations]
    writers = [_writer_for(client, d, src, identifier, force=opts.force) for d in destinations]
    src = _with_scopes(src, writers)
    graph = resolve(src, identifier, opts.platforms)
    if graph.derived and ":" in identifier:
        # By digest, filtered to some platforms: a destination given without tag or digest
        # takes the digest of what is copied, not the source's.
        writers = [
            _writer_for(client, d, src, graph.top.digest, force=opts.force) for d in destinations
        ]
    with _workers(opts.jobs) as (pool, cancel):
        return _copy_each(graph, writers, opts, pool, cancel)


def _copy_each(
    graph: ImageGraph,
    writers: Sequence[_Writer],
    opts: CopyOptions,
    pool: ThreadPoolExecutor,
    cancel: _Cancel,
) -> list[CopyResult]:
    """Copy to each destination in turn; a failure names the destinations already done."""
    results: list[CopyResult] = []
    for writer in writers:
        try:
            results.append(_copy_one(graph, writer, opts, pool, cancel))
        except RegistryError as exc:
            if results:
                exc.add_note(
                    f"copied before the failure: {', '.join(r.destination for r in results)}"
                )
            raise
    return results


def _writer_for(
    client: Client, text: str | Reference, src: Source, identifier: str, *, force: bool
) -> _Writer:
    """The writer for one destination; one without a tag takes the source's identifier.

    Raises:
        ForceRequired: the destination tag is a referrers tag and ``force`` is not set
            (checked before a layout is created).
    """
    tag = identifier if ":" not in identifier else None
    if isinstance(text, str) and is_layout_reference(text):
        given = parse_layout_reference(text)
        final = given.tag if given.tag or given.digest else tag
        referrers.refuse_fallback_tag(text, final, force=force)
        target = open_layout_target(text)
        if target.ref.tag is None and target.ref.digest is None and tag:
            target = target.at(tag)
        return _LayoutWriter(target)
    dst = parse_reference(text, default_tag=None) if isinstance(text, str) else text
    if dst.tag is None and dst.digest is None:
        dst = dst.with_tag(tag) if tag else dst.with_digest(identifier)
    referrers.refuse_fallback_tag(str(dst.repo_only()), dst.tag, force=force)
    source_ref = src.ref if isinstance(src, RegistrySource) else None
    return _RegistryWriter(client, dst, source_ref)


def _with_scopes(src: Source, writers: Sequence[_Writer]) -> Source:
    """Give a registry source the scopes of the whole operation: one token per registry."""
    if not isinstance(src, RegistrySource):
        return src
    scopes = [src.ref.scope("pull")]
    for w in writers:
        if isinstance(w, _RegistryWriter) and w.dst.endpoint == src.ref.endpoint:
            scopes.append(w.dst.scope("pull,push"))
    return replace(src, scopes=scopes)


def _copy_one(
    graph: ImageGraph,
    writer: _Writer,
    opts: CopyOptions,
    pool: ThreadPoolExecutor,
    cancel: _Cancel,
    previous: tuple[str | None] | None = None,
) -> CopyResult:
    """Copy a resolved graph to one destination; ``previous`` is its tag's digest if known."""
    run = _Run(graph.source, writer, opts, pool, cancel)
    before = previous[0] if previous is not None else writer.current_digest()
    # Digests the destination reports, or the user gave, are compared in their own algorithm.
    if before is not None and matches(graph.top.raw, before) and not opts.force:
        if not opts.dry_run:  # signatures added since the last copy still travel
            _copy_attached(run, graph, opts)
        return run.result(graph, before, steps=(), up_to_date=True)
    if writer.digest and not matches(graph.top.raw, writer.digest):
        raise DigestMismatch(f"destination {writer.name}", writer.digest, graph.top.digest)
    steps = run.plan(graph)
    if opts.dry_run:
        return run.result(graph, before, steps=steps)
    done = run.copy_blobs(steps)
    run.put_children(graph)
    if opts.referrers or opts.digest_tags:
        # Everything that refers to the image lands before the tag does, so a promoted
        # image is never visible without its signatures.
        writer.put_child(graph.top)
        run.manifests += 1
        _copy_attached(run, graph, opts)
    writer.put_top(graph.top)
    run.manifests += 1
    run.emit(graph.top.descriptor(), ProgressState.WRITTEN, kind="manifest")
    return run.result(graph, before, steps=done)


def _copy_attached(run: _Run, graph: ImageGraph, opts: CopyOptions) -> None:
    """Referrers and cosign digest tags, as asked for."""
    if opts.referrers:
        run.copy_referrers(graph)
    if opts.digest_tags:
        run.copy_digest_tags(graph)


class _Writer:
    """A destination: what a copy needs to ask it and write into it."""

    name: str
    tag: str | None
    digest: str | None
    move: BlobAction  # what a missing blob costs: MOUNT (same registry) or STREAM

    def current_digest(self) -> str | None:
        """What the destination tag points at now, or None."""
        raise NotImplementedError

    def has_blob(self, desc: Descriptor) -> bool:
        raise NotImplementedError

    def has_manifest(self, digest: str) -> bool:
        raise NotImplementedError

    def transfer(self, run: _Run, desc: Descriptor, action: BlobAction) -> str:
        """Bring one missing blob over; return the outcome (``mounted`` or ``streamed``)."""
        raise NotImplementedError

    def put_child(self, manifest: Manifest) -> None:
        raise NotImplementedError

    def put_top(self, manifest: Manifest) -> None:
        raise NotImplementedError

    def attach(self, manifest: Manifest) -> int:
        """Store a referrer and make it listable under its subject; return the manifests
        written (the referrer, and each write of its subject's fallback index)."""
        raise NotImplementedError

    def retagged(self, tag: str) -> _Writer:
        """The same destination, at another tag."""
        raise NotImplementedError

    def requests(self) -> int:
        """HTTP requests sent so far through this writer's client (0 for a layout)."""
        return 0


class _Run:
    """One source -> destination copy: plan, blobs, manifests, result."""

    def __init__(
        self,
        source: Source,
        writer: _Writer,
        opts: CopyOptions,
        pool: ThreadPoolExecutor,
        cancel: _Cancel,
    ) -> None:
        self.source, self.writer, self.opts, self.pool, self.cancel = (
            source,
            writer,
            opts,
            pool,
            cancel,
        )
        self.tally = _Tally()
        self.referrers: list[str] = []  # copied in this run
        self.seen_referrers: list[str] = []  # every referrer found, copied now or before
        self.digest_tags: list[str] = []
        self.manifests = 0  # manifest writes at the destination (CopyResult.manifests)
        self.started = time.monotonic()
        self.start_requests = self._requests()
        self.start_retries = self._retries()

    def _requests(self) -> int:
        own = self.writer.requests()
        if isinstance(self.source, RegistrySource) and not isinstance(self.writer, _RegistryWriter):
            return own + self.source.client.requests
        return own

    def _retries(self) -> int:
        clients = [getattr(self.writer, "client", None), getattr(self.source, "client", None)]
        unique = {id(c): c for c in clients if isinstance(c, Client)}
        return sum(c.stats.retries for c in unique.values())

    def emit(
        self, desc: Descriptor, state: ProgressState, done: int = 0, kind: str = "blob"
    ) -> None:
        event = ProgressEvent(kind, desc.digest, state, done, desc.size, self.writer.name)
        with _PROGRESS_LOCK:
            self.opts.progress(event)

    def plan(self, graph: ImageGraph) -> tuple[BlobStep, ...]:
        """Decide skip / mount / stream per blob (existence checks run concurrently)."""
        blobs = graph.blobs(self.opts.include_foreign)
        foreign = tuple(
            BlobStep(d, BlobAction.FOREIGN)
            for d in graph.foreign()
            if not self.opts.include_foreign
        )
        if self._same_repository():
            return tuple(BlobStep(d, BlobAction.SKIP) for d in blobs) + foreign
        present = list(self.pool.map(self.writer.has_blob, blobs))
        steps = [
            BlobStep(d, BlobAction.SKIP if p else self.writer.move)
            for d, p in zip(blobs, present, strict=True)
        ]
        return tuple(steps) + foreign

    def _same_repository(self) -> bool:
        w, s = self.writer, self.source
        return (
            isinstance(w, _RegistryWriter)
            and isinstance(s, RegistrySource)
            and (w.dst.endpoint == s.ref.endpoint and w.dst.repository == s.ref.repository)
        )

    def copy_blobs(self, steps: tuple[BlobStep, ...]) -> tuple[BlobStep, ...]:
        """Run the plan; return the steps with their outcomes.

        The first failure stops the other transfers at their next chunk (and the ones not
        started yet) and is raised at once, not after every blob before it in the plan.
        """
        futures = [self.pool.submit(self._run_step, step) for step in steps]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            error = future.exception()
            if error is not None:
                self.cancel.set()
                for other in futures:
                    other.cancel()
                raise error
        return tuple(f.result() for f in futures)

    def _run_step(self, step: BlobStep) -> BlobStep:
        self.cancel.check()
        desc = step.descriptor
        if step.action is BlobAction.FOREIGN:
            return step
        if step.action is BlobAction.SKIP:
            outcome = "skipped"
        else:
            outcome = self.writer.transfer(self, desc, step.action)
        self.tally.add(outcome, desc.size)
        state = {"skipped": ProgressState.SKIPPED, "mounted": ProgressState.MOUNTED}
        self.emit(desc, state.get(outcome, ProgressState.DONE), desc.size)
        return replace(step, outcome=outcome)

    def chunks(self, desc: Descriptor) -> contextlib.AbstractContextManager[Iterator[bytes]]:
        """The source blob as verified chunks, with progress and Ctrl-C checks."""
        return self._verified_source(desc)

    @contextlib.contextmanager
    def _verified_source(self, desc: Descriptor) -> Iterator[Iterator[bytes]]:
        self.emit(desc, ProgressState.STARTED)
        with self.source.open_blob(desc) as raw:
            progress = lambda done: self.emit(desc, ProgressState.PROGRESS, done)  # noqa: E731
            counted = _source_chunks(raw, progress, self.cancel)
            yield _verified(
                counted, DigestVerifier(desc.digest, desc.size, what=f"blob {desc.digest}")
            )

    def put_children(self, graph: ImageGraph) -> int:
        """The manifests below the top one, by digest, skipping those already there."""
        children = [] if self._same_repository() else graph.children()
        missing = [m for m in children if not self.writer.has_manifest(m.digest)]
        for manifest in missing:
            self.writer.put_child(manifest)
            self.manifests += 1
            self.emit(manifest.descriptor(), ProgressState.WRITTEN, kind="manifest")
        return len(missing)

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
                self.manifests += self.writer.attach(artifact.top)
                self.emit(artifact.top.descriptor(), ProgressState.WRITTEN, kind="referrer")
                self.referrers.append(desc.digest)

    def copy_digest_tags(self, graph: ImageGraph) -> None:
        """The legacy cosign tags ``sha256-<hex>.sig/.att/.sbom`` of every copied manifest."""
        digests = {graph.top.digest, *(m.digest for m in graph.images), *self.seen_referrers}
        wanted = {f"{d.replace(':', '-')}.{kind}" for d in digests for kind in _COSIGN_SUFFIXES}
        for tag in (t for t in self.source.list_tags() if t in wanted):
            target = self.writer.retagged(tag)
            current = target.current_digest()
            if current is not None and self.source.head_digest(tag) == current:
                continue  # copied before and unchanged since
            artifact = self._copy_artifact(tag)
            target.put_top(artifact.top)
            self.manifests += 1
            self.emit(artifact.top.descriptor(), ProgressState.WRITTEN, kind="tag")
            self.digest_tags.append(tag)

    def result(
        self,
        graph: ImageGraph,
        previous: str | None,
        *,
        steps: tuple[BlobStep, ...],
        up_to_date: bool = False,
    ) -> CopyResult:
        tag = self.writer.tag
        return CopyResult(
            source=f"{graph.source.name}{_suffix(graph.source.identifier)}",
            destination=f"{self.writer.name}{_suffix(tag or self.writer.digest)}",
            digest=graph.top.digest,
            media_type=graph.top.media_type,
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
            notes=_notes(graph, steps),
            resent_bytes=self.tally.resent,
            referrers=tuple(self.referrers),
            digest_tags=tuple(self.digest_tags),
            retries=self._retries() - self.start_retries,
        )


def _suffix(identifier: str | None) -> str:
    if not identifier:
        return ""
    return f"@{identifier}" if ":" in identifier else f":{identifier}"


class _LayoutWriter(_Writer):
    """Writes into an OCI image layout: blobs as verified files, index.json last."""

    move = BlobAction.STREAM

    def __init__(self, target: LayoutTarget) -> None:
        self.target = target
        self.name = target.name
        self.tag = target.ref.tag
        self.digest = target.ref.digest

    def current_digest(self) -> str | None:
        return self.target.current_digest()

    def has_blob(self, desc: Descriptor) -> bool:
        return self.target.has_blob(desc)

    def has_manifest(self, digest: str) -> bool:
        return self.target.has_manifest(digest)

    def transfer(self, run: _Run, desc: Descriptor, action: BlobAction) -> str:
        with run.chunks(desc) as chunks:
            self.target.write_blob(desc, chunks)
        return "streamed"

    def put_child(self, manifest: Manifest) -> None:
        self.target.put_child(manifest)

    def put_top(self, manifest: Manifest) -> None:
        self.target.put_top(manifest)

    def attach(self, manifest: Manifest) -> int:
        self.target.attach(manifest)
        return 2  # the referrer, and index.json under its fallback tag

    def retagged(self, tag: str) -> _Writer:
        return _LayoutWriter(self.target.at(tag))


class _RegistryWriter(_Writer):
    """Writes into a registry repository: mounts, streamed or chunked resumable uploads."""

    def __init__(self, client: Client, dst: Reference, source: Reference | None) -> None:
        self.client, self.dst, self.source_ref = client, dst, source
        self.name = dst.name
        self.tag = dst.tag
        self.digest = dst.digest
        same_registry = source is not None and source.endpoint == dst.endpoint
        self._same_registry = same_registry
        self._move: BlobAction | None = None
        scopes = [dst.scope("pull,push")]
        if same_registry and source is not None:
            scopes.append(source.scope("pull"))  # a cross-repository mount needs both
        self.scopes = scopes
        self.chunked = False  # set once the destination refused a monolithic upload (413)

    @property
    def move(self) -> BlobAction:  # type: ignore[override]  # an attribute in _Writer
        """MOUNT within one registry when one credential serves both repositories, else
        STREAM. A mount needs one token with pull on the source and push on the destination;
        with per-repository credentials (two accounts) no token has both, so the blob goes
        through us: GET with the source's credential, upload with the destination's.
        Decided when the plan is made, after the destination was asked for its blobs: a
        registry that never asked for credentials by then has none resolved."""
        if self._move is None:
            mount = self._same_registry and self.source_ref is not None
            if mount and self.source_ref is not None:
                mount = self.client.same_credential(self.source_ref, self.dst)
            self._move = BlobAction.MOUNT if mount else BlobAction.STREAM
        return self._move

    def requests(self) -> int:
        return self.client.requests

    def current_digest(self) -> str | None:
        if self.dst.tag is None:
            return None
        return self.client.digest_of(
            self.dst.repo_only().with_tag(self.dst.tag), scopes=self.scopes
        )

    def has_blob(self, desc: Descriptor) -> bool:
        return self.client.blob_exists(self.dst, desc.digest, scopes=self.scopes)

    def has_manifest(self, digest: str) -> bool:
        return (
            self.client.head_manifest(self.dst.repo_only().with_digest(digest), scopes=self.scopes)
            is not None
        )

    def put_child(self, manifest: Manifest) -> None:
        self.client.put_manifest(
            self.dst.repo_only().with_digest(manifest.digest), manifest, scopes=self.scopes
        )

    def put_top(self, manifest: Manifest) -> None:
        repo = self.dst.repo_only()
        target = repo.with_tag(self.dst.tag) if self.dst.tag else repo.with_digest(manifest.digest)
        self.client.put_manifest(target, manifest, scopes=self.scopes)

    def attach(self, manifest: Manifest) -> int:
        return 1 + referrers.attach(self.client, self.dst.repo_only(), manifest).writes

    def retagged(self, tag: str) -> _Writer:
        return _RegistryWriter(self.client, self.dst.repo_only().with_tag(tag), self.source_ref)

    # -- blobs ----------------------------------------------------------------------------

    def transfer(self, run: _Run, desc: Descriptor, action: BlobAction) -> str:
        endpoints = [self.dst.endpoint]
        if isinstance(run.source, RegistrySource) and run.source.client is self.client:
            endpoints.append(run.source.ref.endpoint)
        with self.client.registry_slots(*endpoints):
            return self._transfer(run, desc, action)

    def _transfer(self, run: _Run, desc: Descriptor, action: BlobAction) -> str:
        location = None
        if action is BlobAction.MOUNT:
            mounted, location = self._mount(desc)
            if mounted:
                return "mounted"
        self._stream_with_retries(run, desc, location)
        return "streamed"

    def _mount(self, desc: Descriptor) -> tuple[bool, str | None]:
        """Try a cross-repository mount: (True, None), or (False, session to upload into)."""
        assert self.source_ref is not None
        try:
            start = self.client.start_upload(
                self.dst,
                mount=desc.digest,
                from_repository=self.source_ref.repository,
                scopes=self.scopes,
            )
        except APIError as exc:
            # Some registries answer a refused mount with an error instead of 202 (Harbor:
            # 401 for an unknown source project, goharbor/harbor#17097): upload instead.
            log.info("mount of %s refused (%s); uploading", desc.digest, exc)
            return False, None
        return start.mounted, start.location

    def _stream_with_retries(self, run: _Run, desc: Descriptor, location: str | None) -> None:
        """Stream one blob; on a transient failure restart it (a fresh session, a fresh GET)."""
        attempts = max(run.opts.attempts, self.client.max_attempts)
        attempt = 0
        while attempt < attempts:
            attempt += 1
            chunked = self.chunked or desc.size > run.opts.chunked_threshold
            try:
                if location is None:
                    location = self.client.start_upload(self.dst, scopes=self.scopes).location
                assert location is not None
                self._stream(run, desc, location, chunked)
                return
            except (TransportError, _Restart, APIError) as exc:
                self._abandon(location)
                location = None
                if not self._may_restart(exc, attempt, attempts, chunked):
                    if isinstance(exc, _Restart):
                        raise TransportError(f"blob {desc.digest}: {exc}") from None
                    raise
                if self._switched_to_chunks(exc, chunked):
                    attempt -= 1  # not a failed try: the blob goes up again, in chunks
                if self.has_blob(desc):  # the commit landed; only its answer was lost
                    return
                run.emit(desc, ProgressState.RETRYING)
                run.cancel.check()
                retry_after = exc.retry_after if isinstance(exc, APIError) else None
                self.client.pause_before_retry(
                    f"blob {desc.digest}", str(exc), attempt, retry_after, stop=run.cancel.event
                )
                run.cancel.check()
            except BaseException:  # a bad blob, a cancelled copy, a broken layout source
                self._abandon(location)
                raise
        raise TransportError(f"blob {desc.digest}: not uploaded after {attempts} attempts")

    @staticmethod
    def _switched_to_chunks(exc: Exception, chunked: bool) -> bool:
        return isinstance(exc, APIError) and exc.status == 413 and not chunked

    def _may_restart(self, exc: Exception, attempt: int, attempts: int, chunked: bool) -> bool:
        if self._switched_to_chunks(exc, chunked):
            # The registry (or a proxy in front of it) caps request bodies: use chunks, for
            # this blob and every later one (a blob already in flight may see its own 413).
            if not self.chunked:
                log.info("monolithic upload refused (413); switching to chunked uploads")
                self.chunked = True
            return True
        if attempt >= attempts or (isinstance(exc, TransportError) and not exc.retryable):
            return False
        # 401 mid-stream: the token expired while a body that cannot be replayed was in
        # flight; the restart's first request re-authenticates.
        return not isinstance(exc, APIError) or exc.retryable or isinstance(exc, Unauthorized)

    def _abandon(self, location: str | None) -> None:
        if location is not None:
            self.client.cancel_upload(self.dst, location, scopes=self.scopes)

    def _stream(self, run: _Run, desc: Descriptor, location: str, chunked: bool) -> None:
        with run.chunks(desc) as verified:
            if chunked:
                self._chunked(run, desc, location, verified)
            else:
                self.client.finish_upload(
                    self.dst, location, desc.digest, verified, size=desc.size, scopes=self.scopes
                )

    def _chunked(self, run: _Run, desc: Descriptor, location: str, data: Iterator[bytes]) -> None:
        offset = 0
        for chunk in _rechunk(data, run.opts.chunk_size):
            location, offset = self._patch(run, location, chunk, offset)
        self.client.finish_upload(self.dst, location, desc.digest, b"", scopes=self.scopes)

    def _patch(self, run: _Run, location: str, chunk: memoryview, start: int) -> tuple[str, int]:
        """PATCH one chunk; after a dropped connection resume from the registry's offset."""
        sent_from = start
        for _ in range(run.opts.attempts + 1):
            try:
                status = self.client.patch_upload(
                    self.dst, location, chunk[sent_from - start :], sent_from, scopes=self.scopes
                )
                return status.location or location, status.offset
            except (TransportError, APIError) as exc:
                if isinstance(exc, NotFound):  # the session expired or was cleaned up
                    raise _Restart(f"upload session lost: {exc}") from None
                if isinstance(exc, APIError) and not exc.retryable and exc.status != 416:
                    raise
                # A dropped connection, or 416 (the registry holds another offset than this
                # chunk assumed): ask the registry where it stands and go on from there.
                location, sent_from = self._resume_point(location, start, len(chunk))
                log.info("chunk at %d failed (%s); registry has %d bytes", start, exc, sent_from)
                if sent_from == start + len(chunk):
                    return location, sent_from  # all of it landed; only the answer was lost
                run.tally.add_resent(start + len(chunk) - sent_from)
        raise _Restart(f"chunk at offset {start} failed {run.opts.attempts + 1} times")

    def _resume_point(self, location: str, start: int, length: int) -> tuple[str, int]:
        try:
            status = self.client.upload_status(self.dst, location, scopes=self.scopes)
        except RegistryError as exc:
            raise _Restart(f"upload session lost: {exc}") from None
        if not start <= status.offset <= start + length:
            raise _Restart(f"registry holds {status.offset} bytes, outside chunk at {start}")
        return status.location or location, status.offset


def _notes(graph: ImageGraph, steps: tuple[BlobStep, ...]) -> tuple[str, ...]:
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
    for chunk in chunks:
        cancel.check()
        done += len(chunk)
        if done - reported >= 4 * MiB:
            progress(done)
            reported = done
        yield chunk
    progress(done)


def _verified(chunks: Iterable[bytes], verifier: DigestVerifier) -> Iterator[bytes]:
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


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[memoryview]:
    """Regroup a stream into pieces of ``size`` bytes (the last may be shorter).

    One buffer is filled and handed out again and again: each piece is valid only until the
    next is requested, so an upload holds one chunk of memory, whatever the blob's size.
    """
    buf = bytearray(size)
    view = memoryview(buf)
    filled = 0
    for chunk in chunks:
        taken = 0
        while taken < len(chunk):
            n = min(size - filled, len(chunk) - taken)
            view[filled : filled + n] = chunk[taken : taken + n]
            filled += n
            taken += n
            if filled == size:
                yield view
                filled = 0
    if filled:
        yield view[:filled]


# -- whole repositories ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepositoryCopyResult:
    """What ``copy --all-tags`` did, tag by tag."""

    source: str
    destination: str
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
    """Copy every tag of a repository or layout (filtered by regular expressions on tags).

    Tags whose destination already has the source digest cost one HEAD at each side.

    Raises:
        re.error: ``include`` or ``exclude`` is not a valid regular expression.
    """
    opts = options or CopyOptions()
    started, start_requests = time.monotonic(), client.requests
    src = open_source(client, source, repository=True)
    dst_text = destination if isinstance(destination, str) else str(destination.repo_only())
    if not is_layout_reference(dst_text):
        dst_text = str(parse_repository(dst_text))
    # Referrers fallback tags (sha256-<hex>) are indexes to merge, not tags to overwrite:
    # --referrers merges them entry by entry; copied as tags they would drop other entries.
    tags = [t for t in src.list_tags() if not referrers.is_fallback_tag(t)]
    chosen, excluded = _filter_tags(tags, include, exclude)
    results: list[CopyResult] = []
    with _workers(opts.jobs) as (pool, cancel):
        for tag in chosen:
            writer = _writer_for(client, _tagged(dst_text, tag), src, tag, force=opts.force)
            tag_source = _with_scopes(src.at(tag), [writer])
            try:
                results.append(_copy_tag(tag_source, tag, writer, opts, pool, cancel))
            except RegistryError as exc:
                copied = ", ".join(r.tags[0] for r in results if r.tags)
                if copied:
                    exc.add_note(f"tags copied before the failure: {copied}")
                raise
    return RepositoryCopyResult(
        source=src.name,
        destination=dst_text,
        results=tuple(results),
        excluded=tuple(excluded),
        requests=client.requests - start_requests,
        seconds=time.monotonic() - started,
    )


def _tagged(repository: str, tag: str) -> str:
    return f"{repository}:{tag}"


def _filter_tags(
    tags: list[str], include: str | None, exclude: str | None
) -> tuple[list[str], list[str]]:
    inc = re.compile(include) if include else None
    exc = re.compile(exclude) if exclude else None
    chosen = [t for t in tags if (inc is None or inc.search(t)) and not (exc and exc.search(t))]
    return chosen, [t for t in tags if t not in chosen]


def _copy_tag(
    src: Source,
    tag: str,
    writer: _Writer,
    opts: CopyOptions,
    pool: ThreadPoolExecutor,
    cancel: _Cancel,
) -> CopyResult:
    """Copy one tag, checking the cheap way first: HEAD both sides, compare digests."""
    previous = writer.current_digest()
    cheap = not (opts.force or opts.platforms or opts.referrers or opts.digest_tags)
    if cheap and previous is not None and src.head_digest(tag) == previous:
        run = _Run(src, writer, opts, pool, cancel)
        graph = ImageGraph(src, Manifest(raw=b"", media_type="", digest=previous), ())
        return run.result(graph, previous, steps=(), up_to_date=True)
    graph = resolve(src, tag, opts.platforms)
    return _copy_one(graph, writer, opts, pool, cancel, previous=(previous,))
