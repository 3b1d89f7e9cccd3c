"""The mirroring case: ``regshift sync FILE`` of 200 tags, 50 of them changed since the
destination's last sync, against ``skopeo sync --src yaml`` and a loop of ``skopeo copy``;
the same plan in two shards at once; and a re-run with everything up to date."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from build_cases import _json_out
from cases import (
    REGSHIFT_KEY,
    SKOPEO_KEY,
    Context,
    Maker,
    Row,
    _repeat,
    _shell_loop,
    skopeo_copy,
)
from registry_io import RegistryIO, SeededImage, build_image, random_blob
from runner import REGSHIFT, Run, measure

SOURCE_REPO = "sync-src"  # one path component: skopeo sync names the destination after it
WRITES = ("POST", "PUT", "PATCH", "DELETE")

State = dict[str, SeededImage]  # tag -> image


def _states(ctx: Context) -> tuple[State, State]:
    """The destination's last-synced state and the source's current one (``sync_changed`` tags,
    spread over the range, moved to new images)."""
    s = ctx.settings
    images = [
        build_image(
            SOURCE_REPO,
            "",
            [random_blob(17000 + 2 * i + j, s.sync_layer_size) for j in range(2)],
            label=f"sync-{i}",
        )
        for i in range(s.sync_images + s.sync_new_images)
    ]
    old_images, new_images = images[: s.sync_images], images[s.sync_images :]
    tags = [f"t{i:03d}" for i in range(s.sync_tags)]
    old = {tag: old_images[i % len(old_images)] for i, tag in enumerate(tags)}
    step = s.sync_tags // s.sync_changed
    changed = tags[::step][: s.sync_changed]
    new = dict(old) | {tag: new_images[i % len(new_images)] for i, tag in enumerate(changed)}
    return old, new


def seed_state(io: RegistryIO, repository: str, state: State) -> None:
    """What a sync leaves at ``repository``: every image's blobs, each tag's manifest bytes."""
    pushed: set[str] = set()
    for tag, image in state.items():
        if image.digest not in pushed:
            for blob in image.blobs:
                io.push_blob(repository, blob)
            pushed.add(image.digest)
        io.put_manifest(repository, tag, image.manifest, image.media_type)


def check_state(io: RegistryIO, repository: str, state: State) -> str:
    """Empty when every tag of ``state`` at ``repository`` has its image's digest."""
    wrong = [t for t, im in state.items() if io.manifest_digest(repository, t) != im.digest]
    return (
        f"{len(wrong)} of {len(state)} tags wrong at {repository}, e.g. {wrong[0]}" if wrong else ""
    )


