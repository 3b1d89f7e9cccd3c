"""The storage interface: the same test bodies against a registry repository (the real
registry) and an OCI layout (a temporary directory), so both backends keep one contract."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from regshift import Client
from regshift.digests import compute_digest
from regshift.errors import (
    DigestMismatch,
    LayoutError,
    ManifestError,
    NotFound,
    NotFoundInLayout,
    RegistryError,
)
from regshift.manifests import Descriptor, Manifest, parse_manifest
from regshift.mediatypes import MediaType
from regshift.reference import parse_reference
from regshift.sample import SampleImage, random_image
from regshift.storage import (
    BlobMounter,
    ChunkedUploads,
    ManifestDeleter,
    MultiTagPusher,
    Repository,
    open_repository,
)
from regshift.storage.oci import LayoutRepository
from regshift.storage.registry import RegistryRepository

from artifacts import SBOM_TYPE, sbom_of, signature_of
from harness.registry import RegistryServer
from support import client_for

_names = itertools.count()
MISSING = "sha256:" + "0" * 64


@pytest.fixture
def client() -> Iterator[Client]:
    with client_for() as c:
        yield c


@pytest.fixture(params=["registry", "layout"])
def repo(
    request: pytest.FixtureRequest, client: Client, tmp_path: Path, open_registry: RegistryServer
) -> Repository:
    """A fresh, empty repository of each backend, opened through the one entry point."""
    if request.param == "registry":
        text = f"{open_registry.host}/storage/case{next(_names)}"
    else:
        text = f"oci:{tmp_path / 'layout'}"
    return open_repository(client, text, create=True)


def _store(repo: Repository, image: SampleImage, tag: str) -> None:
    for blob in image.blobs:
        desc = Descriptor(media_type="", digest=compute_digest(blob), size=len(blob))
        repo.write_blob(desc, iter([blob]))
    repo.put_manifest(image.manifest, [tag])


def _read(repo: Repository, desc: Descriptor) -> bytes:
    with repo.open_blob(desc) as chunks:
        return b"".join(chunks)


def test_open_repository_picks_the_backend(repo: Repository) -> None:
    if repo.endpoint is None:
        assert isinstance(repo, LayoutRepository) and repo.local
        assert not isinstance(repo, MultiTagPusher | BlobMounter | ChunkedUploads)
        assert not isinstance(repo, ManifestDeleter)
    else:
        assert isinstance(repo, RegistryRepository) and not repo.local
        assert isinstance(repo, MultiTagPusher) and isinstance(repo, BlobMounter)
        assert isinstance(repo, ChunkedUploads) and isinstance(repo, ManifestDeleter)


def test_manifests_round_trip_byte_for_byte(repo: Repository) -> None:
    # Pretty-printed with odd spacing: any re-serialisation would change the digest.
    image = random_image(seed=4101, pretty=True)
    _store(repo, image, "v1")
    got = repo.get_manifest("v1")
    assert got.raw == image.manifest.raw and got.digest == image.manifest.digest
    assert repo.get_manifest(image.manifest.digest).raw == image.manifest.raw
    assert repo.resolve("v1").digest == image.manifest.digest
    assert repo.resolve(image.manifest.digest).size == image.manifest.size
    assert repo.head("v1") == image.manifest.digest
    assert repo.has_manifest(image.manifest.digest)
    assert repo.at("v1").identifier == "v1"
    assert repo.at(image.manifest.digest).digest == image.manifest.digest


def test_missing_things_are_none_or_not_found(repo: Repository) -> None:
    _store(repo, random_image(seed=4102), "v1")
    assert repo.head("nope") is None
    assert not repo.has_manifest(MISSING)
    with pytest.raises((NotFound, NotFoundInLayout)):
        repo.resolve("nope")
    with pytest.raises((NotFound, NotFoundInLayout)):
        repo.get_manifest(MISSING)


def test_blobs_are_written_checked_and_read_back(repo: Repository) -> None:
    data = b"regshift storage blob " * 1000
    desc = Descriptor(media_type="", digest=compute_digest(data), size=len(data))
    assert not repo.has_blob(desc)
    repo.write_blob(desc, iter([data[:5000], data[5000:]]))
    assert repo.has_blob(desc)
    assert _read(repo, desc) == data


def test_a_blob_that_does_not_match_its_digest_is_refused(repo: Repository) -> None:
    data = b"the bytes promised"
    desc = Descriptor(media_type="", digest=compute_digest(data), size=len(data))
    wrong = b"other bytes, same...."[: len(data)]
    expected = DigestMismatch if repo.local else RegistryError  # the registry refuses it
    with pytest.raises(expected):
        repo.write_blob(desc, iter([wrong]))
    assert not repo.has_blob(desc)


def test_tags_are_listed_and_deleted(repo: Repository) -> None:
    image = random_image(seed=4103)
    _store(repo, image, "one")
    repo.put_manifest(image.manifest, ["two"])
    assert sorted(repo.list_tags()) == ["one", "two"]
    if isinstance(repo, ManifestDeleter):
        # distribution 2.8 cannot delete a tag alone: the manifest goes, with its tags.
        repo.delete_manifest(image.manifest.digest)
        assert repo.head("one") is None
    else:
        repo.delete("two")
        assert repo.head("one") == image.manifest.digest
        with pytest.raises(LayoutError, match="give a tag"):
            repo.delete(image.manifest.digest)  # a layout deletes tags only
    assert repo.head("two") is None


def test_a_child_manifest_is_stored_by_digest_without_a_tag(repo: Repository) -> None:
    _store(repo, random_image(seed=4114), "other")  # distribution lists no tags of no repo
    image = random_image(seed=4104)
    for blob in image.blobs:
        repo.write_blob(Descriptor("", compute_digest(blob), len(blob)), iter([blob]))
    repo.put_manifest(image.manifest)
    assert repo.has_manifest(image.manifest.digest)
    assert repo.list_tags() == ["other"]


def test_referrers_are_attached_and_listed(repo: Repository) -> None:
    image = random_image(seed=4105)
    _store(repo, image, "v1")
    assert repo.list_referrers(image.manifest.digest) == []
    artifacts = [signature_of(image.manifest), sbom_of(image.manifest)]
    for artifact in artifacts:
        for blob in artifact.blobs:
            repo.write_blob(Descriptor("", compute_digest(blob), len(blob)), iter([blob]))
        result = repo.attach(artifact.manifest)
        assert result.digest == artifact.digest and result.writes == 1
    found = repo.list_referrers(image.manifest.digest)
    assert [d.digest for d in found] == [a.digest for a in artifacts]
    sboms = repo.list_referrers(image.manifest.digest, artifact_type=SBOM_TYPE)
    assert [d.digest for d in sboms] == [artifacts[1].digest]
    again = repo.attach(artifacts[0].manifest)  # idempotent: nothing to merge
    assert again.writes == 0


def test_a_manifest_without_subject_cannot_be_attached(repo: Repository) -> None:
    image = random_image(seed=4106)
    _store(repo, image, "v1")
    with pytest.raises(ManifestError, match="no subject"):
        repo.attach(image.manifest)


def test_replace_manifest_refuses_a_stale_version(repo: Repository) -> None:
    index = _index()
    assert repo.replace_manifest("list", index, None)
    assert repo.head("list") == index.digest
    if repo.local:  # a layout checks; distribution 2.8 ignores conditional requests
        assert not repo.replace_manifest("list", index, MISSING)


def _index() -> Manifest:
    doc = b'{"schemaVersion":2,"mediaType":"%s","manifests":[]}' % MediaType.OCI_INDEX.encode()
    return parse_manifest(doc, MediaType.OCI_INDEX)


def test_open_repository_reads_references_of_both_kinds(
    client: Client, tmp_path: Path, open_registry: RegistryServer
) -> None:
    ref = parse_reference(f"{open_registry.host}/storage/kinds:v2")
    registry = open_repository(client, ref)
    assert registry.reference == ref and registry.identifier == "v2"
    layout = open_repository(client, f"oci:{tmp_path / 'kinds'}@{MISSING}", create=True)
    assert layout.digest == MISSING and layout.name == f"oci:{tmp_path / 'kinds'}"
    with pytest.raises(NotFoundInLayout):
        open_repository(client, f"oci:{tmp_path / 'absent'}")
