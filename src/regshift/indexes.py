"""Multi-platform images assembled from single-platform ones, without pulling anything.

``index_create`` makes a new image index whose entries are the source manifests (their
bytes and digests unchanged), each with the platform its config names; ``index_add``,
``index_remove`` and ``index_annotate`` change an existing index. Every verb writes in the
same order as a copy: the children and their blobs are brought into the destination
repository first, with the copy machinery (:mod:`regshift.copying`: mounted within one
registry, streamed across registries and from layouts, verified), then the index by
digest and under its tag, last. A failure writes no tag.

What regshift writes is its one stable JSON form (:func:`regshift.storage.fallback.encode_index`):
compact, keys in a fixed order, so the same entries in the same order give the same digest.
Entries an existing index already lists are kept as they are listed, byte for byte.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from .client import Client
from .copying.options import BlobAction, BlobStep, CopyOptions
from .copying.running import Destination, Run
from .copying.workers import workers
from .digests import matches
from .errors import (
    DigestMismatch,
    DuplicatePlatform,
    EntryNotFound,
    InvalidReference,
    ManifestError,
    NotFoundInLayout,
    PreconditionFailed,
    UnsupportedMediaType,
)
from .graph import ImageGraph, config_platform, resolve, suffix
from .layout_reference import LayoutReference
from .manifests import Descriptor, Manifest, Platform, parse_manifest
from .mediatypes import MediaType
from .progress import ProgressCallback, ignore
from .reference import Reference
from .storage import Repository, open_repository, parse_location
from .storage.fallback import encode_index
from .transport import default_jobs

__all__ = [
    "IndexEntry",
    "IndexFormat",
    "IndexOptions",
    "IndexResult",
    "index_add",
    "index_annotate",
    "index_create",
    "index_remove",
]

Target = str | Reference | LayoutReference
JSONObject = dict[str, object]


class IndexFormat(StrEnum):
    """The media type of an index regshift creates."""

    OCI = "oci"  # an OCI image index (children keep their own media types)
    DOCKER = "docker"  # a Docker manifest list (every child a Docker schema 2 manifest)


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexOptions:
    """How to build or change an index.

    Attributes:
        platforms: take only these platforms from a source that is an index (a single image
            must be for one of them); :class:`Platform` s or strings (``"linux/arm64"``).
        allow_duplicate_platforms: let the index list one platform more than once (else
            refused; ``index_add`` replaces the entry it already has).
        format: the media type of a new index (``index_create``).
        referrers: also bring the referrers (signatures, SBOMs) of every child along.
        include_foreign: also copy non-distributable (foreign) layers of the children.
        dry_run: plan only; write nothing.
        jobs: blobs transferred at once.
        progress: receives :class:`ProgressEvent` s, one at a time (see ``CopyOptions``).

    Raises:
        ValueError: a platform string is not ``os/arch[/variant]``.
    """

    platforms: tuple[Platform, ...] = ()
    allow_duplicate_platforms: bool = False
    format: IndexFormat = IndexFormat.OCI
    referrers: bool = False
    include_foreign: bool = False
    dry_run: bool = False
    jobs: int = field(default_factory=lambda: default_jobs())
    progress: ProgressCallback = ignore

    def __post_init__(self) -> None:
        object.__setattr__(self, "platforms", _platforms(self.platforms))
        object.__setattr__(self, "format", IndexFormat(self.format))


def _platforms(values: object) -> tuple[Platform, ...]:
    """Platforms from strings or :class:`Platform` s (one of either, or a sequence)."""
    if isinstance(values, str | Platform):
        values = (values,)
    if not isinstance(values, Sequence):
        raise TypeError(f"platforms: expected a sequence, not {values!r}")
    return tuple(p if isinstance(p, Platform) else Platform.parse(str(p)) for p in values)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One entry of the index: a child manifest, its platform, and where it came from."""

    digest: str
    media_type: str
    size: int
    platform: Platform | None
    source: str
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class IndexResult:
    """What one index verb did (or, in a dry run, would do).

    Attributes:
        destination: where the index was written (``repository:tag``).
        index: the index written (or that would be), exact bytes.
        entries: its entries, in order.
        added / replaced / removed: entries added, entries replaced by an added one of the
            same platform (the old ones), entries removed.
        previous: what the tag pointed at before (None: nothing).
        up_to_date: the tag already pointed at this very index; nothing was written.
        blobs / bytes: the children's blobs by outcome (``mounted``, ``streamed``,
            ``skipped``), as for a copy.
        manifests: manifest writes at the destination (children, referrers, the index).
        steps: every blob planned, with its action (and outcome once copied).
        referrers: the referrers copied along.
        notes: what the user should know (an entry replaced, a platform left out).
    """

    destination: str
    index: Manifest = field(repr=False)
    entries: tuple[IndexEntry, ...]
    tags: tuple[str, ...]
    previous: str | None
    dry_run: bool = False
    up_to_date: bool = False
    added: tuple[IndexEntry, ...] = ()
    replaced: tuple[IndexEntry, ...] = ()
    removed: tuple[IndexEntry, ...] = ()
    blobs: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    manifests: int = 0
    steps: tuple[BlobStep, ...] = ()
    referrers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """The digest of the index."""
        return self.index.digest

    @property
    def media_type(self) -> str:
        return self.index.media_type


