"""Layers made by regshift, read back by umoci (a tool nobody here wrote).

Images are built with umoci (a base; a child changing a file, deleting a file and a
directory: umoci writes the whiteouts), plus one hand-made layer with an opaque directory.
``flatten_layers`` of that image, put into the layout as a one-layer image and unpacked
by umoci, gives the same file tree (names, types, contents, modes, link targets, times of
non-directories, hard-link groups) as umoci's unpack of the original. umoci checks each
layer's ``diff_id`` against the config as it unpacks. ``layer_from_path`` layers on top of
the base unpack to the files they hold.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from regshift.digests import compute_digest
from regshift.layerfs import NewLayer, flatten_layers, layer_from_path
from regshift.layout import Layout
from regshift.manifests import Descriptor, parse_manifest
from regshift.mediatypes import MediaType
from regshift.progress import ProgressEvent, ProgressState
from regshift.storage import open_repository

from harness.registry import RegistryServer
from support import client_for, run_cli


def umoci(*args: str | Path) -> str:
    exe = shutil.which("umoci")
    if exe is None:
        pytest.fail("umoci not found on PATH; install with: apt-get install -y umoci")
    proc = subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode:
        pytest.fail(f"umoci {' '.join(map(str, args))}: {proc.stderr}", pytrace=False)
    return proc.stdout


def unpack(layout: Path, tag: str, bundle: Path) -> Path:
    umoci("unpack", "--rootless", "--image", f"{layout}:{tag}", bundle)
    return bundle / "rootfs"


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under ``root`` with what an image user sees of it."""
    seen: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        name = str(path.relative_to(root))
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            seen[name] = ("dir", mode)
        elif stat.S_ISLNK(st.st_mode):
            seen[name] = ("symlink", os.readlink(path), int(st.st_mtime))
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            seen[name] = ("file", mode, digest, int(st.st_mtime))
            inodes.setdefault(st.st_ino, []).append(name)
    for names in inodes.values():  # hard-link groups
        for name in names:
            seen[name] += (tuple(names),)
    return seen


def add_image(layout: Layout, layers: list[tuple[Descriptor, str]], tag: str) -> None:
    """An OCI image of ``layers`` ((descriptor, diff_id)), its blobs already in ``layout``."""
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]},
    }).encode()  # fmt: skip
    layout.write_blob(compute_digest(config), len(config), [config])
    raw = json.dumps({
        "schemaVersion": 2, "mediaType": MediaType.OCI_MANIFEST,
        "config": {"mediaType": MediaType.OCI_CONFIG, "digest": compute_digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": d.media_type, "digest": d.digest, "size": d.size}
                   for d, _ in layers],
    }).encode()  # fmt: skip
    layout.put_manifest(parse_manifest(raw), tag)


def store(layout: Layout, layer: NewLayer) -> tuple[Descriptor, str]:
    with layer.path.open("rb") as handle:
        layout.write_blob(layer.digest, layer.size, iter(lambda: handle.read(1 << 20), b""))
    return Descriptor(layer.media_type, layer.digest, layer.size), layer.diff_id


