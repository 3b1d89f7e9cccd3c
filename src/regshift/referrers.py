"""Referrers: find, attach and walk the artifacts that point at a manifest.

Signatures, SBOMs and attestations are manifests whose ``subject`` names the manifest they
are about. A registry with the OCI referrers API (distribution-spec 1.1) lists them at
``GET /v2/<name>/referrers/<digest>`` and says so when it stores one, with an ``OCI-Subject``
response header. Registries without it (CNCF distribution 2.8, see shared/REGISTRY-NOTES.md)
need the *referrers tag schema*: clients keep an OCI image index of the referrers under the
tag ``<algorithm>-<encoded>`` of the subject digest (:func:`fallback_tag`), and every client
that pushes a referrer must update it, keeping what other tools wrote there.

Whether a registry has the API is learnt once per run and kept in
``client.run_capabilities`` (feature :data:`REFERRERS_API`, keyed by the registry endpoint):
from the first referrers listing, or from the ``OCI-Subject`` header of an :func:`attach`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .client import Client
from .errors import APIError, InvalidReference, ManifestError, NotFound, PreconditionFailed
from .manifests import Descriptor, Manifest, parse_manifest
from .mediatypes import MediaType
from .reference import (  # the tag predicates live with tag syntax, light for `tag` to import
    Reference,
    is_fallback_tag,
    refuse_fallback_tag,
    validate_digest,
    validate_tag,
)

__all__ = [
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
]

log = logging.getLogger(__name__)

#: The ``run_capabilities`` feature name: does the registry serve the referrers API?
REFERRERS_API = "referrers_api"

#: Fallback-index writes per :func:`attach` before giving up on concurrent writers.
MAX_INDEX_WRITES = 5
#: Listings one :func:`referrer_tree` may make (fallback indexes are written by anyone).
MAX_TREE_LISTINGS = 10_000

_ALGORITHM_MAX = 32
_ENCODED_MAX = 64
_NOT_TAG_CHAR = re.compile(r"[^A-Za-z0-9_.-]")

JSONObject = dict[str, object]


# -- pure helpers ----------------------------------------------------------------------------


def fallback_tag(digest: str) -> str:
    """The referrers-tag-schema tag for a subject digest.

    The algorithm is cut to 32 characters and the encoded part to 64, joined by ``-``; any
    character a tag may not contain becomes ``-`` (so ``sha256:<hex>`` is ``sha256-<hex>``
    and a sha512 digest keeps only the first 64 hex digits). :func:`is_fallback_tag` says
    whether a tag is one (for sha256 and sha512 digests).

    Raises:
        InvalidReference: ``digest`` is not ``<algorithm>:<encoded>`` or yields no valid tag.
    """
    algorithm, sep, encoded = digest.partition(":")
    if not sep or not algorithm or not encoded:
        raise InvalidReference(f"invalid digest {digest!r}: expected <algorithm>:<encoded>")
    tag = f"{algorithm[:_ALGORITHM_MAX]}-{encoded[:_ENCODED_MAX]}"
    return validate_tag(_NOT_TAG_CHAR.sub("-", tag))


def referrer_entry(manifest: Manifest) -> JSONObject:
    """The index entry describing ``manifest`` as a referrer.

    ``artifactType`` is the manifest's own, else its config media type (an index without one
    gets none); the manifest's ``annotations`` are copied.

    Raises:
        ManifestError: the manifest's ``annotations`` are not a string-to-string object.
    """
    entry: JSONObject = {
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.size,
    }
    config_type = manifest.config.media_type if manifest.config else ""
    artifact_type = manifest.artifact_type or config_type
    if artifact_type:
        entry["artifactType"] = artifact_type
    annotations = _manifest_annotations(manifest)
    if annotations:
        entry["annotations"] = annotations
    return entry


def merge_index_entries(
    current: Sequence[Mapping[str, object]], additions: Sequence[Mapping[str, object]]
) -> list[JSONObject]:
    """``current`` exactly as it is, then each of ``additions`` whose digest it lacks.

    Entries already in ``current`` are never changed, reordered or de-duplicated (they may
    belong to other tools); an addition is appended once, in the order given.
    """
    merged = [dict(entry) for entry in current]
    present = {entry.get("digest") for entry in current}
    for entry in additions:
        digest = entry.get("digest")
        if digest not in present:
            merged.append(dict(entry))
            present.add(digest)
    return merged


def empty_index() -> JSONObject:
    """An OCI image index with no entries: where a referrers list starts."""
    return {"schemaVersion": 2, "mediaType": str(MediaType.OCI_INDEX), "manifests": []}


def encode_index(base: Mapping[str, object], entries: Sequence[Mapping[str, object]]) -> bytes:
    """Serialise ``base`` (an index document) with ``entries`` as its ``manifests``.

    Every other field of ``base`` is kept, in place; ``schemaVersion`` and ``mediaType`` are
    added when missing.
    """
    doc: JSONObject = {**empty_index(), **base, "manifests": [dict(e) for e in entries]}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


# -- discovery -------------------------------------------------------------------------------


def referrers_api_supported(client: Client, repo: Reference) -> bool | None:
    """Whether this run found that ``repo``'s registry has the referrers API; None if unknown."""
    return client.run_capabilities.get(repo.endpoint, REFERRERS_API)


