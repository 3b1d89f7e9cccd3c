"""``regshift merge``, ``mutate``, ``rebase``, ``append`` and ``flatten``: options in, library
build, text or JSON out.

:func:`build_flags` and :func:`run_build` are shared by every build command (``append`` and
``flatten`` too): the destination, platforms, dry run, jobs and progress flags, and the
rendering of a :class:`~regshift.building.BuildResult`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .exits import ExitStatus, run_guarded
from .options import CommonOptions, common_options, transfer_options

if TYPE_CHECKING:
    from ..building import BuildOptions, BuildResult
    from ..client import Client

F = TypeVar("F", bound=Callable[..., Any])


def build_flags(func: F) -> F:
    """The flags every build command takes."""
    for decorator in reversed(
        (
            click.option("--to", "to", required=True, metavar="DST", help="Where to write it."),
            click.option(
                "--platform",
                "platforms",
                multiple=True,
                metavar="OS/ARCH[/VARIANT]",
                help="With indexes: build only this platform (repeatable).",
            ),
            click.option(
                "--dry-run", is_flag=True, help="Print the plan and the new config; write nothing."
            ),
            click.option(
                "--force",
                is_flag=True,
                help="Also write a DST tag that is a referrers tag (sha256-<hex>).",
            ),
            transfer_options,
        )
    ):
        func = decorator(func)
    return func


def run_build(
    opts: CommonOptions,
    flags: dict[str, Any],
    work: Callable[[Client, str, BuildOptions], BuildResult],
    *,
    created: str | None = None,
) -> None:
    """Run a build command: ``work(client, DST, options)`` with the common flags (``--to``
    taken out of ``flags``), its result printed, errors turned into exit codes."""
    to = flags.pop("to")
    run_guarded(
        opts, lambda: _build(opts, flags, lambda client, o: work(client, to, o), created=created)
    )


def _build(
    opts: CommonOptions,
    flags: dict[str, Any],
    work: Callable[[Client, BuildOptions], BuildResult],
    *,
    created: str | None,
) -> int:
    """Build with the common flags; print the result; return the exit status."""
    from ..building import BuildOptions
    from ..transport import default_jobs
    from .progress import make_display

    try:
        options = BuildOptions(
            platforms=tuple(flags["platforms"]),
            jobs=flags["jobs"] or default_jobs(),
            dry_run=flags["dry_run"],
            force=flags["force"],
            created=created,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with (
        make_display(flags["verbose"], flags["quiet"] or opts.json) as display,
        opts.client() as client,
    ):
        from dataclasses import replace

        result = work(client, replace(options, progress=display))
    opts.emit(result_doc(result), "\n".join(_summary(result)))
    return ExitStatus.OK


def result_doc(result: BuildResult) -> dict[str, Any]:
    """The JSON document of a build."""
    return {
        "destination": result.destination,
        "digest": result.digest or None,  # None: a dry run cannot know it (flatten)
        "mediaType": result.media_type,
        "tags": list(result.tags),
        "platforms": list(result.platforms),
        "dryRun": result.dry_run,
        "layers": [
            {
                **({"platform": image.platform} if image.platform else {}),
                "digest": step.descriptor.digest,
                "size": step.descriptor.size,
                "mediaType": step.descriptor.media_type,
                "diffId": step.diff_id,
                "source": step.source,
                "action": step.action,
            }
            for image in result.images
            for step in image.layers
        ],
        "images": [
            {
                "platform": image.platform or None,
                "digest": image.digest or None,
                "mediaType": image.media_type,
                "config": {
                    "digest": image.config.digest or None,
                    "size": image.config.size,
                    "action": image.config_action,
                },
                "configJson": json.loads(image.config_json),
            }
            for image in result.images
        ],
        "blobs": result.blobs,
        "bytes": result.bytes,
        "manifests": result.manifests,
        "requests": result.requests,
        "seconds": round(result.seconds, 3),
        "notes": list(result.notes),
    }


def _digest(digest: str) -> str:
    """A digest, or what stands for one a dry run cannot know (a flatten's)."""
    return digest or "(digest unknown until the layers are read)"


def _summary(result: BuildResult) -> list[str]:
    platforms = f" [{', '.join(result.platforms)}]" if result.platforms else ""
    head = f"{result.destination} {_digest(result.digest)} ({result.media_type}){platforms}"
    if result.dry_run:
        lines = [f"{head}: plan (dry run)"]
        for image in result.images:
            lines.append(
                f"  image {image.platform or ''} {_digest(image.digest)}".replace("  ", " ", 1)
            )
            for step in image.layers:
                d = step.descriptor
                lines.append(
                    f"    {step.action:<7} {d.digest} {d.size:>12,} bytes  from {step.source}"
                )
            config = json.dumps(json.loads(image.config_json), indent=2)
            c = image.config
            size = f"{c.size:>12,} bytes" if c.digest else ""
            lines.append(
                f"    {image.config_action:<7} {_digest(c.digest)} {size}  the new config:"
            )
            lines.extend(f"      {line}" for line in config.splitlines())
        return [*lines, *(f"  note: {note}" for note in result.notes)]
    b, n = result.bytes, result.blobs
    moved = ", ".join(f"{n[k]} {k} ({b[k]:,} bytes)" for k in n)
    return [
        head,
        f"  blobs: {moved}; {result.manifests} manifest(s) written; "
        f"{result.requests} requests in {result.seconds:.2f}s",
        *(f"  note: {note}" for note in result.notes),
    ]


@click.command("merge")
@click.argument("base")
@click.argument("images", nargs=-1, required=True)
@click.option("--config-from", metavar="IMAGE", help="Take this input's config instead of BASE's.")
@build_flags
@common_options
def merge_cmd(
    opts: CommonOptions, base: str, images: tuple[str, ...], config_from: str | None, **flags: Any
) -> None:
    """Merge the layers of IMAGEs onto BASE, server-side, without pulling.

    \b
    The result has BASE's layers, then each IMAGE's own layers in order: an IMAGE built on
    BASE adds the layers after BASE's, one built FROM scratch all of its layers. Layers are
    mounted on the same registry (no bytes move), else streamed once; only the new config
    and manifests are uploaded. Indexes are merged platform by platform.
    """
    from ..building import merge

    run_build(
        opts,
        flags,
        lambda client, to, o: merge(
            client, base, list(images), to=to, config_from=config_from, options=o
        ),
    )


@click.command("rebase")
@click.argument("image")
@click.option("--old-base", required=True, metavar="OLD", help="The base IMAGE is built on now.")
@click.option("--new-base", required=True, metavar="NEW", help="The base to put under it.")
@build_flags
@common_options
def rebase_cmd(opts: CommonOptions, image: str, old_base: str, new_base: str, **flags: Any) -> None:
    """Replace the layers of OLD at the bottom of IMAGE with those of NEW.

    IMAGE's layers must start with OLD's (else it is refused, naming the first layer that
    differs). Nothing is pulled: layers are mounted or streamed, the new config uploaded.
    """
    from ..building import rebase

    run_build(
        opts,
        flags,
        lambda client, to, o: rebase(
            client, image, old_base=old_base, new_base=new_base, to=to, options=o
        ),
    )


@click.command("mutate")
@click.argument("source")
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="K=V",
    help="Set a label (repeatable; K= keeps it empty).",
)
@click.option(
    "--remove-label",
    "remove_labels",
    multiple=True,
    metavar="K",
    help="Remove a label (repeatable).",
)
@click.option(
    "--env", "env", multiple=True, metavar="K=V", help="Set an environment variable (repeatable)."
)
@click.option(
    "--remove-env",
    "remove_env",
    multiple=True,
    metavar="K",
    help="Remove an environment variable (repeatable).",
)
@click.option(
    "--entrypoint", metavar="JSON", help="""The entrypoint, a JSON array ('[]' removes it)."""
)
@click.option(
    "--cmd",
    metavar="JSON",
    help="""The command, a JSON array, e.g. '["/bin/app","-v"]' ('[]' removes it).""",
)
@click.option("--user", metavar="USER", help="The user ('' removes it).")
@click.option("--workdir", metavar="DIR", help="The working directory ('' removes it).")
@click.option(
    "--annotation",
    "annotations",
    multiple=True,
    metavar="K=V",
    help="An annotation on the manifest (repeatable; makes a Docker image OCI).",
)
@click.option("--created", metavar="TIMESTAMP", help="The config's creation time (RFC 3339).")
@build_flags
@common_options
def mutate_cmd(opts: CommonOptions, source: str, **flags: Any) -> None:
    """Change SOURCE's config (labels, env, entrypoint, cmd, user, workdir) or its manifest
    annotations, server-side; layers are kept (mounted, never pulled).

    Labels and environment variables not named are kept; remove one with --remove-label /
    --remove-env. Every platform of an index is changed alike.
    """
    from ..building import ConfigChanges, mutate

    changes = ConfigChanges(
        labels=_pairs(flags.pop("labels"), "--label"),
        remove_labels=flags.pop("remove_labels"),
        env=_pairs(flags.pop("env"), "--env"),
        remove_env=flags.pop("remove_env"),
        entrypoint=_argv(flags.pop("entrypoint"), "--entrypoint"),
        cmd=_argv(flags.pop("cmd"), "--cmd"),
        user=flags.pop("user"),
        workdir=flags.pop("workdir"),
        annotations=_pairs(flags.pop("annotations"), "--annotation"),
    )
    created = flags.pop("created")
    run_build(
        opts,
        flags,
        lambda client, to, o: mutate(client, source, to=to, changes=changes, options=o),
        created=created,
    )


