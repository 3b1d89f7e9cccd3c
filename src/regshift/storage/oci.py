"""An OCI image layout as a :class:`~regshift.storage.Repository`, over :class:`Layout`.

Tags are ``index.json`` entries; manifests below the top one (an index's children) are
blobs only. A layout has no referrers API, and the image-spec says nothing about referrers
in a layout (image-spec PR #1171 is still open). Tools keep them two ways: regctl in an
index under the subject's fallback tag, as on registries without the API
(:mod:`regshift.storage.fallback`); oras as untagged ``index.json`` entries whose manifest
has the ``subject``. regshift reads both, and writes both, so each tool finds them. Tags can
always be deleted (blobs stay), manifests by digest cannot.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from ..errors import LayoutError, ManifestError, NotFoundInLayout
from ..layout import Layout, LayoutReference
from ..manifests import Descriptor, Manifest
from ..mediatypes import MediaType
from . import Repository
from .fallback import (
    AttachResult,
    fallback_tag,
    listed_referrers,
    of_type,
    read_index,
    referrer_descriptor,
    update_fallback,
)

#: The manifests that can carry a ``subject`` (OCI image manifest and index).
_MAY_HAVE_SUBJECT = frozenset({MediaType.OCI_MANIFEST, MediaType.OCI_INDEX})


@dataclass(frozen=True, slots=True)
class LayoutRepository:
    """An OCI image layout, at the tag or digest of ``ref`` (if any)."""

    layout: Layout
    ref: LayoutReference

    local = True
    write_method = "index.json"
    endpoint = None

    @classmethod
    def open(cls, ref: LayoutReference, *, create: bool = False) -> LayoutRepository:
        """The layout at ``ref.path`` (made when missing, with ``create``)."""
        return cls(Layout(ref.path, create=create), ref)

    @property
    def name(self) -> str:
        return f"oci:{self.layout.path}"

    @property
    def reference(self) -> LayoutReference:
        return self.ref

    @property
    def tag(self) -> str | None:
        return self.ref.tag

    @property
    def digest(self) -> str | None:
        return self.ref.digest

    @property
    def identifier(self) -> str | None:
        """The tag or digest asked for, else the layout's default (see
        :meth:`Layout.default_identifier`)."""
        return self.ref.identifier or self.layout.default_identifier()

    def at(self, identifier: str) -> LayoutRepository:
        digest = identifier if ":" in identifier else None
        tag = None if digest else identifier
        return replace(self, ref=LayoutReference(self.layout.path, tag=tag, digest=digest))

    def scope(self, actions: str) -> None:
        return None

    def with_scopes(self, scopes: Sequence[str]) -> LayoutRepository:
        return self

    def same_repository(self, other: Repository) -> bool:
        """Never: a layout's blobs are checked one by one (their files may be damaged)."""
        return False

    # -- manifests --------------------------------------------------------------------------

    def resolve(self, identifier: str) -> Descriptor:
        return self.layout.resolve(identifier)

    def head(self, identifier: str) -> str | None:
        found = self.layout.head_manifest(identifier)
        return found.digest if found else None

    def has_manifest(self, digest: str) -> bool:
        """Present and intact: a truncated or corrupt manifest left by another tool is
        rewritten (hashing a manifest is cheap; blobs are checked by size only)."""
        return self.layout.has_manifest_blob(digest)

    def get_manifest(self, identifier: str) -> Manifest:
        return self.layout.get_manifest(identifier)

    def put_manifest(
        self, manifest: Manifest, tags: Sequence[str] = (), *, listed: bool = False
    ) -> None:
        """A blob, plus an index.json entry per tag (an untagged one with ``listed``)."""
        if not tags and not listed:  # a child of an index: not an index.json entry
            self.layout.write_blob(
                manifest.digest, manifest.size, [manifest.raw], check_existing=True
            )
        for tag in tags:
            self.layout.put_manifest(manifest, tag)
        if listed and not tags:
            self.layout.put_manifest(manifest)

    def replace_manifest(self, tag: str, manifest: Manifest, current: str | None) -> bool:
        """Checked, then written: not atomic (other processes may write in between), so
        callers read back what they wrote."""
        if self.head(tag) != current:
            return False
        self.layout.put_manifest(manifest, tag)
        return True

    def delete(self, identifier: str) -> None:
        """Untag (index.json only; blobs stay: layouts have no garbage collector here).

        Raises:
            LayoutError: ``identifier`` is not a tag (deleting by digest is not supported).
        """
        if not identifier or ":" in identifier:
            raise LayoutError(
                f"{self.ref}: give a tag to delete from a layout "
                "(deleting by digest is not supported)"
            )
        self.layout.delete_tag(identifier)

    def list_tags(self) -> list[str]:
        return self.layout.tags()

    # -- blobs ------------------------------------------------------------------------------

    def has_blob(self, desc: Descriptor) -> bool:
        """Present with the right size; deliberately not hashed (see :meth:`Layout.has_blob`)."""
        return self.layout.has_blob(desc.digest, desc.size)

    @contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[Iterator[bytes]]:
        with self.layout.open_blob(desc.digest) as chunks:
            yield chunks

    def write_blob(self, desc: Descriptor, chunks: Iterator[bytes]) -> None:
        self.layout.write_blob(desc.digest, desc.size, chunks)

    # -- referrers --------------------------------------------------------------------------

    def list_referrers(self, digest: str, *, artifact_type: str | None = None) -> list[Descriptor]:
        """The entries of the fallback index (regshift, regctl), then each untagged
        ``index.json`` entry whose manifest names ``digest`` as its subject (oras), once
        each, filtered by ``artifact_type`` as a registry's listing is.

        Raises:
            ManifestError: the fallback tag holds something other than an OCI image index.
            DigestMismatch: an untagged manifest is damaged.
        """
        found = listed_referrers(self, digest)
        seen = {d.digest for d in found}
        for desc in self._untagged_referrers(digest):
            if desc.digest not in seen:
                seen.add(desc.digest)
                found.append(desc)
        return of_type(found, artifact_type)

    def _untagged_referrers(self, digest: str) -> Iterator[Descriptor]:
        """oras (oras-go's OCI store) keeps a referrer as an untagged ``index.json`` entry and
        writes no fallback tag: the image-spec says nothing about referrers in a layout
        (image-spec PR #1171 is still open), so each untagged OCI manifest is read (they are
        small) for its subject. An entry whose blob is missing is skipped (the spec lets a
        layout lack blobs); a damaged one is an error."""
        for entry in self.layout.untagged():
            if entry.media_type not in _MAY_HAVE_SUBJECT or entry.digest == digest:
                continue
            try:
                manifest = self.layout.load_manifest(entry)
            except NotFoundInLayout:
                continue
            if manifest.subject is not None and manifest.subject.digest == digest:
                yield referrer_descriptor(manifest)

    def attach(self, manifest: Manifest) -> AttachResult:
        """Store a referrer as an untagged ``index.json`` entry and list it under its
        subject's fallback tag (entries merged): regctl reads only the tag; oras resolves a
        manifest by digest only when an entry reaches it as a manifest (a referrer listed
        only in the fallback index is pulled as an opaque blob: nothing is written), and
        keeps its own referrers as such entries.

        Raises:
            ManifestError: the manifest has no subject, or the fallback tag already holds
                something other than an OCI image index (nothing is written then).
        """
        if manifest.subject is None:
            raise ManifestError(f"{manifest.digest}: manifest has no subject to attach it to")
        tag = fallback_tag(manifest.subject.digest)
        if self.layout.head_manifest(tag) is not None:
            read_index(self, tag)  # refused before the referrer is written
        self.put_manifest(manifest, listed=True)
        return update_fallback(self, manifest, manifest.subject.digest)
