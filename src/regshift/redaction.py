"""Mask credentials in text before it is printed: the lowest layer, importing nothing of ours.

Registries, proxies and users put secrets where regshift later quotes them in an error:
``Authorization`` values echoed in an error body, ``user:password@`` typed into a URL, a
``?token=`` in a pagination link. These helpers work on plain strings (also ones no URL
parser accepts), so every module can mask before it prints.
"""

from __future__ import annotations

import re

MASK = "***"

# Patterns, compiled on first use by re's own cache: masking runs only on error paths,
# and this module is imported on the start-up path of every command.
_AUTH_VALUE = r"(?i)\b(?:basic|bearer)\s+[^\s\"',;]+"
_JWT = r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
#: ``scheme://user:password@`` or a bare ``user:password@host``; the user name stays.
#: ``name:tag@sha256:...`` (a tag before a digest) is no user info and stays.
_USERINFO = r"((?:^|[\s\"'<(=]|//)[^\s\"'<>/@:]*):[^\s\"'<>/@]*@(?![A-Za-z0-9+._-]+:[A-Fa-f0-9]{6})"
_QUERY = r"\?[^\s\"'<>#]*"
_QUERY_PAIR = r"([^&=?]+)=[^&]*"


_REMEMBERED: set[str] = set()
_MIN_REMEMBERED = 4  # shorter values would mask ordinary text; they are no secrets either


def remember_secret(value: str) -> None:
    """Mask ``value`` from now on wherever :func:`redact_secrets` runs (in this process).

    For secrets with no recognisable shape, such as an extra header's API key.
    """
    if len(value.strip()) >= _MIN_REMEMBERED:
        _REMEMBERED.add(value.strip())


def mask_userinfo(text: str) -> str:
    """``https://ci:secret@host`` → ``https://ci:***@host`` (the password, wherever it is)."""
    return re.sub(_USERINFO, lambda m: f"{m.group(1)}:{MASK}@", text)


def redact_secrets(text: str) -> str:
    """Mask ``Basic``/``Bearer`` credentials, JWT-shaped tokens, URL passwords and the
    values given to :func:`remember_secret` in ``text``."""
    for secret in sorted(_REMEMBERED, key=len, reverse=True):  # a longer one may hold a shorter
        text = text.replace(secret, MASK)
    text = re.sub(_AUTH_VALUE, MASK, text)
    text = re.sub(_JWT, MASK, text)
    return mask_userinfo(text)


def redact_url_text(url: str) -> str:
    """A URL string (parsable or not) without its password and query values (``k=...``)."""
    masked = redact_secrets(url)
    return re.sub(_QUERY, lambda m: "?" + re.sub(_QUERY_PAIR, r"\1=...", m.group(0)[1:]), masked)
