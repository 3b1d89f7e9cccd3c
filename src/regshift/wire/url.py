"""URLs as the HTTP layer sends them: parsed once, compared by origin, extended with a query.

A :class:`URL` is immutable. Its query is kept as received (an upload ``Location``'s opaque
``_state`` is sent back byte for byte); parameters are only ever appended to it, encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, unquote_plus, urljoin, urlsplit

from .errors import InvalidURL

DEFAULT_PORTS = {"http": 80, "https": 443}
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")  # spaces and control characters
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
Param = tuple[str, str | int | float | bool | None]


def _primitive(value: str | int | float | bool | None) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def encode_params(params: Iterable[Param]) -> str:
    """``k=v&...`` with both sides percent-encoded (``/`` and ``:`` too: a scope's)."""
    return "&".join(
        f"{quote(name, safe='')}={quote(_primitive(value), safe='')}" for name, value in params
    )


def _ascii(part: str) -> str:
    """``part`` with every non-ASCII character percent-encoded (UTF-8), the rest untouched:
    a request target is ASCII on the wire."""
    return part if part.isascii() else _NON_ASCII.sub(lambda m: quote(m.group()), part)


class URL:
    """An absolute (or, for a redirect's ``Location``, relative) URL.

    Attributes:
        scheme: lower-case (``http``, ``https``; empty for a relative reference).
        host: lower-case, an IPv6 address without its brackets.
        port: the explicit port, ``None`` when absent or the scheme's default.
        path: as given (``/`` when an authority has none).
        query: as given, without the ``?``.
    """

    __slots__ = ("fragment", "host", "password", "path", "port", "query", "scheme", "username")

    def __init__(self, url: str | URL) -> None:
        if isinstance(url, URL):
            for name in URL.__slots__:
                setattr(self, name, getattr(url, name))
            return
        if _FORBIDDEN.search(url):
            raise InvalidURL("a URL may not contain spaces or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InvalidURL(f"not a valid URL: {exc}") from None
        self.scheme = parts.scheme.lower()
        self.host = parts.hostname or ""
        self.port = None if port == DEFAULT_PORTS.get(self.scheme) else port
        self.path = _ascii(parts.path) or ("/" if parts.netloc else "")
        self.query = _ascii(parts.query)
        self.fragment = parts.fragment
        self.username = unquote(parts.username) if parts.username else ""
        self.password = unquote(parts.password) if parts.password else ""

    @property
    def netloc(self) -> str:
        """``host[:port]``, an IPv6 host in brackets (no user info)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def effective_port(self) -> int | None:
        """The port connections go to: the explicit one, else the scheme's default."""
        return self.port or DEFAULT_PORTS.get(self.scheme)

    @property
    def origin(self) -> tuple[str, str, int | None]:
        """Scheme, host and effective port: what credentials and extra headers are kept to."""
        return self.scheme, self.host, self.effective_port

    @property
    def raw_path(self) -> str:
        """The request target: path and query."""
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def params(self) -> list[tuple[str, str]]:
        """The query's ``(name, value)`` pairs, decoded."""
        pairs = []
        for item in self.query.split("&") if self.query else ():
            name, _, value = item.partition("=")
            pairs.append((unquote_plus(name), unquote_plus(value)))
        return pairs

    def copy_with(self, **changes: str | int | None) -> URL:
        """This URL with some parts replaced (``None``: removed)."""
        copy = URL(self)
        for name, value in changes.items():
            setattr(copy, name, value if value is not None or name == "port" else "")
        return copy

    def copy_merge_params(self, params: Iterable[Param]) -> URL:
        """This URL with ``params`` appended to its query; a parameter already there under a
        name ``params`` gives is replaced. The rest of the query is kept byte for byte."""
        params = list(params)
        names = {name for name, _ in params}
        kept = [
            item
            for item in (self.query.split("&") if self.query else ())
            if unquote_plus(item.partition("=")[0]) not in names
        ]
        added = encode_params(params)
        return self.copy_with(query="&".join([*kept, added] if added else kept))

    def join(self, reference: str) -> URL:
        """``reference`` (a redirect's or upload's ``Location``) resolved against this URL."""
        try:
            joined = urljoin(str(self), reference)
        except ValueError as exc:  # an unclosed IPv6 bracket
            raise InvalidURL(f"not a valid URL: {exc}") from None
        return URL(joined)

    def __str__(self) -> str:
        userinfo = ""
        if self.username or self.password:
            secret = f":{quote(self.password, safe='')}" if self.password else ""
            userinfo = f"{quote(self.username, safe='')}{secret}@"
        authority = f"//{userinfo}{self.netloc}" if self.host else ""
        scheme = f"{self.scheme}:" if self.scheme else ""
        fragment = f"#{self.fragment}" if self.fragment else ""
        return f"{scheme}{authority}{self.raw_path}{fragment}"

    def __repr__(self) -> str:
        return f"URL({str(self.copy_with(password=None))!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URL) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))
