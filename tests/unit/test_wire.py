"""regshift.wire without a network: URLs, headers, messages, bodies, and the client's
redirects, mounts, hooks and auth flows over an in-test transport."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest

from regshift import wire
from regshift.wire.errors import DecodingError

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


class FakeBody:
    """A network body: chunks handed out one by one; records how far it was read and whether
    it was closed (what a real body does with its connection)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = list(chunks)
        self.pulled = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.pulled += 1
            yield chunk

    def close(self) -> None:
        self.closed = True


def streamed(
    status: int,
    request: wire.Request,
    headers: list[tuple[str, str]] | None = None,
    chunks: list[bytes] | None = None,
) -> tuple[wire.Response, FakeBody]:
    body = FakeBody(chunks if chunks is not None else [])
    return wire.Response(status, request=request, headers=headers, body=body), body


def GET(url: str = "http://r.example/x") -> wire.Request:
    return wire.Request("GET", url)


@pytest.fixture
def request_() -> wire.Request:
    return GET()


class Sent:
    """What one request looked like when it reached the transport (a snapshot: the client
    builds a new request per hop, but hooks may change a request in place)."""

    def __init__(self, request: wire.Request) -> None:
        self.request = request
        self.method = request.method
        self.url = str(request.url)
        self.headers = request.headers.multi_items()
        self.content = request.content


Handler = Callable[[wire.Request], tuple[int, list[tuple[str, str]], list[bytes]]]


class ScriptedTransport:
    """A transport answering from ``handler(request) -> (status, headers, chunks)``; it keeps
    every request it was given and every response (with its body) it returned."""

    def __init__(self, handler: Handler, name: str = "default") -> None:
        self.handler = handler
        self.name = name
        self.sent: list[Sent] = []
        self.bodies: list[FakeBody] = []
        self.closed = 0

    def handle_request(self, request: wire.Request) -> wire.Response:
        self.sent.append(Sent(request))
        status, headers, chunks = self.handler(request)
        response, body = streamed(status, request, headers, chunks)
        self.bodies.append(body)
        return response

    def close(self) -> None:
        self.closed += 1


def redirects(table: dict[str, tuple[int, str]]) -> Handler:
    """``{url: (status, location)}``; any other URL answers 200 ``final``."""

    def handler(request: wire.Request) -> tuple[int, list[tuple[str, str]], list[bytes]]:
        hop = table.get(str(request.url))
        if hop is None:
            return 200, [("Content-Length", "5")], [b"final"]
        status, location = hop
        return status, [("Location", location), ("Content-Length", "2")], [b"no"]

    return handler


def header(sent: Sent, name: str) -> list[str]:
    return [v for k, v in sent.headers if k.lower() == name.lower()]


# --------------------------------------------------------------------------------------------
# URL
# --------------------------------------------------------------------------------------------


def test_url_lowercases_scheme_and_host_but_not_the_path() -> None:
    url = wire.URL("HTTPS://Registry.Example.COM:5000/V2/Library/Busybox/tags/list?N=1")
    assert url.scheme == "https"
    assert url.host == "registry.example.com"
    assert url.port == 5000
    assert url.path == "/V2/Library/Busybox/tags/list"
    assert url.query == "N=1"
    assert url.netloc == "registry.example.com:5000"


@pytest.mark.parametrize(
    ("text", "port", "effective", "shown"),
    [
        ("https://h:443/v2/", None, 443, "https://h/v2/"),
        ("http://h:80/v2/", None, 80, "http://h/v2/"),
        ("https://h/v2/", None, 443, "https://h/v2/"),
        ("http://h:443/v2/", 443, 443, "http://h:443/v2/"),  # not http's default: kept
        ("https://h:80/v2/", 80, 80, "https://h:80/v2/"),
        ("https://h:5000/v2/", 5000, 5000, "https://h:5000/v2/"),
    ],
)
def test_url_default_port_is_normalised_to_none(
    text: str, port: int | None, effective: int, shown: str
) -> None:
    url = wire.URL(text)
    assert url.port == port
    assert url.effective_port == effective
    assert str(url) == shown


def test_url_without_scheme_has_no_effective_port() -> None:
    relative = wire.URL("/v2/a/blobs/uploads/u")
    assert relative.effective_port is None
    assert (relative.scheme, relative.host) == ("", "")
    assert str(relative) == "/v2/a/blobs/uploads/u"


