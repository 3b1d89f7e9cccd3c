"""`regshift copy` on real registries: mounts, streaming, faults, filters, whole repositories."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from regshift.copying import CopyOptions, copy
from regshift.digests import compute_digest
from regshift.errors import DigestMismatch
from regshift.manifests import Manifest, Platform, parse_manifest
from regshift.mediatypes import MediaType
from regshift.progress import ProgressEvent, ProgressState
from regshift.reference import parse_reference
from regshift.sample import SampleImage, random_image, random_index

from harness.proxy import FaultProxy, FlipByte, RefuseMount, ResetRequest, Rule
from harness.registry import MATRIX, RegistryServer
from support import SECRETS, client_for, run_cli, seed

MiB = 1024 * 1024


def _creds(server: RegistryServer) -> tuple[str, str]:
    assert server.username and server.password
    SECRETS.add(server.password)
    return server.username, server.password


def _head(registry: RegistryServer, repo: str, ref: str) -> httpx.Response:
    accept = ", ".join(
        [
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ]
    )
    return httpx.get(f"{registry.url}/v2/{repo}/manifests/{ref}", headers={"Accept": accept})


def _upload_requests(registry: RegistryServer) -> list[str]:
    return [
        f"{r.method} {r.path}"
        for r in registry.requests()
        if r.method in ("PATCH", "PUT") and "/blobs/" in r.path
    ]


def _with_foreign_layer(base: SampleImage, foreign: bytes) -> Manifest:
    """``base``'s Docker manifest with ``foreign`` appended as a foreign layer (with a URL)."""
    doc = json.loads(base.manifest.raw)
    doc["layers"].append(
        {
            "mediaType": MediaType.DOCKER_FOREIGN_LAYER,
            "digest": compute_digest(foreign),
            "size": len(foreign),
            "urls": ["https://example.invalid/layer.tar"],
        }
    )
    return parse_manifest(json.dumps(doc, separators=(",", ":")).encode())


