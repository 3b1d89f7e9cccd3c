"""Which proxy a request goes through: the rules of Go's ``net/http``, as a pure function.

docker, podman, skopeo, crane and regctl all use Go's ``http.ProxyFromEnvironment``
(``golang.org/x/net/http/httpproxy``), so users behind a corporate proxy expect these rules:

* ``https://`` URLs use ``HTTPS_PROXY``, ``http://`` URLs ``HTTP_PROXY`` (there is no fallback
  from one to the other, and no ``ALL_PROXY``); each variable is read upper-case first, then
  lower-case, and an empty value counts as unset. In a CGI program (``REQUEST_METHOD`` set) an
  ``HTTP_PROXY`` is refused: a client's ``Proxy:`` header may have set it ("httpoxy").
* A proxy value without a scheme means ``http://`` (``proxy.corp:3128``); its user info is the
  proxy's credentials (``http://user:pass@proxy:3128``). Proxies speaking ``http`` and
  ``https`` are supported (not SOCKS).
* Loopback hosts go direct, always: ``localhost``, ``127.0.0.0/8``, ``::1``.
* ``NO_PROXY`` is a comma-separated list; a request goes direct when an entry matches: ``*``
  (everything), an IP address (``10.1.2.3``, ``::1``), a CIDR range (``10.0.0.0/8``), a host
  name matching itself and its subdomains (``corp.example`` matches ``corp.example`` and
  ``registry.corp.example``), a name with a leading dot or ``*.`` matching only subdomains
  (``.corp.example``); any entry may end in ``:port`` to match that port only (the
  scheme's default port when the URL names none).

Nothing here reads the environment or opens a socket: the caller passes the variables in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import SplitResult, urlsplit

__all__ = ["describe_proxy", "proxy_for"]

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_PROXY_SCHEMES = frozenset({"http", "https"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def proxy_for(url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy URL a request to ``url`` goes through, or ``None`` to go direct.

    Args:
        url: the request URL (``http`` or ``https``; other schemes always go direct).
        environ: the environment variables (only the proxy ones are read).

    Returns:
        The proxy URL as configured (credentials included; ``http://`` added when the value
        has no scheme), or ``None``.

    Raises:
        ValueError: the proxy variable that applies is not a usable proxy URL, or names
            ``HTTP_PROXY`` in a CGI program. The message names the variable, never its value.
    """
    target = urlsplit(url)
    scheme = target.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return None
    name, value = _first_set(environ, f"{scheme.upper()}_PROXY", f"{scheme}_proxy")
    if not value:
        return None
    if scheme == "http" and environ.get("REQUEST_METHOD"):
        raise ValueError(
            f"refusing to use {name} in a CGI program (REQUEST_METHOD is set; "
            "a request header may have set it: see golang.org/s/cgihttpproxy)"
        )
    host = _ascii(target.hostname or "")
    port = str(target.port) if target.port is not None else _DEFAULT_PORTS[scheme]
    if not _use_proxy(host, port, _first_set(environ, "NO_PROXY", "no_proxy")[1]):
        return None
    return _proxy_url(name, value)


def describe_proxy(proxy: str) -> str:
    """``scheme://host:port`` of a proxy URL, for messages: its credentials are never shown,
    only said to be there."""
    parts = urlsplit(proxy)
    address = parts.netloc.rpartition("@")[2]
    credentials = " (with credentials)" if "@" in parts.netloc else ""
    return f"{parts.scheme}://{address}{credentials}"


def _first_set(environ: Mapping[str, str], *names: str) -> tuple[str, str]:
    """The first of ``names`` with a non-empty value, and that value (Go's ``getEnvAny``)."""
    for name in names:
        value = environ.get(name, "")
        if value:
            return name, value
    return names[0], ""


def _proxy_url(name: str, value: str) -> str:
    """Go's ``parseProxy``: a value without ``scheme://host`` is tried again as ``http://``."""
    value = value.strip()
    parts = _split(value)
    if "://" not in value and (parts is None or not parts.scheme or not parts.netloc):
        value = f"http://{value}"
        parts = _split(value)
    if parts is None or not parts.hostname:
        raise ValueError(f"{name} is not a valid proxy URL")
    if parts.scheme.lower() not in _PROXY_SCHEMES:
        raise ValueError(
            f"{name} names a {parts.scheme!r} proxy; "
            "only http:// and https:// proxies are supported"
        )
    try:
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError:
        raise ValueError(f"{name} is not a valid proxy URL (bad port)") from None
    return value


def _split(value: str) -> SplitResult | None:
    try:
        return urlsplit(value)
    except ValueError:  # e.g. an unbalanced '[' in the host
        return None


def _use_proxy(host: str, port: str, no_proxy: str) -> bool:
    """Go's ``useProxy``: loopback and ``NO_PROXY`` matches go direct."""
    if not host:
        return True
    if host == "localhost":
        return False
    ip = _ip(host)
    if ip is not None and ip.is_loopback:
        return False
    return not any(_matches(entry, host, port, ip) for entry in _entries(no_proxy))


def _entries(no_proxy: str) -> list[str]:
    entries = [e.strip().lower() for e in no_proxy.split(",")]
    return [e for e in entries if e]


def _matches(entry: str, host: str, port: str, ip: IPAddress | None) -> bool:
    """Whether one ``NO_PROXY`` entry sends ``host:port`` direct."""
    if entry == "*":
        return True
    if "/" in entry:  # a CIDR range; one that does not parse matches nothing
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
        return ip is not None and ip in network
    entry_host, entry_port = _split_host_port(entry)
    if not entry_host:
        return False
    entry_ip = _ip(entry_host)
    if entry_ip is not None:
        return entry_ip == ip and entry_port in ("", port)
    if entry_host.startswith("*."):
        entry_host = entry_host[1:]
    exact_too = not entry_host.startswith(".")  # "corp.example" matches itself as well
    suffix = "." + _ascii(entry_host.removeprefix("."))
    named = host.endswith(suffix) or (exact_too and host == suffix[1:])
    return named and entry_port in ("", port)


def _split_host_port(entry: str) -> tuple[str, str]:
    """``host:port`` / ``[v6]:port`` → (host, port); anything else is all host (Go's
    ``net.SplitHostPort`` failing: no port, or a bare IPv6 address)."""
    if entry.startswith("["):
        end = entry.find("]")
        if end != -1 and entry[end + 1 : end + 2] == ":":
            return entry[1:end], entry[end + 2 :]
        return entry, ""
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, port
    return entry, ""


def _ip(host: str) -> IPAddress | None:
    """``host`` as an IP address (an IPv4-mapped IPv6 address as its IPv4 one, as Go does)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _ascii(host: str) -> str:
    """A host name in its ASCII (IDNA) form, lower-cased, as Go compares them."""
    host = host.lower()
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host
