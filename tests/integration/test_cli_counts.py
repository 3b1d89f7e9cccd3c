"""Counts regshift reports match what was sent: the fault proxy's and the registry's own logs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from regshift.sample import random_image, random_index

from artifacts import attach_artifact, sbom_of, signature_of
from harness.proxy import FaultProxy, ResetRequest, Respond, Rule
from harness.registry import RegistryServer
from support import client_for, run_cli, seed


@pytest.fixture
def proxy(open_registry: RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(open_registry.host) as p:
        yield p
    assert p.errors == []


@pytest.mark.parametrize(
    "fault",
    [
        Respond.oci_error(503, "UNAVAILABLE", "injected fault"),
        ResetRequest(after_bytes=10),
    ],
    ids=["503", "reset"],
)
def test_tag_json_requests_count_a_retried_put_and_its_head(
    fault: object, proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    seed(open_registry.host, repo_name, "v1", random_image(seed=1501))
    proxy.add_rule(Rule(method="PUT", path="/manifests/", times=1, action=fault))  # type: ignore[arg-type]
    result = run_cli("tag", "--json", "--retries", "2", f"{proxy.host}/{repo_name}:v1", "new")
    assert result.code == 0, result.stderr
    doc = result.json()
    sent = [(r.method, r.path.split("?")[0], r.status) for r in proxy.requests]
    print(sent, doc["requests"], doc["retries"])
    assert doc["requests"] == len(proxy.requests), sent


def _manifest_puts(registry: RegistryServer) -> int:
    return registry.count("PUT", "/manifests/")


def test_copy_referrers_counts_every_manifest_written(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=1521, layers=1)
    src = seed(open_registry.host, repo_name, "v1", image)
    sig = signature_of(image.manifest)
    sbom = sbom_of(image.manifest)
    with client_for() as client:
        for artifact in (sig, sbom):
            attach_artifact(client, src.repo_only(), artifact)
    open_registry.mark()
    other_registry.mark()
    result = run_cli(
        "copy", "--referrers", "--json", str(src), f"{other_registry.host}/{repo_name}:v1"
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    # The image by digest, two referrers, their fallback index (written after each), the tag.
    assert doc["manifests"] == _manifest_puts(other_registry) == 6
    # Every request but the source's resolution (one GET of its manifest).
    sent = len(other_registry.requests()) + len(open_registry.requests()) - 1
    assert doc["requests"] == sent


def test_copy_counts_match_the_destination_access_log(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    index = random_index(seed=1522)
    src = seed(open_registry.host, repo_name, "v1", index)
    open_registry.mark()
    other_registry.mark()
    result = run_cli("copy", "--json", str(src), f"{other_registry.host}/{repo_name}:v1")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["manifests"] == _manifest_puts(other_registry) == 3
    # Every request but the source's resolution (the index and its two manifests): the
    # destination's, and the source's blob GETs.
    resolved = open_registry.count("GET", "/manifests/")
    assert resolved == 3
    sent = len(other_registry.requests()) + len(open_registry.requests()) - resolved
    assert doc["requests"] == sent


def test_all_tags_dry_run_says_what_would_be_copied(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    src = seed(open_registry.host, repo_name, "v1", random_image(seed=1523))
    seed(open_registry.host, repo_name, "v2", random_image(seed=1524))
    dst = f"{other_registry.host}/{repo_name}"
    run_cli("copy", f"{src}", f"{dst}:v1")
    other_registry.mark()
    result = run_cli("copy", "--all-tags", "--dry-run", str(src.repo_only()), dst)
    assert result.code == 0, result.stderr
    last = result.stdout.splitlines()[-1]
    assert "2 tag(s): 1 would be copied, 1 up to date, 0 excluded (dry run)" in last, last
    assert " copied," not in last.replace("would be copied", "")
    assert other_registry.count("PUT") == 0
