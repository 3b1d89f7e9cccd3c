"""The HTTP layer: one shared :class:`regshift.wire.Client`, TLS, proxies, candidate schemes,
error bodies.

Everything that touches sockets is configured here, and :mod:`regshift.wire` failures are
translated into :mod:`regshift.errors` at this boundary. Per-registry state (the scheme a registry
turned out to speak, auth, slots) and sending with retries are :mod:`regshift.session`'s.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from . import wire
from ._version import __version__
from .errors import APIError, Diagnostic, RegistryError, TransportError, api_error_class
from .redaction import redact_secrets, remember_secret
from .reference import is_loopback_host
from .retries import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_RETRIES,
    retry_after_seconds,
    translate,
)

log = logging.getLogger(__name__)

MAX_ERROR_BODY = 64 * 1024
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: The variables naming a proxy, as Go's ``net/http`` reads them (docker, podman, skopeo,
#: crane, regctl); once one is set, the exceptions and Go's CGI rule are read too.
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
_PROXY_CONTEXT = ("NO_PROXY", "no_proxy", "REQUEST_METHOD")

#: ``request.extensions`` key naming the origin (scheme, host, port) of the registry a request
#: is for; extra headers go only to a request (or redirect hop) on exactly that origin.
REGISTRY_ORIGIN = "regshift.registry_origin"

# Headers regshift or HTTP itself sets: extra headers may not replace them (as docker does
# not let its HttpHeaders change the headers it sets itself). Credentials go through the
# keychain, whose Authorization is attached per origin and challenge.
RESERVED_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "authorization",
        "connection",
        "content-length",
        "content-range",
        "content-type",
        "cookie",
        "expect",
        "host",
        "keep-alive",
        "proxy-authorization",
        "range",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
    }
)


def check_header(name: str, value: str) -> None:
    """Refuse an extra header that is malformed or would replace one regshift sets.

    The name must be an RFC 9110 token; the value visible ASCII, spaces and tabs (no CR,
    LF or other control characters: they would split the request). Messages name the
    header, never its value (a secret).

    Raises:
        ValueError: the header cannot be sent.
    """
    if not wire.is_token(name):
        # Not echoed: a mistyped flag may have put the secret where the name goes.
        raise ValueError("a header name must be a token (letters, digits, '-' and the like)")
    if name.lower() in RESERVED_HEADERS:
        raise ValueError(f"header {name} is set by regshift itself and cannot be replaced")
    if not value.strip():
        raise ValueError(f"header {name} has an empty value")
    if any(not (ch == "\t" or " " <= ch <= "~") for ch in value):
        raise ValueError(f"header {name}: the value must be printable ASCII (no CR, LF)")


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportOptions:
    """How regshift talks HTTP.

    Attributes:
        insecure: registries (``host[:port]``) that may use plain HTTP or unverified TLS.
        ca_file: a PEM bundle of extra CAs to trust (in addition to the system's).
        connect_timeout: seconds to establish a connection.
        read_timeout: seconds to wait for the next bytes of a response.
        retries: attempts after the first for idempotent requests that failed transiently.
        backoff: first retry delay in seconds; doubles each attempt, with jitter.
        max_retry_after: the longest ``Retry-After`` we honour, in seconds.
        max_connections: size of the shared connection pool.
        per_registry: blob transfers running at once against one registry, whatever
            ``jobs`` is (copies to several destinations or of many tags share it).
        user_agent: the ``User-Agent`` header.
        headers: extra ``(name, value)`` headers (e.g. ``("X-JFrog-Art-Api", key)``), sent
            on every request to a registry's own origin (scheme, host and port) -- never to
            a token server on another origin, nor to a redirect target elsewhere; values
            are secrets (masked in messages). See :func:`check_header` for what is refused.
        rate_limit_reserve: manifest pulls to leave unused when a registry announces its
            budget (``ratelimit-remaining``): a pull that would go below it raises
            :class:`~regshift.errors.RateLimitReserve` instead of being sent.
    """

    insecure: frozenset[str] = frozenset()
    ca_file: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    max_connections: int = 16
    per_registry: int = 6
    user_agent: str = f"regshift/{__version__}"
    headers: tuple[tuple[str, str], ...] = ()
    rate_limit_reserve: int = 0

    def __post_init__(self) -> None:
        names = [name.lower() for name, _ in self.headers]
        for name, value in self.headers:
            check_header(name, value)
            if names.count(name.lower()) > 1:
                raise ValueError(f"header {name} is given more than once")


@dataclass(slots=True)
class RequestStats:
    """Counts of HTTP requests sent (token requests included), thread-safe.

    A request counts once it went out, answered or not: one whose connection dropped before
    the answer (later retried) is a request the registry saw. One that never left (no
    connection, a failed TLS handshake, e.g. probing a plain-HTTP port) is not counted.
    """

    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _last: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    retries: int = 0
    retry_wait: float = 0.0
    _local: threading.local = field(default_factory=threading.local)

    def add(self) -> None:
        """Count one request (hooks run in the thread that sent it)."""
        with self._lock:
            self._last = next(self._counter) + 1
        self._local.count = getattr(self._local, "count", 0) + 1

    @property
    def this_thread(self) -> int:
        """Requests answered for the calling thread: exact per operation when several
        operations share a client from different threads."""
        return int(getattr(self._local, "count", 0))

    def retried(self, waited: float) -> None:
        """Count one retry and the time waited before it."""
        with self._lock:
            self.retries += 1
            self.retry_wait += waited

    @property
    def total(self) -> int:
        """Requests sent so far."""
        return self._last


def default_jobs() -> int:
    """Transfers at once by default: 2 per core, between 4 and 8 (the work waits on sockets)."""
    return max(4, min(8, 2 * (os.cpu_count() or 2)))


def ssl_context(ca_file: str | None, *, verify: bool = True) -> ssl.SSLContext:
    """A client TLS context trusting the system CAs plus ``ca_file``.

    Raises:
        TransportError: ``ca_file`` cannot be read.
    """
    if not verify:  # loads no CA certificates: cheap
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context()
    if ca_file:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            # Retrying cannot help; the CLI checks the file first (check_ca_file).
            raise TransportError(f"cannot load CA file {ca_file}: {exc}", retryable=False) from None
    return ctx


# Failures that happen before a request leaves: the registry never saw it.
_NOT_SENT = (wire.ConnectError, wire.ConnectTimeout, wire.UnsupportedProtocol)


def check_ca_file(path: str) -> None:
    """Check that ``path`` is a readable PEM bundle with at least one certificate; cheap
    (only that file is loaded, not the system CAs).

    Raises:
        ValueError: it is missing, a directory, unreadable, or holds no certificate.
    """
    if os.path.isdir(path):
        raise ValueError("is a directory, not a PEM file")
    if not os.path.exists(path):
        raise ValueError("no such file")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError:
        raise ValueError("no PEM certificate could be read from it") from None
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None


class _LazyTransport:
    """Builds its transport on first use: loading the CA bundle costs tens of milliseconds,
    which a run that only talks plain HTTP to a loopback registry should not pay."""

    def __init__(self, factory: Callable[[], wire.BaseTransport]) -> None:
        self._factory = factory
        self._transport: wire.BaseTransport | None = None
        self._lock = threading.Lock()

    def handle_request(self, request: wire.Request) -> wire.Response:
        with self._lock:
            if self._transport is None:
                self._transport = self._factory()
        return self._transport.handle_request(request)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _Counted:
    """Counts every request sent in ``stats`` (see :class:`RequestStats`): here, in the
    sending thread, because an event hook sees only requests that were answered. Outermost,
    so requests through a proxy count like direct ones."""

    def __init__(self, transport: wire.BaseTransport, stats: RequestStats) -> None:
        self._transport = transport
        self._stats = stats

    def handle_request(self, request: wire.Request) -> wire.Response:
        try:
            response = self._transport.handle_request(request)
        except _NOT_SENT:
            raise
        except wire.TransportError:
            self._stats.add()  # sent, and its answer lost (a dropped connection, a timeout)
            raise
        self._stats.add()
        return response

    def close(self) -> None:
        self._transport.close()


class _ProxyRouter:
    """Sends each request direct or through the proxy :func:`regshift.proxies.proxy_for`
    names for its URL (decided once per scheme, host and port; a token realm is judged by
    its own host like any other URL). Used only when a proxy variable is set."""

    def __init__(
        self,
        direct: wire.BaseTransport,
        via: Callable[[str], wire.BaseTransport],
        environ: Mapping[str, str],
    ) -> None:
        self._direct = direct
        self._via = via
        self._environ = environ
        self._routes: dict[tuple[str, str, int | None], tuple[wire.BaseTransport, str]] = {}
        self._pools: dict[str, wire.BaseTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: wire.Request) -> wire.Response:
        transport, proxy = self._route(request.url)
        if not proxy:
            return transport.handle_request(request)
        try:
            response = transport.handle_request(request)
        except wire.ProxyError as exc:  # the proxy refused the CONNECT: "407 Proxy Auth…"
            raise _proxy_error(proxy, str(exc)) from None
        except wire.ConnectError as exc:  # to the proxy, or a TLS handshake in its tunnel
            raise wire.ConnectError(f"through proxy {proxy}: {exc}") from exc
        if response.status_code == 407:  # a plain-HTTP request: only a proxy answers 407
            response.close()
            raise _proxy_error(proxy, "407 Proxy Authentication Required")
        return response

    def _route(self, url: wire.URL) -> tuple[wire.BaseTransport, str]:
        key = (url.scheme, url.host, url.port)
        with self._lock:
            route = self._routes.get(key)
            if route is None:
                route = self._routes[key] = self._new_route(url)
        return route

    def _new_route(self, url: wire.URL) -> tuple[wire.BaseTransport, str]:
        from .proxies import describe_proxy, proxy_for  # only behind a proxy

        try:
            proxy = proxy_for(str(url), self._environ)
        except ValueError as exc:
            raise TransportError(str(exc), retryable=False) from None
        where = f"{url.scheme}://{url.netloc}"
        if proxy is None:
            log.debug("%s: direct", where)
            return self._direct, ""
        shown = describe_proxy(proxy)
        log.debug("%s: through proxy %s", where, shown)
        pool = self._pools.get(proxy)
        if pool is None:
            try:
                pool = self._pools[proxy] = self._via(proxy)
            except (ValueError, wire.HTTPError):  # urlsplit took it, a proxy URL it is not
                raise TransportError(
                    f"the proxy for {where} is not a valid URL", retryable=False
                ) from None
        return pool, shown

    def close(self) -> None:
        self._direct.close()
        for pool in self._pools.values():
            pool.close()


def _proxy_error(proxy: str, answer: str) -> TransportError:
    hint = "; check the credentials in its URL" if answer.startswith("407") else ""
    return TransportError(
        f"proxy {proxy} refused the request: {printable(answer)}{hint}",
        retryable=not answer.startswith("407"),
    )


def proxy_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What :func:`regshift.proxies.proxy_for` reads of ``environ``; empty when no proxy is
    set (``NO_PROXY`` alone changes no route)."""
    if not any(environ.get(name) for name in PROXY_VARIABLES):
        return {}
    names = (*PROXY_VARIABLES, *_PROXY_CONTEXT)
    return {name: environ[name] for name in names if environ.get(name)}


def build_http_client(options: TransportOptions, stats: RequestStats) -> wire.Client:
    """Create the shared client; insecure registries get an unverified TLS mount.

    Proxies come from the environment by Go's rules (:mod:`regshift.proxies`).
    """
    environ = proxy_environment(os.environ)

    def pool(verify: bool, proxy: str | None = None) -> wire.BaseTransport:
        return wire.HTTPTransport(
            ssl_context=ssl_context(options.ca_file if verify else None, verify=verify),
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            max_idle=options.max_connections,
            proxy=_proxy(proxy, options.ca_file) if proxy else None,
            on_resent=stats.add,  # the first try went out too: the registry may have seen it
        )

    def routed(direct: wire.BaseTransport, verify: bool) -> wire.BaseTransport:
        if not environ:  # nothing to decide: no proxy module imported, no router
            return direct
        return _ProxyRouter(direct, lambda proxy: pool(verify, proxy), environ)

    def transport(verify: bool) -> wire.BaseTransport:
        return _Counted(routed(_LazyTransport(lambda: pool(verify)), verify), stats)

    mounts: dict[str, wire.BaseTransport] = {
        "http://": transport(False),
        **{f"https://{host}": transport(False) for host in options.insecure},
    }

    for _, value in options.headers:
        remember_secret(value)  # masked wherever a registry echoes it into an error

    return wire.Client(
        transport=transport(True),
        mounts=mounts,
        headers={"User-Agent": options.user_agent},
        max_redirects=5,  # Authorization is dropped when a redirect leaves the origin
        # No extra headers (the common case): no hook to run on every request and hop.
        request_hooks=[_extra_headers(options.headers)] if options.headers else [],
        response_hooks=[_log_response(options.headers)],
    )


def _extra_headers(headers: tuple[tuple[str, str], ...]) -> Callable[[wire.Request], None]:
    """The request hook putting the extra headers on requests to the registry's own origin.

    The client runs request hooks for every hop of a redirect chain, and copies a hop's
    headers to the next (it drops only ``Authorization`` when the origin changes): so each
    hop is judged on its own, and a hop elsewhere (blob storage, another host) loses them.
    """

    def hook(request: wire.Request) -> None:
        own = request.extensions.get(REGISTRY_ORIGIN) == request.url.origin
        for name, value in headers:
            if own:
                request.headers[name] = value
            else:
                request.headers.pop(name, None)

    return hook


def _log_response(headers: tuple[tuple[str, str], ...]) -> Callable[[wire.Response], None]:
    def hook(response: wire.Response) -> None:
        if log.isEnabledFor(logging.DEBUG):
            request = response.request
            extra = [f"{n}: ***" for n, _ in headers if n in request.headers]
            log.debug(
                "%s %s -> %s%s",
                request.method,
                redact_url(request.url),
                response.status_code,
                f" (sent {', '.join(extra)})" if extra else "",
            )

    return hook


def _proxy(url: str, ca_file: str | None) -> wire.Proxy:
    """A :class:`wire.Proxy`: credentials from its URL (sent as ``Proxy-Authorization``), and
    for an ``https://`` proxy the same CAs as registries get."""
    tls = ssl_context(ca_file) if url.lower().startswith("https:") else None
    return wire.Proxy(url, ssl_context=tls)


def redact_url(url: wire.URL | str) -> str:
    """The URL without its query values (upload state, tokens) and without user info."""
    url = wire.URL(str(url))
    query = "&".join(f"{k}=..." for k, _ in url.params)
    base = f"{url.scheme}://{url.netloc}{url.path}" if url.host else url.path
    return f"{base}?{query}" if query else base


def allows_plain_http(registry: str, options: TransportOptions) -> bool:
    """Plain HTTP only for loopback registries or those the user named insecure."""
    return is_loopback_host(registry) or registry in options.insecure


def candidate_schemes(registry: str, options: TransportOptions) -> tuple[str, ...]:
    """Schemes to try, in order.

    Loopback registries: plain HTTP first (the usual local registry; no CA bundle to load, no
    handshake to fail), then HTTPS when the port turns out to want TLS. Registries named
    ``--insecure``: HTTPS (unverified) first, then HTTP. Everything else: HTTPS only.
    """
    if is_loopback_host(registry):
        return ("http", "https")
    return ("https", "http") if registry in options.insecure else ("https",)


def is_tls_mismatch(exc: wire.TransportError) -> bool:
    """A TLS handshake that failed because the peer speaks plain HTTP (not a bad certificate)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return False
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def stream_error(exc: wire.HTTPError, response: wire.Response, what: str) -> RegistryError:
    """A failure while reading a response body, as one line of ours: a
    :class:`TransportError` for the connection, an :class:`APIError` for the body itself."""
    if isinstance(exc, wire.TransportError):
        return translate(exc, what)
    return APIError(
        status=response.status_code,
        method=response.request.method,
        url=redact_url(response.request.url).split("?", 1)[0],
        text=f"{what}: {printable(exc)}",
    )


def api_error(response: wire.Response, context: str = "") -> APIError:
    """Build the :class:`APIError` for an error response, reading at most 64 KiB of its body."""
    body = _read_capped(response, MAX_ERROR_BODY)
    diagnostics, text = _parse_error_body(body)
    cls = api_error_class(response.status_code, [d.code for d in diagnostics])
    return cls(
        status=response.status_code,
        method=response.request.method,
        url=redact_url(response.request.url).split("?", 1)[0],
        errors=diagnostics,
        text=text,
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
        context=context,
    )


def _read_capped(response: wire.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a response body (what a broken stream gave, on errors)."""
    return read_limited(response, limit, raise_over=False)


def read_limited(response: wire.Response, limit: int, *, raise_over: bool = True) -> bytes:
    """Read a streamed body, never holding more than ``limit`` bytes, then close it.

    Raises:
        APIError: the body is larger than ``limit`` (only with ``raise_over``).
    """
    if response.is_closed or response.is_stream_consumed:
        return response.content[:limit]
    data = bytearray()
    try:
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > limit:
                if raise_over:
                    raise APIError(
                        status=response.status_code,
                        method=response.request.method,
                        url=redact_url(response.request.url).split("?", 1)[0],
                        text=f"response body larger than {limit} bytes",
                    )
                break
    except wire.HTTPError as exc:  # a dropped connection, a body cut short
        if raise_over:
            what = f"{response.request.method} {response.request.url.host}: reading the answer"
            raise stream_error(exc, response, what) from None
    finally:
        response.close()
    return bytes(data[:limit])


def _parse_error_body(body: bytes) -> tuple[list[Diagnostic], str]:
    try:
        doc = json.loads(body) if body else None
    except (ValueError, RecursionError):
        doc = None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errors, list):
        out = [
            Diagnostic(
                code=printable(e.get("code", ""), 64), message=printable(e.get("message", ""))
            )
            for e in errors[:5]
            if isinstance(e, dict)
        ]
        if out:
            return out, ""
    text = body.decode("utf-8", "replace").strip().splitlines()
    return [], (printable(text[0]) if text else "")


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}


def printable(value: object, limit: int = 200) -> str:
    """A registry-supplied string made safe for one terminal line: credentials masked
    (``Basic``/``Bearer`` values, JWTs, URL passwords; a server may echo what we sent),
    control characters escaped (no escape sequences reach the terminal), cut to ``limit``
    characters. Every error text taken from a server answer goes through here."""
    text = redact_secrets(str(value)).translate(_CONTROL)
    return text if len(text) <= limit else text[: limit - 1] + "…"
