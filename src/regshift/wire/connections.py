"""Connections: the standard library's ``http.client``, pooled, with proxies and timeouts.

One :class:`HTTPTransport` keeps idle keep-alive connections per origin (scheme, host,
port) and sends each request on one of them or on a new one. ``http.client`` does the
protocol (framing, chunked bodies, the status line and headers); this module adds what a
client needs around it: a pool, connect and read timeouts, a proxy (CONNECT tunnels for
HTTPS, absolute targets for plain HTTP), a stale keep-alive connection replaced once, and
every failure named by the step that failed (:mod:`regshift.wire.errors`).
"""

from __future__ import annotations

import base64
import http.client
import select
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from .errors import (
    ConnectError,
    ConnectTimeout,
    LocalProtocolError,
    ProxyError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    UnsupportedProtocol,
    WriteError,
    WriteTimeout,
)
from .messages import Request, Response, sendable
from .url import URL

CHUNK = 1024 * 1024  # the most one read of a response body returns
Origin = tuple[str, str, int]
_TUNNEL_FAILED = "Tunnel connection failed: "
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class BaseTransport(Protocol):
    """Something that sends one request and returns its (streamed) answer."""

    def handle_request(self, request: Request) -> Response: ...

    def close(self) -> None: ...


class Proxy:
    """A forward proxy: its URL (credentials in it are sent as ``Proxy-Authorization``) and,
    for an ``https://`` proxy, the TLS context to reach it with."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise UnsupportedProtocol("a proxy URL must be http:// or https://HOST[:PORT]")
        self.url = parsed
        self.ssl_context = ssl_context
        self.headers: dict[str, str] = {}
        if parsed.username or parsed.password:
            raw = f"{parsed.username}:{parsed.password}".encode()
            self.headers["Proxy-Authorization"] = "Basic " + base64.b64encode(raw).decode()


class _SourceFailed(Exception):
    """The request body's own iterator raised: re-raised as it was, never as a network
    failure (a layout file that cannot be read is not a broken connection)."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


def _pulled(content: Iterable[bytes]) -> Iterator[bytes]:
    iterator = iter(content)
    while True:
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise _SourceFailed(exc) from exc
        yield chunk


