"""What differs between the operating systems regshift runs on (not image platforms).

Decisions take the system as a parameter, spelt as :data:`sys.platform` spells it
(``"win32"``, ``"darwin"``, anything else is a POSIX system such as ``"linux"``), and the
environment as a mapping, so that the choices for every system are tested on any of them.
Imports nothing of ours.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

WINDOWS = "win32"
MACOS = "darwin"


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
