"""``regshift index create | add | remove | annotate``: flags in, library verb, text or JSON out."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .exits import ExitStatus, run_guarded
from .options import (
    CommonOptions,
    common_options,
    endpoints_of,
    parse_platforms,
    transfer_options,
)

if TYPE_CHECKING:
    from ..indexes import IndexEntry, IndexOptions, IndexResult

F = TypeVar("F", bound=Callable[..., Any])


@click.group("index")
def index_group() -> None:
    """Assemble multi-platform images (indexes) from single-platform ones, without pulling.

    Children and their blobs are brought into the destination repository first (mounted
    on the same registry, streamed across registries and from oci: layouts), then the
    index, then the tag; a failure writes no tag.
    """


def _platform_option(text: str) -> Callable[[F], F]:
    return click.option(
        "--platform", "platforms", multiple=True, metavar="OS/ARCH[/VARIANT]", help=text
    )


def _write_options(func: F) -> F:
    """Flags every index command shares: what moves along, how, and what is shown."""
    for option in reversed(
        [
            click.option(
                "--dry-run", is_flag=True, help="Print the index it would write; write nothing."
            ),
            click.option(
                "--referrers",
                is_flag=True,
                help="Also copy the children's signatures, SBOMs and attestations.",
            ),
            transfer_options,
        ]
    ):
        func = option(func)
    return func


_DUPLICATES = click.option(
    "--allow-duplicate-platforms",
    is_flag=True,
    help="Let the index list one platform more than once.",
)


@index_group.command("create")
@click.argument("sources", nargs=-1, required=True)
@click.option("--to", "to", required=True, metavar="DST", help="Where to write the index.")
@_platform_option("From a SOURCE that is an index, take only this platform (repeatable).")
@_DUPLICATES
@click.option(
    "--format",
    "index_format",
    type=click.Choice(["oci", "docker"]),
    default="oci",
    show_default=True,
    help="An OCI image index, or a Docker manifest list (every SOURCE a Docker v2s2 image).",
)
@_write_options
@common_options
def create_cmd(opts: CommonOptions, sources: tuple[str, ...], to: str, **flags: Any) -> None:
    """Make a new index at DST whose entries are the SOURCE manifests, in that order.

    Each entry is the SOURCE manifest byte for byte (its digest unchanged), with the
    platform its config names; a SOURCE that is an index gives its entries.
    """
    from ..indexes import index_create

    _insecure_for(opts, *sources, to)

    def work(client: Any, options: IndexOptions) -> IndexResult:
        return index_create(client, list(sources), to, options=options)

    run_guarded(opts, lambda: _run(opts, work, **flags))


@index_group.command("add")
@click.argument("index")
@click.argument("sources", nargs=-1, required=True)
@click.option("--to", "to", metavar="DST", help="Write the result here, not to INDEX's tag.")
@_platform_option("From a SOURCE that is an index, take only this platform (repeatable).")
@_DUPLICATES
@_write_options
@common_options
def add_cmd(
    opts: CommonOptions, index: str, sources: tuple[str, ...], to: str | None, **flags: Any
) -> None:
    """Add the SOURCE manifests to INDEX; an entry for a platform INDEX already lists
    replaces that entry (said so). Written back to INDEX's tag unless --to is given."""
    from ..indexes import index_add

    _insecure_for(opts, index, *sources, *([to] if to else []))

    def work(client: Any, options: IndexOptions) -> IndexResult:
        return index_add(client, index, list(sources), destination=to, options=options)

    run_guarded(opts, lambda: _run(opts, work, **flags))


@index_group.command("remove")
@click.argument("index")
@_platform_option("Remove the entries for this platform (repeatable).")
@click.option(
    "--digest", "digests", multiple=True, metavar="DIGEST", help="Remove this entry (repeatable)."
)
@click.option("--to", "to", metavar="DST", help="Write the result here, not to INDEX's tag.")
@_write_options
@common_options
def remove_cmd(
    opts: CommonOptions,
    index: str,
    platforms: tuple[str, ...],
    digests: tuple[str, ...],
    to: str | None,
    **flags: Any,
) -> None:
    """Remove entries from INDEX (by --platform or --digest). Written back to INDEX's tag
    unless --to is given."""
    from ..indexes import index_remove

    if not platforms and not digests:
        raise click.UsageError("give --platform or --digest (which entries to remove)")
    wanted = parse_platforms(platforms)
    _insecure_for(opts, index, *([to] if to else []))

    def work(client: Any, options: IndexOptions) -> IndexResult:
        return index_remove(
            client, index, platforms=wanted, digests=digests, destination=to, options=options
        )

    run_guarded(opts, lambda: _run(opts, work, **flags))


