"""A token server for distribution's ``auth.token``, issuing real signed JWTs.

It implements the Docker token protocol the registry's ``WWW-Authenticate: Bearer`` challenge
points at:

* ``GET /token?service=…&scope=…[&scope=…][&offline_token=true]`` with optional Basic auth;
* ``POST /token`` (OAuth2 form body) with ``grant_type=password`` (``username``,
  ``password``, optional ``access_type=offline`` for a ``refresh_token``) or
  ``grant_type=refresh_token`` (``refresh_token``, ``client_id``).

Policy: a known user with the right password gets every action asked for on every resource;
an anonymous client gets only ``pull`` on repositories whose name starts with one of
``anonymous_pull_prefixes``; a wrong password, unknown user or unknown refresh token gets 401.
Scopes the client may not have are left out of the token (not an error), as Docker's token
servers do; the registry then answers 401 ``insufficient_scope``.

Distribution 2.8 accepts the token because the JOSE header's ``kid`` is the libtrust
fingerprint of the key whose certificate is the registry's ``rootcertbundle``, and it checks
``iss``, ``aud``, ``exp`` and ``nbf``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from . import pki

__all__ = ["AccessEntry", "TokenRequest", "TokenServer", "parse_scope"]

DEFAULT_ISSUER = "regshift-test-issuer"
DEFAULT_SERVICE = "regshift-registry"

AccessEntry = dict[str, Any]
"""One ``access`` claim entry: ``{"type": …, "name": …, "actions": [...]}``."""


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One request the token server answered (successfully or not).

    ``user`` is the authenticated user (``None`` for anonymous or failed authentication);
    ``grant_type`` is ``None`` for ``GET``; ``granted`` is the token's ``access`` claim
    (empty when refused); ``status`` is the HTTP status returned.
    """

    method: str
    scopes: list[str]
    user: str | None
    grant_type: str | None
    granted: list[AccessEntry]
    status: int = 200
    service: str | None = None
    client_id: str | None = None
    offline: bool = False


@dataclass(frozen=True, slots=True)
class _Scope:
    type: str
    name: str
    actions: tuple[str, ...]


def parse_scope(scope: str) -> _Scope:
    """Parse ``type:name:actions``; the name may itself contain ``:`` (``host:5000/repo``).

    Raises:
        ValueError: fewer than three parts.
    """
    type_, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not type_ or not name:
        raise ValueError(f"malformed scope {scope!r}")
    return _Scope(type_, name, tuple(a for a in actions.split(",") if a))


class _HTTPError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass
class _Reply:
    body: dict[str, Any]
    user: str | None
    granted: list[AccessEntry] = field(default_factory=list)


