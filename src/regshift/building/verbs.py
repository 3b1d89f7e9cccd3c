"""The build verbs: ``merge``, ``mutate``, ``rebase``, ``build`` (a base plus new layer
files), ``append`` (layers made from paths) and ``flatten`` (one layer of an image's
layers), each one composition per platform over one driver."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from ..client import Client
from ..errors import IncompatibleInputs, LayerError
from ..layerfs import NewLayer, flatten_layers, layer_from_path
from ..layout_reference import LayoutReference
from ..manifests import Descriptor, encode_document
from ..mediatypes import MediaType, is_foreign
from ..reference import Reference, refuse_fallback_tag
from ..storage import Repository, open_repository, parse_location
from .configs import JSONObject, changed, history_after, with_layers
from .inputs import Input, PlatformInputs, Source, pair, read_sources
from .options import (
    OUTCOMES,
    BuildOptions,
    BuildResult,
    ConfigChanges,
    ImageResult,
    LayerBlob,
    LayerStep,
)
from .plan import ImagePlan, LocalBlobs, PlannedLayer, has_docker_twin, manifest_annotations
from .writing import Build

Target = str | Reference | LayoutReference
Compose = Callable[[PlatformInputs], ImagePlan]

#: Manifest annotations naming an image's base: wrong once it is rebased.
_BASE_ANNOTATIONS = ("org.opencontainers.image.base.digest", "org.opencontainers.image.base.name")


def merge(
    client: Client,
    base: Target,
    images: Sequence[Target],
    *,
    to: Target,
    config_from: Target | None = None,
    options: BuildOptions | None = None,
) -> BuildResult:
    """A new image of BASE's layers, then each image's own layers, in order.

    An image built on ``base`` (its diff_ids start with the base's) adds the layers after
    the base's; one that shares no layer with it (built FROM scratch) adds all of its own.
    History: the base's entries, then each image's after its base part. Config: the base's
    (or that of ``config_from``, one more input), with the merged ``rootfs`` and ``history``.

    Raises:
        IncompatibleInputs: an image shares only part of the base's layers; the inputs'
            platforms do not match (see :func:`build`).
        RegistryError: reading or writing failed; no tag was written.
    """
    opts = options or BuildOptions()
    if isinstance(images, str | Reference | LayoutReference):
        images = [images]
    refs = [base, *images, *([config_from] if config_from is not None else [])]
    count = len(images) + 1

    def plan(group: PlatformInputs) -> ImagePlan:
        inputs = group.inputs[:count]
        layers, history = _merged(inputs)
        source = group.inputs[-1] if config_from is not None else inputs[0]
        config = with_layers(source.config, [p.diff_id for p in layers], history, opts.created)
        return _plan(group, inputs, config, layers, manifest_annotations(inputs[0].manifest))

    return _run(client, refs, to, opts, plan)


def _merged(inputs: Sequence[Input]) -> tuple[list[PlannedLayer], list[JSONObject]]:
    base, images = inputs[0], inputs[1:]
    layers, history = _layers_of(base), base.history
    for image in images:
        ids, own = image.diff_ids, base.diff_ids
        if ids[: len(own)] == own:
            skip = len(own)
        elif set(ids) & set(own):
            raise IncompatibleInputs(
                f"{image.name} shares only part of the layers of {base.name}: "
                f"{_first_difference(ids, own)}; it can be merged only when built on all "
                "of them or on none"
            )
        else:
            skip = 0
        layers += _layers_of(image)[skip:]
        history = history + history_after(image.history, base.history, skip)
    return layers, history


def rebase(
    client: Client,
    image: Target,
    *,
    old_base: Target,
    new_base: Target,
    to: Target,
    options: BuildOptions | None = None,
) -> BuildResult:
    """``image`` with the layers of ``old_base`` (which it must start with) replaced by those
    of ``new_base``; history likewise; the image's config otherwise.

    Raises:
        IncompatibleInputs: the image's layers do not start with the old base's (the message
            names the first that differs).
        RegistryError: reading or writing failed; no tag was written.
    """
    opts = options or BuildOptions()

    def plan(group: PlatformInputs) -> ImagePlan:
        mine, old, new = group.inputs
        ids, old_ids = mine.diff_ids, old.diff_ids
        if ids[: len(old_ids)] != old_ids:
            raise IncompatibleInputs(
                f"{mine.name} is not built on {old.name}: {_first_difference(ids, old_ids)}"
            )
        layers = _layers_of(new) + _layers_of(mine)[len(old_ids) :]
        history = new.history + history_after(mine.history, old.history, len(old_ids))
        config = with_layers(mine.config, [p.diff_id for p in layers], history, opts.created)
        annotations = manifest_annotations(mine.manifest)
        for key in _BASE_ANNOTATIONS:
            annotations.pop(key, None)
        return _plan(group, group.inputs, config, layers, annotations)

    return _run(client, [image, old_base, new_base], to, opts, plan)


def mutate(
    client: Client,
    source: Target,
    *,
    to: Target,
    changes: ConfigChanges,
    options: BuildOptions | None = None,
) -> BuildResult:
    """``source`` with its config edited (labels, env, entrypoint, cmd, user, workdir),
    annotations set on the manifest(s), and ``options.created`` as its creation time.

    Raises:
        RegistryError: reading or writing failed; no tag was written.
    """
    opts = options or BuildOptions()

    def plan(group: PlatformInputs) -> ImagePlan:
        (image,) = group.inputs
        config = changed(image.config, changes)
        if opts.created is not None:
            config["created"] = opts.created
        annotations = {**manifest_annotations(image.manifest), **changes.annotations}
        result = _plan(group, group.inputs, config, _layers_of(image), annotations)
        return replace(result, docker=result.docker and not changes.annotations)

    return _run(client, [source], to, opts, plan, extra_annotations=changes.annotations)


def build(
    client: Client,
    base: Target,
    *,
    to: Target,
    add_layers: Sequence[LayerBlob],
    options: BuildOptions | None = None,
) -> BuildResult:
    """``base`` (every platform of it, or those asked for) with ``add_layers`` on top.

    Each new layer's blob is uploaded from its file, verified against its digest and size
    (the same upload path as a copy, into registries and layouts alike), and gets a history
    entry of its own (``created_by``; ``created`` only when ``options.created`` is set). A
    Docker base stays Docker when every new layer is gzip (its Docker twin), else the result
    is OCI. This is the core of ``append`` and ``flatten``.

    Raises:
        RegistryError: reading or writing failed; no tag was written.
    """
    opts = options or BuildOptions()
    local = LocalBlobs()
    for layer in add_layers:
        local.add(layer.digest, layer.path)

    def plan(group: PlatformInputs) -> ImagePlan:
        (image,) = group.inputs
        added = [
            PlannedLayer(_new_descriptor(layer), layer.diff_id, local, f"file:{layer.path}")
            for layer in add_layers
        ]
        layers = _layers_of(image) + added
        entries = [_history_entry(layer.created_by, opts.created) for layer in add_layers]
        config = with_layers(
            image.config, [p.diff_id for p in layers], image.history + entries, opts.created
        )
        result = _plan(group, group.inputs, config, layers, manifest_annotations(image.manifest))
        docker = result.docker and all(has_docker_twin(layer.media_type) for layer in add_layers)
        return replace(result, docker=docker)

    return _run(client, [base], to, opts, plan, local=local)


def append(
    client: Client,
    base: Target,
    *,
    to: Target,
    layers: Sequence[str | Path],
    source_date_epoch: int | None = None,
    options: BuildOptions | None = None,
) -> BuildResult:
    """``base`` (every platform of it, or those asked for) with one new layer per path on
    top: a directory (tarred deterministically), a tar (compressed with gzip), or a gzip /
    zstd compressed tar (used byte for byte). Each layer file is made once and added to
    every platform.

    Args:
        source_date_epoch: ``SOURCE_DATE_EPOCH``: directory entries newer than it are
            clamped to it, and, unless ``options.created`` is set, it is the ``created``
            time of the new config and history entries.

    Raises:
        InvalidLayerSource: a path does not exist or is not a directory or a valid tar.
        RegistryError: reading or writing failed; no tag was written.
    """
    opts = options or BuildOptions()
    paths = [layers] if isinstance(layers, str | Path) else list(layers)
    if not paths:
        raise ValueError("append needs at least one layer path")
    parse_location(to, default_tag="latest")  # a bad destination before any layer is made
    if source_date_epoch is not None and opts.created is None:
        opts = replace(opts, created=epoch_time(source_date_epoch))
    with contextlib.ExitStack() as stack:
        made = [
            stack.enter_context(layer_from_path(Path(p), source_date_epoch=source_date_epoch))
            for p in paths
        ]
        return build(client, base, to=to, add_layers=made, options=opts)


def epoch_time(seconds: int) -> str:
    """``SOURCE_DATE_EPOCH`` (seconds since 1970, UTC) as an RFC 3339 timestamp."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def flatten(
    client: Client,
    source: Target,
    *,
    to: Target,
    options: BuildOptions | None = None,
) -> BuildResult:
    """``source`` (every platform of it, or those asked for) with one layer: the file tree
    its layers produce, whiteouts applied. Its config is kept, with that one layer in
    ``rootfs`` and one history entry saying what made it (``created`` only when
    ``options.created`` is set); base-image annotations of the manifest are dropped.

    The layers are read (the only build that reads them): streamed from the source,
    verified, spilled to temporary files (``TMPDIR``); ``options.progress`` gets the bytes
    read per layer. A dry run reads none: it lists the layers that would be read.

    Raises:
        LayerError: a layer is not a valid (compressed) tar, cannot be applied, or is a
            foreign layer (its blob is kept elsewhere).
        RegistryError: reading or writing failed; no tag was written.
    """
    opts = options or BuildOptions()
    if opts.dry_run:
        return _flatten_plan(client, source, to, opts)
    local = LocalBlobs()
    work = Path(tempfile.mkdtemp(prefix="regshift-flat-"))
    try:

        def plan(group: PlatformInputs) -> ImagePlan:
            (image,) = group.inputs
            layer = _flattened(image, opts, work)
            local.add(layer.digest, layer.path)
            added = PlannedLayer(
                _new_descriptor(layer), layer.diff_id, local, f"flatten:{image.name}"
            )
            config = _flat_config(image, layer.diff_id, layer.created_by, opts.created)
            result = _plan(group, group.inputs, config, [added], _flat_annotations(image))
            return replace(result, docker=result.docker and has_docker_twin(layer.media_type))

        return _run(client, [source], to, opts, plan, local=local)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _flattened(image: Input, opts: BuildOptions, work: Path) -> NewLayer:
    """The one layer of ``image``'s layers, read through its repository (progress events
    name the source read), its blob moved into ``work``: the spilled layers are removed
    at once, not kept until every platform is written."""
    for desc in image.manifest.layers:
        if is_foreign(desc.media_type):
            raise LayerError(
                f"{image.name}: layer {desc.digest} is a foreign layer (its blob is kept "
                "elsewhere); flatten cannot read it"
            )
    where = f"flatten: read from {image.name}"
    with flatten_layers(
        image.repo.open_blob,
        image.manifest.layers,
        progress=lambda event: opts.progress(replace(event, destination=where)),
        created_by=_flat_created_by(image),
    ) as layer:
        kept = work / f"{layer.digest.partition(':')[2]}.tar.gz"
        shutil.move(layer.path, kept)
    return replace(layer, path=kept)


