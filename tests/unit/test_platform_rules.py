"""Platform normalisation and matching (containerd's rules), and the no-match error."""

from __future__ import annotations

import pytest

from regshift.errors import PlatformNotFound
from regshift.manifests import Platform


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/x86-64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("Linux/AMD64", "linux/amd64"),
        ("linux/i386", "linux/386"),
        ("linux/i686", "linux/386"),
        ("linux/386", "linux/386"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm64/8", "linux/arm64"),
        ("linux/aarch64/v8", "linux/arm64"),
        ("linux/arm64/v9", "linux/arm64/v9"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/7", "linux/arm/v7"),
        ("linux/arm/6", "linux/arm/v6"),
        ("linux/arm/v5", "linux/arm/v5"),
        ("macos/arm64", "darwin/arm64"),
        ("windows/amd64", "windows/amd64"),
        ("linux/s390x", "linux/s390x"),
        ("linux/ppc64le", "linux/ppc64le"),
    ],
)
def test_normalized(given: str, normal: str) -> None:
    assert str(Platform.parse(given).normalized()) == normal


def test_normalized_keeps_os_version() -> None:
    win = Platform("windows", "x86_64", os_version="10.0.17763.1")
    assert win.normalized() == Platform("windows", "amd64", os_version="10.0.17763.1")


@pytest.mark.parametrize(
    ("entry", "wanted", "match"),
    [
        ("linux/arm64/v8", "linux/arm64", True),
        ("linux/arm64", "linux/arm64/v8", True),
        ("linux/arm64", "linux/aarch64", True),
        ("linux/amd64", "linux/x86_64", True),
        ("linux/x86_64", "linux/amd64", True),
        ("linux/arm/v7", "linux/armhf", True),
        ("linux/arm/v7", "linux/arm", True),
        ("linux/arm", "linux/arm/v7", True),  # an entry without variant is arm/v7 too
        ("linux/arm/v6", "linux/armel", True),
        ("linux/386", "linux/i386", True),
        ("linux/arm/v6", "linux/arm", False),  # arm alone means v7, as for docker
        ("linux/arm/v6", "linux/arm/v7", False),
        ("linux/amd64/v3", "linux/amd64", False),  # a variant is part of the platform
        ("linux/amd64", "linux/amd64/v3", False),
        ("linux/arm64", "linux/arm64/v9", False),
        ("linux/amd64", "windows/amd64", False),
        ("linux/amd64", "linux/arm64", False),
    ],
)
def test_matches(entry: str, wanted: str, match: bool) -> None:
    assert Platform.parse(entry).matches(Platform.parse(wanted)) is match


def test_platform_not_found_message() -> None:
    exc = PlatformNotFound("reg/app:v1", ["linux/s390x"], ["linux/amd64", "linux/arm64"])
    assert (
        str(exc)
        == "reg/app:v1: no platform matches linux/s390x (available: linux/amd64, linux/arm64)"
    )
    assert "none" in str(PlatformNotFound("reg/app:v1", ["linux/s390x"], []))
