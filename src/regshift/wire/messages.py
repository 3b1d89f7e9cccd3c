"""Requests, responses and their headers.

A :class:`Response` from the network is always streamed: its body is read by iterating
(:meth:`Response.iter_raw`, the bytes as sent; :meth:`Response.iter_bytes`, decoded) or all
at once (:meth:`Response.read`, decoded), and reading it to the end gives the connection back
to the pool; closing it earlier closes the connection. Requests ask for
``Accept-Encoding: identity``, so the two are the same unless a server (or a proxy) encodes
anyway: API answers (JSON) are then decoded per ``Content-Encoding``, while blobs and
manifests are always read raw (digests are computed over the bytes as stored).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol, overload

from .errors import DecodingError
from .url import URL, encode_params

Content = bytes | Iterable[bytes] | None
HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]] | None
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: RFC 9110 field names are tokens; values are visible characters, spaces and tabs inside,
#: never at either end (h11's rule, stricter than http.client, which lets a folded CR LF by),
#: and Latin-1 (what http.client encodes them in).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]|^[ \t]|[ \t]$")


def is_token(name: str) -> bool:
    """Whether ``name`` can be a header name (an RFC 9110 token)."""
    return _TOKEN.fullmatch(name) is not None


def sendable(headers: Headers) -> bool:
    """Whether every header is valid HTTP as it would go out (see :data:`_BAD_VALUE`)."""
    return all(is_token(k) and not _BAD_VALUE.search(v) for k, v in headers.items())


class Headers(Mapping[str, str]):
    """Case-insensitive, order-keeping HTTP headers; a name may occur more than once (as a
    mapping: each name once, lower-cased, its values joined)."""

    __slots__ = ("_items",)

    def __init__(self, headers: Headers | HeaderInput = None) -> None:
        self._items: list[tuple[str, str]]
        if isinstance(headers, Headers):
            self._items = list(headers._items)
        elif headers is None:
            self._items = []
        elif isinstance(headers, Mapping):
            self._items = [(str(k), str(v)) for k, v in headers.items()]
        else:
            self._items = [(str(k), str(v)) for k, v in headers]

    @overload  # type: ignore[override]
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    @overload
    def get(self, name: str, default: None) -> str | None: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """Every value of ``name`` joined by ``, `` (one header's value), else ``default``."""
        values = self.get_list(name)
        return ", ".join(values) if values else default

    def get_list(self, name: str, *, split_commas: bool = False) -> list[str]:
        """Every value of ``name``, in order (``split_commas``: each comma-separated item)."""
        key = name.lower()
        values = [v for k, v in self._items if k.lower() == key]
        if split_commas:
            values = [item.strip() for value in values for item in value.split(",")]
        return values

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        """Set ``name`` to this one value (where it first was, or last)."""
        key = name.lower()
        at = next((i for i, (k, _) in enumerate(self._items) if k.lower() == key), None)
        self._items = [(k, v) for k, v in self._items if k.lower() != key]
        self._items.insert(len(self._items) if at is None else at, (name, value))

    def pop(self, name: str, default: str | None = None) -> str | None:
        """Remove every value of ``name``; return them joined (``default`` when absent)."""
        value = self.get(name, default)
        key = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != key]
        return value

    def __contains__(self, name: object) -> bool:
        key = str(name).lower()
        return any(k.lower() == key for k, _ in self._items)

    def update(self, headers: Headers | HeaderInput) -> None:
        """Set every name ``headers`` has (replacing what was there)."""
        for name, value in Headers(headers).multi_items():
            self[name] = value

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)``, in order, repeated names repeated."""
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k.lower() for k, _ in self._items))

    def __len__(self) -> int:
        return len({k.lower() for k, _ in self._items})

    def __repr__(self) -> str:
        return f"Headers({[k for k, _ in self._items]!r})"


class Request:
    """One HTTP request: method, URL, headers, a body (bytes, or chunks sent as they come).

    ``extensions`` carries what the layers above want to know about it on every redirect
    hop (the registry origin extra headers are for).
    """

    __slots__ = ("content", "extensions", "headers", "method", "url")

    def __init__(
        self,
        method: str,
        url: URL | str,
        *,
        headers: Headers | HeaderInput = None,
        content: Content = None,
        data: Mapping[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        self.method = method.upper()
        self.url = url if isinstance(url, URL) else URL(url)
        self.headers = Headers(headers)
        if data is not None:  # a form (an OAuth2 token request)
            content = encode_params(data.items()).encode("ascii")
            self.headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.content = content
        self.extensions = dict(extensions or {})

    @property
    def replayable(self) -> bool:
        """Whether the body can be sent again (none, or bytes; not a one-shot stream)."""
        return self.content is None or isinstance(self.content, bytes)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url!r}>"


class Body(Protocol):
    """A response body from the network: iterated once, closable early."""

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class _Decoder:
    """gzip or deflate (zlib-wrapped, or raw as some servers send it), checked to its end."""

    def __init__(self, encoding: str) -> None:
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        else:
            raise DecodingError(f"the body is in an encoding regshift does not read: {encoding}")
        self._encoding = encoding
        self._started = False

    def decompress(self, chunk: bytes) -> bytes:
        if not self._started and self._encoding == "deflate":
            self._started = True
            try:
                return self._zlib.decompress(chunk)
            except zlib.error:  # no zlib header: raw deflate
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        self._started = True
        return self._zlib.decompress(chunk)

    def finish(self) -> bytes:
        data = self._zlib.flush()
        if self._started and not self._zlib.eof:
            raise DecodingError(f"the {self._encoding} body ends before its end")
        return data


class Response:
    """An HTTP answer. ``history`` holds the redirect answers that led to it."""

    def __init__(
        self,
        status_code: int,
        *,
        request: Request,
        headers: Headers | HeaderInput = None,
        content: bytes | None = None,
        body: Body | None = None,
    ) -> None:
        self.status_code = status_code
        self.request = request
        self.headers = Headers(headers)
        self.history: list[Response] = []
        self._content = content
        self._body = body
        self._consumed = content is not None
        self._closed = body is None

    @property
    def url(self) -> URL:
        return self.request.url

    @property
    def is_redirect(self) -> bool:
        return self.status_code in REDIRECT_STATUSES and "location" in self.headers

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def is_stream_consumed(self) -> bool:
        return self._consumed

    def iter_raw(self) -> Iterator[bytes]:
        """The body in chunks as they arrive; at the end the connection goes back to the pool.

        Raises:
            RuntimeError: the body was already read or the response closed.
        """
        if self._content is not None:
            self._consumed = True
            if self._content:
                yield self._content
            return
        if self._consumed or self._closed or self._body is None:
            raise RuntimeError("the response body was already read or closed")
        self._consumed = True
        try:
            yield from self._body
        finally:
            self.close()

    def iter_bytes(self) -> Iterator[bytes]:
        """The body decoded per its ``Content-Encoding`` (gzip, deflate; none: as it is).

        Raises:
            DecodingError: it does not decode, or is in another encoding.
        """
        encoding = (self.headers.get("content-encoding") or "identity").strip().lower()
        if encoding == "identity":
            yield from self.iter_raw()
            return
        try:
            decoder = _Decoder(encoding)
            for chunk in self.iter_raw():
                if data := decoder.decompress(chunk):
                    yield data
            if data := decoder.finish():
                yield data
        except zlib.error as exc:
            raise DecodingError(f"the body is not valid {encoding} ({exc})") from None
        finally:
            self.close()

    def read(self) -> bytes:
        """The whole body, decoded (read once, then kept)."""
        if self._content is None:
            self._content = b"".join(self.iter_bytes())
        return self._content

    def discard(self, limit: int = 64 * 1024) -> None:
        """Drop the body: read it when small (the connection is kept), else close."""
        if self._closed or self._body is None:
            return
        seen = 0
        try:
            for chunk in self.iter_raw():
                seen += len(chunk)
                if seen > limit:
                    break
        finally:
            self.close()

    @property
    def content(self) -> bytes:
        """The body, once :meth:`read`.

        Raises:
            RuntimeError: it was not read.
        """
        if self._content is None:
            raise RuntimeError("the response body was not read")
        return self._content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def close(self) -> None:
        """Close the body; unread, the connection is closed with it."""
        if not self._closed:
            self._closed = True
            if self._body is not None:
                self._body.close()

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"
