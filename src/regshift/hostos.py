"""What differs between the operating systems regshift runs on (not image platforms).

Decisions take the system as a parameter, spelt as :data:`sys.platform` spells it
(``"win32"``, ``"darwin"``, anything else is a POSIX system such as ``"linux"``), and the
environment as a mapping, so that the choices for every system are tested on any of them.
Imports nothing of ours.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

WINDOWS = "win32"
MACOS = "darwin"

#: How long a replacement waits on Windows for a program holding the target open.
REPLACE_WAIT = 2.0


def current_system() -> str:
    """The system this process runs on, spelt as :data:`sys.platform`."""
    return sys.platform


def home_variable(system: str) -> str:
    """The variable that names the home directory: ``USERPROFILE`` on Windows (Docker's and
    podman's ``homedir.Get`` read it there), else ``HOME``."""
    return "USERPROFILE" if system == WINDOWS else "HOME"


def home_dir(env: Mapping[str, str], system: str) -> Path | None:
    """The user's home: :func:`home_variable` from ``env``, else what Python finds for this
    process (the passwd entry on POSIX); ``None`` when there is none."""
    value = env.get(home_variable(system))
    if value:
        return Path(value)
    try:
        return Path.home()
    except (RuntimeError, KeyError, OSError):  # no $HOME and no passwd entry for this uid
        return None


def replace_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    windows: bool | None = None,
    wait: float = REPLACE_WAIT,
    replace: Callable[[str | os.PathLike[str], str | os.PathLike[str]], None] | None = None,
) -> None:
    """``replace(src, dst)`` (``os.replace`` by default), atomic on every system; on
    Windows retried for up to ``wait`` seconds while it fails with PermissionError.

    Windows refuses to replace a file that another program has open without delete
    sharing (Python's own ``open`` does not grant it; virus scanners and indexers open new
    files briefly), where POSIX replaces it under the reader. Another regshift process
    reading ``index.json`` lock-free would otherwise make a concurrent update fail.

    Raises:
        OSError: what ``replace`` raised, once the wait is over (at once on POSIX).
    """
    windows = os.name == "nt" if windows is None else windows
    replace = os.replace if replace is None else replace  # looked up now, not at import
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        try:
            replace(src, dst)
            return
        except PermissionError:
            if not windows or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
