"""The index verbs: ``index_create``, ``index_add``, ``index_remove``, ``index_annotate``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..client import Client
from ..errors import EntryNotFound
from ..layout_reference import LayoutReference
from ..manifests import Platform, parse_manifest
from ..mediatypes import MediaType
from ..reference import Reference
from ..storage import open_repository
from ..storage.fallback import encode_index
from .entries import (
    annotated,
    check_children,
    is_named,
    label,
    merge,
    parse_platforms,
    refuse_duplicates,
    replaced_note,
)
from .options import IndexFormat, IndexOptions, IndexResult, Target
from .sources import Current, open_destination, share_scopes, source_part
from .writing import Plan, write


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
    target = open_destination(client, destination, opts)
    target, srcs = share_scopes(target, [open_repository(client, s) for s in sources])
    parts = [source_part(src, opts.platforms) for src in srcs]
    items = [item for part in parts for item in part.items]
    refuse_duplicates(items, opts.allow_duplicate_platforms)
    docker = opts.format is IndexFormat.DOCKER
    media_type = MediaType.DOCKER_MANIFEST_LIST if docker else MediaType.OCI_INDEX
    check_children(media_type, items)
    index = parse_manifest(encode_index({"mediaType": str(media_type)}, [i.doc for i in items]))
    plan = Plan(index, tuple(items), added=tuple(i.entry for i in items))
    return write(client, target, parts, plan, opts)


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
    current, srcs = Current.read(client, index, destination, opts, sources)
    parts = [source_part(src, opts.platforms) for src in srcs]
    added = [item for part in parts for item in part.items]
    refuse_duplicates(added, opts.allow_duplicate_platforms)
    check_children(current.manifest.media_type, added)
    items, replaced = merge(current.items, added, opts.allow_duplicate_platforms)
    plan = Plan(
        current.rebuild(items),
        tuple(items),
        added=tuple(i.entry for i in added),
        replaced=tuple(old.entry for old, _ in replaced),
        notes=tuple(replaced_note(old.entry, new.entry) for old, new in replaced),
    )
    kept = [i for i in items if not any(i is a for a in added)]
    return write(client, current.target, [*parts, *current.parts(kept)], plan, opts, current)


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
    wanted = parse_platforms(platforms)
    digests = [digests] if isinstance(digests, str) else list(digests)
    if not wanted and not digests:
        raise ValueError("index_remove: give platforms or digests to remove")
    current, _ = Current.read(client, index, destination, opts)
    hits = [is_named(i, wanted, digests) for i in current.items]
    _require_hits(current, hits, wanted, digests)
    items = [i for i, hit in zip(current.items, hits, strict=True) if not hit]
    removed = tuple(i.entry for i, hit in zip(current.items, hits, strict=True) if hit)
    notes = () if items else ("the index lists no entry any more",)
    plan = Plan(current.rebuild(items), tuple(items), removed=removed, notes=notes)
    return write(client, current.target, current.parts(items), plan, opts, current)


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
    wanted = parse_platforms(platforms)
    if not annotations:
        raise ValueError("index_annotate: give at least one annotation")
    current, _ = Current.read(client, index, destination, opts)
    if wanted:
        hits = [is_named(i, wanted, ()) for i in current.items]
        _require_hits(current, hits, wanted, ())
        pairs = zip(current.items, hits, strict=True)
        items = [annotated(i, annotations) if hit else i for i, hit in pairs]
        rebuilt = current.rebuild(items)
    else:
        items = list(current.items)
        rebuilt = current.rebuild(items, annotations)
    plan = Plan(rebuilt, tuple(items))
    return write(client, current.target, current.parts(items), plan, opts, current)


def _require_hits(
    current: Current, hits: Sequence[bool], platforms: Sequence[Platform], digests: Sequence[str]
) -> None:
    """Every platform and digest named must name an entry."""
    chosen = [i.entry for i, hit in zip(current.items, hits, strict=True) if hit]
    have = ", ".join(label(i.entry.platform) for i in current.items) or "none"
    for wanted in platforms:
        if not any(e.platform is not None and e.platform.matches(wanted) for e in chosen):
            raise EntryNotFound(
                f"{current.where}: no entry for {wanted} (entries: {have}); nothing written"
            )
    for digest in digests:
        if not any(e.digest == digest for e in chosen):
            raise EntryNotFound(f"{current.where}: no entry {digest}; nothing written")
