"""Layers from paths: a directory tarred deterministically, a tar compressed, a compressed
tarball used byte for byte; digests and diff_ids checked with gzip / zstandard / hashlib
directly; bad inputs refused in one line."""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import tarfile
import tempfile
from pathlib import Path

import pytest
import zstandard

from regshift.errors import InvalidLayerSource, LayerError, RegistryError
from regshift.layerfs import NewLayer, layer_from_path
from regshift.mediatypes import MediaType


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_tree(root: Path, mtime: int = 1_700_000_000) -> Path:
    """A small tree: files with modes, a hard link, a symlink, an empty dir, a fifo."""
    (root / "bin").mkdir(parents=True)
    (root / "etc" / "empty").mkdir(parents=True)
    (root / "bin" / "app").write_bytes(b"#!/bin/sh\necho app\n")
    (root / "bin" / "app").chmod(0o4755)
    (root / "etc" / "conf").write_text("key=value\n")
    (root / "etc" / "conf").chmod(0o600)
    os.link(root / "bin" / "app", root / "bin" / "app-hard")
    (root / "etc" / "link").symlink_to("../bin/app")
    os.mkfifo(root / "etc" / "pipe")
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def layer_bytes(layer: NewLayer) -> bytes:
    return layer.path.read_bytes()


def members(layer: NewLayer) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer_bytes(layer)))) as archive:
        return archive.getmembers()


def test_directory_layer_is_a_deterministic_tar(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "app")
    with layer_from_path(tree) as layer:
        blob = layer_bytes(layer)
        assert layer.digest == sha(blob) and layer.size == len(blob)
        assert layer.diff_id == sha(gzip.decompress(blob))  # checked by gzip, not by us
        assert layer.media_type == MediaType.OCI_LAYER_GZIP
        assert layer.created_by == "regshift append dir:app"
        # gzip header: no file name flag (FNAME = 0x08), mtime 0
        assert blob[3] & 0x08 == 0 and blob[4:8] == b"\0\0\0\0"
        got = {m.name: m for m in members(layer)}
        path = layer.path
    assert not path.exists()  # the context removed the blob

    assert list(got) == [
        "bin", "bin/app", "bin/app-hard", "etc", "etc/conf", "etc/empty", "etc/link", "etc/pipe",
    ]  # fmt: skip
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "" for m in got.values())
    assert all(m.mtime == 1_700_000_000 for m in got.values())
    assert got["bin/app"].mode == 0o4755 and got["etc/conf"].mode == 0o600
    assert got["bin/app-hard"].islnk() and got["bin/app-hard"].linkname == "bin/app"
    assert got["etc/link"].issym() and got["etc/link"].linkname == "../bin/app"
    assert got["etc/pipe"].isfifo() and got["etc/empty"].isdir()


