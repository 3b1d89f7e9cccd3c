"""Parse RFC 8288 ``Link`` headers, as registries use them for tag-list pagination."""

from __future__ import annotations

import re
from typing import NamedTuple, NoReturn
from urllib.parse import SplitResult, urlsplit

from .errors import APIError
from .redaction import redact_url_text

_LINK = re.compile(r"\s*<([^>]*)>\s*((?:;\s*[^;,]*)*)")
_PARAM = re.compile(r';\s*([^=;,\s]+)\s*=\s*(?:"([^"]*)"|([^;,\s]*))')
_MAX_HEADER = 16 * 1024


class Link(NamedTuple):
    """One link: its target and its ``rel`` values."""

    target: str
    rels: tuple[str, ...]


def parse_link_header(header: str) -> list[Link]:
    """Parse a ``Link`` header into links; malformed parts are skipped, never raised on."""
    links: list[Link] = []
    for match in _LINK.finditer(header[:_MAX_HEADER]):
        rels: tuple[str, ...] = ()
        for param in _PARAM.finditer(match.group(2)):
            if param.group(1).lower() == "rel":
                rels = tuple((param.group(2) or param.group(3) or "").lower().split())
        links.append(Link(target=match.group(1).strip(), rels=rels))
    return links


def next_link(
    header: str, repository: str, endpoint: str, *, kind: str = "tags/list"
) -> str | None:
    """The next page as a path below ``/v2/<repository>``, or None on the last page.

    ``kind`` is the endpoint being paged: ``tags/list``, or ``referrers`` (any digest); with
    ``repository`` empty, a registry-wide one (``_catalog``), below ``/v2``.

    Relative links (distribution) and absolute links to the same host are followed.

    Raises:
        APIError: the link points at another host, scheme or repository (we never follow it).
    """
    for link in parse_link_header(header):
        if "next" not in link.rels:
            continue
        parts = _split(link.target)
        if parts is None:
            _refuse(link.target, repository, kind, ": not a valid URL")
        base = f"/v2/{repository}" if repository else "/v2"
        foreign = parts.netloc not in ("", endpoint) or parts.scheme not in ("", "http", "https")
        if foreign or not parts.path.startswith(f"{base}/{kind}"):
            _refuse(link.target, repository, kind)
        return parts.path[len(base) :] + (f"?{parts.query}" if parts.query else "")
    return None


def _split(target: str) -> SplitResult | None:
    """The parts of a link target, or None when it is no URL we could send (an unclosed
    IPv6 bracket, control characters: urlsplit raises on the first, wire.URL on the
    second)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    try:
        return urlsplit(target)
    except ValueError:
        return None


def _refuse(target: str, repository: str, kind: str, why: str = "") -> NoReturn:
    raise APIError(
        status=200,
        method="GET",
        url=f"/v2/{repository}/{kind}",
        text=f"refusing to follow pagination link {redact_url_text(target)[:200]!r}{why}",
    )
