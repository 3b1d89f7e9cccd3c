"""A scriptable, fault-injecting HTTP/1.1 reverse proxy for tests.

Put :class:`FaultProxy` in front of a real registry on loopback and script faults with
:class:`Rule` objects::

    with FaultProxy(registry.host) as proxy:
        proxy.add_rule(Rule(method="GET", path=r"/blobs/sha256:", times=1,
                            action=Respond(429, {"Retry-After": "1"})))
        httpx.get(f"{proxy.url}/v2/repo/blobs/{digest}")   # -> 429, the retry passes through

Everything is standard library plus threads.  Bodies are streamed in 64 KiB chunks in both
directions and never buffered whole, so multi-GiB blobs are fine.

Rule evaluation (per request, under one lock): rules are consulted in insertion order.  For each
rule whose ``method``/``path`` match, its ``matched`` counter is incremented; the rule *applies*
when the match number ``n`` satisfies ``n > skip``, ``(n - skip) % every == 0`` and
``hits < times``.  The first rule that applies wins (its ``hits`` is incremented) and later rules
are not consulted for that request.  When no rule applies the request is forwarded untouched.

:class:`HeaderRecorder` is a tiny second loopback server ("another host") that records request
headers and serves canned bodies; ``recorder.redirect(path)`` builds a :class:`Redirect` to it.

Limitations: IPv4 listeners only; the upstream is plain HTTP; one upstream connection per
request (no upstream keep-alive); request/response trailers and interim 1xx responses are not
relayed (``Expect: 100-continue`` is answered by the proxy itself); HTTP/1.0 clients get
close-delimited bodies.  ``requests`` entries are appended when a request arrives and updated
in place as it proceeds.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import re
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, Self, TypeAlias, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "CHUNK_SIZE",
    "Action",
    "Delay",
    "FaultProxy",
    "FlipByte",
    "Forward",
    "HeaderRecorder",
    "ProxiedRequest",
    "RecordedRequest",
    "Redirect",
    "RefuseMount",
    "ResetRequest",
    "ResetResponse",
    "Respond",
    "RewriteHeader",
    "Rule",
    "TruncateResponse",
    "http_date",
]

CHUNK_SIZE = 64 * 1024
UPSTREAM_TIMEOUT = 120.0
CLIENT_TIMEOUT = 120.0

HeaderItems: TypeAlias = Mapping[str, str] | Sequence[tuple[str, str]]

# Hop-by-hop headers (RFC 9110 §7.6.1) are never relayed; framing is recomputed per hop.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def http_date(seconds_from_now: float = 0.0) -> str:
    """An IMF-fixdate (``Retry-After``/``Date`` style), ``seconds_from_now`` in the future."""
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


def _header_list(headers: HeaderItems | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def _header_dict(items: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Lower-case keys; repeated headers are joined with ``", "``."""
    out: dict[str, str] = {}
    for k, v in items:
        key = k.lower()
        out[key] = f"{out[key]}, {v}" if key in out else v
    return out


# --------------------------------------------------------------------------------------------
# Actions
# --------------------------------------------------------------------------------------------


@dataclass
class Forward:
    """Forward the request upstream unchanged (the default when no rule applies).

    Useful as a no-op rule for counting matches, or as ``Delay(..., then=Forward())``.
    """


@dataclass
class Respond:
    """Answer directly, without contacting upstream.

    ``headers`` is a mapping or a list of ``(name, value)`` pairs (use the list form to send a
    header several times).  ``Content-Length`` is added when absent.  The request body, if any,
    is read and discarded first so the client connection stays usable (keep-alive).  HEAD
    requests get the headers only.
    """

    status: int
    headers: HeaderItems = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def oci_error(
        cls, status: int, code: str, message: str = "", *, headers: HeaderItems | None = None
    ) -> Respond:
        """A response carrying an OCI distribution error body ``{"errors": [...]}``."""
        body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]})
        hdrs = [("Content-Type", "application/json; charset=utf-8"), *_header_list(headers)]
        return cls(status, hdrs, body.encode())

    @classmethod
    def retry_after(cls, status: int = 429, retry_after: int | str = 1) -> Respond:
        """``status`` (default 429) with ``Retry-After`` (seconds, or an HTTP-date string)."""
        code = "TOOMANYREQUESTS" if status == 429 else "UNAVAILABLE"
        return cls.oci_error(
            status, code, "injected fault", headers=[("Retry-After", str(retry_after))]
        )


