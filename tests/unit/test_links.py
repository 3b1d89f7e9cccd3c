"""Link header parsing and the pagination guard."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, strategies as st

from regshift.errors import APIError
from regshift.links import next_link, parse_link_header


def test_parse_several() -> None:
    links = parse_link_header('</a?x=1>; rel="next", <https://h/b>; rel=prev; title="t"')
    assert [(link.target, link.rels) for link in links] == [
        ("/a?x=1", ("next",)),
        ("https://h/b", ("prev",)),
    ]


def test_next_relative() -> None:
    header = '</v2/t/app/tags/list?last=b&n=2>; rel="next"'
    assert next_link(header, "t/app", "reg:5000") == "/tags/list?last=b&n=2"


def test_next_absolute_same_host() -> None:
    header = '<https://reg:5000/v2/t/app/tags/list?last=b>; rel="next"'
    assert next_link(header, "t/app", "reg:5000") == "/tags/list?last=b"


def test_no_next() -> None:
    assert next_link('</v2/t/app/tags/list?last=b>; rel="prev"', "t/app", "reg") is None
    assert next_link("", "t/app", "reg") is None


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/v2/t/app/tags/list?last=b",
        "/v2/other/repo/tags/list?last=b",
        "ftp://reg:5000/v2/t/app/tags/list",
        "/v2/t/app/blobs/sha256:00",
    ],
)
def test_refuses_foreign_links(target: str) -> None:
    with pytest.raises(APIError, match="refusing to follow"):
        next_link(f'<{target}>; rel="next"', "t/app", "reg:5000")


@given(st.text(max_size=300))
def test_parser_total(header: str) -> None:
    parse_link_header(header)
    with contextlib.suppress(APIError):
        next_link(header, "t/app", "reg:5000")
