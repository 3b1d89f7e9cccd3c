"""regshift's HTTP/1.1 client on the standard library's ``http.client``.

What a registry client needs and nothing more: URLs (:mod:`.url`), requests, streamed
responses and headers (:mod:`.messages`), pooled connections with proxies and timeouts
(:mod:`.connections`), and a client that follows redirects and drives authentication flows
(:mod:`.client`). Its failures are :mod:`.errors`. It knows nothing of registries: which
transport, TLS context and proxy a registry gets is :mod:`regshift.transport`'s choice.

Importing it costs what ``http.client`` and ``ssl`` cost (no third-party HTTP stack), which
is most of what a short command such as ``regshift tag`` spends before its first request.
"""

from .client import Auth, Client, Flow
from .connections import BaseTransport, HTTPTransport, Proxy
from .errors import (
    ConnectError,
    ConnectTimeout,
    HTTPError,
    InvalidURL,
    LocalProtocolError,
    NetworkError,
    ProxyError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    TimeoutException,
    TooManyRedirects,
    TransportError,
    UnsupportedProtocol,
    WriteError,
    WriteTimeout,
)
from .messages import Content, Headers, Request, Response, is_token
from .url import URL

__all__ = [
    "URL",
    "Auth",
    "BaseTransport",
    "Client",
    "ConnectError",
    "ConnectTimeout",
    "Content",
    "Flow",
    "HTTPError",
    "HTTPTransport",
    "Headers",
    "InvalidURL",
    "LocalProtocolError",
    "NetworkError",
    "Proxy",
    "ProxyError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Request",
    "Response",
    "TimeoutException",
    "TooManyRedirects",
    "TransportError",
    "UnsupportedProtocol",
    "WriteError",
    "WriteTimeout",
    "is_token",
]
