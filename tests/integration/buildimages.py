"""Test images for the build verbs, made with tools nobody here wrote (umoci, skopeo), and
read back the same way.

:func:`make_layout` builds, in one OCI layout per architecture (``amd64``, ``arm64``):

* ``base``: two layers (``etc/base.txt``, ``etc/remove-me.txt``, ``bin/tool`` v1; then
  ``usr/share/base/readme``) and an ``ENV`` step (an empty-layer history entry);
* ``app-change``: FROM base, an ``ENV`` step, one layer changing ``etc/base.txt`` and adding
  ``app/change.txt``;
* ``app-delete``: FROM base, one layer deleting ``etc/remove-me.txt`` (a whiteout) and one
  adding ``app/delete.txt``;
* ``scratch``: FROM scratch, one layer (``opt/extra/extra.txt``);
* ``base2``: another base, one layer (``etc/base.txt``, ``etc/remove-me.txt``,
  ``bin/tool`` v2, ``usr/share/base2/readme``).

Every file's content names its image and architecture. :func:`push_images` copies them to a
registry with skopeo (``--format v2s2`` for Docker copies) and makes indexes of the two
architectures; :func:`read_back` copies a result into a layout with skopeo and unpacks it
with umoci; :func:`check_layers` checks diff_ids and history against the layer blobs.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regshift import Client
from regshift.manifests import parse_manifest
from regshift.mediatypes import MediaType
from regshift.storage import open_repository

ARCHES = ("amd64", "arm64")
IMAGES = ("base", "app-change", "app-delete", "scratch", "base2")


def run(*args: str) -> str:
    """Run a tool; fail with its output when it fails."""
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def _files(root: Path, files: dict[str, str]) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _layer(layout: Path, tag: str, work: Path, files: dict[str, str]) -> None:
    src = _files(work / f"{tag}-{len(list(work.iterdir()))}", files)
    run("umoci", "insert", "--image", f"{layout}:{tag}", str(src), "/")


def make_layout(root: Path, arch: str) -> Path:
    """The five test images for ``arch`` in one OCI layout (tags as named above)."""
    layout, work = root / f"layout-{arch}", root / f"work-{arch}"
    work.mkdir(parents=True)
    run("umoci", "init", "--layout", str(layout))

    def new(tag: str) -> None:
        run("umoci", "new", "--image", f"{layout}:{tag}")
        run("umoci", "config", "--no-history", "--image", f"{layout}:{tag}", "--architecture", arch)

    new("base")
    files = {"etc/base.txt": f"base {arch}\n", "etc/remove-me.txt": "remove me\n"}
    _layer(layout, "base", work, {**files, "bin/tool": f"tool v1 {arch}\n"})
    _layer(layout, "base", work, {"usr/share/base/readme": f"readme {arch}\n"})
    run("umoci", "config", "--image", f"{layout}:base", "--config.env", "BASE=1")
    for tag in ("app-change", "app-delete"):
        run("umoci", "tag", "--image", f"{layout}:base", tag)
    run("umoci", "config", "--image", f"{layout}:app-change", "--config.env", "APP=change")
    changed = {"etc/base.txt": f"changed by app {arch}\n", "app/change.txt": f"change {arch}\n"}
    _layer(layout, "app-change", work, changed)
    run("umoci", "insert", "--image", f"{layout}:app-delete", "--whiteout", "/etc/remove-me.txt")
    _layer(layout, "app-delete", work, {"app/delete.txt": f"delete {arch}\n"})
    new("scratch")
    _layer(layout, "scratch", work, {"opt/extra/extra.txt": f"extra {arch}\n"})
    new("base2")
    base2 = {
        "etc/base.txt": f"base2 {arch}\n",
        "etc/remove-me.txt": "remove me too\n",
        "bin/tool": f"tool v2 {arch}\n",
        "usr/share/base2/readme": f"readme2 {arch}\n",
    }
    _layer(layout, "base2", work, base2)
    return layout


def skopeo_copy(src: str, dst: str, *extra: str) -> None:
    run(
        "skopeo",
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        *extra,
        src,
        dst,
    )


@dataclass(frozen=True)
class Pushed:
    """Where the test images are: ``ref(name, arch)`` a single image, ``ref(name)`` the
    index of both architectures; ``docker=True`` the Docker v2s2 copies."""

    repo: str

    def ref(self, name: str, arch: str | None = None, *, docker: bool = False) -> str:
        kind = "docker-" if docker else ""
        return f"{self.repo}:{kind}{name}-{arch or 'index'}"


def push_images(client: Client, layouts: dict[str, Path], repo: str) -> Pushed:
    """Push every image of every layout to ``repo`` (OCI and Docker v2s2), and an index of
    each image's architectures (an OCI index, and a Docker manifest list for the copies)."""
    pushed = Pushed(repo)
    for docker in (False, True):
        fmt = ("--format", "v2s2") if docker else ("--format", "oci")
        for arch, layout in layouts.items():
            for name in IMAGES:
                skopeo_copy(
                    f"oci:{layout}:{name}",
                    f"docker://{pushed.ref(name, arch, docker=docker)}",
                    *fmt,
                )
        for name in IMAGES:
            make_index(
                client,
                [pushed.ref(name, a, docker=docker) for a in layouts],
                pushed.ref(name, docker=docker),
                docker=docker,
            )
    return pushed