# -- the verbs -----------------------------------------------------------------------------


def index_create(
    client: Client,
    sources: Sequence[Target],
    destination: Target,
    *,
    options: IndexOptions | None = None,
) -> IndexResult:
    """Make a new index of ``sources`` (in the order given) at ``destination``.

    A source that is an image becomes one entry, with the platform its config names
    (``os``, ``architecture``, ``variant``, ``os.version``, ``os.features``; spelt as
    :meth:`Platform.normalized` does); a source that is an index gives its image entries,
    at every level, as it lists them (``options.platforms`` picks some). The children and
    their blobs are brought into the destination's repository first, then the index is
    written by digest and under the destination's tag.

    Raises:
        ValueError: no sources.
        NotFound / NotFoundInLayout: a source does not exist (nothing is written).
        PlatformNotFound: a source has no image for ``options.platforms``.
        DuplicatePlatform: two entries are for one platform and duplicates are not allowed.
        UnsupportedMediaType: a Docker manifest list of a manifest that is not Docker's.
        ManifestError: an image whose config names no platform.
        RegistryError: the writes failed; no tag was written.
    """
    opts = options or IndexOptions()
    if not sources or isinstance(sources, str | Reference | LayoutReference):
        raise ValueError("index_create: give a sequence of one or more sources")
    target = _open_destination(client, destination, opts)
    target, srcs = _share_scopes(target, [open_repository(client, s) for s in sources])
    parts = [_source_part(src, opts.platforms) for src in srcs]
    items = [item for part in parts for item in part.items]
    _refuse_duplicates(items, opts.allow_duplicate_platforms)
    docker = opts.format is IndexFormat.DOCKER
    media_type = MediaType.DOCKER_MANIFEST_LIST if docker else MediaType.OCI_INDEX
    _check_children(media_type, items)
    index = parse_manifest(encode_index({"mediaType": str(media_type)}, [i.doc for i in items]))
    plan = _Plan(index, tuple(items), added=tuple(i.entry for i in items))
    return _write(client, target, parts, plan, opts)


