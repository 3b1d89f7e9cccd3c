"""Fixtures of the interoperability tests (test_interop_*.py): the peer programs, refreg,
and a skopeo policy. Names are prefixed so they never shadow fixtures of ``tests/conftest.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.interop import Peers, RefReg, find_peers


@pytest.fixture(scope="session")
def interop_peers() -> Peers:
    """crane, regctl, oras, cosign, refreg and skopeo (session scope: found from the real HOME)."""
    return find_peers()


@pytest.fixture(scope="session")
def interop_refreg(
    interop_peers: Peers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RefReg]:
    """refreg (a registry with the OCI 1.1 referrers API) on loopback, for this session."""
    server = RefReg(interop_peers.refreg, tmp_path_factory.mktemp("interop-refreg")).start()
    yield server
    server.stop()


@pytest.fixture
def skopeo_policy(tmp_path: Path) -> Path:
    """A skopeo signature policy accepting anything (the test's own registries only)."""
    path = tmp_path / "skopeo-policy.json"
    path.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    return path