def test_same_directory_same_digest_and_epoch_clamps(tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one", mtime=1_700_000_000)
    two = make_tree(tmp_path / "two", mtime=1_700_000_000)
    later = make_tree(tmp_path / "later", mtime=1_800_000_000)
    digests = {}
    for name, tree, epoch in [
        ("one", one, None), ("two", two, None), ("later", later, None),
        ("one-clamped", one, 1_600_000_000), ("later-clamped", later, 1_600_000_000),
    ]:  # fmt: skip
        with layer_from_path(tree, source_date_epoch=epoch) as layer:
            digests[name] = layer.digest
            if epoch:
                assert {m.mtime for m in members(layer)} == {epoch}
    assert digests["one"] == digests["two"]  # another directory, same content
    assert digests["later"] != digests["one"]  # times are kept
    assert digests["one-clamped"] == digests["later-clamped"] != digests["one"]


def test_plain_tar_is_compressed_and_checked(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "app")
    tar = tmp_path / "app.tar"
    with tarfile.open(tar, "w") as archive:
        archive.add(tree, arcname=".")
    with layer_from_path(tar) as layer:
        blob = layer_bytes(layer)
        assert gzip.decompress(blob) == tar.read_bytes()
        assert layer.diff_id == sha(tar.read_bytes()) and layer.digest == sha(blob)
        assert layer.created_by == "regshift append file:app.tar"


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_compressed_tarball_is_used_byte_for_byte(tmp_path: Path, kind: str) -> None:
    tree = make_tree(tmp_path / "app")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(tree, arcname=".")
    tar = buffer.getvalue()
    if kind == "gzip":  # two gzip members: readers must go on to the second
        packed = gzip.compress(tar[:3000]) + gzip.compress(tar[3000:])
    else:
        packed = zstandard.ZstdCompressor().compress(tar)
    path = tmp_path / f"app.tar.{kind}"
    path.write_bytes(packed)
    with layer_from_path(path) as layer:
        assert layer.path == path  # nothing copied
        assert (layer.digest, layer.size, layer.diff_id) == (sha(packed), len(packed), sha(tar))
        want = MediaType.OCI_LAYER_GZIP if kind == "gzip" else MediaType.OCI_LAYER_ZSTD
        assert layer.media_type == want
    assert path.exists()  # the user's file stays


def test_empty_tar_is_a_valid_layer(tmp_path: Path) -> None:
    tar = tmp_path / "empty.tar"
    with tarfile.open(tar, "w"):
        pass
    (tmp_path / "emptydir").mkdir()
    with layer_from_path(tar) as a, layer_from_path(tmp_path / "emptydir") as b:
        assert a.diff_id == sha(tar.read_bytes())
        assert gzip.decompress(layer_bytes(b)) == b"\0" * 10240


def _corrupt_gzip(tmp_path: Path) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("file")
        info.size = 100_000
        archive.addfile(info, io.BytesIO(os.urandom(100_000)))
    packed = gzip.compress(buffer.getvalue())
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(packed[: len(packed) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "expect"),
    [
        (lambda p: p / "missing", "No such file or directory"),
        (lambda p: (p / "text.tar").write_text("hello, not a tar\n" * 100) and p / "text.tar",
         "not a valid layer tar"),
        (lambda p: (p / "z.tar.gz").write_bytes(gzip.compress(b"not a tar" * 100)) and
         p / "z.tar.gz", "not a valid layer tar"),
        (_corrupt_gzip, "not a valid layer tar"),
        (lambda p: (p / "x.tar.xz").write_bytes(lzma.compress(b"x")) and p / "x.tar.xz",
         "compressed with xz"),
        (lambda p: (p / "zero").write_bytes(b"") or p / "zero", "not a valid layer tar"),
    ],
    ids=["missing", "text", "gzip-of-text", "truncated-gzip", "xz", "empty-file"],
)  # fmt: skip
def test_bad_sources_are_one_line_errors(tmp_path: Path, make: object, expect: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(InvalidLayerSource) as info, layer_from_path(path):
        pytest.fail("no layer expected")
    message = str(info.value)
    assert expect in message and str(path) in message and "\n" not in message
    assert isinstance(info.value, ValueError | LayerError | RegistryError)
    assert not list(Path(tempfile.gettempdir()).glob("regshift-layer-*/layer.tar.gz"))


def test_cli_exit_codes_for_layer_errors(tmp_path: Path) -> None:
    """A layer path the user named is a usage error (2); a layer read from storage that is
    not a valid tar is any other error (1)."""
    from regshift.cli.exits import ExitStatus

    with pytest.raises(InvalidLayerSource) as info, layer_from_path(tmp_path / "missing"):
        pass
    assert ExitStatus.for_error(info.value) == ExitStatus.USAGE == 2
    assert ExitStatus.for_error(LayerError("layer sha256:...: not a valid layer tar")) == 1


@pytest.mark.parametrize("packed", [False, True], ids=["tar", "tar.gz"])
def test_a_tar_ending_right_after_its_last_data_is_a_layer(tmp_path: Path, packed: bool) -> None:
    """No padding and no end-of-archive blocks (``umoci insert`` 0.4 writes such layers);
    cut inside the data, it is refused."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("etc/b")
        info.size = 10
        archive.addfile(info, io.BytesIO(b"ten bytes\n"))
    tar = buffer.getvalue()[: 512 + 10]  # the header, then the data
    for data, whole in ((tar, True), (tar[:-3], False)):
        path = tmp_path / ("layer.tar.gz" if packed else "layer.tar")
        path.write_bytes(gzip.compress(data) if packed else data)
        if not whole:
            with (
                pytest.raises(InvalidLayerSource, match="not a valid layer tar"),
                layer_from_path(path),
            ):
                pass
            continue
        with layer_from_path(path) as layer:
            assert layer.diff_id == sha(data)
            assert gzip.decompress(layer_bytes(layer)) == data  # the tar as given