def test_same_registry_mounts_every_blob(token_registry: RegistryServer, repo_name: str) -> None:
    user, password = _creds(token_registry)
    image = random_image(seed=41, layers=3, layer_size=64 * 1024)
    src = seed(token_registry.host, repo_name, "1.0", image, username=user, password=password)
    dst = f"{token_registry.host}/{repo_name}-copy:1.0"
    server = token_registry.token_server
    server.reset()
    token_registry.mark()
    result = run_cli(
        "copy", "--json", "-u", user, "--password-stdin", str(src), dst, input=password
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["digest"] == image.manifest.digest
    assert doc["blobs"] == {"mounted": 4, "streamed": 0, "skipped": 0}  # config + 3 layers
    assert doc["bytes"]["streamed"] == 0
    assert _upload_requests(token_registry) == [], "no blob bytes may be uploaded"
    assert not [r for r in token_registry.requests() if r.method == "GET" and "/blobs/" in r.path]
    mounts = [r for r in token_registry.requests() if r.method == "POST"]
    assert len(mounts) == 4 and all("mount=" in r.path and "from=" in r.path for r in mounts)
    assert all(r.status == 201 for r in mounts)
    # One token, carrying pull on the source and push on the destination.
    assert len(server.requests) == 1
    assert sorted(server.requests[0].scopes) == sorted(
        [f"repository:{repo_name}:pull", f"repository:{repo_name}-copy:pull,push"]
    )
    assert (
        _head(token_registry, f"{repo_name}-copy", "1.0").status_code == 401
    )  # anonymous: no access
    with client_for(username=user, password=password) as client:
        copied = client.get_manifest(parse_reference(dst))
    assert copied.raw == image.manifest.raw and copied.digest == image.manifest.digest


# How a copy to another repository of the same registry gets the blobs there: distribution
# mounts them (201); refreg stores blobs per registry, not per repository, so the HEAD
# before the mount already finds every blob in the new repository.
_SAME_REGISTRY_BLOBS = {
    "distribution-2.8": {"mounted": 8, "streamed": 0, "skipped": 0},
    "distribution-3": {"mounted": 8, "streamed": 0, "skipped": 0},
    "refreg": {"mounted": 0, "streamed": 0, "skipped": 8},
}


def test_same_registry_open(any_registry: RegistryServer, repo_name: str) -> None:
    open_registry = any_registry
    sample = random_index(seed=42, layers=3)
    src = seed(open_registry.host, repo_name, "v1", sample)
    open_registry.mark()
    result = run_cli("copy", "--json", str(src), f"{open_registry.host}/{repo_name}/mirror:v1")
    assert result.code == 0, result.stderr
    assert result.stderr == "", "no progress output without a terminal or -v"
    assert result.json()["digest"] == sample.manifest.digest
    assert result.json()["blobs"] == _SAME_REGISTRY_BLOBS[open_registry.name]
    assert _upload_requests(open_registry) == []
    assert open_registry.count("GET", "/blobs/") == 0, "no blob bytes through the client"
    mounts = [r.status for r in open_registry.requests() if r.method == "POST"]
    assert mounts == ([201] * 8 if open_registry.name != "refreg" else [])
    assert _head(open_registry, f"{repo_name}/mirror", "v1").content == sample.manifest.raw


@pytest.mark.parametrize(
    ("src_name", "dst_name"),
    [(a, b) for a in MATRIX for b in MATRIX if a != b],
)
def test_copy_between_implementations(
    registry_named: Callable[[str], RegistryServer], repo_name: str, src_name: str, dst_name: str
) -> None:
    """A multi-platform index from each implementation to each other one, byte for byte."""
    src_registry, dst_registry = registry_named(src_name), registry_named(dst_name)
    sample = random_index(seed=62, platforms=("linux/amd64", "linux/arm64/v8"), layers=2)
    src = seed(src_registry.host, repo_name, "v1", sample)
    dst_registry.mark()
    result = run_cli("copy", "--json", str(src), f"{dst_registry.host}/{repo_name}:v1")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["digest"] == sample.manifest.digest and doc["manifests"] == 3
    blobs = sum(len(i.blobs) for i in sample.images)
    # Skipped: refreg keeps blobs per registry, so the ones an earlier case (same seed)
    # pushed there are found in any repository.
    assert doc["blobs"]["streamed"] + doc["blobs"]["skipped"] == blobs
    assert doc["blobs"]["mounted"] == 0, "no mount across registries"
    assert _head(dst_registry, repo_name, "v1").content == sample.manifest.raw
    for image in sample.images:
        child = _head(dst_registry, repo_name, image.manifest.digest)
        assert child.content == image.manifest.raw
        assert child.headers["docker-content-digest"] == image.manifest.digest
    assert run_cli("digest", f"{dst_registry.host}/{repo_name}:v1").stdout.strip() == (
        sample.manifest.digest
    )


def test_cross_registry_index(
    open_registry: RegistryServer, token_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    user, password = _creds(token_registry)
    sample = random_index(seed=43, platforms=("linux/amd64", "linux/arm64/v8", "linux/ppc64le"))
    src = seed(open_registry.host, repo_name, "2.0", sample)
    dst = f"{token_registry.host}/{repo_name}:2.0"
    result = run_cli(
        "copy", "--json", "-u", user, "--password-stdin", str(src), dst, input=password
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["digest"] == sample.manifest.digest
    total = sum(len(b) for i in sample.images for b in i.blobs)
    assert doc["blobs"]["streamed"] == 9 and doc["bytes"]["streamed"] == total
    assert doc["manifests"] == 4

    with client_for(username=user, password=password) as client:
        ref = parse_reference(dst)
        for image in sample.images:
            child = client.get_manifest(ref.repo_only().with_digest(image.manifest.digest))
            assert child.raw == image.manifest.raw
    creds = f"{user}:{password}"
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", creds, f"docker://{dst}"],
        check=True,
        capture_output=True,
    ).stdout
    assert raw == sample.manifest.raw
    out = tmp_path / "layout"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--src-creds",
            creds,
            f"docker://{dst}",
            f"oci:{out}:x",
        ],
        check=True,
        capture_output=True,
    )
    assert (
        out / "blobs" / "sha256" / sample.manifest.digest.split(":")[1]
    ).read_bytes() == sample.manifest.raw


