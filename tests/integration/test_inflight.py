"""Units copying the same blobs into one repository at once (real distribution 2.8).

distribution's filesystem driver rewrites a repository's blob link file non-atomically on
every upload of that blob, so two concurrent uploads of one blob could make a manifest PUT
landing in between fail with 400 MANIFEST_BLOB_UNKNOWN / DIGEST_INVALID. Within one process
regshift sends each blob once per destination repository (the others wait for it); a refusal
caused by another process is retried once, after the manifest's blobs were checked.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from regshift import Client, CopyResult, parse_reference
from regshift.copying import CopyOptions, copy
from regshift.manifests import Platform
from regshift.sample import SampleImage, random_image

from harness.proxy import FaultProxy, Respond, Rule
from harness.registry import LoggedRequest, RegistryServer
from support import client_for, run_cli, seed

ROUNDS = 10


def _two_images(seed_value: int) -> tuple[SampleImage, SampleImage]:
    """Two images with the same layers (one seed) and their own configs (two platforms)."""
    amd = random_image(seed=seed_value, layers=2, layer_size=64 * 1024)
    arm = random_image(
        seed=seed_value, layers=2, layer_size=64 * 1024, platform=Platform("linux", "arm64")
    )
    assert amd.blobs[1:] == arm.blobs[1:] and amd.blobs[0] != arm.blobs[0]
    return amd, arm


def _distinct_blobs(*images: SampleImage) -> dict[str, int]:
    """digest -> size of every blob of ``images``, once each."""
    sizes: dict[str, int] = {}
    for image in images:
        manifest = image.manifest
        for desc in manifest.blobs():
            sizes[desc.digest] = desc.size
    return sizes


def _uploads(requests: list[LoggedRequest], repo: str) -> Counter[str]:
    """How often each blob was committed (upload PUT) or mounted into ``repo``."""
    placed: Counter[str] = Counter()
    prefix = f"/v2/{repo}/blobs/uploads/"
    for r in requests:
        if not r.route.startswith(prefix) or r.status >= 400:
            continue
        query = dict(p.split("=", 1) for p in r.path.partition("?")[2].split("&") if "=" in p)
        if r.method == "PUT":
            placed[query["digest"].replace("%3A", ":")] += 1
        elif r.method == "POST" and "mount" in query and r.status == 201:
            placed[query["mount"].replace("%3A", ":")] += 1
    return placed


def _upload_sessions(requests: list[LoggedRequest], repo: str) -> int:
    prefix = f"/v2/{repo}/blobs/uploads/"
    return sum(1 for r in requests if r.method == "POST" and r.route == prefix)


def test_parallel_sync_of_tags_sharing_images_uploads_each_blob_once(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    amd, arm = _two_images(4100)
    tags = [f"t{n:02d}" for n in range(12)]
    for n, tag in enumerate(tags):
        seed(open_registry.host, repo_name, tag, amd if n % 2 else arm)
    blobs = _distinct_blobs(amd, arm)
    assert len(blobs) == 4  # two configs, two shared layers

    for round_ in range(ROUNDS):
        dest = f"{repo_name}/r{round_}"
        plan = tmp_path / f"sync-{round_}.yaml"
        plan.write_text(
            f"sync:\n  - source: {open_registry.host}/{repo_name}\n"
            f"    destination: {other_registry.host}/{dest}\n"
        )
        other_registry.mark()
        result = run_cli("sync", str(plan), "--jobs", "12", "--json", "-q")
        assert result.code == 0, f"round {round_}: {result.stderr}"
        units = result.json()["units"]
        assert [u["action"] for u in units] == ["copied"] * len(tags), f"round {round_}"
        logged = other_registry.requests()
        assert _uploads(logged, dest) == dict.fromkeys(blobs, 1), f"round {round_}"
        assert _upload_sessions(logged, dest) == len(blobs), f"round {round_}"
        # --json stays truthful: the units together streamed each blob's bytes once.
        assert result.json()["summary"]["bytes"] == sum(blobs.values()), f"round {round_}"


def test_two_threads_copying_images_that_share_blobs_into_one_repository(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    amd, arm = _two_images(4200)
    sources = [seed(open_registry.host, repo_name, t, i) for t, i in (("a", amd), ("b", arm))]
    blobs = _distinct_blobs(amd, arm)
    with client_for() as client:
        for round_ in range(5):
            dest = f"{other_registry.host}/{repo_name}/r{round_}"
            other_registry.mark()
            results = _copy_in_threads(client, [(s, f"{dest}:{s.tag}") for s in sources])
            logged = other_registry.requests()
            repo = f"{repo_name}/r{round_}"
            assert _uploads(logged, repo) == dict.fromkeys(blobs, 1), f"round {round_}"
            # Each blob counted once as moved, once as skipped (by the thread that waited,
            # or found it there when planning): the counts add up to what was sent.
            moved = sum(r.blobs["streamed"] + r.blobs["mounted"] for r in results)
            skipped = sum(r.blobs["skipped"] for r in results)
            assert (moved, skipped) == (len(blobs), 6 - len(blobs)), f"round {round_}"
            assert sum(r.bytes["streamed"] for r in results) == sum(blobs.values())
            with client_for() as check:
                for source, result in zip(sources, results, strict=True):
                    ref = parse_reference(f"{dest}:{source.tag}")
                    assert check.digest_of(ref) == result.digest


def _copy_in_threads(client: Client, pairs: list[tuple[object, str]]) -> list[CopyResult]:
    """``copy`` each (source, destination) in its own thread, all started at once."""
    start = threading.Barrier(len(pairs))
    results: list[CopyResult | BaseException | None] = [None] * len(pairs)

    def one(index: int, source: object, dest: str) -> None:
        start.wait()
        try:
            results[index] = copy(client, str(source), [dest], options=CopyOptions(jobs=4))[0]
        except BaseException as exc:  # reported below, in the test's thread
            results[index] = exc

    threads = [threading.Thread(target=one, args=(i, *p)) for i, p in enumerate(pairs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    done = [r for r in results if isinstance(r, CopyResult)]
    assert len(done) == len(pairs), results
    return done


@pytest.mark.parametrize("refusals", [1, 2])
def test_manifest_put_refused_for_a_blob_is_retried_once_after_checking_blobs(
    refusals: int, open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """Another process re-uploading a blob makes distribution refuse one manifest PUT: the
    blobs are HEAD-checked (one found missing is placed again) and the PUT is sent once more;
    a second refusal is an error."""
    image = random_image(seed=4300, layers=2, layer_size=4096)
    src = seed(open_registry.host, repo_name, "v1", image)
    layer = image.manifest.layers[0].digest
    with FaultProxy(other_registry.host) as proxy:
        put = proxy.add_rule(
            Rule(
                method="PUT",
                path="/manifests/v1$",
                times=refusals,
                action=Respond.oci_error(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry"),
            )
        )
        # The check after the refusal finds one layer missing (its first HEAD, when the
        # copy was planned, passes through).
        proxy.add_rule(
            Rule(method="HEAD", path=f"/blobs/{layer}$", skip=1, times=1, action=Respond(404))
        )
        result = run_cli("copy", "--json", str(src), f"{proxy.host}/{repo_name}:v1")
        puts = [r for r in proxy.requests if r.method == "PUT" and r.path.endswith("/v1")]
        heads = [r.path for r in proxy.requests if r.method == "HEAD" and "/blobs/" in r.path]
        commits = [r for r in proxy.requests if r.method == "PUT" and layer.split(":")[1] in r.path]
    assert put.hits == refusals
    assert len(puts) == 2, "sent once more, not twice more"
    # Planned (3 HEADs), then every blob checked after the refusal.
    assert sorted(heads[3:]) == sorted(
        f"/v2/{repo_name}/blobs/{d.digest}" for d in image.manifest.blobs()
    )
    assert len(commits) == 2, "the blob found missing was placed again"
    with client_for() as client:
        stored = client.digest_of(parse_reference(f"{other_registry.host}/{repo_name}:v1"))
    if refusals == 1:
        assert result.code == 0, result.stderr
        doc = result.json()
        doc = doc[0] if isinstance(doc, list) else doc
        assert doc["retries"] >= 1
        assert doc["resentBytes"] == image.manifest.layers[0].size  # the layer sent again
        assert stored == image.manifest.digest
    else:
        assert result.code == 1
        assert "MANIFEST_BLOB_UNKNOWN" in result.stderr and len(result.stderr.splitlines()) == 1
        assert stored is None
