"""append and flatten against a real registry and layouts, on images umoci built, checked
by reading the results back with skopeo and unpacking them with umoci."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest
from buildimages import (
    ARCHES,
    Pushed,
    ReadBack,
    check_layers,
    make_layout,
    push_images,
    read_back,
)

import regshift
from regshift.storage import open_repository

from harness.registry import RegistryServer
from support import CliResult, client_for, run_cli

EPOCH = 1_600_000_000
EPOCH_TIME = "2020-09-13T12:26:40Z"


@dataclass(frozen=True)
class Images:
    pushed: Pushed
    layouts: dict[str, Path]


@pytest.fixture(scope="module")
def images(
    open_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Images]:
    root = tmp_path_factory.mktemp("appendimages")
    layouts = {arch: make_layout(root, arch) for arch in ARCHES}
    with client_for() as client:
        pushed = push_images(client, layouts, f"{open_registry.host}/appendsrc/images")
    yield Images(pushed, layouts)


@dataclass(frozen=True)
class Sources:
    """Three layer sources: a directory, a plain tar and a gzip tarball."""

    directory: Path
    tar: Path
    targz: Path

    def args(self) -> list[str]:
        return [a for p in (self.directory, self.tar, self.targz) for a in ("--layer", str(p))]


def _tar(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, EPOCH
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


@pytest.fixture
def sources(tmp_path: Path) -> Sources:
    directory = tmp_path / "app"
    (directory / "app" / "bin").mkdir(parents=True)
    (directory / "app" / "bin" / "run").write_text("run\n")
    (directory / "app" / "bin" / "run").chmod(0o755)
    (directory / "etc").mkdir()
    (directory / "etc" / "base.txt").write_text("from the directory\n")
    tar = tmp_path / "plain.tar"
    tar.write_bytes(_tar({"opt/plain.txt": b"from the tar\n"}))
    targz = tmp_path / "packed.tar.gz"
    targz.write_bytes(gzip.compress(_tar({"opt/packed.txt": b"from the tar.gz\n"}), mtime=0))
    return Sources(directory, tar, targz)


def _blob_uploads(registry: RegistryServer) -> tuple[list[str], list[str]]:
    """(blob uploads committed, mounts asked for), from the access log."""
    uploads = [r.path for r in registry.requests() if "/blobs/uploads/" in r.path]
    puts = [
        unquote(r.path)
        for r in registry.requests()
        if "/blobs/uploads/" in r.path and r.method == "PUT"
    ]
    return puts, [u for u in uploads if "mount=" in u]


def _check_appended(back: ReadBack, arch: str) -> None:
    """The files of the three new layers, and the base's under them."""
    assert back.text("app/bin/run") == "run\n"
    assert stat.S_IMODE((back.rootfs / "app/bin/run").stat().st_mode) == 0o755
    assert back.text("etc/base.txt") == "from the directory\n"  # over the base's
    assert back.text("opt/plain.txt") == "from the tar\n"
    assert back.text("opt/packed.txt") == "from the tar.gz\n"
    assert back.text("bin/tool") == f"tool v1 {arch}\n"
    assert back.text("etc/remove-me.txt") == "remove me\n"


