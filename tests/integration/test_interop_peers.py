"""regshift and the real peers, both directions, asserted on digests and bytes.

What regshift writes (tags, copies, multi-platform indexes, layouts) is read by crane, regctl,
oras and skopeo; what they write (crane append/mutate/index append, regctl image mod/index
create, oras push, their layouts) regshift reads, tags and copies byte for byte. Every
registry case runs against CNCF distribution 2.8 and refreg (go-containerregistry's registry,
with the referrers API). Peers come from ``scripts/peers``; a missing one fails.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from regshift.digests import compute_digest
from regshift.manifests import Platform
from regshift.sample import SampleIndex, random_image, random_index

from harness import interop
from harness.interop import Peers, RefReg
from harness.registry import RegistryServer
from support import run_cli, seed

# The shared fixtures interop_peers, interop_refreg and skopeo_policy (see harness.interop).
interop_peers_fixture = interop.interop_peers_fixture
interop_refreg_fixture = interop.interop_refreg_fixture
skopeo_policy_fixture = interop.skopeo_policy_fixture

PLATFORMS = ("linux/amd64", "linux/arm64/v8")


@pytest.fixture(params=["distribution", "refreg"])
def target(request: pytest.FixtureRequest) -> str:
    """The host of a second registry: distribution 2.8, or refreg."""
    name = "other_registry" if request.param == "distribution" else "interop_refreg"
    server: RegistryServer | RefReg = request.getfixturevalue(name)
    return server.host


def _host(ref: str) -> str:
    return ref.split("/", 1)[0]


def _repo(ref: str) -> str:
    """``host/repo`` of ``host/repo:tag`` or ``host/repo@digest``."""
    if "@" in ref:
        return ref.split("@", 1)[0]
    host, rest = ref.split("/", 1)
    return f"{host}/{rest.rsplit(':', 1)[0]}"


def assert_peers_read_manifest(
    interop_peers: Peers, ref: str, raw: bytes, policy: Path, hosts: tuple[str, ...] = ()
) -> None:
    """crane, regctl, oras and skopeo resolve ``ref`` to sha256(raw) and fetch exactly ``raw``."""
    digest = compute_digest(raw)
    hosts = hosts or (_host(ref),)
    assert interop_peers.crane_run("digest", ref).decode().strip() == digest
    assert interop_peers.crane_run("manifest", ref) == raw
    assert interop_peers.regctl_run(hosts, "image", "digest", ref).decode().strip() == digest
    assert interop_peers.regctl_run(hosts, "manifest", "get", "--format", "raw-body", ref) == raw
    assert interop_peers.oras_run(["resolve"], ref).decode().strip() == digest
    assert interop_peers.oras_run(["manifest", "fetch"], ref) == raw
    skopeo = interop_peers.skopeo_run(
        "inspect", "--raw", "--tls-verify=false", f"docker://{ref}", policy=policy
    )
    assert skopeo == raw


def _tar_files(data: bytes) -> dict[str, bytes]:
    """The regular files of a tar stream, by name."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                files[member.name] = handle.read()
    return files


def assert_peers_read_content(
    interop_peers: Peers, ref: str, sample: SampleIndex, skopeo_policy: Path
) -> None:
    """Every platform's manifest, config and layers, fetched by each peer, are the bytes
    regshift wrote; crane's exported filesystem is the layers' files."""
    repo = _repo(ref)
    hosts = (_host(ref),)
    for image, platform in zip(sample.images, PLATFORMS, strict=True):
        child = f"{repo}@{image.manifest.digest}"
        assert (
            interop_peers.crane_run("manifest", "--platform", platform, ref) == image.manifest.raw
        )
        assert interop_peers.crane_run("config", "--platform", platform, ref) == image.blobs[0]
        config = interop_peers.skopeo_run(
            "inspect",
            "--config",
            "--raw",
            "--tls-verify=false",
            f"docker://{child}",
            policy=skopeo_policy,
        )
        assert config == image.blobs[0]
        for blob in image.blobs:
            digest = compute_digest(blob)
            assert interop_peers.crane_run("blob", f"{repo}@{digest}") == blob
            assert interop_peers.regctl_run(hosts, "blob", "get", repo, digest) == blob
            assert (
                interop_peers.oras_run(["blob", "fetch"], "--output", "-", f"{repo}@{digest}")
                == blob
            )
        expected: dict[str, bytes] = {}
        for layer in image.blobs[1:]:
            expected.update(_tar_files(gzip.decompress(layer)))
        exported = interop_peers.crane_run("export", "--platform", platform, ref, "-")
        assert _tar_files(exported) == expected
    interop_peers.crane_run("validate", "--remote", ref)


