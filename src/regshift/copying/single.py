"""``copy``: one source image to one or more destinations, the source resolved once."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ..client import Client
from ..digests import matches
from ..errors import DigestMismatch, RegistryError
from ..graph import ImageGraph, resolve
from ..layout_reference import LayoutReference
from ..progress import ProgressState
from ..reference import Reference, refuse_fallback_tag
from ..storage import Repository, open_repository, parse_location
from .options import BlobAction, BlobStep, CopyOptions, CopyResult
from .running import Destination, Run
from .workers import Cancel, workers

Target = str | Reference | LayoutReference


def copy(
    client: Client,
    source: Target,
    destinations: Sequence[Target],
    *,
    options: CopyOptions | None = None,
) -> list[CopyResult]:
    """Copy ``source`` to every destination, resolving the source only once.

    Either side may be an OCI image layout (``oci:PATH[:TAG]`` or a
    :class:`LayoutReference`). A destination without tag or digest takes the source's tag
    (or digest).

    Raises:
        ForceRequired: a destination tag is a referrers tag (``sha256-<hex>``) and
            ``options.force`` is not set; checked before anything is sent or created.
        RegistryError: the copy failed; no tag was written for a failed destination.
    """
    opts = options or CopyOptions()
    src = open_repository(client, source)
    identifier = src.identifier or "latest"
    if isinstance(destinations, str | Reference | LayoutReference):  # one, not its characters
        destinations = [destinations]
    dests = [destination(client, d, src, identifier, force=opts.force) for d in destinations]
    src = shared_scopes(src, dests)
    graph = resolve(src, identifier, opts.platforms)
    if graph.derived and ":" in identifier:
        # By digest, filtered to some platforms: a destination given without tag or digest
        # takes the digest of what is copied, not the source's.
        dests = [
            destination(client, d, src, graph.top.digest, force=opts.force) for d in destinations
        ]
    with workers(opts.jobs) as (pool, cancel):
        return _copy_each(client, graph, dests, opts, pool, cancel)


def _copy_each(
    client: Client,
    graph: ImageGraph,
    dests: Sequence[Destination],
    opts: CopyOptions,
    pool: ThreadPoolExecutor,
    cancel: Cancel,
) -> list[CopyResult]:
    """Copy to each destination in turn; a failure names the destinations already done."""
    results: list[CopyResult] = []
    for dest in dests:
        try:
            run = Run(client, graph.source, dest, opts, pool, cancel)
            results.append(copy_graph(run, graph))
        except RegistryError as exc:
            if results:
                exc.add_note(
                    f"copied before the failure: {', '.join(r.destination for r in results)}"
                )
            raise
    return results


def destination(
    client: Client, text: Target, src: Repository, identifier: str, *, force: bool
) -> Destination:
    """The destination for ``text``; one without tag or digest takes ``identifier``.

    Raises:
        ForceRequired: the destination tag is a referrers tag and ``force`` is not set
            (checked before a layout is created).
    """
    tag = identifier if ":" not in identifier else None
    ref = parse_location(text, default_tag=None)
    given = ref.tag is not None or ref.digest is not None
    refuse_fallback_tag(ref.name, ref.tag if given else tag, force=force)
    repo = open_repository(client, ref, create=True)
    if not given:
        repo = repo.at(tag or identifier)
    # One token for the destination, with pull on the source too when it is on the same
    # registry: a cross-repository mount needs both.
    scopes = [repo.scope("pull,push")]
    if repo.endpoint is not None and repo.endpoint == src.endpoint:
        scopes.append(src.scope("pull"))
    return Destination(repo.with_scopes([s for s in scopes if s]), src)


def shared_scopes(src: Repository, dests: Sequence[Destination]) -> Repository:
    """Give a registry source the scopes of the whole operation: one token per registry."""
    if src.endpoint is None:
        return src
    scopes = [src.scope("pull")]
    for dest in dests:
        if dest.repo.endpoint == src.endpoint:
            scopes.append(dest.repo.scope("pull,push"))
    return src.with_scopes([s for s in scopes if s])


def copy_graph(
    run: Run, graph: ImageGraph, previous: tuple[str | None] | None = None
) -> CopyResult:
    """Copy a resolved graph to the run's destination; ``previous`` is its tag's digest if
    known."""
    writer, opts = run.writer, run.opts
    before = previous[0] if previous is not None else writer.current_digest()
    top = graph.top.descriptor()
    # Digests the destination reports, or the user gave, are compared in their own algorithm.
    if before is not None and matches(graph.top.raw, before) and not opts.force:
        if not opts.dry_run:  # signatures added since the last copy still travel
            _copy_attached(run, graph)
        return run.result(top, before, steps=(), up_to_date=True, notes=_notes(graph, ()))
    if writer.digest and not matches(graph.top.raw, writer.digest):
        raise DigestMismatch(f"destination {writer.name}", writer.digest, graph.top.digest)
    if opts.dry_run:
        steps = run.plan(graph)
        return run.result(top, before, steps=steps, notes=_notes(graph, steps))
    done = run.plan_and_copy(graph)
    run.put_children(graph)
    if opts.referrers or opts.digest_tags:
        # Everything that refers to the image lands before the tag does, so a promoted
        # image is never visible without its signatures.
        run.placed(graph.top, lambda: writer.put_child(graph.top))
        run.manifests += 1
        _copy_attached(run, graph)
    run.placed(graph.top, lambda: writer.put_top(graph.top))
    run.manifests += 1
    run.emit(top, ProgressState.WRITTEN, kind="manifest")
    return run.result(top, before, steps=done, notes=_notes(graph, done))


def _copy_attached(run: Run, graph: ImageGraph) -> None:
    """Referrers and cosign digest tags, as asked for."""
    if run.opts.referrers:
        run.copy_referrers(graph)
    if run.opts.digest_tags:
        run.copy_digest_tags(graph)


def _notes(graph: ImageGraph, steps: tuple[BlobStep, ...]) -> tuple[str, ...]:
    notes = []
    foreign = [s for s in steps if s.action is BlobAction.FOREIGN]
    if foreign:
        size = sum(s.descriptor.size for s in foreign)
        notes.append(
            f"{len(foreign)} foreign (non-distributable) layer(s), {size} bytes, not copied"
        )
    if graph.derived and graph.top.is_index:
        notes.append(
            f"copied {len(graph.images)} platforms as a new index: its digest {graph.top.digest} "
            f"differs from the source's"
        )
    elif graph.derived:
        notes.append(f"copied one platform: the destination is that image ({graph.top.digest})")
    return tuple(notes)