@dataclass
class RefuseMount:
    """Behave like a registry without cross-repository mount support.

    A ``POST .../blobs/uploads/?mount=<digest>&from=<repo>`` is forwarded upstream with the
    ``mount`` and ``from`` query parameters removed, so the registry opens a normal upload
    session and answers ``202 Accepted`` with a real (proxy-rewritten) ``Location``.  Requests
    without a ``mount`` parameter are forwarded unchanged.
    """


@dataclass
class Delay:
    """Sleep ``seconds`` before forwarding (or before running ``then``).

    The sleep happens before the request body is read.  :meth:`FaultProxy.stop` interrupts it
    (the client connection is then reset).
    """

    seconds: float
    then: Action | None = None


@dataclass
class ResetResponse:
    """Forward, relay the response headers intact (original ``Content-Length``), relay only
    ``after_bytes`` bytes of the response body, then reset the client connection
    (``SO_LINGER`` 0 + close → TCP RST)."""

    after_bytes: int


@dataclass
class ResetRequest:
    """Read at most ``after_bytes`` bytes of the request body, then reset the client connection.

    Nothing at all is sent upstream for this request, so the registry never sees (let alone
    commits) a partial body.  Simulates an upload dropped mid-way.
    """

    after_bytes: int


@dataclass
class TruncateResponse:
    """Forward, relay the headers intact (original ``Content-Length``) but only ``after_bytes``
    bytes of the body, then close the client connection cleanly (FIN)."""

    after_bytes: int


@dataclass
class FlipByte:
    """Forward, flipping (xor ``mask``, default 0xFF) the response body byte at ``offset``
    (0-based); headers (``Docker-Content-Digest`` included) are relayed unchanged.

    No change when the body is shorter than ``offset + 1``. ``mask=0x01`` turns a digit into
    another digit, so a JSON body stays valid JSON (a silent change, not a parse error).
    """

    offset: int
    mask: int = 0xFF


HeaderValue: TypeAlias = str | Callable[[str | None], str | None] | None


@dataclass
class RewriteHeader:
    """Forward, then replace response header ``name`` (all its values) with ``value``.

    ``value=None`` removes the header; a callable receives the current value (``None`` when
    absent; repeated values joined with ``", "``) and returns the new one (or ``None``).
    Applied after the proxy's own upstream→proxy ``Location`` rewriting, so it can install a
    foreign ``Location``.
    """

    name: str
    value: HeaderValue


@dataclass
class Redirect:
    """Answer ``status`` (default 307) with ``Location: location`` without contacting upstream.

    ``{path}`` in ``location`` is replaced by the original request path (with query).  The
    request body is drained first.  See :meth:`HeaderRecorder.redirect`.
    """

    location: str
    status: int = 307


Action: TypeAlias = (
    Forward
    | Respond
    | RefuseMount
    | Delay
    | ResetResponse
    | ResetRequest
    | TruncateResponse
    | FlipByte
    | RewriteHeader
    | Redirect
)


# --------------------------------------------------------------------------------------------
# Rules and log
# --------------------------------------------------------------------------------------------


@dataclass
class Rule:
    """When to apply ``action``; see the module docstring for the counting semantics.

    ``method``: exact HTTP method (case-insensitive), ``None`` = any.
    ``path``: regex, ``re.search``-ed against path + query string, ``None`` = any.
    ``times``: apply at most this many times (``None`` = unlimited).
    ``every``: apply to every Nth (post-``skip``) matching request.
    ``skip``: let the first ``skip`` matching requests through untouched.
    ``hits``: times applied; ``matched``: matching requests seen.  Both thread-safe.
    """

    name: str = ""
    method: str | None = None
    path: str | None = None
    times: int | None = None
    every: int = 1
    skip: int = 0
    action: Action = field(default_factory=Forward)
    hits: int = 0
    matched: int = 0
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError("every must be >= 1")
        if self.skip < 0 or (self.times is not None and self.times < 0):
            raise ValueError("skip and times must be >= 0")
        if self.path is not None:
            re.compile(self.path)

    @property
    def label(self) -> str:
        return self.name or type(self.action).__name__

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or re.search(self.path, target) is not None

    def _try_apply(self, method: str, target: str) -> bool:
        with self._lock:
            if not self.matches(method, target):
                return False
            self.matched += 1
            n = self.matched - self.skip
            if n <= 0 or n % self.every != 0:
                return False
            if self.times is not None and self.hits >= self.times:
                return False
            self.hits += 1
            return True


