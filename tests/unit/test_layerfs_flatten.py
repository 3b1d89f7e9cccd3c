"""flatten_layers on hand-made layers: whiteouts (lower layers only), opaque directories,
hard links, symlinked parents, metadata and PAX records kept, digests verified, progress."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import zstandard

from regshift.errors import DigestMismatch, LayerError
from regshift.layerfs import flatten_layers
from regshift.manifests import Descriptor
from regshift.mediatypes import MediaType
from regshift.progress import ProgressEvent, ProgressState

Entry = tuple[str, str, bytes | str]  # (name, kind, content or link target)


def tar_of(entries: list[Entry], **meta: object) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, kind, value in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname = 1000, 1, 2, "someone"
            info.mode = 0o755 if kind == "dir" else 0o644
            for key, val in meta.get(name, {}).items():  # type: ignore[attr-defined]
                setattr(info, key, val)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif kind in ("sym", "hard"):
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = str(value)
                archive.addfile(info)
            else:
                assert isinstance(value, bytes)
                info.size = len(value)
                archive.addfile(info, io.BytesIO(value))
    return buffer.getvalue()


class Store:
    """Layer blobs by digest, opened as chunks the way storage gives them."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def add(self, tar: bytes, compress: str = "gzip") -> Descriptor:
        blob = {"gzip": gzip.compress, "zstd": zstandard.ZstdCompressor().compress}.get(
            compress, lambda b: b
        )(tar)
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        self.blobs[digest] = blob
        return Descriptor(MediaType.OCI_LAYER_GZIP, digest, len(blob))

    @contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[Iterator[bytes]]:
        blob = self.blobs[desc.digest]
        yield iter([blob[i : i + 7000] for i in range(0, len(blob), 7000)])


def flat(store: Store, layers: list[Descriptor]) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    with flatten_layers(store.open_blob, layers) as layer:
        blob = layer.path.read_bytes()
        assert layer.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
        tar = gzip.decompress(blob)
        assert layer.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        out = {}
        for m in archive.getmembers():
            data = archive.extractfile(m).read() if m.isreg() else b""  # type: ignore[union-attr]
            out[m.name] = (m, data)
        return out


def test_whiteouts_and_opaque_directories() -> None:
    store = Store()
    base = store.add(tar_of([
        ("etc", "dir", b""), ("etc/keep", "file", b"keep"), ("etc/gone", "file", b"x"),
        ("opt", "dir", b""), ("opt/a", "file", b"a"), ("opt/sub", "dir", b""),
        ("opt/sub/b", "file", b"b"), ("var", "dir", b""), ("var/lib", "dir", b""),
        ("var/lib/f", "file", b"f"),
    ]))  # fmt: skip
    top = store.add(tar_of([
        ("etc/.wh.gone", "file", b""),  # a file deleted
        ("var/.wh.lib", "file", b""),  # a whole directory deleted
        ("opt", "dir", b""), ("opt/.wh..wh..opq", "file", b""), ("opt/new", "file", b"new"),
        ("etc/keep", "file", b"changed"),
    ]), compress="zstd")  # fmt: skip
    got = flat(store, [base, top])
    assert list(got) == ["etc", "etc/keep", "opt", "opt/new", "var"]
    assert got["etc/keep"][1] == b"changed" and got["opt/new"][1] == b"new"


def test_whiteouts_do_not_hide_the_same_layer() -> None:
    store = Store()
    base = store.add(tar_of([("d", "dir", b""), ("d/old", "file", b"old"), ("f", "file", b"1")]))
    # whiteout after (d) and before (f) what the same layer adds: both stay
    top = store.add(tar_of([
        ("d/mine", "file", b"mine"), ("d/.wh..wh..opq", "file", b""),
        (".wh.f", "file", b""), ("f", "file", b"2"),
    ]), compress="none")  # fmt: skip
    got = flat(store, [base, top])
    assert list(got) == ["d", "d/mine", "f"] and got["f"][1] == b"2"


def test_hard_links_keep_their_content_and_symlinked_parents_resolve() -> None:
    store = Store()
    base = store.add(tar_of([
        ("usr", "dir", b""), ("usr/lib", "dir", b""), ("lib", "sym", "usr/lib"),
        ("a", "file", b"shared"), ("b", "hard", "a"), ("c", "hard", "a"),
    ]))  # fmt: skip
    top = store.add(tar_of([
        ("lib/libx.so", "file", b"elf"),  # lands in usr/lib, through the symlink
        (".wh.a", "file", b""),  # b and c still hold the content
        ("c", "file", b"replaced"),
    ]))  # fmt: skip
    got = flat(store, [base, top])
    assert list(got) == ["b", "c", "lib", "usr", "usr/lib", "usr/lib/libx.so"]
    assert got["b"][1] == b"shared" and got["c"][1] == b"replaced"
    assert got["lib"][0].issym() and got["usr/lib/libx.so"][1] == b"elf"


