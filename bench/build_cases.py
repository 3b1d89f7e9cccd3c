"""The build cases: ``regshift merge`` on one registry and across two, ``regshift flatten`` of
the 1 GiB image against ``umoci unpack`` + ``tar`` + ``gzip``."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cases import (
    CRANE,
    CRANE_KEY,
    REGSHIFT_KEY,
    SKOPEO,
    SKOPEO_KEY,
    Context,
    Maker,
    Row,
    Settings,
    Tool,
    _mib,
    _repeat,
    _seed,
    _shell_loop,
    big_image,
    big_layer_entries,
)
from registry_io import (
    MiB,
    RegistryIO,
    SeededImage,
    TarEntry,
    build_image,
    list_layer,
    random_blob,
)
from runner import REGSHIFT, Run, Sandbox, measure, timed

# -- blob traffic from the access log ---------------------------------------------------------


def blob_traffic(run: Run, host: str, sizes: Mapping[str, int]) -> dict[str, int]:
    """What the registry ``host`` logged for blobs during ``run``: layer bytes it served
    (GETs of the digests in ``sizes``), uploads completed (``PUT …?digest=``), the layer
    bytes those carried (sizes of the known digests), and cross-repository mounts (201)."""
    out = dict.fromkeys(("layerBytesServed", "uploads", "layerBytesUploaded", "mounts"), 0)
    for logged_host, q in run.logged:
        if logged_host != host:
            continue
        target = urlsplit(q.path)
        if q.method == "GET" and q.status in (200, 206) and "/blobs/" in target.path:
            if target.path.rsplit("/", 1)[1] in sizes:
                out["layerBytesServed"] += q.bytes_sent
        elif q.method == "PUT" and q.status == 201 and "/blobs/uploads/" in target.path:
            out["uploads"] += 1
            digest = parse_qs(target.query).get("digest", [""])[0]
            out["layerBytesUploaded"] += sizes.get(digest, 0)
        elif q.method == "POST" and q.status == 201 and "mount=" in target.query:
            out["mounts"] += 1
    return out


def _json_out(run: Run, command: str) -> dict[str, Any] | str:
    """The JSON document a regshift command printed, or what is wrong."""
    try:
        doc = json.loads(run.stdout)
    except ValueError:
        return f"regshift {command} --json printed no JSON: {run.stdout[:200]!r}"
    return doc if isinstance(doc, dict) else f"regshift {command} --json: not an object"


# -- merge ------------------------------------------------------------------------------------


@cache
def merge_inputs(settings: Settings) -> tuple[SeededImage, ...]:
    """Three images of ``merge_layers`` random layers each, sharing none (FROM scratch)."""
    return tuple(
        build_image(
            f"bench/merge-{i}",
            "1.0",
            [
                random_blob(15000 + 10 * i + j, settings.merge_layer_size)
                for j in range(settings.merge_layers)
            ],
            label=f"merge-{i}",
        )
        for i in range(settings.merge_images)
    )


def _seed_merge(ctx: Context) -> tuple[tuple[SeededImage, ...], list[str], dict[str, int]]:
    images = merge_inputs(ctx.settings)
    for image in images:
        _seed(ctx, image)
    refs = [f"{ctx.reg_a.host}/{im.repository}:1.0" for im in images]
    sizes = {b.digest: b.size for im in images for b in im.layers}
    return images, refs, sizes


def check_merged(io: RegistryIO, repo: str, tag: str, images: Sequence[SeededImage]) -> str:
    """Empty when ``repo:tag`` has every input's layers in order, present in ``repo``, with
    the config's diff_ids and one non-empty history entry per layer (when it has history)."""
    manifest = io.manifest_json(repo, tag)
    if manifest is None:
        return f"no manifest at {repo}:{tag}"
    want = [b.digest for im in images for b in im.layers]
    got = [layer["digest"] for layer in manifest.get("layers", [])]
    if got != want:
        return f"layers {len(got)} differ from the inputs' {len(want)} in order"
    config = io.blob_json(repo, manifest["config"]["digest"])
    if config.get("rootfs", {}).get("diff_ids") != want:  # the inputs' layers are uncompressed
        return "config diff_ids are not the inputs' layers"
    history = [h for h in config.get("history", []) if not h.get("empty_layer")]
    if config.get("history") and len(history) != len(want):
        return f"{len(history)} non-empty history entries for {len(want)} layers"
    missing = [d for d in want if not io.blob_exists(repo, d)]
    return f"{len(missing)} layer(s) not in {repo}, e.g. {missing[0]}" if missing else ""