def _flat_config(
    image: Input, diff_id: str | None, created_by: str, created: str | None
) -> JSONObject:
    ids = [diff_id] if diff_id is not None else []
    return with_layers(image.config, ids, [_history_entry(created_by, created)], created)


def _flat_annotations(image: Input) -> dict[str, str]:
    annotations = manifest_annotations(image.manifest)
    for key in _BASE_ANNOTATIONS:  # it is no longer layered on that base
        annotations.pop(key, None)
    return annotations


def _flatten_plan(client: Client, source: Target, to: Target, opts: BuildOptions) -> BuildResult:
    """What ``flatten`` would do, without reading a layer: the layers it would read, and
    the config it would write but for the flattened layer's ``diff_id`` (known only once
    the layers are read, like every digest of the result)."""
    started = (time.monotonic(), client.requests)
    found = _read(client, [source], to, opts)
    dest = found.dest or open_repository(client, found.location, create=False)
    images = tuple(_flat_image_plan(group, opts) for group in found.groups)
    top_type = images[0].media_type
    if found.sources[0].index is not None:
        docker = all(i.docker for g in found.groups for i in g.inputs)
        top_type = str(MediaType.DOCKER_MANIFEST_LIST if docker else MediaType.OCI_INDEX)
    return BuildResult(
        destination=f"{dest.name}:{dest.tag}" if dest.tag else dest.name,
        digest="",
        media_type=top_type,
        tags=(dest.tag,) if dest.tag else (),
        platforms=tuple(i.platform for i in images if i.platform),
        images=images,
        blobs=dict.fromkeys(OUTCOMES, 0),
        bytes=dict.fromkeys(OUTCOMES, 0),
        manifests=0,
        requests=client.requests - started[1],
        seconds=time.monotonic() - started[0],
        dry_run=True,
        notes=(
            "the layers are not read in a dry run: the flattened layer's digest and diff_id, "
            "and so the result's digests, are known only once they are",
        ),
    )


