"""The referrers API for real: refreg (go-containerregistry's registry with the OCI 1.1
referrers API, started with ``-oci-subject``) beside distribution 2.8 (fallback tag).

What refreg's listing does, as of go-containerregistry v0.22.1 (``pkg/registry/manifest.go
handleReferrers``): every manifest of the repository whose ``subject`` is the digest, in one
page (no ``Link``, whatever the count), in Go map order; ``artifactType`` is not applied
(no ``OCI-Filters-Applied``), and each entry's ``artifactType`` is the manifest's
``config.mediaType``, not its ``artifactType``. Pagination and faults stay emulated by the
fault proxy (test_referrers.py).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from regshift.manifests import parse_manifest
from regshift.mediatypes import MediaType
from regshift.reference import Reference
from regshift.referrers import fallback_tag, list_referrers, referrers_api_supported
from regshift.sample import random_image

from artifacts import (
    SBOM_TYPE,
    SIG_TYPE,
    Artifact,
    attach_artifact,
    push_blobs,
    sbom_of,
    signature_of,
)
from harness.peers import peer
from harness.registry import RefregServer, RegistryServer
from support import client_for, run_cli, seed

INDEX = MediaType.OCI_INDEX.value
EMPTY_CONFIG = MediaType.OCI_EMPTY.value


def _typed(artifact: Artifact, artifact_type: str) -> Artifact:
    """The artifact with ``config.mediaType`` = its artifact type, the pre-1.1 style refreg
    reads the type from (the config blob stays ``{}``)."""
    doc = json.loads(artifact.manifest.raw)
    doc["config"]["mediaType"] = artifact_type
    return Artifact(parse_manifest(json.dumps(doc).encode()), artifact.blobs)


def _subject(registry: RegistryServer, repo_name: str) -> tuple[Reference, str]:
    image = random_image(seed=zlib.crc32(repo_name.encode()), layers=1)
    ref = seed(registry.host, repo_name, "v1", image)
    return ref.repo_only(), image.manifest.digest


def _api(registry: RegistryServer, repo: str, digest: str, **params: str) -> httpx.Response:
    return httpx.get(f"{registry.url}/v2/{repo}/referrers/{digest}", params=params)


def test_oci_subject_is_sent_and_attach_writes_no_fallback_tag(
    refreg: RefregServer, repo_name: str
) -> None:
    repo, digest = _subject(refreg, repo_name)
    image = random_image(seed=zlib.crc32(repo_name.encode()), layers=1)
    sig, sbom = signature_of(image.manifest), sbom_of(image.manifest)
    # The header itself, on a plain PUT of a manifest with a subject.
    with client_for() as client:
        push_blobs(client, repo, sig)
    put = httpx.put(
        f"{refreg.url}/v2/{repo_name}/manifests/{sig.digest}",
        content=sig.manifest.raw,
        headers={"Content-Type": sig.manifest.media_type},
    )
    assert put.status_code == 201 and put.headers["OCI-Subject"] == digest

    refreg.mark()
    with client_for() as client:
        results = [attach_artifact(client, repo, a) for a in (sig, sbom)]
        assert referrers_api_supported(client, repo) is True
    assert all(r.via_api and r.tag is None and r.writes == 0 for r in results)
    tag = fallback_tag(digest)
    assert not [r for r in refreg.requests() if tag in r.path], "no fallback tag touched"
    assert httpx.get(f"{refreg.url}/v2/{repo_name}/manifests/{tag}").status_code == 404
    listed = _api(refreg, repo_name, digest)
    assert listed.status_code == 200 and listed.headers["content-type"] == INDEX
    assert {m["digest"] for m in listed.json()["manifests"]} == {sig.digest, sbom.digest}


def test_listing_uses_the_api_and_filters_what_refreg_does_not(
    refreg: RefregServer, repo_name: str
) -> None:
    repo, digest = _subject(refreg, repo_name)
    image = random_image(seed=zlib.crc32(repo_name.encode()), layers=1)
    sig = _typed(signature_of(image.manifest), SIG_TYPE)
    sbom = _typed(sbom_of(image.manifest), SBOM_TYPE)
    with client_for() as client:
        for artifact in (sig, sbom):
            attach_artifact(client, repo, artifact)

    refreg.mark()
    with client_for() as fresh:  # a new run: the API is probed, not known
        found = list_referrers(fresh, repo, digest)
        assert referrers_api_supported(fresh, repo) is True
        only = list_referrers(fresh, repo, digest, artifact_type=SBOM_TYPE)
    assert sorted((d.digest, d.artifact_type) for d in found) == sorted(
        [(sig.digest, SIG_TYPE), (sbom.digest, SBOM_TYPE)]
    )
    assert {d.digest: d.annotations for d in found}[sig.digest]["signer"] == "ci"
    assert [d.digest for d in only] == [sbom.digest]
    routes = [r.path for r in refreg.requests()]
    assert routes == [
        f"/v2/{repo_name}/referrers/{digest}",
        f"/v2/{repo_name}/referrers/{digest}?artifactType=application%2Fspdx%2Bjson",
    ], "the filter is sent; no fallback tag is read"
    # refreg ignores the filter and says so by not sending OCI-Filters-Applied: regshift
    # filtered the answer itself.
    raw = _api(refreg, repo_name, digest, artifactType=SBOM_TYPE)
    assert "OCI-Filters-Applied" not in raw.headers
    assert len(raw.json()["manifests"]) == 2


def test_refreg_lists_the_config_media_type_as_artifact_type(
    refreg: RefregServer, repo_name: str
) -> None:
    """Pinned refreg difference: an OCI 1.1 artifact (empty config, ``artifactType`` set) is
    listed with ``artifactType`` = the empty config's media type, so a filter on the real
    type finds nothing there, where distribution's fallback index (written by regshift from
    the manifest) has the right type."""
    repo, digest = _subject(refreg, repo_name)
    image = random_image(seed=zlib.crc32(repo_name.encode()), layers=1)
    sig = signature_of(image.manifest)
    with client_for() as client:
        attach_artifact(client, repo, sig)
        (found,) = list_referrers(client, repo, digest)
        assert found.digest == sig.digest and found.artifact_type == EMPTY_CONFIG
        assert list_referrers(client, repo, digest, artifact_type=SIG_TYPE) == []


def test_refreg_answers_in_one_page(refreg: RefregServer, repo_name: str) -> None:
    """refreg does not paginate (no ``Link``): 25 referrers, one request. The ``Link`` path is
    tested with the fault proxy (test_referrers.py::test_referrers_api_pages_are_followed)."""
    repo, digest = _subject(refreg, repo_name)
    image = random_image(seed=zlib.crc32(repo_name.encode()), layers=1)
    sigs = [signature_of(image.manifest, who=f"signer-{n}") for n in range(25)]
    with client_for() as client:
        for sig in sigs:
            attach_artifact(client, repo, sig)
    raw = _api(refreg, repo_name, digest)
    assert "Link" not in raw.headers and len(raw.json()["manifests"]) == 25
    refreg.mark()
    with client_for() as fresh:
        found = list_referrers(fresh, repo, digest)
    assert sorted(d.digest for d in found) == sorted(s.digest for s in sigs)
    assert refreg.count("GET", "/referrers/") == 1


def test_cli_referrers_tree_over_the_api(refreg: RefregServer, repo_name: str) -> None:
    repo, digest = _subject(refreg, repo_name)
    image = random_image(seed=zlib.crc32(repo_name.encode()), layers=1)
    sbom = _typed(sbom_of(image.manifest), SBOM_TYPE)
    sbom_sig = _typed(signature_of(sbom.manifest, who="sbom-signer"), SIG_TYPE)
    with client_for() as client:
        for artifact in (sbom, sbom_sig):
            attach_artifact(client, repo, artifact)
    ref = f"{refreg.host}/{repo_name}:v1"
    refreg.mark()
    listed = run_cli("referrers", "--json", ref)
    assert listed.code == 0, listed.stderr
    (node,) = listed.json()["referrers"]
    assert node["digest"] == sbom.digest and node["artifactType"] == SBOM_TYPE
    assert [c["digest"] for c in node["referrers"]] == [sbom_sig.digest]
    assert refreg.count("GET", f"/referrers/{digest}") == 1
    assert refreg.count("GET", f"/referrers/{sbom.digest}") == 1
    assert refreg.count(path_contains="sha256-") == 0, "no fallback tag read"
    only = run_cli("referrers", "--json", "--artifact-type", SIG_TYPE, ref).json()["referrers"]
    assert only == []  # the SBOM's signature is a level down; the filter is for level one


def test_copy_referrers_from_distribution_to_refreg_and_back(
    other_registry: RegistryServer, refreg: RefregServer, repo_name: str
) -> None:
    """Fallback tag (distribution 2.8) -> referrers API (refreg) -> fallback tag again."""
    image = random_image(seed=zlib.crc32(repo_name.encode()), layers=2)
    src = seed(other_registry.host, repo_name, "v1", image)
    sig, sbom = signature_of(image.manifest), sbom_of(image.manifest)
    with client_for() as client:
        for artifact in (sig, sbom):
            attach_artifact(client, src.repo_only(), artifact)

    there = f"{refreg.host}/{repo_name}:v1"
    refreg.mark()
    out = run_cli("copy", "--referrers", "--json", str(src), there)
    assert out.code == 0, out.stderr
    assert out.json()["digest"] == image.manifest.digest
    assert sorted(out.json()["referrers"]) == sorted([sig.digest, sbom.digest])
    tag = fallback_tag(image.manifest.digest)
    assert refreg.count(path_contains=tag) == 0, "refreg confirmed the subjects: no tag"
    api = _api(refreg, repo_name, image.manifest.digest).json()["manifests"]
    assert {m["digest"] for m in api} == {sig.digest, sbom.digest}
    for artifact in (sig, sbom):
        stored = httpx.get(
            f"{refreg.url}/v2/{repo_name}/manifests/{artifact.digest}",
            headers={"Accept": artifact.manifest.media_type},
        )
        assert stored.content == artifact.manifest.raw

    back = f"{other_registry.host}/{repo_name}-back:v1"
    again = run_cli("copy", "--referrers", "--json", there, back)
    assert again.code == 0, again.stderr
    assert sorted(again.json()["referrers"]) == sorted([sig.digest, sbom.digest])
    index = httpx.get(
        f"{other_registry.url}/v2/{repo_name}-back/manifests/{tag}", headers={"Accept": INDEX}
    ).json()
    # Written by regshift from the manifests: the real artifact types, not refreg's listing.
    assert {(e["digest"], e["artifactType"]) for e in index["manifests"]} == {
        (sig.digest, SIG_TYPE),
        (sbom.digest, SBOM_TYPE),
    }
    listed = run_cli("referrers", "--json", "--artifact-type", SBOM_TYPE, back).json()
    assert [n["digest"] for n in listed["referrers"]] == [sbom.digest]


@pytest.fixture
def plain_refreg(tmp_path: Path) -> Iterator[RefregServer]:
    """refreg without ``-oci-subject``: go-containerregistry's registry as it is."""
    server = RefregServer(tmp_path / "plain", binary=str(peer("refreg")), oci_subject=False)
    yield server.start()
    server.stop()


def test_without_oci_subject_attach_keeps_the_fallback_tag_too(
    plain_refreg: RefregServer, repo_name: str
) -> None:
    """A registry that lists referrers but does not confirm the subject on PUT (ggcr's as
    it is): attach cannot know it is indexed, so it also writes the fallback tag; a later
    run lists through the API, which does not list the fallback index itself."""
    repo, digest = _subject(plain_refreg, repo_name)
    image = random_image(seed=zlib.crc32(repo_name.encode()), layers=1)
    sig = signature_of(image.manifest)
    with client_for() as client:
        result = attach_artifact(client, repo, sig)
        assert referrers_api_supported(client, repo) is False
    assert not result.via_api and result.tag == fallback_tag(digest) and result.writes == 1
    plain_refreg.mark()
    with client_for() as fresh:
        assert [d.digest for d in list_referrers(fresh, repo, digest)] == [sig.digest]
        assert referrers_api_supported(fresh, repo) is True
    assert plain_refreg.count("GET", "/referrers/") == 1
    assert plain_refreg.count(path_contains="/manifests/") == 0
