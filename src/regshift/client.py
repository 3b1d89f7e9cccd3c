"""A registry client: one method per Distribution API endpoint, on one shared ``httpx.Client``.

:class:`Client` is thread-safe and meant to live for a whole operation (or program): it
keeps the connection pool, each registry's auth state and token cache, and which scheme
(HTTPS or, for loopback / insecure registries, HTTP) each registry speaks.

Every method takes ``scopes``: the token scopes the *calling operation* needs in total, so
the first token request already carries them all (e.g. ``tag`` asks for pull+push on its GET).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Self

import httpx

from .auth.credentials import Credential, Keychain, default_keychain
from .auth.flow import RegistryAuth, origin
from .auth.scopes import ScopeSet, merge_scopes
from .capabilities import PLAIN_HTTP, Capabilities, default_cache_dir
from .digests import compute_digest, matches, parse_digest, verify_bytes
from .errors import (
    APIError,
    DigestMismatch,
    ManifestError,
    NotFound,
    RegistryError,
    TransportError,
    Unauthorized,
)
from .links import next_link
from .manifests import MAX_MANIFEST_BYTES, Descriptor, Manifest, parse_manifest
from .mediatypes import MANIFEST_ACCEPT, MediaType
from .reference import Reference
from .retries import RETRY_STATUSES, RetryPolicy, retry_after_seconds, translate
from .transport import (
    IDEMPOTENT_METHODS,
    MAX_ERROR_BODY,
    REGISTRY_ORIGIN,
    RequestStats,
    TransportOptions,
    allows_plain_http,
    api_error,
    build_http_client,
    candidate_schemes,
    is_tls_mismatch,
    printable,
    read_limited,
    redact_url,
    stream_error,
)

log = logging.getLogger(__name__)

QueryList = list[tuple[str, str | int | float | bool | None]]

_ACCEPT = ", ".join(MANIFEST_ACCEPT)
# Digests are over the bytes as stored, so manifests and blobs are asked for unencoded and
# read raw, never decoded: storage backends (S3/GCS behind a registry, CDNs) may label a
# .tar.gz layer "Content-Encoding: gzip", and a decoded body would fail its digest check.
_IDENTITY = {"Accept-Encoding": "identity"}
_MAX_TAG_PAGES = 10_000
_TAG_PAGE_SIZE = 1000  # ECR rejects n > 1000 (go-containerregistry #1091)


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


class Referrers(NamedTuple):
    """The answer of the OCI referrers API for one subject digest.

    Attributes:
        descriptors: the referrer descriptors (all pages).
        filtered: the registry applied the ``artifactType`` filter (``OCI-Filters-Applied``).
    """

    descriptors: tuple[Descriptor, ...]
    filtered: bool = False


class UploadStart(NamedTuple):
    """The answer to starting an upload: mounted, or a session location to upload to."""

    mounted: bool
    location: str | None


class UploadStatus(NamedTuple):
    """Where an upload session stands: bytes received so far and where to send the next."""

    location: str | None
    offset: int


class Client:
    """A thread-safe client for any number of registries."""

    def __init__(self, options: ClientOptions | None = None) -> None:
        self.options = options or ClientOptions()
        self.stats = RequestStats()
        self._keychain = self.options.keychain or default_keychain()
        self._http = build_http_client(self.options.transport, self.stats)
        self._lock = threading.Lock()
        self._auth: dict[str, RegistryAuth] = {}
        self._base: dict[str, str] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self.capabilities = Capabilities(self.options.cache_dir)
        #: What this run learnt and must not outlive it (e.g. referrers API support).
        self.run_capabilities = Capabilities(None)
        self._retry = RetryPolicy(
            retries=self.options.transport.retries,
            backoff=self.options.transport.backoff,
            max_retry_after=self.options.transport.max_retry_after,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    @property
    def requests(self) -> int:
        """HTTP requests sent so far (token requests included)."""
        return self.stats.total

    def token_requests(self, registry: str) -> int:
        """Token requests sent for ``registry`` so far."""
        auth = self._auth.get(registry)
        return auth.token_requests if auth else 0

    # -- manifests ------------------------------------------------------------------------

    def head_manifest(self, ref: Reference, *, scopes: Iterable[str] = ()) -> Descriptor | None:
        """HEAD a manifest; ``None`` when the registry has no such tag or digest.

        The digest is the ``Docker-Content-Digest`` header; callers that must be sure use
        :meth:`resolve_digest`, which falls back to GET when the header is missing.
        """
        response = self._request(
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
        size = _content_length(response)
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
            raise NotFound(status=404, method="HEAD", url=_display(ref), text="manifest unknown")
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
        response = self._request(
            "GET",
            ref,
            f"/manifests/{ref.identifier}",
            scopes=scopes,
            headers={"Accept": _ACCEPT, **_IDENTITY},
            stream=True,
        )
        raw = _read_limited(response, MAX_MANIFEST_BYTES, what=f"manifest {_display(ref)}")
        content_type = response.headers.get("content-type", "")
        _verify_manifest(raw, ref, response.headers)
        try:
            return parse_manifest(raw, content_type)
        except ManifestError as exc:
            raise type(exc)(f"{_display(ref)}: {exc}") from None

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
        params: QueryList = [("tag", t) for t in tag_list]
        scope_list = [ref.scope("pull,push"), *scopes]
        delays = iter(self._retry.delays())
        while True:
            try:
                response = self._request(
                    "PUT",
                    ref,
                    f"/manifests/{ref.identifier}",
                    scopes=scope_list,
                    headers={"Content-Type": manifest.media_type, **(headers or {})},
                    content=manifest.raw,
                    params=params,
                    retry=False,
                )
                break
            except (TransportError, APIError) as exc:
                delay = next(delays, None)
                if delay is None or (isinstance(exc, APIError) and not exc.retryable):
                    raise
                # The PUT may have landed before the failure: look before writing again.
                if self._landed(ref, manifest.digest, tag_list, scope_list):
                    return PutResult(digest=manifest.digest, tags=tuple(tag_list), checked=True)
                retry_after = exc.retry_after if isinstance(exc, APIError) else None
                self._wait_before_retry(
                    "PUT", f"/manifests/{ref.identifier}", str(exc), delay, retry_after
                )
        stored = response.headers.get("docker-content-digest", "")
        # Compared in the registry's algorithm: one that names content by sha512 is right.
        if stored and not matches(manifest.raw, stored):
            raise DigestMismatch(f"manifest {_display(ref)}", manifest.digest, stored)
        confirmed = _oci_tags(response.headers.get_list("oci-tag"))
        return PutResult(
            digest=manifest.digest,
            tags=tuple(t for t in tag_list if t in confirmed),
            subject=response.headers.get("oci-subject"),
        )

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
        self._request(
            "DELETE", ref, f"/manifests/{ref.identifier}", scopes=[ref.scope("delete"), *scopes]
        )

    # -- blobs ----------------------------------------------------------------------------

    def blob_exists(self, ref: Reference, digest: str, *, scopes: Iterable[str] = ()) -> bool:
        """HEAD a blob in ``ref``'s repository."""
        response = self._request("HEAD", ref, f"/blobs/{digest}", scopes=scopes, missing_ok=True)
        return response.status_code != 404

    def put_blob(self, ref: Reference, data: bytes, *, scopes: Iterable[str] = ()) -> str:
        """Upload a small blob monolithically (POST, then PUT with the bytes); return its digest."""
        digest = compute_digest(data)
        upload = self.start_upload(ref, scopes=scopes)
        assert upload.location is not None
        self.finish_upload(ref, upload.location, digest, data, scopes=scopes)
        return digest

    def start_upload(
        self,
        ref: Reference,
        *,
        mount: str | None = None,
        from_repository: str | None = None,
        scopes: Iterable[str] = (),
    ) -> UploadStart:
        """POST an upload session; with ``mount``, ask for a cross-repository mount first.

        Returns ``mounted=True`` on 201 (the blob is now in ``ref``'s repository), else the
        session ``location`` (a 202 to a mount request means: mount refused, upload here).
        """
        params: QueryList = []
        if mount:
            params.append(("mount", mount))
            if from_repository:
                params.append(("from", from_repository))
        push = [ref.scope("pull,push"), *scopes]
        response = self._request("POST", ref, "/blobs/uploads/", scopes=push, params=params)
        if response.status_code == 201 and mount:
            return UploadStart(mounted=True, location=None)
        return UploadStart(mounted=False, location=self._upload_location(ref, response))

    def finish_upload(
        self,
        ref: Reference,
        location: str,
        digest: str,
        content: bytes | Iterable[bytes] = b"",
        *,
        size: int | None = None,
        scopes: Iterable[str] = (),
    ) -> None:
        """PUT the (rest of the) blob to the session and commit it under ``digest``.

        ``content`` may be an iterator of chunks (streamed, never buffered); give ``size``
        then, so it goes out with a ``Content-Length``. A one-shot stream is never retried.
        """
        length = len(content) if isinstance(content, bytes) else size
        headers = {"Content-Type": "application/octet-stream"}
        if length is not None:
            headers["Content-Length"] = str(length)
        self._request(
            "PUT",
            ref,
            location,
            scopes=[ref.scope("pull,push"), *scopes],
            params=[("digest", digest)],
            content=content,
            headers=headers,
            retry=False,  # a lost response may hide a commit: callers check the blob first
        )

    def patch_upload(
        self,
        ref: Reference,
        location: str,
        chunk: bytes | memoryview,
        start: int,
        *,
        scopes: Iterable[str] = (),
    ) -> UploadStatus:
        """PATCH one chunk at offset ``start``; returns the next location and offset.

        The chunk goes out in 256 KiB pieces, so a large chunk is never copied whole on its
        way to the socket (memory stays at one chunk per upload).
        """
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(chunk) - 1}",  # distribution: no "bytes " unit
            "Content-Length": str(len(chunk)),
        }
        response = self._request(
            "PATCH",
            ref,
            location,
            scopes=[ref.scope("pull,push"), *scopes],
            content=_pieces(chunk),
            headers=headers,
        )
        return self._upload_status(ref, response, default=start + len(chunk))

    def upload_status(
        self, ref: Reference, location: str, *, scopes: Iterable[str] = ()
    ) -> UploadStatus:
        """GET an upload session: how many bytes the registry holds, and where to continue."""
        response = self._request("GET", ref, location, scopes=[ref.scope("pull,push"), *scopes])
        return self._upload_status(ref, response, default=None)

    def cancel_upload(self, ref: Reference, location: str, *, scopes: Iterable[str] = ()) -> None:
        """DELETE an upload session, best effort (cleanup after a failed copy)."""
        try:
            self._request("DELETE", ref, location, scopes=[ref.scope("pull,push"), *scopes])
        except RegistryError as exc:
            log.debug("cancelling upload failed: %s", exc)

    def _upload_status(
        self, ref: Reference, response: httpx.Response, default: int | None
    ) -> UploadStatus:
        location = self._upload_location(ref, response) if "location" in response.headers else None
        offset = _range_end(response.headers.get("range", ""))
        if offset is None:
            if default is None:
                raise APIError(
                    status=response.status_code,
                    method=response.request.method,
                    url=_display(ref),
                    text="upload status has no Range header",
                )
            offset = default
        return UploadStatus(location=location, offset=offset)

    @contextmanager
    def open_blob(
        self, ref: Reference, digest: str, *, scopes: Iterable[str] = ()
    ) -> Iterator[httpx.Response]:
        """GET a blob as a streamed response (redirects to storage hosts followed without auth).

        The blob is asked for unencoded: read it with ``response.iter_raw()``, which hands
        over the bytes as stored even when a storage backend labels them ``Content-Encoding``.
        """
        response = self._request(
            "GET", ref, f"/blobs/{digest}", scopes=scopes, headers=_IDENTITY, stream=True
        )
        with _closing(response):
            yield response

    def _upload_location(self, ref: Reference, response: httpx.Response) -> str:
        """The absolute upload URL of a 202 response, refusing other hosts and schemes.

        The Location must be on the registry itself -- its endpoint's host and port, over the
        scheme this client uses for it -- not merely on whatever host answered: after a
        redirect, ``response.request`` is the redirect target's, which must get no upload
        (nor the registry's credentials with it).
        """
        location = response.headers.get("location", "")
        if not location:
            raise APIError(
                status=response.status_code,
                method=response.request.method,
                url=_display(ref),
                text="upload response has no Location header",
            )
        try:
            url = response.request.url.join(location)
        except httpx.InvalidURL:
            raise APIError(
                status=response.status_code,
                method=response.request.method,
                url=_display(ref),
                text=f"refusing upload Location that is not a valid URL: {printable(location)}",
            ) from None
        first = response.history[0].request.url if response.history else response.request.url
        scheme = self._base.get(ref.endpoint, first.scheme)
        try:
            registry = httpx.URL(f"{scheme}://{ref.endpoint}")
        except httpx.InvalidURL:
            registry = first
        if origin(url) != origin(registry):
            where = "another host" if url.host != registry.host else "another port or scheme"
            raise APIError(
                status=response.status_code,
                method=response.request.method,
                url=_display(ref),
                text=f"refusing upload Location on {where}: {url.scheme}://{url.netloc.decode()}",
            )
        return str(url)

    # -- referrers ------------------------------------------------------------------------

    def get_referrers(
        self,
        repo: Reference,
        digest: str,
        *,
        artifact_type: str | None = None,
        scopes: Iterable[str] = (),
    ) -> Referrers | None:
        """``GET /v2/<name>/referrers/<digest>``, all pages; None when there is no such API.

        distribution 2.8 answers a plain-text 404 (no referrers API); a registry may also answer
        with something that is not an image index. Both mean: use the fallback tag schema.
        """
        params: QueryList = [("artifactType", artifact_type)] if artifact_type else []
        path: str | None = f"/referrers/{digest}"
        found: list[Descriptor] = []
        filtered = False
        seen: set[str] = set()
        while path is not None:
            if path in seen or len(seen) >= _MAX_TAG_PAGES:
                raise APIError(
                    status=200, method="GET", url=_display(repo), text="referrers pagination loops"
                )
            seen.add(path)
            response = self._request(
                "GET",
                repo,
                path,
                scopes=scopes,
                params=params if len(seen) == 1 else None,
                headers={"Accept": MediaType.OCI_INDEX, **_IDENTITY},
                missing_ok=True,
                stream=True,
            )
            if response.status_code == 404:
                response.close()
                return None
            raw = _read_limited(response, MAX_MANIFEST_BYTES, what=f"referrers of {digest}")
            try:
                index = parse_manifest(raw, response.headers.get("content-type", ""))
            except ManifestError:
                return None
            if not index.is_index:
                return None
            found.extend(index.manifests)
            filtered = filtered or "artifactType" in response.headers.get("oci-filters-applied", "")
            path = next_link(
                response.headers.get("link", ""), repo.repository, repo.endpoint, kind="referrers"
            )
        return Referrers(tuple(found), filtered)

    # -- tags -----------------------------------------------------------------------------

    def list_tags(
        self, repo: Reference, *, scopes: Iterable[str] = (), page_size: int = _TAG_PAGE_SIZE
    ) -> list[str]:
        """All tags of a repository, following ``Link`` pagination (bounded, same host only)."""
        tags: list[str] = []
        path: str | None = f"/tags/list?n={page_size}"
        seen: set[str] = set()
        while path is not None:
            if path in seen or len(seen) >= _MAX_TAG_PAGES:
                raise APIError(
                    status=200,
                    method="GET",
                    url=_display(repo),
                    text="tag list pagination loops or never ends",
                )
            seen.add(path)
            response = self._request("GET", repo, path, scopes=scopes)
            tags.extend(_tags_from(response, repo))
            path = next_link(response.headers.get("link", ""), repo.repository, repo.endpoint)
        return tags

    # -- registry -------------------------------------------------------------------------

    def ping(self, registry: str, *, scopes: Iterable[str] = ()) -> None:
        """``GET /v2/``, authenticating if the registry asks; raises on failure."""
        ref = Reference(registry=registry, repository="ping")
        self._request("GET", ref, "", scopes=scopes, api_root=True)

    @contextmanager
    def registry_slots(self, *endpoints: str) -> Iterator[None]:
        """Hold one of each registry's ``per_registry`` transfer slots (each registry once)."""
        with contextlib.ExitStack() as stack:
            for endpoint in sorted(set(endpoints)):  # a fixed order: no lock-order deadlock
                with self._lock:
                    slot = self._slots.setdefault(
                        endpoint, threading.BoundedSemaphore(self.options.transport.per_registry)
                    )
                stack.enter_context(slot)
            yield

    def credential(self, registry: str, repository: str | None = None) -> Credential:
        """The credential used for ``repository`` of ``registry`` (``None``: the registry's
        own, as for ``GET /v2/``); per-repository keychain entries make them differ."""
        return self._registry_auth(registry).credential_for(repository)

    def same_credential(self, first: Reference, second: Reference) -> bool:
        """Whether one credential serves both repositories (always false across registries):
        the condition for one token to cover both, as a cross-repository mount needs."""
        if first.endpoint != second.endpoint:
            return False
        return self._registry_auth(first.endpoint).same_credential(
            first.repository, second.repository
        )

    # -- plumbing -------------------------------------------------------------------------

    def _registry_auth(self, registry: str) -> RegistryAuth:
        with self._lock:
            auth = self._auth.get(registry)
            if auth is None:
                auth = RegistryAuth(
                    registry,
                    lambda repository: self._keychain.resolve(registry, repository),
                    allow_plain_http=allows_plain_http(registry, self.options.transport),
                    user_agent=self.options.transport.user_agent,
                    send=lambda request: self._send_token_request(registry, request),
                    insecure=self.options.transport.insecure,
                    retry=self._retry,
                    on_retry=self.stats.retried,  # token retries count with the others
                )
                self._auth[registry] = auth
            return auth

    def _send_token_request(self, registry: str, request: httpx.Request) -> httpx.Response:
        """Send a token request: never redirected, extra headers only on the registry's origin.

        Never follow a token server's redirect: a POST would re-send its body (the refresh
        token) to the target; RegistryAuth refuses the answer. A token realm on the
        registry's own origin (Artifactory's) gets the extra headers, one elsewhere does not.
        """
        if self._registry_auth(registry).owns(request.url):
            request.extensions[REGISTRY_ORIGIN] = origin(request.url)
        return self._http.send(request, stream=True, follow_redirects=False)

    def _request(
        self,
        method: str,
        ref: Reference,
        path: str,
        *,
        scopes: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        content: bytes | Iterable[bytes] | None = None,
        params: QueryList | None = None,
        stream: bool = False,
        missing_ok: bool = False,
        api_root: bool = False,
        retry: bool = True,
    ) -> httpx.Response:
        """Send one API request with auth, scheme fallback and retries; raise on error status.

        ``path`` is below ``/v2/<repository>`` (or ``/v2/`` itself with ``api_root``), or an
        absolute URL on the registry's host (an upload ``Location``).
        """
        if path.startswith(("http://", "https://")):
            target = path
        else:
            target = "/v2/" if api_root else f"/v2/{ref.repository}{path}"
        scope_set = merge_scopes([ref.scope("pull")] if not api_root else [], scopes)
        repository = None if api_root else ref.repository
        # /v2/ belongs to no repository: errors name the registry (the ping's is made up).
        where = ref.registry if api_root else _display(ref)
        try:
            response = self._send_retrying(
                method, ref.endpoint, target, scope_set, headers, content, params, retry, repository
            )
        except TransportError as exc:
            raise TransportError(f"{where}: {exc}", retryable=exc.retryable) from None
        if response.status_code < 400 or (missing_ok and response.status_code == 404):
            return response if stream else _buffered(response)
        raise _error_for(response, where, self._registry_auth(ref.endpoint), repository)

    def _send_retrying(
        self,
        method: str,
        endpoint: str,
        suffix: str,
        scopes: ScopeSet,
        headers: Mapping[str, str] | None,
        content: bytes | Iterable[bytes] | None,
        params: QueryList | None,
        retry: bool = True,
        repository: str | None = None,
    ) -> httpx.Response:
        """Send, retrying transient failures of requests that are safe to repeat.

        Idempotent methods and body-less POSTs (starting an upload: a replay at worst leaves
        an abandoned session, which registries expire) are retried with exponential backoff
        and jitter, waiting ``Retry-After`` instead when the registry sends one (capped).
        One-shot streamed bodies and PATCHes are never replayed here: their callers resume
        or restart the upload.
        """
        replayable = content is None or isinstance(content, bytes)
        safe = method in IDEMPOTENT_METHODS or (method == "POST" and not content)
        delays = iter(self._retry.delays()) if retry and replayable and safe else iter(())
        while True:
            try:
                response = self._send(
                    method, endpoint, suffix, scopes, headers, content, params, repository
                )
            except TransportError as exc:
                delay = next(delays, None) if exc.retryable else None
                if delay is None:
                    raise
                self._wait_before_retry(method, suffix, str(exc), delay, None)
                continue
            if response.status_code in RETRY_STATUSES:
                delay = next(delays, None)
                if delay is not None:
                    retry_after = retry_after_seconds(response.headers.get("retry-after"))
                    response.close()
                    self._wait_before_retry(
                        method, suffix, f"HTTP {response.status_code}", delay, retry_after
                    )
                    continue
            return response

    def pause_before_retry(
        self,
        what: str,
        why: str,
        attempt: int,
        retry_after: float | None = None,
        *,
        stop: threading.Event | None = None,
    ) -> None:
        """Back off before retrying a larger operation (a blob transfer): same policy,
        ``Retry-After`` and reporting as for single requests. ``attempt`` counts from 1;
        setting ``stop`` (a cancelled copy) ends the pause at once."""
        delay = self._retry.delay(attempt - 1)
        self._wait_before_retry("", what, why, delay, retry_after, stop)

    @property
    def max_attempts(self) -> int:
        """Tries a transient failure gets: 1 + ``TransportOptions.retries``."""
        return self._retry.retries + 1

    def _wait_before_retry(
        self,
        method: str,
        target: str,
        why: str,
        delay: float,
        retry_after: float | None,
        stop: threading.Event | None = None,
    ) -> None:
        waited = self._retry.wait(delay, retry_after, stop)
        capped = retry_after is not None and retry_after > waited
        self.stats.retried(waited)
        log.warning(
            "%s %s: %s; retrying in %.1fs%s",
            method,
            redact_url(target).split("?", 1)[0],
            why,
            waited,
            f" (Retry-After {retry_after:.0f}s capped)" if capped else "",
        )

    def _send(
        self,
        method: str,
        endpoint: str,
        suffix: str,
        scopes: ScopeSet,
        headers: Mapping[str, str] | None,
        content: bytes | Iterable[bytes] | None,
        params: QueryList | None,
        repository: str | None = None,
    ) -> httpx.Response:
        """One attempt; the answer is always streamed, so no body is read unbounded."""
        auth = self._registry_auth(endpoint)
        absolute = suffix.startswith(("http://", "https://"))
        schemes = (suffix.split(":", 1)[0],) if absolute else self._schemes(endpoint)
        probing = not absolute and endpoint not in self._base
        plain_answer: httpx.Response | None = None  # a 400 from plain HTTP, kept in case
        for scheme in schemes:
            url = httpx.URL(suffix if absolute else f"{scheme}://{endpoint}{suffix}")
            if params:  # merge: build_request(params=...) would drop the URL's own query
                url = url.copy_merge_params(params)
            # The registry's origin under this scheme (an absolute upload Location or link was
            # checked to be on it): extra headers go there, and on no other redirect hop.
            own = origin(httpx.URL(f"{url.scheme}://{endpoint}"))
            request = self._http.build_request(
                method, url, headers=headers, content=content, extensions={REGISTRY_ORIGIN: own}
            )
            try:
                response = self._http.send(
                    request, auth=auth.scoped(scopes, repository), stream=True
                )
            except httpx.TransportError as exc:
                if probing and scheme == "https" and is_tls_mismatch(exc):
                    if plain_answer is not None:  # plain HTTP it is; its 400 was genuine
                        self._learn_scheme(endpoint, "http")
                        return plain_answer
                    continue  # a plain-HTTP loopback / insecure registry: try http next
                raise translate(exc, f"{method} {endpoint}") from None
            if (
                probing
                and scheme == "http"
                and response.status_code == 400
                and scheme != schemes[-1]
            ):
                response = _buffered(response, MAX_ERROR_BODY)
                if method == "HEAD" or _wants_tls(response.content):
                    plain_answer = response
                    continue
            if probing:
                self._learn_scheme(endpoint, scheme)
            return response
        raise TransportError(f"{method} {endpoint}: no usable scheme")

    def _schemes(self, endpoint: str) -> tuple[str, ...]:
        """Schemes to try: the one that worked in this run, else the one remembered for this
        registry from earlier runs first, else :func:`candidate_schemes`' order."""
        known = self._base.get(endpoint)
        if known:
            return (known,)
        schemes = candidate_schemes(endpoint, self.options.transport)
        remembered = self.capabilities.get(endpoint, PLAIN_HTTP) if len(schemes) > 1 else None
        if remembered is not None:
            first = "http" if remembered else "https"
            return (first, *(s for s in schemes if s != first))
        return schemes

    def _learn_scheme(self, endpoint: str, scheme: str) -> None:
        with self._lock:
            self._base[endpoint] = scheme
        if len(candidate_schemes(endpoint, self.options.transport)) > 1:
            plain = scheme == "http"
            if self.capabilities.get(endpoint, PLAIN_HTTP) is not plain:
                self.capabilities.set(endpoint, PLAIN_HTTP, plain)


