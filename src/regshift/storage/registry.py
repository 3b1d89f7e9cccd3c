"""A registry repository as a :class:`~regshift.storage.Repository`, over :class:`Client`.

Each call is one endpoint of the distribution API (a HEAD, GET, PUT, ...); the repository
adds its reference and the token scopes of the whole operation. Beyond the interface it can
push several tags at once, mount blobs across repositories, upload in resumable sessions and
delete manifests by digest (see the capability protocols in :mod:`regshift.storage`).

Whether a registry has the referrers API is learnt once per run and kept in
``client.run_capabilities`` (feature :data:`REFERRERS_API`, keyed by the registry endpoint):
from the first referrers listing, or from the ``OCI-Subject`` header of an attach.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .. import wire
from ..capabilities import MULTI_TAG_PUSH
from ..client import Client, UploadStatus
from ..errors import APIError, NotFound, RegistryError
from ..manifests import Descriptor, Manifest
from ..reference import Reference, validate_digest
from ..transport import stream_error
from . import MountResult, Repository

if TYPE_CHECKING:
    from .fallback import AttachResult

log = logging.getLogger(__name__)

#: The ``run_capabilities`` feature name: does the registry serve the referrers API?
REFERRERS_API = "referrers_api"


class RegistryRepository:
    """A repository of a registry, at the tag or digest of ``ref`` (if any), asking for a
    token with ``scopes`` (none: the client's default for each request).

    A plain class, not a frozen dataclass: every ``regshift tag`` loads it, and generating
    a dataclass's methods costs start-up time (see README "Development").
    """

    __slots__ = ("client", "ref", "scopes")

    local = False
    write_method = "put"

    def __init__(self, client: Client, ref: Reference, scopes: Sequence[str] = ()) -> None:
        self.client, self.ref, self.scopes = client, ref, tuple(scopes)

    def __repr__(self) -> str:
        return f"RegistryRepository({str(self.ref)!r})"

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def reference(self) -> Reference:
        return self.ref

    @property
    def tag(self) -> str | None:
        return self.ref.tag

    @property
    def digest(self) -> str | None:
        return self.ref.digest

    @property
    def identifier(self) -> str | None:
        return self.ref.digest or self.ref.tag

    @property
    def endpoint(self) -> str:
        return self.ref.endpoint

    def at(self, identifier: str) -> RegistryRepository:
        return RegistryRepository(self.client, self._at(identifier), self.scopes)

    def scope(self, actions: str) -> str:
        return self.ref.scope(actions)

    def with_scopes(self, scopes: Sequence[str]) -> RegistryRepository:
        return RegistryRepository(self.client, self.ref, scopes)

    def same_repository(self, other: Repository) -> bool:
        return other.endpoint == self.endpoint and other.name == self.name

    def _at(self, identifier: str) -> Reference:
        repo = self.ref.repo_only()
        return repo.with_digest(identifier) if ":" in identifier else repo.with_tag(identifier)

    # -- manifests --------------------------------------------------------------------------

    def resolve(self, identifier: str) -> Descriptor:
        """HEAD (GET when the answer names no usable digest)."""
        if ":" in identifier:
            validate_digest(identifier)
        return self.client.resolve_digest(self._at(identifier), scopes=self.scopes)

    def head(self, identifier: str) -> str | None:
        return self.client.digest_of(self._at(identifier), scopes=self.scopes)

    def has_manifest(self, digest: str) -> bool:
        found = self.client.head_manifest(self._at(digest), scopes=self.scopes)
        return found is not None

    def get_manifest(self, identifier: str) -> Manifest:
        return self.client.get_manifest(self._at(identifier), scopes=self.scopes)

    def put_manifest(
        self, manifest: Manifest, tags: Sequence[str] = (), *, listed: bool = False
    ) -> None:
        """By digest when no tag is given, else one PUT per tag."""
        for target in [self._at(t) for t in tags] or [self._at(manifest.digest)]:
            self.client.put_manifest(target, manifest, scopes=self.scopes)

    def replace_manifest(self, tag: str, manifest: Manifest, current: str | None) -> bool:
        """A conditional PUT: ``If-Match`` the version read (a registry's ETag for a
        manifest is its quoted digest), or ``If-None-Match: *``. Registries that honour them
        answer 412 when another writer came first; distribution 2.8 ignores them."""
        condition = {"If-Match": f'"{current}"'} if current else {"If-None-Match": "*"}
        try:
            self.client.put_manifest(self._at(tag), manifest, scopes=self.scopes, headers=condition)
        except APIError as exc:
            if exc.status == 412:
                return False
            raise
        return True

    def put_tags(self, manifest: Manifest, tags: Sequence[str]) -> tuple[str, ...]:
        """One multi-tag PUT (``PUT /manifests/<digest>?tag=a&tag=b``) unless the registry is
        known to lack it; return the tags it confirmed, learning its support."""
        capabilities = self.client.capabilities
        if capabilities.get(self.endpoint, MULTI_TAG_PUSH) is False:
            return ()
        try:
            result = self.client.put_manifest(
                self._at(manifest.digest), manifest, tags=tags, scopes=self.scopes
            )
        except RegistryError as exc:
            # Every failure falls back to a PUT per tag (which records its own errors), but
            # only a refused query (400 / 414 / 431) says the registry lacks the feature: a
            # denial, a rate limit or a dropped connection says nothing about it.
            log.debug("multi-tag push failed on %s: %s", self.endpoint, exc)
            if isinstance(exc, APIError) and exc.status in (400, 414, 431):
                capabilities.set(self.endpoint, MULTI_TAG_PUSH, False)
            return ()
        if not result.checked:  # tags confirmed by looking tell nothing about the feature
            capabilities.set(self.endpoint, MULTI_TAG_PUSH, bool(result.tags))
        return result.tags

    def delete(self, identifier: str) -> None:
        self.client.delete_manifest(self._at(identifier), scopes=self.scopes)

    def delete_manifest(self, digest: str) -> None:
        self.client.delete_manifest(self._at(digest), scopes=self.scopes)

    def list_tags(self) -> list[str]:
        return self.client.list_tags(self.ref.repo_only(), scopes=self.scopes)

    # -- blobs ------------------------------------------------------------------------------

    def has_blob(self, desc: Descriptor) -> bool:
        return self.client.blob_exists(self.ref, desc.digest, scopes=self.scopes)

    @contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[Iterator[bytes]]:
        with self.client.open_blob(self.ref, desc.digest, scopes=self.scopes) as response:
            yield _raw_chunks(response)

    def write_blob(self, desc: Descriptor, chunks: Iterator[bytes]) -> None:
        """One monolithic upload (copies use the resumable sessions instead)."""
        location = self.start_upload()
        self.finish_upload(location, desc.digest, chunks, desc.size)

    def can_mount_from(self, source: Repository) -> bool:
        """A mount needs one token with pull on the source and push here: the same registry,
        and one credential for both repositories (with per-repository credentials, two
        accounts, no token has both, so the blob goes through us)."""
        if not isinstance(source, RegistryRepository) or source.endpoint != self.endpoint:
            return False
        return self.client.same_credential(source.ref, self.ref)

    def mount_blob(self, desc: Descriptor, source: Repository) -> MountResult:
        """POST ``?mount=&from=``: mounted (201), or a session to upload into (202).

        Raises:
            APIError: the registry refused the mount with an error instead of a 202.
        """
        assert isinstance(source, RegistryRepository)  # see can_mount_from
        start = self.client.start_upload(
            self.ref,
            mount=desc.digest,
            from_repository=source.ref.repository,
            scopes=self.scopes,
        )
        return MountResult(start.mounted, start.location)

    # -- upload sessions (ChunkedUploads) ---------------------------------------------------

    def start_upload(self) -> str:
        location = self.client.start_upload(self.ref, scopes=self.scopes).location
        assert location is not None  # a plain POST always answers with a session
        return location

    def patch_upload(self, location: str, chunk: memoryview, offset: int) -> UploadStatus:
        return self.client.patch_upload(self.ref, location, chunk, offset, scopes=self.scopes)

    def upload_status(self, location: str) -> UploadStatus:
        return self.client.upload_status(self.ref, location, scopes=self.scopes)

    def finish_upload(
        self, location: str, digest: str, content: bytes | Iterator[bytes], size: int | None
    ) -> None:
        self.client.finish_upload(
            self.ref, location, digest, content, size=size, scopes=self.scopes
        )

    def cancel_upload(self, location: str) -> None:
        self.client.cancel_upload(self.ref, location, scopes=self.scopes)

    def transfer_slots(self, source: Repository) -> contextlib.AbstractContextManager[None]:
        endpoints = [self.endpoint]
        if isinstance(source, RegistryRepository) and source.client is self.client:
            endpoints.append(source.endpoint)
        return self.client.registry_slots(*endpoints)

    # -- referrers --------------------------------------------------------------------------

    def referrers_api(self) -> bool | None:
        """Whether this run found the registry has the referrers API; None if unknown."""
        return self.client.run_capabilities.get(self.endpoint, REFERRERS_API)

    def list_referrers(self, digest: str, *, artifact_type: str | None = None) -> list[Descriptor]:
        """Asks the referrers API unless this run already found the registry has none; on a
        registry without it (404, or an answer that is no image index), reads the index
        under the fallback tag instead, where a missing tag means no referrers. Entries are
        filtered by ``artifact_type`` here when the registry did not apply the filter."""
        from .fallback import fallback_tag, of_type, read_index

        validate_digest(digest)
        known = self.referrers_api()
        if known is not False:
            answer = self.client.get_referrers(
                self.ref.repo_only(), digest, artifact_type=artifact_type
            )
            if answer is not None:
                self._remember(True)
                found = list(answer.descriptors)
                return found if answer.filtered else of_type(found, artifact_type)
        try:
            index = read_index(self.with_scopes([self.ref.scope("pull")]), fallback_tag(digest))
        except NotFound as exc:
            # A registry with the API may still 404 a repository it does not have, so only a
            # 404 inside an existing repository proves there is no API.
            if known is None and "NAME_UNKNOWN" not in exc.codes:
                self._remember(False)
            return []
        if known is None:
            self._remember(False)
        return of_type(list(index.manifests), artifact_type)

    def attach(self, manifest: Manifest) -> AttachResult:
        """PUT by digest; when the registry answers with ``OCI-Subject`` it indexes the
        subject itself and nothing else is written, else the fallback index is updated."""
        from ..errors import ManifestError
        from .fallback import AttachResult, update_fallback

        subject = manifest.subject
        if subject is None:
            raise ManifestError(f"{manifest.digest}: manifest has no subject to attach it to")
        target = self.ref.repo_only()
        pushed = self.client.put_manifest(target.with_digest(manifest.digest), manifest)
        if pushed.subject == subject.digest:
            self._remember(True)
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
            self._remember(False)
        writer = self.with_scopes([self.ref.scope("pull,push")])
        return update_fallback(writer, manifest, subject.digest)

    def _remember(self, supported: bool) -> None:
        if self.referrers_api() is not supported:
            self.client.run_capabilities.set(self.endpoint, REFERRERS_API, supported)


def _raw_chunks(response: wire.Response) -> Iterator[bytes]:
    """The blob as stored: raw, never decoded, so its digest holds even when a storage
    backend labels a .tar.gz layer ``Content-Encoding: gzip``; HTTP-layer errors become ours."""
    try:
        yield from response.iter_raw()
    except wire.HTTPError as exc:
        raise stream_error(exc, response, "reading source blob") from None
