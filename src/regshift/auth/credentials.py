"""Find and store registry credentials the way docker, podman, crane and skopeo do.

:func:`default_keychain` asks these sources in order; the first that has a credential wins:

1. ``REGSHIFT_USERNAME`` + ``REGSHIFT_PASSWORD`` and/or ``REGSHIFT_TOKEN`` (:class:`EnvKeychain`);
2. ``$REGISTRY_AUTH_FILE`` (podman, skopeo);
3. Docker's ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``;
4. podman's own file: ``${XDG_RUNTIME_DIR}/containers/auth.json`` on Linux,
   ``~/.config/containers/auth.json`` on macOS and Windows;
5. ``$XDG_CONFIG_HOME/containers/auth.json``, else ``~/.config/containers/auth.json``.

``~`` is ``%USERPROFILE%`` on Windows, ``$HOME`` elsewhere, as for docker and podman. Helpers
are found on ``PATH`` (with ``PATHEXT`` on Windows: ``docker-credential-wincred.exe``).

Every file uses Docker's format::

    {"auths": {"ghcr.io": {"auth": "<base64 of user:password>"},
               "https://index.docker.io/v1/": {"identitytoken": "..."}},
     "credHelpers": {"123456789.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"},
     "credsStore": "desktop"}

Credential helpers speak the docker-credential-helpers protocol: ``docker-credential-<name>
get|store|erase`` reads the request on stdin and answers JSON on stdout.

Registries are named by host (``127.0.0.1:5000``, ``ghcr.io``, ``docker.io``). Docker Hub is
stored under Docker's legacy key ``https://index.docker.io/v1/``. Secrets never appear in
exception messages, log lines or reprs.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..errors import AuthError
from ..hostos import current_system
from .configfiles import (
    JSONObject,
    auth_files,
    config_target,
    docker_config_path,
    docker_http_headers,
    load_config,
    write_config,
)

__all__ = [
    "ANONYMOUS",
    "DOCKER_HUB_KEY",
    "ChainKeychain",
    "Credential",
    "EnvKeychain",
    "FileKeychain",
    "Keychain",
    "StaticKeychain",
    "default_keychain",
    "docker_config_path",
    "docker_http_headers",
    "erase_credential",
    "store_credential",
]

logger = logging.getLogger(__name__)

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
"""The key docker uses for Docker Hub in ``auths`` and towards credential helpers."""

HELPER_TIMEOUT = 30.0
"""Seconds a credential helper may run before it is killed."""

ENV_USERNAME = "REGSHIFT_USERNAME"
ENV_PASSWORD = "REGSHIFT_PASSWORD"
ENV_TOKEN = "REGSHIFT_TOKEN"

_DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
# docker-credential-helpers: a helper answering this user name returns an identity token.
_TOKEN_USERNAME = "<token>"
# docker-credential-helpers print "credentials not found in native keychain" and exit 1.
_NOT_FOUND = "credentials not found"


@dataclass(frozen=True, slots=True)
class Credential:
    """Credentials for one registry; secrets are left out of ``repr``.

    Attributes:
        username: user name for basic auth or the token endpoint.
        password: password for basic auth or the token endpoint.
        identity_token: OAuth2 refresh token (Docker's ``identitytoken``).
        registry_token: bearer token sent to the registry as is (``registrytoken``).
        source: where the credential came from (``"env"``, a file path, a credential helper);
            never a secret.
    """

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)
    source: str = ""

    @property
    def is_anonymous(self) -> bool:
        """Whether this carries no user name, password or token at all."""
        return not (self.username or self.password or self.identity_token or self.registry_token)


ANONYMOUS = Credential()
"""The empty credential: access the registry without authenticating."""


class Keychain(Protocol):
    """A source of credentials."""

    def resolve(self, registry: str, repository: str | None = None) -> Credential:
        """Find the credential for a registry.

        Args:
            registry: registry host such as ``ghcr.io``, ``127.0.0.1:5000`` or ``docker.io``.
            repository: repository path inside the registry (``library/nginx``); lets
                per-repository keys (``ghcr.io/org/app``) win over the registry's key.

        Returns:
            The credential, or :data:`ANONYMOUS` when this source has none.

        Raises:
            AuthError: the source exists but cannot be used.
        """
        ...


class StaticKeychain:
    """Fixed credentials: one for every registry, or one per registry key."""

    __slots__ = ("_by_key", "_default")

    def __init__(self, credentials: Credential | Mapping[str, Credential]) -> None:
        """Create the keychain.

        Args:
            credentials: the credential for every registry, or a mapping from registry key
                (``ghcr.io``, ``https://ghcr.io``, ``ghcr.io/org/app``) to credential.
        """
        if isinstance(credentials, Credential):
            self._default = credentials
            self._by_key: dict[str, Credential] = {}
        else:
            self._default = ANONYMOUS
            self._by_key = {_normalize_key(k): v for k, v in credentials.items()}

    def __repr__(self) -> str:
        return f"StaticKeychain(default={self._default!r}, keys={sorted(self._by_key)!r})"

    def resolve(self, registry: str, repository: str | None = None) -> Credential:
        """Return the configured credential; see :meth:`Keychain.resolve`."""
        for key in _candidates(registry, repository):
            if key in self._by_key:
                return self._by_key[key]
        return self._default


class EnvKeychain:
    """Credentials from ``REGSHIFT_USERNAME`` + ``REGSHIFT_PASSWORD`` and ``REGSHIFT_TOKEN``.

    They apply to every registry. ``REGSHIFT_TOKEN`` is a registry (bearer) token.
    """

    __slots__ = ("_env",)

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        """Create the keychain.

        Args:
            env: the environment to read; ``os.environ`` (read at each call) when omitted.
        """
        self._env = env

    def __repr__(self) -> str:
        return "EnvKeychain()"

    def resolve(self, registry: str, repository: str | None = None) -> Credential:
        """Return the credential from the environment; see :meth:`Keychain.resolve`.

        Raises:
            AuthError: only one of ``REGSHIFT_USERNAME`` and ``REGSHIFT_PASSWORD`` is set
                (and no ``REGSHIFT_TOKEN``).
        """
        env = os.environ if self._env is None else self._env
        username, password = env.get(ENV_USERNAME, ""), env.get(ENV_PASSWORD, "")
        token = env.get(ENV_TOKEN, "")
        if bool(username) != bool(password) and not token:
            missing = ENV_PASSWORD if username else ENV_USERNAME
            raise AuthError(
                f"{ENV_USERNAME} and {ENV_PASSWORD} must be set together; {missing} is not"
            )
        if not (username and password):
            username = password = ""
        if not (password or token):
            return ANONYMOUS
        return Credential(username, password, registry_token=token, source="env")


class FileKeychain:
    """Credentials from one Docker ``config.json`` or podman ``auth.json``.

    The file is read at every call, so a login made meanwhile is seen at once. A missing
    file has no credentials. ``credHelpers`` (per registry) beats ``credsStore``, which beats
    ``auths``; when a helper has no entry the ``auths`` entry is used.
    """

    __slots__ = ("path",)

    def __init__(self, path: Path | str) -> None:
        """Create the keychain.

        Args:
            path: the auth file; it need not exist.
        """
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileKeychain({str(self.path)!r})"

    def resolve(self, registry: str, repository: str | None = None) -> Credential:
        """Return the file's credential; see :meth:`Keychain.resolve`.

        Raises:
            AuthError: the file is unreadable or not valid JSON, an entry is malformed, or a
                configured credential helper is missing or fails.
        """
        config = load_config(self.path)
        if config is None:
            return ANONYMOUS
        candidates = _candidates(registry, repository)
        host = candidates[-1]
        helper = _helper_name(config, host, self.path)
        if helper:
            credential = _helper_get(helper, _storage_key(host))
            if not credential.is_anonymous:
                return credential
        return _from_auths(config, candidates, self.path)


class ChainKeychain:
    """Ask several keychains in order; the first non-anonymous answer wins."""

    __slots__ = ("keychains",)

    def __init__(self, *keychains: Keychain) -> None:
        """Create the chain.

        Args:
            *keychains: the keychains, most important first.
        """
        self.keychains = keychains

    def __repr__(self) -> str:
        return f"ChainKeychain({', '.join(repr(k) for k in self.keychains)})"

    def resolve(self, registry: str, repository: str | None = None) -> Credential:
        """Return the first credential found; see :meth:`Keychain.resolve`.

        Raises:
            AuthError: a keychain asked before the one with the answer failed.
        """
        for keychain in self.keychains:
            credential = keychain.resolve(registry, repository)
            if not credential.is_anonymous:
                logger.debug("credentials for %s from %s", registry, credential.source)
                return credential
        logger.debug("no credentials for %s; anonymous", registry)
        return ANONYMOUS


def default_keychain(
    env: Mapping[str, str] | None = None, *, system: str | None = None
) -> Keychain:
    """Build the keychain docker, podman and skopeo users expect.

    Order: :class:`EnvKeychain`, ``$REGISTRY_AUTH_FILE``, Docker's config (see
    :func:`docker_config_path`), podman's file (``${XDG_RUNTIME_DIR}/containers/auth.json``
    on Linux, ``~/.config/containers/auth.json`` on macOS and Windows), then
    ``$XDG_CONFIG_HOME/containers/auth.json`` (default ``~/.config``). Missing files are
    skipped.

    Args:
        env: the environment to read; ``os.environ`` when omitted.
        system: the operating system as :data:`sys.platform` spells it; this one by default.

    Returns:
        A :class:`ChainKeychain` over those sources.
    """
    env = os.environ if env is None else env
    system = current_system() if system is None else system
    files = (FileKeychain(path) for path in auth_files(env, system))
    return ChainKeychain(EnvKeychain(env), *files)


def store_credential(
    registry: str,
    username: str,
    password: str,
    *,
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Save a user name and password for a registry, as ``docker login`` does.

    With a credential helper configured for the registry (``credHelpers``, else
    ``credsStore``) the secret goes to ``docker-credential-<name> store`` and the file only
    gets an empty ``auths`` entry; otherwise ``auths[key].auth`` holds base64 of
    ``user:password``. Other keys of the file are kept; older entries for the same registry
    under another spelling (``https://ghcr.io``) are replaced. The file is replaced
    atomically with mode 0600.

    Args:
        registry: registry host; ``docker.io`` is stored under :data:`DOCKER_HUB_KEY`.
        username: user name; must not contain ``:``.
        password: password or access token.
        config_path: the file to update; when omitted ``$REGISTRY_AUTH_FILE`` if set (as
            podman and skopeo do: it is the first file credentials are read from), else
            :func:`docker_config_path`.
        env: environment used to find the default file; ``os.environ`` when omitted.

    Returns:
        Where the secret went: the file path or ``credential helper docker-credential-<name>``.

    Raises:
        AuthError: bad user name or password, unreadable or malformed file, helper failure,
            or the file cannot be written.
    """
    if not username or not password:
        raise AuthError("both a user name and a password are needed")
    if ":" in username:
        raise AuthError("a user name must not contain ':'")
    path = config_target(config_path, env)
    config = load_config(path) or {}
    key = _storage_key(registry)
    host = _normalize_key(key)
    helper = _helper_name(config, host, path)
    auths = _without_host(_section(config, "auths", path), host)
    if helper:
        request = {"ServerURL": key, "Username": username, "Secret": password}
        _run_helper(helper, "store", json.dumps(request))
        auths[key] = {}  # docker keeps an empty entry so `docker login` lists the registry
        where = _helper_source(helper)
    else:
        auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode("ascii")}
        where = str(path)
    config["auths"] = auths
    write_config(path, config)
    return where


