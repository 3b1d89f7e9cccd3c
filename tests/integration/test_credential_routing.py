"""Credentials go to the registry's own origin only: never to another host a redirect or an
upload ``Location`` names, never to a token server's redirect target, never over plain HTTP.

Each test stands up "another host" (or a plain-HTTP listener) and asserts it heard no secret.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from regshift.sample import random_image

from harness.proxy import FaultProxy, HeaderRecorder, Redirect, Respond, Rule
from harness.registry import RegistryServer
from support import SECRETS, run_cli, seed, write_docker_config

# --------------------------------------------------------------------------------------------
# leak 2: an upload POST redirected to another host that names itself in the Location
# --------------------------------------------------------------------------------------------


def test_redirected_upload_location_gets_no_credentials(
    monkeypatch: pytest.MonkeyPatch,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    basic_registry: RegistryServer,
    repo_name: str,
) -> None:
    user, password = basic_registry.username, basic_registry.password
    assert user and password
    SECRETS.add(password)
    monkeypatch.setenv("REGSHIFT_USERNAME", user)
    monkeypatch.setenv("REGSHIFT_PASSWORD", password)
    src = seed(open_registry.host, repo_name, "v1", random_image(seed=4101))
    with FaultProxy(other_registry.host) as elsewhere, FaultProxy(basic_registry.host) as dst:
        # The other host accepts the upload and names itself (relative Location) for the rest.
        elsewhere.add_rule(
            Rule(
                method="POST",
                path="/blobs/uploads/",
                action=Respond(202, [("Location", "/v2/stolen/blobs/uploads/1"), ("Range", "0-0")]),
            )
        )
        elsewhere.add_rule(Rule(action=Respond(500)))
        dst.add_rule(
            Rule(
                method="POST",
                path="/blobs/uploads/",
                action=Redirect(f"{elsewhere.url}/v2/x/blobs/uploads/"),
            )
        )
        result = run_cli("copy", "--retries", "0", str(src), f"{dst.host}/{repo_name}:v1")
        heard = [(r.method, r.path, "authorization" in r.headers) for r in elsewhere.requests]
    assert result.code != 0
    assert heard, "the redirect was not followed at all: the test proves nothing"
    assert [h for h in heard if h[2]] == [], f"the other host got credentials: {heard}"
    assert [h for h in heard if h[0] in ("PATCH", "PUT")] == [], f"uploaded elsewhere: {heard}"


# --------------------------------------------------------------------------------------------
# leak 3: the OAuth2 refresh-token POST redirected (307/308) to another host
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [307, 308])
def test_token_server_redirect_does_not_forward_the_refresh_token(
    status: int, open_registry: RegistryServer, repo_name: str
) -> None:
    refresh = "rt-credential-routing-" + "9" * 12
    SECRETS.add(refresh)
    with (
        HeaderRecorder() as elsewhere,
        FaultProxy(open_registry.host) as token_server,
        FaultProxy(open_registry.host) as registry,
    ):
        token_server.add_rule(Rule(action=elsewhere.redirect("/collect", status)))
        challenge = f'Bearer realm="{token_server.url}/token",service="routing"'
        registry.add_rule(Rule(action=Respond(401, [("WWW-Authenticate", challenge)])))
        write_docker_config({"auths": {registry.host: {"identitytoken": refresh}}})
        result = run_cli("digest", f"{registry.host}/{repo_name}:v1")
        heard = list(elsewhere.requests)
        posts = [r for r in token_server.requests if r.method == "POST"]
    assert posts, "no OAuth2 POST was sent: the test proves nothing"
    leaked = [
        (r.method, r.path)
        for r in heard
        if refresh in r.body.decode("latin-1")
        or refresh in urllib.parse.unquote(r.path)
        or any(refresh in v for v in r.headers.values())
    ]
    assert leaked == [], f"the redirect target got the refresh token: {leaked}"
    assert heard == [], "the token request's redirect must not be followed"
    assert result.code == 3
    assert "redirect" in result.stderr


# --------------------------------------------------------------------------------------------
# leak 4: an HTTPS registry pointing the upload at plain HTTP on its own host and port
# --------------------------------------------------------------------------------------------

_TLS_NAME = "127.1"  # resolves to 127.0.0.1, yet regshift does not treat it as loopback
_PLAIN_USER = ("carol", "carol-routing-pw-55")
_ACCESS = "at-routing-access-" + "1" * 12
_REGISTRY_TOKEN = "rg-routing-registry-" + "3" * 12


def _write_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for the DNS name ``127.1``."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "routing test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _TLS_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(_TLS_NAME)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class _DualHandler(BaseHTTPRequestHandler):
    """A token-auth "registry" that answers the upload POST with a plain-HTTP Location."""

    protocol_version = "HTTP/1.1"
    server: _DualServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        auth = self.headers.get("Authorization", "")
        tls = isinstance(self.connection, ssl.SSLSocket)
        self.server.log.append((self.command, self.path, auth, tls))
        host = f"{_TLS_NAME}:{self.server.server_address[1]}"
        basic = base64.b64encode(":".join(_PLAIN_USER).encode()).decode()
        headers: list[tuple[str, str]] = []
        body = b""
        if self.path.startswith("/token"):
            status = 200 if auth == f"Basic {basic}" else 401
            if status == 200:
                body = json.dumps({"token": _ACCESS, "expires_in": 300}).encode()
        elif auth not in (f"Bearer {_ACCESS}", f"Bearer {_REGISTRY_TOKEN}"):
            status = 401
            challenge = f'Bearer realm="https://{host}/token",service="routing"'
            headers.append(("WWW-Authenticate", challenge))
        elif self.command == "HEAD":
            status = 404
        elif self.command == "POST" and "/blobs/uploads/" in self.path:
            status = 202
            headers += [("Location", f"http://{host}/v2/app/blobs/uploads/u1"), ("Range", "0-0")]
        else:
            status = 500
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _answer


class _DualServer(ThreadingHTTPServer):
    """One loopback port speaking TLS or plain HTTP, whichever the client starts with."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _DualHandler)
        self.context = context
        self.log: list[tuple[str, str, str, bool]] = []  # method, path, Authorization, TLS?

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.settimeout(5)
        first = sock.recv(1, socket.MSG_PEEK)
        sock.settimeout(None)
        if first == b"\x16":  # a TLS ClientHello
            sock = self.context.wrap_socket(sock, server_side=True)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture
