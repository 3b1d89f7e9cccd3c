"""`regshift copy` edge cases: unusual indexes, failures mid-copy, answers without digests.

Each test drives a real registry (and, where a fault is needed, a
:class:`~harness.proxy.FaultProxy`) and checks the final state at the destination:

* every entry of a kept index reaches the destination, or (an OCI artifact manifest entry,
  which regshift cannot copy) nothing is written at all;
* a manifest an index lists twice is fetched, PUT and counted once;
* the first failing blob stops the others: nothing later is committed;
* ``--all-tags`` does not take a stale tag for up to date when HEADs carry no digest;
* ``--platform`` from a by-digest source to a destination without tag or digest;
* chunks that keep failing end in a :class:`~regshift.errors.TransportError` (one line, exit 1);
* a foreign layer shared by two platforms is planned once;
* a failed copy leaves no upload session open at the destination.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from regshift import Client, ClientOptions, TransportOptions
from regshift.copying import CopyOptions, copy
from regshift.digests import compute_digest
from regshift.errors import DigestMismatch, RegistryError
from regshift.layout import Layout
from regshift.manifests import Manifest, parse_manifest
from regshift.mediatypes import MediaType
from regshift.reference import parse_reference
from regshift.sample import SampleImage, SampleIndex, random_image, random_index

from harness.proxy import Delay, FaultProxy, FlipByte, ResetRequest, Respond, RewriteHeader, Rule
from harness.registry import RegistryServer
from support import client_for, run_cli, seed

ACCEPT = ", ".join(
    [
        MediaType.OCI_INDEX,
        MediaType.OCI_MANIFEST,
        MediaType.DOCKER_MANIFEST_LIST,
        MediaType.DOCKER_MANIFEST,
    ]
)
MiB = 1024 * 1024
ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"


@pytest.fixture
def src_proxy(open_registry: RegistryServer) -> Iterator[FaultProxy]:
    """A proxy in front of the source registry (``open_registry``)."""
    with FaultProxy(open_registry.host) as proxy:
        yield proxy


def _entry(manifest: Manifest, arch: str, *, typed: bool = True) -> dict[str, Any]:
    """An index entry for ``manifest`` (without ``mediaType`` unless ``typed``)."""
    entry: dict[str, Any] = {"digest": manifest.digest, "size": manifest.size}
    if typed:
        entry["mediaType"] = manifest.media_type
    return {**entry, "platform": {"os": "linux", "architecture": arch}}


def _index(
    entries: list[dict[str, Any]], *images: SampleImage, docker: bool = False
) -> SampleIndex:
    media_type = MediaType.DOCKER_MANIFEST_LIST if docker else MediaType.OCI_INDEX
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    return SampleIndex(parse_manifest(json.dumps(doc).encode()), images)


def _manifest(registry: RegistryServer, repo: str, ref: str) -> httpx.Response:
    return httpx.get(f"{registry.url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})


def _has_blob(registry: RegistryServer, repo: str, digest: str) -> bool:
    return httpx.head(f"{registry.url}/v2/{repo}/blobs/{digest}").status_code == 200


def _manifest_puts(registry: RegistryServer) -> list[str]:
    """The reference (tag or digest) of every manifest PUT since the mark."""
    return [
        r.route.rsplit("/", 1)[1]
        for r in registry.requests()
        if r.method == "PUT" and "/manifests/" in r.path
    ]


def _sessions(registry: RegistryServer) -> tuple[int, int, int]:
    """Upload sessions since the mark: (opened, committed, cancelled by a DELETE).

    A DELETE may find the session gone (404): distribution drops it after a failed PUT.
    """
    uploads = [r for r in registry.requests() if "/blobs/uploads/" in r.path]
    opened = sum(1 for r in uploads if r.method == "POST" and r.status == 202)
    committed = sum(1 for r in uploads if r.method == "PUT" and r.status == 201)
    cancelled = sum(1 for r in uploads if r.method == "DELETE")
    return opened, committed, cancelled


def _layout(path: Path, tag: str, top: Manifest, *blobs: bytes) -> str:
    """An OCI layout holding ``blobs`` with ``top`` under ``tag``; its ``oci:`` reference."""
    layout = Layout(path, create=True)
    for blob in blobs:
        layout.write_blob(compute_digest(blob), len(blob), [blob])
    layout.put_manifest(top, tag)
    return f"oci:{path}:{tag}"


def test_every_entry_of_a_kept_index_is_copied_or_nothing_is(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    a, b = random_image(seed=701, layers=1), random_image(seed=702, layers=1)
    sample = _index([_entry(a.manifest, "amd64"), _entry(b.manifest, "arm64", typed=False)], a, b)
    src = seed(open_registry.host, repo_name, "v1", sample)
    result = run_cli("copy", "--json", str(src), f"oci:{tmp_path / 'dst'}:v1")
    assert result.code == 0, result.stderr
    assert result.json()["manifests"] == 3 and result.json()["blobs"]["streamed"] == 4
    dst = Layout(tmp_path / "dst")
    assert dst.resolve("v1").digest == sample.manifest.digest
    assert dst.verify() == [], "the entry without mediaType must be copied with its blobs"

    # An OCI artifact manifest entry cannot be copied: the copy fails before writing.
    sig = b"signature bytes"
    artifact = {
        "mediaType": ARTIFACT_MANIFEST,
        "artifactType": "application/example.sig",
        "blobs": [
            {
                "mediaType": "application/octet-stream",
                "digest": compute_digest(sig),
                "size": len(sig),
            }
        ],
    }
    raw = json.dumps(artifact).encode()
    entry = {"mediaType": ARTIFACT_MANIFEST, "digest": compute_digest(raw), "size": len(raw)}
    index = _index([_entry(a.manifest, "amd64"), entry]).manifest
    source = _layout(tmp_path / "src", "v1", index, *a.blobs, a.manifest.raw, sig, raw)
    failed = run_cli("copy", source, f"oci:{tmp_path / 'dst2'}:v1")
    assert failed.code == 1 and "unsupported manifest media type" in failed.stderr
    untouched = tmp_path / "dst2"
    assert Layout(untouched).tags() == []
    assert not [p for p in (untouched / "blobs").rglob("*") if p.is_file()]


def test_a_manifest_listed_twice_is_copied_once(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=711, layers=1)
    sample = _index([_entry(image.manifest, "amd64"), _entry(image.manifest, "386")], image)
    src = seed(open_registry.host, repo_name, "v1", sample)
    open_registry.mark()
    other_registry.mark()
    result = run_cli("copy", "--json", str(src), f"{other_registry.host}/{repo_name}:v1")
    assert result.code == 0, result.stderr
    assert result.json()["manifests"] == 2
    assert result.json()["blobs"] == {"mounted": 0, "streamed": 2, "skipped": 0}
    assert _manifest_puts(other_registry) == [image.manifest.digest, "v1"]
    gets = [r for r in open_registry.requests() if r.method == "GET" and "/manifests/" in r.path]
    assert len(gets) == 2  # the index and its one child
    assert _manifest(other_registry, repo_name, "v1").content == sample.manifest.raw
    assert _manifest(other_registry, repo_name, image.manifest.digest).status_code == 200


def test_first_failing_blob_stops_the_others(
    src_proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    image = random_image(seed=721, layers=2, layer_size=64 * 1024)
    seed(open_registry.host, repo_name, "v1", image)
    slow, bad = (d.digest for d in image.manifest.layers)  # planned in this order
    src_proxy.add_rule(Rule(method="GET", path=f"/blobs/{slow}", action=Delay(2.0)))
    src_proxy.add_rule(Rule(method="GET", path=f"/blobs/{bad}", action=FlipByte(100)))
    other_registry.mark()
    with client_for() as client, pytest.raises(DigestMismatch):
        copy(
            client,
            f"{src_proxy.host}/{repo_name}:v1",
            [f"{other_registry.host}/{repo_name}:v1"],
            options=CopyOptions(jobs=4),
        )
    assert not _has_blob(other_registry, repo_name, bad)
    assert not _has_blob(other_registry, repo_name, slow), "committed after the failure"
    assert _manifest(other_registry, repo_name, "v1").status_code == 404
    assert _manifest_puts(other_registry) == []


def test_all_tags_replaces_a_stale_tag_when_heads_carry_no_digest(
    src_proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    fresh, stale = random_image(seed=731), random_image(seed=732)
    seed(open_registry.host, repo_name, "v1", fresh)
    seed(open_registry.host, f"{repo_name}-dst", "v1", stale)
    no_digest = RewriteHeader("Docker-Content-Digest", None)
    src_proxy.add_rule(Rule(method="HEAD", path="/manifests/", action=no_digest))
    result = run_cli(
        "copy",
        "--all-tags",
        "--json",
        f"{src_proxy.host}/{repo_name}",
        f"{src_proxy.host}/{repo_name}-dst",
    )
    assert result.code == 0, result.stderr
    (tag,) = result.json()["tags"]
    assert tag["upToDate"] is False and tag["digest"] == fresh.manifest.digest
    assert tag["previous"] == stale.manifest.digest
    assert _manifest(open_registry, f"{repo_name}-dst", "v1").content == fresh.manifest.raw


def test_platform_of_a_by_digest_source_to_an_untagged_destination(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    sample = random_index(seed=741)
    seed(open_registry.host, repo_name, "v1", sample)
    amd64 = sample.images[0]
    source = f"{open_registry.host}/{repo_name}@{sample.manifest.digest}"
    other_registry.mark()
    result = run_cli(
        "copy", "--json", "--platform", "linux/amd64", source, f"{other_registry.host}/{repo_name}"
    )
    assert result.code == 0, result.stderr
    assert result.json()["digest"] == amd64.manifest.digest and result.json()["tags"] == []
    assert _manifest_puts(other_registry) == [amd64.manifest.digest]
    assert _manifest(other_registry, repo_name, amd64.manifest.digest).content == amd64.manifest.raw
    assert all(_has_blob(other_registry, repo_name, d.digest) for d in amd64.manifest.blobs())


def test_chunks_that_keep_failing_end_in_a_transport_error(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=751, layers=1)
    src = seed(open_registry.host, repo_name, "v1", image)
    with FaultProxy(other_registry.host) as dst_proxy:
        # Monolithic uploads refused (413: regshift switches to chunks), every PATCH dropped.
        too_big = Respond(413, {"Content-Type": "text/plain"}, b"request entity too large")
        dst_proxy.add_rule(Rule(method="PUT", path=r"/blobs/uploads/.*digest=", action=too_big))
        dst_proxy.add_rule(Rule(method="PATCH", action=ResetRequest(0)))
        result = run_cli(
            "copy",
            "--json",
            "--retries",
            "0",
            str(src),
            f"{dst_proxy.host}/{repo_name}:v1",
        )
        patches = [r for r in dst_proxy.requests if r.method == "PATCH"]
    assert result.code == 1
    assert result.json()["error"]["type"] == "TransportError"
    (line,) = result.stderr.splitlines()
    assert "internal error" not in line and "chunk at offset 0 failed" in line
    assert patches, "the chunked path must have been taken"
    assert _manifest(other_registry, repo_name, "v1").status_code == 404
    assert not any(_has_blob(other_registry, repo_name, d.digest) for d in image.manifest.blobs())


def test_413s_of_blobs_in_flight_together_all_switch_to_chunks(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """Two monolithic uploads in flight at once both get 413: the one answered after the
    switch to chunked uploads must go up in chunks too, not fail."""
    image = random_image(seed=752, layers=2)
    src = seed(open_registry.host, repo_name, "v1", image)
    with FaultProxy(other_registry.host) as dst_proxy:
        too_big = Respond(413, {"Content-Type": "text/plain"}, b"request entity too large")
        # Held 0.5 s, so both monolithic PUTs are in flight before either answer arrives.
        late = Delay(0.5, then=too_big)
        dst_proxy.add_rule(
            Rule(method="PUT", path=r"/blobs/uploads/.*digest=", times=2, action=late)
        )
        result = run_cli("copy", "--json", "-j", "4", str(src), f"{dst_proxy.host}/{repo_name}:v1")
        refused = [r for r in dst_proxy.requests if r.method == "PUT" and r.status == 413]
    assert result.code == 0, result.stderr
    assert len(refused) == 2
    assert _manifest(other_registry, repo_name, "v1").status_code == 200
    assert all(_has_blob(other_registry, repo_name, d.digest) for d in image.manifest.blobs())


def test_a_foreign_layer_shared_by_two_platforms_is_planned_once(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    foreign = b"foreign layer bytes"
    layer = {
        "mediaType": MediaType.DOCKER_FOREIGN_LAYER,
        "digest": compute_digest(foreign),
        "size": len(foreign),
        "urls": ["https://example.invalid/layer.tar"],
    }
    images = []
    for n in (1, 2):
        base = random_image(seed=760 + n, docker=True)
        doc = json.loads(base.manifest.raw)
        doc["layers"].append(layer)
        images.append(SampleImage(parse_manifest(json.dumps(doc).encode()), base.blobs))
    entries = [_entry(i.manifest, arch) for i, arch in zip(images, ("amd64", "arm64"), strict=True)]
    sample = _index(entries, *images, docker=True)
    src = seed(open_registry.host, repo_name, "win", sample)
    result = run_cli("copy", "--json", str(src), f"{other_registry.host}/{repo_name}:win")
    assert result.code == 0, result.stderr
    out = result.json()
    assert [s["digest"] for s in out["plan"] if s["action"] == "foreign"] == [layer["digest"]]
    assert any(
        n.startswith(f"1 foreign (non-distributable) layer(s), {len(foreign)} bytes")
        for n in out["notes"]
    )
    assert _manifest(other_registry, repo_name, "win").content == sample.manifest.raw
    assert all(
        _manifest(other_registry, repo_name, i.manifest.digest).status_code == 200 for i in images
    )
    assert not _has_blob(other_registry, repo_name, compute_digest(foreign))


@pytest.mark.parametrize("broken", ["corrupt-blob", "layout-missing-blob"])
def test_a_failed_copy_leaves_no_upload_session_open(
    broken: str,
    src_proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
    tmp_path: Path,
) -> None:
    image = random_image(seed=771, layers=2, layer_size=64 * 1024)
    bad, slow = (d.digest for d in image.manifest.layers)  # planned in this order
    if broken == "corrupt-blob":  # a sibling still transferring is cancelled
        seed(open_registry.host, repo_name, "v1", image)
        src_proxy.add_rule(Rule(method="GET", path=f"/blobs/{bad}", action=FlipByte(10)))
        src_proxy.add_rule(Rule(method="GET", path=f"/blobs/{slow}", action=Delay(1.5)))
        source = f"{src_proxy.host}/{repo_name}:v1"
    else:
        blobs = [b for b in image.blobs if compute_digest(b) != bad]
        source = _layout(tmp_path / "src", "v1", image.manifest, *blobs, image.manifest.raw)
    other_registry.mark()
    with client_for() as client, pytest.raises(RegistryError):
        copy(client, source, [f"{other_registry.host}/{repo_name}:v1"], options=CopyOptions(jobs=4))
    opened, committed, cancelled = _sessions(other_registry)
    assert cancelled >= 1 and opened == committed + cancelled, (opened, committed, cancelled)
    assert not _has_blob(other_registry, repo_name, bad)
    assert _manifest(other_registry, repo_name, "v1").status_code == 404


def test_a_failed_destination_names_the_ones_already_copied(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """``copy SRC A B`` where B fails: A was written, and the error says so."""
    image = random_image(seed=753)
    src = seed(open_registry.host, repo_name, "v1", image)
    done = f"{other_registry.host}/{repo_name}-a:v1"
    with FaultProxy(other_registry.host) as broken:
        broken.add_rule(Rule(method="PUT", path="/manifests/", action=Respond(500, {}, b"")))
        result = run_cli(
            "copy", "--retries", "0", str(src), done, f"{broken.host}/{repo_name}-b:v1"
        )
    assert result.code == 1
    assert f"copied before the failure: {done}" in result.stderr
    assert _manifest(other_registry, f"{repo_name}-a", "v1").status_code == 200


def _chunked_copy_through(proxy: FaultProxy, src: str, name: str) -> Any:
    options = CopyOptions(chunk_size=MiB, chunked_threshold=2 * MiB)
    with client_for() as client:
        (result,) = copy(client, src, [f"{proxy.host}/{name}:big"], options=options)
    return result


@pytest.mark.parametrize(
    "fault",
    [
        Respond.oci_error(404, "BLOB_UPLOAD_UNKNOWN", "upload expired"),
        Respond(416, {"Range": "0-2097151"}),
    ],
    ids=["session-expired", "416"],
)
def test_a_chunk_refused_mid_upload_is_resumed_or_restarted(
    fault: Respond, open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """An upload session that expires mid-way restarts the blob; a 416 (the registry holds
    another offset) resumes from what the registry reports. Neither fails the copy."""
    image = random_image(seed=754, layers=1, layer_size=5 * MiB, raw_layers=True)
    src = seed(open_registry.host, repo_name, "big", image)
    with FaultProxy(other_registry.host) as proxy:
        rule = proxy.add_rule(Rule(method="PATCH", skip=2, times=1, action=fault))
        result = _chunked_copy_through(proxy, str(src), repo_name)
    assert rule.hits == 1
    assert result.digest == image.manifest.digest
    assert _manifest(other_registry, repo_name, "big").status_code == 200
    assert all(_has_blob(other_registry, repo_name, d.digest) for d in image.manifest.blobs())


def test_a_referrer_copied_but_never_listed_is_listed_by_the_next_run(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    from regshift.referrers import list_referrers

    from artifacts import attach_artifact, signature_of

    image = random_image(seed=755)
    src = seed(open_registry.host, repo_name, "v1", image)
    sig = signature_of(image.manifest)
    with client_for() as client:
        attach_artifact(client, src.repo_only(), sig)
    failing = Respond.oci_error(500, "UNKNOWN", "index write failed")
    with FaultProxy(other_registry.host) as proxy:
        proxy.add_rule(Rule(method="PUT", path=r"/manifests/sha256-", action=failing))
        first = run_cli(
            "copy", "--referrers", "--retries", "0", str(src), f"{proxy.host}/{repo_name}:v1"
        )
    assert first.code == 1  # the signature manifest landed, its listing did not
    again = run_cli("copy", "--referrers", str(src), f"{other_registry.host}/{repo_name}:v1")
    assert again.code == 0, again.stderr
    with client_for() as client:
        repo = parse_reference(f"{other_registry.host}/{repo_name}:v1").repo_only()
        listed = [d.digest for d in list_referrers(client, repo, image.manifest.digest)]
    assert listed == [sig.digest]


def test_all_tags_merges_referrers_instead_of_overwriting_the_fallback_tag(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """The source's sha256-<hex> fallback tag is not copied as a tag: that would replace the
    destination's index and drop another tool's entry; --referrers merges entry by entry."""
    from regshift.referrers import list_referrers

    from artifacts import attach_artifact, signature_of

    image = random_image(seed=756)
    src = seed(open_registry.host, repo_name, "v1", image)
    ours, theirs = signature_of(image.manifest), signature_of(image.manifest, who="other-tool")
    dst_ref = parse_reference(f"{other_registry.host}/{repo_name}:v1")
    with client_for() as client:
        attach_artifact(client, src.repo_only(), ours)
        seed(other_registry.host, repo_name, "v1", image)
        attach_artifact(client, dst_ref.repo_only(), theirs)
    for extra in ([], ["--referrers"]):
        result = run_cli(
            "copy",
            "--all-tags",
            *extra,
            f"{open_registry.host}/{repo_name}",
            f"{other_registry.host}/{repo_name}",
        )
        assert result.code == 0, result.stderr
    with client_for() as client:
        listed = {
            d.digest for d in list_referrers(client, dst_ref.repo_only(), image.manifest.digest)
        }
    assert listed == {ours.digest, theirs.digest}


def test_digest_tags_of_referrers_copied_before_travel_on_a_rerun(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """A cosign tag (sha256-<sbom>.sig) added after the first copy comes with the next one,
    although the SBOM it signs was copied by the first."""
    from artifacts import attach_artifact, sbom_of

    image = random_image(seed=757)
    src = seed(open_registry.host, repo_name, "v1", image)
    sbom = sbom_of(image.manifest)
    with client_for() as client:
        attach_artifact(client, src.repo_only(), sbom)
    dst = f"{other_registry.host}/{repo_name}:v1"
    first = run_cli("copy", "--referrers", "--digest-tags", "--json", str(src), dst)
    assert first.code == 0, first.stderr
    cosign_tag = sbom.digest.replace(":", "-") + ".sig"
    seed(open_registry.host, repo_name, cosign_tag, random_image(seed=758, layers=1))
    again = run_cli("copy", "--referrers", "--digest-tags", "--json", str(src), dst)
    assert again.code == 0, again.stderr
    assert again.json()["digestTags"] == [cosign_tag]
    assert _manifest(other_registry, repo_name, cosign_tag).status_code == 200


def test_413_on_the_last_attempt_still_goes_up_in_chunks(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """The switch to chunks after a 413 is not a failed try: with one attempt per blob the
    blob must still go up (it was counted as done without being uploaded)."""
    image = random_image(seed=759, layers=1)
    src = seed(open_registry.host, repo_name, "v1", image)
    with FaultProxy(other_registry.host) as proxy:
        too_big = Respond(413, {"Content-Type": "text/plain"}, b"request entity too large")
        proxy.add_rule(
            Rule(method="PUT", path=r"/blobs/uploads/.*digest=", times=1, action=too_big)
        )
        one_try = ClientOptions(transport=TransportOptions(retries=0), cache_dir=None)
        with Client(one_try) as client:
            options = CopyOptions(attempts=1)
            copy(client, str(src), [f"{proxy.host}/{repo_name}:v1"], options=options)
    assert all(_has_blob(other_registry, repo_name, d.digest) for d in image.manifest.blobs())
    assert _manifest(other_registry, repo_name, "v1").status_code == 200


def test_every_platform_of_an_index_listing_one_image_twice_keeps_the_index(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """An index naming one manifest under two platforms, both asked for: the index is what
    the user asked for, byte for byte (not the image it lists twice)."""
    image = random_image(seed=760)
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MediaType.OCI_INDEX,
            "manifests": [_entry(image.manifest, "amd64"), _entry(image.manifest, "arm64")],
        }
    ).encode()
    seed(open_registry.host, repo_name, "img", image)
    index = parse_manifest(raw)
    with client_for() as client:
        client.put_manifest(parse_reference(f"{open_registry.host}/{repo_name}:v1"), index)
    result = run_cli(
        "copy",
        "--json",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        f"{open_registry.host}/{repo_name}:v1",
        f"{other_registry.host}/{repo_name}:v1",
    )
    assert result.code == 0, result.stderr
    assert result.json()["digest"] == index.digest
    assert _manifest(other_registry, repo_name, "v1").content == raw