def _merge_maker(
    ctx: Context,
    refs: Sequence[str],
    dst: Callable[[int], tuple[str, str]],
    io: RegistryIO,
    images: Sequence[SeededImage],
    sizes: Mapping[str, int],
) -> Maker:
    """``regshift merge --json BASE IMAGE... --to DST``, checked at DST's registry."""
    registries = [r for r in (ctx.a, ctx.b) if r is not None]

    def make(rep: int) -> Run:
        repo, tag = dst(rep)

        def check(run: Run) -> str:
            doc = _json_out(run, "merge")
            if isinstance(doc, str):
                return doc
            run.extra.update(blobs=doc.get("blobs"), bytes=doc.get("bytes"))
            run.extra["clientRequests"] = doc.get("requests")
            traffic = {r.host: blob_traffic(run, r.host, sizes) for r in registries}
            run.extra["traffic"] = traffic
            run.extra["layerBytesMoved"] = sum(
                t["layerBytesUploaded"] + t["layerBytesServed"] for t in traffic.values()
            )
            return check_merged(io, repo, tag, images)

        cmd = [REGSHIFT, "merge", "--json", *refs, "--to", f"{io.host}/{repo}:{tag}"]
        return measure(cmd, workdir=ctx.workdir, registries=registries, check=check)

    return make


def _traffic_note(row: Row, names: Mapping[str, str]) -> str:
    """What the registries (``host -> name``) logged for blobs in the row's last run."""
    traffic = row.runs[-1].extra.get("traffic", {}) if row.runs else {}
    parts = [
        f"at {name}: {t['mounts']} mounts, {t['uploads']} blob upload(s) "
        f"({_mib(t['layerBytesUploaded'])} of layers), {_mib(t['layerBytesServed'])} of layers "
        "served"
        for host, name in names.items()
        if (t := traffic.get(host))
    ]
    return "; ".join(parts)


def merge_same_registry(ctx: Context) -> list[Row]:
    a = ctx.reg_a
    images, refs, sizes = _seed_merge(ctx)
    io, case = RegistryIO(a.host), "merge-same-registry"
    total = sum(sizes.values())
    row = Row(
        case,
        "regshift merge",
        case,
        "regshift merge --json BASE IMAGE IMAGE --to A/NEW",
        baseline=True,
        key=REGSHIFT_KEY,
    )
    maker = _merge_maker(
        ctx, refs, lambda rep: (f"merged/regshift-{rep}", "1.0"), io, images, sizes
    )
    _repeat(ctx, [(row, maker)])
    row.note = _traffic_note(row, {a.host: "A"})
    docker = Row(
        case,
        "docker pull + build + push (computed)",
        case,
        f"pull {len(images)} images, build, push: every layer down once and up once",
        info=f"not run (no Docker daemon): {len(sizes)} layers, {_mib(total)} pulled + "
        f"{_mib(total)} pushed = {_mib(2 * total)} of layer bytes moved",
        computed_mib=2 * total / MiB,
    )
    return [row, docker]


def merge_cross_registry(ctx: Context) -> list[Row]:
    a, b = ctx.reg_a, ctx.reg_b
    images, refs, sizes = _seed_merge(ctx)
    io, case = RegistryIO(b.host), "merge-cross-registry"
    regshift_row = Row(
        case,
        "regshift merge",
        case,
        "regshift merge --json BASE IMAGE IMAGE --to B/NEW",
        baseline=True,
        key=REGSHIFT_KEY,
    )
    plan: list[tuple[Row, Maker]] = [
        (
            regshift_row,
            _merge_maker(
                ctx, refs, lambda rep: (f"mergex/regshift-{rep}", "1.0"), io, images, sizes
            ),
        )
    ]
    for tool in (SKOPEO, CRANE):
        plan.append((_copies_row(case, tool, len(images)), _copies_maker(ctx, tool, images)))
    _repeat(ctx, plan)
    regshift_row.note = _traffic_note(regshift_row, {a.host: "A", b.host: "B"})
    return [row for row, _ in plan]