@dataclass
class ProxiedRequest:
    """One request seen by the proxy.  Fields are filled in as the exchange progresses."""

    method: str
    path: str  # path with query, as sent by the client
    headers: dict[str, str]  # request headers, lower-case keys, repeats joined with ", "
    rule: str | None = None  # label of the rule applied (``Rule.name`` or action class name)
    status: int | None = None  # status returned to the client; None if none was sent
    bytes_in: int = 0  # request body bytes read from the client
    bytes_out: int = 0  # response body bytes sent to the client
    upstream_path: str | None = None  # what was sent upstream; None if not forwarded
    response_headers: dict[str, str] = field(default_factory=dict)
    connection: int = 0  # client connection number (same number = same keep-alive connection)
    error: str | None = None  # short description when the exchange ended abnormally


@dataclass
class RecordedRequest:
    """One request seen by :class:`HeaderRecorder`."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


# --------------------------------------------------------------------------------------------
# Server plumbing shared by FaultProxy and HeaderRecorder
# --------------------------------------------------------------------------------------------


class _ClientGone(Exception):
    """The client connection failed or ended early while reading the request body."""


class _BadRequest(Exception):
    pass


@dataclass
class _ConnState:
    number: int
    sock: socket.socket
    upstream: http.client.HTTPConnection | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[_Handler], owner: Any) -> None:
        self.owner = owner
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self._conn_lock = threading.Condition()
        self._conns: dict[int, _ConnState] = {}
        self._conn_threads: set[threading.Thread] = set()
        self._counter = 0
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); not wanted on loopback.
        import socketserver

        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._counter += 1
            number = self._counter
            self._conns[number] = _ConnState(number, request)
            t = threading.Thread(
                target=self._run_connection,
                args=(request, client_address, number),
                name=f"{type(self.owner).__name__}-conn-{number}",
                daemon=True,
            )
            self._conn_threads.add(t)
        t.start()

    def _run_connection(self, request: Any, client_address: Any, number: int) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.pop(number, None)
                self._conn_threads.discard(threading.current_thread())
                self._conn_lock.notify_all()

    def conn_state(self, sock: socket.socket) -> _ConnState:
        with self._conn_lock:
            for state in self._conns.values():
                if state.sock is sock:
                    return state
        return _ConnState(0, sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.stopping.is_set():
            return  # client went away / reset / stop(): expected in fault tests
        self.errors.append(traceback.format_exc())

    def live_threads(self) -> list[threading.Thread]:
        with self._conn_lock:
            return [t for t in self._conn_threads if t.is_alive()]

    def drop_connections(self, timeout: float) -> int:
        """Close every client connection from this side (FIN), as a server whose keep-alive
        timeout expired does, and wait for their threads; returns how many there were."""
        with self._conn_lock:
            states = list(self._conns.values())
            threads = set(self._conn_threads)
        for state in states:
            with contextlib.suppress(OSError):
                state.sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        with self._conn_lock:
            while threads & self._conn_threads:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._conn_lock.wait(remaining)
        return len(states)

    def close_everything(self, timeout: float) -> None:
        """Unblock every connection thread (client and upstream sockets) and wait for them."""
        self.stopping.set()
        with self._conn_lock:
            states = list(self._conns.values())
        for state in states:
            with contextlib.suppress(OSError):
                state.sock.shutdown(socket.SHUT_RDWR)
            up = state.upstream
            if up is not None and up.sock is not None:
                with contextlib.suppress(OSError):
                    up.sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        with self._conn_lock:
            while self._conn_threads:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._conn_lock.wait(remaining)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    timeout = CLIENT_TIMEOUT
    server: _Server
    _state: _ConnState

    def setup(self) -> None:
        super().setup()
        self._state = self.server.conn_state(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- request body ---------------------------------------------------------------------

    def _body_framing(self) -> tuple[bool, int | None]:
        """(chunked, content_length) of the request body."""
        te = ",".join(self.headers.get_all("Transfer-Encoding") or []).lower()
        if "chunked" in te:
            return True, None
        cl = self.headers.get("Content-Length")
        if cl is None:
            return False, None
        try:
            length = int(cl.strip())
        except ValueError:
            raise _BadRequest("bad Content-Length") from None
        if length < 0:
            raise _BadRequest("bad Content-Length")
        return False, length

    def _iter_request_body(self, limit: int | None = None) -> Iterator[bytes]:
        """Yield the decoded request body in chunks of at most CHUNK_SIZE (at most ``limit``
        bytes in total).  Raises _ClientGone if the client disconnects early."""
        chunked, length = self._body_framing()
        budget = limit
        if chunked:
            while True:
                line = self._readline()
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _BadRequest("bad chunk size") from None
                if size == 0:
                    while self._readline() not in (b"\r\n", b"\n"):
                        pass
                    return
                remaining = size
                while remaining:
                    if budget is not None and budget <= 0:
                        return
                    n = min(remaining, CHUNK_SIZE)
                    if budget is not None:
                        n = min(n, budget)
                    data = self._read(n)
                    remaining -= len(data)
                    if budget is not None:
                        budget -= len(data)
                    yield data
                self._readline()  # CRLF after the chunk data
        elif length:
            remaining = length
            while remaining:
                if budget is not None and budget <= 0:
                    return
                n = min(remaining, CHUNK_SIZE)
                if budget is not None:
                    n = min(n, budget)
                data = self._read(n)
                remaining -= len(data)
                if budget is not None:
                    budget -= len(data)
                yield data

    def _readline(self) -> bytes:
        try:
            line = self.rfile.readline(65537)
        except OSError as exc:
            raise _ClientGone(str(exc)) from exc
        if not line:
            raise _ClientGone("client closed the connection")
        return line

    def _read(self, n: int) -> bytes:
        try:
            data = self.rfile.read1(n)
        except OSError as exc:
            raise _ClientGone(str(exc)) from exc
        if not data:
            raise _ClientGone("client closed the connection mid-body")
        return data

    # -- response helpers -----------------------------------------------------------------

    def _send_head(
        self, status: int, reason: str | None, headers: Sequence[tuple[str, str]]
    ) -> None:
        closing = self.close_connection  # send_header("Connection", ...) may change it
        self.send_response_only(status, reason)
        for k, v in headers:
            self.send_header(k, v)
        if closing:
            self.send_header("Connection", "close")
        self.end_headers()

    def _abort(self) -> None:
        """Reset the client connection: SO_LINGER 0 then close → RST instead of FIN."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # rfile (makefile) holds a reference that would defer the real close; drop it first.
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            sock.close()

    def _dispatch(self) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET


