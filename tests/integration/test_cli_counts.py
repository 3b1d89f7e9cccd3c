"""Counts regshift reports match what was sent: the fault proxy's and the registry's own logs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from regshift.sample import random_image

from harness.proxy import FaultProxy, ResetRequest, Respond, Rule
from harness.registry import RegistryServer
from support import run_cli, seed


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