def make_index(client: Client, refs: list[str], to: str, *, docker: bool = False) -> None:
    """An index (or Docker manifest list) of single images, each under its config's platform."""
    entries = []
    for ref in refs:
        repo = open_repository(client, ref)
        manifest = repo.get_manifest(repo.identifier or "latest")
        assert manifest.config is not None
        with repo.open_blob(manifest.config) as chunks:
            config = json.loads(b"".join(chunks))
        platform = {"architecture": config["architecture"], "os": config["os"]}
        entries.append(
            {
                "mediaType": manifest.media_type,
                "digest": manifest.digest,
                "size": manifest.size,
                "platform": platform,
            }
        )
    media_type = MediaType.DOCKER_MANIFEST_LIST if docker else MediaType.OCI_INDEX
    doc = {"schemaVersion": 2, "mediaType": str(media_type), "manifests": entries}
    if not docker:
        doc["annotations"] = {"org.example.index": "kept"}
    index = parse_manifest(json.dumps(doc).encode(), media_type)
    target = open_repository(client, to, create=True)
    target.put_manifest(index, [target.tag] if target.tag else [], listed=True)


@dataclass(frozen=True)
class ReadBack:
    """A result as skopeo copied it into a layout and umoci unpacked it."""

    layout: Path
    rootfs: Path
    manifest: dict[str, Any]
    config: dict[str, Any]

    def text(self, name: str) -> str:
        return (self.rootfs / name).read_text()

    def exists(self, name: str) -> bool:
        return (self.rootfs / name).exists()

    def blob(self, digest: str) -> bytes:
        return (self.layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def read_back(src: str, work: Path, arch: str | None = None) -> ReadBack:
    """Copy ``src`` (``docker://...`` or ``oci:...``; one platform of an index: ``arch``)
    into a fresh layout with skopeo, unpack it with umoci."""
    work.mkdir(parents=True, exist_ok=True)
    layout, bundle = work / "readback", work / "bundle"
    shutil.rmtree(layout, ignore_errors=True)
    shutil.rmtree(bundle, ignore_errors=True)
    extra = ("--override-arch", arch) if arch else ()
    skopeo_copy(src, f"oci:{layout}:out", *extra)
    run("umoci", "unpack", "--image", f"{layout}:out", str(bundle))
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / digest.split(":", 1)[1]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"].split(":", 1)[1]).read_text())
    return ReadBack(layout, bundle / "rootfs", manifest, config)


def check_layers(result: ReadBack) -> None:
    """diff_ids are the sha256 of each uncompressed layer; one non-empty history entry per
    layer."""
    diff_ids = []
    for layer in result.manifest["layers"]:
        blob = result.blob(layer["digest"])
        raw = gzip.decompress(blob) if layer["mediaType"].endswith("gzip") else blob
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    assert result.config["rootfs"]["diff_ids"] == diff_ids
    history = result.config.get("history", [])
    assert sum(1 for h in history if not h.get("empty_layer")) == len(diff_ids)