def test_hard_link_groups_are_written_once() -> None:
    store = Store()
    layer = store.add(tar_of([("z", "file", b"data"), ("a", "hard", "z"), ("m", "hard", "a")]))
    got = flat(store, [layer])
    assert got["a"][0].isreg() and got["a"][1] == b"data"  # first in order carries the data
    assert got["m"][0].islnk() and got["m"][0].linkname == "a"
    assert got["z"][0].islnk() and got["z"][0].linkname == "a"


def test_metadata_and_pax_records_are_kept_names_dropped() -> None:
    store = Store()
    meta = {
        "./bin/tool": {"mode": 0o4711, "uid": 1001, "gid": 50, "mtime": 1234567.5,
                     "pax_headers": {"SCHILY.xattr.security.capability": "cap",
                                     "SCHILY.xattr.user.note": "hi", "atime": "99"}},
        "dev": {"mode": 0o700},
    }  # fmt: skip
    layer = store.add(tar_of([("./bin", "dir", b""), ("./bin/tool", "file", b"t"),
                              ("dev", "dir", b"")], **meta))  # fmt: skip
    got = flat(store, [layer])
    tool = got["bin/tool"][0]
    assert (tool.mode, tool.uid, tool.gid, tool.mtime) == (0o4711, 1001, 50, 1234567.5)
    assert tool.uname == "" and tool.gname == ""
    assert tool.pax_headers["SCHILY.xattr.security.capability"] == "cap"
    assert tool.pax_headers["SCHILY.xattr.user.note"] == "hi"
    assert "atime" not in tool.pax_headers
    assert got["dev"][0].mode == 0o700


def test_flatten_is_deterministic_whatever_the_input_order() -> None:
    store = Store()
    one = store.add(tar_of([("b", "file", b"b"), ("a", "dir", b""), ("a/x", "file", b"x")]))
    two = store.add(tar_of([("a", "dir", b""), ("a/x", "file", b"x"), ("b", "file", b"b")]))
    digests = set()
    for layers in ([one], [two], [two]):
        with flatten_layers(store.open_blob, layers) as layer:
            digests.add(layer.digest)
    assert len(digests) == 1


def test_damaged_layer_is_a_digest_mismatch_not_a_tar_error() -> None:
    store = Store()
    desc = store.add(tar_of([("a", "file", b"a" * 5000)]))
    blob = bytearray(store.blobs[desc.digest])
    blob[30] ^= 0xFF
    store.blobs[desc.digest] = bytes(blob)
    with pytest.raises(DigestMismatch), flatten_layers(store.open_blob, [desc]):
        pass


def test_not_a_tar_and_dangling_hard_link_are_layer_errors() -> None:
    store = Store()
    text = store.add(b"this is no tar at all " * 100)
    dangling = store.add(tar_of([("b", "hard", "nothing")]))
    for layers, expect in (([text], "not a valid layer tar"), ([dangling], "hard link")):
        with pytest.raises(LayerError, match=expect), flatten_layers(store.open_blob, layers):
            pass


def test_progress_reports_bytes_read_per_layer() -> None:
    store = Store()
    layers = [store.add(tar_of([(f"f{i}", "file", bytes(range(256)) * 100)])) for i in range(2)]
    events: list[ProgressEvent] = []
    with flatten_layers(store.open_blob, layers, progress=events.append):
        pass
    for desc in layers:
        mine = [e for e in events if e.digest == desc.digest]
        assert mine[0].state == ProgressState.STARTED and mine[-1].state == ProgressState.DONE
        assert mine[-1].done == mine[-1].total == desc.size
        assert any(e.state == ProgressState.PROGRESS for e in mine)


def _unpadded(tar: bytes) -> bytes:
    """``tar`` ending right after its last entry's data: no padding, no end-of-archive
    blocks (as ``umoci insert`` 0.4 writes layers; Go's archive/tar reads them)."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        last = archive.getmembers()[-1]
    return tar[: last.offset_data + last.size]


def test_a_layer_ending_right_after_its_last_data_is_whole_one_cut_in_it_is_not() -> None:
    store = Store()
    tar = _unpadded(tar_of([("etc/a", "file", b"a\n"), ("etc/b", "file", b"ten bytes\n")]))
    assert len(tar) % 512 == 10
    out = flat(store, [store.add(tar)])
    assert out["etc/a"][1] == b"a\n" and out["etc/b"][1] == b"ten bytes\n"
    cut = store.add(tar[:-3])  # three bytes of etc/b's data missing
    with (
        pytest.raises(LayerError, match="not a valid layer tar"),
        flatten_layers(store.open_blob, [cut]),
    ):
        pass
