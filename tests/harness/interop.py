"""The peer programs (crane, regctl, oras, cosign, skopeo) as the interoperability tests run
them, and refreg, a registry with the OCI 1.1 referrers API, as a small server object.

Every peer runs with the test's isolated ``HOME`` and ``DOCKER_CONFIG`` (set by the autouse
fixture in ``tests/conftest.py``), its own ``REGCTL_CONFIG`` and XDG directories below that
``HOME``, and ``HTTP(S)_PROXY`` pointing at a closed loopback port: Go and skopeo never proxy
loopback hosts, so a request to the test registries goes through while any attempt to reach
anything else (Rekor, Fulcio, a TUF mirror, Docker Hub) fails at once instead of leaving the
machine. Plain-HTTP registries get each tool's own flag. A peer that is not built fails the
test (``PeerMissing``), it never skips.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from harness.peers import PeerMissing, peer

__all__ = [
    "Peers",
    "RefReg",
    "find_peers",
    "interop_peers_fixture",
    "interop_refreg_fixture",
    "skopeo_policy_fixture",
]

_TIMEOUT = 120
_DEAD_PROXY = "http://127.0.0.1:9"  # discard port: nothing listens, every connection is refused
# How Go reports that dead proxy ("proxyconnect tcp: dial tcp 127.0.0.1:9: connect: ...").
_LEFT_LOOPBACK = (b"proxyconnect", b"127.0.0.1:9:")


@dataclass(frozen=True)
class Peers:
    """The peer programs and how to run them against plain-HTTP loopback registries.

    ``paths`` maps each peer to its binary, or to the reason it is missing: using a missing
    peer fails the test that needs it (and only that test).
    """

    paths: Mapping[str, Path | str]

    def path(self, name: str) -> Path:
        found = self.paths[name]
        if isinstance(found, str):
            pytest.fail(found, pytrace=False)
        return found

    @property
    def crane(self) -> Path:
        return self.path("crane")

    @property
    def regctl(self) -> Path:
        return self.path("regctl")

    @property
    def oras(self) -> Path:
        return self.path("oras")

    @property
    def cosign(self) -> Path:
        return self.path("cosign")

    @property
    def refreg(self) -> Path:
        return self.path("refreg")

    @property
    def skopeo(self) -> Path:
        return self.path("skopeo")

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of one run: the test's isolated home, no way off the machine."""
        home = Path(os.environ["HOME"])
        env = dict(os.environ)
        env.update(
            REGCTL_CONFIG=str(home / "regctl" / "config.json"),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_CACHE_HOME=str(home / ".cache"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            TUF_ROOT=str(home / ".sigstore" / "root"),
            HTTP_PROXY=_DEAD_PROXY,
            HTTPS_PROXY=_DEAD_PROXY,
            NO_PROXY="",
        )
        for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "ALL_PROXY"):
            env.pop(name, None)
        env.update(extra or {})
        return env

    def attempt(
        self,
        program: Path,
        *args: str | Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a peer and return how it went, for a test that expects it to fail."""
        cmd = [str(program), *(str(a) for a in args)]
        return subprocess.run(
            cmd, capture_output=True, timeout=_TIMEOUT, env=self.env(env), cwd=cwd, check=False
        )

    def run(
        self,
        program: Path,
        *args: str | Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> bytes:
        """Run a peer; its stdout as bytes. A non-zero exit fails the test with its output."""
        proc = self.attempt(program, *args, env=env, cwd=cwd)
        if any(sign in proc.stderr for sign in _LEFT_LOOPBACK):
            pytest.fail(
                f"{program.name} tried to reach a host off loopback:\n"
                f"{proc.stderr.decode(errors='replace')}",
                pytrace=False,
            )
        if proc.returncode != 0:
            pytest.fail(
                f"{' '.join(str(a) for a in proc.args)} failed ({proc.returncode}):\n"
                f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}",
                pytrace=False,
            )
        return proc.stdout

    def crane_run(self, *args: str | Path) -> bytes:
        return self.run(self.crane, "--insecure", *args)

    def regctl_run(self, hosts: Sequence[str], *args: str | Path) -> bytes:
        """regctl with ``--host reg=HOST,tls=disabled`` for each plain-HTTP registry it uses."""
        flags = [f"--host=reg={host},tls=disabled" for host in hosts]
        return self.run(self.regctl, *args, *flags)

    def oras_run(self, command: Sequence[str], *args: str | Path) -> bytes:
        """``oras COMMAND... --plain-http ARGS`` (subcommands before the flag)."""
        return self.run(self.oras, *command, "--plain-http", *args)

    def skopeo_run(self, *args: str | Path, policy: Path) -> bytes:
        return self.run(self.skopeo, "--policy", policy, *args)

    def cosign_run(self, *args: str | Path, env: Mapping[str, str] | None = None) -> bytes:
        return self.run(self.cosign, *args, env=env)


def find_peers() -> Peers:
    """The built peers and skopeo. Call it from a fixture of module or session scope: the
    build cache is found from the real ``HOME``, which the per-test isolation replaces."""
    paths: dict[str, Path | str] = {}
    for name in ("crane", "regctl", "oras", "cosign", "refreg"):
        try:
            paths[name] = peer(name)
        except PeerMissing as exc:
            paths[name] = str(exc)
    skopeo = shutil.which("skopeo")
    paths["skopeo"] = (
        Path(skopeo) if skopeo else "skopeo not found on PATH; install: apt-get install -y skopeo"
    )
    return Peers(paths)


@dataclass
class RefReg:
    """refreg (go-containerregistry's registry with the referrers API) on ``127.0.0.1``."""

    binary: Path
    directory: Path
    port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self, timeout: float = 20.0) -> RefReg:
        self.port = _free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        with (
            (self.directory / "access.log").open("wb") as out,
            (self.directory / "refreg.log").open("wb") as err,
        ):
            self._process = subprocess.Popen(
                [str(self.binary), "--address", self.host], stdout=out, stderr=err
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = (self.directory / "refreg.log").read_text(errors="replace")
                raise RuntimeError(f"refreg exited ({self._process.returncode}): {log}")
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1, trust_env=False).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"refreg did not answer on {self.host} within {timeout} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Fixtures of the interoperability tests. A test module takes them as module attributes
# (``interop_peers_fixture = interop.interop_peers_fixture``): a conftest.py beside the tests
# would shadow tests/conftest.py, which other test modules import as ``conftest``.


@pytest.fixture(scope="session", name="interop_peers")
def interop_peers_fixture() -> Peers:
    """crane, regctl, oras, cosign, refreg and skopeo (session scope: found from the real
    HOME, before the per-test isolation replaces it)."""
    return find_peers()


@pytest.fixture(scope="session", name="interop_refreg")
def interop_refreg_fixture(
    interop_peers: Peers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RefReg]:
    """refreg (a registry with the OCI 1.1 referrers API) on loopback."""
    server = RefReg(interop_peers.refreg, tmp_path_factory.mktemp("interop-refreg")).start()
    yield server
    server.stop()


@pytest.fixture(name="skopeo_policy")
def skopeo_policy_fixture(tmp_path: Path) -> Path:
    """A skopeo signature policy accepting anything (the test's own registries only)."""
    path = tmp_path / "skopeo-policy.json"
    path.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    return path