def erase_credential(
    registry: str,
    *,
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Forget a registry's credential, as ``docker logout`` does.

    Removes every ``auths`` entry for the registry (any spelling of its key, not
    per-repository keys) and, when a helper is configured, runs ``docker-credential-<name> erase``.

    Args:
        registry: registry host; ``docker.io`` means :data:`DOCKER_HUB_KEY`.
        config_path: the file to update; chosen as for :func:`store_credential`.
        env: environment used to find the default file; ``os.environ`` when omitted.

    Returns:
        Whether anything was removed.

    Raises:
        AuthError: unreadable or malformed file, helper failure, or the file cannot be written.
    """
    path = config_target(config_path, env)
    config = load_config(path)
    if config is None:
        return False
    key = _storage_key(registry)
    host = _normalize_key(key)
    helper = _helper_name(config, host, path)
    removed = bool(helper) and _run_helper(helper, "erase", key, not_found_ok=True) is not None
    auths = _section(config, "auths", path)
    kept = _without_host(auths, host)
    if len(kept) != len(auths):
        config["auths"] = kept
        write_config(path, config)
        removed = True
    return removed


# --- keys -----------------------------------------------------------------------------------


def _canonical_host(host: str) -> str:
    host = host.lower()
    return _DOCKER_HUB if host in _HUB_ALIASES else host


def _normalize_key(key: str) -> str:
    """Reduce a key to ``host[:port]``, or ``host[:port]/path`` for podman per-repository keys.

    A key with a scheme is a URL (``https://index.docker.io/v1/``): only its host counts.
    """
    key = key.strip()
    scheme, sep, rest = key.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        return _canonical_host(rest.split("/", 1)[0])
    host, slash, path = key.rstrip("/").partition("/")
    return _canonical_host(host) + slash + path


def _storage_key(registry: str) -> str:
    """Return the key docker writes for a registry: Docker Hub's legacy URL, else the host."""
    host = _normalize_key(registry).split("/", 1)[0]
    return DOCKER_HUB_KEY if host == _DOCKER_HUB else host


def _candidates(registry: str, repository: str | None) -> list[str]:
    """Return the keys to try, most specific first: ``host/ns/repo``, ``host/ns``, ``host``."""
    host = _normalize_key(registry).split("/", 1)[0]
    parts = [part for part in (repository or "").split("/") if part]
    scoped = [f"{host}/{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)]
    return [*scoped, host]


def _without_host(auths: JSONObject, host: str) -> JSONObject:
    """Return ``auths`` without the entries whose key names ``host``."""
    return {key: entry for key, entry in auths.items() if _normalize_key(key) != host}


# --- files ----------------------------------------------------------------------------------


def _section(config: JSONObject, name: str, path: Path) -> JSONObject:
    """Return the object ``config[name]`` (``auths``, ``credHelpers``), ``{}`` when absent."""
    value = config.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AuthError(f"auth file {path}: {name!r} is not a JSON object")
    return value


def _text(entry: JSONObject, name: str, where: str) -> str:
    value = entry.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AuthError(f"{where}: {name!r} is not a string")
    return value


def _decode_auth(value: str, where: str) -> tuple[str, str]:
    """Split base64 ``user:password`` (the password may contain ``:``)."""
    compact = "".join(value.split())
    try:
        decoded = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        text = decoded.decode("utf-8")
    except ValueError:
        # binascii.Error, UnicodeDecodeError, and the ValueError b64decode raises for
        # non-ASCII text. `from None`: these errors can carry the decoded bytes.
        raise AuthError(f"{where}: 'auth' is not valid base64 of user:password") from None
    username, sep, password = text.partition(":")
    if not sep:
        raise AuthError(f"{where}: 'auth' does not decode to user:password")
    return username, password


def _entry_credential(entry: object, key: str, path: Path) -> Credential:
    """Turn one ``auths`` entry into a credential (``auth`` beats ``username``/``password``)."""
    where = f"auth file {path}, registry {key!r}"
    if not isinstance(entry, dict):
        raise AuthError(f"{where}: entry is not a JSON object")
    auth = _text(entry, "auth", where)
    if auth:
        username, password = _decode_auth(auth, where)
    else:
        username, password = _text(entry, "username", where), _text(entry, "password", where)
    credential = Credential(
        username=username,
        password=password,
        identity_token=_text(entry, "identitytoken", where),
        registry_token=_text(entry, "registrytoken", where),
        source=str(path),
    )
    return ANONYMOUS if credential.is_anonymous else credential


def _from_auths(config: JSONObject, candidates: list[str], path: Path) -> Credential:
    """Return the first non-empty ``auths`` entry among ``candidates``."""
    auths = _section(config, "auths", path)
    index: dict[str, str] = {}
    for raw in auths:
        norm = _normalize_key(raw)
        # Several spellings of one registry: prefer the one docker itself writes.
        if norm not in index or raw == _storage_key(norm):
            index[norm] = raw
    for key in candidates:
        if key in index:
            credential = _entry_credential(auths[index[key]], index[key], path)
            if not credential.is_anonymous:
                return credential
    return ANONYMOUS


# --- credential helpers ---------------------------------------------------------------------


def _helper_name(config: JSONObject, host: str, path: Path) -> str:
    """Return the helper for ``host``: ``credHelpers`` entry, else ``credsStore``, else ``""``.

    As in docker, a ``credHelpers`` entry, even an empty one, hides ``credsStore``.
    """
    for key, name in _section(config, "credHelpers", path).items():
        if _normalize_key(key) == host:
            if not isinstance(name, str):
                raise AuthError(f"auth file {path}: credHelpers[{key!r}] is not a string")
            return name
    store = config.get("credsStore")
    if store is None:
        return ""
    if not isinstance(store, str):
        raise AuthError(f"auth file {path}: 'credsStore' is not a string")
    return store


def _helper_source(name: str) -> str:
    return f"credential helper docker-credential-{name}"


def _run_helper(name: str, action: str, request: str, *, not_found_ok: bool = False) -> str | None:
    """Run ``docker-credential-<name> <action>`` with ``request`` on stdin and return stdout.

    Returns ``None`` when ``not_found_ok`` and the helper says "credentials not found".
    Messages name the helper and exit code only: its output may hold secrets.
    """
    import shutil  # with subprocess: only helpers need them, most runs never import them
    import subprocess

    binary = f"docker-credential-{name}"
    executable = shutil.which(binary)
    if executable is None:
        raise AuthError(f"credential helper {binary} not found on PATH")
    try:
        proc = subprocess.run(
            [executable, action],
            input=request,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # `from None`: TimeoutExpired keeps the partial output.
        raise AuthError(f"credential helper {binary} {action} timed out") from None
    except OSError as exc:
        raise AuthError(f"cannot run credential helper {binary}: {exc.strerror or exc}") from exc
    if proc.returncode == 0:
        return proc.stdout
    if not_found_ok and _NOT_FOUND in (proc.stdout + proc.stderr).lower():
        return None
    raise AuthError(f"credential helper {binary} {action} failed with exit code {proc.returncode}")


def _helper_get(name: str, server: str) -> Credential:
    """Ask a helper for ``server``'s credential; :data:`ANONYMOUS` when it has none."""
    output = _run_helper(name, "get", server, not_found_ok=True)
    if output is None:
        return ANONYMOUS
    source = _helper_source(name)
    try:
        data = json.loads(output)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        raise AuthError(f"{source} get returned malformed JSON") from None
    if not isinstance(data, dict):
        raise AuthError(f"{source} get did not return a JSON object")
    username, secret = data.get("Username") or "", data.get("Secret") or ""
    if not isinstance(username, str) or not isinstance(secret, str):
        raise AuthError(f"{source} get returned a non-string Username or Secret")
    if not secret:
        return ANONYMOUS
    if username == _TOKEN_USERNAME:
        return Credential(identity_token=secret, source=source)
    return Credential(username=username, password=secret, source=source)
