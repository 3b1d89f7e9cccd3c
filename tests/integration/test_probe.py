"""``regshift probe`` against distribution 2.8 (open, basic, token, TLS) and refreg."""

from __future__ import annotations

import json
from typing import Any

import pytest

from regshift.capabilities import MULTI_TAG_PUSH, Capabilities
from regshift.reference import parse_reference
from regshift.sample import random_image

from harness.registry import RegistryServer
from support import client_for, registry_user, run_cli, seed

# What distribution 2.8 does (README "Deleting", "Multi-tag push", REGISTRY-NOTES.md).
DISTRIBUTION_28 = {
    "push": True,
    "mount": True,
    "manifestDelete": True,
    "blobDelete": True,
    "tagDelete": False,
    "referrersApi": False,
    "multiTagPush": False,
    "chunkedUpload": True,
    "ociIndex": True,
    "ociArtifacts": True,
    "tagPagination": False,  # 2.8 ignores ?n= (answers every tag); distribution 3 pages
}


_INDEX = "application/vnd.oci.image.index.v1+json"


def _values(doc: dict[str, Any]) -> dict[str, Any]:
    return {name: doc[name]["value"] for name in DISTRIBUTION_28}


def _probe(server: RegistryServer, repo: str, *extra: str) -> dict[str, Any]:
    args = ["probe", f"{server.host}/{repo}", "--json", *extra]
    if server.username:
        user, password = registry_user(server)
        args += ["-u", user, "--password-stdin"]
        result = run_cli(*args, input=password + "\n")
    else:
        result = run_cli(*args)
    assert result.code == 0, result.stderr
    doc: dict[str, Any] = result.json()
    return doc


def _tags(server: RegistryServer, repo: str) -> list[str]:
    creds: dict[str, str] = {}
    if server.username:
        user, password = registry_user(server)
        creds = {"username": user, "password": password}
    with client_for(**creds, ca_file=str(server.ca_file) if server.ca_file else None) as client:
        return client.list_tags(parse_reference(f"{server.host}/{repo}"))


@pytest.mark.parametrize(
    "variant", ["open_registry", "basic_registry", "token_registry", "tls_registry"]
)
def test_probe_distribution_2_8(
    request: pytest.FixtureRequest, variant: str, repo_name: str, _isolate_credentials: Any
) -> None:
    server: RegistryServer = request.getfixturevalue(variant)
    seed_creds: dict[str, Any] = {}
    if server.username:
        user, password = registry_user(server)
        seed_creds = {"username": user, "password": password}
    if server.ca_file:
        seed_creds["ca_file"] = str(server.ca_file)
    seed(server.host, repo_name, "keep", random_image(seed=5), **seed_creds)
    extra = ("--ca-file", str(server.ca_file)) if server.ca_file else ()
    doc = _probe(server, repo_name, *extra)
    assert _values(doc) == DISTRIBUTION_28, {k: doc[k] for k in DISTRIBUTION_28}
    assert doc["auth"] == {"basic_registry": "basic", "token_registry": "bearer"}.get(
        variant, "none"
    )
    assert "404" in doc["referrersApi"]["evidence"]
    assert doc["leftBehind"] == []
    assert _tags(server, repo_name) == ["keep"]  # no probe tag left behind
    # The capability cache learnt it (the CLI's client writes $REGSHIFT_CACHE_DIR).
    cache = Capabilities(_isolate_credentials / "regshift-cache")
    assert cache.get(server.host, MULTI_TAG_PUSH) is False


def test_probe_refreg_has_the_referrers_api(refreg: RegistryServer, repo_name: str) -> None:
    doc = _probe(refreg, repo_name)
    assert doc["referrersApi"]["value"] is True
    assert "lists the probe artifact" in doc["referrersApi"]["evidence"]
    assert doc["push"]["value"] is True and doc["ociArtifacts"]["value"] is True
    assert "OCI-Subject" in doc["ociArtifacts"]["evidence"]
    assert doc["tagDelete"]["value"] is True  # distribution 2.8 cannot (400)
    assert doc["multiTagPush"]["value"] is False
    assert doc["leftBehind"] == []
    assert not [t for t in _tags(refreg, repo_name) if t.startswith("regshift-probe")]


