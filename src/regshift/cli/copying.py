"""The body of ``regshift copy``: options in, library copy, text or JSON out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from .exits import ExitStatus
from .progress import make_display

if TYPE_CHECKING:
    from ..copying import BlobStep, CopyResult, RepositoryCopyResult
    from .options import CommonOptions


def run_copy(
    opts: CommonOptions,
    source: str,
    targets: Sequence[str],
    *,
    platforms: Sequence[str],
    all_tags: bool,
    include: str | None,
    exclude: str | None,
    jobs: int | None,
    dry_run: bool,
    include_foreign: bool,
    referrers: bool,
    digest_tags: bool,
    force: bool,
    verbose: bool,
    quiet: bool,
) -> int:
    """Run a copy and print its result; returns the exit status."""
    from ..copying import CopyOptions, copy, copy_repository
    from ..transport import default_jobs
    from .options import parse_platforms

    for pattern in (include, exclude):
        _check_regex(pattern)
    wanted = parse_platforms(platforms)
    # The result is printed once the progress display is closed: a live display redraws its
    # region of the terminal and would overwrite anything printed under it.
    with make_display(verbose, quiet or opts.json) as display, opts.client() as client:
        options = CopyOptions(
            platforms=wanted,
            jobs=jobs or default_jobs(),
            dry_run=dry_run,
            include_foreign=include_foreign,
            force=force,
            referrers=referrers,
            digest_tags=digest_tags,
            progress=display,
        )
        if all_tags:
            repo = copy_repository(
                client, source, targets[0], include=include, exclude=exclude, options=options
            )
        else:
            results = copy(client, source, targets, options=options)
    if all_tags:
        _render_repository(opts, repo)
    else:
        _render(opts, results)
    return ExitStatus.OK


def _check_regex(pattern: str | None) -> None:
    if pattern is None:
        return
    try:
        re.compile(pattern)
    except re.error as exc:
        raise click.UsageError(f"invalid regular expression {pattern!r}: {exc}") from None


def result_doc(result: CopyResult) -> dict[str, Any]:
    """The JSON document of one copy."""
    return {
        "source": str(result.source),
        "destination": str(result.destination),
        "digest": result.digest,
        "mediaType": result.media_type,
        "tags": list(result.tags),
        "previous": result.previous,
        "upToDate": result.up_to_date,
        "dryRun": result.dry_run,
        "blobs": result.blobs,
        "bytes": result.bytes,
        "resentBytes": result.resent_bytes,
        "manifests": result.manifests,
        "requests": result.requests,
        "retries": result.retries,
        "seconds": round(result.seconds, 3),
        "plan": plan_doc(result.steps),
        "referrers": list(result.referrers),
        "digestTags": list(result.digest_tags),
        "notes": _notes(result),
    }


def plan_doc(steps: Sequence[BlobStep]) -> list[dict[str, Any]]:
    """The ``plan`` of ``--json``: each blob, what was (or would be) done and its outcome."""
    return [
        {
            "digest": s.descriptor.digest,
            "size": s.descriptor.size,
            "mediaType": s.descriptor.media_type,
            "action": str(s.action),
            "outcome": s.outcome or None,
        }
        for s in steps
    ]


def _notes(result: CopyResult) -> list[str]:
    """The library's notes, and how to copy the foreign layers it left out."""
    from ..copying import BlobAction

    left_out = any(step.action is BlobAction.FOREIGN for step in result.steps)
    hint = ["foreign layers are left out by default: use --include-foreign to copy them"]
    return [*result.notes, *(hint if left_out else [])]


def _summary(result: CopyResult) -> list[str]:
    head = f"{result.source} -> {result.destination} {result.digest}"
    if result.up_to_date:
        return [f"{head}: up to date (nothing copied)"]
    if result.dry_run:
        lines = [f"{head}: plan (dry run)"]
        for step in result.steps:
            lines.append(
                f"  {step.action:<7} {step.descriptor.digest} {step.descriptor.size:>12,} bytes"
            )
        moves = f"{result.previous or 'absent'} -> {result.digest}"
        lines.extend(f"  tag     {t}: {moves}" for t in result.tags)
        return lines + [f"  note: {n}" for n in _notes(result)]
    b, n = result.bytes, result.blobs
    return [
        f"{head}",
        f"  blobs: {n['mounted']} mounted ({b['mounted']:,} bytes), {n['streamed']} streamed "
        f"({b['streamed']:,} bytes), {n['skipped']} skipped ({b['skipped']:,} bytes); "
        f"{result.manifests} manifest(s) written; "
        f"{result.requests} requests in {result.seconds:.2f}s",
        *(f"  note: {note}" for note in _notes(result)),
        *([f"  note: {result.retries} request(s) retried"] if result.retries else []),
    ]


def _render(opts: CommonOptions, results: list[CopyResult]) -> None:
    if opts.json:
        docs = [result_doc(r) for r in results]
        opts.emit(docs[0] if len(docs) == 1 else docs, "")
        return
    opts.emit(None, "\n".join(line for r in results for line in _summary(r)))


def _render_repository(opts: CommonOptions, repo: RepositoryCopyResult) -> None:
    doc = {
        "source": str(repo.source),
        "destination": str(repo.destination),
        "tags": [result_doc(r) for r in repo.results],
        "excluded": list(repo.excluded),
        "requests": repo.requests,
        "seconds": round(repo.seconds, 3),
    }
    copied = sum(1 for r in repo.results if not r.up_to_date)
    lines = [line for r in repo.results for line in _summary(r)]
    dry_run = any(r.dry_run for r in repo.results)
    verb, mode = ("would be copied", " (dry run)") if dry_run else ("copied", "")
    lines.append(
        f"{len(repo.results)} tag(s): {copied} {verb}, {len(repo.results) - copied} up to date, "
        f"{len(repo.excluded)} excluded{mode}; {repo.requests} requests in {repo.seconds:.2f}s"
    )
    opts.emit(doc, "\n".join(lines))
