"""Scope merging/covering and the streaming digest verifier."""

from __future__ import annotations

import pytest

from regshift.auth.scopes import covers, merge_scopes
from regshift.digests import DigestVerifier, compute_digest, split_digest
from regshift.errors import DigestMismatch, InvalidReference


def test_merge_unions_actions_per_resource() -> None:
    merged = merge_scopes(["repository:a:pull"], ["repository:a:pull,push", "repository:b:pull"])
    assert merged == frozenset({"repository:a:pull,push", "repository:b:pull"})


def test_merge_ignores_junk() -> None:
    assert merge_scopes(["nocolon", ":x"]) == frozenset()


def test_covers() -> None:
    granted = frozenset({"repository:a:pull,push"})
    assert covers(granted, frozenset({"repository:a:pull"}))
    assert not covers(granted, frozenset({"repository:b:pull"}))
    assert not covers(frozenset({"repository:a:pull"}), frozenset({"repository:a:push"}))
    assert covers(frozenset({"repository:a:*"}), frozenset({"repository:a:delete"}))


def test_verifier_ok_in_chunks() -> None:
    data = b"x" * 1000
    v = DigestVerifier(compute_digest(data), len(data))
    for i in range(0, len(data), 64):
        v.update(data[i : i + 64])
    v.verify()


@pytest.mark.parametrize(
    ("data", "size", "match"),
    [
        (b"y" * 1000, 1000, "digest mismatch"),
        (b"x" * 999, 1000, "999 bytes"),
        (b"x" * 1001, 1000, "more than"),
    ],
)
def test_verifier_mismatch(data: bytes, size: int, match: str) -> None:
    v = DigestVerifier(compute_digest(b"x" * 1000), size)
    with pytest.raises(DigestMismatch, match=match):
        v.update(data)
        v.verify()


@pytest.mark.parametrize("digest", ["md5:abc", "sha256:ABC", "sha256:" + "a" * 63, "nocolon"])
def test_split_digest_invalid(digest: str) -> None:
    with pytest.raises(InvalidReference):
        split_digest(digest)
