"""`--platform` and index shapes against the real registry and layouts.

* an index listing one digest under two platforms: the entry asked for keeps its own label
  (and annotations), and a sub-index lists the chosen entries verbatim, in source order;
* a single image whose config is another platform is "not found" (exit 4), nothing written;
* platforms are compared normalised (``aarch64`` = ``arm64`` = ``arm64/v8``, ``armhf`` =
  ``arm/v7``, ``x86_64`` = ``amd64``), and no match is a one-line ``PlatformNotFound``
  naming the reference, the platforms asked for and those available (no HTTP in it);
* nested indexes: copied (every level, children first, the top byte for byte), dry-run,
  inspected, through layouts, and selected from; too deep is a clear ManifestError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from regshift.graph import MAX_INDEX_DEPTH
from regshift.layout import Layout
from regshift.manifests import Manifest, Platform, parse_manifest
from regshift.mediatypes import MediaType
from regshift.reference import parse_reference
from regshift.sample import SampleImage, random_image

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


def _get(registry: RegistryServer, repo: str, ref: str) -> httpx.Response:
    return httpx.get(f"{registry.url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})


def _entry(manifest: Manifest, platform: str | None = None, **annotations: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.size,
    }
    if platform:
        p = Platform.parse(platform)
        entry["platform"] = {"architecture": p.architecture, "os": p.os}
        if p.variant:
            entry["platform"]["variant"] = p.variant
    if annotations:
        entry["annotations"] = annotations
    return entry


def _index(*entries: dict[str, Any]) -> Manifest:
    doc = {"schemaVersion": 2, "mediaType": MediaType.OCI_INDEX, "manifests": list(entries)}
    return parse_manifest(json.dumps(doc, separators=(",", ":")).encode())


def _push(
    registry: RegistryServer, repo: str, images: list[SampleImage], *by_digest: Manifest
) -> None:
    """Images (blobs and manifest) and further manifests by digest, in the order given."""
    for i, image in enumerate(images):
        seed(registry.host, repo, f"img{i}", image)
    with client_for() as client:
        for manifest in by_digest:
            ref = parse_reference(f"{registry.host}/{repo}@{manifest.digest}")
            client.put_manifest(ref, manifest)


def _put_tag(registry: RegistryServer, repo: str, tag: str, manifest: Manifest) -> str:
    with client_for() as client:
        client.put_manifest(parse_reference(f"{registry.host}/{repo}:{tag}"), manifest)
    return f"{registry.host}/{repo}:{tag}"


# -- item 4: one digest listed twice -------------------------------------------------------


def test_a_digest_listed_twice_keeps_the_label_asked_for(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    shared, other = random_image(seed=1501), random_image(seed=1502)
    entries = [
        _entry(shared.manifest, "linux/amd64", note="first"),
        _entry(shared.manifest, "linux/386", note="second"),
        _entry(other.manifest, "linux/arm64"),
    ]
    index = _index(*entries)
    _push(open_registry, repo_name, [shared, other])
    src = _put_tag(open_registry, repo_name, "v1", index)

    # Two of three entries: a new index of exactly those entries, as listed, in order.
    asked = ("--platform", "linux/amd64", "--platform", "linux/arm64")
    two = run_cli("copy", "--json", *asked, src, f"{other_registry.host}/{repo_name}:two")
    assert two.code == 0, two.stderr
    written = json.loads(_get(other_registry, repo_name, "two").content)
    assert written["manifests"] == [entries[0], entries[2]]
    # The reverse order of flags changes nothing: source order is kept.
    back = ("--platform", "linux/arm64", "--platform", "linux/amd64")
    again = run_cli("copy", "--json", *back, src, f"{other_registry.host}/{repo_name}:again")
    assert again.json()["digest"] == two.json()["digest"]

    # The second label of the shared digest, with another image.
    other_two = ("--platform", "linux/386", "--platform", "linux/arm64")
    r = run_cli("copy", "--json", *other_two, src, f"{other_registry.host}/{repo_name}:alt")
    assert r.code == 0, r.stderr
    assert json.loads(_get(other_registry, repo_name, "alt").content)["manifests"] == [
        entries[1],
        entries[2],
    ]

    # inspect shows the label asked for, for the one manifest listed twice.
    for wanted in ("linux/amd64", "linux/386"):
        one = run_cli("inspect", "--json", "--platform", wanted, src)
        assert one.code == 0, one.stderr
        assert [(p["platform"], p["digest"]) for p in one.json()["platforms"]] == [
            (wanted, shared.manifest.digest)
        ]
    both = run_cli("inspect", "--json", *asked, src).json()
    assert [p["platform"] for p in both["platforms"]] == ["linux/amd64", "linux/arm64"]


# -- item 6: a single image of another platform --------------------------------------------


def test_platform_of_a_single_image_is_checked_against_its_config(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    image = random_image(seed=1510, platform=Platform("linux", "arm", "v7"))
    src = str(seed(open_registry.host, repo_name, "v1", image))
    dst = f"{other_registry.host}/{repo_name}:v1"
    layout = tmp_path / "lay"
    for argv in (
        ("copy", "--platform", "linux/amd64", src, dst),
        ("copy", "--platform", "linux/amd64", src, f"oci:{layout}:v1"),
        ("inspect", "--platform", "linux/amd64", src),
    ):
        result = run_cli(*argv)
        assert result.code == 4, (argv, result.stdout, result.stderr)
        assert result.stderr.strip() == (
            f"regshift: error: {src}: no platform matches linux/amd64 (available: linux/arm/v7)"
        )
    assert _get(other_registry, repo_name, "v1").status_code == 404
    assert not (layout / "index.json").exists() or Layout(layout).tags() == []

    # The image's own platform, in any spelling, is found; the image is copied as is.
    for spelled in ("linux/arm/v7", "linux/armhf", "linux/arm"):
        ok = run_cli("copy", "--json", "--platform", spelled, src, dst)
        assert ok.code == 0, ok.stderr
        assert ok.json()["digest"] == image.manifest.digest and ok.json()["notes"] == []
    to_layout = run_cli("copy", "--platform", "linux/arm", src, f"oci:{layout}:v1")
    assert to_layout.code == 0, to_layout.stderr
    assert Layout(layout).resolve("v1").digest == image.manifest.digest
    shown = run_cli("inspect", "--json", "--platform", "linux/armhf", src)
    assert shown.code == 0 and shown.json()["platforms"][0]["platform"] == "linux/arm/v7"


# -- item 8: normalisation and the not-found message ---------------------------------------


def test_platforms_are_matched_normalised_and_a_miss_is_one_clear_line(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    images = [
        random_image(seed=1520 + i, platform=Platform.parse(p))
        for i, p in enumerate(("linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/386"))
    ]
    labels = ["linux/x86_64", "linux/arm64/v8", "linux/arm/v7", "linux/i386"]
    index = _index(*(_entry(i.manifest, p) for i, p in zip(images, labels, strict=True)))
    _push(open_registry, repo_name, images)
    src = _put_tag(open_registry, repo_name, "v1", index)
    before = index.raw
    for spelled, image in (
        ("linux/amd64", images[0]),
        ("linux/aarch64", images[1]),
        ("linux/arm64", images[1]),
        ("linux/armhf", images[2]),
        ("linux/arm", images[2]),
        ("linux/386", images[3]),
    ):
        result = run_cli(
            "copy", "--json", "--platform", spelled, src, f"{other_registry.host}/{repo_name}:x"
        )
        assert result.code == 0, (spelled, result.stderr)
        assert result.json()["digest"] == image.manifest.digest, spelled
    assert _get(open_registry, repo_name, "v1").content == before  # the index bytes untouched

    # Several, normalised: a new index of those entries, their labels as the source wrote them.
    two = run_cli(
        "copy", "--platform", "linux/amd64", "--platform", "linux/i686", src,
        f"{other_registry.host}/{repo_name}:two",
    )  # fmt: skip
    assert two.code == 0, two.stderr
    written = json.loads(_get(other_registry, repo_name, "two").content)
    assert [e["platform"]["architecture"] for e in written["manifests"]] == ["x86_64", "i386"]

    available = "linux/x86_64, linux/arm64/v8, linux/arm/v7, linux/i386"
    asked = ("--platform", "linux/s390x", "--platform", "linux/arm/v6")
    for argv in (
        ("copy", *asked, src, f"{other_registry.host}/{repo_name}:y"),
        ("inspect", *asked, src),
    ):
        miss = run_cli(*argv)
        assert miss.code == 4
        assert miss.stderr.splitlines() == [
            f"regshift: error: {src}: no platform matches linux/s390x, linux/arm/v6 "
            f"(available: {available})"
        ]
        for http_word in ("GET", "HTTP", "404", "/v2/"):
            assert http_word not in miss.stderr
    as_json = run_cli(
        "copy", "--json", "--platform", "linux/s390x", src, f"{other_registry.host}/{repo_name}:y"
    )
    assert as_json.code == 4
    assert as_json.json()["error"]["type"] == "PlatformNotFound"
    assert _get(other_registry, repo_name, "y").status_code == 404


# -- item 9: nested indexes ----------------------------------------------------------------


def _nested(
    registry: RegistryServer, repo: str
) -> tuple[Manifest, list[SampleImage], list[Manifest]]:
    """top -> [inner (amd64, arm64/v8, deeper -> [ppc64le]), s390x], pushed as ``repo:v1``.

    The top lists ``inner`` twice (under two annotations): walked once, never looped.
    """
    plats = ("linux/amd64", "linux/arm64/v8", "linux/ppc64le", "linux/s390x")
    images = [random_image(seed=1530 + i, platform=Platform.parse(p)) for i, p in enumerate(plats)]
    a, b, d, c = (i.manifest for i in images)
    deeper = _index(_entry(d, "linux/ppc64le"))
    inner = _index(
        _entry(a, "linux/amd64"),
        _entry(b, "linux/arm64/v8"),
        {**_entry(deeper), "annotations": {"level": "3"}},
    )
    top = _index(
        {**_entry(inner), "annotations": {"level": "2"}},
        _entry(c, "linux/s390x"),
        {**_entry(inner), "annotations": {"again": "yes"}},
    )
    _push(registry, repo, images, deeper, inner)
    _put_tag(registry, repo, "v1", top)
    return top, images, [deeper, inner]


def test_a_nested_index_is_copied_every_level_by_digest(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    top, images, indexes = _nested(open_registry, repo_name)
    src = f"{open_registry.host}/{repo_name}:v1"

    plan = run_cli("copy", "--json", "--dry-run", src, f"{other_registry.host}/{repo_name}:v1")
    assert plan.code == 0, plan.stderr
    planned = {s["digest"] for s in plan.json()["plan"]}
    assert planned == {d.digest for i in images for d in i.manifest.blobs()}
    assert _get(other_registry, repo_name, "v1").status_code == 404

    result = run_cli("copy", "--json", src, f"{other_registry.host}/{repo_name}:v1")
    assert result.code == 0, result.stderr
    assert result.json()["digest"] == top.digest
    assert _get(other_registry, repo_name, "v1").content == top.raw
    for manifest in [*(i.manifest for i in images), *indexes]:
        assert _get(other_registry, repo_name, manifest.digest).content == manifest.raw

    # Into a layout and back out: the same bytes at every level.
    layout = tmp_path / "lay"
    into = run_cli("copy", src, f"oci:{layout}:v1")
    assert into.code == 0, into.stderr
    assert Layout(layout).verify() == []
    out = run_cli(
        "copy", "--json", f"oci:{layout}:v1", f"{other_registry.host}/{repo_name}-back:v1"
    )
    assert out.code == 0, out.stderr
    assert _get(other_registry, f"{repo_name}-back", "v1").content == top.raw
    for manifest in indexes:
        assert _get(other_registry, f"{repo_name}-back", manifest.digest).content == manifest.raw


def test_a_nested_index_is_inspected_and_selected_from(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    top, images, indexes = _nested(open_registry, repo_name)
    src = f"{open_registry.host}/{repo_name}:v1"
    shown = run_cli("inspect", "--json", src)
    assert shown.code == 0, shown.stderr
    doc = shown.json()
    order = ["linux/amd64", "linux/arm64/v8", "linux/ppc64le", "linux/s390x"]
    assert [p["platform"] for p in doc["platforms"]] == order
    every_byte = top.size + sum(m.size for m in indexes)
    every_byte += sum(i.manifest.size + sum(len(b) for b in i.blobs) for i in images)
    assert doc["totalSize"] == every_byte

    # One platform from the innermost level: that image.
    one = run_cli(
        "copy",
        "--json",
        "--platform",
        "linux/ppc64le",
        src,
        f"{other_registry.host}/{repo_name}:one",
    )
    assert one.code == 0, one.stderr
    assert one.json()["digest"] == images[2].manifest.digest
    # Several from several levels: a new flat index of those entries, in source order.
    two = run_cli(
        "copy", "--platform", "linux/s390x", "--platform", "linux/aarch64", src,
        f"{other_registry.host}/{repo_name}:two",
    )  # fmt: skip
    assert two.code == 0, two.stderr
    flat = json.loads(_get(other_registry, repo_name, "two").content)
    assert [e["digest"] for e in flat["manifests"]] == [
        images[1].manifest.digest,
        images[3].manifest.digest,
    ]
    assert flat["manifests"][0] == _entry(images[1].manifest, "linux/arm64/v8")
    # Every platform asked for: the source index, byte for byte, nested levels and all.
    every = [x for p in order for x in ("--platform", p)]
    kept = run_cli("copy", "--json", *every, src, f"{other_registry.host}/{repo_name}:all")
    assert kept.code == 0, kept.stderr
    assert _get(other_registry, repo_name, "all").content == top.raw
    picked = run_cli("inspect", "--json", "--platform", "linux/ppc64le", src)
    assert [p["platform"] for p in picked.json()["platforms"]] == ["linux/ppc64le"]
    # From a layout too.
    layout = tmp_path / "lay"
    assert run_cli("copy", src, f"oci:{layout}:v1").code == 0
    from_layout = run_cli(
        "copy", "--json", "--platform", "linux/amd64", f"oci:{layout}:v1", f"oci:{layout}:amd"
    )
    assert from_layout.code == 0, from_layout.stderr
    assert Layout(layout).resolve("amd").digest == images[0].manifest.digest


def test_nesting_deeper_than_the_limit_is_a_clear_error(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=1540)
    chain = [_index(_entry(image.manifest, "linux/amd64"))]
    for _ in range(MAX_INDEX_DEPTH - 1):
        chain.append(_index(_entry(chain[-1])))
    _push(open_registry, repo_name, [image], *chain)
    deepest_ok = _put_tag(open_registry, repo_name, "ok", chain[-1])
    fine = run_cli("copy", deepest_ok, f"{other_registry.host}/{repo_name}:ok")
    assert fine.code == 0, fine.stderr
    too_deep = _put_tag(open_registry, repo_name, "deep", _index(_entry(chain[-1])))
    for argv in (
        ("copy", too_deep, f"{other_registry.host}/{repo_name}:deep"),
        ("copy", "--dry-run", too_deep, f"{other_registry.host}/{repo_name}:deep"),
        ("inspect", too_deep),
    ):
        result = run_cli(*argv)
        assert result.code == 1, (argv, result.stderr)
        assert f"nested more than {MAX_INDEX_DEPTH} levels deep" in result.stderr
        assert len(result.stderr.splitlines()) == 1
    assert _get(other_registry, repo_name, "deep").status_code == 404


@pytest.mark.parametrize("docker", [False, True])
def test_a_nested_docker_manifest_list(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, docker: bool
) -> None:
    """A Docker manifest list inside an OCI index (or an OCI index alone): copied by digest."""
    image = random_image(seed=1550 + docker, docker=docker)
    doc = {
        "schemaVersion": 2,
        "mediaType": MediaType.DOCKER_MANIFEST_LIST if docker else MediaType.OCI_INDEX,
        "manifests": [_entry(image.manifest, "linux/amd64")],
    }
    inner = parse_manifest(json.dumps(doc).encode())
    top = _index(_entry(inner))
    _push(open_registry, repo_name, [image], inner)
    src = _put_tag(open_registry, repo_name, "v1", top)
    result = run_cli("copy", src, f"{other_registry.host}/{repo_name}:v1")
    assert result.code == 0, result.stderr
    assert _get(other_registry, repo_name, inner.digest).content == inner.raw


def test_build_commands_take_a_nested_index(open_registry: RegistryServer, repo_name: str) -> None:
    """mutate and merge read a nested index as inspect does: one result per platform found at
    any level (each label set), an index of those results."""
    top, _, _ = _nested(open_registry, repo_name)
    src = f"{open_registry.host}/{repo_name}:v1"
    dst = f"{open_registry.host}/{repo_name}:mutated"
    result = run_cli("mutate", "--json", src, "--label", "nested=yes", "--to", dst)
    assert result.code == 0, result.stderr
    assert sorted(result.json()["platforms"]) == sorted(
        ["linux/amd64", "linux/arm64/v8", "linux/ppc64le", "linux/s390x"]
    )
    inspected = run_cli("inspect", "--json", dst).json()
    labels = [p["labels"].get("nested") for p in inspected["platforms"]]
    assert labels == ["yes"] * 4
    merged = run_cli("merge", "--json", src, src, "--to", f"{open_registry.host}/{repo_name}:m")
    assert merged.code == 0, merged.stderr
    assert len(merged.json()["platforms"]) == 4
    assert top.digest not in (result.json()["digest"], merged.json()["digest"])
