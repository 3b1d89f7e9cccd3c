"""Semantic versions (semver 2.0.0) and version ranges, for choosing tags to mirror.

A tag is a version when it is ``[v]MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`` exactly as
semver 2.0.0 spells it: three numbers without leading zeros, pre-release identifiers
separated by dots (numeric ones without leading zeros), build metadata ignored for ordering.
``1.2`` or ``latest`` are not versions.

A range is one or more alternatives joined by ``||``; an alternative is comparators separated
by spaces, all of which must hold:

* ``>=V``, ``>V``, ``<=V``, ``<V``, ``=V`` or ``V`` alone;
* ``^V``: compatible with V (``^1.2.3`` is ``>=1.2.3 <2.0.0``; ``^0.2.3`` is ``>=0.2.3 <0.3.0``;
  ``^0.0.3`` is ``>=0.0.3 <0.0.4``);
* ``~V``: patch updates (``~1.2.3`` is ``>=1.2.3 <1.3.0``; ``~1`` is ``>=1.0.0 <2.0.0``).

In a range, V may leave out MINOR and PATCH (``>=1.2``, ``^1``, ``<2``: missing parts are 0;
``=1.2`` or ``1.2`` alone mean ``>=1.2.0 <1.3.0``). Pre-releases follow npm's rule: a version
with a pre-release (``2.0.0-rc.1``) is in a range only when a comparator of the same
alternative names a pre-release of the same MAJOR.MINOR.PATCH. So ``>=1.2.0 <2.0.0`` leaves
out ``2.0.0-rc.1``, although semver orders it below ``2.0.0``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["Range", "Version", "parse_range", "parse_version", "version_order"]

_NUM = r"0|[1-9]\d*"
_ALNUM = r"\d*[A-Za-z-][0-9A-Za-z-]*"
_IDENT = rf"(?:{_NUM}|{_ALNUM})"
_VERSION = re.compile(
    rf"^v?(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_PARTIAL = re.compile(
    rf"^v?(?P<major>{_NUM})(?:\.(?P<minor>{_NUM})(?:\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?)?)?(?:\+[0-9A-Za-z.-]+)?$"
)
_COMPARATOR = re.compile(r"^(?P<op>>=|<=|>|<|=|\^|~)?\s*(?P<version>\S+)$")


class Version(NamedTuple):
    """A parsed version; compare with :func:`version_order` (tuples do not know semver)."""

    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)


def parse_version(text: str) -> Version | None:
    """The version a tag names, or ``None`` when it is not a semver 2.0.0 version."""
    match = _VERSION.match(text)
    if match is None:
        return None
    return Version(
        int(match["major"]), int(match["minor"]), int(match["patch"]), _pre(match["pre"])
    )


def _pre(text: str | None) -> tuple[int | str, ...]:
    if not text:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


def _compare(a: Version, b: Version) -> int:
    """Semver precedence: -1, 0 or 1 (build metadata already dropped)."""
    if a.core != b.core:
        return -1 if a.core < b.core else 1
    if a.pre == b.pre:
        return 0
    if not a.pre or not b.pre:  # a release is above its pre-releases
        return 1 if not a.pre else -1
    for x, y in zip(a.pre, b.pre, strict=False):
        if x == y:
            continue
        if isinstance(x, int) and isinstance(y, int):
            return -1 if x < y else 1
        if isinstance(x, int) or isinstance(y, int):  # numeric identifiers sort first
            return -1 if isinstance(x, int) else 1
        return -1 if x < y else 1
    return -1 if len(a.pre) < len(b.pre) else 1


version_order = functools.cmp_to_key(_compare)


class _Comparator(NamedTuple):
    op: str  # one of >=, >, <=, <, =
    version: Version

    def holds(self, v: Version) -> bool:
        c = _compare(v, self.version)
        return {">=": c >= 0, ">": c > 0, "<=": c <= 0, "<": c < 0, "=": c == 0}[self.op]


class Range:
    """A parsed range: :meth:`contains` says whether a version is in it."""

    def __init__(self, text: str, alternatives: list[list[_Comparator]]) -> None:
        self.text = text
        self._alternatives = alternatives

    def contains(self, version: Version) -> bool:
        return any(_all_hold(alt, version) for alt in self._alternatives)

    def __repr__(self) -> str:
        return f"Range({self.text!r})"


def _all_hold(alternative: list[_Comparator], version: Version) -> bool:
    if not all(c.holds(version) for c in alternative):
        return False
    # npm's rule: a pre-release counts only next to a comparator naming one of its core.
    return not version.pre or any(
        c.version.pre and c.version.core == version.core for c in alternative
    )


def parse_range(text: str) -> Range:
    """Parse a range (see the module's description).

    Raises:
        ValueError: the text is not a range; the message names the part that is wrong.
    """
    alternatives = []
    for part in text.split("||"):
        words = _words(part)
        if not words:
            raise ValueError(f"empty alternative in version range {text!r}")
        alternatives.append([c for word in words for c in _expand(word)])
    return Range(text, alternatives)


def _words(part: str) -> list[str]:
    """Comparators of one alternative; ``>= 1.2`` (a space after the operator) is one."""
    words: list[str] = []
    for word in part.split():
        if words and words[-1] in (">=", "<=", ">", "<", "=", "^", "~"):
            words[-1] += word
        else:
            words.append(word)
    return words


def _expand(word: str) -> list[_Comparator]:
    match = _COMPARATOR.match(word)
    partial = _PARTIAL.match(match["version"]) if match else None
    if match is None or partial is None or match["version"].endswith(("=", "<", ">")):
        raise ValueError(f"not a version comparator: {word!r}")
    op = match["op"] or "="
    parts = [partial["major"], partial["minor"], partial["patch"]]
    given = sum(1 for p in parts if p is not None)
    major, minor, patch = (int(p or 0) for p in parts)
    low = Version(major, minor, patch, _pre(partial["pre"]))
    if op in (">=", ">", "<=", "<") and (given == 3 or op in (">=", "<")):
        return [_Comparator(op, low)]
    if op in (">", "<="):  # >1.2 is >=1.3.0; <=1.2 is <1.3.0
        return [_Comparator(">=" if op == ">" else "<", _bump(low, given))]
    upper: Callable[[], Version] = {
        "=": lambda: _bump(low, given),
        "~": lambda: _bump(low, min(given, 2)),
        "^": lambda: _caret_upper(low, given),
    }[op]
    if op == "=" and given == 3:
        return [_Comparator("=", low)]
    return [_Comparator(">=", low), _Comparator("<", upper())]


def _bump(v: Version, given: int) -> Version:
    """The first version past the ``given`` leading parts of ``v`` (1.2 -> 1.3.0)."""
    if given <= 1:
        return Version(v.major + 1, 0, 0)
    if given == 2:
        return Version(v.major, v.minor + 1, 0)
    return Version(v.major, v.minor, v.patch + 1)


def _caret_upper(v: Version, given: int) -> Version:
    """Changes that do not modify the left-most non-zero part (of those given)."""
    if v.major > 0 or given == 1:
        return _bump(v, 1)
    if v.minor > 0 or given == 2:
        return _bump(v, 2)
    return _bump(v, 3)
