"""What an index verb reads before it writes: the destination and the sources opened with
one token per registry, each source's entries and what they need at the destination, and
an existing index being changed."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..client import Client
from ..errors import InvalidReference, ManifestError, NotFoundInLayout
from ..graph import ImageGraph, config_platform, resolve, suffix
from ..layout_reference import LayoutReference
from ..manifests import Manifest, Platform, parse_manifest
from ..storage import Repository, open_repository, parse_location
from ..storage.fallback import encode_index
from .entries import Item, JSONObject, listed, new_item
from .options import IndexOptions, Target


@dataclass(frozen=True, slots=True)
class Part:
    """A source's share of the work: its entries, and what must reach the destination for
    them (the graph's blobs; ``manifests`` by digest, each after what it lists)."""

    graph: ImageGraph
    manifests: tuple[Manifest, ...]
    items: tuple[Item, ...] = ()


def source_part(src: Repository, platforms: Sequence[Platform]) -> Part:
    """Resolve one source: an image is one entry (its platform from its config); an index
    gives its image entries, at every level, as it lists them."""
    identifier = src.identifier or "latest"
    where = f"{src.name}{suffix(identifier)}"
    graph = resolve(src, identifier, platforms)
    if graph.entries:
        return Part(
            graph, graph.images, tuple(new_item(d, d.platform, where) for d in graph.entries)
        )
    image = graph.top
    platform = config_platform(src, image)
    if platform is None:
        raise ManifestError(f"{where}: its config names no platform (os and architecture)")
    return Part(graph, (image,), (new_item(image.descriptor(), platform.normalized(), where),))


@dataclass(frozen=True, slots=True)
class Current:
    """An existing index being changed: where it is, where the result goes (``target``:
    its own tag, or a destination), and its entries, each JSON object as it lists it."""

    repo: Repository
    target: Repository | Missing
    manifest: Manifest
    doc: JSONObject
    items: tuple[Item, ...]
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
    ) -> tuple[Current, list[Repository]]:
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
            target: Repository | Missing = repo
        else:
            target = open_destination(client, destination, opts)
        others = [open_repository(client, s) for s in sources]
        target, (repo, *others) = share_scopes(target, [repo, *others])
        manifest = repo.get_manifest(identifier)
        if not manifest.is_index:
            raise ManifestError(f"{where}: is a {manifest.media_type}, not an index")
        doc = json.loads(manifest.raw)
        items = tuple(
            Item(dict(raw), listed(desc, where))
            for desc, raw in zip(manifest.manifests, doc.get("manifests", []), strict=True)
        )
        return cls(repo, target, manifest, doc, items, where, destination is None), others

    def rebuild(
        self, items: Sequence[Item], annotations: Mapping[str, str] | None = None
    ) -> Manifest:
        """The index with ``items`` as its entries, every other field kept in place."""
        base = {k: v for k, v in self.doc.items() if k != "manifests"}
        if annotations:
            old = base.get("annotations")
            base["annotations"] = {**(old if isinstance(old, dict) else {}), **annotations}
        raw = encode_index(base, [i.doc for i in items])
        return parse_manifest(raw, self.manifest.media_type)

    def parts(self, kept: Sequence[Item]) -> list[Part]:
        """What the kept entries need in another repository: each entry's manifest with
        everything below it. Nothing when the index stays in its own repository."""
        if self.back or (
            not isinstance(self.target, Missing) and self.target.same_repository(self.repo)
        ):
            return []
        graphs = [resolve(self.repo, d) for d in dict.fromkeys(i.entry.digest for i in kept)]
        return [Part(g, (*g.children(), g.top)) for g in graphs]


@dataclass(frozen=True, slots=True)
class Missing:
    """A destination layout a dry run does not make: it holds nothing yet."""

    name: str
    tag: str | None
    digest: str | None


def open_destination(
    client: Client, destination: Target, opts: IndexOptions
) -> Repository | Missing:
    """The destination repository. A layout is made when missing, except in a dry run,
    which writes nothing."""
    try:
        return open_repository(client, destination, create=not opts.dry_run)
    except NotFoundInLayout:
        if not opts.dry_run:
            raise
        ref = parse_location(destination)
        assert isinstance(ref, LayoutReference)  # only a layout can be missing
        return Missing(f"oci:{ref.path}", ref.tag, ref.digest)


def share_scopes(
    target: Repository | Missing, sources: Sequence[Repository]
) -> tuple[Repository | Missing, list[Repository]]:
    """One token per registry for the whole operation: push on the destination, pull on
    every source there (a cross-repository mount needs both in one token)."""
    scopes: dict[str, list[str]] = {}
    pushed = [] if isinstance(target, Missing) else [(target, "pull,push")]
    pairs = [*((s, "pull") for s in sources), *pushed]
    for repo, actions in pairs:
        scope = repo.scope(actions)
        if repo.endpoint is not None and scope:
            scopes.setdefault(repo.endpoint, []).append(scope)

    def scoped(repo: Repository) -> Repository:
        if repo.endpoint is None or repo.endpoint not in scopes:
            return repo
        return repo.with_scopes(list(dict.fromkeys(scopes[repo.endpoint])))

    kept = target if isinstance(target, Missing) else scoped(target)
    return kept, [scoped(s) for s in sources]
