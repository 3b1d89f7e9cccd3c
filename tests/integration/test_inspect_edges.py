"""`regshift inspect` and `regshift referrers` on hostile or unusual input.

Each test drives a real registry (through a :class:`~harness.proxy.FaultProxy` where the
registry must misbehave) or an OCI layout, and checks exit codes and output:

* a config whose ``Labels`` / ``Entrypoint`` / ``Cmd`` break the image spec's types, or
  whose JSON is nested too deeply to parse, is shown with those fields absent (exit 0);
* a config blob is verified against its descriptor while it is read: another document, or
  a body longer than announced, is a digest mismatch (exit 1), never shown;
* the referrers of a manifest or repository that does not exist are "not found" (exit 4);
* a manifest an index lists under two platforms is shown once per platform;
* the referrer count counts each digest once, like ``referrers`` lists them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from regshift.digests import compute_digest
from regshift.errors import NotFound
from regshift.layout import Layout
from regshift.manifests import Descriptor, Manifest, parse_manifest
from regshift.mediatypes import MediaType
from regshift.reference import Reference
from regshift.referrers import fallback_tag, referrer_tree
from regshift.sample import SampleImage, SampleIndex, random_image

from artifacts import push_blobs, signature_of
from harness.proxy import FaultProxy, Respond, Rule
from harness.registry import RegistryServer
from support import client_for, run_cli, seed

INDEX = MediaType.OCI_INDEX.value
MISSING = "sha256:" + "ab" * 32


def _layout_with_config(path: Path, config: bytes) -> str:
    """An ``oci:`` reference to a one-image layout whose config blob is ``config``."""
    layout = Layout(path, create=True)
    layout.write_blob(compute_digest(config), len(config), [config])
    doc = {
        "schemaVersion": 2,
        "mediaType": MediaType.OCI_MANIFEST.value,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": compute_digest(config),
            "size": len(config),
        },
        "layers": [],
    }
    layout.put_manifest(parse_manifest(json.dumps(doc).encode()), "v1")
    return f"oci:{path}:v1"


def _platform(result_json: dict[str, Any]) -> dict[str, Any]:
    (only,) = result_json["platforms"]
    assert isinstance(only, dict)
    return only


@pytest.mark.parametrize(
    ("inner", "labels", "entrypoint", "cmd"),
    [
        ({"Labels": ["a=b"]}, {}, [], []),
        ({"Labels": "a=b"}, {}, [], []),
        ({"Labels": {"ok": "yes", "n": 5, "nested": {"x": "y"}}}, {"ok": "yes"}, [], []),
        ({"Entrypoint": 5}, {}, [], []),
        ({"Entrypoint": "/bin/sh -c"}, {}, [], []),
        ({"Entrypoint": ["/bin/sh", 1]}, {}, [], []),
        ({"Cmd": {"x": 1}}, {}, [], []),
        ({"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["true"]}, {}, ["/bin/sh", "-c"], ["true"]),
    ],
    ids=[
        "labels-list",
        "labels-string",
        "labels-mixed",
        "entrypoint-int",
        "entrypoint-string",
        "entrypoint-mixed",
        "cmd-object",
        "well-formed",
    ],
)
def test_inspect_shows_config_fields_of_the_wrong_type_as_absent(
    tmp_path: Path,
    inner: dict[str, Any],
    labels: dict[str, str],
    entrypoint: list[str],
    cmd: list[str],
) -> None:
    config = {"os": "linux", "architecture": "amd64", "created": ["not", "a", "date"]}
    ref = _layout_with_config(tmp_path / "lay", json.dumps({**config, "config": inner}).encode())
    result = run_cli("inspect", "--json", ref)
    assert result.code == 0, result.stderr
    image = _platform(result.json())
    assert image["platform"] == "linux/amd64"
    assert (image["labels"], image["entrypoint"], image["cmd"]) == (labels, entrypoint, cmd)
    assert image["created"] == ""
    text = run_cli("inspect", ref)
    assert text.code == 0, text.stderr
    assert "'/', 'b'" not in text.stdout, "a string is not split into characters"


def test_inspect_survives_a_deeply_nested_config(tmp_path: Path) -> None:
    """400 kB of brackets (far below the config limit) cannot be parsed: no summary, exit 0."""
    config = b'{"config": {"Labels": ' + b"[" * 200_000 + b"]" * 200_000 + b"}}"
    ref = _layout_with_config(tmp_path / "lay", config)
    result = run_cli("inspect", "--json", ref)
    assert result.code == 0, result.stderr
    image = _platform(result.json())
    assert (image["platform"], image["labels"], image["entrypoint"]) == ("", {}, [])
    text = run_cli("inspect", ref)
    assert text.code == 0 and "internal error" not in text.stderr
    assert "(unknown platform)" in text.stdout


def _served_config(
    registry: RegistryServer, repo_name: str, body: bytes
) -> tuple[Descriptor, FaultProxy]:
    """An image's config descriptor, and a started proxy serving ``body`` as that config."""
    image = random_image(seed=901)
    seed(registry.host, repo_name, "v1", image)
    config = image.manifest.config
    assert config is not None
    proxy = FaultProxy(registry.host).start()
    headers = {"Content-Type": "application/octet-stream"}
    proxy.add_rule(
        Rule(method="GET", path=f"/blobs/{config.digest}", action=Respond(200, headers, body))
    )
    return config, proxy