def test_peers_read_what_regshift_tags_and_copies(
    interop_peers: Peers,
    open_registry: RegistryServer,
    target: str,
    repo_name: str,
    skopeo_policy: Path,
) -> None:
    sample = random_index(seed=1401, platforms=PLATFORMS)
    src = str(seed(open_registry.host, repo_name, "v1", sample))
    tagged = run_cli("tag", src, "stable")
    assert tagged.code == 0, tagged.stderr
    copied = f"{target}/{repo_name}:v1"
    result = run_cli("copy", "--json", src, copied)
    assert result.code == 0, result.stderr
    assert result.json()["digest"] == sample.manifest.digest

    for ref in (f"{open_registry.host}/{repo_name}:stable", copied):
        assert_peers_read_manifest(interop_peers, ref, sample.manifest.raw, skopeo_policy)
    assert_peers_read_content(interop_peers, copied, sample, skopeo_policy)


def test_peers_read_an_index_regshift_makes(
    interop_peers: Peers,
    open_registry: RegistryServer,
    target: str,
    repo_name: str,
    skopeo_policy: Path,
) -> None:
    """``copy --platform`` twice makes a new index (the one manifest regshift serialises
    itself): every peer agrees on its digest and bytes and finds exactly those platforms."""
    sample = random_index(seed=1406, platforms=("linux/amd64", "linux/arm64/v8", "linux/s390x"))
    src = str(seed(open_registry.host, repo_name, "v1", sample))
    dst = f"{target}/{repo_name}:two"
    result = run_cli(
        "copy", "--json", "--platform", "linux/amd64", "--platform", "linux/s390x", src, dst
    )
    assert result.code == 0, result.stderr
    digest = result.json()["digest"]
    assert digest != sample.manifest.digest
    raw = run_cli("manifest", dst).stdout_bytes
    assert compute_digest(raw) == digest

    assert_peers_read_manifest(interop_peers, dst, raw, skopeo_policy)
    interop_peers.crane_run("validate", "--remote", dst)
    entries = json.loads(raw)["manifests"]
    kept = (sample.images[0], sample.images[2])
    assert [e["digest"] for e in entries] == [image.manifest.digest for image in kept]
    for image, platform in zip(kept, ("linux/amd64", "linux/s390x"), strict=True):
        got = interop_peers.crane_run("manifest", "--platform", platform, dst)
        assert got == image.manifest.raw
    listed = interop_peers.regctl_run(
        (target,), "manifest", "get", "--format", "{{range .Manifests}}{{.Platform}} {{end}}", dst
    )
    assert listed.decode().split() == ["linux/amd64", "linux/s390x"]


def test_peers_read_a_layout_regshift_writes(
    interop_peers: Peers,
    open_registry: RegistryServer,
    target: str,
    repo_name: str,
    skopeo_policy: Path,
    tmp_path: Path,
) -> None:
    sample = random_index(seed=1402, platforms=PLATFORMS)
    src = str(seed(open_registry.host, repo_name, "v1", sample))
    layout = tmp_path / "layout"
    result = run_cli("copy", src, f"oci:{layout}:v1")
    assert result.code == 0, result.stderr

    raw = sample.manifest.raw
    assert (
        interop_peers.regctl_run(
            (), "manifest", "get", "--format", "raw-body", f"ocidir://{layout}:v1"
        )
        == raw
    )
    assert interop_peers.oras_run(["manifest", "fetch"], "--oci-layout", f"{layout}:v1") == raw
    assert (
        interop_peers.skopeo_run("inspect", "--raw", f"oci:{layout}:v1", policy=skopeo_policy)
        == raw
    )
    arm = sample.images[1]
    got = interop_peers.regctl_run(
        (), "blob", "get", f"ocidir://{layout}", compute_digest(arm.blobs[2])
    )
    assert got == arm.blobs[2]

    # crane pushes a layout holding one index as that very index; regctl copies it out.
    pushed, copied = f"{target}/{repo_name}:crane", f"{target}/{repo_name}:regctl"
    interop_peers.crane_run("push", layout, pushed)
    interop_peers.regctl_run((target,), "image", "copy", f"ocidir://{layout}:v1", copied)
    for ref in (pushed, copied):
        assert interop_peers.crane_run("manifest", ref) == raw
        interop_peers.crane_run("validate", "--remote", ref)


