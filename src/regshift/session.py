"""Per-registry sessions: which scheme a registry speaks, its auth, its slots, sending.

A :class:`SessionPool` holds what every registry shares -- the HTTP client and its
connection pool, the transport options, request counts, the keychain, learnt capabilities
and the one :class:`~regshift.retries.RetryPolicy` -- and hands out one
:class:`RegistrySession` per registry endpoint (``host[:port]``). A session knows which
scheme its registry speaks (HTTPS, or for loopback / insecure registries plain HTTP: probed
once, remembered across runs), holds the registry's auth state and token cache and its
transfer slots, and sends one API request with auth, scheme fallback and retries, turning
an error answer into a :mod:`regshift.errors` exception.

Sits between :mod:`regshift.transport` (the HTTP layer) and :mod:`regshift.client` (the
Distribution API endpoints, which know paths and media types but not how to send).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from . import wire
from .auth.credentials import Keychain
from .auth.flow import RegistryAuth
from .auth.scopes import ScopeSet, merge_scopes
from .capabilities import PLAIN_HTTP, Capabilities
from .errors import HINT_LOGIN, RETRYABLE_STATUSES, RegistryError, TransportError, Unauthorized
from .ratelimit import PullBudget
from .reference import Reference
from .retries import (
    OnRetry,
    RetryableAnswer,
    RetryPolicy,
    retry_after_seconds,
    translate,
)
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
    read_limited,
    redact_url,
)

log = logging.getLogger(__name__)

QueryList = list[tuple[str, str | int | float | bool | None]]
Content = bytes | Iterable[bytes] | None

_MAX_BODY = 4 * 1024 * 1024  # tag-list pages, upload answers: nothing legitimate is larger


class SessionPool:
    """What every registry session shares; one :class:`RegistrySession` per endpoint."""

    def __init__(
        self, options: TransportOptions, keychain: Keychain, capabilities: Capabilities
    ) -> None:
        self.options = options
        self.keychain = keychain
        self.capabilities = capabilities
        self.stats = RequestStats()
        self.http = build_http_client(options, self.stats)
        self.policy = RetryPolicy(
            retries=options.retries,
            backoff=options.backoff,
            max_retry_after=options.max_retry_after,
        )
        self._sessions: dict[str, RegistrySession] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def session(self, endpoint: str) -> RegistrySession:
        """The session of ``endpoint`` (``host[:port]``), made on first use."""
        session = self._sessions.get(endpoint)
        if session is None:
            with self._lock:
                session = self._sessions.setdefault(endpoint, RegistrySession(endpoint, self))
        return session

    def request(
        self,
        method: str,
        ref: Reference,
        path: str,
        *,
        scopes: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        content: Content = None,
        params: QueryList | None = None,
        stream: bool = False,
        missing_ok: bool = False,
        api_root: bool = False,
        retry: bool = True,
    ) -> wire.Response:
        """Send one API request on ``ref``'s repository through its registry's session
        (:meth:`RegistrySession.request`).

        ``path`` is below ``/v2/<repository>`` (or below ``/v2/`` with ``api_root``), or an
        absolute URL on the registry's host (an upload ``Location``).
        """
        if path.startswith(("http://", "https://")):
            target = path
        else:
            target = f"/v2/{path.lstrip('/')}" if api_root else f"/v2/{ref.repository}{path}"
        return self.session(ref.endpoint).request(
            method,
            target,
            scopes=merge_scopes([ref.scope("pull")] if not api_root else [], scopes),
            repository=None if api_root else ref.repository,
            # /v2/ belongs to no repository: errors name the registry (the ping's is made up).
            where=ref.registry if api_root else str(ref),
            headers=headers,
            content=content,
            params=params,
            stream=stream,
            missing_ok=missing_ok,
            retry=retry,
        )

    @contextmanager
    def registry_slots(self, *endpoints: str) -> Iterator[None]:
        """Hold one of each registry's ``per_registry`` transfer slots (each registry once)."""
        with contextlib.ExitStack() as stack:
            for endpoint in sorted(set(endpoints)):  # a fixed order: no lock-order deadlock
                stack.enter_context(self.session(endpoint).slot)
            yield

    def reporter(self, method: str, target: str) -> OnRetry:
        """The ``on_retry`` of :meth:`RetryPolicy.run` for ``method target``: counts the
        retry and its wait in :attr:`stats`, and logs it."""

        def report(why: str, waited: float, retry_after: float | None) -> None:
            capped = retry_after is not None and retry_after > waited
            self.stats.retried(waited)
            # A request names its URL (redacted, no query); a larger operation ("blob
            # sha256:…", no method) is named as it is. Worked out only when a retry happens:
            # parsing a URL for every request that never retries is a cost every copy paid.
            where = f"{method} {redact_url(target).split('?', 1)[0]}" if method else target
            log.warning(
                "%s: %s; retrying in %.1fs%s",
                where,
                why,
                waited,
                f" (Retry-After {retry_after:.0f}s capped)" if capped else "",
            )

        return report