@contextmanager
def _closing(response: httpx.Response) -> Iterator[httpx.Response]:
    try:
        yield response
    finally:
        response.close()


def _pieces(data: bytes | memoryview, size: int = 256 * 1024) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


def _wants_tls(body: bytes) -> bool:
    """A TLS port answering plain HTTP with a 400: Go (distribution) says "Client sent an
    HTTP request to an HTTPS server", nginx "The plain HTTP request was sent to HTTPS port".
    No credentials were sent: none go out before a challenge."""
    return b"HTTPS" in body[:300]


_MAX_BODY = 4 * 1024 * 1024  # tag-list pages, upload answers: nothing legitimate is larger


def _buffered(response: httpx.Response, limit: int = _MAX_BODY) -> httpx.Response:
    """The response with its body read (at most ``limit`` bytes; above that an error)."""
    data = read_limited(response, limit, raise_over=limit == _MAX_BODY)
    # A HEAD answer's Content-Length is the size of what a GET would send (the manifest's).
    dropped = {"content-encoding", "transfer-encoding"}
    if response.request.method != "HEAD":
        dropped.add("content-length")
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped]
    buffered = httpx.Response(
        response.status_code, headers=headers, content=data, request=response.request
    )
    buffered.read()
    return buffered


def _read_limited(response: httpx.Response, limit: int, *, what: str) -> bytes:
    with _closing(response):
        declared = _content_length(response)
        if declared > limit:
            raise ManifestError(f"{what} is {declared} bytes, above the {limit} limit")
        data = bytearray()
        try:
            for chunk in response.iter_raw():  # the exact bytes: see _IDENTITY
                data += chunk
                if len(data) > limit:
                    raise ManifestError(f"{what} is larger than the {limit} byte limit")
        except httpx.HTTPError as exc:
            raise stream_error(exc, response, what) from None
        return bytes(data)


