"""The ``regshift`` command: flags in, library call, text or JSON out, exit code.

This is the only part of regshift that prints or exits. Library modules are imported inside
the commands so ``regshift --help`` stays fast.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, TypeVar

import click

from . import process
from .exits import ExitStatus, message, one_line, run_guarded
from .options import (
    CommonOptions,
    common_options,
    endpoints_of,
    read_password,
    transfer_options,
)

if TYPE_CHECKING:
    from ..layout_reference import LayoutReference
    from ..ops import DeleteResult
    from ..reference import Reference
    from ..tagging import TagResult

F = TypeVar("F", bound=Callable[..., Any])


class _Commands(click.Group):
    """The ``regshift`` group. Commands defined in other modules (build, index, sync) are
    imported only when they run or ``--help`` lists them: defining their options costs
    start-up time that ``regshift tag`` should not pay."""

    #: Command name -> the module under ``regshift.cli`` that defines it (``COMMANDS``).
    ELSEWHERE: ClassVar[dict[str, str]] = {
        "append": "building",
        "flatten": "building",
        "merge": "building",
        "mutate": "building",
        "rebase": "building",
        "index": "indexing",
        "sync": "syncing",
        "catalog": "syncing",
        "probe": "syncing",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.ELSEWHERE})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.ELSEWHERE.get(cmd_name)
        if module is None:
            return super().get_command(ctx, cmd_name)
        import importlib

        commands = importlib.import_module(f"{__package__}.{module}").COMMANDS
        return next((c for c in commands if c.name == cmd_name), None)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="regshift", prog_name="regshift")
def cli() -> None:
    """Tag, copy and promote container images directly against registries, without pulling.

    \b
    Exit codes: 0 ok, 1 registry error, 2 usage or invalid reference, 3 authentication,
                4 not found, 5 precondition failed (--expect-digest, --no-clobber, or a
                refusal that --force overrides), 130 interrupted.
    """


@cli.command("tag")
@click.argument("source", required=False)
@click.argument("new_tags", nargs=-1)
@click.option(
    "--expect-digest", metavar="DIGEST", help="Only tag if SOURCE still resolves to DIGEST."
)
@click.option(
    "--no-clobber", is_flag=True, help="Refuse if a new tag already points at another digest."
)
@click.option("--dry-run", is_flag=True, help="Show what would be tagged; write nothing.")
@click.option(
    "--force",
    is_flag=True,
    help="Also write referrers tags (sha256-<hex>), replacing the signature list there.",
)
@click.option(
    "--from-file",
    type=click.File("rb"),
    metavar="FILE",
    help="Promote many images in one run: lines of 'SOURCE NEW_TAG...' ('-' = stdin).",
)
@click.option("-q", "--quiet", is_flag=True, help="No output except errors (--json still prints).")
@common_options
def tag_cmd(
    opts: CommonOptions,
    source: str | None,
    new_tags: tuple[str, ...],
    expect_digest: str | None,
    no_clobber: bool,
    dry_run: bool,
    force: bool,
    from_file: BinaryIO | None,
    quiet: bool,
) -> None:
    """Give SOURCE one or more NEW_TAGs in the same repository, moving only the manifest.

    The manifest bytes are copied exactly, so the digest (and every platform of a
    multi-platform image) stays the same. With --from-file, every line names a SOURCE and
    its NEW_TAGs; all of them share one connection pool and token cache.
    """

    if from_file is not None and opts.password_stdin and _file_name(from_file) == "<stdin>":
        raise click.UsageError(
            "--from-file - and --password-stdin both read standard input: give the list as a "
            "file, or the password another way (a prompt, REGSHIFT_PASSWORD, regshift login)"
        )

    def work() -> int:  # reading the list (stdin, say) is guarded too: Ctrl-C there is 130
        jobs = _tag_jobs(source, new_tags, from_file, expect_digest)
        if from_file is not None:  # --insecure covers the registries the file names, too
            opts.registries = (*opts.registries, *endpoints_of(src for src, _ in jobs))
        many = from_file is not None  # --json: a list for a file, whatever its length
        return _run_tags(opts, jobs, expect_digest, no_clobber, dry_run, many, force, quiet)

    run_guarded(opts, work)


def _tag_jobs(
    source: str | None, new_tags: tuple[str, ...], from_file: BinaryIO | None, expect: str | None
) -> list[tuple[str, list[str]]]:
    if from_file is None:
        if not source or not new_tags:
            raise click.UsageError("give SOURCE and at least one NEW_TAG (or --from-file)")
        return [(source, list(new_tags))]
    if source or new_tags or expect:
        raise click.UsageError("--from-file takes no SOURCE/NEW_TAG arguments or --expect-digest")
    lines = []
    for number, line in enumerate(_tag_file_text(from_file).splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) < 2:
            raise click.UsageError(
                f"{_file_name(from_file)}:{number}: expected 'SOURCE NEW_TAG...'"
            )
        lines.append((number, words[0], words[1:]))
    return _without_duplicates(_file_name(from_file), lines)


def _file_name(handle: BinaryIO) -> str:
    """The name of ``--from-file``: its path, or ``<stdin>`` (a binary stdin may have none)."""
    return str(getattr(handle, "name", "<stdin>"))


def _tag_file_text(handle: BinaryIO) -> str:
    """A tag file's text: UTF-8, or UTF-16 / UTF-8 with a byte-order mark, whatever the
    locale (Windows PowerShell 5 writes UTF-16 with ``>``, and UTF-8 with a BOM)."""
    raw = handle.read()
    encoding = "utf-16" if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        what = "UTF-16" if encoding == "utf-16" else "UTF-8"
        raise click.UsageError(
            f"{_file_name(handle)}: not {what} text (byte {exc.start})"
        ) from None


def _without_duplicates(
    name: str, lines: list[tuple[int, str, list[str]]]
) -> list[tuple[str, list[str]]]:
    """The jobs of a tag file, refusing two lines that write one tag (after normalising
    references: ``docker.io/library/app`` is ``app``) from different sources, before anything
    is sent: which would win is a race. The same tag from the same source reference again is
    no conflict: the later mention is dropped (a line left without tags, with it)."""
    writers: dict[str, tuple[int, str]] = {}  # target -> (line, normalised source)
    conflicts: list[str] = []
    jobs: list[tuple[str, list[str]]] = []
    for number, source, tags in lines:
        kept = []
        for tag in dict.fromkeys(tags):
            key = _target_key(source, tag)
            if key is None:
                kept.append(tag)
                continue
            target, normalised = key
            first_line, first_source = writers.setdefault(target, (number, normalised))
            if first_line == number:
                kept.append(tag)
            elif first_source != normalised:
                conflicts.append(
                    f"{name}:{number}: {target} is also written by line {first_line} "
                    "from another source"
                )
        if kept:
            jobs.append((source, kept))
    if conflicts:
        raise click.UsageError("; ".join(conflicts) + "; nothing tagged")
    return jobs


def _target_key(source: str, tag: str) -> tuple[str, str] | None:
    """(the tag written, the source), both normalised; None when either does not parse
    (that line fails on its own later, naming what is wrong)."""
    from ..errors import InvalidReference
    from ..reference import Reference
    from ..storage import parse_location

    try:
        ref = parse_location(source)
        if not isinstance(ref, Reference):  # a layout: the same directory however written
            ref = replace(ref, path=ref.path.absolute())
        return str(ref.repo_only().with_tag(tag)), str(ref)
    except InvalidReference:
        return None


def _run_tags(
    opts: CommonOptions,
    jobs: list[tuple[str, list[str]]],
    expect_digest: str | None,
    no_clobber: bool,
    dry_run: bool,
    many: bool,
    force: bool,
    quiet: bool = False,
) -> int:
    from ..errors import RegistryError
    from ..tagging import tag
    from ..transport import default_jobs

    def one(job: tuple[str, list[str]]) -> TagResult | RegistryError:
        try:
            return tag(
                client,
                job[0],
                job[1],
                expect_digest=expect_digest,
                no_clobber=no_clobber,
                dry_run=dry_run,
                raise_on_error=False,
                force=force,
            )
        except RegistryError as exc:
            if len(jobs) == 1:
                raise
            return exc

    with opts.client() as client:
        if len(jobs) == 1:
            results = [one(jobs[0])]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=default_jobs()) as pool:
                results = list(pool.map(one, jobs))  # in parallel, reported in file order
    docs: list[dict[str, Any]] = []
    texts: list[str] = []
    errors: list[BaseException] = []
    for (source, _), result in zip(jobs, results, strict=True):
        if isinstance(result, RegistryError):
            click.echo(f"regshift: error: {one_line(result)}", err=True)
            docs.append({"source": source, "error": one_line(result)})
            errors.append(result)
            continue
        doc, text = _tag_report(result)
        docs.append(doc)
        texts.append(text)
        for failed in result.failed:
            if failed.error is not None:
                click.echo(f"regshift: error: tag {failed.tag}: {one_line(failed.error)}", err=True)
                errors.append(failed.error)
    opts.emit(docs if many else docs[0], "" if quiet else "\n".join(texts))
    return ExitStatus.for_error(errors[0]) if errors else ExitStatus.OK


@cli.command("copy")
@click.argument("source")
@click.argument("destinations", nargs=-1)
@click.option("--to", "to", multiple=True, metavar="DST", help="Another destination (repeatable).")
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    metavar="OS/ARCH[/VARIANT]",
    help="Copy only this platform (repeatable); a subset gets a new digest.",
)
@click.option("--all-tags", is_flag=True, help="Copy every tag of the SOURCE repository.")
@click.option("--include", metavar="REGEX", help="With --all-tags: only tags matching REGEX.")
@click.option("--exclude", metavar="REGEX", help="With --all-tags: skip tags matching REGEX.")
@click.option("--dry-run", is_flag=True, help="Print the plan blob by blob; write nothing.")
@click.option(
    "--include-foreign", is_flag=True, help="Also copy non-distributable (foreign) layers."
)
@click.option(
    "--referrers",
    is_flag=True,
    help="Also copy signatures, SBOMs and attestations (OCI referrers), recursively.",
)
@click.option(
    "--digest-tags",
    is_flag=True,
    help="Also copy the legacy cosign tags sha256-<hex>.sig/.att/.sbom.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Copy even if the destination already has the digest; also write a destination "
    "tag that is a referrers tag (sha256-<hex>), replacing the signature list there.",
)
@transfer_options
@common_options
def copy_cmd(
    opts: CommonOptions,
    source: str,
    destinations: tuple[str, ...],
    to: tuple[str, ...],
    **flags: Any,
) -> None:
    """Copy SOURCE to one or more DESTINATIONs, keeping every digest.

    \b
    Same repository: only the manifest moves (as `tag`).
    Same registry:   blobs are mounted across repositories; no layer bytes move.
    Other registry:  each missing blob is streamed once, verified, never via disk.

    A DESTINATION without a tag takes the source's tag. With --all-tags, SOURCE and
    DESTINATION are repositories.
    """
    from .copying import run_copy

    targets = destinations + to
    if not targets:
        raise click.UsageError("give at least one DESTINATION (or --to)")
    if (flags["include"] or flags["exclude"]) and not flags["all_tags"]:
        raise click.UsageError("--include/--exclude need --all-tags")
    if flags["all_tags"] and len(targets) != 1:
        raise click.UsageError("--all-tags takes exactly one destination repository")
    run_guarded(opts, lambda: run_copy(opts, source, targets, **flags))


@cli.command("inspect")
@click.argument("reference")
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    metavar="OS/ARCH[/VARIANT]",
    help="Show only this platform (repeatable).",
)
@common_options
def inspect_cmd(opts: CommonOptions, reference: str, platforms: tuple[str, ...]) -> None:
    """Describe REFERENCE: platforms, config (created, labels, entrypoint), layers, sizes.

    REFERENCE may be an image in a registry or in an OCI layout (oci:PATH[:TAG]).
    """
    from .inspecting import run_inspect

    run_guarded(opts, lambda: run_inspect(opts, reference, platforms))


@cli.command("referrers")
@click.argument("reference")
@click.option("--artifact-type", metavar="TYPE", help="Only referrers of this artifact type.")
@common_options
def referrers_cmd(opts: CommonOptions, reference: str, artifact_type: str | None) -> None:
    """List the referrers (signatures, SBOMs, attestations) of REFERENCE as a tree.

    Uses the OCI referrers API where the registry has one, else the sha256-<hex> fallback tag
    (in an oci: layout, also untagged index.json entries, as oras keeps them).
    """
    from .inspecting import run_referrers

    run_guarded(opts, lambda: run_referrers(opts, reference, artifact_type))


@cli.command("digest")
@click.argument("reference")
@common_options
def digest_cmd(opts: CommonOptions, reference: str) -> None:
    """Print the manifest digest REFERENCE resolves to (HEAD, GET if needed)."""
    from ..ops import digest

    def work() -> int:
        with opts.client() as client:
            desc = digest(client, reference)
        opts.emit(
            {
                "reference": reference,
                "digest": desc.digest,
                "mediaType": desc.media_type,
                "size": desc.size,
            },
            desc.digest,
        )
        return ExitStatus.OK

    run_guarded(opts, work)


@cli.command("manifest")
@click.argument("reference")
@common_options
def manifest_cmd(opts: CommonOptions, reference: str) -> None:
    """Print the manifest of REFERENCE, byte for byte as the registry stores it."""
    from ..ops import manifest

    def work() -> int:
        with opts.client() as client:
            found = manifest(client, reference)
        if opts.json:
            opts.emit(
                {
                    "reference": reference,
                    "digest": found.digest,
                    "mediaType": found.media_type,
                    "size": found.size,
                    "manifest": found.raw.decode("utf-8", "replace"),
                },
                "",
            )
        else:
            sys.stdout.buffer.write(found.raw)
            sys.stdout.buffer.flush()
        return ExitStatus.OK

    run_guarded(opts, work)


@cli.command("ls")
@click.argument("repository")
@common_options
def ls_cmd(opts: CommonOptions, repository: str) -> None:
    """List every tag of REPOSITORY (all pages)."""
    from ..ops import list_tags

    def work() -> int:
        with opts.client() as client:
            tags = list_tags(client, repository)
        opts.emit({"repository": repository, "tags": tags}, "\n".join(tags))
        return ExitStatus.OK

    run_guarded(opts, work)


@cli.command("delete")
@click.argument("reference")
@click.option(
    "--force",
    is_flag=True,
    help="Delete by digest even if other tags share it or a tagged index lists it.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be removed; delete nothing.")
@common_options
def delete_cmd(opts: CommonOptions, reference: str, force: bool, dry_run: bool) -> None:
    """Remove the tag REFERENCE (or, by digest, a manifest).

    Registries without a tag-delete API can only delete the manifest, which removes every
    tag pointing at it and breaks every index listing it: regshift does that only when no
    other tag shares the digest and no tagged index lists it (among the first 1000 tags),
    and otherwise names those tags and requires --force.
    """
    from ..ops import delete

    def work() -> int:
        with opts.client() as client:
            result = delete(client, reference, force=force, dry_run=dry_run)
        _render_delete(opts, result)
        return ExitStatus.OK

    run_guarded(opts, work)


@cli.command("login")
@click.argument("registry")
@common_options
def login_cmd(opts: CommonOptions, registry: str) -> None:
    """Check credentials for REGISTRY and store them in Docker's config.json.

    The password comes from --password-stdin or a hidden prompt, never from a flag. A
    configured credential helper (credHelpers / credsStore) stores it instead of the file.
    """
    from ..ops import login
    from ..reference import normalise_registry

    def work() -> int:
        if not opts.username:
            opts.username = click.prompt("Username", err=True)
        password = opts.password if opts.password is not None else read_password(opts)
        host = normalise_registry(registry)
        where = login(
            host, opts.username, password, options=opts.client_options(with_keychain=False)
        )
        opts.emit(
            {"registry": host, "username": opts.username, "stored": where},
            f"Login succeeded: {host} (stored in {where})",
        )
        return ExitStatus.OK

    run_guarded(opts, work)


@cli.command("logout")
@click.argument("registry")
@common_options
def logout_cmd(opts: CommonOptions, registry: str) -> None:
    """Remove stored credentials for REGISTRY."""
    from ..ops import logout
    from ..reference import normalise_registry

    def work() -> int:
        host = normalise_registry(registry)
        removed = logout(host)
        text = f"Removed credentials for {host}" if removed else f"Not logged in to {host}"
        opts.emit({"registry": host, "removed": removed}, text)
        return ExitStatus.OK

    run_guarded(opts, work)


def _tag_report(result: TagResult) -> tuple[dict[str, Any], str]:
    doc = {
        "source": str(result.source),
        "digest": result.digest,
        "mediaType": result.media_type,
        "size": result.size,
        "dryRun": result.dry_run,
        "requests": result.requests,
        "retries": result.retries,
        "tags": [
            {
                "tag": o.tag,
                "reference": _tagged(result.source, o.tag),
                "action": str(o.action),
                "method": o.method,
                "previous": o.previous,
                "error": message(o.error) if o.error else None,
            }
            for o in result.outcomes
        ],
    }
    lines = [f"{result.source} {result.digest} ({result.media_type}, {result.size} bytes)"]
    width = max(len(o.tag) for o in result.outcomes)
    for o in result.outcomes:
        detail = f" (was {o.previous})" if o.previous and o.previous != result.digest else ""
        if o.error:
            detail = " (see error below)"
        lines.append(f"  {o.tag:<{width}}  {o.action}{detail}")
    return doc, "\n".join(lines)


def _tagged(source: Reference | LayoutReference, tag: str) -> str:
    from ..reference import Reference

    if isinstance(source, Reference):
        return str(source.repo_only().with_tag(tag))
    return str(replace(source, tag=tag, digest=None))


def _render_delete(opts: CommonOptions, result: DeleteResult) -> None:
    verb = "would delete" if result.dry_run else "deleted"
    if result.method == "tag":
        text = f"{verb} tag {result.reference} ({result.digest})"
    else:
        tags = ", ".join(result.removed_tags) or "no tags"
        from ..reference import Reference

        ref = result.reference
        repo = ref.repo_only() if isinstance(ref, Reference) else ref
        text = f"{verb} manifest {result.digest} of {repo} (tags removed: {tags})"
    left = "would be left" if result.dry_run else "are left"
    if result.broken_indexes:  # only with --force: without it, delete refuses
        broken = ", ".join(result.broken_indexes)
        click.echo(
            f"regshift: warning: index tag(s) {broken} list manifest {result.digest} and "
            f"{left} naming a manifest the registry no longer has",
            err=True,
        )
    if result.unexamined:
        click.echo(
            f"regshift: warning: {result.unexamined} tag(s) of the repository were not checked "
            "(past the limit)",
            err=True,
        )
    opts.emit(
        {
            "reference": str(result.reference),
            "digest": result.digest,
            "method": result.method,
            "removedTags": list(result.removed_tags),
            "brokenIndexes": list(result.broken_indexes),
            "unexaminedTags": result.unexamined,
            "dryRun": result.dry_run,
        },
        text,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: owns the process (see :mod:`regshift.cli.process`)."""
    process.begin()
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="regshift")
    finally:
        process.start_up_done()  # a command that stopped before its client existed