@index_group.command("annotate")
@click.argument("index")
@click.option(
    "--annotation",
    "annotations",
    multiple=True,
    required=True,
    metavar="KEY=VALUE",
    help="Annotation to set (repeatable).",
)
@_platform_option("Annotate the entries for this platform, not the index (repeatable).")
@click.option("--to", "to", metavar="DST", help="Write the result here, not to INDEX's tag.")
@_write_options
@common_options
def annotate_cmd(
    opts: CommonOptions,
    index: str,
    annotations: tuple[str, ...],
    platforms: tuple[str, ...],
    to: str | None,
    **flags: Any,
) -> None:
    """Set annotations on INDEX, or with --platform on its entries for that platform.
    Written back to INDEX's tag unless --to is given."""
    from ..indexes import index_annotate

    pairs = _parse_annotations(annotations)
    wanted = parse_platforms(platforms)
    _insecure_for(opts, index, *([to] if to else []))

    def work(client: Any, options: IndexOptions) -> IndexResult:
        return index_annotate(
            client, index, pairs, platforms=wanted, destination=to, options=options
        )

    run_guarded(opts, lambda: _run(opts, work, **flags))


def _insecure_for(opts: CommonOptions, *references: str) -> None:
    """--insecure covers every registry the command names."""
    opts.registries = (*opts.registries, *endpoints_of(references))


def _parse_annotations(values: Sequence[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.UsageError(f"invalid annotation {value!r}: expected KEY=VALUE")
        pairs[key] = text
    return pairs


def _run(
    opts: CommonOptions,
    work: Callable[[Any, IndexOptions], IndexResult],
    *,
    dry_run: bool,
    referrers: bool,
    jobs: int | None,
    verbose: bool,
    quiet: bool,
    platforms: tuple[str, ...] = (),
    allow_duplicate_platforms: bool = False,
    index_format: str = "oci",
) -> int:
    """Build the options, run the verb under a progress display, print the result."""
    from ..indexes import IndexFormat, IndexOptions
    from ..transport import default_jobs
    from .progress import make_display

    wanted = parse_platforms(platforms)
    with make_display(verbose, quiet or opts.json) as display, opts.client() as client:
        options = IndexOptions(
            platforms=wanted,
            allow_duplicate_platforms=allow_duplicate_platforms,
            format=IndexFormat(index_format),
            referrers=referrers,
            dry_run=dry_run,
            jobs=jobs or default_jobs(),
            progress=display,
        )
        result = work(client, options)
    opts.emit(result_doc(result), "\n".join(_summary(result)))
    return ExitStatus.OK


def _entry_doc(entry: IndexEntry) -> dict[str, Any]:
    platform = entry.platform
    doc: dict[str, Any] = {
        "digest": entry.digest,
        "mediaType": entry.media_type,
        "size": entry.size,
        "platform": str(platform) if platform else None,
    }
    if platform and platform.os_version:
        doc["osVersion"] = platform.os_version
    if platform and platform.os_features:
        doc["osFeatures"] = list(platform.os_features)
    doc["source"] = entry.source
    doc["annotations"] = dict(entry.annotations)
    return doc


def result_doc(result: IndexResult) -> dict[str, Any]:
    """The JSON document of one index command."""
    from .copying import plan_doc

    return {
        "destination": result.destination,
        "digest": result.digest,
        "mediaType": result.media_type,
        "size": result.index.size,
        "tags": list(result.tags),
        "previous": result.previous,
        "upToDate": result.up_to_date,
        "dryRun": result.dry_run,
        "entries": [_entry_doc(e) for e in result.entries],
        "added": [_entry_doc(e) for e in result.added],
        "replaced": [_entry_doc(e) for e in result.replaced],
        "removed": [_entry_doc(e) for e in result.removed],
        "blobs": result.blobs,
        "bytes": result.bytes,
        "manifests": result.manifests,
        "plan": plan_doc(result.steps),
        "referrers": list(result.referrers),
        "notes": list(result.notes),
        "index": json.loads(result.index.raw),
    }


def _summary(result: IndexResult) -> list[str]:
    count = f"{len(result.entries)} entr{'y' if len(result.entries) == 1 else 'ies'}"
    head = f"{result.destination} {result.digest} ({result.media_type}, {count})"
    if result.up_to_date:
        head += ": up to date (nothing written)"
    elif result.dry_run:
        head += f": plan (dry run; tag now {result.previous or 'absent'})"
    lines = [head]
    width = max((len(_platform(e)) for e in result.entries), default=0)
    for entry in result.entries:
        lines.append(f"  {_platform(entry):<{width}}  {entry.digest}  {entry.source}")
    lines.extend(f"  removed {_platform(e)} {e.digest}" for e in result.removed)
    if result.dry_run:
        lines.extend(
            f"  {s.action:<7} {s.descriptor.digest} {s.descriptor.size:>12,} bytes"
            for s in result.steps
        )
    elif not result.up_to_date:
        b, n = result.bytes, result.blobs
        lines.append(
            f"  blobs: {n['mounted']} mounted ({b['mounted']:,} bytes), {n['streamed']} "
            f"streamed ({b['streamed']:,} bytes), {n['skipped']} skipped "
            f"({b['skipped']:,} bytes); {result.manifests} manifest(s) written"
        )
    lines.extend(f"  note: {note}" for note in result.notes)
    if result.dry_run:
        lines.append(result.index.raw.decode())
    return lines


def _platform(entry: IndexEntry) -> str:
    platform = entry.platform
    if platform is None:
        return "(no platform)"
    return f"{platform} {platform.os_version}" if platform.os_version else str(platform)


#: What ``regshift.cli.main`` registers (imported when one of them runs).
COMMANDS = (index_group,)