def test_url_ipv6_host_without_brackets_netloc_with() -> None:
    url = wire.URL("http://[::1]:5000/v2/")
    assert url.host == "::1"
    assert url.port == 5000
    assert url.netloc == "[::1]:5000"
    assert str(url) == "http://[::1]:5000/v2/"
    default = wire.URL("https://[2001:DB8::A]:443/")
    assert default.host == "2001:db8::a"
    assert default.port is None
    assert default.netloc == "[2001:db8::a]"
    assert str(default) == "https://[2001:db8::a]/"


def test_url_raw_path_and_root_path() -> None:
    assert wire.URL("http://h/v2/a/tags/list?n=10&last=b").raw_path == "/v2/a/tags/list?n=10&last=b"
    assert wire.URL("http://h/v2/").raw_path == "/v2/"
    bare = wire.URL("http://h")
    assert bare.path == "/"
    assert bare.raw_path == "/"


def test_url_params_are_decoded() -> None:
    url = wire.URL("http://h/token?scope=repository%3Aa%2Fb%3Apull&service=a+b&flag&x=%2B")
    assert url.params == [
        ("scope", "repository:a/b:pull"),
        ("service", "a b"),
        ("flag", ""),
        ("x", "+"),
    ]
    assert wire.URL("http://h/").params == []


def test_copy_merge_params_replaces_same_name_and_keeps_the_rest_byte_for_byte() -> None:
    location = wire.URL("http://h/v2/a/blobs/uploads/u?_state=a%2Bb%3D%3D&digest=old&z=%7E")
    merged = location.copy_merge_params([("digest", "sha256:abc")])
    assert merged.query == "_state=a%2Bb%3D%3D&z=%7E&digest=sha256%3Aabc"
    assert dict(merged.params) == {"_state": "a+b==", "z": "~", "digest": "sha256:abc"}
    assert location.query == "_state=a%2Bb%3D%3D&digest=old&z=%7E"  # immutable
    assert merged.path == location.path


def test_copy_merge_params_encodes_values_and_names() -> None:
    url = wire.URL("http://h/token").copy_merge_params(
        [("scope", "repository:a/b:pull,push"), ("on", True), ("off", False), ("n", None)]
    )
    assert url.query == "scope=repository%3Aa%2Fb%3Apull%2Cpush&on=true&off=false&n="
    assert wire.URL("http://h/p?a=1").copy_merge_params([]).query == "a=1"
    assert wire.URL("http://h/p").copy_merge_params([("q", "a b&c=d")]).params == [("q", "a b&c=d")]


@pytest.mark.parametrize(
    ("reference", "joined"),
    [
        ("/v2/b/blobs/uploads/u?_state=s", "https://h:5000/v2/b/blobs/uploads/u?_state=s"),
        ("uploads/u", "https://h:5000/v2/a/blobs/uploads/u"),
        ("?n=2", "https://h:5000/v2/a/blobs/x?n=2"),
        ("https://cdn.example/blob?sig=1", "https://cdn.example/blob?sig=1"),
        ("//other:8443/x", "https://other:8443/x"),
        ("http://[::1]:7000/v2/", "http://[::1]:7000/v2/"),
    ],
)
def test_join(reference: str, joined: str) -> None:
    assert str(wire.URL("https://h:5000/v2/a/blobs/x").join(reference)) == joined


@pytest.mark.parametrize("reference", ["http://[::1/x", "//[::1", "https://[2001:db8::1:5000/"])
def test_join_unclosed_ipv6_is_invalid_url(reference: str) -> None:
    with pytest.raises(wire.InvalidURL):
        wire.URL("https://h/v2/").join(reference)


@pytest.mark.parametrize(
    "text",
    [
        "http://h/a b",
        "http://h/a\tb",
        "http://h/a\r\nX-Injected: 1",
        "http://h/\x00",
        "http://h/\x7f",
        " http://h/",
        "http://[::1/",
        "http://h:99999/",
        "http://h:port/",
    ],
)
def test_invalid_urls_are_refused(text: str) -> None:
    with pytest.raises(wire.InvalidURL):
        wire.URL(text)


def test_join_refuses_a_location_with_control_characters() -> None:
    with pytest.raises(wire.InvalidURL):
        wire.URL("http://h/").join("/next\r\nSet-Cookie: x")