def _flat_image_plan(group: PlatformInputs, opts: BuildOptions) -> ImageResult:
    """One platform of a flatten dry run: its layers to read, its config but the diff_id."""
    (image,) = group.inputs
    config = _flat_config(image, None, _flat_created_by(image), opts.created)
    docker = image.docker
    return ImageResult(
        platform=str(group.platform) if group.platform is not None else "",
        digest="",
        media_type=str(MediaType.DOCKER_MANIFEST if docker else MediaType.OCI_MANIFEST),
        config=Descriptor(str(MediaType.DOCKER_CONFIG if docker else MediaType.OCI_CONFIG), "", 0),
        config_json=encode_document(config),
        layers=tuple(LayerStep(d, i, image.name, "read") for d, i in image.layers()),
    )


def _flat_created_by(image: Input) -> str:
    """What made a flattened layer (its input named by digest: the same input, wherever it
    is stored, gives the same history)."""
    return f"regshift flatten {image.manifest.digest}"


def _new_descriptor(layer: LayerBlob) -> Descriptor:
    return Descriptor(layer.media_type, layer.digest, layer.size)


def _history_entry(created_by: str, created: str | None) -> JSONObject:
    entry: JSONObject = {"created": created} if created is not None else {}
    entry["created_by"] = created_by
    return entry


