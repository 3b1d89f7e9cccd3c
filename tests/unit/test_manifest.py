"""Manifest parsing keeps bytes verbatim and refuses what it cannot handle."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, strategies as st

from regshift.digests import compute_digest
from regshift.errors import ManifestError, UnsupportedMediaType
from regshift.manifests import MAX_MANIFEST_BYTES, Platform, parse_manifest
from regshift.mediatypes import MediaType
from regshift.sample import random_image, random_index

D = "sha256:" + "a" * 64


def test_image_roundtrip_is_verbatim() -> None:
    image = random_image(seed=1, pretty=True)
    parsed = parse_manifest(image.manifest.raw)
    assert parsed.raw == image.manifest.raw
    assert parsed.digest == compute_digest(image.manifest.raw)
    assert parsed.raw.endswith(b"}\n")
    assert parsed.config is not None
    assert len(parsed.layers) == 2
    assert parsed.blobs()[0] == parsed.config


def test_index_platforms() -> None:
    index = random_index(seed=2, platforms=("linux/amd64", "linux/arm/v7"))
    parsed = parse_manifest(index.manifest.raw)
    assert parsed.is_index
    assert [str(d.platform) for d in parsed.manifests] == ["linux/amd64", "linux/arm/v7"]


def test_docker_compact() -> None:
    image = random_image(seed=3, docker=True)
    assert image.manifest.media_type == MediaType.DOCKER_MANIFEST
    assert b"\n" not in image.manifest.raw
    assert b" " not in image.manifest.raw


def test_media_type_from_content_type() -> None:
    doc = {"schemaVersion": 2, "config": {"mediaType": "x", "digest": D, "size": 1}, "layers": []}
    parsed = parse_manifest(json.dumps(doc).encode(), MediaType.OCI_MANIFEST + "; charset=utf-8")
    assert parsed.media_type == MediaType.OCI_MANIFEST


@pytest.mark.parametrize(
    ("raw", "error", "match"),
    [
        (b"not json", ManifestError, "not valid JSON"),
        (b"[]", ManifestError, "not a JSON object"),
        (b'{"schemaVersion":1,"fsLayers":[]}', UnsupportedMediaType, "schema 1"),
        (b'{"mediaType":"text/plain"}', UnsupportedMediaType, "unsupported manifest media type"),
        (b'{"mediaType":"application/vnd.oci.image.manifest.v1+json"}', ManifestError, "no config"),
        (
            b'{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"sha256:1",'
            b'"size":1,"mediaType":"x"}]}',
            ManifestError,
            "invalid digest",
        ),
        (
            b'{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"'
            + D.encode()
            + b'","size":-1,"mediaType":"x"}]}',
            ManifestError,
            "invalid size",
        ),
        (
            b'{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":{}}',
            ManifestError,
            "list",
        ),
        (b"[" * 100_000 + b"]" * 100_000, ManifestError, "not valid JSON"),
    ],
)
def test_refused(raw: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_manifest(raw)


def test_too_large() -> None:
    with pytest.raises(ManifestError, match="limit"):
        parse_manifest(b" " * (MAX_MANIFEST_BYTES + 1))


@pytest.mark.parametrize(
    ("text", "expected"), [("linux/amd64", "linux/amd64"), ("linux/arm/v7", "linux/arm/v7")]
)
def test_platform_parse(text: str, expected: str) -> None:
    assert str(Platform.parse(text)) == expected


@pytest.mark.parametrize("text", ["linux", "linux/", "a/b/c/d", "/amd64"])
def test_platform_parse_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="invalid platform"):
        Platform.parse(text)


def test_platform_matches() -> None:
    assert Platform("linux", "arm", "v7").matches(Platform("linux", "arm"))
    assert not Platform("linux", "arm", "v6").matches(Platform("linux", "arm", "v7"))


@given(st.binary(max_size=500))
def test_parser_total(raw: bytes) -> None:
    with contextlib.suppress(ManifestError):
        parse_manifest(raw)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_DESCRIPTOR = st.fixed_dictionaries(
    {
        "mediaType": st.sampled_from([MediaType.OCI_LAYER_GZIP, "x", ""]) | _JSON,
        "digest": st.sampled_from([D, "sha256:1", "md5:" + "a" * 32]) | _JSON,
        "size": st.integers(-5, 10**12) | _JSON,
    },
    optional={"platform": _JSON, "urls": _JSON, "annotations": _JSON},
)


@given(
    st.fixed_dictionaries(
        {"schemaVersion": st.sampled_from([2, 1]) | _JSON},
        optional={
            "mediaType": st.sampled_from([MediaType.OCI_MANIFEST, MediaType.OCI_INDEX, "text/x"])
            | _JSON,
            "config": _DESCRIPTOR | _JSON,
            "layers": st.lists(_DESCRIPTOR | _JSON, max_size=3) | _JSON,
            "manifests": st.lists(_DESCRIPTOR | _JSON, max_size=3) | _JSON,
            "subject": _DESCRIPTOR | _JSON,
        },
    )
)
def test_structured_manifests_only_raise_our_errors(doc: dict[str, object]) -> None:
    """Manifest-shaped JSON with wrong types anywhere: parsed, or refused with ManifestError."""
    raw = json.dumps(doc).encode()
    try:
        parsed = parse_manifest(raw)
    except ManifestError:
        return
    assert parsed.raw == raw
