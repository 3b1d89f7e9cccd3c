"""String-level credential masking (regshift.redaction) and where it is applied."""

from __future__ import annotations

import pytest

from regshift import wire
from regshift.errors import InvalidReference
from regshift.redaction import mask_userinfo, redact_secrets, redact_url_text
from regshift.reference import normalise_registry, parse_reference
from regshift.retries import translate
from regshift.transport import printable

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("header Basic ZGF2ZTpwdw== lacks access", "ZGF2ZTpwdw=="),
        ("authorization=bearer tok.en-123", "tok.en-123"),
        (f"token {JWT} expired", JWT),
        ("https://ci:hunter2@host:5000/v2/", "hunter2"),
    ],
)
def test_redact_secrets(text: str, secret: str) -> None:
    assert secret not in redact_secrets(text)
    assert secret not in printable(text)


def test_redaction_keeps_ordinary_text() -> None:
    for text in ("alpine:3@sha256:" + "0" * 64, "registry.example/a/b:v1", "manifest unknown"):
        assert redact_secrets(text) == text
    assert mask_userinfo("ci:pw@10.0.0.1:443/a") == "ci:***@10.0.0.1:443/a"


def test_redact_url_text_on_unparsable_urls() -> None:
    assert (
        redact_url_text("https://u:s3cr3t@h/v2?n=1&token=s3cr3t")
        == "https://u:***@h/v2?n=...&token=..."
    )
    assert "s3cr3t" not in redact_url_text("http://[::1/v2?token=s3cr3t")


@pytest.mark.parametrize(
    "call",
    [
        lambda: normalise_registry("https://ci:s3cr3t@127.0.0.1:5999"),
        lambda: parse_reference("https://ci:s3cr3t@127.0.0.1:5999/a/b:v1"),
        lambda: parse_reference("ci:s3cr3t@127.0.0.1:5999/a/b:v1"),
    ],
)
def test_invalid_reference_masks_password(call: object) -> None:
    with pytest.raises(InvalidReference) as info:
        call()  # type: ignore[operator]
    assert "s3cr3t" not in str(info.value)


def test_header_value_error_is_not_printed_nor_retried() -> None:
    exc = wire.LocalProtocolError("Illegal header value b'Bearer s3cr3t\\r'")
    err = translate(exc, "GET host")
    assert "s3cr3t" not in str(err) and "not valid HTTP" in str(err)
    assert not err.retryable


def test_a_mistyped_digest_keeps_its_tag_in_the_message() -> None:
    """``name:tag@digest`` is no login: masking it would hide what the user typed wrong."""
    from regshift.errors import InvalidReference
    from regshift.reference import parse_reference

    with pytest.raises(InvalidReference) as caught:
        parse_reference("ubuntu:22.04@sha256:abc")
    assert '"ubuntu:22.04@sha256:abc"' in str(caught.value)


def test_remembered_secrets_are_masked() -> None:
    from regshift.redaction import remember_secret

    remember_secret("hdr-key-0451-remembered")
    remember_secret("abc")  # too short to be a secret: ordinary text keeps it
    text = redact_secrets("api key hdr-key-0451-remembered refused; abc")
    assert text == "api key *** refused; abc"
