"""Registry authentication as a :class:`regshift.wire.Auth` flow: Basic, Bearer tokens,
identity tokens.

One :class:`RegistryAuth` holds the state for one registry (the challenge it sent) and, per
credential, the tokens it issued; it is shared by every request and thread. Credentials may
differ between repositories of one registry (podman's per-repository ``auth.json`` keys), so
each repository's credential is looked up once, lazily, and tokens are cached per credential:
a token one account obtained is never sent for a repository another account is configured
for. Each request gets a light :class:`ScopedAuth` naming its repository and the scopes its
*operation* needs, so one token request covers, say, both the GET and the PUTs of a ``tag``.

The flow (Docker token spec, distribution ``auth/token``):

1. If a fresh token covering the scopes is cached, send it; if we already know the registry
   wants Bearer or Basic, obtain the credential first, so no 401 round trip is wasted.
2. On 401, parse ``WWW-Authenticate``, merge any scope it names (distribution answers 401,
   not 403, on insufficient scope), fetch one token for the whole scope set and replay once.

Token requests are sent through the same client (``send``), so they share its connection
pool and TLS settings; their answers are read with a size cap, and they are retried on
connection errors, 408, 429 and 5xx like any idempotent request (``Retry-After`` honoured,
capped). Token requests never follow redirects (an OAuth2 POST would re-send its refresh
token to the redirect target): a redirect from the token server is an :class:`AuthError`.
Credentials are never sent over plain HTTP unless the URL they go to is loopback or on a host
named insecure (the realm is judged by its own host, not the registry's), and credentials of
any kind are attached only to the registry's own origin (host and port; HTTPS, or plain HTTP
where allowed) -- never to an upload ``Location`` or any other URL on another host (the
client also drops ``Authorization`` on cross-origin redirects, e.g. to S3 blob storage). Only a 401
from the registry's own origin is answered: a redirect target's challenge is not the
registry's.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

from .. import wire
from ..errors import HINT_INSECURE, RETRYABLE_STATUSES, AuthError, TransportError
from ..reference import is_loopback_host
from ..retries import RetryableAnswer, RetryPolicy, retry_after_seconds, translate
from ..wire.url import DEFAULT_PORTS
from .challenge import Challenge, parse_challenges, select_challenge
from .credentials import Credential
from .scopes import ScopeSet, covers, merge_scopes

log = logging.getLogger(__name__)

_MAX_TOKEN_RESPONSE = 256 * 1024
_DEFAULT_LIFETIME = 60.0
_CLIENT_ID = "regshift"


class Token(NamedTuple):
    """A bearer token and the scopes it was issued for."""

    value: str
    scopes: ScopeSet
    expires_at: float

    def fresh(self, now: float) -> bool:
        """Whether the token is still usable, keeping a margin for clock skew and latency."""
        return now < self.expires_at


class _Account:
    """One credential at one registry: its tokens and the locks of its token fetches.

    ``credential`` is the newest form of the credential (an OAuth2 server may rotate the
    refresh token); the account stays keyed by the credential first resolved.
    """

    __slots__ = ("credential", "fetch_locks", "refresh_lock", "tokens")

    def __init__(self, credential: Credential) -> None:
        self.credential = credential
        self.tokens: list[Token] = []
        self.fetch_locks: dict[ScopeSet, threading.Lock] = {}
        self.refresh_lock = threading.Lock()


class RegistryAuth:
    """Authentication state for one registry, shared across requests and threads."""

    def __init__(
        self,
        registry: str,
        credential: Callable[[str | None], Credential],
        *,
        allow_plain_http: bool,
        user_agent: str,
        send: Callable[[wire.Request], wire.Response],
        clock: Callable[[], float] = time.monotonic,
        insecure: frozenset[str] = frozenset(),
        retry: RetryPolicy | None = None,
        on_retry: Callable[[float], None] | None = None,
    ) -> None:
        """Create the state; ``credential`` finds the credential of a repository (``None``: the
        registry's own), ``insecure`` are the registries (``host[:port]``) named insecure,
        ``retry`` the client's policy for token requests (transport defaults when omitted),
        ``on_retry`` told the seconds waited before each retried token request."""
        self.registry = registry
        self._credential_source = credential
        self._by_repository: dict[str | None, Credential] = {}
        self._accounts: dict[Credential, _Account] = {}
        # Hosts that may get secrets over plain HTTP besides loopback: those named insecure,
        # and this registry itself when it is allowed plain HTTP (loopback or --insecure).
        named = insecure | ({registry} if allow_plain_http else frozenset())
        self._plain_hosts = frozenset(_host_of(name) for name in named)
        self._user_agent = user_agent
        self._send = send
        self._on_retry = on_retry
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._lock = threading.Lock()
        self._challenge: Challenge | None = None
        self._origins: dict[str, tuple[str, str, int | None] | None] = {}
        self.token_requests = 0

    @property
    def scheme(self) -> str | None:
        """The scheme the registry challenged with (``basic``, ``bearer``), None before any
        challenge (or when the registry never sent one: no authentication)."""
        challenge = self._challenge
        return challenge.scheme if challenge is not None else None

    def owns(self, url: wire.URL) -> bool:
        """Whether ``url`` is on this registry's origin: its host and port (the scheme's
        default port when the registry names none), over a scheme it may be reached by."""
        own = self.origin_for(url.scheme)
        return own is not None and own == url.origin

    def origin_for(self, scheme: str) -> tuple[str, str, int | None] | None:
        """This registry's origin over ``scheme`` (``None`` for a scheme that is not HTTP or
        a registry name that is no URL authority), worked out once per scheme: every request
        asks, and parsing a URL each time was a measurable part of a copy's CPU."""
        if scheme in self._origins:
            return self._origins[scheme]
        own = None
        if scheme in DEFAULT_PORTS:
            try:
                own = wire.URL(f"{scheme}://{self.registry}").origin
            except wire.InvalidURL:
                own = None
        self._origins[scheme] = own
        return own

    def scoped(self, scopes: ScopeSet, repository: str | None = None) -> ScopedAuth:
        """A :class:`wire.Auth` for one request, on ``repository`` (``None``: the registry's
        API root), of an operation needing ``scopes``."""
        return ScopedAuth(self, scopes, repository)

    @property
    def credential(self) -> Credential:
        """The registry's own credential (no repository), resolved once."""
        return self.credential_for(None)

    def credential_for(self, repository: str | None) -> Credential:
        """The credential for ``repository`` (resolved once), in its newest form."""
        return self._account(repository).credential

    def same_credential(self, first: str, second: str) -> bool:
        """Whether two repositories of this registry are accessed with one credential.

        True without looking anything up while the registry never challenged us: it has
        authenticated nothing so far, so no credential is in play.
        """
        if self._challenge is None:
            return True
        return self._account(first) is self._account(second)

    def _account(self, repository: str | None) -> _Account:
        with self._lock:
            original = self._by_repository.get(repository)
            if original is None:
                original = self._credential_source(repository)
                self._by_repository[repository] = original
            account = self._accounts.get(original)
            if account is None:
                account = self._accounts[original] = _Account(original)
            return account

    # -- what to send before any 401 -------------------------------------------------------

    def preemptive(
        self, scopes: ScopeSet, url: wire.URL, repository: str | None = None
    ) -> str | None:
        """The header to send before any 401, when this registry's challenge is known.

        Before the first challenge nothing is looked up: a registry that never asks for
        credentials never has them resolved (a broken credential helper does not matter).
        """
        challenge = self._challenge
        if challenge is None:
            return None
        account = self._account(repository)
        return self.authorize(challenge, scopes, url, stale=None, account=account)

    def cached_header(self, scopes: ScopeSet, account: _Account) -> str | None:
        """The ``Authorization`` value of a fresh token of ``account`` covering ``scopes``."""
        now = self._clock()
        with self._lock:
            account.tokens = [t for t in account.tokens if t.fresh(now)]
            for token in account.tokens:
                if covers(token.scopes, scopes):
                    return f"Bearer {token.value}"
        return None

    # -- answering a challenge ------------------------------------------------------------

    def learn(self, response: wire.Response) -> Challenge | None:
        """Remember the challenge of a 401 response; return it when we can answer it."""
        header = response.headers.get("www-authenticate", "")
        challenge = select_challenge(parse_challenges(header)) if header else None
        if challenge is not None:
            with self._lock:
                self._challenge = Challenge(challenge.scheme, dict(challenge.params, scope=""))
        return challenge

    def authorize(
        self,
        challenge: Challenge,
        scopes: ScopeSet,
        url: wire.URL,
        stale: str | None,
        *,
        account: _Account | None = None,
    ) -> str | None:
        """Produce an ``Authorization`` value for ``challenge``, fetching a token if needed;
        ``account`` is the repository's (the registry's own when omitted)."""
        account = account or self._account(None)
        if challenge.scheme == "basic":
            return self._basic_header(url, account)
        scopes = self._own_scopes(scopes, account)
        cached = self.cached_header(scopes, account)
        if cached is not None and cached != stale:
            return cached
        with self._fetch_lock(scopes, account):
            cached = self.cached_header(scopes, account)
            if cached is not None and cached != stale:
                return cached
            if stale is not None:
                self._drop(stale, account)
            token = self._fetch_token(challenge, scopes, account)
            with self._lock:  # cached before the lock is released: waiters find it
                account.tokens.append(token)
        return f"Bearer {token.value}"

    def _own_scopes(self, scopes: ScopeSet, account: _Account) -> ScopeSet:
        """``scopes`` without those on repositories another credential is configured for.

        A token request speaks for one account. An operation on two repositories (a copy
        within one registry merges both repositories' scopes) may involve two accounts
        when credentials are per repository: each account's token request names only its
        own repositories, and the other repository's scopes go into the other account's.
        """
        kept = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name = rest.rpartition(":")[0]
            if kind != "repository" or not name or self._account(name) is account:
                kept.append(scope)
        return frozenset(kept)

    def _basic_header(self, url: wire.URL, account: _Account) -> str | None:
        cred = account.credential
        if not cred.username or not cred.password:
            return None
        self.require_secure(url, "Basic credentials")
        raw = f"{cred.username}:{cred.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    @contextlib.contextmanager
    def _fetch_lock(self, scopes: ScopeSet, account: _Account) -> Iterator[None]:
        """One token fetch at a time per account and scope set, or per account for refresh
        tokens.

        OAuth2 servers may rotate refresh tokens and accept each only once (RFC 9700
        section 4.14.2; e.g. Keycloak with "Revoke Refresh Token" enabled): parallel
        fetches for different repositories would all send the same one and all but the
        first be refused. Serialised, each fetch re-reads the credential inside the lock
        (``_fetch_token``) and so sends the token the previous fetch got back.
        """
        if account.credential.identity_token:
            lock = account.refresh_lock
        else:
            with self._lock:
                lock = account.fetch_locks.setdefault(scopes, threading.Lock())
        with lock:
            yield

    def _drop(self, header: str, account: _Account) -> None:
        value = header.removeprefix("Bearer ")
        with self._lock:
            account.tokens = [t for t in account.tokens if t.value != value]

    # -- token endpoint -------------------------------------------------------------------

    def _fetch_token(self, challenge: Challenge, scopes: ScopeSet, account: _Account) -> Token:
        cred = account.credential
        if cred.registry_token:
            return Token(cred.registry_token, frozenset({"*:*"}), float("inf"))
        realm = self._realm_url(challenge)
        if cred.identity_token:
            answer = self._send_token_request(self._oauth_request(realm, challenge, scopes, cred))
            if answer[0] not in (404, 405):
                return self._token_from(answer, realm, scopes, account)
            # Registries without OAuth2 POST support (e.g. older Docker Hub mirrors): use GET.
        answer = self._send_token_request(self._get_token_request(realm, challenge, scopes, cred))
        return self._token_from(answer, realm, scopes, account)

    def _send_token_request(self, request: wire.Request) -> tuple[int, bytes]:
        """Send a token request, retrying transient failures; return its status and body.

        Token requests are safe to repeat (a GET, or a POST whose refresh token a server
        that failed with 5xx/429 has not consumed). A connection failure that outlasts the
        retries is a :class:`TransportError` (a network problem, not a refusal), marked not
        retryable so the request that needed the token does not repeat this whole series.

        Raises:
            TransportError: the token server could not be reached.
            AuthError: its answer could not be read (too large, undecodable).
        """

        def attempt() -> tuple[int, bytes]:
            status, data, retry_after = self._token_attempt(request)
            if status in RETRYABLE_STATUSES:
                raise RetryableAnswer((status, data), f"HTTP {status}", retry_after)
            return status, data

        def on_retry(why: str, waited: float, _retry_after: float | None) -> None:
            if self._on_retry is not None:
                self._on_retry(waited)
            log.warning(
                "%s: token server %s: %s; retrying in %.1fs",
                self.registry,
                request.url.host,
                why,
                waited,
            )

        try:
            return self._retry.run(attempt, on_retry=on_retry)
        except TransportError as exc:
            raise TransportError(str(exc), retryable=False, hint=exc.hint) from None

    def _token_attempt(self, request: wire.Request) -> tuple[int, bytes, float | None]:
        """One token request: status, body (at most the size cap), ``Retry-After`` seconds."""
        what = f"token server {request.url.host}"
        try:
            response = self._send(request)
        except wire.TransportError as exc:
            raise translate(exc, what) from None
        except wire.HTTPError as exc:
            raise AuthError(f"{self.registry}: {what}: {exc}") from None
        if response.is_redirect:
            # Never followed (the client sends token requests so): a POST would carry its
            # refresh token to the redirect target.
            response.close()
            raise AuthError(
                f"{self.registry}: {what} answered with a redirect (HTTP {response.status_code}); "
                "token requests are not redirected: the realm must name the token endpoint"
            )
        try:
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > _MAX_TOKEN_RESPONSE:
                    raise AuthError(
                        f"{self.registry}: token response from {request.url.host} is too large"
                    )
        except wire.TransportError as exc:
            raise translate(exc, f"{what}: reading the answer") from None
        except wire.HTTPError as exc:
            raise AuthError(f"{self.registry}: {what}: {exc}") from None
        finally:
            response.close()
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        return response.status_code, bytes(data), retry_after

    def _realm_url(self, challenge: Challenge) -> wire.URL:
        try:
            realm = wire.URL(challenge.realm)
        except wire.InvalidURL:
            realm = wire.URL("")
        if realm.scheme not in ("http", "https") or not realm.host:
            raise AuthError(
                f"{self.registry}: bearer challenge has an invalid realm {challenge.realm!r}"
            )
        return realm

    def _get_token_request(
        self, realm: wire.URL, challenge: Challenge, scopes: ScopeSet, cred: Credential
    ) -> wire.Request:
        params: list[tuple[str, str | int | float | bool | None]] = (
            [("service", challenge.service)] if challenge.service else []
        )
        params += [("scope", s) for s in sorted(scopes)]
        headers = {"User-Agent": self._user_agent}
        secret = cred.password or cred.identity_token
        if cred.username and secret:
            self.require_secure(realm, "credentials")
            params.append(("account", cred.username))
            raw = f"{cred.username}:{secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        elif cred.identity_token:
            self.require_secure(realm, "an identity token")
            raw = f"<token>:{cred.identity_token}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        self.token_requests += 1
        return wire.Request("GET", realm.copy_merge_params(params), headers=headers)

    def _oauth_request(
        self, realm: wire.URL, challenge: Challenge, scopes: ScopeSet, cred: Credential
    ) -> wire.Request:
        self.require_secure(realm, "an identity token")
        form = {
            "grant_type": "refresh_token",
            "refresh_token": cred.identity_token,
            "service": challenge.service,
            "scope": " ".join(sorted(scopes)),
            "client_id": _CLIENT_ID,
        }
        self.token_requests += 1
        return wire.Request("POST", realm, data=form, headers={"User-Agent": self._user_agent})

    def _token_from(
        self, answer: tuple[int, bytes], realm: wire.URL, scopes: ScopeSet, account: _Account
    ) -> Token:
        cred = account.credential
        status, content = answer
        who = f" (credentials from {cred.source})" if cred.source else ""
        if status in (401, 403):
            raise AuthError(
                f"{self.registry}: token server {realm.host} refused the credentials{who}: "
                f"HTTP {status}"
            )
        if status != 200:
            raise AuthError(f"{self.registry}: token server {realm.host} answered HTTP {status}")
        body = self._token_body(content, realm)
        value = body.get("token") or body.get("access_token")
        if not isinstance(value, str) or not value:
            raise AuthError(f"{self.registry}: token server {realm.host} returned no token")
        refresh = body.get("refresh_token")
        if isinstance(refresh, str) and refresh and cred.identity_token:
            with self._lock:  # OAuth2 servers may rotate refresh tokens
                account.credential = Credential(
                    username=cred.username, identity_token=refresh, source=cred.source
                )
        return Token(value, scopes, self._clock() + _usable_lifetime(body.get("expires_in")))

    def _token_body(self, content: bytes, realm: wire.URL) -> dict[str, object]:
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            raise AuthError(f"{self.registry}: token server {realm.host} returned invalid JSON")
        return body

    def require_secure(self, url: wire.URL, what: str) -> None:
        """Refuse to send secrets in clear text, except to loopback or insecure hosts.

        ``url`` itself is judged, not the registry: a loopback or ``--insecure`` registry may
        name a token realm on another host, and that host gets nothing over plain HTTP.
        """
        if url.scheme == "https" or is_loopback_host(url.host) or url.host in self._plain_hosts:
            return
        own_host = url.host == _host_of(self.registry)
        error = AuthError(
            f"{self.registry}: refusing to send {what} over plain HTTP to {url.host}; use HTTPS"
            + ("" if own_host else " or its token realm must use HTTPS")
        )
        if own_host:  # or allow plain HTTP for the registry
            error.hint = HINT_INSECURE
        raise error


