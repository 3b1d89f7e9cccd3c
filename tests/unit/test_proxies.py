"""Proxy choice by Go's net/http rules (regshift.proxies.proxy_for), as a table."""

from __future__ import annotations

import pytest

from regshift.proxies import describe_proxy, proxy_for
from regshift.transport import proxy_environment

P = "http://proxy.corp:3128"
S = "http://secure-proxy.corp:3128"
BOTH = {"HTTP_PROXY": P, "HTTPS_PROXY": S}


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        # which variable: by the URL's scheme, no fallback between them, no ALL_PROXY
        ("https://registry.example/v2/", BOTH, S),
        ("http://registry.example/v2/", BOTH, P),
        ("https://registry.example/v2/", {"HTTP_PROXY": P}, None),
        ("http://registry.example/v2/", {"HTTPS_PROXY": S}, None),
        ("https://registry.example/v2/", {"ALL_PROXY": P, "all_proxy": P}, None),
        ("ftp://registry.example/", {"HTTP_PROXY": P, "HTTPS_PROXY": S}, None),
        ("https://registry.example/v2/", {}, None),
        # upper case first, lower case too, an empty value counts as unset
        ("https://r.example/", {"HTTPS_PROXY": S, "https_proxy": P}, S),
        ("https://r.example/", {"https_proxy": P}, P),
        ("https://r.example/", {"HTTPS_PROXY": "", "https_proxy": P}, P),
        ("http://r.example/", {"http_proxy": P}, P),
        # a value without a scheme means http://; credentials stay in the URL
        ("https://r.example/", {"HTTPS_PROXY": "proxy.corp:3128"}, "http://proxy.corp:3128"),
        ("https://r.example/", {"HTTPS_PROXY": "127.0.0.1:3128"}, "http://127.0.0.1:3128"),
        ("https://r.example/", {"HTTPS_PROXY": " http://u:p%40ss@p:1 "}, "http://u:p%40ss@p:1"),
        ("https://r.example/", {"HTTPS_PROXY": "https://p.corp"}, "https://p.corp"),
        # loopback always goes direct, whatever NO_PROXY says
        ("https://localhost:5000/v2/", BOTH, None),
        ("http://LOCALHOST:5000/v2/", BOTH, None),
        ("http://127.0.0.1:5000/v2/", BOTH, None),
        ("http://127.3.2.1/v2/", BOTH, None),
        ("http://[::1]:5000/v2/", BOTH, None),
        ("http://[::ffff:127.0.0.1]:5000/v2/", BOTH, None),
        # ... and only loopback: a name is judged by its spelling, never resolved
        ("https://registry.localhost/v2/", BOTH, S),
        ("https://localhost.corp/v2/", BOTH, S),
        ("http://10.0.0.1/v2/", BOTH, P),
        ("http://[::2]/v2/", BOTH, P),
    ],
)
def test_proxy_choice(url: str, environ: dict[str, str], expected: str | None) -> None:
    assert proxy_for(url, environ) == expected


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("*", "https://registry.example/", True),
        ("other.example, *", "https://registry.example/", True),
        # a name: itself and its subdomains, not names merely ending in it
        ("corp.example", "https://corp.example/", True),
        ("corp.example", "https://registry.corp.example/", True),
        ("corp.example", "https://a.b.corp.example/", True),
        ("corp.example", "https://notcorp.example/", False),
        ("CORP.Example", "https://registry.corp.example/", True),
        # a leading dot or "*.": subdomains only
        (".corp.example", "https://registry.corp.example/", True),
        (".corp.example", "https://corp.example/", False),
        ("*.corp.example", "https://registry.corp.example/", True),
        ("*.corp.example", "https://corp.example/", False),
        # a port: that port only, the scheme's default port when the URL names none
        ("corp.example:5000", "https://registry.corp.example:5000/", True),
        ("corp.example:5000", "https://registry.corp.example:5001/", False),
        ("corp.example:443", "https://registry.corp.example/", True),
        ("corp.example:443", "http://registry.corp.example/", False),
        ("corp.example:80", "http://registry.corp.example/", True),
        # IP addresses and CIDR ranges (v4 and v6), with ports
        ("10.1.2.3", "https://10.1.2.3:5000/", True),
        ("10.1.2.3", "https://10.1.2.4/", False),
        ("10.1.2.3:5000", "https://10.1.2.3:5000/", True),
        ("10.1.2.3:5000", "https://10.1.2.3:5001/", False),
        ("10.0.0.0/8", "https://10.200.0.1/", True),
        ("10.0.0.0/8", "https://11.0.0.1/", False),
        ("10.0.0.1/8", "https://10.9.9.9/", True),  # host bits set: still the range
        ("10.0.0.0/8", "https://ten.example/", False),  # a name is never resolved
        ("fd00::/8", "https://[fd12::1]:5000/", True),
        ("fd00::/8", "https://10.0.0.1/", False),
        ("fd12::1", "https://[fd12::1]/", True),
        ("[fd12::1]:5000", "https://[fd12::1]:5000/", True),
        ("[fd12::1]:5000", "https://[fd12::1]:5001/", False),
        # separators, blanks and malformed entries
        (" a.example , b.example ", "https://x.b.example/", True),
        (",,", "https://registry.example/", False),
        (":5000", "https://registry.example:5000/", False),  # no host: ignored
        ("10.0.0.0/99", "https://10.0.0.1/", False),  # not a range: matches nothing
        # non-ASCII names compare in their IDNA form
        ("bücher.example", "https://xn--bcher-kva.example/", True),
    ],
)
def test_no_proxy(no_proxy: str, url: str, direct: bool) -> None:
    environ = {**BOTH, "NO_PROXY": no_proxy}
    assert (proxy_for(url, environ) is None) is direct
    lower = {**BOTH, "no_proxy": no_proxy}
    assert (proxy_for(url, lower) is None) is direct