_Record = TypeVar("_Record")


class _BaseServerOwner(Generic[_Record]):
    """A loopback HTTP server on its own threads, keeping a log of the requests it answers."""

    _handler_class: type[_Handler]

    def __init__(self, host: str) -> None:
        self._bind_host = host
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.host = ""
        self.url = ""
        self._lock = threading.Lock()  # guards the log, and what a subclass adds
        self._log: list[_Record] = []

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = _Server((self._bind_host, 0), self._handler_class, self)
        port = server.server_address[1]
        self.host = f"{self._bind_host}:{port}"
        self.url = f"http://{self.host}"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-accept",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, reset/unblock every open connection and wait for all threads."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.close_everything(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        self._stopped_server = server

    def drop_connections(self, timeout: float = 5.0) -> int:
        """Close the open client connections (meant for idle keep-alive ones) with a FIN, the
        way a server ends connections idle for longer than its keep-alive timeout; keep
        serving new ones. Returns how many were closed."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        return self._server.drop_connections(timeout)

    @property
    def errors(self) -> list[str]:
        """Tracebacks of unexpected exceptions in connection threads (should stay empty)."""
        server = self._server or getattr(self, "_stopped_server", None)
        return list(server.errors) if server is not None else []

    def live_threads(self) -> list[threading.Thread]:
        """Connection threads still alive (empty after stop())."""
        threads: list[threading.Thread] = []
        server = self._server or getattr(self, "_stopped_server", None)
        if server is not None:
            threads.extend(server.live_threads())
        if self._thread is not None and self._thread.is_alive():
            threads.append(self._thread)
        return threads

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def requests(self) -> list[_Record]:
        """Snapshot of the requests so far, oldest first (FaultProxy entries update in place)."""
        with self._lock:
            return list(self._log)

    def reset_log(self) -> None:
        with self._lock:
            self._log = []

    def _record(self, rec: _Record) -> None:
        with self._lock:
            self._log.append(rec)


# --------------------------------------------------------------------------------------------
# FaultProxy
# --------------------------------------------------------------------------------------------


def _same_authority(netloc: str, upstream: str) -> bool:
    netloc, upstream = netloc.lower(), upstream.lower()
    if netloc == upstream:
        return True
    a, _, a_port = netloc.rpartition(":")
    b, _, b_port = upstream.rpartition(":")
    return a_port == b_port and a in _LOOPBACK_NAMES and b in _LOOPBACK_NAMES


def _strip_mount(target: str) -> str:
    parts = urlsplit(target)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("mount", "from")
    ]
    return urlunsplit(("", "", parts.path, urlencode(query), parts.fragment))


class _ProxyHandler(_Handler):
    server: _Server

    @property
    def proxy(self) -> FaultProxy:
        owner: FaultProxy = self.server.owner
        return owner

    def _dispatch(self) -> None:
        proxy = self.proxy
        rec = ProxiedRequest(
            method=self.command,
            path=self.path,
            headers=_header_dict(list(self.headers.items())),
            connection=self._state.number,
        )
        proxy._record(rec)
        rule = proxy._select_rule(self.command, self.path)
        action: Action = Forward()
        if rule is not None:
            rec.rule = rule.label
            action = rule.action
        try:
            self._execute(action, rec)
        except _BadRequest as exc:
            rec.error = str(exc)
            self.close_connection = True
            if rec.status is None:
                rec.status = 400
                with contextlib.suppress(OSError):
                    self._send_head(400, None, [("Content-Length", "0")])
        except _ClientGone as exc:
            rec.error = f"client: {exc}"
            self._abort()
        except (OSError, http.client.HTTPException) as exc:
            rec.error = f"{type(exc).__name__}: {exc}"
            self._abort()
        except Exception:
            rec.error = traceback.format_exc()
            self.server.errors.append(rec.error)
            self._abort()

    def _execute(self, action: Action, rec: ProxiedRequest) -> None:
        if isinstance(action, Delay):
            if self.server.stopping.wait(action.seconds):
                rec.error = "proxy stopped during Delay"
                self._abort()
                return
            self._execute(action.then if action.then is not None else Forward(), rec)
        elif isinstance(action, Respond):
            self._drain(rec)
            self._respond(rec, action.status, _header_list(action.headers), action.body)
        elif isinstance(action, Redirect):
            self._drain(rec)
            location = action.location.replace("{path}", self.path)
            self._respond(rec, action.status, [("Location", location)], b"")
        elif isinstance(action, ResetRequest):
            for data in self._iter_request_body(limit=action.after_bytes):
                rec.bytes_in += len(data)
            rec.error = "ResetRequest"
            self._abort()
        else:
            self._forward(action, rec)

    def _drain(self, rec: ProxiedRequest) -> None:
        for data in self._iter_request_body():
            rec.bytes_in += len(data)

    def _respond(
        self, rec: ProxiedRequest, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        if not any(k.lower() == "content-length" for k, _ in headers):
            headers = [*headers, ("Content-Length", str(len(body)))]
        rec.status = status
        rec.response_headers = _header_dict(headers)
        self._send_head(status, None, headers)
        if self.command != "HEAD" and body:
            rec.bytes_out += len(body)
            self.wfile.write(body)

    def _forward(self, action: Action, rec: ProxiedRequest) -> None:
        proxy = self.proxy
        target = self.path
        if isinstance(action, RefuseMount) and "mount=" in urlsplit(target).query:
            target = _strip_mount(target)
        rec.upstream_path = target
        chunked, length = self._body_framing()

        conn = http.client.HTTPConnection(proxy.upstream, timeout=UPSTREAM_TIMEOUT)
        self._state.upstream = conn
        try:
            try:
                conn.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", proxy.upstream)
                for k, v in self.headers.items():
                    lk = k.lower()
                    if lk in _HOP_BY_HOP or lk in ("host", "content-length", "expect"):
                        continue
                    conn.putheader(k, v)
                if chunked:
                    conn.putheader("Transfer-Encoding", "chunked")
                elif length is not None:
                    conn.putheader("Content-Length", str(length))
                conn.endheaders()
            except OSError as exc:
                self._bad_gateway(rec, exc)
                return
            upstream_failed: OSError | None = None
            for data in self._iter_request_body():
                rec.bytes_in += len(data)
                if upstream_failed is not None:
                    continue  # keep draining the client so we can still answer 502
                try:
                    if chunked:
                        conn.send(b"%x\r\n%b\r\n" % (len(data), data))
                    else:
                        conn.send(data)
                except OSError as exc:
                    upstream_failed = exc
            if upstream_failed is not None:
                self._bad_gateway(rec, upstream_failed)
                return
            try:
                if chunked:
                    conn.send(b"0\r\n\r\n")
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                self._bad_gateway(rec, exc)
                return
            try:
                self._relay_response(action, rec, resp)
            finally:
                resp.close()
        finally:
            self._state.upstream = None
            conn.close()

    def _bad_gateway(self, rec: ProxiedRequest, exc: BaseException) -> None:
        rec.error = f"upstream: {type(exc).__name__}: {exc}"
        self.close_connection = True
        self._respond(rec, 502, [("Content-Type", "text/plain")], b"upstream failed\n")

    def _relay_response(
        self, action: Action, rec: ProxiedRequest, resp: http.client.HTTPResponse
    ) -> None:
        proxy = self.proxy
        status = resp.status
        headers: list[tuple[str, str]] = []
        for k, v in resp.msg.items():
            lk = k.lower()
            if lk in _HOP_BY_HOP:
                continue
            if lk == "content-length" and resp.chunked:
                continue
            if lk in ("location", "content-location"):
                v = proxy._rewrite_location(v)
            headers.append((k, v))
        if isinstance(action, RewriteHeader):
            headers = _rewrite_header(headers, action)

        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        to_client_chunked = False
        if not no_body and resp.length is None:
            if self.request_version == "HTTP/1.1":
                to_client_chunked = True
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                headers.append(("Transfer-Encoding", "chunked"))
            else:
                self.close_connection = True

        rec.status = status
        rec.response_headers = _header_dict(headers)
        self._send_head(status, resp.reason, headers)
        if no_body:
            return

        limit: int | None = None
        if isinstance(action, ResetResponse | TruncateResponse):
            limit = max(0, action.after_bytes)
        flip = action.offset if isinstance(action, FlipByte) else None
        mask = action.mask if isinstance(action, FlipByte) else 0xFF

        sent = 0
        while limit is None or sent < limit:
            n = CHUNK_SIZE if limit is None else min(CHUNK_SIZE, limit - sent)
            try:
                data = resp.read1(n)
            except (OSError, http.client.HTTPException) as exc:
                rec.error = f"upstream body: {type(exc).__name__}: {exc}"
                self._abort()
                return
            if not data:
                break
            if flip is not None and sent <= flip < sent + len(data):
                buf = bytearray(data)
                buf[flip - sent] ^= mask
                data = bytes(buf)
            rec.bytes_out += len(data)
            if to_client_chunked:
                self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
            sent += len(data)

        if isinstance(action, ResetResponse):
            rec.error = "ResetResponse"
            self._abort()
        elif isinstance(action, TruncateResponse):
            rec.error = "TruncateResponse"
            self.close_connection = True  # handler returns; the server closes with FIN
        elif to_client_chunked:
            self.wfile.write(b"0\r\n\r\n")


def _rewrite_header(headers: list[tuple[str, str]], action: RewriteHeader) -> list[tuple[str, str]]:
    name = action.name.lower()
    current = [v for k, v in headers if k.lower() == name]
    kept = [(k, v) for k, v in headers if k.lower() != name]
    value = action.value
    new = value(", ".join(current) if current else None) if callable(value) else value
    if new is not None:
        kept.append((action.name, new))
    return kept


class FaultProxy(_BaseServerOwner[ProxiedRequest]):
    """Fault-injecting HTTP/1.1 reverse proxy in front of a plain-HTTP ``upstream``.

    ``upstream`` is ``"host:port"``.  After :meth:`start` (or ``with``), ``host`` is
    ``"127.0.0.1:PORT"`` and ``url`` is ``"http://127.0.0.1:PORT"``.

    Forwarding: one upstream ``http.client.HTTPConnection`` per request; ``Host`` is set to the
    upstream; hop-by-hop headers are dropped, every other header (repeats included) is relayed
    both ways.  Request bodies (``Content-Length`` or chunked) and response bodies are streamed
    in 64 KiB chunks.  Absolute ``Location`` headers pointing at the upstream are rewritten to
    point at the proxy; relative ones are left alone (they already resolve against the proxy).
    Client connections are persistent (HTTP/1.1 keep-alive).
    """

    _handler_class = _ProxyHandler

    def __init__(self, upstream: str, *, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        if "://" in upstream:
            upstream = urlsplit(upstream).netloc
        self.upstream = upstream
        self._rules: list[Rule] = []

    # rules ----------------------------------------------------------------------------------

    def add_rule(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove_rule(self, rule: Rule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def clear_rules(self) -> None:
        with self._lock:
            self._rules = []

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def _select_rule(self, method: str, target: str) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule._try_apply(method, target):
                    return rule
        return None

    def _rewrite_location(self, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and _same_authority(parts.netloc, self.upstream):
            return urlunsplit(("http", self.host, parts.path, parts.query, parts.fragment))
        return value


# --------------------------------------------------------------------------------------------
# HeaderRecorder
# --------------------------------------------------------------------------------------------


class _RecorderHandler(_Handler):
    def _dispatch(self) -> None:
        recorder: HeaderRecorder = self.server.owner
        rec = RecordedRequest(self.command, self.path, _header_dict(list(self.headers.items())))
        try:
            kept = 0
            parts: list[bytes] = []
            for data in self._iter_request_body():  # keep at most 1 MiB, discard the rest
                if kept < 1 << 20:
                    parts.append(data)
                    kept += len(data)
            rec.body = b"".join(parts)
        except (_ClientGone, _BadRequest):
            self._abort()
            return
        recorder._record(rec)
        found = recorder._lookup(self.path)
        if found is None or self.command not in ("GET", "HEAD"):
            status, body, headers = 404, b"not found\n", [("Content-Type", "text/plain")]
        else:
            status, (body, headers) = 200, found
        headers = [*headers, ("Content-Length", str(len(body)))]
        try:
            self._send_head(status, None, headers)
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            self._abort()


class HeaderRecorder(_BaseServerOwner[RecordedRequest]):
    """A tiny loopback HTTP server ("another host") that records every request's headers and
    serves canned bodies registered with :meth:`serve` (GET/HEAD; anything else is 404).

    Use :meth:`redirect` to build a :class:`Redirect` action pointing at it, e.g. to check that
    a client drops ``Authorization`` when a blob GET is redirected to a different origin.
    """

    _handler_class = _RecorderHandler

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self._routes: dict[str, tuple[bytes, list[tuple[str, str]]]] = {}

    def serve(self, path: str, body: bytes, headers: HeaderItems | None = None) -> str:
        """Serve ``body`` (with ``headers``) at ``path``; returns the absolute URL.

        A path registered with a query string matches only that exact query; otherwise the
        query string of the request is ignored.
        """
        with self._lock:
            self._routes[path] = (body, _header_list(headers))
        return self.url_for(path)

    def url_for(self, path: str) -> str:
        if not self.url:
            raise RuntimeError("HeaderRecorder not started")
        return f"{self.url}{path}"

    def redirect(self, path: str, status: int = 307) -> Redirect:
        """A :class:`Redirect` action to ``path`` on this server."""
        return Redirect(self.url_for(path), status)

    def _lookup(self, target: str) -> tuple[bytes, list[tuple[str, str]]] | None:
        with self._lock:
            if target in self._routes:
                return self._routes[target]
            return self._routes.get(urlsplit(target).path)