@click.command("append")
@click.argument("base")
@click.option(
    "--layer",
    "layers",
    multiple=True,
    required=True,
    metavar="PATH",
    help="A directory, a .tar or a compressed tarball (.tar.gz, zstd) to add (repeatable).",
)
@click.option(
    "--created",
    metavar="TIMESTAMP",
    help="The creation time of the config and new history entries (RFC 3339; default: "
    "SOURCE_DATE_EPOCH when set).",
)
@build_flags
@common_options
def append_cmd(
    opts: CommonOptions, base: str, layers: tuple[str, ...], created: str | None, **flags: Any
) -> None:
    """Add layers made from directories or tarballs on top of BASE, server-side.

    \b
    A directory is tarred deterministically (sorted names, owner 0:0, modes and times kept,
    clamped to SOURCE_DATE_EPOCH when it is set), so the same directory gives the same
    digest; a .tar is compressed; a .tar.gz (or zstd) is used byte for byte. BASE's layers
    are mounted or streamed, never pulled; every platform of an index gets the same layers.
    """
    from pathlib import Path

    from ..building import append

    epoch = _source_date_epoch()
    run_build(
        opts,
        flags,
        lambda client, to, o: append(
            client,
            base,
            to=to,
            layers=[Path(p) for p in layers],
            source_date_epoch=epoch,
            options=o,
        ),
        created=created,
    )


