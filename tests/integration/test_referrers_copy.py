"""Signatures and SBOMs travel with `copy --referrers`; registry <-> OCI layout round trips."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx

from regshift.digests import compute_digest
from regshift.reference import parse_reference
from regshift.referrers import fallback_tag
from regshift.sample import random_image, random_index

from artifacts import SBOM_TYPE, SIG_TYPE, attach_artifact, sbom_of, signature_of
from harness.registry import RegistryServer
from support import client_for, run_cli, seed

INDEX = "application/vnd.oci.image.index.v1+json"


def _fallback(registry: RegistryServer, repo: str, digest: str) -> list[dict[str, object]]:
    response = httpx.get(
        f"{registry.url}/v2/{repo}/manifests/{fallback_tag(digest)}", headers={"Accept": INDEX}
    )
    assert response.status_code == 200, response.text
    manifests = response.json()["manifests"]
    assert isinstance(manifests, list)
    return manifests


def test_copy_with_referrers_to_another_registry(
    any_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """From each implementation (refreg: listed by the referrers API; distribution: the
    fallback tag) to distribution 2.8, which keeps them under the fallback tag."""
    open_registry = any_registry
    image = random_image(seed=71, layers=2)
    src = seed(open_registry.host, repo_name, "v1", image)
    sig, sbom = signature_of(image.manifest), sbom_of(image.manifest)
    sbom_sig = signature_of(sbom.manifest, who="sbom-signer")  # a signature of the SBOM
    with client_for() as client:
        for artifact in (sig, sbom, sbom_sig):
            attach_artifact(client, src.repo_only(), artifact)

    # Someone else already keeps a referrer list for this digest at the destination.
    other = signature_of(image.manifest, who="someone-else")
    with client_for() as client:
        dst_repo = parse_reference(f"{other_registry.host}/{repo_name}:x").repo_only()
        attach_artifact(client, dst_repo, other)

    dst = f"{other_registry.host}/{repo_name}:v1"
    result = run_cli("copy", "--referrers", "--json", str(src), dst)
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["digest"] == image.manifest.digest
    assert sorted(doc["referrers"]) == sorted([sig.digest, sbom.digest, sbom_sig.digest])

    listed = run_cli("referrers", "--json", dst)
    assert listed.code == 0, listed.stderr
    tree = {n["digest"]: n for n in listed.json()["referrers"]}
    assert set(tree) == {sig.digest, sbom.digest, other.digest}
    assert tree[sbom.digest]["artifactType"] == SBOM_TYPE
    assert [c["digest"] for c in tree[sbom.digest]["referrers"]] == [sbom_sig.digest]
    assert tree[sig.digest]["annotations"]["signer"] == "ci"
    sboms = run_cli("referrers", "--json", "--artifact-type", SBOM_TYPE, dst).json()["referrers"]
    assert [n["digest"] for n in sboms] == [sbom.digest]

    # The other tool's entry is still first and unchanged in the fallback index.
    entries = _fallback(other_registry, repo_name, image.manifest.digest)
    assert entries[0]["digest"] == other.digest
    assert {e["digest"] for e in entries} == {other.digest, sig.digest, sbom.digest}
    text = run_cli("referrers", dst)
    assert SIG_TYPE in text.stdout and "└─" in text.stdout


def test_round_trip_through_a_layout(
    any_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    """Each implementation -> OCI layout -> distribution 2.8, referrers included."""
    open_registry = any_registry
    sample = random_index(seed=72, platforms=("linux/amd64", "linux/arm64/v8"))
    src = seed(open_registry.host, repo_name, "v2", sample)
    sig = signature_of(sample.manifest)
    child_sbom = sbom_of(sample.images[1].manifest)  # a per-platform referrer
    with client_for() as client:
        attach_artifact(client, src.repo_only(), sig)
        attach_artifact(client, src.repo_only(), child_sbom)

    layout = tmp_path / "airgap"
    out = run_cli("copy", "--referrers", "--json", str(src), f"oci:{layout}:v2")
    assert out.code == 0, out.stderr
    assert sorted(out.json()["referrers"]) == sorted([sig.digest, child_sbom.digest])
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{layout}:v2"], check=True, capture_output=True
    ).stdout
    assert raw == sample.manifest.raw

    dst = f"{other_registry.host}/{repo_name}-restored:v2"
    back = run_cli("copy", "--referrers", "--json", f"oci:{layout}:v2", dst)
    assert back.code == 0, back.stderr
    assert back.json()["digest"] == sample.manifest.digest
    for image in sample.images:
        served = httpx.get(
            f"{other_registry.url}/v2/{repo_name}-restored/manifests/{image.manifest.digest}",
            headers={"Accept": image.manifest.media_type},
        )
        assert served.content == image.manifest.raw
    assert [
        e["digest"]
        for e in _fallback(other_registry, f"{repo_name}-restored", sample.manifest.digest)
    ] == [sig.digest]
    child = sample.images[1].manifest.digest
    assert [e["digest"] for e in _fallback(other_registry, f"{repo_name}-restored", child)] == [
        child_sbom.digest
    ]
    inspect = run_cli("inspect", "--json", dst)
    assert inspect.code == 0, inspect.stderr
    assert inspect.json()["referrers"] == 1
    assert [p["platform"] for p in inspect.json()["platforms"]] == ["linux/amd64", "linux/arm64/v8"]


def _layout_of(
    tmp_path: Path, open_registry: RegistryServer, repo_name: str
) -> tuple[Path, object]:
    image = random_image(seed=73, layers=2)
    src = seed(open_registry.host, repo_name, "v1", image)
    layout = tmp_path / "lay"
    assert run_cli("copy", str(src), f"oci:{layout}:v1").code == 0
    return layout, image


def test_broken_layouts_write_nothing(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    layout, image = _layout_of(tmp_path, open_registry, repo_name)
    assert hasattr(image, "manifest")
    layer = image.manifest.layers[0].digest.split(":")[1]  # type: ignore[attr-defined]
    dst = f"{other_registry.host}/{repo_name}"

    missing = tmp_path / "missing"
    shutil.copytree(layout, missing)
    (missing / "blobs" / "sha256" / layer).unlink()
    corrupt = tmp_path / "corrupt"
    shutil.copytree(layout, corrupt)
    blob = corrupt / "blobs" / "sha256" / layer
    data = bytearray(blob.read_bytes())
    data[10] ^= 0xFF
    blob.write_bytes(bytes(data))
    broken = tmp_path / "broken"
    shutil.copytree(layout, broken)
    (broken / "index.json").write_text('{"manifests": [')

    cases = [(missing, 4, "not found"), (corrupt, 1, "digest mismatch"), (broken, 1, "index.json")]
    for path, code, needle in cases:
        other_registry.mark()
        result = run_cli("copy", f"oci:{path}:v1", f"{dst}-{path.name}:v1")
        assert result.code == code, (path.name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], result.stderr
        writes = [
            r for r in other_registry.requests() if r.method == "PUT" and "/manifests/" in r.path
        ]
        assert writes == [], f"{path.name}: nothing may be written"
        tag = httpx.get(f"{other_registry.url}/v2/{repo_name}-{path.name}/manifests/v1")
        assert tag.status_code == 404


def test_layout_tags_and_skip_existing(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    image = random_image(seed=74)
    src = seed(open_registry.host, repo_name, "v1", image)
    layout = tmp_path / "lay"
    assert run_cli("copy", str(src), f"oci:{layout}:one").code == 0
    again = run_cli("copy", "--json", str(src), f"oci:{layout}:two")
    assert again.code == 0
    assert again.json()["blobs"]["skipped"] == len(image.blobs)
    index = json.loads((layout / "index.json").read_text())
    names = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert names == ["one", "two"]
    assert run_cli("digest", f"oci:{layout}:two").stdout.strip() == image.manifest.digest
    assert run_cli("manifest", f"oci:{layout}:one").stdout_bytes == image.manifest.raw
    assert run_cli("ls", f"oci:{layout}").stdout.split() == ["one", "two"]
    tagged = run_cli("tag", "--json", f"oci:{layout}:one", "three", "two")
    assert tagged.code == 0, tagged.stderr
    assert {t["tag"]: t["action"] for t in tagged.json()["tags"]} == {
        "three": "created",
        "two": "unchanged",
    }
    assert tagged.json()["tags"][0]["reference"] == f"oci:{layout}:three"
    clobber = run_cli("tag", "--no-clobber", f"oci:{layout}:one", "two")
    assert clobber.code == 0
    deleted = run_cli("delete", f"oci:{layout}:three")
    assert deleted.code == 0, deleted.stderr
    assert run_cli("ls", f"oci:{layout}").stdout.split() == ["one", "two"]
    assert run_cli("digest", f"oci:{layout}:nope").code == 4
    assert run_cli("inspect", f"oci:{layout}:one").code == 0
    for blob in image.blobs:
        assert (
            layout / "blobs" / "sha256" / compute_digest(blob).split(":")[1]
        ).read_bytes() == blob


def test_digest_tags_travel(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """Legacy cosign tags sha256-<hex>.sig / .att / .sbom are copied with --digest-tags."""
    image = random_image(seed=75)
    src = seed(open_registry.host, repo_name, "v1", image)
    hexed = image.manifest.digest.replace(":", "-")
    sig_image, att_image = random_image(seed=76, layers=1), random_image(seed=77, layers=1)
    seed(open_registry.host, repo_name, f"{hexed}.sig", sig_image)
    seed(open_registry.host, repo_name, f"{hexed}.att", att_image)
    seed(
        open_registry.host, repo_name, "sha256-" + "0" * 64 + ".sig", random_image(seed=78)
    )  # unrelated
    dst = f"{other_registry.host}/{repo_name}"
    plain = run_cli("copy", "--json", str(src), f"{dst}-plain:v1")
    assert plain.json()["digestTags"] == []
    result = run_cli("copy", "--digest-tags", "--json", str(src), f"{dst}:v1")
    assert result.code == 0, result.stderr
    assert sorted(result.json()["digestTags"]) == sorted([f"{hexed}.sig", f"{hexed}.att"])
    assert sorted(run_cli("ls", dst).stdout.split()) == sorted(
        ["v1", f"{hexed}.sig", f"{hexed}.att"]
    )
    served = run_cli("digest", f"{dst}:{hexed}.sig").stdout.strip()
    assert served == sig_image.manifest.digest


def test_inspect_shows_config_and_layers(open_registry: RegistryServer, repo_name: str) -> None:
    sample = random_index(seed=79, platforms=("linux/amd64", "linux/arm/v7"), layers=3)
    src = seed(open_registry.host, repo_name, "v1", sample)
    result = run_cli("inspect", "--json", str(src))
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["digest"] == sample.manifest.digest and doc["mediaType"] == INDEX
    assert [p["platform"] for p in doc["platforms"]] == ["linux/amd64", "linux/arm/v7"]
    first = doc["platforms"][0]
    assert first["created"] == "2024-01-01T00:00:00Z"
    assert first["labels"] == {"org.regshift.sample.seed": "79000"}
    assert [layer["digest"] for layer in first["layers"]] == [
        d.digest for d in sample.images[0].manifest.layers
    ]
    expected_total = sample.manifest.size + sum(
        i.manifest.size + sum(len(b) for b in i.blobs) for i in sample.images
    )
    assert doc["totalSize"] == expected_total
    one = run_cli("inspect", "--json", "--platform", "linux/arm/v7", str(src)).json()
    assert [p["platform"] for p in one["platforms"]] == ["linux/arm/v7"]
    text = run_cli("inspect", str(src)).stdout
    assert "linux/arm/v7" in text and "layer:" in text and "label:" in text


def test_signatures_added_later_travel_on_the_next_copy(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """Promote, sign later, copy again: the image is up to date, the new signature still moves."""
    image = random_image(seed=85)
    src = seed(open_registry.host, repo_name, "v1", image)
    first_sig = signature_of(image.manifest, who="build")
    with client_for() as client:
        attach_artifact(client, src.repo_only(), first_sig)
    dst = f"{other_registry.host}/{repo_name}:v1"
    assert run_cli("copy", "--referrers", str(src), dst).code == 0

    later = signature_of(image.manifest, who="release-manager")
    with client_for() as client:
        attach_artifact(client, src.repo_only(), later)
    again = run_cli("copy", "--referrers", "--json", str(src), dst)
    assert again.code == 0, again.stderr
    doc = again.json()
    assert doc["upToDate"] is True
    assert doc["referrers"] == [later.digest], "only the new signature moves"
    listed = {n["digest"] for n in run_cli("referrers", "--json", dst).json()["referrers"]}
    assert listed == {first_sig.digest, later.digest}
    third = run_cli("copy", "--referrers", "--json", str(src), dst).json()
    assert third["referrers"] == []