def index_add(
    client: Client,
    index: Target,
    sources: Sequence[Target],
    *,
    destination: Target | None = None,
    options: IndexOptions | None = None,
) -> IndexResult:
    """Add the entries of ``sources`` (made as :func:`index_create` makes them) after those
    of the index ``index``. An entry for a platform the index already lists takes that
    entry's place (reported in ``replaced``), unless duplicates are allowed. Written back to
    ``index``'s tag, or to ``destination``.

    Raises:
        ManifestError: ``index`` is not an index.
        InvalidReference: ``index`` names a digest (no tag to write back to) and no
            destination is given.
        PreconditionFailed: the index's tag moved while it was being changed (not tagged).
        and what :func:`index_create` raises.
    """
    opts = options or IndexOptions()
    if not sources or isinstance(sources, str | Reference | LayoutReference):
        raise ValueError("index_add: give a sequence of one or more sources")
    current, srcs = _Current.read(client, index, destination, opts, sources)
    parts = [_source_part(src, opts.platforms) for src in srcs]
    added = [item for part in parts for item in part.items]
    _refuse_duplicates(added, opts.allow_duplicate_platforms)
    _check_children(current.manifest.media_type, added)
    items, replaced = _merge(current.items, added, opts.allow_duplicate_platforms)
    plan = _Plan(
        current.rebuild(items),
        tuple(items),
        added=tuple(i.entry for i in added),
        replaced=tuple(old.entry for old, _ in replaced),
        notes=tuple(_replaced_note(old.entry, new.entry) for old, new in replaced),
    )
    kept = [i for i in items if not any(i is a for a in added)]
    return _write(client, current.target, [*parts, *current.parts(kept)], plan, opts, current)


def index_remove(
    client: Client,
    index: Target,
    *,
    platforms: Sequence[Platform | str] = (),
    digests: Sequence[str] = (),
    destination: Target | None = None,
    options: IndexOptions | None = None,
) -> IndexResult:
    """Remove the entries for ``platforms`` (compared as :meth:`Platform.matches` does:
    every entry of that platform) and those of ``digests`` from the index ``index``;
    written back to its tag, or to ``destination``.

    Raises:
        ValueError: neither platforms nor digests given.
        EntryNotFound: a platform or digest names no entry (nothing is written).
        and what :func:`index_add` raises.
    """
    opts = options or IndexOptions()
    wanted = _platforms(platforms)
    digests = [digests] if isinstance(digests, str) else list(digests)
    if not wanted and not digests:
        raise ValueError("index_remove: give platforms or digests to remove")
    current, _ = _Current.read(client, index, destination, opts)
    hits = [_is_named(i, wanted, digests) for i in current.items]
    _require_hits(current, hits, wanted, digests)
    items = [i for i, hit in zip(current.items, hits, strict=True) if not hit]
    removed = tuple(i.entry for i, hit in zip(current.items, hits, strict=True) if hit)
    notes = () if items else ("the index lists no entry any more",)
    plan = _Plan(current.rebuild(items), tuple(items), removed=removed, notes=notes)
    return _write(client, current.target, current.parts(items), plan, opts, current)


def index_annotate(
    client: Client,
    index: Target,
    annotations: Mapping[str, str],
    *,
    platforms: Sequence[Platform | str] = (),
    destination: Target | None = None,
    options: IndexOptions | None = None,
) -> IndexResult:
    """Set ``annotations`` on the index itself, or (with ``platforms``) on its entries for
    those platforms, replacing a value a key already has; written back to its tag, or to
    ``destination``.

    Raises:
        ValueError: no annotations given.
        EntryNotFound: a platform names no entry (nothing is written).
        and what :func:`index_add` raises.
    """
    opts = options or IndexOptions()
    wanted = _platforms(platforms)
    if not annotations:
        raise ValueError("index_annotate: give at least one annotation")
    current, _ = _Current.read(client, index, destination, opts)
    if wanted:
        hits = [_is_named(i, wanted, ()) for i in current.items]
        _require_hits(current, hits, wanted, ())
        pairs = zip(current.items, hits, strict=True)
        items = [_annotated(i, annotations) if hit else i for i, hit in pairs]
        rebuilt = current.rebuild(items)
    else:
        items = list(current.items)
        rebuilt = current.rebuild(items, annotations)
    plan = _Plan(rebuilt, tuple(items))
    return _write(client, current.target, current.parts(items), plan, opts, current)


# -- entries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Item:
    """One entry: its JSON object as the index lists it, and what it says."""

    doc: JSONObject
    entry: IndexEntry