def _layers_of(image: Input) -> list[PlannedLayer]:
    return [PlannedLayer(d, diff_id, image.repo, image.name) for d, diff_id in image.layers()]


def _first_difference(ids: Sequence[str], base: Sequence[str]) -> str:
    """Names the first layer where ``ids`` leaves ``base``."""
    for position, expected in enumerate(base):
        if position >= len(ids):
            return f"it has {len(ids)} layer(s), the base {len(base)}"
        if ids[position] != expected:
            return f"layer {position + 1} is {ids[position]}, the base's is {expected}"
    return "the layers match"


def _plan(
    group: PlatformInputs,
    inputs: Sequence[Input],
    config: JSONObject,
    layers: list[PlannedLayer],
    annotations: Mapping[str, str],
) -> ImagePlan:
    return ImagePlan(
        platform=group.platform,
        entry=group.inputs[0].entry,
        config=config,
        layers=tuple(layers),
        annotations=dict(annotations),
        docker=all(i.docker for i in inputs),
    )


@dataclass(frozen=True, slots=True)
class _Inputs:
    """A build's inputs, read and paired by platform, and its destination."""

    location: Reference | LayoutReference
    dest: Repository | None  # a registry destination (a layout is opened once needed)
    sources: list[Source]
    groups: list[PlatformInputs]


def _read(client: Client, refs: Sequence[Target], to: Target, opts: BuildOptions) -> _Inputs:
    """Check DST, then read the inputs (manifests and configs) and pair them."""
    location = parse_location(to, default_tag="latest")
    refuse_fallback_tag(location.name, location.tag, force=opts.force)
    repos = [open_repository(client, r) for r in refs]
    dest_repo = None
    if isinstance(location, Reference):
        dest_repo = open_repository(client, location)
    repos, dest_repo = _shared_scopes(repos, dest_repo)
    sources = read_sources(repos)
    return _Inputs(location, dest_repo, sources, pair(sources, opts.platforms))


def _run(
    client: Client,
    refs: Sequence[Target],
    to: Target,
    opts: BuildOptions,
    compose: Compose,
    *,
    local: LocalBlobs | None = None,
    extra_annotations: Mapping[str, str] | None = None,
) -> BuildResult:
    """Read the inputs, compose each platform's image, write them (DST checked first)."""
    started = (time.monotonic(), client.requests)
    found = _read(client, refs, to, opts)
    location, dest_repo, sources = found.location, found.dest, found.sources
    plans = [compose(g) for g in found.groups]
    if dest_repo is None:  # a layout is created only once the inputs are known to be good
        dest_repo = open_repository(client, location, create=not opts.dry_run)
    index = sources[0].index
    annotations = None
    if index is not None:
        annotations = {**manifest_annotations(index), **(extra_annotations or {})}
    writer = Build(
        client,
        dest_repo,
        plans,
        index_annotations=annotations,
        options=opts,
        local=local,
        started=started,
    )
    return writer.run()


def _shared_scopes(
    repos: list[Repository], dest: Repository | None
) -> tuple[list[Repository], Repository | None]:
    """One token per registry for the whole build: every repository on a registry asks for
    pull on each input there and push on the destination (a mount needs both)."""
    scopes: dict[str, list[str]] = {}
    for repo in repos:
        scope = repo.scope("pull")
        if repo.endpoint is not None and scope:
            scopes.setdefault(repo.endpoint, []).append(scope)
    if dest is not None and dest.endpoint is not None:
        scope = dest.scope("pull,push")
        if scope:
            scopes.setdefault(dest.endpoint, []).append(scope)

    def scoped(repo: Repository) -> Repository:
        wanted = scopes.get(repo.endpoint or "")
        return repo.with_scopes(list(dict.fromkeys(wanted))) if wanted else repo

    return [scoped(r) for r in repos], scoped(dest) if dest is not None else None
