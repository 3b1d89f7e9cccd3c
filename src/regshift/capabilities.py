"""What each registry turned out to support, remembered across runs.

Some features can only be discovered by trying them (the OCI multi-tag push costs one extra
request on a registry that ignores it). The answer is kept per registry in a small JSON file
(``$REGSHIFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/regshift``, else ``~/.cache/regshift``)
for a week, so a registry upgrade is noticed. The file holds no secrets; losing it only
costs one probe.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

MULTI_TAG_PUSH = "multi_tag_push"
PLAIN_HTTP = "plain_http"  # a loopback / insecure registry that speaks plain HTTP
_TTL = 7 * 24 * 3600.0
_FILE = "capabilities.json"


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The directory for regshift's cache files."""
    env = os.environ if env is None else env
    if env.get("REGSHIFT_CACHE_DIR"):
        return Path(env["REGSHIFT_CACHE_DIR"])
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "regshift"
    return Path.home() / ".cache" / "regshift"


class Capabilities:
    """Per-registry feature flags learnt at run time; file-backed when given a directory."""

    def __init__(self, directory: Path | None = None, *, clock: float | None = None) -> None:
        self._path = directory / _FILE if directory else None
        self._now = clock if clock is not None else time.time()
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, list[object]]] = self._load()

    def get(self, registry: str, feature: str) -> bool | None:
        """True/False when known and not stale, else None."""
        with self._lock:
            entry = self._data.get(registry, {}).get(feature)
        if not entry or len(entry) != 2 or not isinstance(entry[0], bool):
            return None
        learnt = entry[1]
        if not isinstance(learnt, int | float) or self._now - learnt > _TTL:
            return None
        return entry[0]

    def set(self, registry: str, feature: str, value: bool) -> None:
        """Record what we learnt and persist it (best effort: a read-only home is fine)."""
        with self._lock:
            self._data.setdefault(registry, {})[feature] = [value, self._now]
            self._save()

    def _load(self) -> dict[str, dict[str, list[object]]]:
        if self._path is None:
            return {}
        try:
            doc = json.loads(self._path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(doc, dict):
            return {}
        return {k: v for k, v in doc.items() if isinstance(k, str) and isinstance(v, dict)}

    def _save(self) -> None:
        if self._path is None:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".capabilities.")
            with os.fdopen(fd, "w") as fh:
                json.dump(self._data, fh, indent=1, sort_keys=True)
            os.replace(tmp, self._path)
        except OSError:
            pass
