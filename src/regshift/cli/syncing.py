"""``regshift sync``, ``regshift catalog`` and ``regshift probe``: flags in, library out."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from .exits import ExitStatus, run_guarded
from .options import CommonOptions, common_options

if TYPE_CHECKING:
    from ..syncing import SyncResult, UnitResult

_SHARD = re.compile(r"^(\d+)/(\d+)$")


def _shard(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    match = _SHARD.match(value.strip())
    if match is None or not 0 <= int(match[1]) < int(match[2]):
        raise click.BadParameter(f"{value!r}: expected I/N with 0 <= I < N (e.g. 0/4)")
    return int(match[1]), int(match[2])


@click.command("sync")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "-j", "--jobs", type=click.IntRange(1, 64), default=None, help="Units at once (default 4-8)."
)
@click.option("--dry-run", is_flag=True, help="Print the plan: each unit, copy or up to date.")
@click.option("--check", is_flag=True, help="Write nothing; exit 5 when any unit is stale.")
@click.option("--keep-going", is_flag=True, help="A failing unit does not stop the others.")
@click.option(
    "--shard",
    callback=_shard,
    metavar="I/N",
    help="Run only shard I (0-based) of N: N processes cover the plan once.",
)
@click.option(
    "--rate-limit-reserve",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="Pulls to leave unused where a registry announces its limit (ratelimit-remaining).",
)
@click.option("-q", "--quiet", is_flag=True, help="No line per unit, no total (errors still).")
@common_options
def sync_cmd(opts: CommonOptions, file: str, **flags: Any) -> None:
    """Mirror what FILE (YAML) describes: repositories filtered by tag, single images, whole
    registries. A unit already at the source digest costs one HEAD at each side."""
    if flags["dry_run"] and flags["check"]:
        raise click.UsageError("--dry-run and --check exclude each other")
    run_guarded(opts, lambda: _run_sync(opts, file, **flags))


def _read_sync_file(file: str) -> Any:
    from ..syncfile import SyncFileError, parse_sync_file

    try:
        with click.open_file(file, "rb") as handle:
            raw = handle.read()
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        raise click.UsageError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise click.UsageError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    try:
        return parse_sync_file(text, "<stdin>" if file == "-" else file)
    except SyncFileError as exc:
        raise click.UsageError(str(exc)) from None


def _run_sync(
    opts: CommonOptions,
    file: str,
    *,
    jobs: int | None,
    dry_run: bool,
    check: bool,
    keep_going: bool,
    shard: tuple[int, int] | None,
    rate_limit_reserve: int,
    quiet: bool,
) -> int:
    from ..client import Client
    from ..syncfile import SyncFileError
    from ..syncing import SyncOptions, sync
    from ..transport import default_jobs
    from .process import start_up_done

    plan = _read_sync_file(file)
    opts.registries = (*opts.registries, *_registries(plan))  # --insecure covers them

    def progress(result: UnitResult) -> None:
        if not quiet:
            click.echo(_unit_line(result), err=opts.json)

    options = SyncOptions(
        jobs=jobs or default_jobs(),
        dry_run=dry_run,
        check=check,
        keep_going=keep_going,
        shard=shard,
        progress=progress,
    )
    client_options = opts.client_options()
    transport = replace(client_options.transport, rate_limit_reserve=rate_limit_reserve)
    with Client(replace(client_options, transport=transport)) as client:
        start_up_done()
        try:
            result = sync(client, plan, options)
        except SyncFileError as exc:  # entries that conflict, found once expanded
            raise click.UsageError(str(exc)) from None
    return _report(opts, result, dry_run=dry_run, quiet=quiet)


def _registries(plan: Any) -> list[str]:
    from ..reference import Reference

    found = []
    for entry in plan.entries:
        for end in (entry.source, entry.destination):
            text = end.endpoint if isinstance(end, Reference) else str(end).split("/", 1)[0]
            found.append(text)
    return found


def _unit_line(result: UnitResult) -> str:
    line = f"{result.action:<10} {result.source} -> {result.destination}"
    if result.error:
        return f"{line}: {result.error}"
    details = f" {result.digest}" if result.digest else ""
    if result.bytes:
        details += f" ({result.bytes:,} bytes)"
    return f"{line}{details} {result.seconds:.2f}s"


def _report(opts: CommonOptions, result: SyncResult, *, dry_run: bool, quiet: bool) -> int:
    summary = _summary(result)
    if opts.json:
        opts.emit(_doc(result, summary), "")
    elif not quiet:
        lines = [f"excluded   {e.source} ({e.reason})" for e in result.excluded] if dry_run else []
        lines.append(_total_line(result, summary))
        click.echo("\n".join(lines))
    for failed in result.failed:
        click.echo(
            f"regshift: error: {failed.source} -> {failed.destination}: {failed.error}", err=True
        )
    if result.failed:
        return ExitStatus.ERROR
    if result.stale:
        if quiet or opts.json:
            for stale in result.stale:
                click.echo(f"stale: {stale.source} -> {stale.destination}", err=True)
        return ExitStatus.PRECONDITION
    return ExitStatus.OK


def _summary(result: SyncResult) -> dict[str, Any]:
    counts = {str(action): 0 for action in _actions()}
    for unit in result.units:
        counts[str(unit.action)] += 1
    shard = f"{result.shard[0]}/{result.shard[1]}" if result.shard else None
    return {
        "units": len(result.units),
        "planned": result.planned,
        "shard": shard,
        **counts,
        "excluded": len(result.excluded),
        "bytes": sum(u.bytes for u in result.units),
        "requests": result.requests,
        "seconds": round(result.seconds, 3),
    }


def _actions() -> list[str]:
    from ..syncing import SyncAction

    return [str(a) for a in SyncAction]


def _doc(result: SyncResult, summary: dict[str, Any]) -> dict[str, Any]:
    units = []
    for unit in result.units:
        doc: dict[str, Any] = {
            "source": unit.source,
            "destination": unit.destination,
            "digest": unit.digest,
            "action": str(unit.action),
        }
        if unit.error is not None:
            doc["error"] = unit.error
        doc.update(bytes=unit.bytes, seconds=round(unit.seconds, 3))
        units.append(doc)
    excluded = [{"source": e.source, "reason": e.reason} for e in result.excluded]
    return {"units": units, "excluded": excluded, "summary": summary}


def _total_line(result: SyncResult, summary: dict[str, Any]) -> str:
    shard = f" (shard {summary['shard']} of a plan of {result.planned})" if result.shard else ""
    parts = [f"{summary[a]} {a}" for a in _actions() if summary[a]]
    return (
        f"{len(result.units)} unit(s){shard}: {', '.join(parts) or 'nothing to do'}; "
        f"{summary['bytes']:,} bytes, {result.requests} requests in {result.seconds:.2f}s"
    )


@click.command("catalog")
@click.argument("registry")
@common_options
def catalog_cmd(opts: CommonOptions, registry: str) -> None:
    """List the repositories of REGISTRY (/v2/_catalog, every page)."""
    from ..reference import normalise_registry

    def work() -> int:
        from ..errors import InvalidReference
        from ..syncing import list_catalog

        try:
            host = normalise_registry(registry)
        except InvalidReference as exc:
            raise click.UsageError(str(exc)) from None
        with opts.client() as client:
            names = list_catalog(client, host)
        opts.emit(names, "\n".join(names))
        return ExitStatus.OK

    run_guarded(opts, work)


@click.command("probe")
@click.argument("repository")
@common_options
def probe_cmd(opts: CommonOptions, repository: str) -> None:
    """Find out what the registry of REPOSITORY supports, by trying it there.

    Writes only small probe blobs and manifests into REPOSITORY, removes them where the
    registry allows, and names what it could not remove. Without push rights it reports
    what reading shows.
    """

    def work() -> int:
        from ..probing import probe

        with opts.client() as client:
            result = probe(client, repository)
        doc: dict[str, Any] = {
            "registry": result.registry,
            "repository": result.repository,
            "auth": result.auth,
            **{
                name: {"value": f.value, "evidence": f.evidence}
                for name, f in result.findings.items()
            },
            "chunkMinLength": result.chunk_min_length,
            "leftBehind": list(result.left_behind),
        }
        opts.emit(doc, _probe_table(result))
        return ExitStatus.OK

    run_guarded(opts, work)


def _probe_table(result: Any) -> str:
    words = {True: "yes", False: "no", None: "unknown"}
    width = max(len(name) for name in result.findings)
    lines = [f"{result.registry}/{result.repository}", f"  {'auth':<{width}}  {result.auth}"]
    for name, finding in result.findings.items():
        lines.append(f"  {name:<{width}}  {words[finding.value]:<7}  {finding.evidence}")
    if result.chunk_min_length is not None:
        lines.append(f"  {'chunkMinLength':<{width}}  {result.chunk_min_length}")
    if result.left_behind:
        lines.append("  could not remove: " + ", ".join(result.left_behind))
    return "\n".join(lines)


#: What ``regshift.cli.main`` registers (imported when one of them runs).
COMMANDS = (sync_cmd, catalog_cmd, probe_cmd)