@pytest.fixture
def proxy(open_registry: RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(open_registry.host) as p:
        yield p


def test_mount_refused_falls_back(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=44, layers=3)
    seed(open_registry.host, repo_name, "v1", image)
    proxy.add_rule(Rule(method="POST", path="mount=", action=RefuseMount()))
    result = run_cli(
        "copy", "--json", f"{proxy.host}/{repo_name}:v1", f"{proxy.host}/{repo_name}-b:v1"
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["blobs"] == {"mounted": 0, "streamed": 4, "skipped": 0}
    assert doc["digest"] == image.manifest.digest
    # Each blob was uploaded into the session the refused mount opened (no second POST).
    posts = [r for r in proxy.requests if r.method == "POST"]
    assert len(posts) == 4 and all(r.status == 202 for r in posts)
    assert _head(open_registry, f"{repo_name}-b", "v1").content == image.manifest.raw


def test_corrupted_blob_fails_and_writes_no_tag(
    proxy: FaultProxy, open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=45, layers=2, layer_size=256 * 1024)
    seed(open_registry.host, repo_name, "v1", image)
    layer = image.manifest.layers[1].digest
    proxy.add_rule(Rule(method="GET", path=f"/blobs/{layer}", action=FlipByte(100_000)))
    dst = f"{other_registry.host}/{repo_name}:v1"
    other_registry.mark()
    result = run_cli("copy", f"{proxy.host}/{repo_name}:v1", dst)
    assert result.code == 1
    assert "digest mismatch" in result.stderr and layer in result.stderr
    assert _head(other_registry, repo_name, "v1").status_code == 404, "no tag may be written"
    assert httpx.head(f"{other_registry.url}/v2/{repo_name}/blobs/{layer}").status_code == 404
    assert not [
        r for r in other_registry.requests() if r.method == "PUT" and "/manifests/" in r.path
    ]


def test_dropped_chunk_resumes(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=46, layers=1, layer_size=5 * MiB, raw_layers=True)
    src = seed(open_registry.host, repo_name, "big", image)
    chunk = 1 * MiB
    with FaultProxy(other_registry.host) as dst_proxy:
        # The third PATCH dies half way; the registry never sees it.
        dst_proxy.add_rule(Rule(method="PATCH", skip=2, times=1, action=ResetRequest(chunk // 2)))
        with client_for() as client:
            (result,) = copy(
                client,
                src,
                [f"{dst_proxy.host}/{repo_name}:big"],
                options=CopyOptions(chunk_size=chunk, chunked_threshold=2 * MiB),
            )
        patches = [r for r in dst_proxy.requests if r.method == "PATCH"]
        statuses = [
            r for r in dst_proxy.requests if r.method == "GET" and "/blobs/uploads/" in r.path
        ]
    assert result.digest == image.manifest.digest
    assert len(statuses) == 1, "resumed from the registry's offset"
    assert len(patches) == 6  # 5 one-MiB chunks, one of them sent twice
    assert result.resent_bytes == chunk  # bounded by one chunk
    assert result.blobs["streamed"] == 2
    served = _head(other_registry, repo_name, "big")
    assert served.content == image.manifest.raw


def test_platform_filter(any_registry: RegistryServer, repo_name: str) -> None:
    open_registry = any_registry
    # Compact JSON: an index rebuilt by regshift (indented) would not be byte for byte the same.
    sample = random_index(
        seed=47, platforms=("linux/amd64", "linux/arm64/v8", "linux/arm/v7"), pretty=False
    )
    src = seed(open_registry.host, repo_name, "v1", sample)
    one = run_cli(
        "copy",
        "--json",
        "--platform",
        "linux/arm64",
        str(src),
        f"{open_registry.host}/{repo_name}-one:v1",
    )
    assert one.code == 0, one.stderr
    assert one.json()["digest"] == sample.images[1].manifest.digest
    two = run_cli(
        "copy",
        "--json",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm/v7",
        str(src),
        f"{open_registry.host}/{repo_name}-two:v1",
    )
    assert two.code == 0, two.stderr
    doc = two.json()
    assert doc["digest"] != sample.manifest.digest
    assert any("differs" in n for n in doc["notes"])
    index = parse_manifest(_head(open_registry, f"{repo_name}-two", "v1").content)
    assert [str(d.platform) for d in index.manifests] == ["linux/amd64", "linux/arm/v7"]
    every = ("--platform", "linux/amd64", "--platform", "linux/arm64", "--platform", "linux/arm")
    dst_all = f"{open_registry.host}/{repo_name}-all:v1"
    all_three = run_cli("copy", "--json", *every, str(src), dst_all)
    assert all_three.code == 0, all_three.stderr
    assert all_three.json()["digest"] == sample.manifest.digest
    assert all_three.json()["notes"] == []
    assert _head(open_registry, f"{repo_name}-all", "v1").content == sample.manifest.raw
    missing = run_cli(
        "copy", "--platform", "windows/amd64", str(src), f"{open_registry.host}/{repo_name}-x:v1"
    )
    assert missing.code == 4 and "no platform matches" in missing.stderr
    bad = run_cli("copy", "--platform", "linux", str(src), f"{open_registry.host}/{repo_name}-x:v1")
    assert bad.code == 2


def test_dry_run_plan(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=48, layers=2)
    src = seed(open_registry.host, repo_name, "v1", image)
    seed(other_registry.host, repo_name, "old", random_image(seed=49))
    # Put one of the blobs at the destination already.
    with client_for() as client:
        client.put_blob(parse_reference(f"{other_registry.host}/{repo_name}:x"), image.blobs[1])
    other_registry.mark()
    result = run_cli(
        "copy", "--dry-run", "--json", str(src), f"{other_registry.host}/{repo_name}:old"
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    actions = {s["digest"]: s["action"] for s in doc["plan"]}
    assert list(actions.values()).count("skip") == 1 and list(actions.values()).count("stream") == 2
    assert doc["previous"] == random_image(seed=49).manifest.digest
    assert {r.method for r in other_registry.requests()} <= {"HEAD", "GET"}
    text = run_cli("copy", "--dry-run", str(src), f"{other_registry.host}/{repo_name}:old")
    assert "stream" in text.stdout and "skip" in text.stdout and "tag     old:" in text.stdout


def test_several_destinations_resolve_once(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    sample = random_index(seed=50)
    src = seed(open_registry.host, repo_name, "v1", sample)
    open_registry.mark()
    result = run_cli(
        "copy",
        "--json",
        str(src),
        f"{other_registry.host}/{repo_name}-a",
        "--to",
        f"{other_registry.host}/{repo_name}-b:renamed",
    )
    assert result.code == 0, result.stderr
    docs = result.json()
    assert [d["destination"] for d in docs] == [
        f"{other_registry.host}/{repo_name}-a:v1",
        f"{other_registry.host}/{repo_name}-b:renamed",
    ]
    manifest_gets = [
        r for r in open_registry.requests() if r.method == "GET" and "/manifests/" in r.path
    ]
    assert len(manifest_gets) == 3  # index + 2 children, once for both destinations
    assert docs[0]["blobs"]["streamed"] == 6
    assert (
        docs[1]["blobs"]["streamed"] == 6
    )  # another repository: streamed again (no cross-registry mount)


def test_up_to_date_copy_costs_one_head(
    other_registry: RegistryServer, any_registry: RegistryServer, repo_name: str
) -> None:
    """From distribution 2.8 to each implementation (the source is never the destination)."""
    src = seed(other_registry.host, repo_name, "v1", random_image(seed=51))
    dst = f"{any_registry.host}/{repo_name}:v1"
    assert run_cli("copy", str(src), dst).code == 0
    any_registry.mark()
    again = run_cli("copy", "--json", str(src), dst)
    assert again.json()["upToDate"] is True
    assert [(r.method, r.path) for r in any_registry.requests()] == [
        ("HEAD", f"/v2/{repo_name}/manifests/v1")
    ]


def test_all_tags_with_filters(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    for i, tag in enumerate(["1.0", "1.1", "2.0", "2.0-rc1", "latest"]):
        seed(open_registry.host, repo_name, tag, random_image(seed=60 + i))
    src, dst = f"{open_registry.host}/{repo_name}", f"{other_registry.host}/{repo_name}"
    first = run_cli(
        "copy", "--all-tags", "--json", "--include", r"^\d", "--exclude", "rc", src, dst
    )
    assert first.code == 0, first.stderr
    doc = first.json()
    assert sorted(t["tags"][0] for t in doc["tags"]) == ["1.0", "1.1", "2.0"]
    assert sorted(doc["excluded"]) == ["2.0-rc1", "latest"]
    listed = run_cli("ls", dst).stdout.split()
    assert sorted(listed) == ["1.0", "1.1", "2.0"]

    open_registry.mark()
    other_registry.mark()
    second = run_cli(
        "copy", "--all-tags", "--json", "--include", r"^\d", "--exclude", "rc", src, dst
    )
    assert second.code == 0
    assert all(t["upToDate"] for t in second.json()["tags"])
    dst_requests = [(r.method, r.path) for r in other_registry.requests()]
    assert sorted(dst_requests) == sorted(
        ("HEAD", f"/v2/{repo_name}/manifests/{t}") for t in ["1.0", "1.1", "2.0"]
    )
    src_requests = [r.method for r in open_registry.requests()]
    assert sorted(src_requests) == [
        "GET",
        "HEAD",
        "HEAD",
        "HEAD",
    ]  # the tag list + one HEAD per tag
    bad = run_cli("copy", "--all-tags", "--include", "(", src, dst)
    assert bad.code == 2 and "regular expression" in bad.stderr


def test_progress_events(open_registry: RegistryServer, repo_name: str) -> None:
    image = random_image(seed=52, layers=2)
    src = seed(open_registry.host, repo_name, "v1", image)
    events: list[ProgressEvent] = []
    with client_for() as client:
        copy(
            client,
            src,
            [f"{open_registry.host}/{repo_name}-p:v1"],
            options=CopyOptions(progress=events.append),
        )
    mounted = {e.digest for e in events if e.state is ProgressState.MOUNTED}
    assert mounted == {d.digest for d in image.manifest.blobs()}
    assert any(e.kind == "manifest" and e.state is ProgressState.WRITTEN for e in events)
    verbose = run_cli("copy", "-v", str(src), f"{open_registry.host}/{repo_name}-v:v1")
    assert verbose.stderr.count("mounted blob") == 3


def test_foreign_layers_are_not_copied(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    base = random_image(seed=53, docker=True)
    manifest = _with_foreign_layer(base, b"foreign layer bytes")
    src = seed(open_registry.host, repo_name, "win", SampleImage(manifest, base.blobs))
    result = run_cli("copy", "--json", str(src), f"{other_registry.host}/{repo_name}:win")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["digest"] == manifest.digest
    assert any("foreign" in n and "--include-foreign" in n for n in out["notes"])
    assert [s["action"] for s in out["plan"]].count("foreign") == 1


def test_corrupted_copy_error_type(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=54, layers=1)
    seed(open_registry.host, repo_name, "v1", image)
    proxy.add_rule(Rule(method="POST", path="mount=", action=RefuseMount()))
    proxy.add_rule(Rule(method="GET", path="/blobs/", action=FlipByte(10)))
    with client_for() as client, pytest.raises(DigestMismatch):
        copy(
            client,
            f"{proxy.host}/{repo_name}:v1",
            [f"{proxy.host}/other-{repo_name}:v1"],
            options=CopyOptions(platforms=(Platform("linux", "amd64"),)),
        )


def test_monolithic_refused_switches_to_chunks(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    from harness.proxy import Respond

    image = random_image(seed=55, layers=1, layer_size=3 * MiB, raw_layers=True)
    src = seed(open_registry.host, repo_name, "v1", image)
    with FaultProxy(other_registry.host) as dst_proxy:
        # A front end that refuses request bodies above 1 MiB, as some proxies do.
        too_big = Respond(413, {"Content-Type": "text/plain"}, b"request entity too large")
        layer_hex = image.manifest.layers[0].digest.split(":")[1]
        dst_proxy.add_rule(
            Rule(method="PUT", path=f"digest=sha256.*{layer_hex}", times=1, action=too_big)
        )
        with client_for() as client:
            (result,) = copy(
                client,
                src,
                [f"{dst_proxy.host}/{repo_name}:v1"],
                options=CopyOptions(chunk_size=1 * MiB),
            )
        patches = [r for r in dst_proxy.requests if r.method == "PATCH"]
    assert result.digest == image.manifest.digest
    assert len(patches) >= 3


def test_mount_error_falls_back_to_a_new_upload(
    proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    """A registry answering a mount with an error (Harbor: 401 for an unknown project)."""
    from harness.proxy import Respond

    image = random_image(seed=56, layers=2)
    seed(open_registry.host, repo_name, "v1", image)
    denied = Respond.oci_error(401, "UNAUTHORIZED", "project not found")
    proxy.add_rule(Rule(method="POST", path="mount=", action=denied))
    result = run_cli(
        "copy", "--json", f"{proxy.host}/{repo_name}:v1", f"{proxy.host}/{repo_name}-m:v1"
    )
    assert result.code == 0, result.stderr
    assert result.json()["blobs"] == {"mounted": 0, "streamed": 3, "skipped": 0}
    plain_posts = [r for r in proxy.requests if r.method == "POST" and "mount=" not in r.path]
    assert len(plain_posts) == 3 and all(r.status == 202 for r in plain_posts)


def test_same_repository_copy_moves_only_the_manifest(
    any_registry: RegistryServer, repo_name: str
) -> None:
    open_registry = any_registry
    sample = random_index(seed=57)
    src = seed(open_registry.host, repo_name, "v1", sample)
    open_registry.mark()
    result = run_cli("copy", "--json", str(src), f"{open_registry.host}/{repo_name}:v1-copy")
    assert result.code == 0, result.stderr
    assert result.json()["blobs"]["skipped"] == 6
    routes = [(r.method, r.path.split("/")[-2]) for r in open_registry.requests()]
    assert all(kind == "manifests" for _, kind in routes), routes
    assert [m for m, _ in routes].count("PUT") == 1


def test_per_registry_limit(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """With per_registry=1, blobs go one at a time whatever --jobs says."""
    from regshift import ClientOptions, TransportOptions
    from regshift.client import Client

    image = random_image(seed=58, layers=5, layer_size=128 * 1024)
    src = seed(open_registry.host, repo_name, "v1", image)
    events: list[ProgressEvent] = []
    options = ClientOptions(transport=TransportOptions(per_registry=1), cache_dir=None)
    with Client(options) as client:
        copy(
            client,
            src,
            [f"{other_registry.host}/{repo_name}:v1"],
            options=CopyOptions(jobs=6, progress=events.append),
        )
    running = peak = 0
    for event in events:
        if event.kind != "blob":
            continue
        if event.state is ProgressState.STARTED:
            running += 1
            peak = max(peak, running)
        elif event.state is ProgressState.PROGRESS and event.done == event.total:
            running -= 1  # the last bytes read: still inside the registry slot
    assert peak == 1
    assert sum(1 for e in events if e.state is ProgressState.DONE) == 6


def test_progress_bars_on_a_terminal(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """On a TTY, stderr shows a bar per blob with bytes; without one (above) it stays quiet."""
    import os
    import pty
    import select
    import sys

    image = random_image(seed=59, layers=2, layer_size=2 * MiB, raw_layers=True)
    src = seed(open_registry.host, repo_name, "v1", image)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "regshift",
            "copy",
            str(src),
            f"{other_registry.host}/{repo_name}:v1",
        ],
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(slave)
    screen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 10)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        screen += data
    stdout, _ = proc.communicate(timeout=30)
    os.close(master)
    assert proc.returncode == 0
    text = screen.decode("utf-8", "replace")
    for layer in image.manifest.layers:
        assert f"blob {layer.digest.split(':')[1][:12]}" in text
    assert "2.1 MB" in text or "2.1/2.1 MB" in text
    assert b"streamed" in stdout


def test_include_foreign_copies_a_foreign_layer_the_source_serves(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    base = random_image(seed=60, docker=True)
    foreign = b"a foreign layer this registry happens to hold"
    manifest = _with_foreign_layer(base, foreign)
    src = seed(open_registry.host, repo_name, "win", SampleImage(manifest, (*base.blobs, foreign)))
    result = run_cli(
        "copy", "--include-foreign", "--json", str(src), f"{other_registry.host}/{repo_name}:win"
    )
    assert result.code == 0, result.stderr
    assert result.json()["blobs"]["streamed"] == len(base.blobs) + 1
    assert result.json()["notes"] == []
    url = f"{other_registry.url}/v2/{repo_name}/blobs/{compute_digest(foreign)}"
    assert httpx.get(url).content == foreign


def test_layout_to_layout(any_registry: RegistryServer, repo_name: str, tmp_path: Path) -> None:
    open_registry = any_registry
    sample = random_index(seed=61)
    src = seed(open_registry.host, repo_name, "v1", sample)
    assert run_cli("copy", str(src), f"oci:{tmp_path / 'a'}:v1").code == 0
    result = run_cli("copy", "--json", f"oci:{tmp_path / 'a'}:v1", f"oci:{tmp_path / 'b'}:v2")
    assert result.code == 0, result.stderr
    assert result.json()["digest"] == sample.manifest.digest and result.json()["requests"] == 0
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{tmp_path / 'b'}:v2"], check=True, capture_output=True
    )
    assert raw.stdout == sample.manifest.raw
