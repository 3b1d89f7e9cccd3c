"""Where images live: one interface over a registry repository and an OCI image layout.

Every verb (tag, copy, delete, inspect, referrers, ...) reads and writes through a
:class:`Repository`, so each is written once and works the same on both backends:

* :class:`~regshift.storage.registry.RegistryRepository`: a repository of a registry, over
  :class:`~regshift.client.Client` (one request per call);
* :class:`~regshift.storage.oci.LayoutRepository`: an OCI image layout directory, over
  :class:`~regshift.layout.Layout` (files; written atomically).

What only some backends can do is a small separate protocol, checked with ``isinstance``
(as regclient's ``scheme`` does with its optional interfaces): :class:`MultiTagPusher`
(several tags in one write), :class:`BlobMounter` (cross-repository mount),
:class:`ChunkedUploads` (upload sessions: chunks, resume, cancel) and
:class:`ManifestDeleter` (deleting a manifest by digest, which takes its tags along).

:func:`open_repository` is the one place that tells a layout reference (``oci:PATH``) from
a registry reference. The layout backend is imported only when a layout is opened, so
commands on registries do not load it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from ..reference import Reference, is_layout_reference, parse_reference, parse_repository

if TYPE_CHECKING:
    from typing import Self

    from ..client import Client, UploadStatus
    from ..layout_reference import LayoutReference
    from ..manifests import Descriptor, Manifest
    from .fallback import AttachResult

__all__ = [
    "BlobMounter",
    "ChunkedUploads",
    "ManifestDeleter",
    "MountResult",
    "MultiTagPusher",
    "Repository",
    "open_repository",
    "parse_location",
    "scoped",
]


class Repository(Protocol):
    """A registry repository or an OCI layout, opened at a reference (tag, digest or none).

    Identifiers are tags or digests (``sha256:...``); calls that take none use the
    reference's. Manifests are read and written as exact bytes, verified against their
    digest; blobs are streamed and verified while read.
    """

    @property
    def name(self) -> str:
        """Where it is, for messages: ``registry/repository`` or ``oci:PATH``."""
        ...

    @property
    def reference(self) -> Reference | LayoutReference:
        """The reference it was opened at."""
        ...

    @property
    def tag(self) -> str | None:
        """The tag the reference names, if any."""
        ...

    @property
    def digest(self) -> str | None:
        """The digest the reference names, if any."""
        ...

    @property
    def identifier(self) -> str | None:
        """The tag or digest to read when none is given (a layout's default when its
        reference names neither, see :meth:`Layout.default_identifier`)."""
        ...

    @property
    def endpoint(self) -> str | None:
        """The registry's ``host[:port]``; None for a layout (it shares tokens with nothing)."""
        ...

    @property
    def local(self) -> bool:
        """Lookups cost no request (a layout): a tag's previous target is always reported."""
        ...

    @property
    def write_method(self) -> str:
        """How a tag is written, as reported per tag: ``put`` or ``index.json``."""
        ...

    def at(self, identifier: str) -> Self:
        """The same repository at another tag or digest."""
        ...

    def scope(self, actions: str) -> str | None:
        """The token scope for ``actions`` (``pull``, ``pull,push``) here; None for a layout."""
        ...

    def with_scopes(self, scopes: Sequence[str]) -> Self:
        """The same repository asking for these token scopes (one token for a whole
        operation); a layout is returned unchanged."""
        ...

    def same_repository(self, other: Repository) -> bool:
        """Whether ``other`` is this very registry repository (so blobs need no copying)."""
        ...

    def resolve(self, identifier: str) -> Descriptor:
        """The descriptor of the manifest ``identifier`` names.

        Raises:
            NotFound / NotFoundInLayout: no such manifest.
        """
        ...

    def head(self, identifier: str) -> str | None:
        """The digest ``identifier`` names now, or None when there is no such manifest."""
        ...

    def has_manifest(self, digest: str) -> bool:
        """Whether the manifest is here (intact, for a layout: it is hashed)."""
        ...

    def get_manifest(self, identifier: str) -> Manifest:
        """A manifest by tag or digest, exact bytes, verified."""
        ...

    def put_manifest(
        self, manifest: Manifest, tags: Sequence[str] = (), *, listed: bool = False
    ) -> None:
        """Store a manifest's exact bytes by digest, then under each of ``tags``.

        ``listed`` makes an untagged manifest an entry of its own (a layout's index.json);
        a registry lists every manifest it holds anyway. Children of an index are stored
        without it.
        """
        ...

    def replace_manifest(self, tag: str, manifest: Manifest, current: str | None) -> bool:
        """Point ``tag`` at ``manifest`` if it still names ``current`` (None: no manifest).

        Returns False when another writer came first. Registries that ignore conditional
        requests (distribution 2.8), and layouts between their check and their write, can
        still lose a race: callers read back what they wrote.
        """
        ...

    def delete(self, identifier: str) -> None:
        """Delete a tag, or a manifest by digest where the backend can (see
        :class:`ManifestDeleter`)."""
        ...

    def has_blob(self, desc: Descriptor) -> bool:
        """Whether the blob is here (a layout checks its size, without hashing it)."""
        ...

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[Iterator[bytes]]:
        """A context manager yielding the blob's bytes as chunks (verified by the caller or,
        for a layout, as they are read)."""
        ...

    def write_blob(self, desc: Descriptor, chunks: Iterator[bytes]) -> None:
        """Store a blob from its chunks; refused before commit when the digest or size is
        wrong."""
        ...

    def list_tags(self) -> list[str]:
        """Every tag."""
        ...

    def list_referrers(self, digest: str, *, artifact_type: str | None = None) -> list[Descriptor]:
        """The referrers of a manifest (the referrers API, else the fallback tag)."""
        ...

    def attach(self, manifest: Manifest) -> AttachResult:
        """Store a referrer (a manifest with a ``subject``) and make it listable."""
        ...


