"""Semantic versions and ranges (regshift.semver): parsing, precedence, range membership."""

from __future__ import annotations

import pytest

from regshift.semver import Version, parse_range, parse_version, version_order


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3", Version(1, 2, 3)),
        ("v1.2.3", Version(1, 2, 3)),
        ("0.0.0", Version(0, 0, 0)),
        ("1.2.3-rc.1", Version(1, 2, 3, ("rc", 1))),
        ("1.2.3-alpha-1.0a", Version(1, 2, 3, ("alpha-1", "0a"))),
        ("1.2.3+build.5", Version(1, 2, 3)),
        ("1.2.3-beta+exp.sha.5114f85", Version(1, 2, 3, ("beta",))),
        ("1.2", None),
        ("1", None),
        ("latest", None),
        ("01.2.3", None),
        ("1.02.3", None),
        ("1.2.3-01", None),  # numeric pre-release identifiers have no leading zero
        ("1.2.3-", None),
        ("1.2.3-rc..1", None),
        ("1.2.3.4", None),
        ("V1.2.3", None),
        ("sha256-abc", None),
    ],
)
def test_parse_version(text: str, expected: Version | None) -> None:
    assert parse_version(text) == expected


def test_precedence_is_semver_2_0_0_section_11() -> None:
    # The spec's own example chain, in ascending order.
    chain = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "1.10.0",
        "2.0.0",
    ]
    versions = [parse_version(t) for t in reversed(chain)]
    assert all(v is not None for v in versions)
    ordered = sorted(versions, key=version_order)  # type: ignore[arg-type]
    assert ordered == [parse_version(t) for t in chain]


@pytest.mark.parametrize(
    ("range_", "inside", "outside"),
    [
        (
            ">=1.2.0 <2.0.0",
            ["1.2.0", "1.9.9", "v1.5.0"],
            ["1.1.9", "2.0.0", "2.0.0-rc.1", "1.5.0-beta"],
        ),
        (
            ">=1.2.0-rc.1 <2.0.0",
            ["1.2.0-rc.1", "1.2.0-rc.2", "1.2.0"],
            ["1.2.0-beta", "1.3.0-rc.1"],
        ),
        (">= 1.2 < 2", ["1.2.0", "1.99.0"], ["2.0.0", "1.1.0"]),
        ("^1.2.3", ["1.2.3", "1.9.0"], ["2.0.0", "1.2.2"]),
        ("^1.2", ["1.2.0", "1.9.0"], ["2.0.0", "1.1.9"]),
        ("^1", ["1.0.0", "1.99.99"], ["2.0.0", "0.9.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
        ("^0.0", ["0.0.0", "0.0.9"], ["0.1.0"]),
        ("~1.2.3", ["1.2.3", "1.2.99"], ["1.3.0", "1.2.2"]),
        ("~1.2", ["1.2.0", "1.2.5"], ["1.3.0"]),
        ("~1", ["1.0.0", "1.5.0"], ["2.0.0"]),
        ("1.2.3", ["1.2.3", "1.2.3+build"], ["1.2.4"]),
        ("=1.2", ["1.2.0", "1.2.7"], ["1.3.0", "1.1.0"]),
        (">1.2.3", ["1.2.4"], ["1.2.3"]),
        (">1.2", ["1.3.0"], ["1.2.9"]),
        ("<=1.2.3", ["1.2.3", "0.1.0"], ["1.2.4"]),
        ("<=1.2", ["1.2.9"], ["1.3.0"]),
        ("<1.0.0 || >=3.0.0", ["0.5.0", "3.1.0"], ["1.0.0", "2.9.9"]),
    ],
)
def test_range_membership(range_: str, inside: list[str], outside: list[str]) -> None:
    parsed = parse_range(range_)
    for tag in inside:
        version = parse_version(tag)
        assert version is not None and parsed.contains(version), (range_, tag)
    for tag in outside:
        version = parse_version(tag)
        assert version is not None and not parsed.contains(version), (range_, tag)


@pytest.mark.parametrize(
    "bad", ["", "  ", ">=", ">=x", "1.2.3 ||", "~>1.2", ">=1.2.3.4", "1.2.x", "=>1.0.0", "^v"]
)
def test_bad_ranges_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"range|comparator"):
        parse_range(bad)