def require_subject(client: Client, repo: Reference, digest: str) -> Descriptor:
    """The descriptor of subject manifest ``digest`` in ``repo`` (a HEAD; GET when the
    answer names no usable digest).

    :func:`list_referrers` treats a missing fallback tag, or even a missing repository, as "no
    referrers"; callers that are asked about one manifest confirm it exists with this first.

    Raises:
        InvalidReference: ``digest`` is not a sha256/sha512 digest.
        NotFound: no such manifest, or no such repository.
        RegistryError: any other failure talking to the registry.
    """
    validate_digest(digest)
    subject = repo.repo_only().with_digest(digest)
    return client.resolve_digest(subject, scopes=[repo.scope("pull")])


def list_referrers(
    client: Client, repo: Reference, digest: str, *, artifact_type: str | None = None
) -> list[Descriptor]:
    """The referrers of manifest ``digest`` in ``repo``, optionally of one artifact type.

    Asks the referrers API unless this run already found the registry has none; on a
    registry without it (404, or an answer that is no image index), reads the index under
    :func:`fallback_tag` instead, where a missing tag means no referrers. Entries are
    filtered by ``artifact_type`` here when the registry did not apply the filter.

    Fallback entries are listed as written by whoever maintains the tag; they are not
    checked against the manifests they name.

    Raises:
        InvalidReference: ``digest`` is not a sha256/sha512 digest.
        ManifestError: the fallback tag holds something other than an OCI image index.
        RegistryError: any other failure talking to the registry.
    """
    validate_digest(digest)
    known = referrers_api_supported(client, repo)
    if known is not False:
        answer = client.get_referrers(repo.repo_only(), digest, artifact_type=artifact_type)
        if answer is not None:
            _remember(client, repo, True)
            found = list(answer.descriptors)
            return found if answer.filtered else _of_type(found, artifact_type)
    tag_ref = _tag_ref(repo, digest)
    try:
        index = _read_index(client, tag_ref, [repo.scope("pull")])
    except NotFound as exc:
        # A registry with the API may still 404 a repository it does not have, so only a
        # 404 inside an existing repository proves there is no API.
        if known is None and "NAME_UNKNOWN" not in exc.codes:
            _remember(client, repo, False)
        return []
    if known is None:
        _remember(client, repo, False)
    return _of_type(list(index.manifests), artifact_type)


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
    repo: Reference,
    digest: str,
    *,
    artifact_type: str | None = None,
    max_depth: int = 8,
) -> list[ReferrerNode]:
    """The referrers of ``digest``, each with its own referrers, down to ``max_depth`` levels.

    ``artifact_type`` filters the first level only: the SBOMs of an image come back with
    everything that refers to them. Every digest appears once: an entry already in the tree
    (a cycle or a repeat, possible in hand-written fallback indexes) is left out.

    Raises:
        ValueError: ``max_depth`` is below 1.
        NotFound: ``digest`` is not a manifest in ``repo`` (see :func:`require_subject`).
        ManifestError: a fallback index is unusable, or the tree needs more than
            :data:`MAX_TREE_LISTINGS` listings.
        RegistryError: any other failure talking to the registry.
    """
    if max_depth < 1:
        raise ValueError("max_depth must be at least 1")
    require_subject(client, repo, digest)
    walk = _Walk(client, repo, seen={digest})
    return walk.level(digest, artifact_type, max_depth)