@dataclass(frozen=True, slots=True)
class _Part:
    """A source's share of the work: its entries, and what must reach the destination for
    them (the graph's blobs; ``manifests`` by digest, each after what it lists)."""

    graph: ImageGraph
    manifests: tuple[Manifest, ...]
    items: tuple[_Item, ...] = ()


@dataclass(frozen=True, slots=True)
class _Plan:
    """The index to write and how it came about."""

    index: Manifest
    items: tuple[_Item, ...]
    added: tuple[IndexEntry, ...] = ()
    replaced: tuple[IndexEntry, ...] = ()
    removed: tuple[IndexEntry, ...] = ()
    notes: tuple[str, ...] = ()


def _source_part(src: Repository, platforms: Sequence[Platform]) -> _Part:
    """Resolve one source: an image is one entry (its platform from its config); an index
    gives its image entries, at every level, as it lists them."""
    identifier = src.identifier or "latest"
    where = f"{src.name}{suffix(identifier)}"
    graph = resolve(src, identifier, platforms)
    if graph.entries:
        return _Part(graph, graph.images, tuple(_item(d, d.platform, where) for d in graph.entries))
    image = graph.top
    platform = config_platform(src, image)
    if platform is None:
        raise ManifestError(f"{where}: its config names no platform (os and architecture)")
    return _Part(graph, (image,), (_item(image.descriptor(), platform.normalized(), where),))


def _item(desc: Descriptor, platform: Platform | None, source: str) -> _Item:
    """An entry in regshift's form: mediaType, digest, size, platform, then what else the
    descriptor says (annotations, urls, artifactType)."""
    doc: JSONObject = {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}
    if platform is not None:
        doc["platform"] = _platform_doc(platform)
    if desc.annotations:
        doc["annotations"] = dict(desc.annotations)
    if desc.urls:
        doc["urls"] = list(desc.urls)
    if desc.artifact_type:
        doc["artifactType"] = desc.artifact_type
    entry = IndexEntry(
        desc.digest, desc.media_type, desc.size, platform, source, dict(desc.annotations)
    )
    return _Item(doc, entry)


def _platform_doc(platform: Platform) -> JSONObject:
    """The ``platform`` object, its fields in the image-spec's order."""
    doc: JSONObject = {"architecture": platform.architecture, "os": platform.os}
    if platform.os_version:
        doc["os.version"] = platform.os_version
    if platform.os_features:
        doc["os.features"] = list(platform.os_features)
    if platform.variant:
        doc["variant"] = platform.variant
    return doc


def platform_key(platform: Platform | None) -> tuple[str, ...] | None:
    """What makes two entries "the same platform": os, architecture and variant in their
    normalised spelling, os.version and os.features (Windows images of two versions are two
    platforms). Entries without a real platform (none, or ``unknown/unknown`` like buildx's
    attestation manifests) are never duplicates: None."""
    if platform is None:
        return None
    p = platform.normalized()
    if not p.os or not p.architecture or "unknown" in (p.os, p.architecture):
        return None
    return (p.os, p.architecture, p.variant, p.os_version, *sorted(p.os_features))


def _label(platform: Platform | None) -> str:
    if platform is None:
        return "(no platform)"
    return f"{platform} ({platform.os_version})" if platform.os_version else str(platform)


def _refuse_duplicates(items: Sequence[_Item], allowed: bool) -> None:
    if allowed:
        return
    seen: dict[tuple[str, ...], IndexEntry] = {}
    for item in items:
        key = platform_key(item.entry.platform)
        if key is None:
            continue
        first = seen.setdefault(key, item.entry)
        if first is not item.entry:
            raise DuplicatePlatform(
                f"two entries for {_label(item.entry.platform)}: {first.digest} "
                f"({first.source}) and {item.entry.digest} ({item.entry.source}); "
                "nothing written"
            )


