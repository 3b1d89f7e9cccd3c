"""OCI image layouts: references, round trips, tagging, atomic writes, broken layouts, threads."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from regshift.digests import compute_digest
from regshift.errors import DigestMismatch, InvalidReference, ManifestError, RegistryError
from regshift.layout import (
    REF_NAME_ANNOTATION,
    Layout,
    LayoutError,
    LayoutReference,
    NotFoundInLayout,
    is_layout_reference,
    parse_layout_reference,
)
from regshift.manifests import Manifest, parse_manifest
from regshift.mediatypes import MediaType
from regshift.sample import SampleImage, SampleIndex, random_image, random_index

D = "sha256:" + "a" * 64
D512 = "sha512:" + "b" * 128
MIB = 1024 * 1024


# --------------------------------------------------------------------------- helpers


def store_image(layout: Layout, image: SampleImage, tag: str | None = None) -> None:
    for blob in image.blobs:
        layout.write_blob(compute_digest(blob), len(blob), [blob])
    layout.put_manifest(image.manifest, tag)


def store_index(layout: Layout, index: SampleIndex, tag: str | None = None) -> None:
    for image in index.images:
        for blob in image.blobs:
            layout.write_blob(compute_digest(blob), len(blob), [blob])
        child = image.manifest
        layout.write_blob(child.digest, child.size, [child.raw])
    layout.put_manifest(index.manifest, tag)


def index_doc(layout: Layout) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((layout.path / "index.json").read_bytes())
    return doc


def leftovers(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.name.startswith(".regshift-tmp-")]


def assert_one_line(exc: BaseException, *needles: str) -> None:
    message = str(exc)
    assert "\n" not in message and "\r" not in message, message
    for needle in needles:
        assert needle in message, message


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "layout", create=True)


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("text", "path", "tag", "digest"),
    [
        ("oci:/tmp/x", "/tmp/x", None, None),
        ("oci:/tmp/x:v1", "/tmp/x", "v1", None),
        ("oci:relative/dir:1.0-rc_1", "relative/dir", "1.0-rc_1", None),
        ("oci:dir", "dir", None, None),
        (f"oci:/tmp/x@{D}", "/tmp/x", None, D),
        (f"oci:/tmp/x@{D512}", "/tmp/x", None, D512),
        ("oci:/tmp/a:b/c", "/tmp/a:b/c", None, None),  # the ':' belongs to the path
        ("oci:/tmp/a:b:c", "/tmp/a:b", "c", None),  # the tag follows the LAST ':'
        ("oci:/tmp/x:-v1", "/tmp/x:-v1", None, None),  # not a valid tag: part of the path
        ("oci:/srv/user@host/img", "/srv/user@host/img", None, None),  # '@' inside the path
        (f"oci:/tmp/a:b/c@{D}", "/tmp/a:b/c", None, D),
    ],
)
def test_parse_layout_reference(text: str, path: str, tag: str | None, digest: str | None) -> None:
    assert is_layout_reference(text)
    ref = parse_layout_reference(text, windows=False)
    assert ref == LayoutReference(Path(path), tag=tag, digest=digest)
    assert parse_layout_reference(str(ref), windows=False) == ref


# (text, path, tag, digest) parsed as on Windows, then as on POSIX, where a drive letter or
# a backslash is just a character of a file name (today's behaviour, kept).
_WINDOWS_REFERENCES = [
    ("oci:C:\\images\\app:1.0", "C:\\images\\app", "1.0", None),
    ("oci:C:\\images\\app", "C:\\images\\app", None, None),
    (f"oci:C:/images/app@{D}", "C:/images/app", None, D),
    (f"oci:C:\\images\\app@{D512}", "C:\\images\\app", None, D512),
    ("oci:\\\\server\\share\\app:1.0", "\\\\server\\share\\app", "1.0", None),
    ("oci:\\\\server\\share\\app", "\\\\server\\share\\app", None, None),
    ("oci:\\\\server\\share:1.0", "\\\\server\\share", "1.0", None),  # a share's root
    ("oci:\\\\?\\C:\\x:1.0", "\\\\?\\C:\\x", "1.0", None),  # extended-length path
    ("oci:.\\app", ".\\app", None, None),
    ("oci:.\\app:v2", ".\\app", "v2", None),
    ("oci:C:", "C:", None, None),  # the current directory of drive C:
    ("oci:C:1.0", "C:1.0", None, None),  # drive-relative directory "1.0", not tag "1.0"
    ("oci:.\\C:1.0", ".\\C", "1.0", None),  # ... and how to write tag "1.0" of "C"
    ("oci:c:\\a b\\x:latest", "c:\\a b\\x", "latest", None),
    ("oci:C:\\Users\\me@corp\\img", "C:\\Users\\me@corp\\img", None, None),
    ("oci:C:\\img:1.0\\sub", "C:\\img:1.0\\sub", None, None),  # ':' before a separator
]
_AS_ON_POSIX = {"oci:C:1.0": ("C", "1.0")}  # where the POSIX reading differs (path, tag)


@pytest.mark.parametrize(("text", "path", "tag", "digest"), _WINDOWS_REFERENCES)
def test_parse_layout_reference_windows(
    text: str, path: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_layout_reference(text, windows=True)
    assert (str(ref.path), ref.tag, ref.digest) == (str(Path(path)), tag, digest)
    assert parse_layout_reference(str(ref), windows=True) == ref


@pytest.mark.parametrize(("text", "path", "tag", "digest"), _WINDOWS_REFERENCES)
def test_windows_references_on_posix(
    text: str, path: str, tag: str | None, digest: str | None
) -> None:
    """On POSIX ':' splits as before: the Windows forms mean something else, or are refused."""
    if text == "oci:C:" or text.startswith("oci:C:\\Users\\me@"):
        with pytest.raises(InvalidReference):  # empty tag; "corp\\img" is no digest
            parse_layout_reference(text, windows=False)
        return
    ref = parse_layout_reference(text, windows=False)
    expected_path, expected_tag = _AS_ON_POSIX.get(text, (path, tag))
    assert (ref.path, ref.tag, ref.digest) == (Path(expected_path), expected_tag, digest)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("oci:C:\\images\\app:-v1", "invalid tag"),  # POSIX: the path "C:\\images\\app:-v1"
        ("oci:C:\\images\\app:", "empty tag"),
        (f"oci:C:\\x:v1@{D}", "not both"),
        ("oci:C:\\x@sha256:abc", "digest"),
    ],
)
def test_parse_layout_reference_windows_invalid(text: str, needle: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_layout_reference(text, windows=True)
    assert_one_line(info.value, "invalid layout reference")
    assert needle in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "docker.io/library/alpine",
        "OCI:/tmp/x",
        "oci:",
        "oci::v1",
        "oci:/tmp/x:",
        "oci:/tmp/x@",
        "oci:/tmp/x@sha256:abc",
        f"oci:/tmp/x@md5:{'a' * 32}",
        f"oci:/tmp/x:v1@{D}",
        f"oci:@{D}",
        "oci:/tmp/\nx@bad",
    ],
)
def test_parse_layout_reference_invalid(text: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_layout_reference(text, windows=False)
    assert_one_line(info.value, "invalid layout reference")
    if "\n" not in text:
        assert text in str(info.value)


def test_is_layout_reference() -> None:
    assert is_layout_reference("oci:x")
    assert not is_layout_reference("docker.io/x:oci")
    assert not is_layout_reference("localhost:5000/oci")


def test_layout_reference_str_and_validation() -> None:
    assert str(LayoutReference(Path("/p"))) == "oci:/p"
    assert str(LayoutReference(Path("/p"), tag="v1")) == "oci:/p:v1"
    assert str(LayoutReference(Path("/p"), digest=D)) == f"oci:/p@{D}"
    assert LayoutReference(Path("/p"), tag="v1").identifier == "v1"
    with pytest.raises(InvalidReference):
        LayoutReference(Path("/p"), tag="bad tag")
    with pytest.raises(InvalidReference):
        LayoutReference(Path("/p"), digest="sha256:short")
    with pytest.raises(InvalidReference):
        LayoutReference(Path("/p"), tag="v1", digest=D)


@given(
    tag=st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True),
    path=st.sampled_from(["/tmp/x", "rel", "/a:b/c", "/with space/x"]),
)
def test_reference_roundtrip_property(tag: str, path: str) -> None:
    ref = LayoutReference(Path(path), tag=tag)
    assert parse_layout_reference(str(ref), windows=False) == ref


# --------------------------------------------------------------------------- create / open


def test_create_makes_an_empty_layout(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "a" / "b", create=True)
    assert json.loads((layout.path / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    doc = index_doc(layout)
    assert doc["schemaVersion"] == 2 and doc["manifests"] == []
    assert (layout.path / "blobs").is_dir()
    assert layout.tags() == []
    assert Layout(layout.path).tags() == []


def test_create_keeps_an_existing_layout(layout: Layout) -> None:
    store_image(layout, random_image(seed=1), "v1")
    assert Layout(layout.path, create=True).tags() == ["v1"]


def test_open_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(LayoutError) as info:
        Layout(tmp_path / "nope")
    assert_one_line(info.value, str(tmp_path / "nope"))


# --------------------------------------------------------------------------- round trips


def test_image_roundtrip(layout: Layout) -> None:
    image = random_image(seed=1)
    store_image(layout, image, "v1")
    m = image.manifest
    got = layout.get_manifest("v1")
    assert got.raw == m.raw and got.digest == m.digest and got.media_type == m.media_type
    assert layout.get_manifest(m.digest).raw == m.raw
    desc = layout.resolve("v1")
    assert (desc.media_type, desc.digest, desc.size) == (m.media_type, m.digest, m.size)
    assert desc.annotations == {REF_NAME_ANNOTATION: "v1"}
    assert layout.head_manifest(m.digest) == desc
    assert (layout.path / "blobs" / "sha256" / m.digest.removeprefix("sha256:")).read_bytes() == (
        m.raw
    )
    for blob in image.blobs:
        digest = compute_digest(blob)
        assert layout.has_blob(digest) and layout.has_blob(digest, len(blob))
        assert not layout.has_blob(digest, len(blob) + 1)
        with layout.open_blob(digest) as chunks:
            assert b"".join(chunks) == blob
    assert layout.verify() == []
    assert leftovers(layout.path) == []


def test_index_roundtrip(layout: Layout) -> None:
    index = random_index(seed=2)
    store_index(layout, index, "v1")
    assert layout.get_manifest("v1").raw == index.manifest.raw
    assert len(index_doc(layout)["manifests"]) == 1  # children are blobs, not entries
    for image in index.images:
        child = image.manifest
        desc = layout.resolve(child.digest)  # found in blobs/, media type read from the blob
        assert (desc.media_type, desc.size) == (MediaType.OCI_MANIFEST, child.size)
        assert layout.get_manifest(child.digest).raw == child.raw
    assert layout.verify() == []


def test_docker_media_types_roundtrip(layout: Layout) -> None:
    index = random_index(seed=3, docker=True)
    store_index(layout, index, "list")
    got = layout.get_manifest("list")
    assert got.media_type == MediaType.DOCKER_MANIFEST_LIST and got.raw == index.manifest.raw
    assert layout.resolve(index.images[0].manifest.digest).media_type == MediaType.DOCKER_MANIFEST
    assert layout.verify() == []


def test_manifest_without_media_type_field(layout: Layout) -> None:
    image = random_image(seed=4)
    doc = json.loads(image.manifest.raw)
    del doc["mediaType"]
    raw = json.dumps(doc).encode()
    manifest = parse_manifest(raw, MediaType.OCI_MANIFEST)
    store_image(layout, SampleImage(manifest, image.blobs), "bare")
    assert layout.get_manifest("bare").media_type == MediaType.OCI_MANIFEST
    layout.delete_tag("bare")
    assert layout.resolve(manifest.digest).media_type == MediaType.OCI_MANIFEST  # guessed
    assert layout.get_manifest(manifest.digest).raw == raw


def test_open_blob_streams_1mib_chunks(layout: Layout) -> None:
    blob = os.urandom(2 * MIB + 5)
    digest = compute_digest(blob)
    layout.write_blob(digest, None, [blob[:10], blob[10:]])
    with layout.open_blob(digest) as chunks:
        sizes = [len(c) for c in chunks]
    assert sizes == [MIB, MIB, 5]


def test_sha512_blob(layout: Layout) -> None:
    blob = b"hello sha512"
    digest = "sha512:" + hashlib.sha512(blob).hexdigest()
    layout.write_blob(digest, len(blob), [blob])
    assert (layout.path / "blobs" / "sha512").is_dir()
    with layout.open_blob(digest) as chunks:
        assert b"".join(chunks) == blob


def test_existing_blob_consumes_nothing(layout: Layout) -> None:
    blob = b"already here"
    digest = compute_digest(blob)
    layout.write_blob(digest, len(blob), [blob])

    def exploding() -> Iterator[bytes]:
        raise AssertionError("chunks consumed")
        yield b""  # pragma: no cover

    layout.write_blob(digest, len(blob), exploding())
    layout.write_blob(digest, None, exploding())


# --------------------------------------------------------------------------- tags


def test_tags_retag_and_untagged(layout: Layout) -> None:
    a, b = random_image(seed=10), random_image(seed=11)
    store_image(layout, a, "v1")
    store_image(layout, a, "latest")
    store_image(layout, b, "v2")
    assert layout.tags() == ["v1", "latest", "v2"]
    layout.put_manifest(b.manifest, "latest")  # retag: same position, new target
    assert layout.tags() == ["v1", "latest", "v2"]
    assert layout.resolve("latest").digest == b.manifest.digest
    assert layout.resolve("v1").digest == a.manifest.digest

    layout.put_manifest(a.manifest)  # already has an entry: nothing added
    assert len(index_doc(layout)["manifests"]) == 3
    c = random_image(seed=12)
    store_image(layout, c)  # untagged entry
    store_image(layout, c)
    entries = index_doc(layout)["manifests"]
    assert len(entries) == 4
    assert entries[-1] == {
        "mediaType": MediaType.OCI_MANIFEST,
        "digest": c.manifest.digest,
        "size": c.manifest.size,
    }
    assert layout.tags() == ["v1", "latest", "v2"]
    assert layout.get_manifest(c.manifest.digest).raw == c.manifest.raw


def test_tagging_keeps_everything_else(layout: Layout) -> None:
    a, b = random_image(seed=20), random_image(seed=21)
    store_image(layout, a)
    store_image(layout, b)
    doc = index_doc(layout)
    foreign_entry = {
        "mediaType": MediaType.OCI_MANIFEST,
        "digest": a.manifest.digest,
        "size": a.manifest.size,
        "annotations": {REF_NAME_ANNOTATION: "other", "org.example.note": "keep me"},
        "platform": {"os": "linux", "architecture": "amd64"},
        "x-unknown": [1, 2.5, None],
    }
    doc["manifests"] = [foreign_entry]
    doc["annotations"] = {"org.example.layout": "mine"}
    doc["x-top"] = {"nested": True}
    (layout.path / "index.json").write_text(json.dumps(doc, indent=4))

    layout.put_manifest(b.manifest, "v1")
    layout.put_manifest(a.manifest, "v1")  # retag
    new = index_doc(layout)
    assert new["manifests"][0] == foreign_entry
    assert new["annotations"] == {"org.example.layout": "mine"}
    assert new["x-top"] == {"nested": True}
    assert new["manifests"][1]["digest"] == a.manifest.digest
    assert layout.tags() == ["other", "v1"]

    before = (layout.path / "index.json").read_bytes()
    layout.put_manifest(a.manifest, "other")  # already so: the entry stays as it is
    assert (layout.path / "index.json").read_bytes() == before


def test_duplicate_tag_entries_collapse(layout: Layout) -> None:
    a, b = random_image(seed=30), random_image(seed=31)
    store_image(layout, a)
    store_image(layout, b)
    doc = index_doc(layout)
    dup = [
        {**e, "annotations": {REF_NAME_ANNOTATION: "x"}}
        for e in (doc["manifests"][0], doc["manifests"][1])
    ]
    doc["manifests"] = dup
    (layout.path / "index.json").write_text(json.dumps(doc))
    assert layout.tags() == ["x"]
    assert layout.resolve("x").digest == a.manifest.digest  # the first entry wins
    layout.put_manifest(b.manifest, "x")
    assert [e["digest"] for e in index_doc(layout)["manifests"]] == [b.manifest.digest]


def test_delete_tag(layout: Layout) -> None:
    image = random_image(seed=40)
    store_image(layout, image, "v1")
    store_image(layout, image, "v2")
    assert layout.delete_tag("v1") is True
    assert layout.delete_tag("v1") is False
    assert layout.tags() == ["v2"]
    assert layout.has_blob(image.manifest.digest)  # blobs are not garbage-collected
    assert layout.head_manifest("v1") is None


def test_invalid_tag_is_refused(layout: Layout) -> None:
    with pytest.raises(InvalidReference):
        layout.put_manifest(random_image(seed=41).manifest, "bad tag")
    assert layout.tags() == []


def test_head_manifest_missing(layout: Layout) -> None:
    assert layout.head_manifest("nope") is None
    assert layout.head_manifest(D) is None
    with pytest.raises(InvalidReference):
        layout.head_manifest("sha256:zz")


# --------------------------------------------------------------------------- atomicity


def test_failed_index_write_leaves_old_index(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = random_image(seed=50)
    store_image(layout, image, "v1")
    before = (layout.path / "index.json").read_bytes()

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(LayoutError) as info:
        layout.put_manifest(image.manifest, "v2")
    assert_one_line(info.value, str(layout.path / "index.json"), "No space left")
    with pytest.raises(LayoutError):
        layout.delete_tag("v1")
    monkeypatch.undo()
    assert (layout.path / "index.json").read_bytes() == before
    assert leftovers(layout.path) == []
    assert layout.tags() == ["v1"]


def test_index_is_replaced_not_rewritten(layout: Layout) -> None:
    store_image(layout, random_image(seed=51), "v1")
    inode = (layout.path / "index.json").stat().st_ino
    layout.put_manifest(random_image(seed=51).manifest, "v2")
    assert (layout.path / "index.json").stat().st_ino != inode


def test_failed_blob_write_leaves_nothing(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = b"x" * 100
    digest = compute_digest(blob)

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(LayoutError):
        layout.write_blob(digest, len(blob), [blob])
    monkeypatch.undo()
    assert not layout.has_blob(digest)
    assert leftovers(layout.path) == []


@pytest.mark.parametrize(
    ("size", "chunks"),
    [
        (None, [b"wrong"]),  # digest mismatch
        (3, [b"ab", b"cd"]),  # more bytes than announced: fails early
        (10, [b"abcd"]),  # fewer bytes than announced
    ],
)
def test_write_blob_mismatch(layout: Layout, size: int | None, chunks: list[bytes]) -> None:
    digest = compute_digest(b"abcd")
    with pytest.raises(DigestMismatch) as info:
        layout.write_blob(digest, size, chunks)
    assert_one_line(info.value, digest)
    assert not layout.has_blob(digest)
    assert leftovers(layout.path) == []


def test_write_blob_source_fails_midway(layout: Layout) -> None:
    def source() -> Iterator[bytes]:
        yield b"abc"
        raise ConnectionError("source went away")

    digest = compute_digest(b"abcdef")
    with pytest.raises(ConnectionError):
        layout.write_blob(digest, 6, source())
    assert not layout.has_blob(digest)
    assert leftovers(layout.path) == []


# --------------------------------------------------------------------------- broken layouts


def test_missing_oci_layout(layout: Layout) -> None:
    (layout.path / "oci-layout").unlink()
    with pytest.raises(LayoutError) as info:
        Layout(layout.path)
    assert_one_line(info.value, str(layout.path / "oci-layout"), "missing")
    with pytest.raises(LayoutError):
        layout.verify()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b"{}", "imageLayoutVersion"),
        (b'{"imageLayoutVersion": "2.0.0"}', "unsupported imageLayoutVersion"),
    ],
)
def test_invalid_oci_layout(layout: Layout, content: bytes, needle: str) -> None:
    (layout.path / "oci-layout").write_bytes(content)
    with pytest.raises(LayoutError) as info:
        Layout(layout.path)
    assert_one_line(info.value, str(layout.path / "oci-layout"), needle)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "missing"),
        (b'{"schemaVersion": 2, "manifests": [', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'[{"manifests": []}]', "not a JSON object"),
        (b'{"schemaVersion": 2}', '"manifests" is not a list'),
        (b'{"manifests": {"a": 1}}', '"manifests" is not a list'),
        (b'{"manifests": ["x"]}', "manifests[0] is not an object"),
        (b'{"manifests": [{"mediaType": "m", "size": 1}]}', "manifests[0] has no digest"),
        (
            b'{"manifests": [{"digest": "sha256:../../../etc/passwd", "size": 1}]}',
            "invalid digest",
        ),
        (json.dumps({"manifests": [{"digest": D}]}).encode(), "no valid size"),
        (json.dumps({"manifests": [{"digest": D, "size": -1}]}).encode(), "no valid size"),
        (json.dumps({"manifests": [{"digest": D, "size": True}]}).encode(), "no valid size"),
    ],
)
def test_invalid_index_json(layout: Layout, content: bytes | None, needle: str) -> None:
    index = layout.path / "index.json"
    if content is None:
        index.unlink()
    else:
        index.write_bytes(content)
    with pytest.raises(LayoutError) as info:
        Layout(layout.path)
    assert_one_line(info.value, str(index), needle)
    with pytest.raises(LayoutError):  # an already open layout notices too
        layout.tags()


def test_tag_not_found(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "p", create=True)
    with pytest.raises(NotFoundInLayout) as info:
        layout.get_manifest("x")
    assert str(info.value) == f'tag "x" not found in oci:{layout.path} (no tags)'
    store_image(layout, random_image(seed=60), "a")
    store_image(layout, random_image(seed=61), "b")
    with pytest.raises(NotFoundInLayout) as info:
        layout.resolve("x")
    assert str(info.value) == f'tag "x" not found in oci:{layout.path} (tags: a, b)'
    assert isinstance(info.value, LayoutError) and isinstance(info.value, RegistryError)


def test_missing_blob(layout: Layout) -> None:
    image = random_image(seed=62)
    store_image(layout, image, "v1")
    manifest_path = layout.blob_path(image.manifest.digest)
    layer = image.manifest.layers[0]
    layout.blob_path(layer.digest).unlink()
    problems = layout.verify()
    assert len(problems) == 1
    assert str(layout.blob_path(layer.digest)) in problems[0] and "missing" in problems[0]
    with pytest.raises(NotFoundInLayout) as info, layout.open_blob(layer.digest):
        pass  # pragma: no cover
    assert_one_line(info.value, layer.digest, str(layout.path))

    manifest_path.unlink()
    with pytest.raises(NotFoundInLayout) as info:
        layout.get_manifest("v1")
    assert_one_line(info.value, image.manifest.digest, str(manifest_path))
    assert layout.verify() == [
        f"{manifest_path}: missing blob {image.manifest.digest} ({MediaType.OCI_MANIFEST})"
    ]


def test_corrupted_manifest_blob(layout: Layout) -> None:
    image = random_image(seed=63)
    store_image(layout, image, "v1")
    path = layout.blob_path(image.manifest.digest)
    path.write_bytes(image.manifest.raw.replace(b'"schemaVersion"', b'"schemaVersioN"'))
    with pytest.raises(DigestMismatch) as info:
        layout.get_manifest("v1")
    assert_one_line(info.value, str(path), image.manifest.digest)
    with pytest.raises(DigestMismatch):
        layout.get_manifest(image.manifest.digest)
    problems = layout.verify()
    assert len(problems) == 1 and "digest mismatch" in problems[0]


def test_truncated_or_padded_manifest_blob(layout: Layout) -> None:
    image = random_image(seed=64)
    store_image(layout, image, "v1")
    doc = index_doc(layout)
    doc["manifests"][0]["size"] += 1  # the entry claims another size
    (layout.path / "index.json").write_text(json.dumps(doc))
    with pytest.raises(DigestMismatch) as info:
        layout.get_manifest("v1")
    assert_one_line(info.value, str(image.manifest.size + 1))


def test_corrupted_layer_blob(layout: Layout) -> None:
    image = random_image(seed=65)
    store_image(layout, image, "v1")
    layer = image.manifest.layers[1]
    path = layout.blob_path(layer.digest)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = layout.verify()
    assert len(problems) == 1
    assert str(path) in problems[0] and layer.digest in problems[0]
    assert "\n" not in problems[0]
    with pytest.raises(DigestMismatch), layout.open_blob(layer.digest) as chunks:
        b"".join(chunks)
    layout.get_manifest("v1")  # the manifest itself is fine


def test_tag_pointing_at_a_layer(layout: Layout) -> None:
    image = random_image(seed=66)
    store_image(layout, image)
    layer = image.manifest.layers[0]
    doc = index_doc(layout)
    doc["manifests"] = [
        {
            "mediaType": MediaType.OCI_MANIFEST,
            "digest": layer.digest,
            "size": layer.size,
            "annotations": {REF_NAME_ANNOTATION: "oops"},
        }
    ]
    (layout.path / "index.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError) as info:
        layout.get_manifest("oops")
    assert_one_line(info.value, str(layout.blob_path(layer.digest)))
    assert len(layout.verify()) == 1


@pytest.mark.parametrize("digest", ["sha256:../../../etc/passwd", "sha256:" + "A" * 64, "md5:00"])
def test_path_traversal_is_refused(layout: Layout, digest: str) -> None:
    with pytest.raises(InvalidReference):
        layout.has_blob(digest)
    with pytest.raises(InvalidReference):
        layout.write_blob(digest, None, [b"x"])
    with pytest.raises(InvalidReference), layout.open_blob(digest):
        pass  # pragma: no cover
    assert leftovers(layout.path) == []


def test_missing_foreign_layer_is_not_a_problem(layout: Layout) -> None:
    config = b"{}"
    layout.write_blob(compute_digest(config), len(config), [config])
    doc = {
        "schemaVersion": 2,
        "mediaType": MediaType.OCI_MANIFEST,
        "config": {
            "mediaType": MediaType.OCI_CONFIG,
            "digest": compute_digest(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": MediaType.OCI_LAYER_GZIP,
                "digest": D,
                "size": 10,
                "urls": ["https://example.com/layer"],
            },
            {"mediaType": MediaType.DOCKER_FOREIGN_LAYER, "digest": D512, "size": 10},
        ],
    }
    manifest = parse_manifest(json.dumps(doc).encode())
    layout.put_manifest(manifest, "foreign")
    assert layout.verify() == []


# --------------------------------------------------------------------------- threads


def test_concurrent_blob_writes(layout: Layout) -> None:
    same = os.urandom(3 * MIB)
    different = [os.urandom(64 * 1024 + i) for i in range(8)]
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        chunks = [same[j : j + 100_000] for j in range(0, len(same), 100_000)]
        layout.write_blob(compute_digest(same), len(same), chunks)
        layout.write_blob(compute_digest(different[i]), None, [different[i]])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(8)))
    for blob in [same, *different]:
        with layout.open_blob(compute_digest(blob)) as chunks:
            assert b"".join(chunks) == blob
    assert leftovers(layout.path) == []


def test_concurrent_tagging(layout: Layout) -> None:
    images = [random_image(seed=70 + i) for i in range(8)]
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        store_image(layout, images[i], f"t{i}")
        store_image(layout, images[i])  # untagged: no second entry for the same digest
        layout.put_manifest(images[i].manifest, "shared")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(8)))
    assert sorted(layout.tags()) == sorted([f"t{i}" for i in range(8)] + ["shared"])
    assert len(index_doc(layout)["manifests"]) == 9
    assert layout.verify() == []


def test_concurrent_tagging_through_two_layout_objects(layout: Layout) -> None:
    images = [random_image(seed=90 + i) for i in range(8)]
    layouts = [layout, Layout(layout.path)]  # one lock per directory, not per object
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        store_image(layouts[i % 2], images[i], f"t{i}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(8)))
    assert sorted(layout.tags()) == [f"t{i}" for i in range(8)]


def test_manifest_type_is_a_manifest(layout: Layout) -> None:
    # get_manifest returns the typed view, with the bytes untouched
    index = random_index(seed=80, platforms=("linux/amd64", "linux/arm/v7", "windows/amd64"))
    store_index(layout, index, "multi")
    got: Manifest = layout.get_manifest("multi")
    assert got.is_index and [str(d.platform) for d in got.manifests] == [
        "linux/amd64",
        "linux/arm/v7",
        "windows/amd64",
    ]


def test_index_json_entries_keep_os_features(tmp_path: Path) -> None:
    """An index.json entry's platform is read as a manifest's descriptor is: ``os.features``
    included (the layout reader had its own copy of the parser, which dropped them)."""
    layout = Layout(tmp_path / "lay", create=True)
    config = b"{}"
    layout.write_blob(compute_digest(config), len(config), [config])
    manifest = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": compute_digest(config),
                    "size": len(config),
                },
                "layers": [],
            }
        ).encode()
    )
    layout.put_manifest(manifest, "win")
    index_path = layout.path / "index.json"
    doc = json.loads(index_path.read_text())
    doc["manifests"][0]["platform"] = {
        "os": "windows",
        "architecture": "amd64",
        "os.version": "10.0.20348.2227",
        "os.features": ["win32k"],
    }
    index_path.write_text(json.dumps(doc))
    platform = layout.resolve("win").platform
    assert platform is not None
    assert (platform.os, platform.os_version, platform.os_features) == (
        "windows",
        "10.0.20348.2227",
        ("win32k",),
    )
