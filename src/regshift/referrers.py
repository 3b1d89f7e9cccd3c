"""Referrers: find, attach and walk the artifacts that point at a manifest.

Signatures, SBOMs and attestations are manifests whose ``subject`` names the manifest they
are about. A registry with the OCI referrers API (distribution-spec 1.1) lists them at
``GET /v2/<name>/referrers/<digest>`` and says so when it stores one, with an ``OCI-Subject``
response header. Registries without it (CNCF distribution 2.8, see shared/REGISTRY-NOTES.md)
and OCI layouts need the *referrers tag schema*: an OCI image index of the referrers under
the tag ``<algorithm>-<encoded>`` of the subject digest (:func:`fallback_tag`), which every
client that pushes a referrer must update, keeping what other tools wrote there (a layout
also keeps each referrer as an untagged ``index.json`` entry, as oras does:
:mod:`regshift.storage.oci`).

How each backend lists and attaches is the storage layer's job
(:meth:`Repository.list_referrers`, :meth:`Repository.attach`; the one fallback-index
merge is :func:`regshift.storage.fallback.update_fallback`). This module holds the verbs,
for a registry repository or a layout alike, and the one referrer tree (:func:`walk`)
that both :func:`referrer_tree` and ``regshift referrers`` show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .client import Client
from .errors import ManifestError
from .layout_reference import LayoutReference
from .manifests import Descriptor, Manifest
from .reference import (  # the tag predicates live with tag syntax, light for `tag` to import
    Reference,
    is_fallback_tag,
    refuse_fallback_tag,
    validate_digest,
)
from .storage import Repository, open_repository, scoped
from .storage.fallback import (
    MAX_INDEX_WRITES,
    AttachResult,
    empty_index,
    encode_index,
    fallback_tag,
    merge_index_entries,
    referrer_entry,
)
from .storage.registry import REFERRERS_API, RegistryRepository

__all__ = [
    "MAX_INDEX_WRITES",
    "MAX_TREE_LISTINGS",
    "REFERRERS_API",
    "AttachResult",
    "ReferrerNode",
    "attach",
    "empty_index",
    "encode_index",
    "fallback_tag",
    "is_fallback_tag",
    "list_referrers",
    "merge_index_entries",
    "referrer_entry",
    "referrer_tree",
    "referrers_api_supported",
    "refuse_fallback_tag",
    "require_subject",
    "subject_digest",
    "walk",
]

#: Listings one :func:`referrer_tree` may make (fallback indexes are written by anyone).
MAX_TREE_LISTINGS = 10_000

Where = str | Reference | LayoutReference


def referrers_api_supported(client: Client, repo: Reference) -> bool | None:
    """Whether this run found that ``repo``'s registry has the referrers API; None if unknown."""
    return RegistryRepository(client, repo).referrers_api()


def require_subject(client: Client, repo: Where, digest: str) -> Descriptor:
    """The descriptor of subject manifest ``digest`` in ``repo`` (a registry: a HEAD, GET
    when the answer names no usable digest).

    :func:`list_referrers` treats a missing fallback tag, or even a missing repository, as "no
    referrers"; callers that are asked about one manifest confirm it exists with this first.

    Raises:
        InvalidReference: ``digest`` is not a sha256/sha512 digest.
        NotFound / NotFoundInLayout: no such manifest, or no such repository.
        RegistryError: any other failure talking to the registry.
    """
    validate_digest(digest)
    repository = open_repository(client, repo)
    return scoped(repository, "pull").resolve(digest)


def subject_digest(repo: Repository, identifier: str) -> str:
    """The digest of the manifest ``identifier`` names, once it is known to exist: listing
    the referrers of a manifest that is not there is an error, not an empty list. A tag is
    read (its digest computed from the bytes), a digest resolved.

    Raises:
        NotFound / NotFoundInLayout: no such manifest or repository.
    """
    if ":" not in identifier:
        return repo.get_manifest(identifier).digest
    return scoped(repo, "pull").resolve(identifier).digest


def list_referrers(
    client: Client, repo: Where, digest: str, *, artifact_type: str | None = None
) -> list[Descriptor]:
    """The referrers of manifest ``digest`` in ``repo`` (a registry repository or a layout),
    optionally of one artifact type.

    A registry is asked through its referrers API unless this run already found it has
    none; on a registry without it (404, or an answer that is no image index), and in a
    layout, the index under :func:`fallback_tag` is read instead, where a missing tag means
    no referrers; a layout adds its untagged ``index.json`` entries whose manifest has the
    subject (as oras keeps referrers). Entries are filtered by ``artifact_type`` here when
    the registry did not apply the filter.

    Fallback entries are listed as written by whoever maintains the tag; they are not
    checked against the manifests they name.

    Raises:
        InvalidReference: ``digest`` is not a sha256/sha512 digest.
        ManifestError: the fallback tag holds something other than an OCI image index.
        RegistryError: any other failure talking to the registry.
    """
    validate_digest(digest)
    return open_repository(client, repo).list_referrers(digest, artifact_type=artifact_type)


