"""OCI layouts interoperate with skopeo and umoci, in both directions.

regshift writes, skopeo / umoci read; skopeo / umoci write, regshift reads (and verifies
every blob). umoci 0.4.7 resolves a tag down to one image manifest and refuses a tag on a
multi-platform index ("tag is ambiguous"), so the umoci tests use single-image tags; the
index is exercised with skopeo. Missing binaries fail the tests, never skip them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from regshift.digests import compute_digest
from regshift.layout import Layout
from regshift.mediatypes import MediaType
from regshift.sample import SampleImage, SampleIndex, random_image, random_index

from support import run_cli

_TIMEOUT = 60


@dataclass(frozen=True)
class Tools:
    skopeo: str
    umoci: str
    policy: Path  # skopeo signature policy: accept anything (local directories only)

    def run(self, *args: str | Path, cwd: Path | None = None) -> str:
        cmd = [str(a) for a in args]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_TIMEOUT, cwd=cwd, check=False
        )
        if proc.returncode != 0:
            pytest.fail(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}",
                pytrace=False,
            )
        return proc.stdout

    def skopeo_run(self, *args: str | Path) -> str:
        return self.run(self.skopeo, "--policy", self.policy, *args)

    def umoci_run(self, *args: str | Path) -> str:
        return self.run(self.umoci, *args)


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Tools:
    found = {name: shutil.which(name) for name in ("skopeo", "umoci")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found on PATH;"
            " install with: apt-get install -y skopeo umoci",
            pytrace=False,
        )
    policy = tmp_path_factory.mktemp("skopeo") / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    skopeo, umoci = found["skopeo"], found["umoci"]
    assert skopeo is not None and umoci is not None
    return Tools(skopeo=skopeo, umoci=umoci, policy=policy)


def write_image(layout: Layout, image: SampleImage, tag: str | None) -> None:
    for blob in image.blobs:
        layout.write_blob(compute_digest(blob), len(blob), [blob])
    layout.put_manifest(image.manifest, tag)


def write_index(layout: Layout, index: SampleIndex, tag: str) -> None:
    for image in index.images:
        for blob in image.blobs:
            layout.write_blob(compute_digest(blob), len(blob), [blob])
        child = image.manifest
        layout.write_blob(child.digest, child.size, [child.raw])
    layout.put_manifest(index.manifest, tag)


def assert_index_complete(layout: Layout, tag: str, index: SampleIndex) -> None:
    got = layout.get_manifest(tag)
    assert got.raw == index.manifest.raw
    for image in index.images:
        assert layout.get_manifest(image.manifest.digest).raw == image.manifest.raw
        for blob in image.blobs:
            assert layout.has_blob(compute_digest(blob), len(blob))
    assert layout.verify() == []


# --------------------------------------------------------------------------- regshift -> tools


def test_skopeo_reads_a_regshift_index(tools: Tools, tmp_path: Path) -> None:
    index = random_index(seed=101, platforms=("linux/amd64", "linux/arm64/v8"))
    ours = Layout(tmp_path / "ours", create=True)
    write_index(ours, index, "v1")

    raw = subprocess.run(
        [tools.skopeo, "--policy", str(tools.policy), "inspect", "--raw", f"oci:{ours.path}:v1"],
        capture_output=True,
        timeout=_TIMEOUT,
        check=True,
    ).stdout
    assert raw == index.manifest.raw  # the very bytes we stored

    other = tmp_path / "other"
    tools.skopeo_run("copy", "--all", f"oci:{ours.path}:v1", f"oci:{other}:v1")
    assert_index_complete(Layout(other), "v1", index)


def test_skopeo_reads_one_platform_of_a_regshift_index(tools: Tools, tmp_path: Path) -> None:
    index = random_index(seed=102, platforms=("linux/amd64", "linux/arm64/v8"))
    ours = Layout(tmp_path / "ours", create=True)
    write_index(ours, index, "v1")
    arm = index.images[1].manifest
    out = tools.skopeo_run(
        "--override-arch", "arm64", "--override-variant", "v8",
        "inspect", "--raw", f"oci:{ours.path}:v1",
    )  # fmt: skip
    assert out.encode() == index.manifest.raw  # --raw does not pick a platform
    copied = tmp_path / "arm"
    tools.skopeo_run(
        "--override-arch", "arm64", "--override-variant", "v8",
        "copy", f"oci:{ours.path}:v1", f"oci:{copied}:arm",
    )  # fmt: skip
    assert Layout(copied).get_manifest("arm").raw == arm.raw


def test_umoci_reads_a_regshift_image(tools: Tools, tmp_path: Path) -> None:
    image = random_image(seed=103, layers=3)
    ours = Layout(tmp_path / "ours", create=True)
    write_image(ours, image, "v1")
    write_index(ours, random_index(seed=104), "multi")  # umoci lists it, cannot stat it

    assert tools.umoci_run("ls", "--layout", ours.path).split() == ["v1", "multi"]
    stat = json.loads(tools.umoci_run("stat", "--json", "--image", f"{ours.path}:v1"))
    assert [h["layer"]["digest"] for h in stat["history"]] == [
        d.digest for d in image.manifest.layers
    ]

    bundle = tmp_path / "bundle"
    tools.umoci_run("unpack", "--rootless", "--image", f"{ours.path}:v1", bundle)
    files = sorted(p.name for p in (bundle / "rootfs").iterdir())
    assert len(files) == 3 and all(name.startswith("data-") for name in files)

    # umoci writes a new image into our layout; regshift reads it and our tags survive.
    (bundle / "rootfs" / "added.txt").write_text("from umoci\n")
    tools.umoci_run("repack", "--image", f"{ours.path}:v2", bundle)
    layout = Layout(ours.path)
    assert layout.tags() == ["v1", "multi", "v2"]
    assert layout.get_manifest("v1").raw == image.manifest.raw
    v2 = layout.get_manifest("v2")
    assert v2.media_type == MediaType.OCI_MANIFEST and len(v2.layers) == 4
    assert layout.verify() == []


# --------------------------------------------------------------------------- tools -> regshift


def test_regshift_reads_a_skopeo_layout(tools: Tools, tmp_path: Path) -> None:
    index = random_index(seed=105, platforms=("linux/amd64", "linux/arm/v7", "linux/s390x"))
    ours = Layout(tmp_path / "ours", create=True)
    write_index(ours, index, "v1")
    theirs = tmp_path / "skopeo"
    tools.skopeo_run("copy", "--all", f"oci:{ours.path}:v1", f"oci:{theirs}:x")
    tools.skopeo_run("copy", "--all", f"oci:{ours.path}:v1", f"oci:{theirs}:y")

    layout = Layout(theirs)
    assert layout.tags() == ["x", "y"]
    assert_index_complete(layout, "x", index)
    assert layout.resolve("y").digest == index.manifest.digest

    # regshift adds a tag to skopeo's layout; skopeo still reads all of it.
    extra = random_image(seed=106)
    write_image(layout, extra, "z")
    out = tools.skopeo_run("inspect", "--raw", f"oci:{theirs}:z")
    assert out.encode() == extra.manifest.raw
    tools.skopeo_run("copy", "--all", f"oci:{theirs}:x", f"oci:{tmp_path / 'again'}:x")
    assert_index_complete(Layout(tmp_path / "again"), "x", index)


def test_regshift_reads_an_untagged_skopeo_layout_as_skopeo_does(
    tools: Tools, tmp_path: Path
) -> None:
    """``skopeo copy … oci:PATH`` (no tag) writes one untagged entry, and skopeo reads it back
    as ``oci:PATH``: so does regshift (a lone entry is what an untagged reference names)."""
    image = random_image(seed=107)
    ours = Layout(tmp_path / "ours", create=True)
    write_image(ours, image, "v1")
    theirs = tmp_path / "untagged"
    tools.skopeo_run("copy", f"oci:{ours.path}:v1", f"oci:{theirs}")
    assert Layout(theirs).tags() == []
    digest = run_cli("digest", f"oci:{theirs}")
    assert digest.code == 0, digest.stderr
    assert digest.stdout.strip() == image.manifest.digest
    manifest = run_cli("manifest", f"oci:{theirs}")
    assert manifest.stdout_bytes == image.manifest.raw
    copied = run_cli("copy", f"oci:{theirs}", f"oci:{tmp_path / 'again'}:v2")
    assert copied.code == 0, copied.stderr
    assert Layout(tmp_path / "again").resolve("v2").digest == image.manifest.digest


def test_regshift_reads_a_umoci_layout(tools: Tools, tmp_path: Path) -> None:
    d = tmp_path / "umoci"
    tools.umoci_run("init", "--layout", d)
    tools.umoci_run("new", "--image", f"{d}:t")
    tools.umoci_run(
        "config", "--image", f"{d}:t", "--config.cmd=/bin/true", "--author=regshift tests"
    )
    bundle = tmp_path / "bundle"
    tools.umoci_run("unpack", "--rootless", "--image", f"{d}:t", bundle)
    (bundle / "rootfs" / "hello.txt").write_text("hello\n")
    tools.umoci_run("repack", "--image", f"{d}:t", bundle)

    layout = Layout(d)
    assert layout.tags() == ["t"]
    manifest = layout.get_manifest("t")
    assert manifest.media_type == MediaType.OCI_MANIFEST
    assert len(manifest.layers) == 1
    assert manifest.config is not None
    with layout.open_blob(manifest.config.digest) as chunks:
        config = json.loads(b"".join(chunks))
    assert config["config"]["Cmd"] == ["/bin/true"]
    assert config["author"] == "regshift tests"
    assert layout.verify() == []

    # regshift tags an image in umoci's layout; umoci lists and reads both.
    ours = random_image(seed=107)
    write_image(layout, ours, "ours")
    layout.put_manifest(manifest, "t-copy")
    assert tools.umoci_run("ls", "--layout", d).split() == ["t", "ours", "t-copy"]
    tools.umoci_run("stat", "--image", f"{d}:ours")
    stat = json.loads(tools.umoci_run("stat", "--json", "--image", f"{d}:t-copy"))
    assert stat["history"][-1]["layer"]["digest"] == manifest.layers[0].digest
