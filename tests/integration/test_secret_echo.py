"""Secrets never echoed: not from a bad header value, an error body, a URL or a refused link."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest

from support import SECRETS, run_cli

Reply = tuple[int, list[tuple[str, str]], bytes]
Script = Callable[[str, dict[str, str]], Reply]


@pytest.fixture
def serve() -> Iterator[Callable[[Script], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(script: Script) -> str:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, body = script(self.path, headers)
                self.send_response(status)
                for name, value in extra:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _answer

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _absent(secret: str, *args: str, env: dict[str, str] | None = None) -> None:
    """Run twice (plain, --json) and check ``secret`` is in no output nor the JSON document."""
    for flags in ((), ("--json",)):
        out = run_cli(*args[:1], *flags, *args[1:], env=env, input="x\n")
        assert out.code != 0
        assert secret not in out.stdout and secret not in out.stderr
        if flags:
            assert secret not in json.dumps(out.json())


def test_token_with_line_break_not_printed(serve: Callable[[Script], str]) -> None:
    token = "rsTOKsecret-0123456789abcdef"
    SECRETS.add(token)
    challenge = [("WWW-Authenticate", 'Bearer realm="http://127.0.0.1:9/token",service="x"')]
    host = serve(lambda path, h: (404, [], b"") if "authorization" in h else (401, challenge, b""))
    _absent(token, "digest", f"{host}/a/b:v1", env={"REGSHIFT_TOKEN": token + "\r"})
    for bad in ("\r", " "):
        out = run_cli("digest", f"{host}/a/b:v1", env={"REGSHIFT_TOKEN": token + bad})
        assert "not valid HTTP" in out.stderr


def test_error_body_echoing_authorization_redacted(serve: Callable[[Script], str]) -> None:
    user, password = "dave", "pwSECRET-dave-echo-11"
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    SECRETS.update({password, basic})

    def reg(path: str, h: dict[str, str]) -> Reply:
        auth = h.get("authorization")
        if not auth:
            return 401, [("WWW-Authenticate", 'Basic realm="r"')], b""
        if "plain" in path:
            return 400, [("Content-Type", "text/plain")], f"bad: authorization={auth}\n".encode()
        body = {"errors": [{"code": "DENIED", "message": f"header {auth} lacks access"}]}
        return 403, [("Content-Type", "application/json")], json.dumps(body).encode()

    host = serve(reg)
    env = {"REGSHIFT_USERNAME": user, "REGSHIFT_PASSWORD": password}
    for repo in ("oci/json", "plain/text"):
        _absent(basic, "ls", f"{host}/{repo}", env=env)


def test_password_in_registry_url_masked() -> None:
    password = "pwSECRET-userinfo-6"
    SECRETS.add(password)
    _absent(
        password, "login", "-u", "x", "--password-stdin", f"https://ci:{password}@127.0.0.1:5999"
    )
    _absent(password, "digest", f"https://ci:{password}@127.0.0.1:5999/a/b:v1")
    _absent(password, "digest", f"ci:{password}@127.0.0.1:5999/a/b:v1")


def test_refused_pagination_link_redacted(serve: Callable[[Script], str]) -> None:
    secret = "qsSECRET-link-token-808"
    SECRETS.add(secret)
    link = f'<https://svc:{secret}@cdn.example/v2/a/b/tags/list?n=1&token={secret}>; rel="next"'
    headers = [("Content-Type", "application/json"), ("Link", link)]
    host = serve(lambda path, h: (200, headers, b'{"name":"a/b","tags":["v1"]}'))
    _absent(secret, "ls", f"{host}/a/b")