def _host_of(authority: str) -> str:
    """The host of ``host[:port]`` (``[v6]:port`` too), lower-cased as URLs give it."""
    try:
        return wire.URL(f"http://{authority}").host
    except wire.InvalidURL:
        return authority.lower()


def _usable_lifetime(expires_in: object) -> float:
    """Seconds a token may be used: its lifetime minus a margin of a fifth (at most 10 s)."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
        lifetime = _DEFAULT_LIFETIME
    else:
        lifetime = float(expires_in)
    return lifetime - min(10.0, lifetime / 5)


class ScopedAuth(wire.Auth):
    """The :class:`wire.Auth` of one request: scopes of its operation + shared registry state."""

    def __init__(self, state: RegistryAuth, scopes: ScopeSet, repository: str | None) -> None:
        self._state = state
        self._scopes = merge_scopes(scopes)
        self._repository = repository

    def auth_flow(self, request: wire.Request) -> wire.Flow:
        state = self._state
        if not state.owns(request.url):
            # Another origin (or scheme) than the registry's: it gets no credential at all.
            request.headers.pop("Authorization", None)
            yield request
            return
        header = state.preemptive(self._scopes, request.url, self._repository)
        if header:
            state.require_secure(request.url, "credentials")
            request.headers["Authorization"] = header
        response = yield request
        if response.status_code != 401:
            return
        if response.request.url.origin != request.url.origin:
            # A redirect target (S3, a CDN) answered 401: its challenge is not the
            # registry's, and its realm must not get the registry's credentials.
            return
        challenge = state.learn(response)
        if challenge is None or not request.replayable:  # a one-shot stream is gone
            return
        scopes = merge_scopes(self._scopes, challenge.scopes)
        account = state._account(self._repository)
        fresh = state.authorize(challenge, scopes, request.url, stale=header, account=account)
        if fresh is None or fresh == header:
            return
        state.require_secure(request.url, "credentials")
        request.headers["Authorization"] = fresh
        yield request
