"""The HTTP layer's own failures, named after the step that failed.

:mod:`regshift.retries` turns them into :class:`regshift.errors.TransportError` lines at the
boundary; nothing above :mod:`regshift.transport` catches these directly except to do that.
The tree follows the life of a request: a URL that cannot be sent, then connecting (which
includes a proxy's CONNECT and the TLS handshake), writing the request, reading the answer.

    HTTPError
    ├── InvalidURL                 not a URL we could send (bad port, control characters)
    ├── DecodingError              a body its Content-Encoding does not describe
    ├── TooManyRedirects
    └── TransportError             the exchange itself failed (or could not start)
        ├── UnsupportedProtocol    a scheme other than http / https: nothing was sent
        ├── LocalProtocolError     a header we were asked to send is not valid HTTP
        ├── ProxyError             the proxy refused the CONNECT
        ├── TimeoutException
        │   ├── ConnectTimeout
        │   ├── ReadTimeout
        │   └── WriteTimeout
        └── NetworkError
            ├── ConnectError       refused, unreachable, TLS handshake
            ├── ReadError
            ├── WriteError
            └── RemoteProtocolError   the peer broke HTTP (closed early, a bad status line)
"""

from __future__ import annotations


class HTTPError(Exception):
    """Base of the HTTP layer's failures."""


class InvalidURL(HTTPError):
    """Not a URL a request can be sent to."""


class DecodingError(HTTPError):
    """A body that does not decode as its ``Content-Encoding`` says (or in an encoding this
    client does not read)."""


class TooManyRedirects(HTTPError):
    """More redirects than the client follows."""


class TransportError(HTTPError):
    """The exchange failed: connecting, sending or reading."""


class UnsupportedProtocol(TransportError):
    """A URL whose scheme is neither ``http`` nor ``https``: nothing was sent."""


class LocalProtocolError(TransportError):
    """What we were asked to send is not valid HTTP (a header value with a line break).

    The message never quotes the value: it may be a credential.
    """


class ProxyError(TransportError):
    """The proxy refused to open a tunnel (its status line is the message)."""


class TimeoutException(TransportError):
    """Nothing happened within the timeout."""


class ConnectTimeout(TimeoutException):
    """Connecting (or the TLS handshake) took longer than the connect timeout."""


class ReadTimeout(TimeoutException):
    """The answer did not come (or stopped coming) within the read timeout."""


class WriteTimeout(TimeoutException):
    """The peer stopped taking the request body for longer than the read timeout."""


class NetworkError(TransportError):
    """The connection failed."""


class ConnectError(NetworkError):
    """The connection could not be opened: refused, unreachable, a failed TLS handshake."""


class ReadError(NetworkError):
    """Reading the answer failed (a reset connection)."""


class WriteError(NetworkError):
    """Sending the request failed (a reset connection, a broken pipe)."""


class RemoteProtocolError(NetworkError):
    """The peer broke HTTP: it closed before answering, or sent less than it announced."""
