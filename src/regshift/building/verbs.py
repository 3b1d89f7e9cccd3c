"""The build verbs: ``merge``, ``mutate``, ``rebase`` and ``build`` (a base plus new layers,
under ``append`` and ``flatten``), each one composition per platform over one driver."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from ..client import Client
from ..errors import IncompatibleInputs
from ..layout_reference import LayoutReference
from ..manifests import Descriptor
from ..reference import Reference, refuse_fallback_tag
from ..storage import Repository, open_repository, parse_location
from .configs import JSONObject, changed, history_after, with_layers
from .inputs import Input, PlatformInputs, pair, read_sources
from .options import BuildOptions, BuildResult, ConfigChanges, LayerBlob
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
    location = parse_location(to, default_tag="latest")
    refuse_fallback_tag(location.name, location.tag, force=opts.force)
    repos = [open_repository(client, r) for r in refs]
    dest_repo = None
    if isinstance(location, Reference):
        dest_repo = open_repository(client, location)
    repos, dest_repo = _shared_scopes(repos, dest_repo)
    sources = read_sources(repos)
    groups = pair(sources, opts.platforms)
    plans = [compose(g) for g in groups]
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