def _range_end(value: str) -> int | None:
    """The offset after a ``Range: 0-<last>`` upload-status header.

    distribution clamps the end to 0, so ``0-0`` means an empty session (a one-byte one
    cannot be told apart; regshift never sends chunks that small).
    """
    start, sep, last = value.removeprefix("bytes=").partition("-")
    if not sep or not start.isdigit() or not last.isdigit():
        return None
    return int(last) + 1 if int(last) > 0 else 0


def _content_length(response: httpx.Response) -> int:
    try:
        return max(0, int(response.headers.get("content-length", "0")))
    except ValueError:
        return 0


def _verify_manifest(raw: bytes, ref: Reference, headers: httpx.Headers) -> None:
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
    what = f"manifest {_display(ref)}"
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


def _oci_tags(values: list[str]) -> set[str]:
    return {t.strip() for v in values for t in v.split(",") if t.strip()}


def _tags_from(response: httpx.Response, repo: Reference) -> list[str]:
    try:
        doc = response.json()
    except (ValueError, RecursionError):
        doc = None
    tags = doc.get("tags") if isinstance(doc, dict) else None
    if tags is None and isinstance(doc, dict):
        return []  # distribution answers {"name": ..., "tags": null} for an empty repository
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise APIError(
            status=response.status_code,
            method="GET",
            url=_display(repo),
            text="tag list is not a JSON list of strings",
        )
    return tags


def _display(ref: Reference) -> str:
    return str(ref)


def _error_for(
    response: httpx.Response, where: str, auth: RegistryAuth, repository: str | None
) -> RegistryError:
    error = api_error(response, context=where)
    if isinstance(error, Unauthorized) and response.status_code == 401:
        # Looked up only here: a 404 must not depend on credentials.
        cred = auth.credential_for(repository)
        hint = (
            "no credentials found; use regshift login or --username"
            if cred.is_anonymous
            else f"credentials from {cred.source or 'configuration'} were refused or lack access"
        )
        return Unauthorized(
            status=error.status,
            method=error.method,
            url=error.url,
            errors=error.errors,
            text=error.text,
            context=f"{where}: {hint}",
        )
    return error