def _copies_row(case: str, tool: Tool, n: int) -> Row:
    verb = "copy" if tool.key in (SKOPEO_KEY, CRANE_KEY) else "image copy"
    return Row(
        case,
        f"{tool.label.split(' (')[0]} x {n} (same layers, no merge)",
        case,
        f"{tool.label.split(' ')[0]} {verb} of each input to B, {n} processes in one bash",
        note="the time to copy the same layers: "
        + ("one empty blob-info cache for the batch" if tool.skopeo else "no cache"),
        key=tool.key,
    )


def _copies_maker(ctx: Context, tool: Tool, images: Sequence[SeededImage]) -> Maker:
    a, b = ctx.reg_a, ctx.reg_b
    io = RegistryIO(b.host)

    def make(rep: int) -> Run:
        repo = f"mergex/{tool.key}-{rep}"
        cmds = [
            tool.argv(f"{a.host}/{im.repository}:1.0", f"{b.host}/{repo}:{i}")
            for i, im in enumerate(images)
        ]

        def check(run: Run) -> str:
            for i, image in enumerate(images):
                problem = io.check_image(repo, str(i), image)
                if problem:
                    return f"input {i}: {problem}"
            return ""

        return measure(
            _shell_loop(cmds),
            workdir=ctx.workdir,
            registries=[a, b],
            skopeo=tool.skopeo,
            check=check,
        )

    return make


# -- flatten ----------------------------------------------------------------------------------


def expected_tree(layers: Sequence[Sequence[TarEntry]]) -> dict[str, str]:
    """The flattened file tree: ``path -> kind`` (dir, link -> target, file), whiteouts
    applied. A hard link is a file (either member of the pair may carry the content)."""
    tree: dict[str, str] = {}
    for entries in layers:
        for e in entries:
            parent, _, base = e.name.rstrip("/").rpartition("/")
            if base.startswith(".wh."):
                gone = f"{parent}/{base[4:]}" if parent else base[4:]
                tree = {k: v for k, v in tree.items() if k != gone and not k.startswith(gone + "/")}
            else:
                tree[e.name.rstrip("/")] = _kind(e.kind, e.target)
    return tree


def _kind(kind: bytes, target: str) -> str:
    if kind == tarfile.DIRTYPE:
        return "dir"
    return f"link -> {target}" if kind == tarfile.SYMTYPE else "file"


def compare_tree(members: Mapping[str, tuple[bytes, int, str]], want: Mapping[str, str]) -> str:
    """Empty when the tar ``members`` hold exactly the tree ``want``; else the first difference."""
    got = {name: _kind(kind, target) for name, (kind, _, target) in members.items()}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing or extra:
        return f"tree differs: missing {missing[:3]}, unexpected {extra[:3]}"
    wrong = [name for name in want if got[name] != want[name]]
    return f"{wrong[0]}: {got[wrong[0]]}, expected {want[wrong[0]]}" if wrong else ""


def _flatten_command() -> tuple[list[str], str]:
    """regshift flatten's command line before SRC, or ([], why it cannot run)."""
    proc = subprocess.run([REGSHIFT, "flatten", "--help"], capture_output=True, text=True)
    if proc.returncode != 0:
        return [], "skipped: this regshift has no `flatten` command yet"
    return [REGSHIFT, "flatten", *(["--json"] if "--json" in proc.stdout else [])], ""


