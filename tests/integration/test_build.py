"""merge, mutate and rebase against real registries and layouts, on images umoci built,
checked by reading the results back with skopeo and unpacking them with umoci."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest
from buildimages import ARCHES, Pushed, check_layers, make_layout, push_images, read_back

from regshift.building import BuildOptions, build
from regshift.digests import compute_digest
from regshift.graph import read_config
from regshift.storage import open_repository

from harness.registry import RegistryServer
from support import client_for, run_cli

_BASE_FILES = {"bin/tool", "usr/share/base/readme", "etc/base.txt"}


@dataclass(frozen=True)
class Images:
    pushed: Pushed
    layouts: dict[str, Path]
    host: str


@pytest.fixture(scope="module")
def images(
    open_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Images]:
    root = tmp_path_factory.mktemp("buildimages")
    layouts = {arch: make_layout(root, arch) for arch in ARCHES}
    with client_for() as client:
        pushed = push_images(client, layouts, f"{open_registry.host}/buildsrc/images")
    yield Images(pushed, layouts, open_registry.host)


def _blob_uploads(registry: RegistryServer) -> list[str]:
    """Blob uploads committed (PUT ...?digest=) and mounts requested, as logged."""
    return [
        r.path
        for r in registry.requests()
        if "/blobs/uploads/" in r.path and (r.method == "PUT" or "mount=" in r.path)
    ]


def test_merge_on_the_same_registry_mounts_every_layer_and_uploads_the_config(
    images: Images, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    p = images.pushed
    dst = f"{open_registry.host}/{repo_name}:merged"
    open_registry.mark()
    result = run_cli(
        "merge",
        "--json",
        p.ref("base", "amd64"),
        p.ref("app-change", "amd64"),
        p.ref("app-delete", "amd64"),
        p.ref("scratch", "amd64"),
        "--to",
        dst,
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    uploads = _blob_uploads(open_registry)
    puts = [u for u in uploads if "mount=" not in u]
    # One blob went up (the config); the six layers were mounted: 0 layer bytes moved.
    assert len(puts) == 1 and doc["images"][0]["config"]["digest"] in unquote(puts[0])
    assert len([u for u in uploads if "mount=" in u]) == 6
    assert doc["blobs"] == {"mounted": 6, "streamed": 0, "uploaded": 1, "skipped": 0}
    assert doc["bytes"]["streamed"] == 0
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [s["source"] for s in doc["layers"]] == [p.ref("base", "amd64")] * 2 + [
        p.ref("app-change", "amd64"),
        p.ref("app-delete", "amd64"),
        p.ref("app-delete", "amd64"),
        p.ref("scratch", "amd64"),
    ]
    back = read_back(f"docker://{dst}", tmp_path)
    check_layers(back)
    assert back.text("etc/base.txt") == "changed by app amd64\n"
    assert not back.exists("etc/remove-me.txt")  # the whiteout of app-delete applied
    assert back.text("app/change.txt") == "change amd64\n"
    assert back.text("app/delete.txt") == "delete amd64\n"
    assert back.text("opt/extra/extra.txt") == "extra amd64\n"
    assert back.text("bin/tool") == "tool v1 amd64\n"
    history = back.config["history"]
    # base: 2 layers + ENV; app-change: ENV + 1 layer; app-delete: 2; scratch: 1.
    assert len(history) == 3 + 2 + 2 + 1
    assert "BASE=1" in back.config["config"]["Env"]  # the base's config
    assert "APP=change" not in back.config["config"]["Env"]


def test_merge_is_reproducible_and_config_from_takes_another_config(
    images: Images, open_registry: RegistryServer, repo_name: str
) -> None:
    p = images.pushed
    args = [p.ref("base", "amd64"), p.ref("app-change", "amd64")]
    first = run_cli("merge", "--json", *args, "--to", f"{open_registry.host}/{repo_name}:a")
    second = run_cli("merge", "--json", *args, "--to", f"{open_registry.host}/{repo_name}:b")
    assert first.code == second.code == 0, first.stderr + second.stderr
    assert first.json()["digest"] == second.json()["digest"]
    other = run_cli(
        "merge",
        "--json",
        *args,
        "--config-from",
        p.ref("app-change", "amd64"),
        "--to",
        f"{open_registry.host}/{repo_name}:c",
    )
    assert other.code == 0, other.stderr
    config = other.json()["images"][0]["configJson"]
    assert "APP=change" in config["config"]["Env"]
    assert len(config["rootfs"]["diff_ids"]) == 3


def test_merge_of_docker_images_stays_docker(
    images: Images, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    p = images.pushed
    dst = f"{open_registry.host}/{repo_name}:docker"
    result = run_cli(
        "merge",
        "--json",
        p.ref("base", "amd64", docker=True),
        p.ref("app-delete", "amd64", docker=True),
        "--to",
        dst,
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert {s["mediaType"] for s in doc["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }
    back = read_back(f"docker://{dst}", tmp_path)
    check_layers(back)
    assert not back.exists("etc/remove-me.txt")
    assert back.text("app/delete.txt") == "delete amd64\n"


def test_mixed_docker_and_oci_inputs_give_oci_with_oci_layer_types(
    images: Images, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    p = images.pushed
    dst = f"{open_registry.host}/{repo_name}:mixed"
    result = run_cli(
        "merge",
        "--json",
        p.ref("base", "amd64", docker=True),
        p.ref("scratch", "amd64"),
        "--to",
        dst,
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert {s["mediaType"] for s in doc["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    }
    back = read_back(f"docker://{dst}", tmp_path)
    check_layers(back)
    assert back.text("opt/extra/extra.txt") == "extra amd64\n"


def test_cross_registry_merge_of_two_platform_indexes(
    images: Images, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    p = images.pushed
    dst = f"{other_registry.host}/{repo_name}:multi"
    result = run_cli(
        "merge", "--json", p.ref("base"), p.ref("app-change"), p.ref("scratch"), "--to", dst
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert doc["platforms"] == ["linux/amd64", "linux/arm64"]
    assert doc["blobs"]["mounted"] == 0 and doc["blobs"]["streamed"] == 8
    with client_for() as client:
        index = open_repository(client, dst).get_manifest("multi")
    assert json.loads(index.raw)["annotations"] == {"org.example.index": "kept"}
    for arch in ARCHES:
        back = read_back(f"docker://{dst}", tmp_path / arch, arch)
        check_layers(back)
        assert back.config["architecture"] == arch
        assert back.text("etc/base.txt") == f"changed by app {arch}\n"
        assert back.text("opt/extra/extra.txt") == f"extra {arch}\n"
    narrowed = run_cli(
        "merge",
        "--json",
        "--platform",
        "linux/arm64",
        p.ref("base"),
        p.ref("scratch"),
        "--to",
        f"{other_registry.host}/{repo_name}:arm",
    )
    assert narrowed.code == 0, narrowed.stderr
    assert narrowed.json()["platforms"] == ["linux/arm64"]


def test_merge_from_and_into_layouts(
    images: Images, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    layout = images.layouts["arm64"]
    out = tmp_path / "out"
    result = run_cli(
        "merge",
        "--json",
        f"oci:{layout}:base",
        f"oci:{layout}:app-delete",
        images.pushed.ref("scratch", "arm64"),
        "--to",
        f"oci:{out}:merged",
    )
    assert result.code == 0, result.stderr
    assert result.json()["blobs"]["streamed"] == 5  # from the layout and the registry
    back = read_back(f"oci:{out}:merged", tmp_path / "rb")
    check_layers(back)
    assert not back.exists("etc/remove-me.txt")
    assert back.text("opt/extra/extra.txt") == "extra arm64\n"
    # And from a layout into a registry.
    dst = f"{open_registry.host}/{repo_name}:from-layout"
    again = run_cli("merge", f"oci:{layout}:base", f"oci:{layout}:app-change", "--to", dst)
    assert again.code == 0, again.stderr
    back = read_back(f"docker://{dst}", tmp_path / "rb2")
    check_layers(back)
    assert back.text("etc/base.txt") == "changed by app arm64\n"


def test_mutate_changes_the_config_and_uploads_only_it(
    images: Images, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    src = images.pushed.ref("app-change", "amd64")
    dst = f"{open_registry.host}/{repo_name}:mutated"
    open_registry.mark()
    result = run_cli(
        "mutate",
        "--json",
        src,
        "--to",
        dst,
        "--label",
        "org.example.team=build",
        "--label",
        "empty=",
        "--env",
        "APP=mutated",
        "--env",
        "NEW=1",
        "--remove-env",
        "BASE",
        "--entrypoint",
        '["/bin/tool"]',
        "--cmd",
        '["-v"]',
        "--user",
        "1000",
        "--workdir",
        "/app",
        "--annotation",
        "org.example.note=hello",
        "--created",
        "2024-05-01T12:00:00Z",
    )
    assert result.code == 0, result.stderr
    puts = [u for u in _blob_uploads(open_registry) if "mount=" not in u]
    assert len(puts) == 1  # the config only; layers mounted
    back = read_back(f"docker://{dst}", tmp_path)
    check_layers(back)
    config = back.config["config"]
    assert config["Labels"] == {"org.example.team": "build", "empty": ""}
    assert [e for e in config["Env"] if e.startswith(("APP=", "NEW=", "BASE="))] == [
        "APP=mutated",
        "NEW=1",
    ]
    assert config["Entrypoint"] == ["/bin/tool"] and config["Cmd"] == ["-v"]
    assert config["User"] == "1000" and config["WorkingDir"] == "/app"
    assert back.config["created"] == "2024-05-01T12:00:00Z"
    assert back.manifest["annotations"]["org.example.note"] == "hello"
    assert back.text("app/change.txt") == "change amd64\n"


def test_rebase_onto_another_base(
    images: Images, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    p = images.pushed
    dst = f"{open_registry.host}/{repo_name}:rebased"
    open_registry.mark()
    result = run_cli(
        "rebase",
        "--json",
        p.ref("app-change"),
        "--old-base",
        p.ref("base"),
        "--new-base",
        p.ref("base2"),
        "--to",
        dst,
    )
    assert result.code == 0, result.stderr
    assert result.json()["blobs"]["uploaded"] == 2  # one config per platform
    puts = [u for u in _blob_uploads(open_registry) if "mount=" not in u]
    assert len(puts) == 2
    for arch in ARCHES:
        back = read_back(f"docker://{dst}", tmp_path / arch, arch)
        check_layers(back)
        assert back.text("bin/tool") == f"tool v2 {arch}\n"  # the new base
        assert back.text("etc/base.txt") == f"changed by app {arch}\n"  # the image's own
        assert back.exists("usr/share/base2/readme")
        assert not back.exists("usr/share/base/readme")  # the old base is gone
        # base2: 1 layer; app-change after its base part: ENV + 1 layer.
        assert len(back.config["history"]) == 3


def _assert_refused(result: object, code: int, *words: str) -> None:
    assert result.code == code, result.stderr  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("regshift: error: "), lines
    for word in words:
        assert word in lines[0], lines[0]


def test_bad_inputs_are_refused_in_one_line_and_write_no_tag(
    images: Images, open_registry: RegistryServer, repo_name: str
) -> None:
    p = images.pushed
    dst = f"{open_registry.host}/{repo_name}:never"
    # Single images of different platforms.
    _assert_refused(
        run_cli("merge", p.ref("base", "amd64"), p.ref("scratch", "arm64"), "--to", dst),
        2,
        "platform mismatch",
        "linux/arm64",
    )
    # An index mixed with a single image.
    _assert_refused(
        run_cli("merge", p.ref("base"), p.ref("scratch", "amd64"), "--to", dst), 2, "index"
    )
    # A missing input.
    _assert_refused(
        run_cli("merge", p.ref("base", "amd64"), f"{p.repo}:nope", "--to", dst),
        4,
        "nope",
    )
    # An image sharing only part of the base's layers.
    _assert_refused(
        run_cli("merge", p.ref("app-change", "amd64"), p.ref("base", "amd64"), "--to", dst),
        2,
        "shares only part",
    )
    # A rebase onto the wrong old base names the first layer that differs.
    with client_for() as client:
        repo = open_repository(client, p.ref("base2", "amd64"))
        manifest = repo.get_manifest("base2-amd64")
        assert manifest.config is not None
        config = json.loads(read_config(repo, manifest.config))
        base2_first = config["rootfs"]["diff_ids"][0]
    _assert_refused(
        run_cli(
            "rebase",
            p.ref("app-change", "amd64"),
            "--old-base",
            p.ref("base2", "amd64"),
            "--new-base",
            p.ref("base", "amd64"),
            "--to",
            dst,
        ),
        2,
        "is not built on",
        "layer 1",
        base2_first,
    )
    # An invalid destination: nothing is even read.
    open_registry.mark()
    _assert_refused(
        run_cli("merge", p.ref("base", "amd64"), p.ref("scratch", "amd64"), "--to", "Bad//Ref"),
        2,
    )
    assert open_registry.requests() == []
    with client_for() as client:
        assert open_repository(client, dst).head("never") is None


def test_dry_run_prints_the_plan_and_the_config_and_writes_nothing(
    images: Images, open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    p = images.pushed
    dst = f"{other_registry.host}/{repo_name}:dry"
    other_registry.mark()
    result = run_cli(
        "merge", "--dry-run", p.ref("base", "amd64"), p.ref("scratch", "amd64"), "--to", dst
    )
    assert result.code == 0, result.stderr
    assert "plan (dry run)" in result.stdout
    assert "stream " in result.stdout and "upload " in result.stdout
    assert '"diff_ids": [' in result.stdout  # the new config in full
    assert all(r.method in ("GET", "HEAD") for r in other_registry.requests())
    with client_for() as client:
        assert open_repository(client, dst).head("dry") is None


@dataclass(frozen=True)
class _LayerFile:
    """A new layer as the append/flatten producers hand it over."""

    path: Path
    digest: str
    size: int
    diff_id: str
    media_type: str
    created_by: str


def _gzip_layer(tmp_path: Path, files: dict[str, bytes]) -> _LayerFile:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    blob = gzip.compress(raw.getvalue(), mtime=0)
    path = tmp_path / "layer.tar.gz"
    path.write_bytes(blob)
    return _LayerFile(
        path,
        compute_digest(blob),
        len(blob),
        compute_digest(raw.getvalue()),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "regshift append dir:app",
    )


@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker"])
def test_build_adds_a_layer_file_to_every_platform(
    images: Images, open_registry: RegistryServer, repo_name: str, tmp_path: Path, docker: bool
) -> None:
    layer = _gzip_layer(tmp_path, {"app/new.txt": b"new layer\n"})
    dst = f"{open_registry.host}/{repo_name}:built"
    options = BuildOptions(created="2024-05-01T12:00:00Z")
    with client_for() as client:
        result = build(
            client,
            images.pushed.ref("base", docker=docker),
            to=dst,
            add_layers=[layer],
            options=options,
        )
        again = build(
            client,
            images.pushed.ref("base", docker=docker),
            to=f"oci:{tmp_path / 'l'}:built",
            add_layers=[layer],
            options=options,
        )
    assert again.digest == result.digest  # the same inputs, the same digest, anywhere
    assert result.blobs["uploaded"] == 3  # the layer once, one config per platform
    assert result.bytes["uploaded"] == layer.size + sum(i.config.size for i in result.images)
    expected = "application/vnd.docker.image.rootfs.diff.tar.gzip" if docker else layer.media_type
    assert result.images[0].layers[-1].descriptor.media_type == expected
    for arch in ARCHES:
        # skopeo's oci: transport reads only OCI entries of index.json, not a Docker list.
        places = [(f"docker://{dst}", "reg")]
        places += [] if docker else [(f"oci:{tmp_path / 'l'}:built", "lay")]
        for where, sub in places:
            back = read_back(where, tmp_path / sub / arch, arch)
            check_layers(back)
            assert back.text("app/new.txt") == "new layer\n"
            assert back.text("etc/base.txt") == f"base {arch}\n"
            assert back.config["history"][-1] == {
                "created": "2024-05-01T12:00:00Z",
                "created_by": "regshift append dir:app",
            }
