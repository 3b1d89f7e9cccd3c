"""``copy_repository``: every tag of a repository or layout, filtered by regular expressions."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

from ..client import Client
from ..errors import RegistryError
from ..graph import resolve
from ..layout_reference import LayoutReference
from ..manifests import Descriptor
from ..reference import Reference, is_fallback_tag
from ..storage import Repository, open_repository, parse_location
from .options import CopyOptions, CopyResult, RepositoryCopyResult
from .running import Destination, Run
from .single import Target, copy_graph, destination, shared_scopes
from .workers import Cancel, workers


def copy_repository(
    client: Client,
    source: Target,
    destination_: Target,
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
    src = open_repository(client, source, repository=True)
    dst = _repository_of(destination_)
    # Referrers fallback tags (sha256-<hex>) are indexes to merge, not tags to overwrite:
    # --referrers merges them entry by entry; copied as tags they would drop other entries.
    tags = [t for t in src.list_tags() if not is_fallback_tag(t)]
    chosen, excluded = _filter_tags(tags, include, exclude)
    results: list[CopyResult] = []
    with workers(opts.jobs) as (pool, cancel):
        for tag in chosen:
            dest = destination(client, dst.with_tag(tag), src, tag, force=opts.force)
            tag_source = shared_scopes(src.at(tag), [dest])
            try:
                results.append(_copy_tag(client, tag_source, tag, dest, opts, pool, cancel))
            except RegistryError as exc:
                copied = ", ".join(r.tags[0] for r in results if r.tags)
                if copied:
                    exc.add_note(f"tags copied before the failure: {copied}")
                raise
    return RepositoryCopyResult(
        source=src.name,
        destination=str(dst),
        results=tuple(results),
        excluded=tuple(excluded),
        requests=client.requests - start_requests,
        seconds=time.monotonic() - started,
    )


def _repository_of(text: Target) -> Reference | LayoutReference:
    """The destination repository or layout, without tag or digest."""
    return parse_location(text, repository=True).repo_only()


def _filter_tags(
    tags: list[str], include: str | None, exclude: str | None
) -> tuple[list[str], list[str]]:
    inc = re.compile(include) if include else None
    exc = re.compile(exclude) if exclude else None
    chosen = [t for t in tags if (inc is None or inc.search(t)) and not (exc and exc.search(t))]
    return chosen, [t for t in tags if t not in chosen]


def _copy_tag(
    client: Client,
    src: Repository,
    tag: str,
    dest: Destination,
    opts: CopyOptions,
    pool: ThreadPoolExecutor,
    cancel: Cancel,
) -> CopyResult:
    """Copy one tag, checking the cheap way first: HEAD both sides, compare digests."""
    run = Run(client, src, dest, opts, pool, cancel)
    previous = dest.current_digest()
    cheap = not (opts.force or opts.platforms or opts.referrers or opts.digest_tags)
    if cheap and previous is not None and src.head(tag) == previous:
        # Up to date: only the digests were compared, the manifest is not fetched.
        top = Descriptor(media_type="", digest=previous, size=0)
        return run.result(top, previous, steps=(), up_to_date=True)
    graph = resolve(src, tag, opts.platforms)
    return copy_graph(run, graph, previous=(previous,))
