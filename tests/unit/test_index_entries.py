"""Index entries as regshift writes and compares them (pure logic of regshift.indexes)."""

from __future__ import annotations

import json

import pytest

from regshift.indexes.entries import merge as _merge, new_item as _item, platform_key
from regshift.manifests import Descriptor, Platform, parse_manifest
from regshift.mediatypes import MediaType
from regshift.storage.fallback import encode_index

WIN = Platform("windows", "amd64", os_version="10.0.17763.1", os_features=("win32k",))


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        (Platform("linux", "amd64"), Platform("linux", "x86_64"), True),
        (Platform("linux", "arm64", "v8"), Platform("linux", "aarch64"), True),
        (Platform("linux", "arm"), Platform("linux", "arm", "v7"), True),
        (Platform("linux", "arm", "v6"), Platform("linux", "arm", "v7"), False),
        (Platform("linux", "amd64"), Platform("linux", "amd64", "v3"), False),
        # Windows images of two versions are two platforms of one index
        (WIN, Platform("windows", "amd64", os_version="10.0.20348.1"), False),
        (WIN, Platform("windows", "amd64", os_version="10.0.17763.1"), False),  # features
        (
            WIN,
            Platform("Windows", "AMD64", os_version="10.0.17763.1", os_features=("win32k",)),
            True,
        ),
    ],
)
def test_platform_key(one: Platform, other: Platform, same: bool) -> None:
    assert (platform_key(one) == platform_key(other)) is same


@pytest.mark.parametrize("platform", [None, Platform("unknown", "unknown"), Platform("", "amd64")])
def test_entries_without_a_real_platform_are_never_duplicates(platform: Platform | None) -> None:
    assert platform_key(platform) is None


def _desc(n: int, **extra: object) -> Descriptor:
    return Descriptor(MediaType.OCI_MANIFEST, f"sha256:{n:064x}", 100 + n, **extra)  # type: ignore[arg-type]


def test_entry_form_is_stable_and_spec_ordered() -> None:
    item = _item(_desc(1, annotations={"a": "b"}), WIN, "src")
    raw = encode_index({"mediaType": MediaType.OCI_INDEX}, [item.doc])
    assert raw == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":'
        b'[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'
        + b"0"
        * 63
        + b'1","size":101,"platform":{"architecture":"amd64","os":"windows",'
        b'"os.version":"10.0.17763.1","os.features":["win32k"]},"annotations":{"a":"b"}}]}'
    )
    parsed = parse_manifest(raw)  # and it reads back as written: os.features kept
    assert parsed.manifests[0].platform == WIN


def test_merge_replaces_in_place_appends_new_and_keeps_duplicates_on_request() -> None:
    amd, arm = Platform("linux", "amd64"), Platform("linux", "arm64")
    kept = [_item(_desc(1), amd, "i"), _item(_desc(2), arm, "i")]
    new_amd, s390 = (
        _item(_desc(3), Platform("linux", "x86_64"), "s"),
        _item(_desc(4), Platform("linux", "s390x"), "s"),
    )
    items, replaced = _merge(kept, [new_amd, s390], allow_duplicates=False)
    assert [i.entry.digest for i in items] == [_desc(n).digest for n in (3, 2, 4)]
    assert [(old.entry.digest, new.entry.digest) for old, new in replaced] == [
        (_desc(1).digest, _desc(3).digest)
    ]
    items, replaced = _merge(kept, [new_amd], allow_duplicates=True)
    assert [i.entry.digest for i in items] == [_desc(n).digest for n in (1, 2, 3)]
    assert replaced == []


def test_platform_parse_keeps_os_features() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": MediaType.OCI_INDEX,
        "manifests": [
            {**json.loads(json.dumps(_item(_desc(5), WIN, "x").doc))},
            {"mediaType": MediaType.OCI_MANIFEST, "digest": _desc(6).digest, "size": 1,
             "platform": {"os": "linux", "architecture": "amd64", "os.features": "bogus"}},
        ],
    }  # fmt: skip
    parsed = parse_manifest(json.dumps(doc).encode())
    assert [d.platform.os_features for d in parsed.manifests if d.platform] == [("win32k",), ()]
    assert WIN.normalized().os_features == ("win32k",)