def attach(client: Client, repo: Where, manifest: Manifest) -> AttachResult:
    """Push ``manifest`` (which has a ``subject``) by digest and make it listable as a referrer.

    Its blobs must already be in ``repo``. When the registry answers the PUT with
    ``OCI-Subject`` it indexes the subject itself and nothing else is written. Otherwise the
    index under the subject's :func:`fallback_tag` gets an entry for the manifest (see
    :func:`referrer_entry`) unless one with its digest is there; every other entry, whoever
    wrote it, is kept as it was (same fields, values and order), as are the index's own fields.

    Concurrent writers: the index PUT is conditional (``If-Match`` the version read, or
    ``If-None-Match: *``), so a registry that honours conditional requests answers 412 when
    another writer came first, and the lists are merged again. CNCF distribution 2.8 ignores
    conditional headers on manifest PUTs, so after each PUT the index is also read back, and if
    our entry or any entry we have read is missing they are merged into the current list and
    written again, at most :data:`MAX_INDEX_WRITES` times. On such registries this narrows the
    race but cannot close it: a writer holding an older list may still drop an entry it never
    saw after its owner has verified it.

    Raises:
        ManifestError: ``manifest`` has no subject, or the fallback tag holds something
            other than an OCI image index.
        PreconditionFailed: the index kept losing entries to concurrent writers.
        APIError: e.g. the registry refused the index because an entry names a manifest it
            no longer has (distribution 2.8: ``MANIFEST_BLOB_UNKNOWN``).
        RegistryError: any other failure talking to the registry.
    """
    return open_repository(client, repo).attach(manifest)


@dataclass(slots=True)
class ReferrerNode:
    """One referrer in a :func:`referrer_tree`, with the referrers that point at it.

    Attributes:
        descriptor: the referrer's descriptor, as listed.
        artifact_type: its ``artifactType`` (empty when the listing has none).
        annotations: its annotations, as listed.
        children: referrers of this referrer (e.g. signatures of an SBOM).
    """

    descriptor: Descriptor
    artifact_type: str
    annotations: dict[str, str]
    children: list[ReferrerNode] = field(default_factory=list)


def referrer_tree(
    client: Client,
    repo: Where,
    digest: str,
    *,
    artifact_type: str | None = None,
    max_depth: int = 8,
) -> list[ReferrerNode]:
    """The referrers of ``digest``, each with its own referrers, down to ``max_depth`` levels
    (the tree ``regshift referrers`` shows; see :func:`walk`).

    Raises:
        ValueError: ``max_depth`` is below 1.
        NotFound / NotFoundInLayout: ``digest`` is not a manifest in ``repo`` (see
            :func:`require_subject`).
        ManifestError: a fallback index is unusable, or the tree needs more than
            :data:`MAX_TREE_LISTINGS` listings.
        RegistryError: any other failure talking to the registry.
    """
    if max_depth < 1:
        raise ValueError("max_depth must be at least 1")
    require_subject(client, repo, digest)
    return walk(open_repository(client, repo), digest, artifact_type=artifact_type, depth=max_depth)


def walk(
    repo: Repository, digest: str, *, artifact_type: str | None = None, depth: int = 8
) -> list[ReferrerNode]:
    """Referrers of ``digest`` and theirs, depth first, down to ``depth`` levels.

    ``artifact_type`` filters the first level only: the SBOMs of an image come back with
    everything that refers to them. Every digest appears once, where the walk meets it
    first: depth first, so a referrer listed both under the subject and under an earlier
    sibling (possible in hand-written fallback indexes) is shown under the sibling; an
    entry already in the tree (a cycle or a repeat) is left out. The subject itself is
    never shown. At most :data:`MAX_TREE_LISTINGS` listings are made.

    Raises:
        ManifestError: a fallback index is unusable, or the tree needs too many listings.
    """
    return _Walk(repo, seen={digest}).level(digest, artifact_type, depth)


@dataclass(slots=True)
class _Walk:
    repo: Repository
    seen: set[str]
    listings: int = 0

    def level(self, digest: str, wanted: str | None, depth: int) -> list[ReferrerNode]:
        self.listings += 1
        if self.listings > MAX_TREE_LISTINGS:
            raise ManifestError(
                f"{self.repo.name}: too many referrers to list (more than "
                f"{MAX_TREE_LISTINGS} listings)"
            )
        nodes = []
        for desc in self.repo.list_referrers(digest, artifact_type=wanted):
            if desc.digest in self.seen:
                continue
            self.seen.add(desc.digest)
            children = self.level(desc.digest, None, depth - 1) if depth > 1 else []
            nodes.append(ReferrerNode(desc, desc.artifact_type, dict(desc.annotations), children))
        return nodes