class TokenServer:
    """Token service on ``127.0.0.1:<free port>`` in a daemon thread.

    Args:
        users: ``{user: password}``.
        anonymous_pull_prefixes: repository-name prefixes anonymous clients may pull.
        token_lifetime: seconds; ``exp - iat`` and the ``expires_in`` of responses.
        algorithm: ``RS256`` (RSA 2048) or ``ES256`` (P-256).
        issuer, service: the registry's ``auth.token.issuer`` / ``service``.
        directory: where the signing certificate goes; a temporary directory (removed by
            :meth:`stop`) when ``None``.
        realm_host: the host its URL (and so the realm) names; it always listens on
            ``127.0.0.1`` (another name is one a test proxy maps there).

    Call :meth:`start` (returns ``self``), then :meth:`stop`.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        anonymous_pull_prefixes: Sequence[str] = ("public/",),
        token_lifetime: int = 300,
        algorithm: pki.SigningAlgorithm = "RS256",
        issuer: str = DEFAULT_ISSUER,
        service: str = DEFAULT_SERVICE,
        directory: Path | None = None,
        realm_host: str = "127.0.0.1",
    ) -> None:
        self.users: dict[str, str] = dict(users or {})
        self.realm_host = realm_host
        self.anonymous_pull_prefixes = tuple(anonymous_pull_prefixes)
        self.token_lifetime = token_lifetime
        self.issuer = issuer
        self.service = service
        self._owns_directory = directory is None
        self.directory = (
            Path(tempfile.mkdtemp(prefix="regshift-token-")) if directory is None else directory
        )
        self.signing = pki.make_token_signing(self.directory, algorithm)
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        self._refresh_tokens: dict[str, str] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- addresses -------------------------------------------------------------------------

    @property
    def cert_file(self) -> Path:
        """PEM certificate of the signing key: the registry's ``rootcertbundle``."""
        return self.signing.cert_file

    @property
    def kid(self) -> str:
        return self.signing.kid

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``realm_host`` in place of the address)."""
        if self._httpd is None:
            raise RuntimeError("token server not started")
        return f"http://{self.realm_host}:{self._httpd.server_address[1]}"

    @property
    def realm(self) -> str:
        """The token endpoint, ``{url}/token``: the registry's ``auth.token.realm``."""
        return f"{self.url}/token"

    @property
    def username(self) -> str | None:
        return next(iter(self.users), None)

    @property
    def password(self) -> str | None:
        return next(iter(self.users.values()), None)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> TokenServer:
        if self._httpd is not None:
            raise RuntimeError("token server already started")
        handler = type("_BoundHandler", (_Handler,), {"token_server": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"token-server-{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down; idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- recording -------------------------------------------------------------------------

    @property
    def requests(self) -> list[TokenRequest]:
        """A snapshot of the requests answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget recorded requests (refresh tokens stay valid)."""
        with self._lock:
            self._requests.clear()

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # -- tokens ----------------------------------------------------------------------------

    def issue_refresh_token(self, user: str) -> str:
        """Create a refresh token for ``user`` (who must exist)."""
        if user not in self.users:
            raise KeyError(f"unknown user {user!r}")
        refresh = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[refresh] = user
        return refresh

    def grant(self, user: str | None, scopes: Iterable[str]) -> list[AccessEntry]:
        """The ``access`` claim the policy gives ``user`` (``None``: anonymous) for ``scopes``.

        Entries for the same type and name are merged; unparsable scopes are ignored.
        """
        merged: dict[tuple[str, str], list[str]] = {}
        for raw in scopes:
            try:
                scope = parse_scope(raw)
            except ValueError:
                continue
            allowed = [a for a in scope.actions if self._allowed(user, scope, a)]
            if not allowed:
                continue
            actions = merged.setdefault((scope.type, scope.name), [])
            actions.extend(a for a in allowed if a not in actions)
        return [{"type": t, "name": n, "actions": a} for (t, n), a in merged.items()]

    def _allowed(self, user: str | None, scope: _Scope, action: str) -> bool:
        if user is not None:
            return True
        return (
            scope.type == "repository"
            and action == "pull"
            and scope.name.startswith(self.anonymous_pull_prefixes)
        )

    def make_jwt(
        self,
        access: list[AccessEntry],
        *,
        subject: str = "",
        lifetime: int | None = None,
        issued_at: float | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> str:
        """Sign a registry token; the keyword arguments allow deliberately bad tokens."""
        now = int(time.time() if issued_at is None else issued_at)
        claims = {
            "iss": self.issuer if issuer is None else issuer,
            "sub": subject,
            "aud": self.service if audience is None else audience,
            "exp": now + (self.token_lifetime if lifetime is None else lifetime),
            "nbf": now,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        header = {"typ": "JWT", "alg": self.signing.algorithm, "kid": self.signing.kid}
        signing_input = _b64(_json(header)) + "." + _b64(_json(claims))
        return signing_input + "." + _b64(self._sign(signing_input.encode("ascii")))

    def _sign(self, data: bytes) -> bytes:
        key = self.signing.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        der = key.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)  # JWS wants raw R || S, 32 bytes each for P-256
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def _token_body(self, user: str | None, scopes: list[str]) -> _Reply:
        granted = self.grant(user, scopes)
        now = time.time()
        token = self.make_jwt(granted, subject=user or "", issued_at=now)
        issued = dt.datetime.fromtimestamp(int(now), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "token": token,
            "access_token": token,
            "expires_in": self.token_lifetime,
            "issued_at": issued,
        }
        return _Reply(body, user, granted)

    # -- protocol --------------------------------------------------------------------------

    def _authenticate(self, username: str, password: str) -> str:
        if self.users.get(username) != password or not password:
            raise _HTTPError(401, "unauthorized", "invalid username or password")
        return username

    def _handle_get(self, query: dict[str, list[str]], authorization: str | None) -> _Reply:
        user = None
        if authorization is not None:
            username, password = _parse_basic(authorization)
            user = self._authenticate(username, password)
        reply = self._token_body(user, _scopes(query))
        if _first(query, "offline_token") == "true" and user is not None:
            reply.body["refresh_token"] = self.issue_refresh_token(user)
        return reply

    def _handle_post(self, form: dict[str, list[str]]) -> _Reply:
        grant_type = _first(form, "grant_type")
        scopes = _scopes(form)
        if grant_type == "password":
            user = self._authenticate(
                _first(form, "username") or "", _first(form, "password") or ""
            )
            reply = self._token_body(user, scopes)
            if _first(form, "access_type") == "offline":
                reply.body["refresh_token"] = self.issue_refresh_token(user)
            return reply
        if grant_type == "refresh_token":
            refresh = _first(form, "refresh_token") or ""
            with self._lock:
                owner = self._refresh_tokens.get(refresh)
            if owner is None:
                raise _HTTPError(401, "invalid_grant", "unknown refresh token")
            reply = self._token_body(owner, scopes)
            reply.body["refresh_token"] = refresh
            return reply
        raise _HTTPError(400, "unsupported_grant_type", f"unsupported grant_type {grant_type!r}")


class _Handler(BaseHTTPRequestHandler):
    token_server: TokenServer
    protocol_version = "HTTP/1.1"
    server_version = "regshift-test-token-server"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        auth = self.headers.get("Authorization")
        self._serve(
            "GET",
            url.path,
            query,
            lambda: self.token_server._handle_get(query, auth),
        )

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(411, {"error": "invalid_request", "error_description": "length required"})
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", errors="replace")
        form = urllib.parse.parse_qs(raw, keep_blank_values=True)
        self._serve(
            "POST",
            url.path,
            form,
            lambda: self.token_server._handle_post(form),
        )

    def _serve(
        self,
        method: str,
        path: str,
        params: dict[str, list[str]],
        handle: Callable[[], _Reply],
    ) -> None:
        def record(status: int, reply: _Reply | None = None) -> None:
            self.token_server._record(
                TokenRequest(
                    method=method,
                    scopes=_scopes(params),
                    user=reply.user if reply is not None else None,
                    grant_type=_first(params, "grant_type") if method == "POST" else None,
                    granted=reply.granted if reply is not None else [],
                    status=status,
                    service=_first(params, "service"),
                    client_id=_first(params, "client_id"),
                    offline=_first(params, "access_type") == "offline"
                    or _first(params, "offline_token") == "true",
                )
            )

        if path.rstrip("/") != "/token":
            record(404)
            self._send(404, {"error": "not_found", "error_description": f"no route {path}"})
            return
        try:
            reply = handle()
        except _HTTPError as exc:
            record(exc.status)
            headers = {}
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="regshift-test-token-server"'
            self._send(
                exc.status, {"error": exc.error, "error_description": exc.description}, headers
            )
            return
        record(200, reply)
        self._send(200, reply.body)

    def _send(self, status: int, body: dict[str, Any], headers: Mapping[str, str] = {}) -> None:
        data = _json(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _parse_basic(authorization: str) -> tuple[str, str]:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise _HTTPError(401, "unauthorized", f"unsupported authorization scheme {scheme!r}")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _HTTPError(401, "unauthorized", "malformed basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise _HTTPError(401, "unauthorized", "malformed basic credentials")
    return username, password


def _scopes(params: Mapping[str, list[str]]) -> list[str]:
    # Several `scope` parameters, and OAuth2's space-separated list inside one, both occur.
    return [s for value in params.get("scope", []) for s in value.split()]


def _first(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
