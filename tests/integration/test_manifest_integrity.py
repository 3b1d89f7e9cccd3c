"""Every manifest read is verified, and digests are compared in their own algorithm.

A manifest read by tag has no digest in its reference: its bytes are checked against the
``Docker-Content-Digest`` the registry announces (sha256 or sha512). The proxy changes one
digit of the body (still valid JSON, still a valid manifest) and keeps the header, as a
faulty middlebox would: every command must fail with one integrity line (exit 1) and write
nothing. Layouts: a manifest blob reached through an ``index.json`` entry must hash to the
entry's digest. Then ``--expect-digest``, ``--no-clobber`` and a copy to ``REPO@DIGEST``
with sha512 digests of the right (and wrong) content.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from regshift.layout import REF_NAME_ANNOTATION, Layout
from regshift.manifests import parse_manifest
from regshift.mediatypes import MediaType
from regshift.referrers import fallback_tag
from regshift.sample import SampleImage, SampleIndex, random_image, random_index

from artifacts import attach_artifact, signature_of
from harness.proxy import FaultProxy, FlipByte, Respond, RewriteHeader, Rule
from harness.registry import RegistryServer
from support import CliResult, client_for, run_cli, seed

ACCEPT = ", ".join(
    [
        MediaType.OCI_INDEX,
        MediaType.OCI_MANIFEST,
        MediaType.DOCKER_MANIFEST_LIST,
        MediaType.DOCKER_MANIFEST,
    ]
)
_MARK = b"build-0123456789"  # an annotation value; one of its digits is changed in transit


@pytest.fixture
def proxy(open_registry: RegistryServer) -> Iterator[FaultProxy]:
    """A proxy in front of the source registry (``open_registry``)."""
    with FaultProxy(open_registry.host) as p:
        yield p


def _annotated(seed_: int) -> SampleImage:
    """An image whose manifest carries an annotation: a digit of it can change silently."""
    image = random_image(seed=seed_)
    doc = json.loads(image.manifest.raw)
    doc["annotations"] = {"org.example.build": _MARK.decode()}
    raw = (json.dumps(doc, indent=2) + "\n").encode()
    return SampleImage(parse_manifest(raw), image.blobs)


def _flip_at(raw: bytes) -> int:
    """The offset of a digit whose xor 0x01 is another digit: valid JSON, another digest."""
    return raw.index(_MARK) + len(b"build-") + 3


def _size_digit(raw: bytes) -> int:
    """The offset of the first digit of the first ``"size"`` (an index or image manifest)."""
    found = re.search(rb'"size":\s*', raw)
    assert found is not None
    return found.end()


def _flipped(raw: bytes, at: int | None = None) -> bytes:
    """``raw`` with the digit at ``at`` (default :func:`_flip_at`) changed, as the proxy does."""
    at = _flip_at(raw) if at is None else at
    return raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1 :]


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _sha512(data: bytes) -> str:
    return f"sha512:{hashlib.sha512(data).hexdigest()}"


def _status(registry: RegistryServer, repo: str, ref: str) -> int:
    return httpx.head(
        f"{registry.url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT}
    ).status_code


def _one_integrity_line(result: CliResult, what: str = "manifest") -> None:
    """Exit 1 and one line: ``<what ...>: digest mismatch: expected ..., got ...``."""
    assert result.code == 1, (result.code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "digest mismatch" in lines[0] and what in lines[0], lines[0]


def _tamper_tag(proxy: FaultProxy, repo: str, tag: str, raw: bytes) -> Rule:
    return proxy.add_rule(
        Rule(
            method="GET",
            path=rf"/v2/{repo}/manifests/{tag}$",
            action=FlipByte(_flip_at(raw), mask=0x01),
        )
    )


# -- a manifest read by tag, changed in transit ------------------------------------------


def test_the_flipped_manifest_is_still_a_valid_one() -> None:
    """The fault is silent by construction: without a digest check nothing would notice."""
    image = _annotated(1501)
    changed = parse_manifest(_flipped(image.manifest.raw), MediaType.OCI_MANIFEST)
    assert changed.digest != image.manifest.digest
    assert changed.config == image.manifest.config and changed.layers == image.manifest.layers


def test_tag_refuses_a_manifest_changed_in_transit(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    image = _annotated(1502)
    seed(open_registry.host, repo_name, "v1", image)
    rule = _tamper_tag(proxy, repo_name, "v1", image.manifest.raw)
    result = run_cli("tag", f"{proxy.host}/{repo_name}:v1", "v2", "v3")
    assert rule.hits >= 1
    _one_integrity_line(result)
    assert "Docker-Content-Digest" in result.stderr and image.manifest.digest in result.stderr
    assert _status(open_registry, repo_name, "v2") == 404
    assert _status(open_registry, repo_name, "v3") == 404
    puts = [r for r in proxy.requests if r.method == "PUT"]
    assert puts == []


def test_copy_to_a_registry_refuses_a_manifest_changed_in_transit(
    proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    image = _annotated(1503)
    seed(open_registry.host, repo_name, "v1", image)
    _tamper_tag(proxy, repo_name, "v1", image.manifest.raw)
    other_registry.mark()
    result = run_cli("copy", f"{proxy.host}/{repo_name}:v1", f"{other_registry.host}/{repo_name}")
    _one_integrity_line(result)
    assert _status(other_registry, repo_name, "v1") == 404
    assert _status(other_registry, repo_name, _sha256(_flipped(image.manifest.raw))) == 404
    assert [r for r in other_registry.requests() if r.method in ("PUT", "POST")] == []


def test_copy_to_a_layout_refuses_a_manifest_changed_in_transit(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    image = _annotated(1504)
    seed(open_registry.host, repo_name, "v1", image)
    _tamper_tag(proxy, repo_name, "v1", image.manifest.raw)
    result = run_cli("copy", f"{proxy.host}/{repo_name}:v1", f"oci:{tmp_path / 'dst'}:v1")
    _one_integrity_line(result)
    layout = Layout(tmp_path / "dst")
    assert layout.tags() == []
    assert not layout.has_blob(_sha256(_flipped(image.manifest.raw)))
    assert not layout.has_blob(image.manifest.digest)


@pytest.mark.parametrize("command", ["manifest", "inspect"])
def test_reading_commands_refuse_a_manifest_changed_in_transit(
    command: str, proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    image = _annotated(1505)
    seed(open_registry.host, repo_name, "v1", image)
    _tamper_tag(proxy, repo_name, "v1", image.manifest.raw)
    result = run_cli(command, f"{proxy.host}/{repo_name}:v1")
    _one_integrity_line(result)
    assert result.stdout == ""


def test_a_changed_index_is_refused_before_its_children_are_read(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    """An index read by tag: a digit of a platform's size changed (valid JSON)."""
    sample = random_index(seed=1506)
    seed(open_registry.host, repo_name, "v1", sample)
    at = _size_digit(sample.manifest.raw)
    proxy.add_rule(Rule(method="GET", path=r"/manifests/v1$", action=FlipByte(at, mask=0x01)))
    result = run_cli("tag", f"{proxy.host}/{repo_name}:v1", "v2")
    _one_integrity_line(result)
    assert _status(open_registry, repo_name, "v2") == 404


