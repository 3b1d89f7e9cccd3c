"""Run a real forward proxy (Debian's ``squid``) on loopback, as a corporate proxy would be.

:class:`SquidProxy` starts ``squid -N`` (foreground, no daemon) on ``127.0.0.1:<free port>``
with its own configuration, logs and service name (so its shared-memory segments are its
own), resolving host names only from a ``hosts_file`` it writes: a registry is reached
through it by a name the machine itself cannot resolve. With ``users`` it demands Basic
proxy authentication (``basic_ncsa_auth``, bcrypt password file).

Its access log (squid's native format) says what went through it::

  1796589329.166 10 127.0.0.1 TCP_MISS/200 279 GET http://registry.regshift.test:5000/v2/ carol ...
  1796589329.231  3 127.0.0.1 TCP_TUNNEL/200 210 CONNECT registry.regshift.test:5000 carol ...

A CONNECT tunnel is logged when it closes, so :meth:`SquidProxy.requests` waits for the log
to settle. Run as root, squid drops to ``cache_effective_user`` (``proxy``), so the working
directory is a fresh one in the system temporary directory owned by that user.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import bcrypt

__all__ = ["ProxiedRequest", "SquidProxy", "SquidStartError"]

STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
_SETTLE_INTERVAL = 0.1
_BCRYPT_ROUNDS = 4  # the proxy checks the password on every request: keep it cheap
_AUTH_HELPER = "/usr/lib/squid/basic_ncsa_auth"


class SquidStartError(RuntimeError):
    """squid did not come up; the message carries the tail of its log."""


@dataclass(frozen=True, slots=True)
class ProxiedRequest:
    """One access-log line: ``CONNECT host:port`` or ``GET http://host:port/path``."""

    method: str
    url: str
    status: int
    user: str
    result: str  # e.g. TCP_TUNNEL, TCP_MISS, TCP_DENIED


class SquidProxy:
    """A squid forward proxy on loopback.

    Args:
        hosts: ``{name: address}`` squid resolves (and nothing else).
        users: ``{user: password}`` to demand proxy authentication; ``None``: open proxy.
        binary: the squid executable.
    """

    def __init__(
        self,
        hosts: Mapping[str, str],
        *,
        users: Mapping[str, str] | None = None,
        binary: str = "squid",
    ) -> None:
        self.hosts = dict(hosts)
        self.users = dict(users) if users is not None else None
        self.binary = binary
        self.directory = Path(tempfile.mkdtemp(prefix="regshift-squid-"))
        self.access_log = self.directory / "access.log"
        self.cache_log = self.directory / "cache.log"
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("squid not started")
        return self._port

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """``http://[user:password@]127.0.0.1:PORT``, a value for ``HTTPS_PROXY``."""
        auth = f"{user}:{password}@" if user is not None else ""
        return f"http://{auth}{self.address}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = STARTUP_TIMEOUT) -> SquidProxy:
        """Write the configuration, start squid and wait until it accepts connections.

        Raises:
            SquidStartError: it exited or did not listen within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        for _attempt in range(3):  # another process may take the free port first
            self._port = _free_port()
            self._write_files()
            self.cache_log.unlink(missing_ok=True)
            process = self._spawn()
            while not self._accepting():
                if process.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            else:
                return self
            self.stop(keep=True)
            if "Address already in use" not in self.log_tail():
                break
        raise SquidStartError(f"squid did not start (in {self.directory}):\n{self.log_tail()}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        with (self.directory / "squid.out").open("wb") as out:
            self._process = subprocess.Popen(
                # -n: a service name of its own, so parallel squids share no shm segment
                [self.binary, "-N", "-n", f"regshift{secrets.token_hex(4)}", "-f", self._conf],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        return self._process

    def stop(self, timeout: float = STOP_TIMEOUT, *, keep: bool = False) -> None:
        """Terminate squid (SIGTERM, SIGKILL after ``timeout`` s) and remove its directory
        (unless ``keep``); idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if not keep:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SquidProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of squid's own log."""
        try:
            text = self.cache_log.read_text(errors="replace")
        except FileNotFoundError:
            text = (self.directory / "squid.out").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- what went through -----------------------------------------------------------------

    def requests(self, settle: float = 1.0) -> list[ProxiedRequest]:
        """Every request logged so far, once the log has not grown for ``settle`` seconds
        (tunnels are logged when they close, just after the client's pool does)."""
        text, quiet_since = self._read_log(), time.monotonic()
        while time.monotonic() - quiet_since < settle:
            time.sleep(_SETTLE_INTERVAL)
            again = self._read_log()
            if again != text:
                text, quiet_since = again, time.monotonic()
        parsed = (_parse(line) for line in text.splitlines() if line.strip())
        return [r for r in parsed if r.method != "-"]  # "-": a connection without a request

    def _read_log(self) -> str:
        try:
            return self.access_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- configuration ---------------------------------------------------------------------

    @property
    def _conf(self) -> str:
        return str(self.directory / "squid.conf")

    def _write_files(self) -> None:
        d = self.directory
        (d / "hosts").write_text("".join(f"{ip} {name}\n" for name, ip in self.hosts.items()))
        lines = [
            f"http_port 127.0.0.1:{self.port}",
            f"pid_filename {d / 'squid.pid'}",
            f"cache_log {self.cache_log}",
            f"access_log stdio:{self.access_log}",
            f"coredump_dir {d}",
            f"hosts_file {d / 'hosts'}",
            # Names come from hosts_file only: the DNS server it would ask does not exist.
            "dns_nameservers 127.0.0.1",
            "udp_outgoing_address 127.0.0.1",
            "visible_hostname regshift-test-proxy",
            "cache deny all",
            "cache_mem 8 MB",
            "pinger_enable off",
            "netdb_filename none",
            "logfile_rotate 0",
            "shutdown_lifetime 0 seconds",
        ]
        if self.users is not None:
            passwd = d / "passwd"
            passwd.write_text("".join(f"{u}:{_bcrypt(pw)}\n" for u, pw in self.users.items()))
            lines += [
                f"auth_param basic program {_AUTH_HELPER} {passwd}",
                "auth_param basic children 2 startup=1",
                "auth_param basic realm regshift-test-proxy",
                "acl authenticated proxy_auth REQUIRED",
                "http_access allow authenticated",
            ]
        else:
            lines.append("http_access allow localhost")
        lines.append("http_access deny all")
        root = os.geteuid() == 0
        if root:  # squid refuses to run as root: it switches to this user
            lines.append("cache_effective_user proxy")
        (d / "squid.conf").write_text("\n".join(lines) + "\n")
        if root:
            entry = pwd.getpwnam("proxy")
            for path in (d, *d.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def _accepting(self) -> bool:
        try:
            log = self.cache_log.read_text(errors="replace")
        except FileNotFoundError:
            return False
        if "Accepting HTTP Socket connections" not in log:
            return False
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0


def _parse(line: str) -> ProxiedRequest:
    # time elapsed client result/status bytes method URL user hierarchy/peer type
    fields = line.split()
    result, _, status = fields[3].partition("/")
    return ProxiedRequest(
        method=fields[5], url=fields[6], status=int(status), user=fields[7], result=result
    )


def _bcrypt(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=_BCRYPT_ROUNDS)).decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
