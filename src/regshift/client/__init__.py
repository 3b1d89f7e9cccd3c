"""A registry client: one method per Distribution API endpoint.

:class:`Client` is thread-safe and meant to live for a whole operation (or program). It
knows the endpoints -- paths, media types, what each answer means; how a request reaches a
registry (the shared connection pool, each registry's scheme, auth state and token cache,
transfer slots, retries) is its :class:`~regshift.session.SessionPool`'s job.

The endpoints by family, so each is found in one place: manifests, blob reads and the
registry itself here; blob uploads (sessions, chunks, mounts) in :mod:`.uploads`; tag,
catalog and referrers listings in :mod:`.listing` -- two parts :class:`Client` inherits,
each needing only the session pool. :mod:`.answers` reads answers for all of them.

Every method takes ``scopes``: the token scopes the *calling operation* needs in total, so
the first token request already carries them all (e.g. ``tag`` asks for pull+push on its GET).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from .. import wire
from ..auth.credentials import Credential, Keychain, default_keychain
from ..capabilities import Capabilities, default_cache_dir
from ..digests import matches, parse_digest, verify_bytes
from ..errors import DigestMismatch, ManifestError, NotFound, RegistryError
from ..inflight import InFlight
from ..manifests import MAX_MANIFEST_BYTES, Descriptor, Manifest, parse_manifest
from ..mediatypes import MANIFEST_ACCEPT
from ..reference import Reference
from ..retries import OnRetry, RetryPolicy
from ..session import QueryList, SessionPool
from ..transport import RequestStats, TransportOptions
from .answers import IDENTITY, content_length, display, read_limited
from .listing import ListingEndpoints, Referrers
from .uploads import UploadEndpoints, UploadStart, UploadStatus

__all__ = [
    "Client",
    "ClientOptions",
    "PutResult",
    "Referrers",
    "UploadStart",
    "UploadStatus",
]

log = logging.getLogger(__name__)

_ACCEPT = ", ".join(MANIFEST_ACCEPT)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientOptions:
    """Everything a :class:`Client` needs to know besides the registries themselves.

    Attributes:
        transport: HTTP settings (TLS, timeouts, retries, insecure registries).
        keychain: where credentials come from; ``None`` means Docker/podman config + env.
        cache_dir: where learnt registry capabilities persist; ``None`` keeps them in memory.
    """

    transport: TransportOptions = field(default_factory=TransportOptions)
    keychain: Keychain | None = None
    cache_dir: Path | None = field(default_factory=default_cache_dir)


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a manifest PUT achieved.

    Attributes:
        digest: the digest the registry stored (checked against ours).
        tags: the tags the registry confirmed via ``OCI-Tag`` (multi-tag push), else empty.
        subject: the ``OCI-Subject`` the registry answered (referrers API support).
        checked: the answer was lost and a HEAD showed the PUT had landed, so nothing was
            sent again; ``tags`` then lists every tag asked for (each resolved to the digest),
            which says nothing about the registry's multi-tag support.
    """

    digest: str
    tags: tuple[str, ...] = ()
    subject: str | None = None
    checked: bool = False


