"""Where images are read from and written to: a registry repository or an OCI image layout.

Copy logic talks to these two small interfaces so that every combination works the same way
(registry -> registry, registry -> layout, layout -> registry, layout -> layout):

* a :class:`Source` serves manifests (exact bytes) and blob streams;
* a :class:`LayoutTarget` stores into a layout; registry destinations are handled by
  :mod:`regshift.copying`, which needs the registry-only tricks (mounts, chunked resumable
  uploads).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from . import referrers
from .client import Client
from .errors import ManifestError
from .layout import Layout, LayoutReference, is_layout_reference, parse_layout_reference
from .manifests import Descriptor, Manifest, parse_manifest
from .mediatypes import MediaType
from .reference import Reference, parse_reference, parse_repository
from .transport import stream_error


class Source(Protocol):
    """Something images can be read from."""

    @property
    def name(self) -> str:
        """Where it is, for messages: ``registry/repository`` or ``oci:PATH``."""
        ...

    @property
    def identifier(self) -> str | None:
        """The tag or digest asked for, if any."""
        ...

    def get_manifest(self, identifier: str) -> Manifest:
        """A manifest by tag or digest, exact bytes, verified when by digest."""
        ...

    def head_digest(self, tag: str) -> str | None:
        """The digest a tag points at, or None (one HEAD; a GET only where it names none)."""
        ...

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[Iterator[bytes]]:
        """A context manager yielding the blob's bytes as an iterator of chunks."""
        ...

    def list_tags(self) -> list[str]:
        """Every tag."""
        ...

    def list_referrers(self, digest: str) -> list[Descriptor]:
        """The referrers of a manifest (API or fallback tag)."""
        ...

    def at(self, identifier: str) -> Source:
        """The same repository or layout, at another tag or digest."""
        ...


@dataclass(frozen=True, slots=True)
class RegistrySource:
    """A registry repository as a source."""

    client: Client
    ref: Reference
    scopes: Sequence[str] = field(default=())

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def identifier(self) -> str | None:
        return self.ref.digest or self.ref.tag

    def get_manifest(self, identifier: str) -> Manifest:
        return self.client.get_manifest(_at(self.ref, identifier), scopes=self.scopes)

    def head_digest(self, tag: str) -> str | None:
        return self.client.digest_of(self.ref.repo_only().with_tag(tag), scopes=self.scopes)

    @contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[Iterator[bytes]]:
        with self.client.open_blob(self.ref, desc.digest, scopes=self.scopes) as response:
            yield _raw_chunks(response)

    def list_tags(self) -> list[str]:
        return self.client.list_tags(self.ref.repo_only(), scopes=self.scopes)

    def list_referrers(self, digest: str) -> list[Descriptor]:
        return referrers.list_referrers(self.client, self.ref.repo_only(), digest)

    def at(self, identifier: str) -> RegistrySource:
        return RegistrySource(self.client, _at(self.ref, identifier), self.scopes)


def _at(ref: Reference, identifier: str) -> Reference:
    repo = ref.repo_only()
    return repo.with_digest(identifier) if ":" in identifier else repo.with_tag(identifier)


