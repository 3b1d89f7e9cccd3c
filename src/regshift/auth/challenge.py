"""Parse ``WWW-Authenticate`` headers (RFC 9110 section 11.6.1) as registries send them.

Pure functions, no I/O. Registries send one or several challenges, e.g.::

    Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull"
    Basic realm="my-registry", Bearer realm="https://auth.example/token"

Quoted values may contain commas and escaped quotes; scheme names are case-insensitive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from ..errors import AuthError

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN68 = r"[A-Za-z0-9\-._~+/]+=*"
_SPACE = re.compile(r"[ \t]*")
_SCHEME = re.compile(_TOKEN)
_PARAM = re.compile(rf"({_TOKEN})[ \t]*=[ \t]*")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_BARE = re.compile(_TOKEN68)
_MAX_HEADER = 16 * 1024
_NO_PARAMS: Mapping[str, str] = MappingProxyType({})


class Challenge(NamedTuple):
    """One authentication challenge: a scheme (lower-cased) and its parameters."""

    scheme: str
    params: Mapping[str, str] = _NO_PARAMS

    @property
    def realm(self) -> str:
        """The ``realm`` parameter (a token URL for Bearer, a label for Basic)."""
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        """The ``service`` parameter (Bearer)."""
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The space-separated ``scope`` parameter, split (Bearer)."""
        return tuple(self.params.get("scope", "").split())


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into its challenges, in order.

    Raises:
        AuthError: the header is malformed or unreasonably long.
    """
    if len(header) > _MAX_HEADER:
        raise AuthError(f"WWW-Authenticate header too long ({len(header)} bytes)")
    challenges: list[Challenge] = []
    pos = _skip(header, 0)
    while pos < len(header):
        scheme_match = _SCHEME.match(header, pos)
        if not scheme_match:
            raise AuthError(f"malformed WWW-Authenticate header at offset {pos}")
        params, pos = _parse_params(header, _SPACE.match(header, scheme_match.end()).end())  # type: ignore[union-attr]
        challenges.append(Challenge(scheme=scheme_match.group().lower(), params=params))
        pos = _skip(header, pos)
    return challenges


def select_challenge(challenges: list[Challenge]) -> Challenge | None:
    """Pick the challenge we will answer: Bearer is preferred over Basic; others are ignored."""
    for wanted in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == wanted:
                return challenge
    return None


def _skip(header: str, pos: int) -> int:
    """Skip white space and empty list elements (``,``)."""
    while pos < len(header) and header[pos] in " \t,":
        pos += 1
    return pos


def _parse_params(header: str, pos: int) -> tuple[dict[str, str], int]:
    """Parse ``name=value`` pairs up to the next challenge; return them and the new offset."""
    params: dict[str, str] = {}
    token68 = _BARE.match(header, pos)
    if token68 and _at_list_end(header, token68.end()) and "=" in token68.group():
        return params, token68.end()  # token68 form (e.g. Negotiate): not used by registries
    while pos < len(header):
        param = _PARAM.match(header, pos)
        if not param:
            return params, pos  # the next challenge begins here
        value, pos = _parse_value(header, param.end())
        params[param.group(1).lower()] = value
        pos = _SPACE.match(header, pos).end()  # type: ignore[union-attr]
        if pos < len(header):
            if header[pos] != ",":
                raise AuthError(f"malformed WWW-Authenticate header at offset {pos}")
            pos = _skip(header, pos)
    return params, pos


def _parse_value(header: str, pos: int) -> tuple[str, int]:
    quoted = _QUOTED.match(header, pos)
    if quoted:
        return re.sub(r"\\(.)", r"\1", quoted.group(1)), quoted.end()
    bare = _BARE.match(header, pos) or re.compile(_TOKEN).match(header, pos)
    if not bare:
        raise AuthError(f"malformed WWW-Authenticate parameter value at offset {pos}")
    return bare.group(), bare.end()


def _at_list_end(header: str, pos: int) -> bool:
    rest = header[pos:].lstrip(" \t")
    return not rest or rest.startswith(",")