class MountResult(NamedTuple):
    """A mount's answer: done, or refused with a session to upload into instead."""

    mounted: bool
    location: str | None


@runtime_checkable
class MultiTagPusher(Protocol):
    """Backends that may apply several tags in one write (OCI multi-tag push)."""

    def put_tags(self, manifest: Manifest, tags: Sequence[str]) -> tuple[str, ...]:
        """Try one write for every tag; return the tags confirmed (none when the backend
        turned out not to support it, learnt for next time)."""
        ...


@runtime_checkable
class BlobMounter(Protocol):
    """Backends that can take a blob from another repository without moving its bytes."""

    def can_mount_from(self, source: Repository) -> bool:
        """Whether a mount from ``source`` may work (same registry, one credential)."""
        ...

    def mount_blob(self, desc: Descriptor, source: Repository) -> MountResult:
        """Ask for a cross-repository mount of ``desc`` from ``source``."""
        ...


@runtime_checkable
class ChunkedUploads(Protocol):
    """Backends with upload sessions: monolithic or chunked, resumable, cancellable."""

    client: Client

    def start_upload(self) -> str:
        """Open a session; return its location."""
        ...

    def has_blob(self, desc: Descriptor) -> bool:
        """Whether the blob is here (after a lost answer: did the commit land?)."""
        ...

    def patch_upload(self, location: str, chunk: memoryview, offset: int) -> UploadStatus:
        """Send one chunk at ``offset``."""
        ...

    def upload_status(self, location: str) -> UploadStatus:
        """How many bytes the session holds, and where to continue."""
        ...

    def finish_upload(
        self, location: str, digest: str, content: bytes | Iterator[bytes], size: int | None
    ) -> None:
        """Send the rest and commit the blob under ``digest``."""
        ...

    def cancel_upload(self, location: str) -> None:
        """Abandon a session, best effort."""
        ...

    def transfer_slots(self, source: Repository) -> AbstractContextManager[None]:
        """Hold this registry's (and a same-client source's) transfer slot."""
        ...


@runtime_checkable
class ManifestDeleter(Protocol):
    """Backends that delete manifests by digest, taking every tag on them along, and may
    refuse to delete a tag alone (distribution 2.8)."""

    def delete_manifest(self, digest: str) -> None:
        """Delete the manifest ``digest`` (and so every tag pointing at it)."""
        ...


def parse_location(
    text: str | Reference | LayoutReference,
    *,
    repository: bool = False,
    default_tag: str | None = "latest",
) -> Reference | LayoutReference:
    """A registry or layout reference from text (``oci:PATH[:TAG|@DIGEST]`` for a layout);
    references are returned as they are.

    Args:
        text: the reference.
        repository: a registry repository without tag or digest is expected.
        default_tag: the tag of a registry reference that names none.

    Raises:
        InvalidReference: the text is not a valid reference.
    """
    if not isinstance(text, str):
        return text
    if is_layout_reference(text):
        from ..layout_reference import parse_layout_reference

        return parse_layout_reference(text)
    if repository:
        return parse_repository(text)
    return parse_reference(text, default_tag=default_tag)


def scoped(repo: Repository, actions: str) -> Repository:
    """``repo`` asking for ``actions`` (``"pull"``, ``"pull,push"``, …) on its token scope for
    every request of an operation; a layout has no scopes and is returned as it is."""
    scope = repo.scope(actions)
    return repo.with_scopes([scope]) if scope else repo


def open_repository(
    client: Client,
    ref: str | Reference | LayoutReference,
    *,
    repository: bool = False,
    create: bool = False,
    default_tag: str | None = "latest",
) -> Repository:
    """The repository ``ref`` names: a registry repository, or an OCI layout for
    ``oci:PATH...`` or a :class:`LayoutReference`.

    Args:
        client: the client registry repositories talk through.
        ref: the reference (see :func:`parse_location`).
        repository: text names a repository (no tag or digest).
        create: create a layout that does not exist (a destination).
        default_tag: the tag of a registry reference that names none.

    Raises:
        InvalidReference: a malformed reference.
        NotFoundInLayout: (without ``create``) there is no layout at the path.
        LayoutError: the layout is invalid or cannot be created.
    """
    location = parse_location(ref, repository=repository, default_tag=default_tag)
    if isinstance(location, Reference):
        from .registry import RegistryRepository

        return RegistryRepository(client, location)
    from .oci import LayoutRepository

    return LayoutRepository.open(location, create=create)