def test_inspect_refuses_a_config_that_is_not_the_one_announced(
    open_registry: RegistryServer, repo_name: str
) -> None:
    fake = {"os": "linux", "architecture": "amd64", "config": {"Labels": {"injected": "yes"}}}
    config, proxy = _served_config(open_registry, repo_name, json.dumps(fake).encode())
    try:
        result = run_cli("inspect", f"{proxy.host}/{repo_name}:v1")
    finally:
        proxy.stop()
    assert result.code == 1
    assert "injected" not in result.stdout
    assert "config: digest mismatch" in result.stderr
    assert f"expected {config.digest} ({config.size} bytes)" in result.stderr


def test_inspect_stops_reading_a_config_longer_than_announced(
    open_registry: RegistryServer, repo_name: str
) -> None:
    """A 6 MiB body for a config of a few hundred bytes: refused after its announced size."""
    body = b'{"config":{"Labels":{"x":"' + b"A" * (6 * 1024 * 1024) + b'"}}}'
    config, proxy = _served_config(open_registry, repo_name, body)
    try:
        result = run_cli("inspect", "--json", f"{proxy.host}/{repo_name}:v1")
    finally:
        proxy.stop()
    assert result.code == 1
    assert result.json()["error"]["type"] == "DigestMismatch"
    assert f"got more than {config.size} bytes" in result.stderr


def test_referrers_of_a_missing_manifest_or_repository_are_not_found(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    image = random_image(seed=902)
    src = seed(open_registry.host, repo_name, "v1", image)
    for ref in (
        f"{open_registry.host}/{repo_name}@{MISSING}",
        f"{open_registry.host}/{repo_name}-nope@{MISSING}",
        f"{open_registry.host}/{repo_name}-nope:v1",
    ):
        result = run_cli("referrers", ref)
        assert result.code == 4, (ref, result.stdout, result.stderr)
        assert "(no referrers)" not in result.stdout
    with client_for() as client, pytest.raises(NotFound):
        referrer_tree(client, src.repo_only(), MISSING)

    layout = tmp_path / "lay"
    assert run_cli("copy", str(src), f"oci:{layout}:v1").code == 0
    missing = run_cli("referrers", f"oci:{layout}@{MISSING}")
    assert missing.code == 4 and "(no referrers)" not in missing.stdout

    # A manifest that is there, by digest, still lists as before.
    for ref in (f"{src.name}@{image.manifest.digest}", f"oci:{layout}@{image.manifest.digest}"):
        there = run_cli("referrers", ref)
        assert there.code == 0, there.stderr
        assert "(no referrers)" in there.stdout
    with client_for() as client:
        assert referrer_tree(client, src.repo_only(), image.manifest.digest) == []


def _index_listing_twice(image: SampleImage) -> SampleIndex:
    """An index naming one manifest under two platforms (e.g. a noarch image)."""
    m = image.manifest
    entries = [
        {
            "mediaType": m.media_type,
            "digest": m.digest,
            "size": m.size,
            "platform": {"os": "linux", "architecture": arch},
        }
        for arch in ("amd64", "arm64")
    ]
    doc = {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}
    return SampleIndex(parse_manifest(json.dumps(doc).encode()), (image,))


def test_inspect_shows_every_platform_of_a_manifest_listed_twice(
    open_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=903, layers=2)
    sample = _index_listing_twice(image)
    src = seed(open_registry.host, repo_name, "v1", sample)
    result = run_cli("inspect", "--json", str(src))
    assert result.code == 0, result.stderr
    doc = result.json()
    assert [p["platform"] for p in doc["platforms"]] == ["linux/amd64", "linux/arm64"]
    assert {p["digest"] for p in doc["platforms"]} == {image.manifest.digest}
    distinct = sample.manifest.size + image.manifest.size + sum(len(b) for b in image.blobs)
    assert doc["totalSize"] == distinct, "the shared manifest is counted once"
    one = run_cli("inspect", "--json", "--platform", "linux/arm64", str(src))
    assert one.code == 0, one.stderr
    assert [p["platform"] for p in one.json()["platforms"]] == ["linux/arm64"]
    text = run_cli("inspect", str(src)).stdout
    assert f"linux/amd64  {image.manifest.digest}" in text
    assert f"linux/arm64  {image.manifest.digest}" in text


def _put_fallback(registry: RegistryServer, repo: str, subject: Manifest, sig: Manifest) -> None:
    """A fallback index, written by "another tool", holding the same signature twice."""
    entry = {
        "mediaType": sig.media_type,
        "digest": sig.digest,
        "size": sig.size,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
    }
    doc = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [entry, entry]}
    response = httpx.put(
        f"{registry.url}/v2/{repo}/manifests/{fallback_tag(subject.digest)}",
        headers={"Content-Type": INDEX},
        content=json.dumps(doc).encode(),
    )
    assert response.status_code == 201, response.text


def test_inspect_counts_each_referrer_once(open_registry: RegistryServer, repo_name: str) -> None:
    image = random_image(seed=904)
    src = seed(open_registry.host, repo_name, "v1", image)
    sig = signature_of(image.manifest)
    with client_for() as client:
        repo: Reference = src.repo_only()
        push_blobs(client, repo, sig)
        client.put_manifest(repo.with_digest(sig.digest), sig.manifest)
    _put_fallback(open_registry, repo_name, image.manifest, sig.manifest)
    listed = run_cli("referrers", "--json", str(src))
    assert [n["digest"] for n in listed.json()["referrers"]] == [sig.digest]
    inspected = run_cli("inspect", "--json", str(src))
    assert inspected.code == 0, inspected.stderr
    assert inspected.json()["referrers"] == 1
    assert "1 referrer(s)" in run_cli("inspect", str(src)).stdout
