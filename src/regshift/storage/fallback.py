"""The referrers tag schema: an index of referrers under the tag of their subject's digest.

Registries without the OCI referrers API (CNCF distribution 2.8, see
shared/REGISTRY-NOTES.md) and OCI layouts list the referrers of a manifest in an OCI image
index tagged ``<algorithm>-<encoded>`` of the subject digest (:func:`fallback_tag`). Every
client that stores a referrer must update that index, keeping what other tools wrote there:
:func:`update_fallback` is the one merge, used by both backends.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import (
    APIError,
    InvalidReference,
    ManifestError,
    NotFound,
    NotFoundInLayout,
    PreconditionFailed,
)
from ..manifests import Descriptor, Manifest, encode_document, parse_manifest
from ..mediatypes import MediaType
from ..reference import validate_tag

if TYPE_CHECKING:
    from . import Repository

log = logging.getLogger(__name__)

#: Fallback-index writes per attach before giving up on concurrent writers.
MAX_INDEX_WRITES = 5

_ALGORITHM_MAX = 32
_ENCODED_MAX = 64
_NOT_TAG_CHAR = re.compile(r"[^A-Za-z0-9_.-]")

JSONObject = dict[str, object]


@dataclass(frozen=True, slots=True)
class AttachResult:
    """What attaching a referrer did.

    Attributes:
        digest: the digest of the attached manifest.
        subject: the digest it refers to.
        via_api: the registry confirmed the subject (``OCI-Subject``); no tag was touched.
        tag: the fallback tag kept up to date, None on the API path.
        added: the fallback index was written (False: our entry and all others were there).
        writes: fallback index writes (more than one after concurrent writers interfered).
    """

    digest: str
    subject: str
    via_api: bool
    tag: str | None = None
    added: bool = False
    writes: int = 0


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


def referrer_descriptor(manifest: Manifest) -> Descriptor:
    """``manifest`` as a referrers listing describes it: :func:`referrer_entry`'s fields.

    Raises:
        ManifestError: the manifest's ``annotations`` are not a string-to-string object.
    """
    entry = referrer_entry(manifest)
    return Descriptor(
        media_type=manifest.media_type,
        digest=manifest.digest,
        size=manifest.size,
        annotations=_manifest_annotations(manifest),
        artifact_type=str(entry.get("artifactType", "")),
    )


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
    return encode_document(doc)


def of_type(found: list[Descriptor], artifact_type: str | None) -> list[Descriptor]:
    """The descriptors of one artifact type (all without a type asked for)."""
    if not artifact_type:
        return found
    return [d for d in found if d.artifact_type == artifact_type]


# -- reading and merging, on any repository --------------------------------------------------


def read_index(repo: Repository, tag: str) -> Manifest:
    """The fallback index under ``tag``; a missing tag propagates (NotFound /
    NotFoundInLayout), anything but an OCI index is an error.

    Raises:
        ManifestError: the tag holds something other than an OCI image index.
    """
    index = repo.get_manifest(tag)
    if index.media_type != MediaType.OCI_INDEX:
        held = index.media_type or "a manifest without media type"  # no "a application/…"
        raise ManifestError(
            f"{repo.name}:{tag}: referrers tag {tag} holds {held}, not an OCI image index"
        )
    return index


def listed_referrers(repo: Repository, digest: str) -> list[Descriptor]:
    """The entries of ``digest``'s fallback index; none when the tag does not exist.

    Raises:
        ManifestError: the tag holds something other than an OCI image index.
    """
    try:
        return list(read_index(repo, fallback_tag(digest)).manifests)
    except (NotFound, NotFoundInLayout):
        return []


def update_fallback(repo: Repository, manifest: Manifest, subject: str) -> AttachResult:
    """Add ``manifest`` to the subject's fallback index, keeping every other entry as it was
    (same fields, values and order), as are the index's own fields.

    Concurrent writers: each write is conditional on the version read
    (:meth:`Repository.replace_manifest`), and after each write the index is read back; if
    our entry or any entry we have read is missing they are merged into the current list
    and written again, at most :data:`MAX_INDEX_WRITES` times. Where conditions are ignored
    (distribution 2.8) this narrows the race but cannot close it: a writer holding an older
    list may still drop an entry it never saw after its owner has verified it.

    Raises:
        ManifestError: the fallback tag holds something other than an OCI image index.
        PreconditionFailed: the index kept losing entries to concurrent writers.
        APIError: e.g. the registry refused the index because an entry names a manifest it
            no longer has (distribution 2.8: ``MANIFEST_BLOB_UNKNOWN``).
    """
    tag = fallback_tag(subject)
    where = f"{repo.name}:{tag}"
    ours = referrer_entry(manifest)
    protected: list[JSONObject] = []  # every entry we have read: none may be lost by our doing
    writes = 0
    while True:
        base, current, version = _read_entries(repo, tag)
        protected = merge_index_entries(protected, current)
        merged = merge_index_entries(current, [*protected, ours])
        if len(merged) == len(current):
            return AttachResult(
                manifest.digest, subject, via_api=False, tag=tag, added=writes > 0, writes=writes
            )
        if writes:
            log.warning(
                "%s: referrers index lost %d entries to a concurrent writer; writing again",
                where,
                len(merged) - len(current),
            )
        if writes >= MAX_INDEX_WRITES:
            raise PreconditionFailed(
                f"{where}: the referrers index kept changing under concurrent writers; "
                f"gave up after {writes} writes"
            )
        writes += 1
        index = parse_manifest(encode_index(base, merged), MediaType.OCI_INDEX)
        if not _replace(repo, tag, index, version, where):
            log.info("%s: the referrers index changed since it was read; merging again", where)


def _replace(repo: Repository, tag: str, index: Manifest, version: str | None, where: str) -> bool:
    try:
        return repo.replace_manifest(tag, index, version)
    except APIError as exc:
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
            context=f"{where}: the referrers index lists a manifest the registry no longer "
            "has; other tools' entries are never dropped, so remove it from the index first",
        ) from exc


def _read_entries(repo: Repository, tag: str) -> tuple[JSONObject, list[JSONObject], str | None]:
    """The fallback index document, its entries as JSON (an empty index when untagged), and
    the digest of what was read (the version a conditional write must still find)."""
    try:
        index = read_index(repo, tag)
    except (NotFound, NotFoundInLayout):
        return empty_index(), [], None
    doc = json.loads(index.raw)  # parse_manifest has checked it is an object
    entries = doc.get("manifests", [])  # ... and that this is a list of objects
    return doc, [dict(e) for e in entries], index.digest


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
