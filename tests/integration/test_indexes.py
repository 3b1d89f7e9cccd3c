"""`regshift index create | add | remove | annotate` against the real registry, checked with skopeo.

* two single-platform images -> one index whose entries are the children's own digests, with
  the platforms their configs name; skopeo reads it, copies it (``--all``) into a layout, and
  ``regshift copy`` keeps its digest across registries;
* sources on another registry and in an ``oci:`` layout are streamed, on the same registry
  mounted; remove then add gives back the same entries (and digest, in the same order);
* refusals write no tag: a duplicate platform (exit 5), a missing source (exit 4); a dry run
  writes nothing at all;
* Docker inputs: an OCI index of Docker manifests, and ``--format docker`` (a manifest list).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

import regshift
from regshift.digests import compute_digest
from regshift.manifests import Platform, parse_manifest
from regshift.mediatypes import MediaType
from regshift.reference import parse_reference
from regshift.sample import SampleImage, random_image, random_index

from artifacts import attach_artifact, signature_of
from harness.registry import RegistryServer
from support import client_for, registry_user, run_cli, seed

ACCEPT = ", ".join(
    [
        MediaType.OCI_INDEX,
        MediaType.OCI_MANIFEST,
        MediaType.DOCKER_MANIFEST_LIST,
        MediaType.DOCKER_MANIFEST,
    ]
)
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")  # the config says arm64/v8: the entry says arm64


def _images(seed_base: int, docker: bool = False) -> tuple[SampleImage, SampleImage]:
    return (
        random_image(seed=seed_base, platform=AMD64, docker=docker),
        random_image(seed=seed_base + 1, platform=ARM64, docker=docker),
    )


def _seed_pair(
    registry: RegistryServer, repo: str, seed_base: int, docker: bool = False
) -> tuple[SampleImage, SampleImage]:
    amd, arm = _images(seed_base, docker)
    seed(registry.host, repo, "amd64", amd)
    seed(registry.host, repo, "arm64", arm)
    return amd, arm


def _head(registry: RegistryServer, repo: str, ref: str) -> int:
    url = f"{registry.url}/v2/{repo}/manifests/{ref}"
    return httpx.head(url, headers={"Accept": ACCEPT}).status_code


def _skopeo_raw(ref: str) -> dict[str, Any]:
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", ref], check=True, capture_output=True
    ).stdout
    doc: dict[str, Any] = json.loads(out)
    return doc


def _platforms(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(m["digest"], m["platform"]) for m in doc["manifests"]]


def test_create_two_platforms_read_by_skopeo(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    amd, arm = _seed_pair(open_registry, repo_name, 4100)
    host = open_registry.host
    dst = f"{host}/{repo_name}:multi"
    result = run_cli(
        "index", "create", f"{host}/{repo_name}:amd64", f"{host}/{repo_name}:arm64",
        "--to", dst, "--json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    doc = result.json()

    raw = _skopeo_raw(f"docker://{dst}")
    assert raw["mediaType"] == MediaType.OCI_INDEX
    assert _platforms(raw) == [
        (amd.manifest.digest, {"architecture": "amd64", "os": "linux"}),
        (arm.manifest.digest, {"architecture": "arm64", "os": "linux"}),
    ]
    assert [m["mediaType"] for m in raw["manifests"]] == [MediaType.OCI_MANIFEST] * 2
    assert [m["size"] for m in raw["manifests"]] == [amd.manifest.size, arm.manifest.size]
    # --json: the digest of what skopeo read, the entries with platforms and digests, what moved
    with client_for() as client:
        stored = client.get_manifest(parse_reference(dst))
    assert doc["digest"] == stored.digest and doc["tags"] == ["multi"]
    assert doc["previous"] is None and doc["dryRun"] is False
    assert [(e["platform"], e["digest"]) for e in doc["entries"]] == [
        ("linux/amd64", amd.manifest.digest),
        ("linux/arm64", arm.manifest.digest),
    ]
    assert doc["entries"][0]["source"] == f"{host}/{repo_name}:amd64"
    assert doc["blobs"] == {"mounted": 0, "streamed": 0, "skipped": 6}  # same repository
    assert doc["manifests"] == 1 and json.loads(stored.raw) == doc["index"]

    # skopeo copies every platform into a layout, the index digest kept
    out = tmp_path / "layout"
    subprocess.run(
        ["skopeo", "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
         f"docker://{dst}", f"oci:{out}:x"],
        check=True, capture_output=True,
    )  # fmt: skip
    index_json = json.loads((out / "index.json").read_text())
    assert index_json["manifests"][0]["digest"] == stored.digest
    for image in (amd, arm):
        assert (out / "blobs" / "sha256" / image.manifest.digest.split(":")[1]).exists()

    # regshift copy to another registry keeps the index digest
    copied = run_cli("copy", dst, f"{other_registry.host}/{repo_name}:multi", "--json")
    assert copied.code == 0, copied.stderr
    assert copied.json()["digest"] == stored.digest
    assert _skopeo_raw(f"docker://{other_registry.host}/{repo_name}:multi") == raw


def test_sources_across_registries_and_layouts(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    """amd64 on another registry (streamed), arm64 in a layout (streamed), a third platform
    in another repository of the destination registry (mounted)."""
    amd, arm = _images(4200)
    s390 = random_image(seed=4203, platform=Platform("linux", "s390x"))
    seed(other_registry.host, repo_name, "amd64", amd)
    seed(open_registry.host, f"{repo_name}-src", "arm64", arm)
    seed(open_registry.host, f"{repo_name}-src", "s390x", s390)
    layout = f"oci:{tmp_path / 'layout'}:arm64"
    assert run_cli("copy", f"{open_registry.host}/{repo_name}-src:arm64", layout).code == 0
    dst = f"{open_registry.host}/{repo_name}:multi"

    result = run_cli(
        "index", "create", f"{other_registry.host}/{repo_name}:amd64", layout,
        f"{open_registry.host}/{repo_name}-src:s390x", "--to", dst, "--json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["blobs"] == {"mounted": 3, "streamed": 6, "skipped": 0}
    assert doc["manifests"] == 4  # three children by digest, then the index
    raw = _skopeo_raw(f"docker://{dst}")
    assert [d for d, _ in _platforms(raw)] == [
        amd.manifest.digest,
        arm.manifest.digest,
        s390.manifest.digest,
    ]
    assert [p["architecture"] for _, p in _platforms(raw)] == ["amd64", "arm64", "s390x"]
    with client_for() as client:  # every child is there byte for byte
        for image in (amd, arm, s390):
            ref = parse_reference(f"{dst.rsplit(':', 1)[0]}@{image.manifest.digest}")
            assert client.get_manifest(ref).raw == image.manifest.raw

    # and into a layout destination, which skopeo reads
    out = tmp_path / "out"
    made = run_cli("index", "create", dst.replace(":multi", ":multi"), "--to", f"oci:{out}:v1")
    assert made.code == 0, made.stderr
    listed = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{out}:v1"], check=True, capture_output=True
    ).stdout
    assert [m["digest"] for m in json.loads(listed)["manifests"]] == [d for d, _ in _platforms(raw)]


def test_index_source_gives_its_entries_filtered(
    open_registry: RegistryServer, repo_name: str
) -> None:
    sample = random_index(seed=4300, platforms=("linux/amd64", "linux/arm64/v8", "linux/ppc64le"))
    seed(open_registry.host, repo_name, "all", sample)
    extra = random_image(seed=4305, platform=Platform("linux", "s390x"))
    seed(open_registry.host, repo_name, "s390x", extra)
    host = open_registry.host
    result = run_cli(
        "index", "create", f"{host}/{repo_name}:all", f"{host}/{repo_name}:s390x",
        "--platform", "linux/arm64", "--platform", "linux/s390x", "--platform", "linux/amd64",
        "--to", f"{host}/{repo_name}:picked", "--json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    entries = result.json()["index"]["manifests"]
    # entries of an index source are listed as that index lists them, in its order
    assert entries[:2] == json.loads(sample.manifest.raw)["manifests"][:2]
    assert [e["digest"] for e in entries] == [
        sample.images[0].manifest.digest,
        sample.images[1].manifest.digest,
        extra.manifest.digest,
    ]


def test_remove_then_add_gives_back_the_same_index(
    open_registry: RegistryServer, repo_name: str
) -> None:
    _seed_pair(open_registry, repo_name, 4400)
    base = f"{open_registry.host}/{repo_name}"
    made = run_cli("index", "create", f"{base}:amd64", f"{base}:arm64", "--to", f"{base}:m")
    assert made.code == 0, made.stderr
    original = _skopeo_raw(f"docker://{base}:m")
    with client_for() as client:
        first = client.get_manifest(parse_reference(f"{base}:m")).digest

    removed = run_cli("index", "remove", f"{base}:m", "--platform", "linux/arm64/v8", "--json")
    assert removed.code == 0, removed.stderr
    assert [e["platform"] for e in removed.json()["removed"]] == ["linux/arm64"]
    assert removed.json()["previous"] == first
    assert [p["architecture"] for _, p in _platforms(_skopeo_raw(f"docker://{base}:m"))] == [
        "amd64"
    ]

    added = run_cli("index", "add", f"{base}:m", f"{base}:arm64", "--json")
    assert added.code == 0, added.stderr
    assert _skopeo_raw(f"docker://{base}:m") == original
    assert added.json()["digest"] == first  # same entries, same order: same digest

    # removing the first and adding it back: the same set of entries, in another order
    assert run_cli("index", "remove", f"{base}:m", "--digest", _platforms(original)[0][0]).code == 0
    assert run_cli("index", "add", f"{base}:m", f"{base}:amd64").code == 0
    again = _skopeo_raw(f"docker://{base}:m")
    assert sorted(_platforms(again), key=str) == sorted(_platforms(original), key=str)
    assert _platforms(again) == list(reversed(_platforms(original)))


def test_add_replaces_the_entry_of_a_platform_in_place(
    open_registry: RegistryServer, repo_name: str
) -> None:
    _seed_pair(open_registry, repo_name, 4500)
    newer = random_image(seed=4509, platform=AMD64)
    seed(open_registry.host, repo_name, "amd64-new", newer)
    base = f"{open_registry.host}/{repo_name}"
    assert (
        run_cli("index", "create", f"{base}:amd64", f"{base}:arm64", "--to", f"{base}:m").code == 0
    )
    result = run_cli("index", "add", f"{base}:m", f"{base}:amd64-new")
    assert result.code == 0, result.stderr
    assert "note: replaced the linux/amd64 entry" in result.stdout
    digests = [d for d, _ in _platforms(_skopeo_raw(f"docker://{base}:m"))]
    assert digests[0] == newer.manifest.digest and len(digests) == 2

    # with duplicates allowed, the entry is added after the others instead
    dup = run_cli("index", "add", f"{base}:m", f"{base}:amd64", "--allow-duplicate-platforms")
    assert dup.code == 0, dup.stderr
    assert len(_skopeo_raw(f"docker://{base}:m")["manifests"]) == 3


def test_duplicate_platform_refused_and_no_tag(
    open_registry: RegistryServer, repo_name: str
) -> None:
    one = random_image(seed=4600, platform=AMD64)
    two = random_image(seed=4601, platform=Platform("linux", "x86_64"))  # amd64 too
    seed(open_registry.host, repo_name, "one", one)
    seed(open_registry.host, repo_name, "two", two)
    base = f"{open_registry.host}/{repo_name}"
    result = run_cli("index", "create", f"{base}:one", f"{base}:two", "--to", f"{base}:m")
    assert result.code == 5
    assert result.stderr.count("\n") == 1
    assert "two entries for linux/amd64" in result.stderr
    assert "--allow-duplicate-platforms" in result.stderr
    assert _head(open_registry, repo_name, "m") == 404
    allowed = run_cli(
        "index", "create", f"{base}:one", f"{base}:two", "--to", f"{base}:m",
        "--allow-duplicate-platforms",
    )  # fmt: skip
    assert allowed.code == 0, allowed.stderr
    assert len(_skopeo_raw(f"docker://{base}:m")["manifests"]) == 2


def test_missing_source_exit_4_and_no_tag(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    amd, _ = _seed_pair(open_registry, repo_name, 4700)
    base = f"{open_registry.host}/{repo_name}"
    dst = f"{other_registry.host}/{repo_name}:m"
    result = run_cli("index", "create", f"{base}:amd64", f"{base}:nope", "--to", dst, "--json")
    assert result.code == 4
    assert result.stderr.startswith("regshift: error: ") and result.stderr.count("\n") == 1
    assert "nope" in result.stderr
    assert json.loads(result.stdout)["error"]["exitCode"] == 4
    assert _head(other_registry, repo_name, "m") == 404
    # nothing was sent to the destination: the sources are resolved first
    config = amd.manifest.config
    assert config is not None
    url = f"{other_registry.url}/v2/{repo_name}/blobs/{config.digest}"
    assert httpx.head(url).status_code == 404
    # remove of a platform an index does not have: 4, index unchanged
    assert run_cli("index", "create", f"{base}:amd64", "--to", f"{base}:m").code == 0
    before = _skopeo_raw(f"docker://{base}:m")
    gone = run_cli("index", "remove", f"{base}:m", "--platform", "linux/riscv64")
    assert gone.code == 4 and "no entry for linux/riscv64" in gone.stderr
    assert _skopeo_raw(f"docker://{base}:m") == before


def test_dry_run_writes_nothing(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    amd, arm = _seed_pair(open_registry, repo_name, 4800)
    base = f"{open_registry.host}/{repo_name}"
    dst = f"{other_registry.host}/{repo_name}:m"
    other_registry.mark()
    result = run_cli("index", "create", f"{base}:amd64", f"{base}:arm64", "--to", dst, "--dry-run")
    assert result.code == 0, result.stderr
    assert "plan (dry run; tag now absent)" in result.stdout
    printed = json.loads(result.stdout.strip().splitlines()[-1])  # the index, in full
    assert [m["digest"] for m in printed["manifests"]] == [amd.manifest.digest, arm.manifest.digest]
    assert "stream " in result.stdout
    writes = [r for r in other_registry.requests() if r.method in ("PUT", "POST", "PATCH")]
    assert writes == []
    assert _head(other_registry, repo_name, "m") == 404

    as_json = run_cli(
        "index", "create", f"{base}:amd64", f"{base}:arm64", "--to", dst, "--dry-run", "--json"
    )
    doc = as_json.json()
    assert doc["dryRun"] is True and doc["manifests"] == 0
    assert {s["action"] for s in doc["plan"]} == {"stream"} and len(doc["plan"]) == 6
    assert doc["index"] == printed

    # into a layout that does not exist: not made
    layout = tmp_path / "none"
    dry = run_cli("index", "create", f"{base}:amd64", "--to", f"oci:{layout}:v1", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert not layout.exists()

    # remove / add / annotate dry runs leave the index as it is
    assert (
        run_cli("index", "create", f"{base}:amd64", f"{base}:arm64", "--to", f"{base}:m").code == 0
    )
    before = _skopeo_raw(f"docker://{base}:m")
    for args in (
        ("remove", f"{base}:m", "--platform", "linux/amd64"),
        ("annotate", f"{base}:m", "--annotation", "a=b"),
    ):
        assert run_cli("index", *args, "--dry-run").code == 0
    assert _skopeo_raw(f"docker://{base}:m") == before


def test_annotate_index_and_entries(open_registry: RegistryServer, repo_name: str) -> None:
    _, arm = _seed_pair(open_registry, repo_name, 4900)
    base = f"{open_registry.host}/{repo_name}"
    assert (
        run_cli("index", "create", f"{base}:amd64", f"{base}:arm64", "--to", f"{base}:m").code == 0
    )
    top = run_cli("index", "annotate", f"{base}:m", "--annotation", "org.example.release=1.4")
    assert top.code == 0, top.stderr
    per = run_cli(
        "index", "annotate", f"{base}:m", "--annotation", "org.example.arch=arm",
        "--platform", "linux/arm64", "--to", f"{base}:annotated",
    )  # fmt: skip
    assert per.code == 0, per.stderr
    doc = _skopeo_raw(f"docker://{base}:annotated")
    assert doc["annotations"] == {"org.example.release": "1.4"}
    assert "annotations" not in doc["manifests"][0]
    assert doc["manifests"][1]["annotations"] == {"org.example.arch": "arm"}
    assert doc["manifests"][1]["digest"] == arm.manifest.digest
    assert "annotations" not in _skopeo_raw(f"docker://{base}:m")["manifests"][1]
    bad = run_cli("index", "annotate", f"{base}:m", "--annotation", "novalue")
    assert bad.code == 2


def test_to_another_registry_brings_the_kept_entries(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """remove --to elsewhere: the entries that stay (and their blobs) go along first."""
    amd, arm = _seed_pair(open_registry, repo_name, 5000)
    base = f"{open_registry.host}/{repo_name}"
    assert (
        run_cli("index", "create", f"{base}:amd64", f"{base}:arm64", "--to", f"{base}:m").code == 0
    )
    dst = f"{other_registry.host}/{repo_name}:amd-only"
    result = run_cli(
        "index", "remove", f"{base}:m", "--platform", "linux/arm64", "--to", dst, "--json"
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["blobs"]["streamed"] == 3 and doc["manifests"] == 2
    assert [e["digest"] for e in doc["entries"]] == [amd.manifest.digest]
    assert _head(other_registry, repo_name, amd.manifest.digest) == 200
    assert _head(other_registry, repo_name, arm.manifest.digest) == 404


def test_docker_inputs(open_registry: RegistryServer, repo_name: str, tmp_path: Path) -> None:
    """distribution 2.8 takes an OCI index of Docker manifests, and a Docker manifest list;
    skopeo copies both; a Docker list of an OCI manifest is refused before anything is sent."""
    amd, arm = _seed_pair(open_registry, repo_name, 5100, docker=True)
    base = f"{open_registry.host}/{repo_name}"
    mixed = run_cli("index", "create", f"{base}:amd64", f"{base}:arm64", "--to", f"{base}:oci")
    assert mixed.code == 0, mixed.stderr
    doc = _skopeo_raw(f"docker://{base}:oci")
    assert doc["mediaType"] == MediaType.OCI_INDEX
    assert [m["mediaType"] for m in doc["manifests"]] == [MediaType.DOCKER_MANIFEST] * 2
    out = tmp_path / "mixed"
    subprocess.run(
        ["skopeo", "copy", "--all", "--src-tls-verify=false",
         f"docker://{base}:oci", f"oci:{out}:x"],
        check=True, capture_output=True,
    )  # fmt: skip
    # where the mix is not accepted: a client asking for Docker types only gets a 404
    docker_only = ", ".join([MediaType.DOCKER_MANIFEST_LIST, MediaType.DOCKER_MANIFEST])
    url = f"{open_registry.url}/v2/{repo_name}/manifests"
    assert httpx.get(f"{url}/oci", headers={"Accept": docker_only}).status_code == 404

    listed = run_cli(
        "index", "create", f"{base}:amd64", f"{base}:arm64", "--to", f"{base}:list",
        "--format", "docker",
    )  # fmt: skip
    assert listed.code == 0, listed.stderr
    doc = _skopeo_raw(f"docker://{base}:list")
    assert doc["mediaType"] == MediaType.DOCKER_MANIFEST_LIST
    assert [d for d, _ in _platforms(doc)] == [amd.manifest.digest, arm.manifest.digest]
    # a Docker-only client (Accept: the Docker list type) gets it
    response = httpx.get(f"{url}/list", headers={"Accept": docker_only})
    assert response.status_code == 200 and response.content == _raw(
        open_registry, repo_name, "list"
    )
    oci = random_image(seed=5109, platform=Platform("linux", "s390x"))
    seed(open_registry.host, repo_name, "oci", oci)
    refused = run_cli(
        "index", "create", f"{base}:amd64", f"{base}:oci", "--to", f"{base}:bad",
        "--format", "docker",
    )  # fmt: skip
    assert refused.code == 1 and "Docker schema 2" in refused.stderr
    assert _head(open_registry, repo_name, "bad") == 404


def test_library_and_referrers(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    amd, _ = _seed_pair(open_registry, repo_name, 5200)
    base = f"{open_registry.host}/{repo_name}"
    signature = signature_of(amd.manifest)
    with client_for() as client:
        attach_artifact(client, parse_reference(base), signature)
        result = regshift.index_create(
            client,
            [f"{base}:amd64", f"{base}:arm64"],
            f"{other_registry.host}/{repo_name}:m",
            options=regshift.IndexOptions(referrers=True),
        )
        assert isinstance(result, regshift.IndexResult)
        assert [str(e.platform) for e in result.entries] == ["linux/amd64", "linux/arm64"]
        assert result.referrers == (signature.digest,)
        found = regshift.list_referrers(
            client, f"{other_registry.host}/{repo_name}", amd.manifest.digest
        )
        assert [d.digest for d in found] == [signature.digest]
        with pytest.raises(regshift.ManifestError, match="not an index"):
            regshift.index_add(client, f"{base}:amd64", [f"{base}:arm64"])
        with pytest.raises(regshift.DuplicatePlatform):
            regshift.index_create(client, [f"{base}:arm64", f"{base}:arm64"], f"{base}:dup")


def _raw(registry: RegistryServer, repo: str, tag: str) -> bytes:
    with client_for() as client:
        return client.get_manifest(parse_reference(f"{registry.host}/{repo}:{tag}")).raw


def test_token_registry_mounts_with_one_token(
    token_registry: RegistryServer, repo_name: str
) -> None:
    """Sources in two repositories of a token registry, the index in a third: every blob is
    mounted (the token carries pull on both sources and push on the destination)."""
    user, password = registry_user(token_registry)
    amd, arm = _images(5300)
    host = token_registry.host
    seed(host, f"{repo_name}-a", "1", amd, username=user, password=password)
    seed(host, f"{repo_name}-b", "1", arm, username=user, password=password)
    result = run_cli(
        "index", "create", f"{host}/{repo_name}-a:1", f"{host}/{repo_name}-b:1",
        "--to", f"{host}/{repo_name}:m", "--json", "-u", user, "--password-stdin",
        input=password,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["blobs"] == {"mounted": 6, "streamed": 0, "skipped": 0}
    assert doc["manifests"] == 3


def _windows_image(version: str) -> SampleImage:
    """An image whose config names os.version and os.features (as Windows images do)."""
    base = random_image(seed=5400, platform=Platform("windows", "amd64"))
    config = json.loads(base.blobs[0])
    config.update({"os.version": version, "os.features": ["win32k"]})
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    doc = json.loads(base.manifest.raw)
    doc["config"] = {
        **doc["config"],
        "digest": compute_digest(config_bytes),
        "size": len(config_bytes),
    }
    manifest = parse_manifest(json.dumps(doc).encode())
    return SampleImage(manifest, (config_bytes, *base.blobs[1:]))


def test_windows_versions_from_the_config(open_registry: RegistryServer, repo_name: str) -> None:
    """os.version and os.features come from the config; two versions are two platforms."""
    seed(open_registry.host, repo_name, "2019", _windows_image("10.0.17763.5936"))
    seed(open_registry.host, repo_name, "2022", _windows_image("10.0.20348.2527"))
    base = f"{open_registry.host}/{repo_name}"
    result = run_cli(
        "index", "create", f"{base}:2019", f"{base}:2022", "--to", f"{base}:m", "--json"
    )
    assert result.code == 0, result.stderr
    assert [m["platform"] for m in _skopeo_raw(f"docker://{base}:m")["manifests"]] == [
        {"architecture": "amd64", "os": "windows", "os.version": v, "os.features": ["win32k"]}
        for v in ("10.0.17763.5936", "10.0.20348.2527")
    ]
    assert [e["osVersion"] for e in result.json()["entries"]] == [
        "10.0.17763.5936",
        "10.0.20348.2527",
    ]