class HTTPTransport:
    """A pool of ``http.client`` connections; thread-safe (a connection serves one request
    at a time, idle ones wait in the pool).

    Args:
        ssl_context: for ``https://`` URLs.
        connect_timeout: seconds to connect (TCP, a proxy's CONNECT, the TLS handshake).
        read_timeout: seconds to wait for the next bytes (or for the peer to take ours).
        max_idle: idle connections kept per origin.
        proxy: send everything through this proxy.
        on_resent: called when a request that had gone out whole is sent again on a new
            connection (the answer was lost with the old one), so request counts see both.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        connect_timeout: float,
        read_timeout: float,
        max_idle: int = 16,
        proxy: Proxy | None = None,
        on_resent: Callable[[], None] | None = None,
    ) -> None:
        self._ssl = ssl_context
        self._on_resent = on_resent
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_idle = max_idle
        self._proxy = proxy
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def handle_request(self, request: Request) -> Response:
        url = request.url
        port = url.effective_port
        if url.scheme not in ("http", "https") or port is None or not url.host:
            raise UnsupportedProtocol(f"not an http:// or https:// URL: {url.scheme or '-'}:")
        if not sendable(request.headers):
            raise LocalProtocolError("a request header is not valid HTTP")  # never echoed
        key = (url.scheme, url.host, port)
        while True:
            conn, reused = self._checkout(key)
            try:
                return self._exchange(key, conn, request)
            except _Stale as stale:
                conn.close()
                if not reused or not _repeatable(request):
                    raise RemoteProtocolError(
                        "the server closed the connection without answering"
                    ) from None
                # A keep-alive connection the server had closed: once more on a new one.
                if stale.sent and self._on_resent is not None:
                    self._on_resent()

    def close(self) -> None:
        """Close the idle connections; one still in use is closed when its body ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for conn in connections:
                conn.close()

    # -- connections ------------------------------------------------------------------------

    def _checkout(self, key: Origin) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key, [])
            while idle:
                conn = idle.pop()
                if _alive(conn):
                    return conn, True
                conn.close()
        return self._connect(key), False

    def _checkin(self, key: Origin, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, []) if not self._closed else None
            if idle is not None and len(idle) < self._max_idle:
                idle.append(conn)
                return
        conn.close()

    def _connect(self, key: Origin) -> http.client.HTTPConnection:
        scheme, host, port = key
        proxy, timeout = self._proxy, self._connect_timeout
        conn: http.client.HTTPConnection
        if proxy is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
        else:
            conn = self._via_proxy(proxy, scheme, host, port)
        try:
            conn.connect()
        except TimeoutError as exc:  # socket.timeout
            conn.close()
            raise ConnectTimeout(f"connecting to {conn.host}:{conn.port} timed out") from exc
        except OSError as exc:
            conn.close()
            text = str(exc)
            if text.startswith(_TUNNEL_FAILED):  # the proxy answered the CONNECT with an error
                raise ProxyError(text.removeprefix(_TUNNEL_FAILED)) from None
            raise ConnectError(_reason(exc)) from exc
        assert conn.sock is not None
        conn.sock.settimeout(self._read_timeout)
        return conn

    def _via_proxy(
        self, proxy: Proxy, scheme: str, host: str, port: int
    ) -> http.client.HTTPConnection:
        target = proxy.url
        at = target.effective_port or 80
        if scheme == "https":
            if target.scheme == "https":
                raise UnsupportedProtocol(
                    "an HTTPS registry cannot be reached through an https:// proxy here; "
                    "give the proxy's http:// address (the tunnel is TLS end to end anyway)"
                )
            conn = _TunnelConnection(
                target.host, at, timeout=self._connect_timeout, context=self._ssl
            )
            conn.set_tunnel(host, port, headers=proxy.headers)
            return conn
        if target.scheme == "https":
            context = proxy.ssl_context or self._ssl
            return http.client.HTTPSConnection(
                target.host, at, timeout=self._connect_timeout, context=context
            )
        return http.client.HTTPConnection(target.host, at, timeout=self._connect_timeout)

    # -- one exchange -----------------------------------------------------------------------

    def _exchange(
        self, key: Origin, conn: http.client.HTTPConnection, request: Request
    ) -> Response:
        target, headers = self._wire_form(request)
        _send(conn, request, target, headers)
        answer = _receive(conn)
        return Response(
            answer.status,
            request=request,
            headers=answer.getheaders(),
            body=_Body(self, key, conn, answer),
        )

    def _wire_form(self, request: Request) -> tuple[str, dict[str, str]]:
        """The request target and the headers as http.client takes them.

        http.client takes a dict: a name given twice (Accept) is sent once, its values
        joined with ", " (RFC 9110 5.3), not reduced to the last one. Host is the URL's,
        whatever the request says (a second Host line is a 400). Framing is http.client's:
        given a Transfer-Encoding, it would send a streamed body without chunking it.
        """
        url = request.url
        headers = {"Host": url.netloc}
        first: dict[str, str] = {}
        for name, value in request.headers.multi_items():
            if name.lower() in ("host", "transfer-encoding"):
                continue
            name = first.setdefault(name.lower(), name)
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        target = url.raw_path
        if self._proxy is not None and url.scheme == "http":  # plain HTTP: the proxy forwards
            target = str(url.copy_with(fragment=None, username=None, password=None))
            headers.update(self._proxy.headers)
        return target, headers


def _send(
    conn: http.client.HTTPConnection, request: Request, target: str, headers: dict[str, str]
) -> None:
    """Write the request; a failure closes the connection (but for a stale one: the caller's)."""
    body = request.content
    if body is not None and not isinstance(body, bytes):
        body = _pulled(body)
    try:
        conn.request(request.method, target, body=body, headers=headers)
    except _SourceFailed as exc:
        conn.close()
        raise exc.original from None
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise _Stale(sent=False) from exc
    except TimeoutError as exc:
        conn.close()
        raise WriteTimeout("sending the request timed out") from exc
    except (ValueError, UnicodeEncodeError):  # http.client's header check; never echoed
        conn.close()
        raise LocalProtocolError("a request header is not valid HTTP") from None
    except OSError as exc:
        conn.close()
        raise WriteError(_reason(exc)) from exc
    except BaseException:  # Ctrl-C while sending, a chunk that is not bytes
        conn.close()
        raise