def test_append_a_directory_a_tar_and_a_tarball_on_the_same_registry(
    images: Images, open_registry: RegistryServer, repo_name: str, tmp_path: Path, sources: Sources
) -> None:
    dst = f"{open_registry.host}/{repo_name}:appended"
    open_registry.mark()
    result = run_cli(
        "append", "--json", images.pushed.ref("base", "amd64"), *sources.args(), "--to", dst
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    new = doc["layers"][2:]
    assert [s["action"] for s in doc["layers"]] == ["mount"] * 2 + ["upload"] * 3
    # Only the three new layers and the config went up; the base's two layers were mounted.
    puts, mounts = _blob_uploads(open_registry)
    assert len(mounts) == 2 and len(puts) == 4
    uploaded = {s["digest"] for s in new} | {doc["images"][0]["config"]["digest"]}
    assert {p.rpartition("digest=")[2] for p in puts} == uploaded
    assert doc["blobs"] == {"mounted": 2, "streamed": 0, "uploaded": 4, "skipped": 0}
    assert doc["bytes"]["streamed"] == 0
    assert (
        doc["bytes"]["uploaded"] == sum(s["size"] for s in new) + doc["images"][0]["config"]["size"]
    )
    # The gzip tarball is the blob byte for byte.
    assert new[2]["digest"] == "sha256:" + hashlib.sha256(sources.targz.read_bytes()).hexdigest()
    assert (
        new[2]["diffId"]
        == "sha256:" + hashlib.sha256(gzip.decompress(sources.targz.read_bytes())).hexdigest()
    )
    back = read_back(f"docker://{dst}", tmp_path / "rb")
    check_layers(back)
    _check_appended(back, "amd64")
    history = back.config["history"]
    assert len(history) == 3 + 3  # base: 2 layers + ENV; one entry per new layer
    assert [h["created_by"] for h in history[3:]] == [
        "regshift append dir:app",
        "regshift append file:plain.tar",
        "regshift append file:packed.tar.gz",
    ]
    assert "created" not in history[-1]  # no "now" unless asked
    assert "BASE=1" in back.config["config"]["Env"]


def test_append_into_a_layout_gives_the_same_image(
    images: Images, tmp_path: Path, sources: Sources
) -> None:
    base = images.pushed.ref("base", "arm64")
    out = tmp_path / "out"
    first = run_cli("append", "--json", base, *sources.args(), "--to", f"oci:{out}:app")
    again = run_cli(
        "append",
        "--json",
        f"oci:{images.layouts['arm64']}:base",
        *sources.args(),
        "--to",
        f"oci:{out}:again",
    )
    assert first.code == again.code == 0, first.stderr + again.stderr
    assert first.json()["digest"] == again.json()["digest"]  # from a registry or a layout
    back = read_back(f"oci:{out}:app", tmp_path / "rb")
    check_layers(back)
    _check_appended(back, "arm64")
    # The library verbs, as the public surface has them.
    with client_for() as client:
        result = regshift.append(
            client,
            base,
            to=f"oci:{out}:lib",
            layers=[sources.directory, sources.tar, str(sources.targz)],
        )
        flat = regshift.flatten(client, f"oci:{out}:lib", to=f"oci:{out}:flat")
    assert result.digest == first.json()["digest"] and result.tags == ("lib",)
    assert len(flat.images[0].layers) == 1
    flat_back = read_back(f"oci:{out}:flat", tmp_path / "flat")
    check_layers(flat_back)
    _check_appended(flat_back, "arm64")


def test_the_same_directory_gives_the_same_digest_and_source_date_epoch_dates_it(
    images: Images, open_registry: RegistryServer, repo_name: str, tmp_path: Path, sources: Sources
) -> None:
    base = images.pushed.ref("base", "amd64")
    layer = ["--layer", str(sources.directory)]
    env = {"SOURCE_DATE_EPOCH": str(EPOCH)}
    first = run_cli(
        "append", "--json", base, *layer, "--to", f"{open_registry.host}/{repo_name}:a", env=env
    )
    (sources.directory / "etc" / "base.txt").touch()  # a newer time, clamped to the epoch
    second = run_cli(
        "append", "--json", base, *layer, "--to", f"{open_registry.host}/{repo_name}:b", env=env
    )
    assert first.code == second.code == 0, first.stderr + second.stderr
    one, two = first.json(), second.json()
    assert one["layers"][-1]["digest"] == two["layers"][-1]["digest"]
    assert one["digest"] == two["digest"]
    config = one["images"][0]["configJson"]
    assert config["created"] == EPOCH_TIME
    assert config["history"][-1] == {"created": EPOCH_TIME, "created_by": "regshift append dir:app"}
    # --created wins over SOURCE_DATE_EPOCH.
    dated = run_cli(
        "append",
        "--json",
        base,
        *layer,
        "--created",
        "2024-05-01T12:00:00Z",
        "--to",
        f"{open_registry.host}/{repo_name}:c",
        env=env,
    )
    assert dated.code == 0, dated.stderr
    assert dated.json()["images"][0]["configJson"]["created"] == "2024-05-01T12:00:00Z"
    assert dated.json()["layers"][-1]["digest"] == one["layers"][-1]["digest"]
    back = read_back(f"docker://{open_registry.host}/{repo_name}:b", tmp_path)
    assert int((back.rootfs / "etc/base.txt").stat().st_mtime) == EPOCH


def test_append_onto_a_two_platform_index_makes_each_layer_once(
    images: Images, other_registry: RegistryServer, repo_name: str, tmp_path: Path, sources: Sources
) -> None:
    dst = f"{other_registry.host}/{repo_name}:multi"
    result = run_cli("append", "--json", images.pushed.ref("base"), *sources.args(), "--to", dst)
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert doc["platforms"] == ["linux/amd64", "linux/arm64"]
    # Three layers once and two configs uploaded; each platform's base layers streamed.
    assert doc["blobs"] == {"mounted": 0, "streamed": 4, "uploaded": 5, "skipped": 0}
    per_platform = [
        [s["digest"] for s in doc["layers"] if s["platform"] == a][2:] for a in doc["platforms"]
    ]
    assert per_platform[0] == per_platform[1]
    for arch in ARCHES:
        back = read_back(f"docker://{dst}", tmp_path / arch, arch)
        check_layers(back)
        assert back.config["architecture"] == arch
        _check_appended(back, arch)


def test_append_dry_run_shows_the_new_layers_and_config_and_writes_nothing(
    images: Images, open_registry: RegistryServer, repo_name: str, sources: Sources
) -> None:
    dst = f"{open_registry.host}/{repo_name}:dry"
    open_registry.mark()
    result = run_cli(
        "append", "--dry-run", images.pushed.ref("base", "amd64"), *sources.args(), "--to", dst
    )
    assert result.code == 0, result.stderr
    assert "plan (dry run)" in result.stdout
    assert result.stdout.count("upload ") == 4  # three layers and the config
    assert f"from file:{sources.targz}" in result.stdout
    assert '"diff_ids": [' in result.stdout and "regshift append file:plain.tar" in result.stdout
    assert all(r.method in ("GET", "HEAD") for r in open_registry.requests())
    as_json = run_cli(
        "append",
        "--dry-run",
        "--json",
        images.pushed.ref("base", "amd64"),
        *sources.args(),
        "--to",
        dst,
    )
    doc = as_json.json()
    ids = doc["images"][0]["configJson"]["rootfs"]["diff_ids"]
    assert [s["diffId"] for s in doc["layers"]] == ids and len(ids) == 5
    with client_for() as client:
        assert open_repository(client, dst).head("dry") is None


def _tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under ``root``: type, mode, owner, content and time (files)."""
    seen: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        name = str(path.relative_to(root))
        head = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        if stat.S_ISDIR(st.st_mode):
            seen[name] = ("dir", *head)
        elif stat.S_ISLNK(st.st_mode):
            seen[name] = ("symlink", os.readlink(path), st.st_uid, st.st_gid)
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            seen[name] = ("file", *head, digest, int(st.st_mtime))
    return seen


def test_flatten_gives_the_tree_umoci_unpacks_from_the_original(
    images: Images, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    src = images.pushed.ref("app-delete", "amd64")
    dst = f"{open_registry.host}/{repo_name}:flat"
    result = run_cli("flatten", "--json", src, "--to", dst)
    assert result.code == 0, result.stderr
    doc = result.json()
    assert len(doc["layers"]) == 1 and doc["layers"][0]["action"] == "upload"
    assert doc["blobs"]["uploaded"] == 2 and doc["blobs"]["mounted"] == 0
    back = read_back(f"docker://{dst}", tmp_path / "flat")
    original = read_back(f"oci:{images.layouts['amd64']}:app-delete", tmp_path / "orig")
    assert len(original.manifest["layers"]) == 4
    assert _tree(back.rootfs) == _tree(original.rootfs)
    assert not back.exists("etc/remove-me.txt")  # the whiteout applied
    assert back.text("app/delete.txt") == "delete amd64\n"
    check_layers(back)
    assert len(back.manifest["layers"]) == 1
    assert back.config["history"] == [{"created_by": f"regshift flatten {original_digest(src)}"}]
    assert back.config["config"] == original.config["config"]  # the config is kept
    # Progress (not with --json): the bytes read of each source layer, -v: a line per layer.
    verbose = run_cli("flatten", "-v", src, "--to", f"{dst}-again")
    assert verbose.code == 0, verbose.stderr
    for layer in original.manifest["layers"]:
        line = f"done blob {layer['digest']} ({layer['size']} bytes) -> flatten: read from {src}"
        assert line in verbose.stderr


def original_digest(ref: str) -> str:
    with client_for() as client:
        repo = open_repository(client, ref)
        return repo.get_manifest(repo.identifier or "latest").digest


def test_flatten_of_docker_images_stays_docker(
    images: Images, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    dst = f"oci:{tmp_path / 'out'}:flat"
    result = run_cli(
        "flatten", "--json", images.pushed.ref("app-change", "arm64", docker=True), "--to", dst
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert doc["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"


def test_flatten_of_a_two_platform_index(
    images: Images,
    other_registry: RegistryServer,
    repo_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dst = f"{other_registry.host}/{repo_name}:flat"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the layers are spilled
    result = run_cli("flatten", "--json", images.pushed.ref("app-change"), "--to", dst)
    assert result.code == 0, result.stderr
    assert list(scratch.iterdir()) == []  # spilled layers and flattened blobs removed
    doc = result.json()
    assert doc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert doc["platforms"] == ["linux/amd64", "linux/arm64"]
    assert doc["blobs"] == {"mounted": 0, "streamed": 0, "uploaded": 4, "skipped": 0}
    with client_for() as client:
        index = open_repository(client, dst).get_manifest("flat")
    assert index.raw.count(b'"platform"') == 2
    for arch in ARCHES:
        back = read_back(f"docker://{dst}", tmp_path / arch, arch)
        check_layers(back)
        assert len(back.manifest["layers"]) == 1 and back.config["architecture"] == arch
        assert back.text("etc/base.txt") == f"changed by app {arch}\n"
        assert back.text("app/change.txt") == f"change {arch}\n"
        assert back.text("usr/share/base/readme") == f"readme {arch}\n"


def test_flatten_dry_run_names_the_layers_and_reads_none(
    images: Images, open_registry: RegistryServer, repo_name: str
) -> None:
    src = images.pushed.ref("app-delete", "amd64")
    dst = f"{open_registry.host}/{repo_name}:dry"
    open_registry.mark()
    result = run_cli("flatten", "--dry-run", "--json", src, "--to", dst)
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["digest"] is None and doc["dryRun"] is True
    digests = [s["digest"] for s in doc["layers"]]
    assert len(digests) == 4 and {s["action"] for s in doc["layers"]} == {"read"}
    assert doc["images"][0]["configJson"]["history"] == [
        {"created_by": f"regshift flatten {original_digest(src)}"}
    ]
    requests = open_registry.requests()
    assert all(r.method in ("GET", "HEAD") for r in requests)
    assert not [r for r in requests if any(d in r.path for d in digests)]  # no layer read
    text = run_cli("flatten", "--dry-run", src, "--to", dst)
    assert text.code == 0 and text.stdout.count("    read    sha256:") == 4, text.stdout
    assert "digest unknown until the layers are read" in text.stdout
    with client_for() as client:
        assert open_repository(client, dst).head("dry") is None


def _assert_refused(result: CliResult, code: int, *words: str) -> None:
    assert result.code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("regshift: error: "), lines
    for word in words:
        assert word in lines[0], lines[0]


def test_bad_layers_and_missing_sources_are_refused_in_one_line_and_write_no_tag(
    images: Images, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    base = images.pushed.ref("base", "amd64")
    dst = f"{open_registry.host}/{repo_name}:never"
    not_tar = tmp_path / "notes.tar"
    not_tar.write_text("these are notes, not a tar archive\n" * 40)
    gz_not_tar = tmp_path / "notes.tar.gz"
    gz_not_tar.write_bytes(gzip.compress(not_tar.read_bytes(), mtime=0))
    open_registry.mark()
    _assert_refused(run_cli("append", base, "--layer", str(not_tar), "--to", dst), 2, "notes.tar")
    _assert_refused(
        run_cli("append", base, "--layer", str(gz_not_tar), "--to", dst), 2, "notes.tar.gz"
    )
    missing = tmp_path / "nowhere"
    _assert_refused(run_cli("append", base, "--layer", str(missing), "--to", dst), 2, str(missing))
    assert open_registry.requests() == []  # refused before anything was sent
    epoch = run_cli(
        "append", base, "--layer", str(tmp_path), "--to", dst, env={"SOURCE_DATE_EPOCH": "soon"}
    )
    assert epoch.code == 2 and "SOURCE_DATE_EPOCH 'soon'" in epoch.stderr  # a usage error
    _assert_refused(
        run_cli(
            "append",
            f"{images.pushed.repo}:nope",
            "--layer",
            str(not_tar.parent / "x"),
            "--to",
            dst,
        ),
        2,
    )
    (tmp_path / "d").mkdir()
    _assert_refused(
        run_cli(
            "append", f"{images.pushed.repo}:nope", "--layer", str(tmp_path / "d"), "--to", dst
        ),
        4,
        "nope",
    )
    _assert_refused(run_cli("flatten", f"{images.pushed.repo}:nope", "--to", dst), 4, "nope")
    _assert_refused(run_cli("flatten", f"oci:{tmp_path / 'nolayout'}:x", "--to", dst), 4)
    with client_for() as client:
        assert open_repository(client, dst).head("never") is None
