"""Referrers on the real registry: attach, list and walk signatures and SBOMs.

CNCF distribution 2.8 and 3.1 have no referrers API (``GET /v2/<name>/referrers/<digest>`` is
a plain-text 404, and no ``OCI-Subject`` comes back on a manifest PUT), so most tests run the
referrers tag schema end to end, on both. The API path is tested for real against refreg in
test_referrers_api.py; here it is emulated with the fault proxy in front of distribution, for
what refreg does not do (pagination, applied filters) and for faults: canned ``/referrers/``
answers and an injected ``OCI-Subject``.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from regshift import Client
from regshift.errors import APIError, ManifestError, PreconditionFailed
from regshift.manifests import Manifest, parse_manifest
from regshift.mediatypes import MediaType
from regshift.reference import Reference
from regshift.referrers import (
    MAX_INDEX_WRITES,
    attach,
    fallback_tag,
    list_referrers,
    referrer_tree,
    referrers_api_supported,
)
from regshift.sample import random_image

from artifacts import (
    SBOM_TYPE,
    SIG_TYPE,
    Artifact,
    attach_artifact,
    make_artifact,
    push_blobs,
    sbom_of,
    signature_of,
)
from harness.proxy import FaultProxy, Respond, RewriteHeader, Rule
from harness.registry import RegistryServer
from support import client_for, seed

FOREIGN_TYPE = "application/vnd.example.other-tool.v1"
INDEX = MediaType.OCI_INDEX.value


def fallback_index(registry_url: str, repo: str, digest: str) -> dict[str, object] | None:
    """The fallback index as the registry serves it (None when the tag does not exist)."""
    url = f"{registry_url}/v2/{repo}/manifests/{fallback_tag(digest)}"
    response = httpx.get(url, headers={"Accept": INDEX})
    if response.status_code == 404:
        return None
    response.raise_for_status()
    assert response.headers["content-type"] == INDEX
    doc: dict[str, object] = response.json()
    return doc


def entries(doc: Mapping[str, object] | None) -> list[dict[str, object]]:
    assert doc is not None, "no fallback index"
    manifests = doc["manifests"]
    assert isinstance(manifests, list)
    return manifests


def put_index(registry_url: str, repo: str, tag: str, doc: Mapping[str, object]) -> None:
    """Write an index under ``tag`` as "another tool" would (bypassing regshift)."""
    response = httpx.put(
        f"{registry_url}/v2/{repo}/manifests/{tag}",
        headers={"Content-Type": INDEX},
        content=json.dumps(doc).encode(),
    )
    assert response.status_code == 201, response.text


def foreign_entry(artifact: Artifact, **extra: object) -> dict[str, object]:
    """An entry as another tool might write it: extra annotations and an unknown field."""
    return {
        "mediaType": artifact.manifest.media_type,
        "digest": artifact.digest,
        "size": artifact.manifest.size,
        "artifactType": FOREIGN_TYPE,
        "annotations": {"written-by": "other-tool"},
        "x-other-tool": {"keep": ["me", 1]},
        **extra,
    }


@pytest.fixture
def client() -> Iterator[Client]:
    with client_for() as c:
        yield c


@dataclass(frozen=True)
class Subject:
    registry: RegistryServer
    repo_name: str
    repo: Reference
    manifest: Manifest

    @property
    def digest(self) -> str:
        return self.manifest.digest


@pytest.fixture(params=["distribution-2.8", "distribution-3"])
def subject(
    request: pytest.FixtureRequest,
    registry_named: Callable[[str], RegistryServer],
    repo_name: str,
) -> Subject:
    """An image on each registry without the referrers API (refreg: test_referrers_api.py)."""
    open_registry = registry_named(request.param)
    image = random_image(seed=zlib.crc32(repo_name.encode()), layers=1)
    ref = seed(open_registry.host, repo_name, "v1", image)
    return Subject(open_registry, repo_name, ref.repo_only(), image.manifest)


# -- the fallback tag schema on distribution 2.8 ---------------------------------------------


def test_attach_two_artifacts_and_list_them(subject: Subject, client: Client) -> None:
    sig, sbom = signature_of(subject.manifest), sbom_of(subject.manifest)
    assert list_referrers(client, subject.repo, subject.digest) == []

    results = [attach_artifact(client, subject.repo, a) for a in (sig, sbom)]
    for result, artifact in zip(results, (sig, sbom), strict=True):
        assert not result.via_api
        assert result.digest == artifact.digest and result.subject == subject.digest
        assert result.tag == fallback_tag(subject.digest) == "sha256-" + subject.digest[7:]
        assert result.added and result.writes == 1

    found = list_referrers(client, subject.repo, subject.digest)
    assert [d.digest for d in found] == [sig.digest, sbom.digest]
    assert [d.artifact_type for d in found] == [SIG_TYPE, SBOM_TYPE]
    assert found[0].annotations == {
        "dev.cosignproject.cosign/signature": "MEUCIQ-ci",
        "signer": "ci",
    }
    assert found[1].size == sbom.manifest.size
    assert found[1].media_type == MediaType.OCI_MANIFEST

    only_sboms = list_referrers(client, subject.repo, subject.digest, artifact_type=SBOM_TYPE)
    assert [d.digest for d in only_sboms] == [sbom.digest]
    assert list_referrers(client, subject.repo, subject.digest, artifact_type="x/none") == []

    index = fallback_index(subject.registry.url, subject.repo_name, subject.digest)
    assert index is not None and index["mediaType"] == INDEX
    assert entries(index) == [
        {
            "mediaType": MediaType.OCI_MANIFEST.value,
            "digest": a.digest,
            "size": a.manifest.size,
            "artifactType": t,
            "annotations": json.loads(a.manifest.raw)["annotations"],
        }
        for a, t in ((sig, SIG_TYPE), (sbom, SBOM_TYPE))
    ]
    # the artifacts themselves are stored byte for byte, by digest
    stored = client.get_manifest(subject.repo.with_digest(sbom.digest))
    assert stored.raw == sbom.manifest.raw and stored.subject is not None
    assert stored.subject.digest == subject.digest


def test_artifact_type_falls_back_to_the_config_media_type(
    subject: Subject, client: Client
) -> None:
    plain = make_artifact(subject.manifest, SBOM_TYPE, b"no artifactType")
    doc = json.loads(plain.manifest.raw)
    del doc["artifactType"]
    doc["config"]["mediaType"] = "application/vnd.example.config.v1+json"
    raw = json.dumps(doc).encode()
    artifact = Artifact(parse_manifest(raw), plain.blobs)
    attach_artifact(client, subject.repo, artifact)
    (found,) = list_referrers(client, subject.repo, subject.digest)
    assert found.artifact_type == "application/vnd.example.config.v1+json"
    assert found.annotations == {}


def test_attach_keeps_entries_other_tools_wrote(subject: Subject, client: Client) -> None:
    other = make_artifact(subject.manifest, FOREIGN_TYPE, b"other tool's attestation")
    push_blobs(client, subject.repo, other)
    client.put_manifest(subject.repo.with_digest(other.digest), other.manifest)
    theirs = foreign_entry(other)
    tag = fallback_tag(subject.digest)
    put_index(
        subject.registry.url,
        subject.repo_name,
        tag,
        {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [theirs],
            "annotations": {"index-owner": "other-tool"},
        },
    )

    sig = signature_of(subject.manifest)
    result = attach_artifact(client, subject.repo, sig)
    assert result.added and result.writes == 1

    index = fallback_index(subject.registry.url, subject.repo_name, subject.digest)
    assert entries(index)[0] == theirs, "another tool's entry must survive exactly"
    assert [e["digest"] for e in entries(index)] == [other.digest, sig.digest]
    assert index is not None and index["annotations"] == {"index-owner": "other-tool"}
    listed = list_referrers(client, subject.repo, subject.digest)
    assert [(d.digest, d.artifact_type) for d in listed] == [
        (other.digest, FOREIGN_TYPE),
        (sig.digest, SIG_TYPE),
    ]


def test_attaching_twice_does_not_duplicate(subject: Subject, client: Client) -> None:
    sig = signature_of(subject.manifest)
    first = attach_artifact(client, subject.repo, sig)
    subject.registry.mark()
    second = attach_artifact(client, subject.repo, sig)
    assert first.added and first.writes == 1
    assert not second.added and second.writes == 0
    tag = fallback_tag(subject.digest)
    index_puts = [
        r for r in subject.registry.requests() if r.method == "PUT" and r.route.endswith(tag)
    ]
    assert index_puts == [], "an entry already listed must not be written again"
    index = fallback_index(subject.registry.url, subject.repo_name, subject.digest)
    assert [e["digest"] for e in entries(index)] == [sig.digest]


def test_referrer_tree_shows_a_signature_of_the_sbom(subject: Subject, client: Client) -> None:
    image_sig = signature_of(subject.manifest, who="release")
    sbom = sbom_of(subject.manifest)
    sbom_sig = signature_of(sbom.manifest, who="sbom-signer")
    for artifact in (image_sig, sbom, sbom_sig):
        attach_artifact(client, subject.repo, artifact)

    tree = referrer_tree(client, subject.repo, subject.digest)
    assert [(n.descriptor.digest, n.artifact_type) for n in tree] == [
        (image_sig.digest, SIG_TYPE),
        (sbom.digest, SBOM_TYPE),
    ]
    assert tree[0].children == []
    (child,) = tree[1].children
    assert child.descriptor.digest == sbom_sig.digest
    assert child.artifact_type == SIG_TYPE
    assert child.annotations["signer"] == "sbom-signer"
    assert child.children == []

    shallow = referrer_tree(client, subject.repo, subject.digest, max_depth=1)
    assert [n.descriptor.digest for n in shallow] == [image_sig.digest, sbom.digest]
    assert all(n.children == [] for n in shallow)

    sboms = referrer_tree(client, subject.repo, subject.digest, artifact_type=SBOM_TYPE)
    assert [n.descriptor.digest for n in sboms] == [sbom.digest]
    assert [c.descriptor.digest for c in sboms[0].children] == [sbom_sig.digest]

    with pytest.raises(ValueError, match="max_depth"):
        referrer_tree(client, subject.repo, subject.digest, max_depth=0)


def test_referrer_tree_survives_a_cycle_in_hand_written_indexes(
    subject: Subject, client: Client
) -> None:
    sbom = sbom_of(subject.manifest)
    attach_artifact(client, subject.repo, sbom)
    # another tool lists the image itself as a referrer of its SBOM: a cycle
    image_entry = {
        "mediaType": subject.manifest.media_type,
        "digest": subject.digest,
        "size": subject.manifest.size,
    }
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [image_entry]}
    put_index(subject.registry.url, subject.repo_name, fallback_tag(sbom.digest), index)

    tree = referrer_tree(client, subject.repo, subject.digest)
    assert [n.descriptor.digest for n in tree] == [sbom.digest]
    assert tree[0].children == []


def test_api_support_is_detected_once_per_run(subject: Subject, client: Client) -> None:
    sbom = sbom_of(subject.manifest)
    attach_artifact(client, subject.repo, sbom)
    other_repo = subject.repo.with_repository(subject.repo_name + "-other")

    with client_for() as fresh:
        assert referrers_api_supported(fresh, subject.repo) is None
        subject.registry.mark()
        assert len(list_referrers(fresh, subject.repo, subject.digest)) == 1
        assert referrers_api_supported(fresh, subject.repo) is False
        list_referrers(fresh, subject.repo, subject.digest, artifact_type=SBOM_TYPE)
        list_referrers(fresh, subject.repo, sbom.digest)
        list_referrers(fresh, other_repo, subject.digest)  # same registry, other repository
        probes = subject.registry.count("GET", "/referrers/")
        assert probes == 1, "the referrers API must be probed once per registry per run"

    with client_for() as next_run:  # a new run probes again
        subject.registry.mark()
        list_referrers(next_run, subject.repo, subject.digest)
        assert subject.registry.count("GET", "/referrers/") == 1


def test_attach_teaches_the_run_that_there_is_no_api(subject: Subject, client: Client) -> None:
    attach_artifact(client, subject.repo, signature_of(subject.manifest))
    assert referrers_api_supported(client, subject.repo) is False
    subject.registry.mark()
    assert len(list_referrers(client, subject.repo, subject.digest)) == 1
    assert subject.registry.count("GET", "/referrers/") == 0


def test_a_non_index_under_the_fallback_tag_is_an_error(subject: Subject, client: Client) -> None:
    tag = fallback_tag(subject.digest)
    seed(subject.registry.host, subject.repo_name, tag, random_image(seed=4242, layers=1))
    with pytest.raises(ManifestError, match=tag):
        list_referrers(client, subject.repo, subject.digest)
    sig = signature_of(subject.manifest)
    with pytest.raises(ManifestError, match=tag):
        attach_artifact(client, subject.repo, sig)
    # the tag was not overwritten
    assert client.get_manifest(subject.repo.with_tag(tag)).media_type == MediaType.OCI_MANIFEST


def test_attach_needs_a_subject(subject: Subject, client: Client) -> None:
    with pytest.raises(ManifestError, match="no subject"):
        attach(client, subject.repo, subject.manifest)


def test_a_stale_entry_blocks_the_update_with_a_clear_error(
    subject: Subject, client: Client
) -> None:
    """distribution 2.8 refuses an index naming a manifest it no longer has; we keep it."""
    gone = make_artifact(subject.manifest, FOREIGN_TYPE, b"deleted later")
    push_blobs(client, subject.repo, gone)
    client.put_manifest(subject.repo.with_digest(gone.digest), gone.manifest)
    tag = fallback_tag(subject.digest)
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [foreign_entry(gone)]}
    put_index(subject.registry.url, subject.repo_name, tag, index)
    client.delete_manifest(subject.repo.with_digest(gone.digest))

    with pytest.raises(APIError) as caught:
        attach_artifact(client, subject.repo, signature_of(subject.manifest))
    assert "MANIFEST_BLOB_UNKNOWN" in caught.value.codes
    assert "no longer has" in str(caught.value)
    after = fallback_index(subject.registry.url, subject.repo_name, subject.digest)
    assert entries(after) == [foreign_entry(gone)]


# -- concurrent writers: read-verify-retry ---------------------------------------------------


def test_attach_restores_entries_a_concurrent_writer_dropped(
    subject: Subject, client: Client
) -> None:
    """Another tool overwrites the index right after our PUT, with a list it read earlier."""
    registry, tag = subject.registry, fallback_tag(subject.digest)
    first, second = (
        make_artifact(subject.manifest, FOREIGN_TYPE, f"foreign {n}".encode()) for n in (1, 2)
    )
    for artifact in (first, second):
        push_blobs(client, subject.repo, artifact)
        client.put_manifest(subject.repo.with_digest(artifact.digest), artifact.manifest)
    put_index(
        registry.url,
        subject.repo_name,
        tag,
        {"schemaVersion": 2, "mediaType": INDEX, "manifests": [foreign_entry(first)]},
    )

    def overwrite(_: str | None) -> None:
        # runs in the proxy once the registry has stored our index, before we see the answer
        concurrent = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [foreign_entry(second)]}
        put_index(registry.url, subject.repo_name, tag, concurrent)
        return None

    sig = signature_of(subject.manifest)
    with FaultProxy(registry.host) as proxy, client_for() as via_proxy:
        hook = proxy.add_rule(
            Rule(
                method="PUT",
                path=rf"/manifests/{tag}$",
                times=1,
                action=RewriteHeader("X-Concurrent-Writer", overwrite),
            )
        )
        repo = Reference(proxy.host, subject.repo_name)
        result = attach_artifact(via_proxy, repo, sig)
    assert hook.hits == 1
    assert result.added and result.writes == 2
    index = fallback_index(registry.url, subject.repo_name, subject.digest)
    assert entries(index) == [
        foreign_entry(second),  # the concurrent writer's list, untouched
        foreign_entry(first),  # what we had read: restored
        {
            "mediaType": MediaType.OCI_MANIFEST.value,
            "digest": sig.digest,
            "size": sig.manifest.size,
            "artifactType": SIG_TYPE,
            "annotations": json.loads(sig.manifest.raw)["annotations"],
        },
    ]


def test_attach_gives_up_when_every_write_is_lost(subject: Subject, client: Client) -> None:
    tag = fallback_tag(subject.digest)
    sig = signature_of(subject.manifest)
    with FaultProxy(subject.registry.host) as proxy, client_for() as via_proxy:
        # the registry "accepts" every index PUT but the list never shows our entry
        lost = proxy.add_rule(Rule(method="PUT", path=rf"/manifests/{tag}$", action=Respond(201)))
        repo = Reference(proxy.host, subject.repo_name)
        with pytest.raises(PreconditionFailed, match="concurrent writers"):
            attach_artifact(via_proxy, repo, sig)
    assert lost.hits == MAX_INDEX_WRITES
    assert fallback_index(subject.registry.url, subject.repo_name, subject.digest) is None


# -- the referrers API, emulated by the fault proxy ------------------------------------------


def _api_answer(*descriptors: Mapping[str, object]) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": INDEX, "manifests": list(descriptors)}
    ).encode()


def test_list_uses_the_referrers_api_when_the_registry_has_it(subject: Subject) -> None:
    sig, sbom = signature_of(subject.manifest), sbom_of(subject.manifest)
    answer = _api_answer(
        {**foreign_entry(sig), "artifactType": SIG_TYPE},
        {**foreign_entry(sbom), "artifactType": SBOM_TYPE},
    )
    with FaultProxy(subject.registry.host) as proxy, client_for() as client:
        api = proxy.add_rule(
            Rule(
                method="GET",
                path=r"/referrers/sha256:",
                action=Respond(200, {"Content-Type": INDEX}, answer),
            )
        )
        repo = Reference(proxy.host, subject.repo_name)
        found = list_referrers(client, repo, subject.digest)
        assert [(d.digest, d.artifact_type) for d in found] == [
            (sig.digest, SIG_TYPE),
            (sbom.digest, SBOM_TYPE),
        ]
        assert found[0].annotations == {"written-by": "other-tool"}
        assert referrers_api_supported(client, repo) is True
        # no OCI-Filters-Applied in the answer: regshift filters itself
        only = list_referrers(client, repo, subject.digest, artifact_type=SBOM_TYPE)
        assert [d.digest for d in only] == [sbom.digest]
        assert api.hits == 2
        query = parse_qs(urlsplit(proxy.requests[-1].path).query)
        assert query == {"artifactType": [SBOM_TYPE]}
        assert not [r for r in proxy.requests if "/manifests/" in r.path], "no fallback reads"


def test_a_filter_the_registry_applied_is_trusted(subject: Subject) -> None:
    sbom = sbom_of(subject.manifest)
    answer = _api_answer({**foreign_entry(sbom), "artifactType": SBOM_TYPE})
    headers = {"Content-Type": INDEX, "OCI-Filters-Applied": "artifactType"}
    with FaultProxy(subject.registry.host) as proxy, client_for() as client:
        proxy.add_rule(
            Rule(method="GET", path=r"/referrers/", action=Respond(200, headers, answer))
        )
        repo = Reference(proxy.host, subject.repo_name)
        found = list_referrers(client, repo, subject.digest, artifact_type=SBOM_TYPE)
        assert [d.digest for d in found] == [sbom.digest]


def test_attach_with_oci_subject_leaves_the_fallback_tag_alone(subject: Subject) -> None:
    tag = fallback_tag(subject.digest)
    sig = signature_of(subject.manifest)
    with FaultProxy(subject.registry.host) as proxy, client_for() as client:
        confirm = proxy.add_rule(
            Rule(
                method="PUT",
                path=r"/manifests/sha256:",
                action=RewriteHeader("OCI-Subject", subject.digest),
            )
        )
        repo = Reference(proxy.host, subject.repo_name)
        result = attach_artifact(client, repo, sig)
        assert referrers_api_supported(client, repo) is True
    assert result.via_api and result.tag is None and result.writes == 0
    assert confirm.hits == 1
    assert not [r for r in proxy.requests if tag in r.path], "the fallback tag must not be touched"
    assert fallback_index(subject.registry.url, subject.repo_name, subject.digest) is None
    stored = httpx.get(
        f"{subject.registry.url}/v2/{subject.repo_name}/manifests/{sig.digest}",
        headers={"Accept": MediaType.OCI_MANIFEST.value},
    )
    assert stored.status_code == 200 and stored.content == sig.manifest.raw


def test_an_api_registry_that_404s_a_missing_repository_is_not_written_off(
    subject: Subject,
) -> None:
    """A 404 NAME_UNKNOWN comes from a missing repository, not from a missing API."""
    with FaultProxy(subject.registry.host) as proxy, client_for() as client:
        proxy.add_rule(
            Rule(method="GET", path=r"/referrers/", action=Respond.oci_error(404, "NAME_UNKNOWN"))
        )
        proxy.add_rule(
            Rule(
                method="GET",
                path=r"/nothing-here/manifests/",
                action=Respond.oci_error(404, "NAME_UNKNOWN", "repository name not known"),
            )
        )
        missing = Reference(proxy.host, "t/nothing-here")
        assert list_referrers(client, missing, subject.digest) == []
        assert referrers_api_supported(client, missing) is None
        repo = Reference(proxy.host, subject.repo_name)
        assert list_referrers(client, repo, subject.digest) == []
        assert referrers_api_supported(client, repo) is False


def test_referrers_api_pages_are_followed(subject: Subject) -> None:
    """Two pages joined by a Link header (emulated API), the filter sent only once."""
    sig, sbom = signature_of(subject.manifest), sbom_of(subject.manifest)
    first = _api_answer({**foreign_entry(sig), "artifactType": SIG_TYPE})
    second = _api_answer({**foreign_entry(sbom), "artifactType": SBOM_TYPE})
    page_two = f"/v2/{subject.repo_name}/referrers/{subject.digest}?last=1"
    with FaultProxy(subject.registry.host) as proxy, client_for() as client:
        proxy.add_rule(
            Rule(
                method="GET",
                path=r"/referrers/sha256:[0-9a-f]+\?last=1$",
                action=Respond(200, {"Content-Type": INDEX}, second),
            )
        )
        proxy.add_rule(
            Rule(
                method="GET",
                path=r"/referrers/sha256:[0-9a-f]+$",
                action=Respond(
                    200, [("Content-Type", INDEX), ("Link", f'<{page_two}>; rel="next"')], first
                ),
            )
        )
        found = list_referrers(client, Reference(proxy.host, subject.repo_name), subject.digest)
        assert [d.digest for d in found] == [sig.digest, sbom.digest]
        assert len([r for r in proxy.requests if "/referrers/" in r.path]) == 2


def test_a_non_index_answer_means_no_api(subject: Subject, client: Client) -> None:
    """A 200 that is not an image index: the fallback tag is read, and that is remembered."""
    sig = signature_of(subject.manifest)
    attach_artifact(client, Reference(subject.registry.host, subject.repo_name), sig)
    with FaultProxy(subject.registry.host) as proxy, client_for() as fresh:
        proxy.add_rule(
            Rule(
                method="GET",
                path=r"/referrers/",
                action=Respond(200, {"Content-Type": "text/html"}, b"<html>not an api</html>"),
            )
        )
        repo = Reference(proxy.host, subject.repo_name)
        assert [d.digest for d in list_referrers(fresh, repo, subject.digest)] == [sig.digest]
        assert [d.digest for d in list_referrers(fresh, repo, subject.digest)] == [sig.digest]
        assert referrers_api_supported(fresh, repo) is False
        assert len([r for r in proxy.requests if "/referrers/" in r.path]) == 1


def test_attach_sends_conditions_and_merges_again_on_412(subject: Subject) -> None:
    """A registry honouring If-Match (emulated: one 412) makes attach re-read and retry."""
    sig = signature_of(subject.manifest)
    with FaultProxy(subject.registry.host) as proxy, client_for() as client:
        repo = Reference(proxy.host, subject.repo_name)
        push_blobs(client, repo, sig)
        tag = fallback_tag(subject.digest)
        proxy.add_rule(
            Rule(method="PUT", path=f"/manifests/{tag}$", times=1, action=Respond(412, {}, b""))
        )
        result = attach(client, repo, sig.manifest)
        puts = [
            r for r in proxy.requests if r.method == "PUT" and r.path.endswith(f"/manifests/{tag}")
        ]
    assert result.writes == 2 and not result.via_api
    assert [r.status for r in puts] == [412, 201]
    assert puts[0].headers.get("if-none-match") == "*"  # no index existed when it was read
    assert [
        e["digest"]
        for e in entries(fallback_index(subject.registry.url, subject.repo_name, subject.digest))
    ] == [sig.digest]


def test_attach_sends_if_match_with_the_version_read(subject: Subject) -> None:
    sig, sbom = signature_of(subject.manifest), sbom_of(subject.manifest)
    with FaultProxy(subject.registry.host) as proxy, client_for() as client:
        repo = Reference(proxy.host, subject.repo_name)
        attach_artifact(client, repo, sig)
        tag = fallback_tag(subject.digest)
        before = client.get_manifest(repo.with_tag(tag)).digest
        proxy.reset_log()
        attach_artifact(client, repo, sbom)
        (put,) = [
            r for r in proxy.requests if r.method == "PUT" and r.path.endswith(f"/manifests/{tag}")
        ]
    assert put.headers.get("if-match") == f'"{before}"'