def test_url_round_trip_with_user_info() -> None:
    text = "https://us%40er:p%3As%2Fs@registry.example:5000/v2/?last=a#frag"
    url = wire.URL(text)
    assert (url.username, url.password) == ("us@er", "p:s/s")
    assert url.fragment == "frag"
    assert str(url) == text
    assert wire.URL(str(url)) == url
    assert "p%3As" not in repr(url) and "p:s/s" not in repr(url)
    bare = url.copy_with(username=None, password=None, fragment=None)
    assert str(bare) == "https://registry.example:5000/v2/?last=a"
    assert str(url) == text  # copy_with copies


def test_url_equality_and_hash() -> None:
    assert wire.URL("HTTP://H:80/x") == wire.URL("http://h/x")
    assert hash(wire.URL("HTTP://H:80/x")) == hash(wire.URL("http://h/x"))
    assert wire.URL("http://h/x") != wire.URL("http://h/x?y")
    assert wire.URL("http://h/x") != "http://h/x"


# --------------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------------


def test_headers_are_case_insensitive() -> None:
    headers = wire.Headers({"Content-Type": "application/json"})
    assert headers["content-type"] == "application/json"
    assert headers.get("CONTENT-TYPE") == "application/json"
    assert "content-TYPE" in headers
    assert headers.get("missing") is None
    assert headers.get("missing", "d") == "d"
    with pytest.raises(KeyError):
        headers["missing"]
    headers["CONTENT-type"] = "text/plain"
    assert headers.multi_items() == [("CONTENT-type", "text/plain")]
    assert headers.pop("Content-Type") == "text/plain"
    assert "content-type" not in headers
    assert headers.pop("content-type") is None
    assert headers.pop("content-type", "gone") == "gone"


def test_repeated_names_are_joined_and_listed_in_order() -> None:
    headers = wire.Headers(
        [("Accept", "a/1"), ("X-Other", "o"), ("accept", "b/2, c/3"), ("ACCEPT", "d/4")]
    )
    assert headers.get("accept") == "a/1, b/2, c/3, d/4"
    assert headers["Accept"] == "a/1, b/2, c/3, d/4"
    assert headers.get_list("accept") == ["a/1", "b/2, c/3", "d/4"]
    assert headers.get_list("Accept", split_commas=True) == ["a/1", "b/2", "c/3", "d/4"]
    assert headers.get_list("missing", split_commas=True) == []


def test_setitem_keeps_the_first_position_and_replaces_every_value() -> None:
    headers = wire.Headers([("A", "1"), ("B", "2"), ("a", "3"), ("C", "4")])
    headers["a"] = "x"
    assert headers.multi_items() == [("a", "x"), ("B", "2"), ("C", "4")]
    headers["D"] = "5"
    assert headers.multi_items()[-1] == ("D", "5")
    headers.update({"b": "y", "E": "6"})
    assert headers.multi_items() == [("a", "x"), ("b", "y"), ("C", "4"), ("D", "5"), ("E", "6")]


def test_pop_removes_every_value() -> None:
    headers = wire.Headers([("Authorization", "a"), ("X", "1"), ("authorization", "b")])
    assert headers.pop("AUTHORIZATION") == "a, b"
    assert headers.multi_items() == [("X", "1")]


def test_headers_as_a_mapping() -> None:
    headers = wire.Headers([("Accept", "a"), ("Host", "h"), ("accept", "b")])
    assert len(headers) == 2
    assert list(headers) == ["accept", "host"]
    assert list(headers.items()) == [("accept", "a, b"), ("host", "h")]
    assert dict(headers) == {"accept": "a, b", "host": "h"}
    assert len(wire.Headers()) == 0
    assert list(wire.Headers(None)) == []


def test_headers_copy_is_independent() -> None:
    original = wire.Headers({"A": "1"})
    copy = wire.Headers(original)
    copy["A"] = "2"
    copy["B"] = "3"
    assert original.multi_items() == [("A", "1")]


# --------------------------------------------------------------------------------------------
# Request
# --------------------------------------------------------------------------------------------


def test_request_normalises_method_and_url() -> None:
    request = wire.Request("put", "HTTP://H:80/x", headers={"A": "1"})
    assert request.method == "PUT"
    assert isinstance(request.url, wire.URL)
    assert str(request.url) == "http://h/x"
    assert request.headers["a"] == "1"


def _chunks() -> Iterator[bytes]:
    yield b"a"