def _check_children(media_type: str, items: Sequence[_Item]) -> None:
    """A Docker manifest list lists Docker schema 2 manifests only (docker knows no other
    child type there); an OCI index may list both kinds."""
    if media_type != MediaType.DOCKER_MANIFEST_LIST:
        return
    for item in items:
        if item.entry.media_type != MediaType.DOCKER_MANIFEST:
            raise UnsupportedMediaType(
                f"{item.entry.source}: a Docker manifest list can only list Docker schema 2 "
                f"manifests, not {item.entry.media_type or 'an entry without a media type'}"
            )


def _merge(
    kept: Sequence[_Item], added: Sequence[_Item], allow_duplicates: bool
) -> tuple[list[_Item], list[tuple[_Item, _Item]]]:
    """``kept``, then ``added``; an added entry for a platform already listed takes that
    entry's place instead (unless duplicates are allowed)."""
    items = list(kept)
    replaced: list[tuple[_Item, _Item]] = []
    for new in added:
        key = platform_key(new.entry.platform)
        at = next(
            (
                n
                for n, old in enumerate(items[: len(kept)])
                if key is not None and platform_key(old.entry.platform) == key
            ),
            None,
        )
        if at is None or allow_duplicates:
            items.append(new)
        else:
            replaced.append((items[at], new))
            items[at] = new
    return items, replaced


def _replaced_note(old: IndexEntry, new: IndexEntry) -> str:
    if old.digest == new.digest:
        return f"the {_label(old.platform)} entry {old.digest} was listed already (rewritten)"
    return f"replaced the {_label(old.platform)} entry {old.digest} with {new.digest}"


def _is_named(item: _Item, platforms: Sequence[Platform], digests: Sequence[str]) -> bool:
    platform = item.entry.platform
    if platform is not None and any(platform.matches(p) for p in platforms):
        return True
    return item.entry.digest in digests


def _require_hits(
    current: _Current, hits: Sequence[bool], platforms: Sequence[Platform], digests: Sequence[str]
) -> None:
    """Every platform and digest named must name an entry."""
    chosen = [i.entry for i, hit in zip(current.items, hits, strict=True) if hit]
    have = ", ".join(_label(i.entry.platform) for i in current.items) or "none"
    for wanted in platforms:
        if not any(e.platform is not None and e.platform.matches(wanted) for e in chosen):
            raise EntryNotFound(
                f"{current.where}: no entry for {wanted} (entries: {have}); nothing written"
            )
    for digest in digests:
        if not any(e.digest == digest for e in chosen):
            raise EntryNotFound(f"{current.where}: no entry {digest}; nothing written")


def _annotated(item: _Item, annotations: Mapping[str, str]) -> _Item:
    old = item.doc.get("annotations")
    merged = {**(old if isinstance(old, dict) else {}), **annotations}
    e = item.entry
    entry = IndexEntry(e.digest, e.media_type, e.size, e.platform, e.source, merged)
    return _Item({**item.doc, "annotations": merged}, entry)


