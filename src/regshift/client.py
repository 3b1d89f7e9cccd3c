"""A registry client: one method per Distribution API endpoint.

:class:`Client` is thread-safe and meant to live for a whole operation (or program). It
knows the endpoints -- paths, media types, what each answer means; how a request reaches a
registry (the shared connection pool, each registry's scheme, auth state and token cache,
transfer slots, retries) is its :class:`~regshift.session.SessionPool`'s job.

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
from typing import Any, NamedTuple, Self

import httpx

from .auth.credentials import Credential, Keychain, default_keychain
from .auth.flow import origin
from .capabilities import Capabilities, default_cache_dir
from .digests import compute_digest, matches, parse_digest, verify_bytes
from .errors import APIError, DigestMismatch, ManifestError, NotFound, RegistryError
from .inflight import InFlight
from .manifests import MAX_MANIFEST_BYTES, Descriptor, Manifest, parse_manifest
from .mediatypes import MANIFEST_ACCEPT, MediaType
from .reference import Reference
from .retries import OnRetry, RetryPolicy
from .session import QueryList, SessionPool
from .transport import RequestStats, TransportOptions, printable, stream_error

log = logging.getLogger(__name__)

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
        response = self._sessions.request(
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
        response = self._sessions.request(
            "POST", ref, "/blobs/uploads/", scopes=push, params=params
        )
        if response.status_code == 201 and mount:
            return UploadStart(mounted=True, location=None)
        return UploadStart(
            mounted=False, location=_upload_location(ref, response, self._scheme(ref))
        )

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
        self._sessions.request(
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
        response = self._sessions.request(
            "PATCH",
            ref,
            location,
            scopes=[ref.scope("pull,push"), *scopes],
            content=_pieces(chunk),
            headers=headers,
        )
        return _upload_status(ref, response, self._scheme(ref), default=start + len(chunk))

    def upload_status(
        self, ref: Reference, location: str, *, scopes: Iterable[str] = ()
    ) -> UploadStatus:
        """GET an upload session: how many bytes the registry holds, and where to continue."""
        response = self._sessions.request(
            "GET", ref, location, scopes=[ref.scope("pull,push"), *scopes]
        )
        return _upload_status(ref, response, self._scheme(ref), default=None)

    def cancel_upload(self, ref: Reference, location: str, *, scopes: Iterable[str] = ()) -> None:
        """DELETE an upload session, best effort (cleanup after a failed copy)."""
        try:
            self._sessions.request(
                "DELETE", ref, location, scopes=[ref.scope("pull,push"), *scopes]
            )
        except RegistryError as exc:
            log.debug("cancelling upload failed: %s", exc)

    @contextmanager
    def open_blob(
        self, ref: Reference, digest: str, *, scopes: Iterable[str] = ()
    ) -> Iterator[httpx.Response]:
        """GET a blob as a streamed response (redirects to storage hosts followed without auth).

        The blob is asked for unencoded: read it with ``response.iter_raw()``, which hands
        over the bytes as stored even when a storage backend labels them ``Content-Encoding``.
        """
        response = self._sessions.request(
            "GET", ref, f"/blobs/{digest}", scopes=scopes, headers=_IDENTITY, stream=True
        )
        with contextlib.closing(response):
            yield response

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
        found: list[Descriptor] = []
        filtered = False
        pages = self._pages(
            repo,
            f"/referrers/{digest}",
            kind="referrers",
            loops="referrers pagination loops",
            scopes=scopes,
            params=[("artifactType", artifact_type)] if artifact_type else [],
            headers={"Accept": MediaType.OCI_INDEX, **_IDENTITY},
            missing_ok=True,
            stream=True,
        )
        for response in pages:
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
        return Referrers(tuple(found), filtered)

    # -- tags -----------------------------------------------------------------------------

    def list_tags(
        self, repo: Reference, *, scopes: Iterable[str] = (), page_size: int = _TAG_PAGE_SIZE
    ) -> list[str]:
        """All tags of a repository, following ``Link`` pagination (bounded, same host only)."""
        loops = "tag list pagination loops or never ends"
        pages = self._pages(repo, f"/tags/list?n={page_size}", loops=loops, scopes=scopes)
        return [tag for response in pages for tag in _tags_from(response, repo)]

    def list_repositories(self, registry: str, *, page_size: int = _TAG_PAGE_SIZE) -> list[str]:
        """Every repository of a registry (``GET /v2/_catalog``, following ``Link`` pages).

        Raises:
            Unauthorized / NotFound / Unsupported: the registry refuses or has no catalog.
        """
        root = Reference(registry=registry, repository="catalog")
        pages = self._pages(
            root,
            f"_catalog?n={page_size}",
            loops="catalog pagination loops or never ends",
            kind="_catalog",
            scopes=["registry:catalog:*"],
            api_root=True,
        )
        found: list[str] = []
        for response in pages:
            try:
                doc = response.json()
            except (ValueError, RecursionError):
                doc = None
            names = doc.get("repositories") if isinstance(doc, dict) else None
            if names is None and isinstance(doc, dict):
                continue  # an empty registry may answer {"repositories": null}
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise _answer_error(root, response, "catalog is not a JSON list of strings")
            found.extend(names)
        return found

    def _pages(
        self, repo: Reference, path: str, *, loops: str, kind: str = "tags/list", **request: Any
    ) -> Iterator[httpx.Response]:
        """GET ``path`` and each next page its ``Link`` header names (bounded, same host
        only; ``params`` go with the first page only); ``loops`` is the error text when the
        links go round in circles or never end."""
        from .links import next_link  # paging only: not loaded by a tag

        next_path: str | None = path
        seen: set[str] = set()
        while next_path is not None:
            if next_path in seen or len(seen) >= _MAX_TAG_PAGES:
                raise APIError(status=200, method="GET", url=_display(repo), text=loops)
            seen.add(next_path)
            response = self._sessions.request("GET", repo, next_path, **request)
            request.pop("params", None)
            yield response
            link = response.headers.get("link", "")
            repository = "" if request.get("api_root") else repo.repository
            next_path = next_link(link, repository, repo.endpoint, kind=kind)

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
    ) -> httpx.Response:
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

    # -- plumbing -------------------------------------------------------------------------

    def _scheme(self, ref: Reference) -> str | None:
        return self._sessions.session(ref.endpoint).scheme


def _pieces(data: bytes | memoryview, size: int = 256 * 1024) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


def _read_limited(response: httpx.Response, limit: int, *, what: str) -> bytes:
    with contextlib.closing(response):
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


def _upload_status(
    ref: Reference, response: httpx.Response, scheme: str | None, default: int | None
) -> UploadStatus:
    has_location = "location" in response.headers
    location = _upload_location(ref, response, scheme) if has_location else None
    offset = _range_end(response.headers.get("range", ""))
    if offset is None:
        if default is None:
            raise _answer_error(ref, response, "upload status has no Range header")
        offset = default
    return UploadStatus(location=location, offset=offset)


def _upload_location(ref: Reference, response: httpx.Response, scheme: str | None) -> str:
    """The absolute upload URL of a 202 response, refusing other hosts and schemes.

    The Location must be on the registry itself -- its endpoint's host and port, over the
    scheme the session uses for it (``scheme``) -- not merely on whatever host answered:
    after a redirect, ``response.request`` is the redirect target's, which must get no
    upload (nor the registry's credentials with it).
    """
    location = response.headers.get("location", "")
    if not location:
        raise _answer_error(ref, response, "upload response has no Location header")
    try:
        url = response.request.url.join(location)
    except httpx.InvalidURL:
        text = f"refusing upload Location that is not a valid URL: {printable(location)}"
        raise _answer_error(ref, response, text) from None
    first = response.history[0].request.url if response.history else response.request.url
    try:
        registry = httpx.URL(f"{scheme or first.scheme}://{ref.endpoint}")
    except httpx.InvalidURL:
        registry = first
    if origin(url) != origin(registry):
        where = "another host" if url.host != registry.host else "another port or scheme"
        text = f"refusing upload Location on {where}: {url.scheme}://{url.netloc.decode()}"
        raise _answer_error(ref, response, text)
    return str(url)


def _answer_error(ref: Reference, response: httpx.Response, text: str) -> APIError:
    """An answer regshift cannot use, as an error naming ``ref``."""
    return APIError(
        status=response.status_code, method=response.request.method, url=_display(ref), text=text
    )


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


def _put_result(
    ref: Reference, manifest: Manifest, tags: list[str], response: httpx.Response
) -> PutResult:
    """What a manifest PUT's answer says, its digest checked against ours."""
    stored = response.headers.get("docker-content-digest", "")
    # Compared in the registry's algorithm: one that names content by sha512 is right.
    if stored and not matches(manifest.raw, stored):
        raise DigestMismatch(f"manifest {_display(ref)}", manifest.digest, stored)
    confirmed = _oci_tags(response.headers.get_list("oci-tag"))
    return PutResult(
        digest=manifest.digest,
        tags=tuple(t for t in tags if t in confirmed),
        subject=response.headers.get("oci-subject"),
    )


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
