"""Run the real CNCF distribution registry (``docker-registry serve``) on loopback.

One :class:`RegistryServer` is one registry process with its own temporary storage,
configuration and log files, in one of four variants: open, htpasswd basic auth, token
auth (with a :class:`~harness.tokenserver.TokenServer`) and TLS. The same class runs
distribution 3 (``registry3 serve``, built by ``scripts/peers``): its configuration file
(version 0.1) and its access log are those of 2.8. :class:`RefregServer` runs refreg,
go-containerregistry's in-memory registry with the referrers API, which writes the same
access-log lines.

Request accounting reads the registry's access log. Distribution writes one Combined Log
Format line per request to stdout, e.g.::

  127.0.0.1 - - [27/Nov/2026:03:29:17 +0000] "HEAD /v2/x/y/blobs/sha256:… HTTP/1.1" 404 157 "" "ua"

The user field is always ``-`` (even with basic auth), the referer is ``""`` when absent,
the request target keeps its query string, and for ``HEAD`` the byte count is what the
handler wrote (the would-be body size), not what went on the wire. A line is written after
the handler returns, so it can trail the client's view of the response by a moment:
:meth:`RegistryServer.requests` waits until the log stops growing.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import bcrypt

from . import pki

if TYPE_CHECKING:
    from .tokenserver import TokenServer

__all__ = [
    "MATRIX",
    "LoggedRequest",
    "RefregServer",
    "RegistryServer",
    "RegistryStartError",
    "parse_access_log_line",
]

BASIC_REALM = "regshift-test"
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
# bcrypt cost 4 is the minimum Go's x/crypto/bcrypt accepts. The registry verifies the
# password on every request, so the default cost (12, ~250 ms) would slow every call.
_BCRYPT_ROUNDS = 4
_SETTLE_INTERVAL = 0.05
_SETTLE_TIMEOUT = 5.0

_ACCESS_LOG_RE = re.compile(
    r"^(?P<remote>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "
    r'"(?P<method>\S+) (?P<target>\S+) (?P<protocol>[^"]+)" '
    r"(?P<status>\d{3}) (?P<size>\d+|-) "
    r'"(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)"$'
)

MATRIX = ("distribution-2.8", "distribution-3", "refreg")
"""The open registry implementations the matrix tests run against (``RegistryServer.name``):
``docker-registry`` from Debian, ``registry3`` and refreg from ``scripts/peers``."""

_live_servers: weakref.WeakSet[RegistryServer] = weakref.WeakSet()


class RegistryStartError(RuntimeError):
    """The registry process did not come up; the message carries the tail of its logs."""


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One access-log line. ``path`` is the request target as logged, query string included."""

    method: str
    path: str
    status: int
    bytes_sent: int
    protocol: str = "HTTP/1.1"
    user_agent: str = ""
    line: str = ""

    @property
    def route(self) -> str:
        """The path without its query string."""
        return self.path.partition("?")[0]


def parse_access_log_line(line: str) -> LoggedRequest:
    """Parse one Combined Log Format line as distribution writes it.

    Raises:
        ValueError: the line is not in that format.
    """
    match = _ACCESS_LOG_RE.match(line.rstrip("\r\n"))
    if match is None:
        raise ValueError(f"not a Combined Log Format line: {line!r}")
    size = match["size"]
    return LoggedRequest(
        method=match["method"],
        path=match["target"],
        status=int(match["status"]),
        bytes_sent=0 if size == "-" else int(size),
        protocol=match["protocol"],
        user_agent=match["agent"].replace('\\"', '"'),
        line=match.group(0),
    )