@pytest.mark.parametrize("command", ["referrers", "copy"])
def test_a_changed_referrers_fallback_index_is_refused(
    command: str,
    proxy: FaultProxy,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
) -> None:
    """The fallback tag ``sha256-<hex>`` is read by tag too: its index is verified."""
    image = _annotated(1516)
    src = seed(open_registry.host, repo_name, "v1", image)
    with client_for() as client:
        attach_artifact(client, src.repo_only(), signature_of(image.manifest))
    tag = fallback_tag(image.manifest.digest)
    index = httpx.get(
        f"{open_registry.url}/v2/{repo_name}/manifests/{tag}", headers={"Accept": ACCEPT}
    ).content
    action = FlipByte(_size_digit(index), mask=0x01)
    rule = proxy.add_rule(Rule(method="GET", path=rf"/manifests/{tag}$", action=action))
    source = f"{proxy.host}/{repo_name}:v1"
    if command == "referrers":
        result = run_cli("referrers", source)
    else:
        result = run_cli("copy", "--referrers", source, f"{other_registry.host}/{repo_name}:v1")
    assert rule.hits >= 1
    _one_integrity_line(result, f"manifest {proxy.host}/{repo_name}:{tag}")
    assert _status(other_registry, repo_name, "v1") == 404
    assert _status(other_registry, repo_name, tag) == 404


# -- sha512 and unusable Docker-Content-Digest values -----------------------------------