# -- an existing index ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Current:
    """An existing index being changed: where it is, where the result goes (``target``:
    its own tag, or a destination), and its entries, each JSON object as it lists it."""

    repo: Repository
    target: Repository | _Missing
    manifest: Manifest
    doc: JSONObject
    items: tuple[_Item, ...]
    where: str
    back: bool  # written back to its own tag (no destination given)

    @classmethod
    def read(
        cls,
        client: Client,
        index: Target,
        destination: Target | None,
        opts: IndexOptions,
        sources: Sequence[Target] = (),
    ) -> tuple[_Current, list[Repository]]:
        """Open the index, the destination and the sources (one token per registry), and
        read the index."""
        repo = open_repository(client, index)
        identifier = repo.identifier or "latest"
        where = f"{repo.name}{suffix(identifier)}"
        if destination is None and repo.tag is None:
            raise InvalidReference(
                f"{where}: names no tag to write the changed index to; give a destination"
            )
        if destination is None:
            target: Repository | _Missing = repo
        else:
            target = _open_destination(client, destination, opts)
        others = [open_repository(client, s) for s in sources]
        target, (repo, *others) = _share_scopes(target, [repo, *others])
        manifest = repo.get_manifest(identifier)
        if not manifest.is_index:
            raise ManifestError(f"{where}: is a {manifest.media_type}, not an index")
        doc = json.loads(manifest.raw)
        items = tuple(
            _Item(dict(raw), _listed(desc, where))
            for desc, raw in zip(manifest.manifests, doc.get("manifests", []), strict=True)
        )
        return cls(repo, target, manifest, doc, items, where, destination is None), others

    def rebuild(
        self, items: Sequence[_Item], annotations: Mapping[str, str] | None = None
    ) -> Manifest:
        """The index with ``items`` as its entries, every other field kept in place."""
        base = {k: v for k, v in self.doc.items() if k != "manifests"}
        if annotations:
            old = base.get("annotations")
            base["annotations"] = {**(old if isinstance(old, dict) else {}), **annotations}
        raw = encode_index(base, [i.doc for i in items])
        return parse_manifest(raw, self.manifest.media_type)

    def parts(self, kept: Sequence[_Item]) -> list[_Part]:
        """What the kept entries need in another repository: each entry's manifest with
        everything below it. Nothing when the index stays in its own repository."""
        if self.back or (
            not isinstance(self.target, _Missing) and self.target.same_repository(self.repo)
        ):
            return []
        graphs = [resolve(self.repo, d) for d in dict.fromkeys(i.entry.digest for i in kept)]
        return [_Part(g, (*g.children(), g.top)) for g in graphs]


def _listed(desc: Descriptor, where: str) -> IndexEntry:
    platform, annotations = desc.platform, dict(desc.annotations)
    return IndexEntry(desc.digest, desc.media_type, desc.size, platform, where, annotations)


# -- writing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Missing:
    """A destination layout a dry run does not make: it holds nothing yet."""

    name: str
    tag: str | None
    digest: str | None


def _open_destination(
    client: Client, destination: Target, opts: IndexOptions
) -> Repository | _Missing:
    """The destination repository. A layout is made when missing, except in a dry run,
    which writes nothing."""
    try:
        return open_repository(client, destination, create=not opts.dry_run)
    except NotFoundInLayout:
        if not opts.dry_run:
            raise
        ref = parse_location(destination)
        assert isinstance(ref, LayoutReference)  # only a layout can be missing
        return _Missing(f"oci:{ref.path}", ref.tag, ref.digest)


def _share_scopes(
    target: Repository | _Missing, sources: Sequence[Repository]
) -> tuple[Repository | _Missing, list[Repository]]:
    """One token per registry for the whole operation: push on the destination, pull on
    every source there (a cross-repository mount needs both in one token)."""
    scopes: dict[str, list[str]] = {}
    pushed = [] if isinstance(target, _Missing) else [(target, "pull,push")]
    pairs = [*((s, "pull") for s in sources), *pushed]
    for repo, actions in pairs:
        scope = repo.scope(actions)
        if repo.endpoint is not None and scope:
            scopes.setdefault(repo.endpoint, []).append(scope)

    def scoped(repo: Repository) -> Repository:
        if repo.endpoint is None or repo.endpoint not in scopes:
            return repo
        return repo.with_scopes(list(dict.fromkeys(scopes[repo.endpoint])))

    kept = target if isinstance(target, _Missing) else scoped(target)
    return kept, [scoped(s) for s in sources]


class _Tally:
    """What the runs of one write moved, summed."""

    def __init__(self, steps: Sequence[BlobStep] = ()) -> None:
        self.blobs = dict.fromkeys(_OUTCOMES, 0)
        self.bytes = dict.fromkeys(_OUTCOMES, 0)
        self.manifests = 0
        self.steps: list[BlobStep] = list(steps)
        self.referrers: list[str] = []

    def add(self, run: Run, steps: Sequence[BlobStep]) -> None:
        self.steps.extend(steps)
        for outcome in _OUTCOMES:
            self.blobs[outcome] += run.tally.blobs[outcome]
            self.bytes[outcome] += run.tally.bytes[outcome]
        self.manifests += run.manifests
        self.referrers.extend(run.referrers)