class RegistryServer:
    """A ``docker-registry serve`` process on ``127.0.0.1:<free port>``.

    Args:
        directory: where config, storage and logs go; a fresh temporary directory (removed
            by :meth:`stop`) when ``None``.
        htpasswd: ``{user: password}`` enables ``auth.htpasswd`` (bcrypt file, realm
            ``regshift-test``).
        token: a started :class:`~harness.tokenserver.TokenServer` enables ``auth.token``
            (realm = its ``/token`` URL, its service, issuer and signing certificate).
        tls: serve HTTPS with a certificate for ``127.0.0.1``/``localhost`` signed by a
            throw-away CA whose PEM is :attr:`ca_file`.
        delete: ``storage.delete.enabled``; without it every DELETE is 405 UNSUPPORTED.
        binary: the registry executable (``docker-registry`` is 2.8; ``registry3`` is 3.x).
        name: what the registry is, for test ids and messages.

    Call :meth:`start` (returns ``self``), then :meth:`stop`.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        htpasswd: Mapping[str, str] | None = None,
        token: TokenServer | None = None,
        tls: bool = False,
        delete: bool = True,
        binary: str = "docker-registry",
        name: str = "distribution-2.8",
    ) -> None:
        if htpasswd is not None and token is not None:
            raise ValueError("choose htpasswd or token auth, not both")
        self._owns_directory = directory is None
        self.directory = (
            Path(tempfile.mkdtemp(prefix="regshift-registry-")) if directory is None else directory
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.htpasswd: dict[str, str] | None = dict(htpasswd) if htpasswd is not None else None
        self.token_server = token
        self.tls = tls
        self.delete = delete  # distribution's storage.delete.enabled
        self.binary = binary
        self.name = name
        self.storage_dir = self.directory / "storage"
        self.config_file = self.directory / "config.yml"
        self.access_log = self.directory / "access.log"
        self.error_log = self.directory / "registry.log"
        self._tls_files: pki.ServerTLS | None = None
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._mark = 0

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("registry not started")
        return self._port

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` or ``https://…`` with ``tls=True``; no trailing slash."""
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def ca_file(self) -> Path | None:
        """PEM of the CA that signed the server certificate (``None`` without TLS)."""
        return self._tls_files.ca_file if self._tls_files is not None else None

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context trusting :attr:`ca_file` (``None`` without TLS)."""
        if self._tls_files is None:
            return None
        return ssl.create_default_context(cafile=str(self._tls_files.ca_file))

    @property
    def username(self) -> str | None:
        """The first configured user (htpasswd, or the token server's), if any."""
        users = self._users()
        return next(iter(users), None)

    @property
    def password(self) -> str | None:
        users = self._users()
        return next(iter(users.values()), None)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _users(self) -> Mapping[str, str]:
        if self.htpasswd is not None:
            return self.htpasswd
        if self.token_server is not None:
            return self.token_server.users
        return {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = STARTUP_TIMEOUT) -> RegistryServer:
        """Write the config, start the process and wait until ``GET /v2/`` answers.

        A free port is picked by binding port 0; if another process takes it before the
        registry binds, the start is retried on a new port.

        Raises:
            RegistryStartError: no answer within ``timeout`` seconds, or the process exited.
                The directory (logs, config) is kept for inspection; :meth:`stop` removes it.
        """
        if self._process is not None:
            raise RuntimeError("registry already started")
        if self.tls and self._tls_files is None:
            self._tls_files = pki.make_server_tls(self.directory / "tls")
        if self.htpasswd is not None:
            self._write_htpasswd()
        deadline = time.monotonic() + timeout
        for attempt in range(3):
            self._port = _free_port()
            self._write_config()
            self._spawn()
            try:
                self._wait_ready(deadline)
            except _PortTaken:
                self._reap()
                if attempt == 2:
                    raise RegistryStartError(self._failure("port kept being taken")) from None
                continue
            except BaseException:
                self._reap()
                raise
            _live_servers.add(self)
            return self
        raise AssertionError("unreachable")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Terminate the process (SIGTERM, SIGKILL after ``timeout`` s); idempotent.

        Removes the directory only if the server created it itself.
        """
        self._reap(timeout)
        _live_servers.discard(self)
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _reap(self, timeout: float = STOP_TIMEOUT) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _spawn(self) -> None:
        # The child inherits its own copies of the descriptors; ours close right away.
        # Truncate: a retry on another port starts the logs afresh.
        with self.access_log.open("wb") as out, self.error_log.open("wb") as err:
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.directory,
                # distribution 3 exports OpenTelemetry traces, by default over OTLP to
                # localhost:4318 (errors in its log when nothing listens there): off.
                env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
            )
        self._mark = 0

    def _command(self) -> list[str]:
        return [self.binary, "serve", str(self.config_file)]

    def _listening(self) -> str:
        """What the process writes to stderr once it listens on our port."""
        return f'msg="listening on 127.0.0.1:{self._port}'

    def _wait_ready(self, deadline: float) -> None:
        # Wait for our own process to report the listener before polling the port, so a
        # stranger that grabbed the port between _free_port() and bind() is never mistaken
        # for our registry.
        listening = self._listening()
        context = self.ssl_context
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                if "address already in use" in self._read_error_log():
                    raise _PortTaken
                raise RegistryStartError(
                    self._failure(f"{self.name} exited with status {self._process.returncode}")
                )
            if listening in self._read_error_log() and _answers(self.port, context):
                return
            if time.monotonic() > deadline:
                raise RegistryStartError(self._failure("no answer to GET /v2/ in time"))
            time.sleep(0.02)

    def _read_error_log(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _failure(self, reason: str) -> str:
        return f"{reason} (registry at {self.directory})\n{self.logs_tail()}"

    def logs_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the registry's own log and of the access log."""
        parts = []
        for label, path in (("registry log", self.error_log), ("access log", self.access_log)):
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                text = "(missing)"
            parts.append(f"--- {label} ({path}):\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts)

    # -- configuration ---------------------------------------------------------------------

    def _write_htpasswd(self) -> None:
        assert self.htpasswd is not None
        lines = []
        for user, password in self.htpasswd.items():
            if ":" in user:
                raise ValueError(f"htpasswd user names cannot contain ':': {user!r}")
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=_BCRYPT_ROUNDS))
            lines.append(f"{user}:{hashed.decode()}\n")
        (self.directory / "htpasswd").write_text("".join(lines))

    def _config(self) -> dict[str, object]:
        http_section: dict[str, object] = {
            "addr": f"127.0.0.1:{self.port}",
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self._tls_files is not None:
            http_section["tls"] = {
                "certificate": str(self._tls_files.cert_file),
                "key": str(self._tls_files.key_file),
            }
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": self.delete},
            },
            "http": http_section,
            "health": {"storagedriver": {"enabled": False}},
            # Accept foreign (non-distributable) layers by URL, as registries serving
            # Windows images do; distribution then does not require their blobs.
            "validation": {"manifests": {"urls": {"allow": ["^https?://"]}}},
        }
        if self.htpasswd is not None:
            config["auth"] = {
                "htpasswd": {"realm": BASIC_REALM, "path": str(self.directory / "htpasswd")}
            }
        elif self.token_server is not None:
            ts = self.token_server
            config["auth"] = {
                "token": {
                    "realm": ts.realm,
                    "service": ts.service,
                    "issuer": ts.issuer,
                    "rootcertbundle": str(ts.cert_file),
                }
            }
        return config

    def _write_config(self) -> None:
        # JSON is YAML: no YAML library needed, and every string is quoted.
        self.config_file.write_text(json.dumps(self._config(), indent=2) + "\n")

    # -- request accounting ----------------------------------------------------------------

    def mark(self) -> None:
        """Remember the end of the access log; :meth:`requests` then reports only later lines.

        Waits for the log to settle first, so lines of requests that already finished are
        not attributed to the period after the mark.
        """
        self._mark = len(self._settled_log())

    def requests(self, since_mark: bool = True) -> list[LoggedRequest]:
        """Parse the access log (after the :meth:`mark` by default), once it has settled.

        The registry writes a line after its handler returns, in the request's goroutine;
        the log counts as settled when two reads 50 ms apart are equal and end in a newline.

        Raises:
            ValueError: a line is not in Combined Log Format.
        """
        data = self._settled_log()
        if since_mark:
            data = data[self._mark :]
        return [parse_access_log_line(line) for line in data.decode().splitlines() if line]

    def count(
        self,
        method: str | None = None,
        path_contains: str | None = None,
        *,
        status: int | None = None,
        since_mark: bool = True,
    ) -> int:
        """Count logged requests matching every given filter (``method`` case-insensitive)."""
        return sum(
            1
            for r in self.requests(since_mark=since_mark)
            if (method is None or r.method == method.upper())
            and (path_contains is None or path_contains in r.path)
            and (status is None or r.status == status)
        )

    def _settled_log(self) -> bytes:
        deadline = time.monotonic() + _SETTLE_TIMEOUT
        previous = self.access_log.read_bytes()
        while True:
            time.sleep(_SETTLE_INTERVAL)
            current = self.access_log.read_bytes()
            if current == previous and (not current or current.endswith(b"\n")):
                return current
            if time.monotonic() > deadline:
                raise RuntimeError(f"access log {self.access_log} did not settle")
            previous = current

    def __repr__(self) -> str:
        variant = "tls" if self.tls else "http"
        if self.htpasswd is not None:
            variant += "+htpasswd"
        elif self.token_server is not None:
            variant += "+token"
        where = self.host if self._port is not None else "not started"
        return f"<{type(self).__name__} {self.name} {variant} {where}>"