def test_a_sha512_docker_content_digest_is_checked_in_sha512(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    image = _annotated(1507)
    seed(open_registry.host, repo_name, "v1", image)
    raw = image.manifest.raw
    header = proxy.add_rule(
        Rule(
            method="GET",
            path=r"/manifests/v1$",
            times=1,
            action=RewriteHeader("Docker-Content-Digest", _sha512(raw)),
        )
    )
    ok = run_cli("tag", f"{proxy.host}/{repo_name}:v1", "right")
    assert header.hits == 1
    assert ok.code == 0, ok.stderr
    assert _status(open_registry, repo_name, "right") == 200

    # The header names other content (the one-digit change), in sha512: refused.
    proxy.add_rule(
        Rule(
            method="GET",
            path=r"/manifests/v1$",
            action=RewriteHeader("Docker-Content-Digest", _sha512(_flipped(raw))),
        )
    )
    bad = run_cli("tag", f"{proxy.host}/{repo_name}:v1", "wrong")
    _one_integrity_line(bad)
    assert _sha512(_flipped(raw)) in bad.stderr and _sha512(raw) in bad.stderr
    assert _status(open_registry, repo_name, "wrong") == 404


@pytest.mark.parametrize("value", ["md5:0123", "sha256:NOT-HEX", None])
def test_an_unusable_docker_content_digest_is_ignored(
    value: str | None, proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    """Documented choice: a header regshift cannot check (absent, another algorithm,
    malformed) does not fail the read; the bytes are used as served."""
    image = _annotated(1508)
    seed(open_registry.host, repo_name, "v1", image)
    header = RewriteHeader("Docker-Content-Digest", value)
    proxy.add_rule(Rule(method="GET", path=r"/manifests/", action=header))
    result = run_cli("tag", f"{proxy.host}/{repo_name}:v1", "v2")
    assert result.code == 0, result.stderr
    assert _status(open_registry, repo_name, "v2") == 200


# -- layouts -----------------------------------------------------------------------------


def _layout_with(tmp_path: Path, open_registry: RegistryServer, repo: str, sample: object) -> Path:
    assert isinstance(sample, SampleImage | SampleIndex)
    src = seed(open_registry.host, repo, "v1", sample)
    path = tmp_path / "layout"
    assert run_cli("copy", str(src), f"oci:{path}:v1").code == 0
    return path


def _tamper_blob(layout: Layout, digest: str, raw: bytes) -> None:
    layout.blob_path(digest).write_bytes(_flipped(raw))


@pytest.mark.parametrize("command", ["tag", "copy", "manifest", "inspect"])
def test_a_tampered_manifest_in_a_layout_is_refused(
    command: str,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
    tmp_path: Path,
) -> None:
    image = _annotated(1509)
    path = _layout_with(tmp_path, open_registry, repo_name, image)
    _tamper_blob(Layout(path), image.manifest.digest, image.manifest.raw)
    args = {
        "tag": ["tag", f"oci:{path}:v1", "v2"],
        "copy": ["copy", f"oci:{path}:v1", f"{other_registry.host}/{repo_name}:v1"],
        "manifest": ["manifest", f"oci:{path}:v1"],
        "inspect": ["inspect", f"oci:{path}:v1"],
    }[command]
    result = run_cli(*args)
    _one_integrity_line(result, str(Layout(path).blob_path(image.manifest.digest)))
    assert Layout(path).tags() == ["v1"]
    assert _status(other_registry, repo_name, "v1") == 404


def test_a_tampered_child_of_an_index_in_a_layout_is_refused(
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    repo_name: str,
    tmp_path: Path,
) -> None:
    sample = random_index(seed=1510)
    path = _layout_with(tmp_path, open_registry, repo_name, sample)
    child = sample.images[1].manifest
    layout = Layout(path)
    layout.blob_path(child.digest).write_bytes(_flipped(child.raw, _size_digit(child.raw)))
    result = run_cli("copy", f"oci:{path}:v1", f"{other_registry.host}/{repo_name}:v1")
    _one_integrity_line(result, str(layout.blob_path(child.digest)))
    assert _status(other_registry, repo_name, "v1") == 404
    assert _status(other_registry, repo_name, sample.manifest.digest) == 404


# -- digests in the algorithm given ------------------------------------------------------


def test_expect_digest_in_sha512(open_registry: RegistryServer, repo_name: str) -> None:
    image = _annotated(1511)
    src = seed(open_registry.host, repo_name, "v1", image)
    raw = image.manifest.raw
    ok = run_cli("tag", "--expect-digest", _sha512(raw), str(src), "right")
    assert ok.code == 0, ok.stderr
    assert _status(open_registry, repo_name, "right") == 200

    bad = run_cli("tag", "--expect-digest", _sha512(_flipped(raw)), str(src), "wrong")
    assert bad.code == 5, bad.stderr
    assert "not the expected" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert _status(open_registry, repo_name, "wrong") == 404


def test_expect_digest_in_sha512_in_a_layout(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    image = _annotated(1512)
    path = _layout_with(tmp_path, open_registry, repo_name, image)
    raw = image.manifest.raw
    assert run_cli("tag", "--expect-digest", _sha512(raw), f"oci:{path}:v1", "right").code == 0
    bad = run_cli("tag", "--expect-digest", _sha512(_flipped(raw)), f"oci:{path}:v1", "wrong")
    assert bad.code == 5, bad.stderr
    assert Layout(path).tags() == ["v1", "right"]


def _sha512_entry(path: Path, tag: str, raw: bytes, media_type: str) -> None:
    """Name ``raw`` by its sha512 in the layout under ``tag``, as another tool may."""
    layout = Layout(path)
    digest = _sha512(raw)
    target = layout.blob_path(digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(raw)
    index_path = path / "index.json"
    doc = json.loads(index_path.read_bytes())
    entry = {"mediaType": media_type, "digest": digest, "size": len(raw)}
    doc["manifests"].append({**entry, "annotations": {REF_NAME_ANNOTATION: tag}})
    index_path.write_text(json.dumps(doc))


def test_no_clobber_sees_a_sha512_tag_of_the_same_content(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    image = _annotated(1513)
    path = _layout_with(tmp_path, open_registry, repo_name, image)
    _sha512_entry(path, "same", image.manifest.raw, image.manifest.media_type)
    result = run_cli("tag", "--json", "--no-clobber", f"oci:{path}:v1", "same")
    assert result.code == 0, result.stderr
    assert [t["action"] for t in result.json()["tags"]] == ["unchanged"]


def test_copy_to_a_sha512_of_the_same_content(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """A destination named by digest takes the content whatever the digest's algorithm."""
    image = _annotated(1514)
    src = seed(open_registry.host, repo_name, "v1", image)
    raw = image.manifest.raw
    dst = f"{other_registry.host}/{repo_name}"
    ok = run_cli("copy", str(src), f"{dst}@{_sha512(raw)}")
    assert ok.code == 0, ok.stderr
    assert _status(other_registry, repo_name, image.manifest.digest) == 200
    bad = run_cli("copy", str(src), f"{dst}-b@{_sha512(_flipped(raw))}")
    assert bad.code == 1 and "digest mismatch" in bad.stderr, bad.stderr
    assert _status(other_registry, f"{repo_name}-b", image.manifest.digest) == 404


def test_copy_to_a_layout_tag_holding_the_sha512_of_the_same_content_is_up_to_date(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    image = _annotated(1515)
    path = _layout_with(tmp_path, open_registry, repo_name, image)
    _sha512_entry(path, "same", image.manifest.raw, image.manifest.media_type)
    before = (path / "index.json").read_bytes()
    src = f"{open_registry.host}/{repo_name}:v1"
    result = run_cli("copy", "--json", src, f"oci:{path}:same")
    assert result.code == 0, result.stderr
    assert (path / "index.json").read_bytes() == before


def test_delete_by_sha512_sees_the_tags_of_the_same_content(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    """A registry that addresses manifests by sha512 (distribution 2.8 does not: the proxy
    plays one, and takes the DELETE) still reports tags by sha256: the tags sharing the
    content must be found, or the delete silently takes them along."""
    image = _annotated(1517)
    raw = image.manifest.raw
    seed(open_registry.host, repo_name, "a", image)
    seed(open_registry.host, repo_name, "b", image)
    digest = _sha512(raw)
    served = Respond(
        200,
        {"Content-Type": image.manifest.media_type, "Docker-Content-Digest": digest},
        raw,
    )
    proxy.add_rule(Rule(method="GET", path=rf"/manifests/{digest}$", action=served))
    proxy.add_rule(Rule(method="HEAD", path=rf"/manifests/{digest}$", action=served))
    deleted = proxy.add_rule(
        Rule(method="DELETE", path=rf"/manifests/{digest}$", action=Respond(202))
    )
    result = run_cli("delete", f"{proxy.host}/{repo_name}@{digest}")
    assert result.code == 5, (result.code, result.stdout, result.stderr)
    assert "tag(s) a, b" in result.stderr or "tag(s) b, a" in result.stderr
    assert deleted.hits == 0