@pytest.mark.parametrize(
    ("content", "replayable"),
    [
        (None, True),
        (b"", True),
        (b"body", True),
        (_chunks(), False),
        (iter([b"a", b"b"]), False),
        ([b"a", b"b"], False),  # an iterable of chunks is streamed: not replayed either
    ],
)
def test_request_replayable(content: wire.Content, replayable: bool) -> None:
    assert wire.Request("PUT", "http://h/", content=content).replayable is replayable


def test_form_data_is_urlencoded() -> None:
    form = {
        "grant_type": "password",
        "scope": "repository:a/b:pull,push repository:c:pull",
        "service": "reg&istry=1",
        "password": "p+w d%",
    }
    request = wire.Request("POST", "https://auth.example/token", data=form)
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert isinstance(request.content, bytes)
    assert request.replayable
    assert parse_qsl(request.content.decode("ascii"), strict_parsing=True) == list(form.items())
    assert request.content.count(b"&") == len(form) - 1  # '&' and '=' in values are escaped
    assert request.content.count(b"=") == len(form)


# --------------------------------------------------------------------------------------------
# Response
# --------------------------------------------------------------------------------------------


def test_response_with_content(request_: wire.Request) -> None:
    response = wire.Response(
        200, request=request_, headers={"Content-Type": "application/json"}, content=b'{"a": [1]}'
    )
    assert response.is_closed and response.is_stream_consumed
    assert response.content == b'{"a": [1]}'
    assert response.read() == b'{"a": [1]}'
    assert list(response.iter_bytes()) == [b'{"a": [1]}']
    assert response.json() == {"a": [1]}
    assert response.text == '{"a": [1]}'
    assert response.url == request_.url
    assert list(wire.Response(204, request=request_, content=b"").iter_raw()) == []


def test_streamed_response_reads_once_and_closes(request_: wire.Request) -> None:
    response, body = streamed(200, request_, chunks=[b"ab", b"", b"cd"])
    assert not response.is_closed
    with pytest.raises(RuntimeError):
        _ = response.content  # not read yet
    assert response.read() == b"abcd"
    assert response.content == b"abcd"
    assert response.is_closed and body.closed
    assert response.read() == b"abcd"  # kept


def test_streamed_response_cannot_be_iterated_twice(request_: wire.Request) -> None:
    response, _ = streamed(200, request_, chunks=[b"x"])
    assert list(response.iter_raw()) == [b"x"]
    with pytest.raises(RuntimeError):
        list(response.iter_raw())


def test_a_closed_response_cannot_be_read(request_: wire.Request) -> None:
    """Its connection is gone: reading must not quietly give an empty (or a short) body."""
    response, body = streamed(200, request_, chunks=[b"never", b"read"])
    response.close()
    assert body.closed
    with pytest.raises(RuntimeError, match="closed"):
        list(response.iter_raw())
    with pytest.raises(RuntimeError, match="closed"):
        response.read()
    assert body.pulled == 0


def test_breaking_off_an_iteration_closes_the_body(request_: wire.Request) -> None:
    response, body = streamed(200, request_, chunks=[b"a", b"b", b"c"])
    iterator = response.iter_raw()
    assert next(iterator) == b"a"
    iterator.close()
    assert body.closed and response.is_closed
    assert body.pulled == 1


def _split(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


PAYLOAD = json.dumps({"errors": [{"code": "DENIED", "message": "x" * 200}]}).encode()


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", gzip.compress(PAYLOAD)),
        ("x-gzip", gzip.compress(PAYLOAD)),
        ("GZIP", gzip.compress(PAYLOAD)),
        ("deflate", zlib.compress(PAYLOAD)),
        ("identity", PAYLOAD),
    ],
)
def test_iter_bytes_decodes_iter_raw_does_not(
    request_: wire.Request, encoding: str, encoded: bytes
) -> None:
    headers = [("Content-Encoding", encoding)]
    response, _ = streamed(200, request_, headers, _split(encoded))
    assert b"".join(response.iter_bytes()) == PAYLOAD
    raw, _ = streamed(200, request_, headers, _split(encoded))
    assert b"".join(raw.iter_raw()) == encoded
    read, _ = streamed(200, request_, headers, _split(encoded))
    assert read.read() == PAYLOAD
    assert read.json()["errors"][0]["code"] == "DENIED"


