"""WWW-Authenticate parsing: the forms registries send, and hostile input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, strategies as st

from regshift.auth.challenge import Challenge, parse_challenges, select_challenge
from regshift.errors import AuthError

CASES = [
    (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"',
        [
            (
                "bearer",
                {
                    "realm": "https://auth.docker.io/token",
                    "service": "registry.docker.io",
                    "scope": "repository:library/alpine:pull",
                },
            )
        ],
    ),
    ('Basic realm="regshift-test"', [("basic", {"realm": "regshift-test"})]),
    ("basic realm=unquoted", [("basic", {"realm": "unquoted"})]),
    (
        'Basic realm="a", Bearer realm="https://t/x",service="s"',
        [("basic", {"realm": "a"}), ("bearer", {"realm": "https://t/x", "service": "s"})],
    ),
    (
        'Bearer realm="https://t/token?x=1,2",scope="repository:a:pull,push repository:b:pull"',
        [
            (
                "bearer",
                {
                    "realm": "https://t/token?x=1,2",
                    "scope": "repository:a:pull,push repository:b:pull",
                },
            )
        ],
    ),
    ('Bearer realm="quo\\"ted"', [("bearer", {"realm": 'quo"ted'})]),
    ('Bearer  realm = "spaced" ,  service="s"', [("bearer", {"realm": "spaced", "service": "s"})]),
    (
        'Bearer realm="r",error="insufficient_scope",scope="repository:a:push"',
        [("bearer", {"realm": "r", "error": "insufficient_scope", "scope": "repository:a:push"})],
    ),
    ("Negotiate", [("negotiate", {})]),
    ("Negotiate abc123==, Basic realm=x", [("negotiate", {}), ("basic", {"realm": "x"})]),
    ("", []),
]


@pytest.mark.parametrize(("header", "expected"), CASES)
def test_parse(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    got = parse_challenges(header)
    assert [(c.scheme, c.params) for c in got] == expected


def test_scopes_split() -> None:
    (c,) = parse_challenges('Bearer realm="r",scope="repository:a:pull repository:b:push"')
    assert c.scopes == ("repository:a:pull", "repository:b:push")
    assert c.realm == "r"
    assert c.service == ""


def test_select_prefers_bearer() -> None:
    got = parse_challenges('Basic realm="a", Bearer realm="b"')
    chosen = select_challenge(got)
    assert chosen is not None
    assert chosen.scheme == "bearer"
    assert select_challenge([Challenge("negotiate")]) is None


@pytest.mark.parametrize("header", ['Bearer realm="unterminated', "Bearer realm=a b=c", "=x"])
def test_malformed(header: str) -> None:
    with pytest.raises(AuthError):
        parse_challenges(header)


def test_too_long() -> None:
    with pytest.raises(AuthError, match="too long"):
        parse_challenges("Bearer realm=" + "a" * 20000)


@given(st.text(max_size=300))
def test_never_raises_other_errors(header: str) -> None:
    with contextlib.suppress(AuthError):
        parse_challenges(header)