def _raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The blob as stored: raw, never decoded, so its digest holds even when a storage
    backend labels a .tar.gz layer ``Content-Encoding: gzip``; httpx errors become ours."""
    try:
        yield from response.iter_raw()
    except httpx.HTTPError as exc:
        raise stream_error(exc, response, "reading source blob") from None


@dataclass(frozen=True, slots=True)
class LayoutSource:
    """An OCI image layout as a source."""

    layout: Layout
    ref: LayoutReference

    @property
    def name(self) -> str:
        return f"oci:{self.layout.path}"

    @property
    def identifier(self) -> str | None:
        """The tag or digest asked for, else the layout's default (see
        :meth:`Layout.default_identifier`)."""
        return self.ref.identifier or self.layout.default_identifier()

    def get_manifest(self, identifier: str) -> Manifest:
        return self.layout.get_manifest(identifier)

    def head_digest(self, tag: str) -> str | None:
        head = self.layout.head_manifest(tag)
        return head.digest if head else None

    @contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[Iterator[bytes]]:
        with self.layout.open_blob(desc.digest) as chunks:
            yield chunks

    def list_tags(self) -> list[str]:
        return self.layout.tags()

    def list_referrers(self, digest: str) -> list[Descriptor]:
        """A layout has no referrers API: the fallback tag schema, as registries without one."""
        tag = referrers.fallback_tag(digest)
        if self.layout.head_manifest(tag) is None:
            return []
        index = self.layout.get_manifest(tag)
        if not index.is_index:
            raise ManifestError(f"{self.name}: {tag} is not an image index of referrers")
        return list(index.manifests)

    def at(self, identifier: str) -> LayoutSource:
        digest = identifier if ":" in identifier else None
        tag = None if digest else identifier
        return LayoutSource(self.layout, LayoutReference(self.layout.path, tag=tag, digest=digest))


@dataclass(frozen=True, slots=True)
class LayoutTarget:
    """An OCI image layout as a destination (created when missing)."""

    layout: Layout
    ref: LayoutReference

    @property
    def name(self) -> str:
        return f"oci:{self.layout.path}"

    def current_digest(self) -> str | None:
        if self.ref.tag is None:
            return None
        head = self.layout.head_manifest(self.ref.tag)
        return head.digest if head else None

    def has_blob(self, desc: Descriptor) -> bool:
        """Present with the right size; deliberately not hashed (see :meth:`Layout.has_blob`)."""
        return self.layout.has_blob(desc.digest, desc.size)

    def has_manifest(self, digest: str) -> bool:
        """Present and intact: a truncated or corrupt manifest left by another tool is
        rewritten (hashing a manifest is cheap; blobs are checked by size only)."""
        return self.layout.has_manifest_blob(digest)

    def write_blob(self, desc: Descriptor, chunks: Iterator[bytes]) -> None:
        self.layout.write_blob(desc.digest, desc.size, chunks)

    def put_child(self, manifest: Manifest) -> None:
        """A manifest below the top one: a blob, not an index.json entry."""
        self.layout.write_blob(manifest.digest, manifest.size, [manifest.raw], check_existing=True)

    def put_top(self, manifest: Manifest) -> None:
        self.layout.put_manifest(manifest, self.ref.tag)

    def attach(self, manifest: Manifest) -> None:
        """Store a referrer and list it under its subject's fallback tag (entries merged).

        Raises:
            ManifestError: the manifest has no subject, or the fallback tag already holds
                something other than an OCI image index (nothing is written then).
        """
        if manifest.subject is None:
            raise ManifestError(f"{manifest.digest}: manifest has no subject to attach it to")
        tag = referrers.fallback_tag(manifest.subject.digest)
        base = self._referrers_index(tag)
        self.put_child(manifest)
        current = base.get("manifests")
        entries = referrers.merge_index_entries(
            current if isinstance(current, list) else [], [referrers.referrer_entry(manifest)]
        )
        raw = referrers.encode_index(base, entries)
        self.layout.put_manifest(parse_manifest(raw), tag)

    def _referrers_index(self, tag: str) -> dict[str, object]:
        """The document under the fallback ``tag`` (an empty index when untagged); like the
        registry path (:func:`referrers._read_index`), anything but an OCI index is refused."""
        if self.layout.head_manifest(tag) is None:
            return referrers.empty_index()
        index = self.layout.get_manifest(tag)
        if index.media_type != MediaType.OCI_INDEX:
            held = index.media_type or "a manifest without media type"  # no "a application/…"
            raise ManifestError(
                f"{self.name}: referrers tag {tag} holds {held}, not an OCI image index"
            )
        doc: dict[str, object] = json.loads(index.raw)
        return doc

    def at(self, tag: str) -> LayoutTarget:
        return LayoutTarget(self.layout, LayoutReference(self.layout.path, tag=tag))


def open_source(client: Client, text: str | Reference, *, repository: bool = False) -> Source:
    """A :class:`Source` for a reference string (``oci:...`` for a layout)."""
    if isinstance(text, Reference):
        return RegistrySource(client, text)
    if is_layout_reference(text):
        layout_ref = parse_layout_reference(text)
        return LayoutSource(Layout(layout_ref.path), layout_ref)
    return RegistrySource(client, parse_repository(text) if repository else parse_reference(text))


def open_layout_target(text: str) -> LayoutTarget:
    """A :class:`LayoutTarget` for ``oci:PATH[:TAG]`` (the layout is created if missing)."""
    ref = parse_layout_reference(text)
    return LayoutTarget(Layout(ref.path, create=True), ref)