class RefregServer(RegistryServer):
    """refreg (``tests/peers/refreg``): go-containerregistry's ``pkg/registry`` with the OCI
    1.1 referrers API, on loopback, no auth, manifests in memory (blobs too, unless
    ``disk``).

    What it does differently from distribution, as of go-containerregistry v0.22.1:
    ``GET /v2/<name>/referrers/<digest>`` lists every manifest whose ``subject`` is the
    digest, in one page, ignoring ``artifactType`` (no ``OCI-Filters-Applied``) and giving
    each entry the ``config.mediaType`` as its ``artifactType``; a mount (``POST
    ?mount=&from=``) is never done (202, a new upload session); blobs are stored per
    registry, not per repository, so every repository "has" every blob; ``DELETE`` of a
    tag removes the tag. ``oci_subject`` starts it with ``-oci-subject``: a manifest PUT
    with a ``subject`` is answered with ``OCI-Subject``, which the spec requires.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        binary: str,
        oci_subject: bool = True,
        disk: bool = False,
    ) -> None:
        super().__init__(directory, binary=binary, name="refreg")
        self.oci_subject = oci_subject
        self.disk = disk

    def _command(self) -> list[str]:
        command = [self.binary, "-address", f"127.0.0.1:{self._port}"]
        if self.oci_subject:
            command.append("-oci-subject")
        if self.disk:
            self.storage_dir.mkdir(exist_ok=True)  # refreg does not create it
            command += ["-disk", str(self.storage_dir)]
        return command

    def _listening(self) -> str:
        return f"serving on 127.0.0.1:{self._port}"

    def _write_config(self) -> None:
        pass  # flags only


class _PortTaken(Exception):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int, context: ssl.SSLContext | None) -> bool:
    """Whether ``GET /v2/`` gets any HTTP response."""
    conn: http.client.HTTPConnection
    if context is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/v2/")
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live_servers):
        with contextlib.suppress(Exception):
            server.stop()