@click.command("flatten")
@click.argument("source", metavar="SRC")
@click.option(
    "--created",
    metavar="TIMESTAMP",
    help="The creation time of the config and its history entry (RFC 3339).",
)
@build_flags
@common_options
def flatten_cmd(opts: CommonOptions, source: str, created: str | None, **flags: Any) -> None:
    """Squash SRC's layers into one, whiteouts applied; keep its config otherwise.

    The only build that reads layers: each is streamed once, verified, and spilled to a
    temporary file (TMPDIR), never held in memory. --dry-run lists the layers it would read
    and reads none. Every platform of an index is flattened.
    """
    from ..building import flatten

    run_build(
        opts,
        flags,
        lambda client, to, o: flatten(client, source, to=to, options=o),
        created=created,
    )


def _source_date_epoch() -> int | None:
    """``SOURCE_DATE_EPOCH`` from the environment (reproducible-builds.org): None when unset
    or empty."""
    import os

    text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise click.UsageError(
            f"SOURCE_DATE_EPOCH {text!r}: expected a whole number of seconds since 1970"
        )
    return int(text)


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.UsageError(f"{flag} {value!r}: expected KEY=VALUE")
        pairs[key] = text
    return pairs


def _argv(value: str | None, flag: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
        raise click.UsageError(
            f'{flag} {value!r}: expected a JSON array of strings, e.g. \'["/bin/app","-v"]\''
        )
    return tuple(parsed)


COMMANDS = (merge_cmd, mutate_cmd, rebase_cmd, append_cmd, flatten_cmd)
