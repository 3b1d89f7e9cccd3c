"""Where docker's and podman's config files are, and reading and writing them.

Docker: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``. podman and skopeo:
``$REGISTRY_AUTH_FILE``, then ``${XDG_RUNTIME_DIR}/containers/auth.json`` on Linux
(``~/.config/containers/auth.json`` on macOS and Windows), then
``$XDG_CONFIG_HOME/containers/auth.json``. ``~`` is ``%USERPROFILE%`` on Windows, ``$HOME``
elsewhere. Every platform-dependent decision takes the platform as a parameter. File errors
are :class:`~regshift.errors.AuthError` s that never quote a file's content (it holds secrets).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import AuthError
from ..hostos import MACOS, WINDOWS, current_system, home_dir, home_variable, replace_file

__all__ = [
    "JSONObject",
    "auth_files",
    "config_target",
    "docker_config_path",
    "docker_http_headers",
    "home",
    "load_config",
    "write_config",
]

logger = logging.getLogger(__name__)

#: A parsed config file (a JSON object).
JSONObject = dict[str, object]


def docker_config_path(env: Mapping[str, str] | None = None, *, system: str | None = None) -> Path:
    """Return where Docker keeps its ``config.json``.

    Args:
        env: the environment to read; ``os.environ`` when omitted.
        system: the operating system as :data:`sys.platform` spells it; this one by default.

    Returns:
        ``$DOCKER_CONFIG/config.json`` when ``DOCKER_CONFIG`` is set, else
        ``~/.docker/config.json`` (``~`` from ``USERPROFILE`` on Windows, ``HOME`` elsewhere).

    Raises:
        AuthError: neither ``DOCKER_CONFIG`` nor a home directory.
    """
    env = os.environ if env is None else env
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    system = current_system() if system is None else system
    return home(env, system) / ".docker" / "config.json"


def docker_http_headers(
    env: Mapping[str, str] | None = None, *, system: str | None = None
) -> tuple[tuple[str, str], ...]:
    """The ``HttpHeaders`` of Docker's ``config.json`` (see :func:`docker_config_path`).

    Docker's CLI sends these with every request it makes (e.g. Artifactory's
    ``X-JFrog-Art-Api``); regshift sends them to registries' own origins only, like
    ``--header``. Entries whose value is not a string are left out, as are all of them when
    the file is missing, unreadable or not JSON: the keychain reports a broken file if
    credentials are needed from it, and a registry that needs none keeps working.

    Args:
        env: the environment to read; ``os.environ`` when omitted.
        system: the operating system as :data:`sys.platform` spells it; this one by default.

    Returns:
        ``(name, value)`` pairs in the file's order, not yet validated (see
        :func:`regshift.transport.check_header`).
    """
    try:
        path = docker_config_path(env, system=system)
        config = load_config(path)
    except AuthError as exc:
        logger.debug("HttpHeaders not read: %s", exc)
        return ()
    value = (config or {}).get("HttpHeaders")
    if not isinstance(value, dict):
        return ()
    return tuple((str(k), v) for k, v in value.items() if isinstance(v, str))


def home(env: Mapping[str, str], system: str) -> Path:
    """``$HOME`` (``%USERPROFILE%`` on Windows), else the passwd entry's home.

    Raises:
        AuthError: neither exists (some containers run a uid with no passwd entry).
    """
    home = home_dir(env, system)
    if home is None:
        var = home_variable(system)
        raise AuthError(f"no home directory ({var} is unset): set {var} or DOCKER_CONFIG")
    return home


def auth_files(env: Mapping[str, str], system: str) -> list[Path]:
    """The auth files to read, in order (see :func:`default_keychain`); they need not exist.

    podman's own file follows containers/image ``getPathToAuthWithOS``: on macOS and
    Windows it is under the home directory, on Linux under ``$XDG_RUNTIME_DIR``
    (``/run/containers/<uid>/auth.json`` without it, which is root's and not read here).
    """
    paths: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(env["REGISTRY_AUTH_FILE"]))
    with contextlib.suppress(AuthError):  # no home: no files there to read
        paths.append(docker_config_path(env, system=system))
    config_auth = Path("containers") / "auth.json"
    if system in (WINDOWS, MACOS):
        with contextlib.suppress(AuthError):
            paths.append(home(env, system) / ".config" / config_auth)
    elif env.get("XDG_RUNTIME_DIR"):
        paths.append(Path(env["XDG_RUNTIME_DIR"]) / config_auth)
    if env.get("XDG_CONFIG_HOME"):
        paths.append(Path(env["XDG_CONFIG_HOME"]) / config_auth)
    else:
        with contextlib.suppress(AuthError):
            paths.append(home(env, system) / ".config" / config_auth)
    return list(dict.fromkeys(paths))


def config_target(config_path: Path | None, env: Mapping[str, str] | None) -> Path:
    auth_file = (os.environ if env is None else env).get("REGISTRY_AUTH_FILE")
    if config_path is not None:
        path = config_path
    else:
        path = Path(auth_file) if auth_file else docker_config_path(env)
    # Like docker, write through a symlinked config instead of replacing the link.
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def load_config(path: Path) -> JSONObject | None:
    """Read an auth file; ``None`` when it does not exist, ``{}`` when it is empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        # `from None`: the decode error keeps the raw bytes, secrets included.
        raise AuthError(f"auth file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise AuthError(f"cannot read auth file {path}: {exc.strerror or exc}") from exc
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # `from None`: a JSONDecodeError keeps the whole document, secrets included, in `.doc`.
        where = f"line {exc.lineno}, column {exc.colno}"
        raise AuthError(f"auth file {path} is not valid JSON ({where})") from None
    except (ValueError, RecursionError):
        # json.loads raises RecursionError for arrays/objects nested thousands deep and
        # ValueError for integers past Python's digit limit: not JSON any tool writes.
        raise AuthError(
            f"auth file {path} is not valid JSON (nested too deeply or a number too long)"
        ) from None
    if not isinstance(data, dict):
        raise AuthError(f"auth file {path} is not a JSON object")
    return data


def write_config(path: Path, config: JSONObject) -> None:
    """Replace ``path`` atomically with ``config``, mode 0600, creating its directory 0700."""
    import tempfile  # only login and logout write: other commands never import it

    text = json.dumps(config, indent="\t") + "\n"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise AuthError(f"cannot write auth file {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if hasattr(os, "fchmod"):  # not on Windows before Python 3.13, whose ACLs apply
                os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        replace_file(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise AuthError(f"cannot write auth file {path}: {exc.strerror or exc}") from exc