def test_probe_without_push_rights_is_read_only(
    token_registry: RegistryServer, public_repo_name: str
) -> None:
    user, password = registry_user(token_registry)
    seed(
        token_registry.host,
        public_repo_name,
        "a",
        random_image(seed=1),
        username=user,
        password=password,
    )
    seed(
        token_registry.host,
        public_repo_name,
        "b",
        random_image(seed=2),
        username=user,
        password=password,
    )
    result = run_cli("probe", f"{token_registry.host}/{public_repo_name}")  # anonymous: pull only
    assert result.code == 0, result.stderr
    lines = {ln.split()[0]: ln.split()[1] for ln in result.stdout.splitlines()[1:] if ln.strip()}
    assert lines["auth"] == "bearer"
    assert lines["push"] == "no"
    assert lines["referrersApi"] == "no"
    assert lines["tagPagination"] == "no"  # both tags for ?n=1
    assert lines["manifestDelete"] == "unknown"
    assert sorted(_tags(token_registry, public_repo_name)) == ["a", "b"]


def _emulated_referrers_api(proxy: Any) -> Any:
    """The fault proxy answering ``GET /referrers/<digest>`` as a registry with the OCI 1.1
    referrers API would (an OCI image index), as in test_referrers.py; everything else is
    forwarded to distribution 2.8, which has no such API."""
    from harness.proxy import Respond, Rule

    index = json.dumps({"schemaVersion": 2, "mediaType": _INDEX, "manifests": []}).encode()
    answer = Respond(200, {"Content-Type": _INDEX}, index)
    return proxy.add_rule(Rule(method="GET", path=r"/referrers/sha256:", action=answer))


def test_probe_through_a_proxy_emulating_the_referrers_api(
    open_registry: RegistryServer, repo_name: str
) -> None:
    from harness.proxy import FaultProxy

    with FaultProxy(open_registry.host) as proxy:
        api = _emulated_referrers_api(proxy)
        result = run_cli("probe", f"{proxy.host}/{repo_name}", "--json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert api.hits == 1
    assert doc["referrersApi"]["value"] is True, doc["referrersApi"]
    assert "GET /referrers/<digest> 200, an index" in doc["referrersApi"]["evidence"]
    assert doc["push"]["value"] is True  # the rest is still distribution 2.8's
    assert doc["multiTagPush"]["value"] is False and doc["tagDelete"]["value"] is False
    assert doc["leftBehind"] == []
    assert not [t for t in _tags(open_registry, repo_name) if t.startswith("regshift-probe")]


def test_probe_read_only_through_a_proxy_emulating_the_referrers_api(
    open_registry: RegistryServer, repo_name: str
) -> None:
    """Without push rights (the proxy refuses uploads) the API is found by reading alone."""
    from harness.proxy import FaultProxy, Respond, Rule

    seed(open_registry.host, repo_name, "keep", random_image(seed=6))
    with FaultProxy(open_registry.host) as proxy:
        refuse = Respond.oci_error(403, "DENIED", "requested access to the resource is denied")
        proxy.add_rule(Rule(method="POST", path=r"/blobs/uploads/", action=refuse))
        api = _emulated_referrers_api(proxy)
        result = run_cli("probe", f"{proxy.host}/{repo_name}", "--json")
        writes = [r for r in proxy.requests if r.method in ("PUT", "PATCH", "DELETE")]
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["push"]["value"] is False
    assert api.hits == 1
    assert doc["referrersApi"]["value"] is True, doc["referrersApi"]
    assert writes == []
    assert _tags(open_registry, repo_name) == ["keep"]