@dataclass(slots=True)
class _Walk:
    client: Client
    repo: Reference
    seen: set[str]
    listings: int = 0

    def level(self, digest: str, artifact_type: str | None, depth: int) -> list[ReferrerNode]:
        self.listings += 1
        if self.listings > MAX_TREE_LISTINGS:
            raise ManifestError(
                f"{self.repo}: referrer tree needs more than {MAX_TREE_LISTINGS} listings"
            )
        nodes: list[ReferrerNode] = []
        for desc in list_referrers(self.client, self.repo, digest, artifact_type=artifact_type):
            if desc.digest in self.seen:
                continue
            self.seen.add(desc.digest)
            nodes.append(ReferrerNode(desc, desc.artifact_type, dict(desc.annotations)))
        if depth > 1:
            for node in nodes:
                node.children = self.level(node.descriptor.digest, None, depth - 1)
        return nodes


# -- attaching -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttachResult:
    """What :func:`attach` did.

    Attributes:
        digest: the digest of the attached manifest.
        subject: the digest it refers to.
        via_api: the registry confirmed the subject (``OCI-Subject``); no tag was touched.
        tag: the fallback tag kept up to date, None on the API path.
        added: the fallback index was written (False: our entry and all others were there).
        writes: fallback index PUTs sent (more than one after concurrent writers interfered).
    """

    digest: str
    subject: str
    via_api: bool
    tag: str | None = None
    added: bool = False
    writes: int = 0


def attach(client: Client, repo: Reference, manifest: Manifest) -> AttachResult:
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
    subject = manifest.subject
    if subject is None:
        raise ManifestError(f"{manifest.digest}: manifest has no subject to attach it to")
    target = repo.repo_only()
    pushed = client.put_manifest(target.with_digest(manifest.digest), manifest)
    if pushed.subject == subject.digest:
        _remember(client, repo, True)
        return AttachResult(manifest.digest, subject.digest, via_api=True)
    if pushed.subject:
        log.warning(
            "%s: OCI-Subject %s is not the subject %s; updating the fallback tag as well",
            target,
            pushed.subject,
            subject.digest,
        )
    else:
        # The spec makes OCI-Subject mandatory for registries with the referrers API.
        _remember(client, repo, False)
    return _update_fallback(client, target, manifest, subject.digest)


def _update_fallback(
    client: Client, target: Reference, manifest: Manifest, subject: str
) -> AttachResult:
    """Add ``manifest`` to the subject's fallback index; read-verify-retry (see :func:`attach`)."""
    tag = fallback_tag(subject)
    tag_ref = target.with_tag(tag)
    scopes = [target.scope("pull,push")]
    ours = referrer_entry(manifest)
    protected: list[JSONObject] = []  # every entry we have read: none may be lost by our doing
    writes = 0
    while True:
        base, current, etag = _read_entries(client, tag_ref, scopes)
        protected = merge_index_entries(protected, current)
        merged = merge_index_entries(current, [*protected, ours])
        if len(merged) == len(current):
            return AttachResult(
                manifest.digest, subject, via_api=False, tag=tag, added=writes > 0, writes=writes
            )
        if writes:
            log.warning(
                "%s: referrers index lost %d entries to a concurrent writer; writing again",
                tag_ref,
                len(merged) - len(current),
            )
        if writes >= MAX_INDEX_WRITES:
            raise PreconditionFailed(
                f"{tag_ref}: the referrers index kept changing under concurrent writers; "
                f"gave up after {writes} writes"
            )
        writes += 1
        if not _put_index(client, tag_ref, encode_index(base, merged), scopes, etag):
            log.info("%s: the referrers index changed since it was read; merging again", tag_ref)