def layers_of(layout: Layout, tag: str) -> list[tuple[Descriptor, str]]:
    manifest = layout.get_manifest(tag)
    assert manifest.config is not None
    with layout.open_blob(manifest.config.digest) as chunks:
        diff_ids = json.loads(b"".join(chunks))["rootfs"]["diff_ids"]
    return list(zip(manifest.layers, diff_ids, strict=True))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A layout with ``base``, ``child`` (umoci-made whiteouts) and ``opaque`` (+ a
    hand-made layer with an opaque directory)."""
    work = tmp_path_factory.mktemp("umoci")
    oci = work / "oci"
    umoci("init", "--layout", oci)
    umoci("new", "--image", f"{oci}:base")
    rootfs = unpack(oci, "base", work / "b1")
    files = {"etc/keep": "keep\n", "etc/gone": "gone\n", "opt/a": "a\n", "opt/sub/b": "b\n",
             "usr/lib/libc.so": "libc\n", "srv/x": "x\n"}  # fmt: skip
    for rel, text in files.items():
        (rootfs / rel).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / rel).write_text(text)
    (rootfs / "lib").symlink_to("usr/lib")
    os.link(rootfs / "etc/keep", rootfs / "etc/keep-hard")
    (rootfs / "opt/a").chmod(0o750)
    umoci("repack", "--image", f"{oci}:base", work / "b1")

    rootfs = unpack(oci, "base", work / "b2")
    (rootfs / "etc/gone").unlink()
    shutil.rmtree(rootfs / "opt/sub")
    (rootfs / "etc/keep").write_text("changed\n")  # etc/keep-hard keeps... the same inode
    (rootfs / "bin").mkdir()
    (rootfs / "bin/tool").write_text("#!/bin/sh\n")
    (rootfs / "bin/tool").chmod(0o4755)
    umoci("repack", "--image", f"{oci}:child", work / "b2")

    layout = Layout(oci)
    child = layers_of(layout, "child")
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in [("srv/", None), ("srv/.wh..wh..opq", b""), ("srv/fresh", b"new\n")]:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    blob = gzip.compress(tar.getvalue(), mtime=0)
    layout.write_blob(compute_digest(blob), len(blob), [blob])
    opaque = Descriptor(MediaType.OCI_LAYER_GZIP, compute_digest(blob), len(blob))
    add_image(layout, [*child, (opaque, compute_digest(tar.getvalue()))], "opaque")
    return oci


def test_umoci_made_whiteouts_are_in_the_layers(images: Path) -> None:
    layout = Layout(images)
    (desc, _) = layers_of(layout, "child")[-1]
    with layout.open_blob(desc.digest) as chunks:
        tar = io.BytesIO(gzip.decompress(b"".join(chunks)))
    with tarfile.open(fileobj=tar) as archive:
        names = archive.getnames()
    assert any(n.endswith(".wh.gone") for n in names)
    assert any(n.endswith(".wh.sub") for n in names)


def test_flatten_gives_the_tree_umoci_unpacks(images: Path, tmp_path: Path) -> None:
    layout = Layout(images)
    layers = [desc for desc, _ in layers_of(layout, "opaque")]
    assert len(layers) == 3
    with flatten_layers(lambda d: layout.open_blob(d.digest), layers) as layer:
        flat = store(layout, layer)
    add_image(layout, [flat], "flat")

    want = snapshot(unpack(images, "opaque", tmp_path / "original"))
    got = snapshot(unpack(images, "flat", tmp_path / "flat"))
    assert got == want
    # what the layers did: a change, two deletions, an opaque directory
    assert "etc/gone" not in got and "opt/sub" not in got and "srv/x" not in got
    assert got["srv/fresh"][:3] == ("file", 0o644, hashlib.sha256(b"new\n").hexdigest())
    assert got["opt/a"][1] == 0o750 and got["bin/tool"][1] == 0o4755
    assert got["lib"][:2] == ("symlink", "usr/lib")


def test_appended_layers_unpack_to_their_files(images: Path, tmp_path: Path) -> None:
    layout = Layout(images)
    tree = tmp_path / "app"
    (tree / "app" / "bin").mkdir(parents=True)
    (tree / "app" / "bin" / "run").write_text("run\n")
    (tree / "app" / "bin" / "run").chmod(0o755)
    (tree / "etc").mkdir()
    (tree / "etc" / "keep").write_text("from the appended layer\n")
    tarball = tmp_path / "extra.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        info = tarfile.TarInfo("extra.txt")
        info.size = 6
        archive.addfile(info, io.BytesIO(b"extra\n"))
    with layer_from_path(tree, source_date_epoch=1_600_000_000) as a, layer_from_path(tarball) as b:
        added = [store(layout, a), store(layout, b)]
    add_image(layout, [*layers_of(layout, "base"), *added], "appended")

    rootfs = unpack(images, "appended", tmp_path / "bundle")
    assert (rootfs / "app/bin/run").read_text() == "run\n"
    assert stat.S_IMODE((rootfs / "app/bin/run").stat().st_mode) == 0o755
    assert int((rootfs / "app/bin/run").stat().st_mtime) == 1_600_000_000
    assert (rootfs / "etc/keep").read_text() == "from the appended layer\n"
    assert (rootfs / "etc/gone").read_text() == "gone\n"  # the base is still there
    assert (rootfs / "extra.txt").read_text() == "extra\n"


def test_flatten_streams_from_a_registry_to_the_same_layer(
    images: Path, open_registry: RegistryServer, repo_name: str
) -> None:
    """The same layers read from a registry (chunks not verified by the storage: flatten
    checks them) give the same flattened blob as from the layout."""
    target = f"{open_registry.host}/{repo_name}:v1"
    assert run_cli("copy", f"oci:{images}:opaque", target).code == 0
    layers = [desc for desc, _ in layers_of(Layout(images), "opaque")]
    with client_for() as client:
        repo = open_repository(client, target)
        events: list[ProgressEvent] = []
        with flatten_layers(repo.open_blob, layers, progress=events.append) as remote:
            remote_digest = remote.digest
    layout = Layout(images)
    with flatten_layers(lambda d: layout.open_blob(d.digest), layers) as local:
        assert remote_digest == local.digest
    assert {e.digest for e in events if e.state == ProgressState.DONE} == {d.digest for d in layers}
