"""Referrers without a registry: the fallback tag schema and the index merge."""

from __future__ import annotations

import json

import pytest

from regshift.digests import compute_digest
from regshift.errors import InvalidReference, ManifestError
from regshift.manifests import parse_manifest
from regshift.mediatypes import MediaType
from regshift.referrers import (
    empty_index,
    encode_index,
    fallback_tag,
    is_fallback_tag,
    merge_index_entries,
    referrer_entry,
)

SHA256 = "sha256:" + "a" * 64
SHA512 = "sha512:" + "0123456789abcdef" * 8


@pytest.mark.parametrize(
    ("digest", "tag"),
    [
        (SHA256, "sha256-" + "a" * 64),
        (compute_digest(b"{}"), "sha256-" + compute_digest(b"{}").split(":")[1]),
        # the encoded part is cut to 64 characters
        (SHA512, "sha512-" + "0123456789abcdef" * 4),
        # the algorithm is cut to 32 characters; characters a tag cannot hold become '-'
        (
            "test+algorithm+using+algorithm+separators+and+lots:ab=cd" + "e" * 80,
            "test-algorithm-using-algorithm-s-ab-cd" + "e" * 59,
        ),
        ("x.y_z:AbC", "x.y_z-AbC"),
    ],
)
def test_fallback_tag(digest: str, tag: str) -> None:
    assert fallback_tag(digest) == tag
    assert len(tag) <= 128


@pytest.mark.parametrize("digest", ["", "sha256", "sha256:", ":abc", "-bad:abc"])
def test_fallback_tag_rejects_non_digests(digest: str) -> None:
    with pytest.raises(InvalidReference):
        fallback_tag(digest)


def _entry(n: int, **extra: object) -> dict[str, object]:
    return {
        "mediaType": MediaType.OCI_MANIFEST.value,
        "digest": compute_digest(str(n).encode()),
        "size": n,
        **extra,
    }


def test_merge_appends_new_entries_after_the_existing_ones() -> None:
    current = [_entry(1), _entry(2)]
    merged = merge_index_entries(current, [_entry(3)])
    assert merged == [_entry(1), _entry(2), _entry(3)]


def test_merge_keeps_foreign_entries_exactly_even_with_unknown_fields() -> None:
    foreign = _entry(
        1,
        artifactType="application/vnd.other.tool",
        annotations={"k": "v"},
        platform={"os": "linux", "architecture": "arm64"},
        **{"x-unknown-field": [1, {"nested": True}]},
    )
    ours = _entry(2, artifactType="application/spdx+json")
    merged = merge_index_entries([foreign], [ours])
    assert merged == [foreign, ours]
    assert list(merged[0]) == list(foreign)  # key order too


def test_merge_does_not_duplicate_and_keeps_the_existing_version() -> None:
    existing = _entry(1, annotations={"written": "first"})
    again = _entry(1, annotations={"written": "second"})
    assert merge_index_entries([existing], [again]) == [existing]


def test_merge_never_touches_duplicates_others_wrote() -> None:
    current = [_entry(1), _entry(1)]
    assert merge_index_entries(current, [_entry(1)]) == current


def test_merge_deduplicates_additions_and_keeps_their_order() -> None:
    merged = merge_index_entries([_entry(5)], [_entry(3), _entry(1), _entry(3), _entry(5)])
    assert [e["size"] for e in merged] == [5, 3, 1]


def test_merge_restores_lost_entries_before_ours() -> None:
    """The read-verify-retry step: entries read earlier and ours go back after the newcomer."""
    read_before = [_entry(1)]
    ours = _entry(9)
    current_after_overwrite = [_entry(2)]
    merged = merge_index_entries(current_after_overwrite, [*read_before, ours])
    assert merged == [_entry(2), _entry(1), ours]


def test_merge_does_not_alias_inputs() -> None:
    current = [_entry(1)]
    merged = merge_index_entries(current, [])
    merged[0]["size"] = 99
    assert current[0]["size"] == 1


def test_encode_index_starts_from_an_empty_oci_index() -> None:
    raw = encode_index(empty_index(), [_entry(1)])
    manifest = parse_manifest(raw)
    assert manifest.media_type == MediaType.OCI_INDEX
    assert [d.digest for d in manifest.manifests] == [_entry(1)["digest"]]
    assert json.loads(raw)["schemaVersion"] == 2


def test_encode_index_keeps_other_top_level_fields() -> None:
    base = {"schemaVersion": 2, "annotations": {"owner": "other-tool"}, "manifests": []}
    doc = json.loads(encode_index(base, [_entry(1)]))
    assert doc["annotations"] == {"owner": "other-tool"}
    assert doc["mediaType"] == MediaType.OCI_INDEX
    assert doc["manifests"] == [_entry(1)]


def _artifact(**fields: object) -> bytes:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MediaType.OCI_MANIFEST.value,
        "config": {
            "mediaType": MediaType.OCI_EMPTY.value,
            "digest": compute_digest(b"{}"),
            "size": 2,
        },
        "layers": [],
        "subject": {"mediaType": MediaType.OCI_MANIFEST.value, "digest": SHA256, "size": 10},
        **fields,
    }
    return json.dumps(doc).encode()


def test_referrer_entry_copies_artifact_type_and_annotations() -> None:
    manifest = parse_manifest(
        _artifact(artifactType="application/spdx+json", annotations={"a": "1", "b": "2"})
    )
    assert referrer_entry(manifest) == {
        "mediaType": MediaType.OCI_MANIFEST.value,
        "digest": manifest.digest,
        "size": manifest.size,
        "artifactType": "application/spdx+json",
        "annotations": {"a": "1", "b": "2"},
    }


def test_referrer_entry_falls_back_to_the_config_media_type() -> None:
    manifest = parse_manifest(_artifact())
    entry = referrer_entry(manifest)
    assert entry["artifactType"] == MediaType.OCI_EMPTY
    assert "annotations" not in entry


def test_referrer_entry_of_an_index_without_artifact_type_has_none() -> None:
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MediaType.OCI_INDEX.value,
            "manifests": [],
            "subject": {"mediaType": MediaType.OCI_MANIFEST.value, "digest": SHA256, "size": 1},
        }
    ).encode()
    assert "artifactType" not in referrer_entry(parse_manifest(raw))


def test_referrer_entry_rejects_non_string_annotations() -> None:
    with pytest.raises(ManifestError, match="annotations"):
        referrer_entry(parse_manifest(_artifact(annotations={"n": 1})))


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (fallback_tag(SHA256), True),
        (fallback_tag(SHA512), True),  # sha512, cut to 64 hex digits
        ("sha256-" + "a" * 63, False),
        ("sha256-" + "a" * 65, False),
        ("sha256-" + "A" * 64, False),  # digests are lowercase
        (fallback_tag(SHA256) + ".sig", False),  # a cosign signature image
        ("sha384-" + "a" * 64, False),
        ("latest", False),
        ("sha256", False),
    ],
)
def test_is_fallback_tag(tag: str, expected: bool) -> None:
    assert is_fallback_tag(tag) is expected
