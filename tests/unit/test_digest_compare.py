"""Digests compared with content in their own algorithm (sha256 or sha512)."""

from __future__ import annotations

import hashlib

import pytest

from regshift.digests import matches, parse_digest, verify_bytes
from regshift.errors import DigestMismatch, InvalidReference

DATA = b'{"schemaVersion":2}'
OTHER = b'{"schemaVersion":3}'
SHA256 = f"sha256:{hashlib.sha256(DATA).hexdigest()}"
SHA512 = f"sha512:{hashlib.sha512(DATA).hexdigest()}"


@pytest.mark.parametrize(
    ("digest", "expected"),
    [
        (SHA256, True),
        (SHA512, True),
        (f"sha256:{hashlib.sha256(OTHER).hexdigest()}", False),
        (f"sha512:{hashlib.sha512(OTHER).hexdigest()}", False),
        # the right hex under the wrong algorithm name: never a match
        (f"sha512:{hashlib.sha256(DATA).hexdigest()}", False),
        (f"sha384:{hashlib.sha384(DATA).hexdigest()}", False),  # unsupported algorithm
        (SHA256.upper(), False),  # malformed: upper-case
        ("", False),
        ("nocolon", False),
    ],
)
def test_matches(digest: str, expected: bool) -> None:
    assert matches(DATA, digest) is expected


@pytest.mark.parametrize(
    ("text", "usable"),
    [
        (SHA256, True),
        (SHA512, True),
        ("md5:0123", False),
        ("sha256:NOT-HEX", False),
        (SHA256[:-1], False),
        (f"{SHA256}, {SHA256}", False),  # a joined repeated header is not one digest
    ],
)
def test_parse_digest(text: str, usable: bool) -> None:
    assert (parse_digest(text) == text) is usable
    assert (parse_digest(text) is None) is not usable


@pytest.mark.parametrize("digest", [SHA256, SHA512])
def test_verify_bytes_ok(digest: str) -> None:
    verify_bytes(DATA, digest, what="manifest x")


def test_verify_bytes_reports_the_actual_digest_in_the_same_algorithm() -> None:
    with pytest.raises(DigestMismatch) as info:
        verify_bytes(OTHER, SHA512, what="manifest x")
    assert info.value.expected == SHA512
    assert info.value.actual == f"sha512:{hashlib.sha512(OTHER).hexdigest()}"
    assert str(info.value).startswith("manifest x: digest mismatch")


def test_verify_bytes_refuses_a_malformed_digest() -> None:
    with pytest.raises(InvalidReference):
        verify_bytes(DATA, "md5:0123", what="manifest x")