def _writes(run: Run, host: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for logged_host, q in run.logged:
        if logged_host == host:
            counts[q.method] = counts.get(q.method, 0) + 1
    return dict(sorted(counts.items()))


def _summary_problem(doc: Mapping[str, Any], copied: int, up_to_date: int) -> str:
    summary = doc.get("summary", {})
    got = (summary.get("copied"), summary.get("up-to-date"), summary.get("failed"))
    if got != (copied, up_to_date, 0):
        return f"summary copied/up-to-date/failed {got}, expected ({copied}, {up_to_date}, 0)"
    return ""


def sync_200(ctx: Context) -> list[Row]:
    a, b = ctx.reg_a, ctx.reg_b
    old, new = _states(ctx)
    changed = sum(old[t].digest != new[t].digest for t in new)
    src_io, dst_io = RegistryIO(a.host), RegistryIO(b.host)
    ctx.log(f"  seeding {len(new)} tags at A/{SOURCE_REPO}")
    seed_state(src_io, SOURCE_REPO, new)
    case, n = "sync-200", len(new)

    def fresh(prefix: str) -> Callable[[int], str]:
        """A destination per run, holding what the last (untimed) sync left: the old state."""

        def make(rep: int) -> str:
            dest = f"sync/{prefix}-{rep}"
            seed_state(dst_io, f"{dest}/{SOURCE_REPO}", old)
            return dest

        return make

    def sync_file(dest: str) -> Path:
        path = ctx.workdir / f"sync-{dest.replace('/', '-')}.yaml"
        path.write_text(
            f"sync:\n  - source: {a.host}/{SOURCE_REPO}\n"
            f"    destination: {b.host}/{dest}/{SOURCE_REPO}\n"
        )
        return path

    def check_sync(
        dest: str, copied: int, docs: Callable[[Run], list[Any] | str]
    ) -> Callable[[Run], str]:
        def check(run: Run) -> str:
            found = docs(run)
            if isinstance(found, str):
                return found
            run.extra["destMethods"] = _writes(run, b.host)
            units = [u for doc in found for u in doc.get("units", [])]
            names = [u.get("destination") for u in units]
            if len(names) != n or len(set(names)) != n:
                return f"{len(names)} units ({len(set(names))} distinct), expected {n} once each"
            summary = {
                k: sum(doc.get("summary", {}).get(k, 0) for doc in found)
                for k in ("copied", "up-to-date", "failed")
            }
            problem = _summary_problem({"summary": summary}, copied, n - copied)
            return problem or check_state(dst_io, f"{dest}/{SOURCE_REPO}", new)

        return check

    def one_doc(run: Run) -> list[Any] | str:
        doc = _json_out(run, "sync")
        return doc if isinstance(doc, str) else [doc]

    def regshift_run(dest: str, copied: int) -> Run:
        """One ``regshift sync --json`` into ``dest``, checked there."""
        cmd = [REGSHIFT, "sync", "--json", str(sync_file(dest))]
        check = check_sync(dest, copied, one_doc)
        return measure(cmd, workdir=ctx.workdir, registries=[a, b], check=check)

    def regshift(rep: int) -> Run:
        return regshift_run(fresh("regshift")(rep), changed)

    def shards(rep: int) -> Run:
        dest = fresh("shards")(rep)
        path = sync_file(dest)
        outs = [ctx.workdir / f"shard-{rep}-{i}.json" for i in range(2)]
        script = "\n".join(
            [
                *(
                    f"{REGSHIFT} sync --json --shard {i}/2 {path} > {out} & p{i}=$!"
                    for i, out in enumerate(outs)
                ),
                "wait $p0 && wait $p1",
            ]
        )

        def docs(run: Run) -> list[Any] | str:
            found = []
            for out in outs:
                try:
                    found.append(json.loads(out.read_text()))
                except (OSError, ValueError):
                    return f"no JSON from shard {out.name}"
            run.extra["shardUnits"] = [len(d.get("units", [])) for d in found]
            return found

        try:
            return measure(
                ["bash", "-ec", script],
                workdir=ctx.workdir,
                registries=[a, b],
                check=check_sync(dest, changed, docs),
            )
        finally:
            for out in outs:
                out.unlink(missing_ok=True)

    def skopeo_yaml(dest: str) -> Path:
        path = ctx.workdir / f"skopeo-{dest.replace('/', '-')}.yaml"
        path.write_text(
            f"{a.host}:\n  tls-verify: false\n  images-by-tag-regex:\n    {SOURCE_REPO}: '.*'\n"
        )
        return path

    def skopeo_sync_cmd(dest: str) -> list[str]:
        return [
            "skopeo",
            "sync",
            "--all",
            "--preserve-digests",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
            str(skopeo_yaml(dest)),
            f"{b.host}/{dest}",
        ]

    def skopeo_run(cmd: list[str], dest: str) -> Run:
        """One skopeo command line into ``dest``, checked there."""

        def check(run: Run) -> str:
            run.extra["destMethods"] = _writes(run, b.host)
            return check_state(dst_io, f"{dest}/{SOURCE_REPO}", new)

        return measure(cmd, workdir=ctx.workdir, registries=[a, b], skopeo=True, check=check)

    def skopeo_sync(rep: int) -> Run:
        dest = fresh("skopeo")(rep)
        return skopeo_run(skopeo_sync_cmd(dest), dest)

    def skopeo_loop(rep: int) -> Run:
        dest = fresh("skopeo-loop")(rep)
        cmds = [
            skopeo_copy(f"{a.host}/{SOURCE_REPO}:{t}", f"{b.host}/{dest}/{SOURCE_REPO}:{t}")
            for t in new
        ]
        return skopeo_run(_shell_loop(cmds), dest)

    current = {"regshift": "sync/current-regshift", "skopeo": "sync/current-skopeo"}
    for dest in current.values():
        seed_state(dst_io, f"{dest}/{SOURCE_REPO}", new)

    def regshift_current(rep: int) -> Run:
        return regshift_run(current["regshift"], 0)

    def skopeo_current(rep: int) -> Run:
        return skopeo_run(skopeo_sync_cmd(current["skopeo"]), current["skopeo"])

    rows = [
        Row(
            case,
            "regshift sync",
            case,
            "regshift sync --json FILE (one repository entry, every tag)",
            baseline=True,
            key=REGSHIFT_KEY,
        ),
        Row(
            case,
            "regshift sync, 2 shards at once",
            case,
            "regshift sync --json --shard 0/2 FILE & regshift sync --json --shard 1/2 FILE",
            key="regshift-shards",
        ),
        Row(
            case,
            "skopeo sync --src yaml",
            case,
            "skopeo sync --all --preserve-digests --src yaml --dest docker FILE B/DEST",
            note="empty blob-info cache",
            key=SKOPEO_KEY,
        ),
        Row(
            case,
            f"skopeo copy x {n}",
            case,
            f"skopeo copy --all --preserve-digests of each tag, {n} processes in one bash",
            note="sequential; one empty blob-info cache for the batch",
            key="skopeo-loop",
        ),
        Row(
            case,
            "regshift sync (up to date)",
            case,
            "regshift sync --json FILE, destination already at every source digest",
            key="regshift-current",
        ),
        Row(
            case,
            "skopeo sync (up to date)",
            case,
            "skopeo sync … FILE B/DEST, destination already at every source digest",
            note="empty blob-info cache",
            key="skopeo-current",
        ),
    ]
    makers: list[Maker] = [
        regshift,
        shards,
        skopeo_sync,
        skopeo_loop,
        regshift_current,
        skopeo_current,
    ]
    _repeat(ctx, list(zip(rows, makers, strict=True)))
    for row in rows:
        last = row.runs[-1].extra if row.runs else {}
        methods = last.get("destMethods")
        if methods:
            text = "at B: " + ", ".join(f"{c} {m}" for m, c in methods.items())
            row.note = "; ".join(x for x in (row.note, text) if x)
        if last.get("shardUnits"):
            row.note += f"; units per shard {last['shardUnits']}"
    return rows


SYNC_CASES = {"sync-200": sync_200}