def test_no_proxy_upper_case_first() -> None:
    environ = {**BOTH, "NO_PROXY": "a.example", "no_proxy": "b.example"}
    assert proxy_for("https://b.example/", environ) == S
    assert proxy_for("https://a.example/", environ) is None
    environ["NO_PROXY"] = ""  # empty: the lower-case one applies
    assert proxy_for("https://b.example/", environ) is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HTTPS_PROXY": "socks5://u:secret@p:1080"}, "HTTPS_PROXY names a 'socks5' proxy"),
        ({"https_proxy": "http://u:secret@p:99999"}, "https_proxy is not a valid proxy URL"),
        ({"HTTPS_PROXY": "http://u:secret@[p"}, "HTTPS_PROXY is not a valid proxy URL"),
        ({"HTTPS_PROXY": "http://u:secret@:3128"}, "HTTPS_PROXY is not a valid proxy URL"),
    ],
)
def test_unusable_proxy_is_an_error_naming_the_variable_not_its_value(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match="^" + message) as info:
        proxy_for("https://registry.example/", environ)
    assert "secret" not in str(info.value)
    # a host that goes direct never needs the proxy, so a broken one does not stop it
    assert proxy_for("https://localhost:5000/", environ) is None
    assert proxy_for("https://registry.example/", {**environ, "NO_PROXY": "*"}) is None


def test_cgi_refuses_http_proxy() -> None:
    """Go refuses HTTP_PROXY when REQUEST_METHOD is set ("httpoxy": a request's Proxy:
    header becomes HTTP_PROXY in a CGI program); HTTPS_PROXY is unaffected."""
    environ = {**BOTH, "REQUEST_METHOD": "GET"}
    with pytest.raises(ValueError, match="refusing to use HTTP_PROXY in a CGI program"):
        proxy_for("http://registry.example/", environ)
    assert proxy_for("https://registry.example/", environ) == S


@pytest.mark.parametrize(
    ("proxy", "shown"),
    [
        ("http://proxy.corp:3128", "http://proxy.corp:3128"),
        ("http://carol:s3cret@proxy.corp:3128", "http://proxy.corp:3128 (with credentials)"),
        ("http://tok3n@proxy.corp", "http://proxy.corp (with credentials)"),
        ("https://u:p@[fd00::1]:3128", "https://[fd00::1]:3128 (with credentials)"),
    ],
)
def test_describe_proxy_never_shows_credentials(proxy: str, shown: str) -> None:
    assert describe_proxy(proxy) == shown


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {}),
        ({"NO_PROXY": "a", "no_proxy": "b", "REQUEST_METHOD": "GET"}, {}),  # no proxy: nothing
        ({"HTTPS_PROXY": ""}, {}),
        ({"https_proxy": S, "NO_PROXY": "a", "PATH": "/bin"}, {"https_proxy": S, "NO_PROXY": "a"}),
        ({"HTTP_PROXY": P, "REQUEST_METHOD": "GET"}, {"HTTP_PROXY": P, "REQUEST_METHOD": "GET"}),
    ],
)
def test_proxy_environment(environ: dict[str, str], expected: dict[str, str]) -> None:
    assert proxy_environment(environ) == expected