@pytest.mark.parametrize(
    ("encoding", "garbage"),
    [
        ("gzip", b"this is not gzip at all"),
        ("deflate", b"\x00\x01\x02 not zlib"),
        ("gzip", zlib.compress(PAYLOAD)),  # deflate data sent as gzip
    ],
)
def test_iter_bytes_refuses_garbage(request_: wire.Request, encoding: str, garbage: bytes) -> None:
    response, body = streamed(200, request_, [("Content-Encoding", encoding)], _split(garbage))
    with pytest.raises(DecodingError) as caught:
        response.read()
    assert not isinstance(caught.value, wire.TransportError)  # not a network failure: no retry
    assert isinstance(caught.value, wire.HTTPError)
    assert body.closed


def test_unknown_encoding_is_a_decoding_error_but_raw_reads(request_: wire.Request) -> None:
    headers = [("Content-Encoding", "br")]
    response, _ = streamed(200, request_, headers, [b"\x8b\x02\x80hello\x03"])
    with pytest.raises(DecodingError, match="br"):
        response.read()
    raw, _ = streamed(200, request_, headers, [b"\x8b\x02\x80hello\x03"])
    assert b"".join(raw.iter_raw()) == b"\x8b\x02\x80hello\x03"


def test_discard_reads_a_small_body_to_the_end(request_: wire.Request) -> None:
    response, body = streamed(200, request_, chunks=[b"x" * 10] * 5)
    response.discard()
    assert body.pulled == 5  # all of it: the connection can be reused
    assert body.closed and response.is_closed


def test_discard_stops_reading_a_large_body(request_: wire.Request) -> None:
    response, body = streamed(200, request_, chunks=[b"x" * 1024] * 1000)
    response.discard(limit=4096)
    assert body.pulled == 5  # one chunk past the limit, then closed
    assert body.closed
    response.discard()  # closed already: nothing happens
    assert body.pulled == 5


def test_response_redirect_property(request_: wire.Request) -> None:
    for status in (301, 302, 303, 307, 308):
        assert wire.Response(status, request=request_, headers={"Location": "/x"}).is_redirect
    assert not wire.Response(302, request=request_).is_redirect  # no Location
    assert not wire.Response(304, request=request_, headers={"Location": "/x"}).is_redirect
    assert not wire.Response(201, request=request_, headers={"Location": "/x"}).is_redirect


# --------------------------------------------------------------------------------------------
# Client: redirects
# --------------------------------------------------------------------------------------------


def test_redirect_is_followed_and_hops_are_closed() -> None:
    transport = ScriptedTransport(
        redirects(
            {
                "http://r.example/v2/a/blobs/d": (307, "/storage/d?sig=1"),
                "http://r.example/storage/d?sig=1": (302, "http://cdn.example:8080/d"),
            }
        )
    )
    client = wire.Client(transport=transport)
    response = client.send(wire.Request("GET", "http://r.example/v2/a/blobs/d"))
    assert response.status_code == 200
    assert response.read() == b"final"
    assert [s.url for s in transport.sent] == [
        "http://r.example/v2/a/blobs/d",
        "http://r.example/storage/d?sig=1",
        "http://cdn.example:8080/d",
    ]
    assert [h.status_code for h in response.history] == [307, 302]
    assert all(body.closed for body in transport.bodies)
    assert str(response.url) == "http://cdn.example:8080/d"