class RegistrySession:
    """One registry endpoint as this process talks to it; thread-safe, made by the pool.

    Attributes:
        endpoint: the registry's ``host[:port]``.
        auth: its auth state (challenge, credentials per repository, tokens).
        slot: its transfer slots (``TransportOptions.per_registry``).
    """

    def __init__(self, endpoint: str, pool: SessionPool) -> None:
        options = pool.options
        self.endpoint = endpoint
        self._pool = pool
        self._scheme: str | None = None
        self.slot = threading.BoundedSemaphore(options.per_registry)
        #: The pull budget the registry announces (Docker Hub), guarding manifest GETs.
        self.budget = PullBudget(
            endpoint, reserve=options.rate_limit_reserve, slow_below=options.per_registry
        )
        self.auth = RegistryAuth(
            endpoint,
            lambda repository: pool.keychain.resolve(endpoint, repository),
            allow_plain_http=allows_plain_http(endpoint, options),
            user_agent=options.user_agent,
            send=self._send_token_request,
            insecure=options.insecure,
            retry=pool.policy,
            on_retry=pool.stats.retried,  # token retries count with the others
        )

    @property
    def scheme(self) -> str | None:
        """The scheme the registry answered on in this run (``None`` before any answer)."""
        return self._scheme

    def request(
        self,
        method: str,
        target: str,
        *,
        scopes: ScopeSet,
        repository: str | None,
        where: str,
        headers: Mapping[str, str] | None = None,
        content: Content = None,
        params: QueryList | None = None,
        stream: bool = False,
        missing_ok: bool = False,
        retry: bool = True,
    ) -> wire.Response:
        """Send one API request with auth, scheme fallback and retries; raise on error status.

        ``target`` is a path on the registry (``/v2/...``) or an absolute URL on its host (an
        upload ``Location``); ``repository`` the one it is on (``None``: ``/v2/`` itself);
        ``where`` what errors name. Idempotent methods and body-less POSTs (starting an
        upload: a replay at worst leaves an abandoned session, which registries expire) are
        retried on transient failures (``retry=False``: never). One-shot streamed bodies and
        PATCHes are never replayed here: their callers resume or restart the upload.
        """

        def attempt() -> wire.Response:
            response = self._send(method, target, scopes, headers, content, params, repository)
            if response.status_code in RETRYABLE_STATUSES:
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
                why = f"HTTP {response.status_code}"
                raise RetryableAnswer(response, why, retry_after, discard=response.close)
            return response

        replayable = content is None or isinstance(content, bytes)
        safe = method in IDEMPOTENT_METHODS or (method == "POST" and not content)
        try:
            if retry and replayable and safe:
                on_retry = self._pool.reporter(method, target)
                response = self._pool.policy.run(attempt, on_retry=on_retry)
            else:
                response = self._send(method, target, scopes, headers, content, params, repository)
        except TransportError as exc:
            raise TransportError(
                f"{where}: {exc}", retryable=exc.retryable, hint=exc.hint
            ) from None
        if response.status_code < 400 or (missing_ok and response.status_code == 404):
            return response if stream else buffered(response)
        raise self._error_for(response, where, repository)

    def _send(
        self,
        method: str,
        target: str,
        scopes: ScopeSet,
        headers: Mapping[str, str] | None,
        content: Content,
        params: QueryList | None,
        repository: str | None,
    ) -> wire.Response:
        """One attempt; the answer is always streamed, so no body is read unbounded."""
        endpoint = self.endpoint
        absolute = target.startswith(("http://", "https://"))
        schemes = (target.split(":", 1)[0],) if absolute else self._schemes()
        probing = not absolute and self._scheme is None
        plain_answer: wire.Response | None = None  # a 400 from plain HTTP, kept in case
        auth = self.auth.scoped(scopes, repository)
        for scheme in schemes:
            url = wire.URL(target if absolute else f"{scheme}://{endpoint}{target}")
            if params:  # appended to the URL's own query (a pagination link's)
                url = url.copy_merge_params(params)
            # The registry's origin under this scheme (an absolute upload Location or link was
            # checked to be on it): extra headers go there, and on no other redirect hop.
            own = self.auth.origin_for(url.scheme)
            request = self._pool.http.build_request(
                method, url, headers=headers, content=content, extensions={REGISTRY_ORIGIN: own}
            )
            try:
                with self._counted(method, target):
                    response = self._pool.http.send(request, auth=auth)
                    self.budget.observe(response.headers)
            except wire.TransportError as exc:
                if probing and scheme == "https" and is_tls_mismatch(exc):
                    if plain_answer is not None:  # plain HTTP it is; its 400 was genuine
                        self._learn_scheme("http")
                        return plain_answer
                    continue  # a plain-HTTP loopback / insecure registry: try http next
                raise translate(exc, f"{method} {endpoint}") from None
            last = scheme == schemes[-1]
            if probing and scheme == "http" and response.status_code == 400 and not last:
                response = buffered(response, MAX_ERROR_BODY)
                if method == "HEAD" or _wants_tls(response.content):
                    plain_answer = response
                    continue
            if probing:
                self._learn_scheme(scheme)
            return response
        raise TransportError(f"{method} {endpoint}: no usable scheme")

    def _counted(self, method: str, target: str) -> contextlib.AbstractContextManager[None]:
        """A manifest GET counts against a registry's announced pull budget (a HEAD does
        not): guarded by :attr:`budget`; anything else goes as it is."""
        if method == "GET" and "/manifests/" in target and self.budget.low:
            # The label (a parsed, redacted URL) only when the budget is close: the common
            # case, a registry that announces none, costs nothing per manifest GET.
            return self.budget.pull(f"GET {redact_url(target).split('?', 1)[0]}")
        return contextlib.nullcontext()

    def _schemes(self) -> tuple[str, ...]:
        """Schemes to try: the one that worked in this run, else the one remembered for this
        registry from earlier runs first, else :func:`candidate_schemes`' order."""
        if self._scheme:
            return (self._scheme,)
        schemes = candidate_schemes(self.endpoint, self._pool.options)
        capabilities = self._pool.capabilities
        remembered = capabilities.get(self.endpoint, PLAIN_HTTP) if len(schemes) > 1 else None
        if remembered is not None:
            first = "http" if remembered else "https"
            return (first, *(s for s in schemes if s != first))
        return schemes

    def _learn_scheme(self, scheme: str) -> None:
        self._scheme = scheme
        if len(candidate_schemes(self.endpoint, self._pool.options)) > 1:
            plain = scheme == "http"
            if self._pool.capabilities.get(self.endpoint, PLAIN_HTTP) is not plain:
                self._pool.capabilities.set(self.endpoint, PLAIN_HTTP, plain)

    def _send_token_request(self, request: wire.Request) -> wire.Response:
        """Send a token request: never redirected, extra headers only on the registry's origin.

        Never follow a token server's redirect: a POST would re-send its body (the refresh
        token) to the target; RegistryAuth refuses the answer. A token realm on the
        registry's own origin (Artifactory's) gets the extra headers, one elsewhere does not.
        """
        if self.auth.owns(request.url):
            request.extensions[REGISTRY_ORIGIN] = request.url.origin
        return self._pool.http.send(request, follow_redirects=False)

    def _error_for(
        self, response: wire.Response, where: str, repository: str | None
    ) -> RegistryError:
        error = api_error(response, context=where)
        if not isinstance(error, Unauthorized) or response.status_code != 401:
            return error
        # Looked up only here: a 404 must not depend on credentials.
        cred = self.auth.credential_for(repository)
        if cred.is_anonymous:
            context, hint = f"{where}: no credentials found", HINT_LOGIN
        else:
            source = cred.source or "configuration"
            context, hint = f"{where}: credentials from {source} were refused or lack access", None
        return Unauthorized(
            status=error.status,
            method=error.method,
            url=error.url,
            errors=error.errors,
            text=error.text,
            context=context,
            hint=hint,
        )


def _wants_tls(body: bytes) -> bool:
    """A TLS port answering plain HTTP with a 400: Go (distribution) says "Client sent an
    HTTP request to an HTTPS server", nginx "The plain HTTP request was sent to HTTPS port".
    No credentials were sent: none go out before a challenge."""
    return b"HTTPS" in body[:300]


def buffered(response: wire.Response, limit: int = _MAX_BODY) -> wire.Response:
    """The response with its body read (at most ``limit`` bytes; above that an error)."""
    data = read_limited(response, limit, raise_over=limit == _MAX_BODY)
    # A HEAD answer's Content-Length is the size of what a GET would send (the manifest's).
    dropped = {"content-encoding", "transfer-encoding"}
    if response.request.method != "HEAD":
        dropped.add("content-length")
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped]
    result = wire.Response(
        response.status_code, headers=headers, content=data, request=response.request
    )
    result.read()
    return result