def _put_index(
    client: Client, tag_ref: Reference, raw: bytes, scopes: Sequence[str], etag: str | None
) -> bool:
    """PUT the index, conditionally: ``If-Match`` the version read, or ``If-None-Match: *``
    when there was none. Registries that honour them answer 412 when another writer came
    first (False: read and merge again); distribution 2.8 ignores them, and the read-back
    in :func:`_update_fallback` is the guard there."""
    condition = {"If-Match": etag} if etag else {"If-None-Match": "*"}
    try:
        client.put_manifest(
            tag_ref, parse_manifest(raw, MediaType.OCI_INDEX), scopes=scopes, headers=condition
        )
    except APIError as exc:
        if exc.status == 412:
            return False
        # distribution 2.8 refuses an index naming a manifest it does not have (400
        # MANIFEST_BLOB_UNKNOWN): a referrer deleted without updating the list. Its entry is
        # not ours to drop, so say what is wrong instead.
        if "MANIFEST_BLOB_UNKNOWN" not in exc.codes:
            raise
        raise type(exc)(
            status=exc.status,
            method=exc.method,
            url=exc.url,
            errors=exc.errors,
            text=exc.text,
            context=f"{tag_ref}: the referrers index lists a manifest the registry no longer "
            "has; other tools' entries are never dropped, so remove it from the index first",
        ) from exc
    return True


# -- plumbing --------------------------------------------------------------------------------


def _remember(client: Client, repo: Reference, supported: bool) -> None:
    if referrers_api_supported(client, repo) is not supported:
        client.run_capabilities.set(repo.endpoint, REFERRERS_API, supported)


def _tag_ref(repo: Reference, digest: str) -> Reference:
    return repo.repo_only().with_tag(fallback_tag(digest))


def _read_index(client: Client, tag_ref: Reference, scopes: Sequence[str]) -> Manifest:
    """GET the fallback index; NotFound propagates, anything but an OCI index is an error."""
    index = client.get_manifest(tag_ref, scopes=scopes)
    if index.media_type != MediaType.OCI_INDEX:
        held = index.media_type or "a manifest without media type"  # no "a application/…"
        raise ManifestError(
            f"{tag_ref}: referrers tag {tag_ref.tag} holds {held}, not an OCI image index"
        )
    return index


def _read_entries(
    client: Client, tag_ref: Reference, scopes: Sequence[str]
) -> tuple[JSONObject, list[JSONObject], str | None]:
    """The fallback index document, its entries as JSON (an empty index when untagged), and
    the entity tag of what was read (registries' ETag for a manifest is its quoted digest)."""
    try:
        index = _read_index(client, tag_ref, scopes)
    except NotFound:
        return empty_index(), [], None
    doc = json.loads(index.raw)  # parse_manifest has checked it is an object
    entries = doc.get("manifests", [])  # ... and that this is a list of objects
    return doc, [dict(e) for e in entries], f'"{index.digest}"'


def _manifest_annotations(manifest: Manifest) -> dict[str, str]:
    try:
        doc = json.loads(manifest.raw)
    except ValueError as exc:
        raise ManifestError(f"{manifest.digest}: manifest is not valid JSON: {exc}") from None
    value = doc.get("annotations") if isinstance(doc, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ManifestError(f"{manifest.digest}: manifest annotations are not strings")
    return dict(value)


def _of_type(found: list[Descriptor], artifact_type: str | None) -> list[Descriptor]:
    if not artifact_type:
        return found
    return [d for d in found if d.artifact_type == artifact_type]
