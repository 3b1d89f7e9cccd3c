"""Scheme policy, Retry-After parsing, redaction, registry text made printable."""

from __future__ import annotations

import email.utils
import time

import pytest

from regshift.retries import retry_after_seconds
from regshift.transport import (
    TransportOptions,
    allows_plain_http,
    candidate_schemes,
    printable,
    redact_url,
)

INSECURE = TransportOptions(insecure=frozenset({"registry.internal:5000"}))


@pytest.mark.parametrize(
    ("registry", "schemes"),
    [
        ("ghcr.io", ("https",)),
        ("registry.example.com:5000", ("https",)),
        ("10.0.0.5:5000", ("https",)),  # private, but not loopback: never plain HTTP by default
        ("registry.internal:5000", ("https", "http")),  # named --insecure
        ("localhost:5000", ("http", "https")),
        ("127.0.0.1:5000", ("http", "https")),
        ("127.1.2.3", ("http", "https")),
        ("[::1]:5000", ("http", "https")),
    ],
)
def test_scheme_policy(registry: str, schemes: tuple[str, ...]) -> None:
    assert candidate_schemes(registry, INSECURE) == schemes
    assert allows_plain_http(registry, INSECURE) == ("http" in schemes)


def test_retry_after_both_forms() -> None:
    assert retry_after_seconds("7") == 7.0
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (retry_after_seconds(date) or 0) <= 31
    assert retry_after_seconds(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_redact_url() -> None:
    url = "https://user:pw@reg/v2/a/blobs/uploads/u?_state=SECRET&digest=sha256:1"
    assert redact_url(url) == "https://reg/v2/a/blobs/uploads/u?_state=...&digest=..."


def test_printable() -> None:
    assert printable("ok\x1b[2J\x07\x9b") == "ok\\x1b[2J\\x07\\x9b"
    assert len(printable("x" * 1000)) == 200
