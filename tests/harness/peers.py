"""Where the Go peers built by ``scripts/peers`` are: crane, regctl, oras, cosign, distribution 3
(``registry3``) and refreg (go-containerregistry's registry with the referrers API).

The versions come from ``tests/peers/versions.txt``, the directory from the same rule the
script uses. A peer that is not built fails the test that needs it, naming the command that
builds it: nothing is skipped.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["PEERS", "PeerMissing", "peer"]

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ROOT / "tests" / "peers" / "versions.txt"


class PeerMissing(RuntimeError):
    """A peer program has not been built (``scripts/peers`` builds it)."""


def _pins() -> dict[str, tuple[str, str]]:
    pins = {}
    for line in VERSIONS.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words and not words[0].startswith("#"):
            name, module, version = words
            pins[name] = (module, version)
    return pins


PEERS = tuple(_pins())


def cache_dir() -> Path:
    """``$REGSHIFT_PEERS_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/regshift/peers``."""
    if os.environ.get("REGSHIFT_PEERS_DIR"):
        return Path(os.environ["REGSHIFT_PEERS_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "regshift" / "peers"


# Read once, at import: tests move $HOME to a temporary directory (conftest.py's
# _isolate_credentials) before a session fixture first asks for a peer.
_CACHE_DIR = cache_dir()


def _source_version(module: str) -> str:
    """The hash ``scripts/peers`` gives a local module: sha256 of main.go, go.mod, go.sum."""
    folder = ROOT / module
    data = b"".join((folder / name).read_bytes() for name in ("main.go", "go.mod", "go.sum"))
    return "src-" + hashlib.sha256(data).hexdigest()[:12]


def peer(name: str) -> Path:
    """The path of peer ``name``.

    Raises:
        PeerMissing: it is not built (run ``scripts/peers``; ``scripts/test`` does).
    """
    module, version = _pins()[name]
    if version == "source":
        version = _source_version(module)
    path = _CACHE_DIR / f"{name}-{version}" / name
    if not os.access(path, os.X_OK):
        raise PeerMissing(f"{name} {version} is not built at {path}: run scripts/peers")
    return path