def _receive(conn: http.client.HTTPConnection) -> http.client.HTTPResponse:
    """The answer's status line and headers; a failure closes the connection (but for a
    stale one: the caller's)."""
    try:
        return conn.getresponse()
    except (http.client.RemoteDisconnected, ConnectionResetError) as exc:
        raise _Stale(sent=True) from exc
    except TimeoutError as exc:
        conn.close()
        raise ReadTimeout("waiting for the answer timed out") from exc
    except http.client.HTTPException as exc:
        conn.close()
        raise RemoteProtocolError(f"not a valid HTTP answer ({type(exc).__name__})") from exc
    except OSError as exc:
        conn.close()
        raise ReadError(_reason(exc)) from exc
    except BaseException:
        conn.close()
        raise


class _TunnelConnection(http.client.HTTPSConnection):
    """HTTPS through a proxy's CONNECT tunnel, with an IPv6 target in brackets on the
    CONNECT line (``CONNECT [2001:db8::1]:443``): Python 3.11's http.client writes it bare,
    which no proxy can split into host and port (3.12 brackets it, ``_wrap_ipv6``)."""

    _tunnel_host: str  # http.client's, absent from its stubs

    def _tunnel(self) -> None:
        host = self._tunnel_host
        if ":" in host and not hasattr(http.client.HTTPConnection, "_wrap_ipv6"):
            self._tunnel_host = f"[{host}]"
        try:
            super()._tunnel()  # type: ignore[misc]
        finally:
            self._tunnel_host = host  # the TLS handshake names the host without brackets


class _Stale(Exception):
    """The connection was closed under the request before any answer; ``sent``: the request
    had gone out whole (the peer may have seen it)."""

    def __init__(self, *, sent: bool) -> None:
        super().__init__()
        self.sent = sent


class _Body:
    """A response body read off its connection; the connection goes back to the pool when
    the body was read to its end and the server keeps it open, else it is closed."""

    __slots__ = ("_answer", "_conn", "_done", "_key", "_transport")

    def __init__(
        self,
        transport: HTTPTransport,
        key: Origin,
        conn: http.client.HTTPConnection,
        answer: http.client.HTTPResponse,
    ) -> None:
        self._transport = transport
        self._key = key
        self._conn = conn
        self._answer = answer
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        answer = self._answer
        try:
            while chunk := answer.read1(CHUNK):
                yield chunk
        except TimeoutError as exc:
            self.close()
            raise ReadTimeout("reading the answer timed out") from exc
        except http.client.IncompleteRead as exc:
            self.close()
            raise RemoteProtocolError(
                f"the connection closed {exc.expected} bytes before the end of the answer"
                if exc.expected
                else "the connection closed before the end of the answer"
            ) from None
        except (http.client.HTTPException, OSError) as exc:
            self.close()
            raise ReadError(_reason(exc)) from exc
        if answer.length:  # http.client's read1 ends quietly at a close before the length
            self.close()
            raise RemoteProtocolError(
                f"the connection closed {answer.length} bytes before the end of the answer"
            )
        self._done = True
        answer.close()  # http.client wants it closed before the next request (a HEAD's too)
        if answer.will_close:
            self._conn.close()
        else:
            self._transport._checkin(self._key, self._conn)

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._answer.close()
            self._conn.close()


def _repeatable(request: Request) -> bool:
    """Whether a request may go again on a new connection after its keep-alive connection
    turned out closed: an idempotent method (or a POST without body, which only opens an
    upload session) with a body that can be sent again. A PATCH is never repeated here: the
    registry may have taken part of it, and the upload's own resume logic knows the offset."""
    if not request.replayable:
        return False
    return request.method in _IDEMPOTENT or (request.method == "POST" and not request.content)


def _alive(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle keep-alive connection is still open: readable while idle means the
    server closed it (or sent something nobody asked for)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        if sys.platform == "win32":  # no poll(); Windows' select() takes any socket handle
            readable, _, _ = select.select([sock], [], [], 0)
            return not readable
        poller = select.poll()  # select() refuses descriptors above FD_SETSIZE (1024)
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def _reason(exc: BaseException) -> str:
    """A failure's reason without the noise: ``[Errno 111] Connection refused`` reads
    ``Connection refused``."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