def dual_registry(tmp_path: Path) -> Iterator[tuple[_DualServer, Path]]:
    ca, cert, key = _write_tls_files(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _DualServer(context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield server, ca
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize("credential", ["password", "registry-token"])
def test_https_registry_upload_location_on_plain_http_gets_no_bearer(
    credential: str,
    monkeypatch: pytest.MonkeyPatch,
    dual_registry: tuple[_DualServer, Path],
    open_registry: RegistryServer,
    repo_name: str,
) -> None:
    server, ca_file = dual_registry
    if credential == "password":
        SECRETS.update({_PLAIN_USER[1], _ACCESS})
        monkeypatch.setenv("REGSHIFT_USERNAME", _PLAIN_USER[0])
        monkeypatch.setenv("REGSHIFT_PASSWORD", _PLAIN_USER[1])
        secret = _ACCESS
    else:
        SECRETS.add(_REGISTRY_TOKEN)
        monkeypatch.setenv("REGSHIFT_TOKEN", _REGISTRY_TOKEN)
        secret = _REGISTRY_TOKEN
    src = seed(open_registry.host, repo_name, "v1", random_image(seed=4102))
    dst = f"{_TLS_NAME}:{server.server_address[1]}/app:v1"
    result = run_cli("copy", "--retries", "0", "--ca-file", str(ca_file), str(src), dst)
    assert result.code != 0
    tls_with_secret = [m for m, _, auth, tls in server.log if tls and secret in auth]
    assert tls_with_secret, "the registry never got the credential over TLS: proves nothing"
    plain = [(m, p.split("?")[0], bool(auth)) for m, p, auth, tls in server.log if not tls]
    assert [p for p in plain if p[2]] == [], f"a credential went over plain HTTP: {plain}"