def flatten_1g(ctx: Context) -> list[Row]:
    s, a = ctx.settings, ctx.reg_a
    image = big_image(s)
    _seed(ctx, image)
    src, io, case = f"{a.host}/bench/big:1.0", RegistryIO(a.host), "flatten-1g"
    want = expected_tree(big_layer_entries(s))
    flatten, skipped = _flatten_command()
    ours = Row(
        case,
        "regshift flatten",
        case,
        "regshift flatten --json SRC --to A/NEW",
        baseline=True,
        key=REGSHIFT_KEY,
        info=skipped,
    )
    umoci = Row(
        case,
        "umoci unpack + tar | gzip",
        case,
        "umoci unpack --rootless --image LAYOUT:1.0 BUNDLE && tar -C BUNDLE/rootfs -c . | gzip",
        note="the disk/CPU limit; the layout was copied from A first (skopeo copy, not timed); "
        "writes a local .tar.gz, uploads nothing",
        key="umoci",
    )
    layout = ctx.workdir / "flatten-layout"
    ctx.log("  skopeo copy of the image into an OCI layout for umoci (not timed)")
    sandbox = Sandbox(ctx.workdir, skopeo=True)
    try:
        copied = timed(
            ["skopeo", "copy", "--src-tls-verify=false", f"docker://{src}", f"oci:{layout}:1.0"],
            sandbox.env(),
        )
    finally:
        sandbox.close()
    if copied.returncode != 0:
        raise RuntimeError(f"skopeo copy to a layout failed: {copied.stderr[-300:]}")

    def regshift(rep: int) -> Run:
        repo = f"flat/regshift-{rep}"

        def check(run: Run) -> str:
            if "--json" in flatten:
                doc = _json_out(run, "flatten")
                if isinstance(doc, str):
                    return doc
                run.extra.update(bytes=doc.get("bytes"), clientRequests=doc.get("requests"))
            return check_flattened(io, repo, want, run.extra)

        cmd = [*flatten, src, "--to", f"{a.host}/{repo}:1.0"]
        return measure(cmd, workdir=ctx.workdir, registries=[a], check=check)

    def unpack(rep: int) -> Run:
        bundle, out = ctx.workdir / f"bundle-{rep}", ctx.workdir / f"flat-{rep}.tar.gz"
        script = (
            "set -euo pipefail\n"
            f"umoci unpack --rootless --image {layout}:1.0 {bundle}\n"
            f"tar -C {bundle}/rootfs -c . | gzip > {out}\n"
        )

        def check(run: Run) -> str:
            with out.open("rb") as f:
                listing = list_layer(f, "application/vnd.oci.image.layer.v1.tar+gzip")
            run.extra["gzipBytes"] = out.stat().st_size
            return compare_tree(listing.members, want)

        try:
            return measure(["bash", "-c", script], workdir=ctx.workdir, check=check)
        finally:
            shutil.rmtree(bundle, ignore_errors=True)
            out.unlink(missing_ok=True)

    plan = [(umoci, unpack)] if skipped else [(ours, regshift), (umoci, unpack)]
    try:
        _repeat(ctx, plan)
    finally:
        shutil.rmtree(layout, ignore_errors=True)
    if ours.runs:
        sizes = [r.extra.get("layerSize") for r in ours.runs]
        ours.note = f"one layer of {sizes[-1] / MiB:.1f} MiB; " if sizes[-1] else ""
        ours.note += "checked: diff_id, history and file tree of the result (read back)"
    sizes = [r.extra.get("gzipBytes") for r in umoci.runs]
    if sizes and sizes[-1]:
        umoci.note += f"; {sizes[-1] / MiB:.1f} MiB of .tar.gz"
    return [ours, umoci]


def check_flattened(
    io: RegistryIO, repo: str, want: Mapping[str, str], extra: dict[str, Any]
) -> str:
    """Empty when ``repo:1.0`` is one layer holding the tree ``want``, whose digest and
    diff_id (read back in one pass) match the manifest and config, with one non-empty
    history entry."""
    manifest = io.manifest_json(repo, "1.0")
    if manifest is None:
        return f"no manifest at {repo}:1.0"
    layers = manifest.get("layers", [])
    if len(layers) != 1:
        return f"{len(layers)} layers, expected 1"
    extra["layerSize"], extra["layerMediaType"] = layers[0]["size"], layers[0]["mediaType"]
    config = io.blob_json(repo, manifest["config"]["digest"])
    history = [h for h in config.get("history", []) if not h.get("empty_layer")]
    if len(history) != 1:
        return f"{len(history)} non-empty history entries for 1 layer"
    try:
        listing = io.read_layer(repo, layers[0]["digest"], layers[0]["mediaType"])
    except ValueError as exc:
        return str(exc)
    if listing.digest != layers[0]["digest"]:
        return f"layer blob hashes to {listing.digest}, not {layers[0]['digest']}"
    if config.get("rootfs", {}).get("diff_ids") != [listing.diff_id]:
        return f"config diff_ids {config.get('rootfs')} != the layer's {listing.diff_id}"
    return compare_tree(listing.members, want)


BUILD_CASES = {
    "merge-same-registry": merge_same_registry,
    "merge-cross-registry": merge_cross_registry,
    "flatten-1g": flatten_1g,
}
