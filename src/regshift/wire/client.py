"""The client: which transport a URL goes to, authentication flows, redirects, hooks.

:class:`Client` is what :mod:`regshift.transport` configures and :mod:`regshift.session`
sends through. An :class:`Auth` is a generator flow (yield a request, receive its answer,
maybe yield it again with credentials), as in the Docker token flow. Redirects are followed
up to a limit; ``Authorization`` is dropped as soon as a hop leaves the original origin, a
303 (and a POST's 301/302) becomes a GET without body, and a one-shot streamed body is never
replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .connections import BaseTransport
from .errors import TooManyRedirects
from .messages import Content, HeaderInput, Headers, Request, Response
from .url import URL

Flow = Generator[Request, Response, None]
RequestHook = Callable[[Request], None]
ResponseHook = Callable[[Response], None]
MountKey = tuple[str, str, int | None]
_BODY_HEADERS = ("content-length", "content-type", "transfer-encoding")


class Auth:
    """An authentication flow: yields the request (with credentials), receives each answer,
    and may yield the request again (after a 401). The default sends it as it is."""

    def auth_flow(self, request: Request) -> Flow:
        yield request


class Client:
    """Sends requests through the transport mounted for their URL.

    Args:
        transport: for every URL no mount matches.
        mounts: ``"http://"`` (every plain-HTTP URL) or ``"https://HOST[:PORT]"`` (that host,
            any port when none is given) to a transport.
        headers: sent with every request unless the request sets them.
        max_redirects: redirects followed before :class:`TooManyRedirects`.
        request_hooks / response_hooks: called for every hop (a redirect's too).
    """

    def __init__(
        self,
        *,
        transport: BaseTransport,
        mounts: Mapping[str, BaseTransport] | None = None,
        headers: Mapping[str, str] | None = None,
        max_redirects: int = 5,
        request_hooks: Iterable[RequestHook] = (),
        response_hooks: Iterable[ResponseHook] = (),
    ) -> None:
        self._transport = transport
        self._mounts: dict[MountKey, BaseTransport] = {}
        for pattern, mounted in (mounts or {}).items():
            url = URL(pattern)
            # A port given (even the default one) is that port only; none is every port.
            explicit = urlsplit(pattern).port is not None
            self._mounts[(url.scheme, url.host, url.effective_port if explicit else None)] = mounted
        self._headers = Headers(headers)
        self._max_redirects = max_redirects
        self._request_hooks = tuple(request_hooks)
        self._response_hooks = tuple(response_hooks)

    def build_request(
        self,
        method: str,
        url: URL | str,
        *,
        headers: HeaderInput = None,
        content: Content = None,
        extensions: dict[str, Any] | None = None,
    ) -> Request:
        """A request with the client's headers under its own."""
        merged = Headers(self._headers)
        merged.update(headers)
        return Request(method, url, headers=merged, content=content, extensions=extensions)

    def send(
        self, request: Request, *, auth: Auth | None = None, follow_redirects: bool = True
    ) -> Response:
        """Send ``request`` (through ``auth``'s flow, following redirects); the answer is
        streamed: read or close it."""
        if "user-agent" not in request.headers and "user-agent" in self._headers:
            request.headers["User-Agent"] = self._headers["user-agent"]
        if auth is None:
            return self._follow(request, follow_redirects)
        flow = auth.auth_flow(request)
        try:
            request = next(flow)
            while True:
                response = self._follow(request, follow_redirects)
                try:
                    again = flow.send(response)
                except StopIteration:
                    return response
                except BaseException:  # the flow failed (no token): the answer is dropped
                    response.close()
                    raise
                response.discard()
                request = again
        finally:
            flow.close()

    def close(self) -> None:
        """Close every transport's connections."""
        for transport in {id(t): t for t in (self._transport, *self._mounts.values())}.values():
            transport.close()

    def _follow(self, request: Request, follow: bool) -> Response:
        history: list[Response] = []
        while True:
            response = self._send_one(request)
            if not (follow and response.is_redirect):
                response.history = history
                return response
            if len(history) >= self._max_redirects:
                response.close()
                raise TooManyRedirects(f"more than {self._max_redirects} redirects")
            try:
                following = _redirected(request, response)
            finally:
                response.discard()
            history.append(response)
            request = following

    def _send_one(self, request: Request) -> Response:
        for hook in self._request_hooks:
            hook(request)
        response = self._transport_for(request.url).handle_request(request)
        try:
            for answered in self._response_hooks:
                answered(response)
        except BaseException:
            response.close()
            raise
        return response

    def _transport_for(self, url: URL) -> BaseTransport:
        mounts = self._mounts
        for key in ((url.scheme, url.host, url.effective_port), (url.scheme, url.host, None)):
            if key in mounts:
                return mounts[key]
        return mounts.get((url.scheme, "", None), self._transport)


def _redirected(request: Request, response: Response) -> Request:
    """The request a redirect answer asks for.

    Raises:
        RuntimeError: it would replay a one-shot streamed body.
    """
    url = request.url.join(response.headers.get("location") or "")
    method = request.method
    if (response.status_code == 303 and method != "HEAD") or (
        response.status_code in (301, 302) and method == "POST"
    ):
        method = "GET"
    headers = Headers(request.headers)
    content = request.content if method == request.method else None
    if content is None:
        for name in _BODY_HEADERS:
            headers.pop(name)
    elif not request.replayable:
        raise RuntimeError("cannot follow a redirect with a request body that was streamed")
    if url.origin != request.url.origin:
        headers.pop("Authorization")  # credentials stay with the origin they were meant for
    return Request(method, url, headers=headers, content=content, extensions=request.extensions)
