"""Shared fixtures: real registries on loopback and per-test credential isolation.

Session-scoped servers start lazily, on first use, and stop at the end of the session:

* ``open_registry``: no auth, plain HTTP; ``other_registry``: a second one.
* ``basic_registry``: htpasswd basic auth; ``.username``/``.password`` are alice's
  (``SECOND_BASIC_USER`` is another account of it).
* ``token_server`` + ``token_registry``: token auth; ``.username``/``.password`` are bob's,
  ``token_registry.token_server`` is the token server (``SECOND_TOKEN_USER``: another account).
* ``tls_registry``: no auth, HTTPS; trust ``.ca_file`` (or use ``.ssl_context``).
* ``registry3``: distribution 3 (open); ``refreg``: go-containerregistry's registry with the
  referrers API (open, sends ``OCI-Subject``); ``any_registry``: each open implementation
  in turn (``MATRIX``), for the tests whose behaviour is meant to be the same on all.

Registries keep blob descriptors cached in memory, so tests never wipe storage: each test
takes its own repository from ``repo_name`` / ``public_repo_name``.
"""

from __future__ import annotations

import itertools
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.peers import PeerMissing, peer
from harness.registry import MATRIX, RefregServer, RegistryServer
from harness.tokenserver import TokenServer

BASIC_USER = ("alice", "alice-secret-pw-1")
TOKEN_USER = ("bob", "bob-secret-pw-2")
SECOND_BASIC_USER = ("carol", "carol-secret-pw-3")
SECOND_TOKEN_USER = ("dave", "dave-secret-pw-4")

_REPO_COUNTER = itertools.count(1)
_MAX_REPO_NAME = 60

_ISOLATED_UNSET = (
    "REGISTRY_AUTH_FILE",
    "REGSHIFT_USERNAME",
    "REGSHIFT_PASSWORD",
    "REGSHIFT_TOKEN",
    "XDG_RUNTIME_DIR",
    *(
        name
        for base in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
        for name in (base, base.lower())
    ),
)


@dataclass(frozen=True, slots=True)
class Binaries:
    """Absolute paths of the external programs the integration tests run."""

    docker_registry: str
    skopeo: str


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    """Locate ``docker-registry`` and ``skopeo``; fail (never skip) when one is missing."""
    found = {name: shutil.which(name) for name in ("docker-registry", "skopeo")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found on PATH; install with: "
            "apt-get install -y docker-registry skopeo",
            pytrace=False,
        )
    registry, skopeo = found["docker-registry"], found["skopeo"]
    assert registry is not None and skopeo is not None
    return Binaries(docker_registry=registry, skopeo=skopeo)


def _run_registry(
    binaries: Binaries,
    factory: pytest.TempPathFactory,
    name: str,
    *,
    htpasswd: dict[str, str] | None = None,
    token: TokenServer | None = None,
    tls: bool = False,
) -> Iterator[RegistryServer]:
    """A registry for a fixture to ``yield from``: started now, stopped at the fixture's end."""
    server = RegistryServer(
        factory.mktemp(name),
        htpasswd=htpasswd,
        token=token,
        tls=tls,
        binary=binaries.docker_registry,
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def open_registry(
    binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    yield from _run_registry(binaries, tmp_path_factory, "open-registry")


@pytest.fixture(scope="session")
def other_registry(
    binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    """A second open registry, for cross-registry copies."""
    yield from _run_registry(binaries, tmp_path_factory, "other-registry")


@pytest.fixture(scope="session")
def basic_registry(
    binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    user, password = BASIC_USER
    yield from _run_registry(
        binaries,
        tmp_path_factory,
        "basic-registry",
        htpasswd={user: password, SECOND_BASIC_USER[0]: SECOND_BASIC_USER[1]},
    )


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    user, password = TOKEN_USER
    users = {user: password, SECOND_TOKEN_USER[0]: SECOND_TOKEN_USER[1]}
    server = TokenServer(users, directory=tmp_path_factory.mktemp("token-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(
    binaries: Binaries, token_server: TokenServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    yield from _run_registry(binaries, tmp_path_factory, "token-registry", token=token_server)


@pytest.fixture(scope="session")
def tls_registry(
    binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    yield from _run_registry(binaries, tmp_path_factory, "tls-registry", tls=True)


# -- the registry matrix: distribution 2.8 (Debian), distribution 3 and refreg (scripts/peers) --

_MATRIX_FIXTURES = dict(zip(MATRIX, ("open_registry", "registry3", "refreg"), strict=True))


def _peer_binary(name: str) -> str:
    """A peer built by scripts/peers; fail (never skip) when it is not built."""
    try:
        return str(peer(name))
    except PeerMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def registry3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """distribution 3 (``registry3 serve``), open, with the configuration 2.8 gets."""
    server = RegistryServer(
        tmp_path_factory.mktemp("registry3"),
        binary=_peer_binary("registry3"),
        name="distribution-3",
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def refreg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefregServer]:
    """refreg with the referrers API and ``OCI-Subject``; blobs on disk."""
    server = RefregServer(
        tmp_path_factory.mktemp("refreg"), binary=_peer_binary("refreg"), disk=True
    ).start()
    yield server
    server.stop()


def matrix_registry(request: pytest.FixtureRequest, name: str) -> RegistryServer:
    """The session registry of implementation ``name`` (one of :data:`MATRIX`)."""
    server: RegistryServer = request.getfixturevalue(_MATRIX_FIXTURES[name])
    return server


@pytest.fixture(params=MATRIX)
def any_registry(request: pytest.FixtureRequest) -> RegistryServer:
    """Each open registry implementation in turn; ``.name`` says which."""
    return matrix_registry(request, request.param)


@pytest.fixture
def registry_named(request: pytest.FixtureRequest) -> Callable[[str], RegistryServer]:
    """``registry_named("refreg")``: an open registry by implementation, for tests that
    parametrise over pairs of :data:`~harness.registry.MATRIX`."""
    return lambda name: matrix_registry(request, name)


def _unique_repo_name(prefix: str, test_name: str) -> str:
    """``<prefix>/<sanitised test name>-<n>``: lowercase, valid per distribution, ≤ 60 chars."""
    suffix = f"-{next(_REPO_COUNTER)}"
    room = _MAX_REPO_NAME - len(prefix) - 1 - len(suffix)
    # Path components: [a-z0-9]+ joined by '.', '_', '__' or runs of '-'; '-' alone is safe.
    stem = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")
    stem = stem.removeprefix("test-")[:room].strip("-") or "repo"
    return f"{prefix}/{stem}{suffix}"


@pytest.fixture
def repo_name(request: pytest.FixtureRequest) -> str:
    """A repository name no other test uses, e.g. ``t/blob-upload-7``."""
    return _unique_repo_name("t", request.node.name)


@pytest.fixture
def public_repo_name(request: pytest.FixtureRequest) -> str:
    """Like ``repo_name`` under ``public/``, which the token server lets anonymous users pull."""
    return _unique_repo_name("public", request.node.name)


@pytest.fixture(autouse=True)
def _isolate_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Keep every test away from the developer's credentials, caches and proxies."""
    root = tmp_path_factory.mktemp("env")
    for sub in ("home", "docker-config", "regshift-cache"):
        (root / sub).mkdir()
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.setenv("DOCKER_CONFIG", str(root / "docker-config"))
    monkeypatch.setenv("REGSHIFT_CACHE_DIR", str(root / "regshift-cache"))
    for name in _ISOLATED_UNSET:
        monkeypatch.delenv(name, raising=False)
    return root