def test_redirects_are_not_followed_when_asked_not_to() -> None:
    transport = ScriptedTransport(redirects({"http://r.example/x": (302, "/y")}))
    response = wire.Client(transport=transport).send(GET(), follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "/y"
    assert len(transport.sent) == 1
    assert not response.is_closed


@pytest.mark.parametrize(
    ("location", "kept"),
    [
        ("/other/path", True),
        ("http://r.example:80/other", True),  # the default port, written out
        ("http://R.EXAMPLE/other", True),
        ("http://elsewhere.example/x", False),
        ("http://r.example:8080/x", False),  # another port
        ("https://r.example/x", False),  # another scheme
        ("//cdn.r.example/x", False),  # a subdomain is another origin
    ],
)
def test_authorization_is_dropped_when_the_origin_changes(location: str, kept: bool) -> None:
    transport = ScriptedTransport(redirects({"http://r.example/x": (307, location)}))
    request = wire.Request(
        "GET", "http://r.example/x", headers={"Authorization": "Bearer t0k", "X-Keep": "1"}
    )
    wire.Client(transport=transport).send(request).read()
    first, second = transport.sent
    assert header(first, "authorization") == ["Bearer t0k"]
    assert header(second, "authorization") == (["Bearer t0k"] if kept else [])
    assert header(second, "x-keep") == ["1"]


def test_authorization_stays_dropped_when_a_chain_returns_to_the_origin() -> None:
    transport = ScriptedTransport(
        redirects(
            {
                "http://r.example/x": (302, "http://cdn.example/y"),
                "http://cdn.example/y": (302, "http://r.example/z"),
            }
        )
    )
    request = wire.Request("GET", "http://r.example/x", headers={"Authorization": "Basic c2VjcmV0"})
    wire.Client(transport=transport).send(request).read()
    assert [header(s, "authorization") for s in transport.sent] == [["Basic c2VjcmV0"], [], []]


@pytest.mark.parametrize(
    ("status", "method", "becomes"),
    [
        (303, "POST", "GET"),
        (303, "PUT", "GET"),
        (302, "POST", "GET"),
        (301, "POST", "GET"),
    ],
)
def test_redirect_to_get_drops_the_body_and_its_headers(
    status: int, method: str, becomes: str
) -> None:
    transport = ScriptedTransport(redirects({"http://r.example/x": (status, "/y")}))
    request = wire.Request(
        method,
        "http://r.example/x",
        headers={"Content-Type": "application/json", "Content-Length": "7", "X-Keep": "1"},
        content=b'{"a":1}',
    )
    wire.Client(transport=transport).send(request).read()
    second = transport.sent[1]
    assert second.method == becomes
    assert second.content is None
    assert header(second, "content-type") == []
    assert header(second, "content-length") == []
    assert header(second, "x-keep") == ["1"]


def test_303_after_head_stays_head() -> None:
    transport = ScriptedTransport(redirects({"http://r.example/x": (303, "/y")}))
    wire.Client(transport=transport).send(wire.Request("HEAD", "http://r.example/x"))
    assert [s.method for s in transport.sent] == ["HEAD", "HEAD"]


@pytest.mark.parametrize(("status", "method"), [(307, "PUT"), (308, "POST"), (302, "PUT")])
def test_redirect_keeping_the_method_keeps_a_bytes_body(status: int, method: str) -> None:
    transport = ScriptedTransport(redirects({"http://r.example/x": (status, "/y")}))
    request = wire.Request(
        method,
        "http://r.example/x",
        headers={"Content-Type": "application/octet-stream"},
        content=b"\x00payload",
    )
    wire.Client(transport=transport).send(request).read()
    second = transport.sent[1]
    assert (second.method, second.url, second.content) == (
        method,
        "http://r.example/y",
        b"\x00payload",
    )
    assert header(second, "content-type") == ["application/octet-stream"]


def test_redirect_with_a_one_shot_body_raises_and_closes_the_answer() -> None:
    transport = ScriptedTransport(redirects({"http://r.example/x": (307, "/y")}))
    pulled: list[bytes] = []

    def upload() -> Iterator[bytes]:
        for chunk in (b"a", b"b"):
            pulled.append(chunk)
            yield chunk

    request = wire.Request("PUT", "http://r.example/x", content=upload())
    with pytest.raises(RuntimeError, match="streamed"):
        wire.Client(transport=transport).send(request)
    assert len(transport.sent) == 1  # never sent again
    assert pulled == []  # the in-test transport does not read it; the client did not either
    assert transport.bodies[0].closed


def test_more_than_five_redirects_raise() -> None:
    chain = {f"http://r.example/{n}": (302, f"/{n + 1}") for n in range(6)}
    transport = ScriptedTransport(redirects(chain))
    with pytest.raises(wire.TooManyRedirects):
        wire.Client(transport=transport).send(wire.Request("GET", "http://r.example/0"))
    assert len(transport.sent) == 6  # the first request and five redirects followed
    assert all(body.closed for body in transport.bodies)


def test_five_redirects_are_followed() -> None:
    chain = {f"http://r.example/{n}": (302, f"/{n + 1}") for n in range(5)}
    transport = ScriptedTransport(redirects(chain))
    response = wire.Client(transport=transport).send(wire.Request("GET", "http://r.example/0"))
    assert response.read() == b"final"
    assert len(response.history) == 5
    assert str(response.url) == "http://r.example/5"


def test_max_redirects_is_configurable() -> None:
    transport = ScriptedTransport(redirects({"http://r.example/x": (302, "/y")}))
    with pytest.raises(wire.TooManyRedirects):
        wire.Client(transport=transport, max_redirects=0).send(GET())


def test_a_bad_location_closes_the_redirect_answer() -> None:
    transport = ScriptedTransport(redirects({"http://r.example/x": (302, "http://[::1/y")}))
    with pytest.raises(wire.InvalidURL):
        wire.Client(transport=transport).send(GET())
    assert transport.bodies[0].closed


# --------------------------------------------------------------------------------------------
# Client: mounts, headers, hooks, auth flows
# --------------------------------------------------------------------------------------------


def _ok(request: wire.Request) -> tuple[int, list[tuple[str, str]], list[bytes]]:
    return 200, [], [b"ok"]


def test_mounts_select_the_transport() -> None:
    default = ScriptedTransport(_ok, "default")
    plain = ScriptedTransport(_ok, "plain")
    exact = ScriptedTransport(_ok, "exact")
    any_port = ScriptedTransport(_ok, "any-port")
    client = wire.Client(
        transport=default,
        mounts={
            "http://": plain,
            "https://insecure.example:5000": exact,
            "https://Lab.Example": any_port,
        },
    )
    cases = {
        "http://anything.example/v2/": "plain",
        "http://insecure.example:5000/v2/": "plain",
        "https://insecure.example:5000/v2/": "exact",
        "https://insecure.example:5001/v2/": "default",
        "https://insecure.example/v2/": "default",
        "https://lab.example/v2/": "any-port",
        "https://lab.example:8443/v2/": "any-port",
        "https://other.example/v2/": "default",
    }
    for url, name in cases.items():
        for transport in (default, plain, exact, any_port):
            transport.sent.clear()
        client.send(wire.Request("GET", url)).read()
        used = [t.name for t in (default, plain, exact, any_port) if t.sent]
        assert used == [name], url
    client.close()
    assert [t.closed for t in (default, plain, exact, any_port)] == [1, 1, 1, 1]


def test_one_transport_mounted_twice_is_closed_once() -> None:
    shared = ScriptedTransport(_ok)
    client = wire.Client(transport=shared, mounts={"http://": shared})
    client.close()
    assert shared.closed == 1


def test_client_headers_go_under_the_requests_own() -> None:
    transport = ScriptedTransport(_ok)
    client = wire.Client(
        transport=transport, headers={"User-Agent": "regshift/test", "X-Default": "d"}
    )
    request = client.build_request("GET", "http://h/", headers={"x-default": "mine"})
    client.send(request).read()
    (sent,) = transport.sent
    assert header(sent, "user-agent") == ["regshift/test"]
    assert header(sent, "x-default") == ["mine"]
    bare = wire.Request("GET", "http://h/")
    client.send(bare).read()
    assert header(transport.sent[1], "user-agent") == ["regshift/test"]


def test_hooks_run_once_per_hop() -> None:
    transport = ScriptedTransport(
        redirects({"http://r.example/x": (302, "/y"), "http://r.example/y": (307, "/z")})
    )
    seen_requests: list[str] = []
    seen_responses: list[int] = []

    def mark(request: wire.Request) -> None:
        seen_requests.append(str(request.url))
        request.headers["X-Hop"] = str(len(seen_requests))

    client = wire.Client(
        transport=transport,
        request_hooks=[mark],
        response_hooks=[lambda response: seen_responses.append(response.status_code)],
    )
    client.send(GET()).read()
    assert seen_requests == ["http://r.example/x", "http://r.example/y", "http://r.example/z"]
    assert seen_responses == [302, 307, 200]
    assert [header(s, "x-hop") for s in transport.sent] == [["1"], ["2"], ["3"]]


class RetryWithToken(wire.Auth):
    """Sends the request; on a 401, once more with a token."""

    def auth_flow(self, request: wire.Request) -> wire.Flow:
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = "Bearer fresh"
            yield request


def test_auth_flow_retries_and_drops_the_first_answer() -> None:
    def handler(request: wire.Request) -> tuple[int, list[tuple[str, str]], list[bytes]]:
        if "authorization" not in request.headers:
            return 401, [("WWW-Authenticate", 'Bearer realm="x"')], [b"denied"]
        return 200, [], [b"ok"]

    transport = ScriptedTransport(handler)
    response = wire.Client(transport=transport).send(GET(), auth=RetryWithToken())
    assert response.status_code == 200
    assert response.read() == b"ok"
    assert [header(s, "authorization") for s in transport.sent] == [[], ["Bearer fresh"]]
    assert transport.bodies[0].closed and transport.bodies[0].pulled == 1  # read, then closed


def test_default_auth_sends_the_request_as_it_is() -> None:
    transport = ScriptedTransport(_ok)
    response = wire.Client(transport=transport).send(GET(), auth=wire.Auth())
    assert response.read() == b"ok"
    assert len(transport.sent) == 1


class TokenRefused(Exception):
    pass


class FailingFlow(wire.Auth):
    def __init__(self) -> None:
        self.finalised = False

    def auth_flow(self, request: wire.Request) -> wire.Flow:
        try:
            response = yield request
            if response.status_code == 401:
                raise TokenRefused("the token server said no")
        finally:
            self.finalised = True


def test_a_failing_auth_flow_closes_the_answer() -> None:
    transport = ScriptedTransport(lambda request: (401, [], [b"denied"]))
    flow = FailingFlow()
    with pytest.raises(TokenRefused):
        wire.Client(transport=transport).send(GET(), auth=flow)
    (body,) = transport.bodies
    assert body.closed
    assert flow.finalised


def test_a_failing_transport_closes_the_auth_flow() -> None:
    def handler(request: wire.Request) -> Any:
        raise wire.ConnectError("refused")

    flow = FailingFlow()
    with pytest.raises(wire.ConnectError):
        wire.Client(transport=ScriptedTransport(handler)).send(GET(), auth=flow)
    assert flow.finalised


def test_auth_flow_answers_pass_through_redirects() -> None:
    transport = ScriptedTransport(redirects({"http://r.example/x": (307, "http://cdn.example/y")}))
    response = wire.Client(transport=transport).send(GET(), auth=RetryWithToken())
    assert response.read() == b"final"
    assert [s.url for s in transport.sent] == ["http://r.example/x", "http://cdn.example/y"]


# --------------------------------------------------------------------------------------------
# Fixes after review: cut-short and raw deflate bodies, non-ASCII targets, exact default
# ports, hooks that raise
# --------------------------------------------------------------------------------------------


def test_a_gzip_body_cut_short_is_a_decoding_error(request_: wire.Request) -> None:
    encoded = gzip.compress(PAYLOAD)
    response, body = streamed(200, request_, [("Content-Encoding", "gzip")], [encoded[:-12]])
    with pytest.raises(DecodingError, match="ends before its end"):
        response.read()
    assert body.closed


def test_raw_deflate_is_decoded_too(request_: wire.Request) -> None:
    """Some servers send ``deflate`` without the zlib wrapper RFC 9110 asks for."""
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw_deflate = packer.compress(PAYLOAD) + packer.flush()
    response, _ = streamed(200, request_, [("Content-Encoding", "deflate")], _split(raw_deflate))
    assert response.read() == PAYLOAD


def test_an_unknown_encoding_closes_the_body(request_: wire.Request) -> None:
    response, body = streamed(200, request_, [("Content-Encoding", "zstd")], [b"x"])
    with pytest.raises(DecodingError):
        response.read()
    assert body.closed and body.pulled == 0


def test_non_ascii_in_path_and_query_is_percent_encoded() -> None:
    url = wire.URL("https://r.example/v2/caf\u00e9/tags/list?last=\u00e9t\u00e9&n=1")
    assert url.raw_path == "/v2/caf%C3%A9/tags/list?last=%C3%A9t%C3%A9&n=1"
    assert url.raw_path.isascii()


def test_a_mount_naming_the_default_port_is_that_port_only() -> None:
    default = ScriptedTransport(_ok, "default")
    tls443 = ScriptedTransport(_ok, "443")
    client = wire.Client(transport=default, mounts={"https://lab.example:443": tls443})
    for url, name in {
        "https://lab.example/v2/": "443",
        "https://lab.example:443/v2/": "443",
        "https://lab.example:5000/v2/": "default",
    }.items():
        default.sent.clear()
        tls443.sent.clear()
        client.send(wire.Request("GET", url)).read()
        assert [t.name for t in (default, tls443) if t.sent] == [name], url


def test_a_response_hook_that_raises_leaves_the_response_closed() -> None:
    transport = ScriptedTransport(_ok)

    def broken(response: wire.Response) -> None:
        raise RuntimeError("hook failed")

    client = wire.Client(transport=transport, response_hooks=[broken])
    with pytest.raises(RuntimeError, match="hook failed"):
        client.send(GET())
    assert transport.bodies[0].closed