def _tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def _regshift_copies_byte_for_byte(src: str, dst: str, interop_peers: Peers) -> str:
    """regshift reads ``src`` as the peer wrote it, tags it, copies it to ``dst``: the bytes
    every tool sees at each place are the peer's own. Returns the digest."""
    original = interop_peers.crane_run("manifest", src)
    digest = compute_digest(original)
    read = run_cli("manifest", src)
    assert read.code == 0, read.stderr
    assert read.stdout_bytes == original
    assert run_cli("digest", src).stdout.strip() == digest
    retag = run_cli("tag", src, "regshift-tagged")
    assert retag.code == 0, retag.stderr
    copied = run_cli("copy", "--json", src, dst)
    assert copied.code == 0, copied.stderr
    assert copied.json()["digest"] == digest
    assert interop_peers.crane_run("manifest", f"{_repo(src)}:regshift-tagged") == original
    assert interop_peers.crane_run("manifest", dst) == original
    assert (
        interop_peers.regctl_run((_host(dst),), "manifest", "get", "--format", "raw-body", dst)
        == original
    )
    interop_peers.crane_run("validate", "--remote", dst)
    return digest


def test_regshift_copies_what_crane_writes(
    interop_peers: Peers, open_registry: RegistryServer, target: str, repo_name: str, tmp_path: Path
) -> None:
    repo = f"{open_registry.host}/{repo_name}"
    layer = _tarball(tmp_path / "layer.tar", {"etc/crane.txt": b"written by crane\n"})
    interop_peers.crane_run("append", "-f", layer, "-t", f"{repo}:base")  # Docker media types
    interop_peers.crane_run(
        "mutate", f"{repo}:base", "--set-platform", "linux/amd64", "-t", f"{repo}:amd64"
    )
    interop_peers.crane_run(
        "mutate",
        f"{repo}:base",
        "--set-platform",
        "linux/arm64",
        "-l",
        "by=crane",
        "-t",
        f"{repo}:arm64",
    )
    interop_peers.crane_run(
        "index",
        "append",
        "--docker-empty-base",
        "-m",
        f"{repo}:amd64",
        "-m",
        f"{repo}:arm64",
        "-t",
        f"{repo}:multi",
    )

    dst = f"{target}/{repo_name}:multi"
    _regshift_copies_byte_for_byte(f"{repo}:multi", dst, interop_peers)
    doc = run_cli("inspect", "--json", dst).json()
    assert doc["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert [p["platform"] for p in doc["platforms"]] == ["linux/amd64", "linux/arm64"]
    config = json.loads(interop_peers.crane_run("config", "--platform", "linux/arm64", dst))
    assert config["config"]["Labels"] == {"by": "crane"}
    files = _tar_files(interop_peers.crane_run("export", "--platform", "linux/amd64", dst, "-"))
    assert files == {"etc/crane.txt": b"written by crane\n"}


def test_regshift_copies_what_regctl_writes(
    interop_peers: Peers, open_registry: RegistryServer, target: str, repo_name: str
) -> None:
    repo = f"{open_registry.host}/{repo_name}"
    hosts = (open_registry.host,)
    amd = random_image(seed=1403, platform=Platform("linux", "amd64"))
    arm = random_image(seed=1404, platform=Platform("linux", "arm64", "v8"))
    seed(open_registry.host, repo_name, "amd64", amd)
    seed(open_registry.host, repo_name, "arm64", arm)
    interop_peers.regctl_run(
        hosts, "image", "mod", f"{repo}:amd64", "--label", "by=regctl", "--create", "mod"
    )
    interop_peers.regctl_run(
        hosts, "index", "create", f"{repo}:multi", "--ref", f"{repo}:mod", "--ref", f"{repo}:arm64"
    )

    dst = f"{target}/{repo_name}:multi"
    _regshift_copies_byte_for_byte(f"{repo}:multi", dst, interop_peers)
    doc = run_cli("inspect", "--json", dst).json()
    assert sorted(p["platform"] for p in doc["platforms"]) == ["linux/amd64", "linux/arm64/v8"]
    config = json.loads(interop_peers.crane_run("config", "--platform", "linux/amd64", dst))
    assert config["config"]["Labels"]["by"] == "regctl"
    arm_layer = compute_digest(arm.blobs[1])
    assert (
        interop_peers.regctl_run((target,), "blob", "get", dst.rsplit(":", 1)[0], arm_layer)
        == arm.blobs[1]
    )


def test_regshift_copies_what_oras_pushes(
    interop_peers: Peers, open_registry: RegistryServer, target: str, repo_name: str, tmp_path: Path
) -> None:
    work = tmp_path / "push"
    work.mkdir()
    (work / "notes.txt").write_bytes(b"an artifact pushed by oras\n")
    (work / "data.json").write_bytes(b'{"answer": 42}\n')
    src = f"{open_registry.host}/{repo_name}:artifact"
    interop_peers.run(
        interop_peers.oras,
        "push",
        "--plain-http",
        "--artifact-type",
        "application/vnd.regshift.test+json",
        src,
        "notes.txt:text/plain",
        "data.json:application/json",
        cwd=work,
    )

    dst = f"{target}/{repo_name}:artifact"
    _regshift_copies_byte_for_byte(src, dst, interop_peers)
    manifest = json.loads(interop_peers.oras_run(["manifest", "fetch"], dst))
    assert manifest["artifactType"] == "application/vnd.regshift.test+json"
    pulled = tmp_path / "pulled"
    interop_peers.oras_run(["pull"], "--output", pulled, dst)
    assert (pulled / "notes.txt").read_bytes() == b"an artifact pushed by oras\n"
    assert (pulled / "data.json").read_bytes() == b'{"answer": 42}\n'


def test_regshift_reads_layouts_peers_write(
    interop_peers: Peers, open_registry: RegistryServer, target: str, repo_name: str, tmp_path: Path
) -> None:
    sample = random_index(seed=1405, platforms=PLATFORMS)
    src = str(seed(open_registry.host, repo_name, "v1", sample))
    hosts = (open_registry.host,)
    crane_dir, regctl_dir, oras_dir = (tmp_path / name for name in ("crane", "regctl", "oras"))
    interop_peers.crane_run("pull", "--format", "oci", src, crane_dir)
    interop_peers.regctl_run(hosts, "image", "copy", src, f"ocidir://{regctl_dir}:v1")
    interop_peers.run(
        interop_peers.oras, "cp", "--from-plain-http", src, "--to-oci-layout", f"{oras_dir}:v1"
    )

    layouts = {
        "crane": f"oci:{crane_dir}",
        "regctl": f"oci:{regctl_dir}:v1",
        "oras": f"oci:{oras_dir}:v1",
    }
    for name, layout in layouts.items():
        read = run_cli("manifest", layout)
        assert read.code == 0, f"{name}: {read.stderr}"
        assert read.stdout_bytes == sample.manifest.raw, name
        dst = f"{target}/{repo_name}:from-{name}"
        copied = run_cli("copy", "--json", layout, dst)
        assert copied.code == 0, f"{name}: {copied.stderr}"
        assert copied.json()["digest"] == sample.manifest.digest
        assert interop_peers.crane_run("manifest", dst) == sample.manifest.raw
        interop_peers.crane_run("validate", "--remote", dst)