class Client(UploadEndpoints, ListingEndpoints):
    """A thread-safe client for any number of registries."""

    def __init__(self, options: ClientOptions | None = None) -> None:
        self.options = options or ClientOptions()
        keychain = self.options.keychain or default_keychain()
        self.capabilities = Capabilities(self.options.cache_dir)
        #: What this run learnt and must not outlive it (e.g. referrers API support).
        self.run_capabilities = Capabilities(None)
        #: Blob transfers under way or done through this client, one per destination
        #: repository and digest at a time (see :mod:`regshift.inflight`).
        self.inflight = InFlight()
        self._sessions = SessionPool(self.options.transport, keychain, self.capabilities)
        self.stats: RequestStats = self._sessions.stats

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._sessions.close()

    @property
    def requests(self) -> int:
        """HTTP requests sent so far (token requests included)."""
        return self.stats.total

    def token_requests(self, registry: str) -> int:
        """Token requests sent for ``registry`` so far."""
        return self._sessions.session(registry).auth.token_requests

    @property
    def max_attempts(self) -> int:
        """Tries a transient failure gets: 1 + ``TransportOptions.retries``."""
        return self._sessions.policy.tries

    @property
    def retry_policy(self) -> RetryPolicy:
        """The one retry policy (from ``TransportOptions``) every retry site follows."""
        return self._sessions.policy

    def on_retry(self, what: str) -> OnRetry:
        """The ``on_retry`` of :meth:`RetryPolicy.run` for a larger operation on ``what``
        (a blob transfer): counted in :attr:`stats` and logged like a request's retries."""
        return self._sessions.reporter("", what)

    # -- manifests ------------------------------------------------------------------------

    def head_manifest(self, ref: Reference, *, scopes: Iterable[str] = ()) -> Descriptor | None:
        """HEAD a manifest; ``None`` when the registry has no such tag or digest.

        The digest is the ``Docker-Content-Digest`` header; callers that must be sure use
        :meth:`resolve_digest`, which falls back to GET when the header is missing.
        """
        response = self._sessions.request(
            "HEAD",
            ref,
            f"/manifests/{ref.identifier}",
            scopes=scopes,
            headers={"Accept": _ACCEPT},
            missing_ok=True,
        )
        if response.status_code == 404:
            return None
        digest = response.headers.get("docker-content-digest", "")
        size = content_length(response)
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
        return Descriptor(media_type=media_type, digest=digest, size=size)

    def digest_of(self, ref: Reference, *, scopes: Iterable[str] = ()) -> str | None:
        """The digest ``ref`` resolves to now, or ``None`` when there is no such manifest:
        :meth:`resolve_digest` (a HEAD missing ``Docker-Content-Digest`` never counts)."""
        try:
            return self.resolve_digest(ref, scopes=scopes).digest
        except NotFound:
            return None

    def resolve_digest(self, ref: Reference, *, scopes: Iterable[str] = ()) -> Descriptor:
        """The manifest descriptor of ``ref``: HEAD, or GET + sha256 when HEAD is not trustworthy.

        Raises:
            NotFound: no such manifest.
        """
        head = self.head_manifest(ref, scopes=scopes)
        if head is None:
            raise NotFound(status=404, method="HEAD", url=display(ref), text="manifest unknown")
        if _trustworthy(head, ref):
            return head
        return self.get_manifest(ref, scopes=scopes).descriptor()

    def get_manifest(self, ref: Reference, *, scopes: Iterable[str] = ()) -> Manifest:
        """GET a manifest, keeping its exact bytes, verified (see :func:`_verify_manifest`).

        Raises:
            NotFound: no such manifest.
            DigestMismatch: the bytes do not hash to the digest in ``ref``, or (by tag) to
                the ``Docker-Content-Digest`` the registry announced.
            ManifestError: too large or not a manifest we can handle.
        """
        response = self._sessions.request(
            "GET",
            ref,
            f"/manifests/{ref.identifier}",
            scopes=scopes,
            headers={"Accept": _ACCEPT, **IDENTITY},
            stream=True,
        )
        raw = read_limited(response, MAX_MANIFEST_BYTES, what=f"manifest {display(ref)}")
        content_type = response.headers.get("content-type", "")
        _verify_manifest(raw, ref, response.headers)
        try:
            return parse_manifest(raw, content_type)
        except ManifestError as exc:
            raise type(exc)(f"{display(ref)}: {exc}") from None

    def put_manifest(
        self,
        ref: Reference,
        manifest: Manifest,
        *,
        tags: Iterable[str] = (),
        scopes: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> PutResult:
        """PUT the manifest's exact bytes under ``ref`` (a tag or its digest).

        With ``tags`` (only when ``ref`` is by digest), asks the registry to apply them all at
        once (OCI distribution-spec multi-tag push); the result lists those it confirmed.

        Raises:
            DigestMismatch: the registry reports another digest than ours.
        """
        tag_list = list(tags)
        scope_list = [ref.scope("pull,push"), *scopes]
        path = f"/manifests/{ref.identifier}"

        def put() -> PutResult:
            response = self._sessions.request(
                "PUT",
                ref,
                path,
                scopes=scope_list,
                headers={"Content-Type": manifest.media_type, **(headers or {})},
                content=manifest.raw,
                params=[("tag", t) for t in tag_list],
                retry=False,  # retried below, after looking whether it landed
            )
            return _put_result(ref, manifest, tag_list, response)

        def landed(_: Exception) -> PutResult | None:
            # The PUT may have landed before the failure: look before writing again.
            if self._landed(ref, manifest.digest, tag_list, scope_list):
                return PutResult(digest=manifest.digest, tags=tuple(tag_list), checked=True)
            return None

        on_retry = self._sessions.reporter("PUT", path)
        return self._sessions.policy.run(put, before_retry=landed, on_retry=on_retry)

    def _landed(self, ref: Reference, digest: str, tags: list[str], scopes: list[str]) -> bool:
        """Whether a manifest PUT whose answer was lost did its work: ``ref`` resolves to
        ``digest``, or for a multi-tag push (``ref`` by digest) every one of ``tags`` does."""
        if not tags:
            return self._manifest_is(ref, digest, scopes)
        repo = ref.repo_only()
        return all(self._manifest_is(repo.with_tag(t), digest, scopes) for t in tags)

    def _manifest_is(self, ref: Reference, digest: str, scopes: Iterable[str]) -> bool:
        try:
            head = self.head_manifest(ref, scopes=scopes)
        except RegistryError:
            return False
        return head is not None and head.digest == digest

    def delete_manifest(self, ref: Reference, *, scopes: Iterable[str] = ()) -> None:
        """DELETE a manifest by digest, or a tag where the registry supports tag deletion."""
        self._sessions.request(
            "DELETE", ref, f"/manifests/{ref.identifier}", scopes=[ref.scope("delete"), *scopes]
        )

    # -- blobs ----------------------------------------------------------------------------

    def blob_exists(self, ref: Reference, digest: str, *, scopes: Iterable[str] = ()) -> bool:
        """HEAD a blob in ``ref``'s repository."""
        response = self._sessions.request(
            "HEAD", ref, f"/blobs/{digest}", scopes=scopes, missing_ok=True
        )
        return response.status_code != 404

    @contextmanager
    def open_blob(
        self, ref: Reference, digest: str, *, scopes: Iterable[str] = ()
    ) -> Iterator[wire.Response]:
        """GET a blob as a streamed response (redirects to storage hosts followed without auth).

        The blob is asked for unencoded: read it with ``response.iter_raw()``, which hands
        over the bytes as stored even when a storage backend labels them ``Content-Encoding``.
        """
        response = self._sessions.request(
            "GET", ref, f"/blobs/{digest}", scopes=scopes, headers=IDENTITY, stream=True
        )
        with contextlib.closing(response):
            yield response

    # -- registry -------------------------------------------------------------------------

    def ping(self, registry: str, *, scopes: Iterable[str] = ()) -> None:
        """``GET /v2/``, authenticating if the registry asks; raises on failure."""
        ref = Reference(registry=registry, repository="ping")
        self._sessions.request("GET", ref, "", scopes=scopes, api_root=True)

    def auth_scheme(self, registry: str) -> str | None:
        """How ``registry`` asked to authenticate so far (``basic``, ``bearer``), or None."""
        return self._sessions.session(registry).auth.scheme

    def request(
        self,
        method: str,
        ref: Reference,
        path: str,
        *,
        scopes: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        params: QueryList | None = None,
        missing_ok: bool = False,
    ) -> wire.Response:
        """Send one request below ``/v2/<repository>`` (or to an upload location) as it is,
        for probing what a registry does; the answer is read. An error status raises the
        matching :class:`~regshift.errors.APIError` (404 returns with ``missing_ok``)."""
        return self._sessions.request(
            method,
            ref,
            path,
            scopes=scopes,
            headers=headers,
            content=content,
            params=params,
            missing_ok=missing_ok,
        )

    def registry_slots(self, *endpoints: str) -> contextlib.AbstractContextManager[None]:
        """Hold one of each registry's ``per_registry`` transfer slots (each registry once)."""
        return self._sessions.registry_slots(*endpoints)

    def credential(self, registry: str, repository: str | None = None) -> Credential:
        """The credential used for ``repository`` of ``registry`` (``None``: the registry's
        own, as for ``GET /v2/``); per-repository keychain entries make them differ."""
        return self._sessions.session(registry).auth.credential_for(repository)

    def same_credential(self, first: Reference, second: Reference) -> bool:
        """Whether one credential serves both repositories (always false across registries):
        the condition for one token to cover both, as a cross-repository mount needs."""
        if first.endpoint != second.endpoint:
            return False
        auth = self._sessions.session(first.endpoint).auth
        return auth.same_credential(first.repository, second.repository)


def _verify_manifest(raw: bytes, ref: Reference, headers: wire.Headers) -> None:
    """Check a manifest's bytes before anything uses them: a body changed on its way (one
    byte, still valid JSON) would otherwise be tagged or copied under a new digest.

    By digest, against that digest. By tag, against the ``Docker-Content-Digest`` the
    registry announced, hashed in the header's algorithm (sha256 or sha512; each value when
    it is repeated). A value regshift cannot check (another algorithm, malformed) is
    ignored, as is a missing header (the spec makes it optional): logged, since the bytes
    then go unverified. A usable value that does not match is never accepted.

    Raises:
        DigestMismatch: the bytes hash to something else.
    """
    what = f"manifest {display(ref)}"
    if ref.digest:
        verify_bytes(raw, ref.digest, what=what)
        return
    announced = headers.get_list("docker-content-digest", split_commas=True)
    usable = [d for d in announced if parse_digest(d) is not None]
    if not usable:
        log.warning("%s: no usable Docker-Content-Digest to verify it against", what)
    for digest in usable:
        verify_bytes(raw, digest, what=f"{what} (Docker-Content-Digest)")


def _trustworthy(head: Descriptor, ref: Reference) -> bool:
    """Whether a HEAD's ``Docker-Content-Digest`` can stand for the manifest digest."""
    if not head.digest.startswith("sha256:") or len(head.digest) != 71:
        return False
    return not ref.digest or head.digest == ref.digest


def _put_result(
    ref: Reference, manifest: Manifest, tags: list[str], response: wire.Response
) -> PutResult:
    """What a manifest PUT's answer says, its digest checked against ours."""
    stored = response.headers.get("docker-content-digest", "")
    # Compared in the registry's algorithm: one that names content by sha512 is right.
    if stored and not matches(manifest.raw, stored):
        raise DigestMismatch(f"manifest {display(ref)}", manifest.digest, stored)
    confirmed = _oci_tags(response.headers.get_list("oci-tag"))
    return PutResult(
        digest=manifest.digest,
        tags=tuple(t for t in tags if t in confirmed),
        subject=response.headers.get("oci-subject"),
    )


def _oci_tags(values: list[str]) -> set[str]:
    return {t.strip() for v in values for t in v.split(",") if t.strip()}
