"""Where the registries of the matrix legitimately differ, pinned per implementation.

distribution 2.8 (Debian), distribution 3.1 and refreg (go-containerregistry v0.22.1's
registry with the referrers API) answer the same for the tag, copy, referrers and layout
tests parametrised over ``any_registry``; these tests say, for each of them, what differs:
the referrers API or the fallback tag, tag delete, mount, and some errors. The OCI multi-tag
push (none of them has it) is pinned by test_tag.py::test_request_counts_open_registry.
"""

from __future__ import annotations

import zlib

import httpx
import pytest

from regshift.digests import compute_digest
from regshift.mediatypes import MediaType
from regshift.reference import parse_reference
from regshift.referrers import fallback_tag, list_referrers
from regshift.sample import SampleImage, random_image

from artifacts import SIG_TYPE, attach_artifact, signature_of
from harness.registry import RegistryServer
from support import client_for, run_cli, seed

# name: (the referrers API answers, attach confirmed by OCI-Subject)
_REFERRERS = {
    "distribution-2.8": (False, False),
    "distribution-3": (False, False),
    "refreg": (True, True),
}


def _image(repo_name: str, layers: int = 1) -> SampleImage:
    return random_image(seed=zlib.crc32(repo_name.encode()), layers=layers)


def test_referrers_api_or_fallback_tag(any_registry: RegistryServer, repo_name: str) -> None:
    api, confirmed = _REFERRERS[any_registry.name]
    image = _image(repo_name)
    src = seed(any_registry.host, repo_name, "v1", image)
    digest = image.manifest.digest
    probe = httpx.get(f"{any_registry.url}/v2/{repo_name}/referrers/{digest}")
    if api:
        assert probe.status_code == 200 and probe.json()["manifests"] == []
    else:  # distribution 2.8 and 3.1: no such route, a plain-text 404
        assert probe.status_code == 404 and probe.text.strip() == "404 page not found"

    sig = signature_of(image.manifest)
    with client_for() as client:
        result = attach_artifact(client, src.repo_only(), sig)
        assert [d.digest for d in list_referrers(client, src.repo_only(), digest)] == [sig.digest]
    assert result.via_api is confirmed
    tag = httpx.get(
        f"{any_registry.url}/v2/{repo_name}/manifests/{fallback_tag(digest)}",
        headers={"Accept": MediaType.OCI_INDEX.value},
    )
    assert tag.status_code == (404 if confirmed else 200)
    # Both kinds read the same through the CLI (with the artifact's own type on distribution;
    # refreg lists the config media type: test_referrers_api.py).
    listed = run_cli("referrers", "--json", f"{any_registry.host}/{repo_name}:v1")
    assert [n["digest"] for n in listed.json()["referrers"]] == [sig.digest]
    if not api:
        assert listed.json()["referrers"][0]["artifactType"] == SIG_TYPE


# name: exit code of `regshift delete` of a tag that another tag shares
_TAG_DELETE = {
    # no tag delete (400 DIGEST_INVALID): only the manifest can go, which takes "b" along
    "distribution-2.8": 5,
    # tag delete (DELETE /manifests/<tag> untags, 202)
    "distribution-3": 0,
    "refreg": 0,
}


def test_tag_delete(any_registry: RegistryServer, repo_name: str) -> None:
    image = _image(repo_name)
    seed(any_registry.host, repo_name, "a", image)
    assert run_cli("tag", f"{any_registry.host}/{repo_name}:a", "b").code == 0
    raw = httpx.delete(f"{any_registry.url}/v2/{repo_name}/manifests/nonexistent-tag")
    result = run_cli("delete", "--json", f"{any_registry.host}/{repo_name}:a")
    assert result.code == _TAG_DELETE[any_registry.name], result.stderr
    left = sorted(run_cli("ls", f"{any_registry.host}/{repo_name}").stdout.split())
    if result.code == 0:
        assert raw.status_code == 404  # a tag-delete route: the tag is unknown
        assert result.json()["digest"] == image.manifest.digest
        assert left == ["b"]
    else:
        assert raw.status_code == 400 and "DIGEST_INVALID" in raw.text
        assert "b" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert left == ["a", "b"], "nothing deleted without --force"
    served = run_cli("digest", f"{any_registry.host}/{repo_name}:b")
    assert served.stdout.strip() == image.manifest.digest


def test_mount(any_registry: RegistryServer, repo_name: str) -> None:
    """distribution mounts a blob into another repository (201); refreg never mounts (202,
    an upload session) but keeps blobs per registry, so the blob is there already."""
    blob = b"a blob for the mount test " + repo_name.encode()
    digest = compute_digest(blob)
    with client_for() as client:
        client.put_blob(parse_reference(f"{any_registry.host}/{repo_name}:x"), blob)
    other = f"{repo_name}-other"
    before = httpx.head(f"{any_registry.url}/v2/{other}/blobs/{digest}").status_code
    mount = httpx.post(
        f"{any_registry.url}/v2/{other}/blobs/uploads/",
        params={"mount": digest, "from": repo_name},
    )
    if any_registry.name == "refreg":
        assert before == 200, "refreg: every repository has every blob"
        assert mount.status_code == 202 and "/blobs/uploads/" in mount.headers["Location"]
    else:
        assert before == 404
        assert mount.status_code == 201 and mount.headers["Docker-Content-Digest"] == digest
    assert httpx.head(f"{any_registry.url}/v2/{other}/blobs/{digest}").status_code == 200


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("digest", "{host}/{repo}:nope"), "nope"),
        (("digest", "{host}/{repo}-missing:v1"), "-missing"),
        (("tag", "{host}/{repo}:nope", "x"), "nope"),
        (("copy", "{host}/{repo}:nope", "{host}/{repo}-c:x"), "nope"),
    ],
    ids=["unknown-tag", "unknown-repository", "tag-unknown-source", "copy-unknown-source"],
)
def test_not_found_is_exit_4_everywhere(
    any_registry: RegistryServer, repo_name: str, args: tuple[str, ...], needle: str
) -> None:
    """Unknown manifests and repositories: MANIFEST_UNKNOWN / NAME_UNKNOWN on all three (refreg
    also for a tag of an existing repository), one line, exit 4."""
    seed(any_registry.host, repo_name, "v1", _image(repo_name))
    argv = [a.format(host=any_registry.host, repo=repo_name) for a in args]
    result = run_cli(*argv)
    assert result.code == 4, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