_OUTCOMES = ("mounted", "streamed", "skipped")


def _write(
    client: Client,
    target: Repository | _Missing,
    parts: Sequence[_Part],
    plan: _Plan,
    opts: IndexOptions,
    current: _Current | None = None,
) -> IndexResult:
    """Children (blobs, then manifests by digest), then the index by digest and under the
    tag, last; in a dry run, only the plan."""
    index = plan.index
    if target.digest and not matches(index.raw, target.digest):
        raise DigestMismatch(f"destination {target.name}", target.digest, index.digest)
    if isinstance(target, _Missing):  # a dry run into a layout not made yet
        steps = [BlobStep(d, BlobAction.STREAM) for p in parts for d in _blobs(p, opts)]
        return _result(target, plan, None, opts, _Tally(steps))
    back = current is not None and current.back
    if current is not None and back:
        previous: str | None = current.manifest.digest
    else:
        previous = target.head(target.tag) if target.tag else None
    if previous is not None and matches(index.raw, previous):
        return _result(target, plan, previous, opts, _Tally(), up_to_date=True)
    tally = _Tally()
    copy_opts = CopyOptions(
        jobs=opts.jobs,
        include_foreign=opts.include_foreign,
        referrers=opts.referrers,
        progress=opts.progress,
    )
    with workers(opts.jobs) as (pool, cancel):
        for part in parts:
            source = part.graph.source
            run = Run(client, source, Destination(target, source), copy_opts, pool, cancel)
            tally.add(run, _bring(run, part, dry_run=opts.dry_run))
    if not opts.dry_run:
        _put_index(target, index, previous, back)
        tally.manifests += 1
    return _result(target, plan, previous, opts, tally)


def _blobs(part: _Part, opts: IndexOptions) -> list[Descriptor]:
    return part.graph.blobs(opts.include_foreign)


def _put_index(target: Repository, index: Manifest, previous: str | None, back: bool) -> None:
    """The index under the target's tag (by digest when it has none). Written back over
    the index it changes only if that tag has not moved meanwhile (a registry that honours
    conditional requests, a layout checked just before)."""
    tag = target.tag
    if back and tag:
        if not target.replace_manifest(tag, index, previous):
            raise PreconditionFailed(
                f"{target.name}{suffix(tag)} changed while it was being updated; not tagged"
            )
        return
    target.put_manifest(index, [tag] if tag else [], listed=True)


def _bring(run: Run, part: _Part, *, dry_run: bool) -> tuple[BlobStep, ...]:
    """One source's blobs, then its manifests by digest and, as asked, its referrers, at
    the run's destination; return the blob steps (planned only, in a dry run)."""
    steps = run.plan(part.graph)
    if dry_run:
        return steps
    done = run.copy_blobs(steps)
    target, source = run.writer.repo, part.graph.source
    if target.same_repository(source):
        return done
    for manifest in part.manifests:
        looked = time.monotonic()
        if not target.has_manifest(manifest.digest):
            run.manifests += run.put_child(manifest, looked)
    if run.opts.referrers:
        run.copy_referrers(part.graph)
    return done


def _result(
    target: Repository | _Missing,
    plan: _Plan,
    previous: str | None,
    opts: IndexOptions,
    tally: _Tally,
    *,
    up_to_date: bool = False,
) -> IndexResult:
    tag = target.tag
    return IndexResult(
        destination=f"{target.name}{suffix(tag or target.digest)}",
        index=plan.index,
        entries=tuple(i.entry for i in plan.items),
        tags=(tag,) if tag else (),
        previous=previous,
        dry_run=opts.dry_run,
        up_to_date=up_to_date,
        added=plan.added,
        replaced=plan.replaced,
        removed=plan.removed,
        blobs=tally.blobs,
        bytes=tally.bytes,
        manifests=tally.manifests,
        steps=tuple(tally.steps),
        referrers=tuple(tally.referrers),
        notes=plan.notes,
    )
