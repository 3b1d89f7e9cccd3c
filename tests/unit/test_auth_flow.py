"""The auth flow's decisions, on a canned transport (the protocol paths run on real registries
in tests/integration/test_auth.py; this covers what no local registry can show: non-loopback
plain HTTP, token expiry with a fake clock, the OAuth POST -> GET fallback)."""

from __future__ import annotations

import base64
import json
import json as _json
from collections.abc import Callable

import pytest

from regshift import wire
from regshift.auth.credentials import Credential
from regshift.auth.flow import RegistryAuth
from regshift.errors import AuthError

SCOPES = frozenset({"repository:a:pull,push"})


class Canned:
    """What a handler answers: status, headers, body (``json`` encoded)."""

    def __init__(
        self,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        json: object = None,
        content: bytes = b"",
    ) -> None:
        self.status = status
        self.headers = dict(headers or {})
        self.content = content if json is None else _json.dumps(json).encode()


Handler = Callable[[wire.Request], Canned]


class MockTransport:
    """A transport answering every request from ``handler``, in this thread."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    def handle_request(self, request: wire.Request) -> wire.Response:
        canned = self._handler(request)
        return wire.Response(
            canned.status, request=request, headers=canned.headers, content=canned.content
        )

    def close(self) -> None:
        pass


class HTTP(wire.Client):
    """The client regshift uses, on a :class:`MockTransport`, with the verbs tests need."""

    def __init__(self, handler: Handler) -> None:
        super().__init__(transport=MockTransport(handler))

    def get(self, url: str, *, auth: wire.Auth | None = None) -> wire.Response:
        return self.send(self.build_request("GET", url), auth=auth)

    def put(self, url: str, *, content: bytes, auth: wire.Auth | None = None) -> wire.Response:
        return self.send(self.build_request("PUT", url, content=content), auth=auth)

    def __enter__(self) -> HTTP:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


MANIFEST_URL = "https://registry.example/v2/a/manifests/x"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Registry:
    """A token-auth registry and token server in one handler; records what it saw."""

    def __init__(self, *, realm: str = "https://auth.example/token", oauth: bool = True) -> None:
        self.realm = realm
        self.oauth = oauth
        self.token_requests: list[wire.Request] = []
        self.issued = 0
        self.valid: set[str] = set()

    def __call__(self, request: wire.Request) -> Canned:
        if request.url.path == "/token":
            return self._token(request)
        auth = request.headers.get("authorization", "")
        if auth.removeprefix("Bearer ") in self.valid:
            return Canned(200, json={})
        challenge = f'Bearer realm="{self.realm}",service="reg",scope="repository:a:pull,push"'
        return Canned(401, headers={"WWW-Authenticate": challenge})

    def _token(self, request: wire.Request) -> Canned:
        self.token_requests.append(request)
        if request.method == "POST" and not self.oauth:
            return Canned(404)
        self.issued += 1
        token = f"token-{self.issued}"
        self.valid.add(token)
        return Canned(200, json={"token": token, "expires_in": 60})


def _client(handler: Registry) -> HTTP:
    return HTTP(handler)


def _auth(
    cred: Credential,
    handler: Handler,
    *,
    plain: bool = False,
    clock: FakeClock | None = None,
) -> RegistryAuth:
    tokens = HTTP(handler)
    return RegistryAuth(
        "registry.example",
        lambda _repository: cred,
        allow_plain_http=plain,
        user_agent="t",
        send=lambda request: tokens.send(request),
        clock=clock or FakeClock(),
    )


def _get(http: HTTP, auth: RegistryAuth, scopes: frozenset[str] = SCOPES) -> int:
    """The status of one GET of ``MANIFEST_URL``, authorized for ``scopes``."""
    return http.get(MANIFEST_URL, auth=auth.scoped(scopes)).status_code


def test_token_cached_until_expiry() -> None:
    reg, clock = Registry(), FakeClock()
    auth = _auth(Credential(username="u", password="p"), reg, clock=clock)
    with _client(reg) as http:
        for _ in range(3):
            assert _get(http, auth) == 200
        assert len(reg.token_requests) == 1
        clock.now += 51  # past 60 s minus the margin (a fifth, at most 10 s)
        assert _get(http, auth) == 200
    assert len(reg.token_requests) == 2
    assert auth.token_requests == 2


def test_one_token_request_carries_every_scope() -> None:
    reg = Registry()
    auth = _auth(Credential(username="u", password="p"), reg)
    scopes = frozenset({"repository:a:pull", "repository:b:pull,push", "repository:a:push"})
    with _client(reg) as http:
        _get(http, auth, scopes)
    (token,) = reg.token_requests
    assert sorted((v for k, v in token.url.params if k == "scope")) == [
        "repository:a:pull,push",
        "repository:b:pull,push",
    ]
    expected = "Basic " + base64.b64encode(b"u:p").decode()
    assert token.headers["authorization"] == expected


def test_identity_token_post_then_get_fallback() -> None:
    reg = Registry(oauth=False)
    auth = _auth(Credential(username="u", identity_token="refresh-1"), reg)
    with _client(reg) as http:
        assert _get(http, auth) == 200
    post, get = reg.token_requests
    assert post.method == "POST"
    form = dict(x.split("=", 1) for x in post.content.decode().split("&"))
    assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "refresh-1"
    assert get.method == "GET"
    assert get.headers["authorization"] == "Basic " + base64.b64encode(b"u:refresh-1").decode()


def test_registry_token_is_sent_as_is() -> None:
    reg = Registry()
    reg.valid.add("static-token")
    auth = _auth(Credential(registry_token="static-token"), reg)
    with _client(reg) as http:
        assert _get(http, auth) == 200
    assert reg.token_requests == []


@pytest.mark.parametrize(
    ("realm", "registry_url"),
    [
        ("http://auth.example/token", MANIFEST_URL),  # plain realm
    ],
)
def test_no_credentials_over_plain_http(realm: str, registry_url: str) -> None:
    reg = Registry(realm=realm)
    auth = _auth(Credential(username="u", password="secret-pw"), reg)
    with (
        _client(reg) as http,
        pytest.raises(AuthError, match="refusing to send credentials over plain HTTP"),
    ):
        http.get(registry_url, auth=auth.scoped(SCOPES))
    assert reg.token_requests == []


def test_no_basic_credentials_to_a_plain_http_registry() -> None:
    def handler(request: wire.Request) -> Canned:
        if "authorization" in request.headers:
            return Canned(200)
        return Canned(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    auth = _auth(Credential(username="u", password="secret-pw"), handler)
    with HTTP(handler) as http:
        with pytest.raises(AuthError, match="plain HTTP"):
            http.get("http://registry.example/v2/", auth=auth.scoped(SCOPES))
        allowed = _auth(
            Credential(username="u", password="secret-pw"), handler, plain=True
        )  # --insecure
        assert (
            http.get("http://registry.example/v2/", auth=allowed.scoped(SCOPES)).status_code == 200
        )


def test_insufficient_scope_reauthenticates_once() -> None:
    """A 401 naming a scope the token lacks gets exactly one new token, then the retry."""
    seen: list[str] = []
    tokens = {"t1": {"repository:a:pull"}, "t2": {"repository:a:pull", "repository:a:push"}}

    def handler(request: wire.Request) -> Canned:
        if request.url.path == "/token":
            scopes = [v for k, v in request.url.params if k == "scope"]
            token = "t2" if any("push" in s for s in scopes) else "t1"
            seen.append(token)
            return Canned(200, content=json.dumps({"token": token}).encode())
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if request.method == "PUT" and "repository:a:push" in tokens.get(token, set()):
            return Canned(201)
        if request.method == "GET" and token in tokens:
            return Canned(200)
        scope = "repository:a:pull,push" if request.method == "PUT" else "repository:a:pull"
        challenge = f'Bearer realm="https://auth.example/token",service="reg",scope="{scope}"'
        return Canned(401, headers={"WWW-Authenticate": challenge})

    auth = _auth(Credential(username="u", password="p"), handler)
    with HTTP(handler) as http:
        pull = frozenset({"repository:a:pull"})
        assert _get(http, auth, pull) == 200
        put = http.put(MANIFEST_URL, content=b"{}", auth=auth.scoped(pull))
        assert put.status_code == 201
    assert seen == ["t1", "t2"]


def test_token_server_refusal_is_an_auth_error_without_secrets() -> None:
    def handler(request: wire.Request) -> Canned:
        if request.url.path == "/token":
            return Canned(401, json={"details": "bad password secret-pw"})
        challenge = 'Bearer realm="https://auth.example/token",service="reg"'
        return Canned(401, headers={"WWW-Authenticate": challenge})

    auth = _auth(Credential(username="u", password="secret-pw", source="config.json"), handler)
    with (
        HTTP(handler) as http,
        pytest.raises(AuthError) as info,
    ):
        http.get("https://registry.example/v2/", auth=auth.scoped(SCOPES))
    assert "refused the credentials" in str(info.value) and "config.json" in str(info.value)
    assert "secret-pw" not in str(info.value)


# -- appended: the realm is judged by its own host; redirect targets; token retries; rotation.
# Imports stay local below so that this section only appends to the file.


def _registry_auth(
    registry: str,
    cred: Credential,
    handler: Handler,
    *,
    plain: bool = False,
    insecure: frozenset[str] = frozenset(),
    sleeps: list[float] | None = None,
) -> RegistryAuth:
    """A ``RegistryAuth`` for ``registry``; plain HTTP allowed for loopback as the client does.

    With ``sleeps``, token requests are retried twice (Retry-After capped at 5 s), recording
    the waits instead of sleeping.
    """
    from regshift.reference import is_loopback_host
    from regshift.retries import RetryPolicy

    extra: dict[str, frozenset[str] | RetryPolicy] = {}  # only what a test needs
    if insecure:
        extra["insecure"] = insecure
    if sleeps is not None:
        extra["retry"] = RetryPolicy(
            retries=2, backoff=0.01, max_retry_after=5.0, sleep=sleeps.append
        )
    tokens = HTTP(handler)
    return RegistryAuth(
        registry,
        lambda _repository: cred,
        allow_plain_http=plain or is_loopback_host(registry),
        user_agent="t",
        send=lambda request: tokens.send(request),
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("registry", "realm", "insecure", "allowed"),
    [
        ("127.0.0.1:5000", "http://auth.example/token", frozenset(), False),
        ("localhost:5000", "http://vm:5001/token", frozenset(), False),
        ("127.0.0.1:5000", "http://127.0.0.1:5001/token", frozenset(), True),
        ("127.0.0.1:5000", "https://auth.example/token", frozenset(), True),
        ("127.0.0.1:5000", "http://auth.example/token", frozenset({"auth.example:80"}), True),
    ],
)
def test_plain_realm_judged_by_its_own_host(
    registry: str, realm: str, insecure: frozenset[str], allowed: bool
) -> None:
    """A loopback registry is no licence for its realm: that host must be loopback or insecure."""
    reg = Registry(realm=realm)
    cred = Credential(username="u", password="secret-pw")
    auth = _registry_auth(registry, cred, reg, insecure=insecure)
    url = f"http://{registry}/v2/a/manifests/x"
    with _client(reg) as http:
        if allowed:
            assert http.get(url, auth=auth.scoped(SCOPES)).status_code == 200
            assert len(reg.token_requests) == 1
            return
        with pytest.raises(AuthError, match="refusing to send credentials over plain HTTP"):
            http.get(url, auth=auth.scoped(SCOPES))
    assert reg.token_requests == []


def test_insecure_registry_may_use_a_plain_realm_on_its_own_host() -> None:
    reg = Registry(realm="http://reg.example:5001/token")
    cred = Credential(username="u", password="p")
    auth = _registry_auth("reg.example:5000", cred, reg, plain=True)  # --insecure
    with _client(reg) as http:
        assert http.get("http://reg.example:5000/v2/", auth=auth.scoped(SCOPES)).status_code == 200


def test_redirect_target_401_is_not_answered() -> None:
    """Storage that a GET was redirected to answers 401 naming its own realm: nothing sent."""
    seen: list[wire.Request] = []
    basic = "Basic " + base64.b64encode(b"u:secret-pw").decode()

    def handler(request: wire.Request) -> Canned:
        seen.append(request)
        if request.url.host == "storage.example":
            evil = 'Bearer realm="https://evil.example/token",service="s"'
            return Canned(401, headers={"WWW-Authenticate": evil})
        if request.headers.get("authorization") != basic:
            return Canned(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        if request.url.path == "/v2/":
            return Canned(200)
        return Canned(307, headers={"Location": "https://storage.example/blob"})

    auth = _auth(Credential(username="u", password="secret-pw"), handler)
    with HTTP(handler) as http:
        # The first request learns the Basic challenge; the next is sent with it at once.
        assert http.get("https://registry.example/v2/", auth=auth.scoped(SCOPES)).status_code == 200
        response = http.get(MANIFEST_URL, auth=auth.scoped(SCOPES))
    assert response.status_code == 401 and response.url.host == "storage.example"
    hosts = [r.url.host for r in seen]
    assert hosts == ["registry.example"] * 3 + ["storage.example"], "no token request"
    assert "authorization" not in seen[-1].headers
    # The registry's own challenge is still the one remembered.
    assert auth.preemptive(SCOPES, wire.URL(MANIFEST_URL)) == basic


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_token_request_retried_on_transient_status(status: int) -> None:
    reg, answers = Registry(), [status]

    def handler(request: wire.Request) -> Canned:
        if request.url.path == "/token" and answers:
            return Canned(answers.pop(), headers={"Retry-After": "120"})
        return reg(request)

    sleeps: list[float] = []
    cred = Credential(username="u", password="p")
    auth = _registry_auth("registry.example", cred, handler, sleeps=sleeps)
    with HTTP(handler) as http:
        assert _get(http, auth) == 200
    assert sleeps == [5.0], "Retry-After honoured, capped at max_retry_after"
    assert len(reg.token_requests) == 1


def test_unreachable_token_server_is_a_transport_error() -> None:
    from regshift.errors import TransportError

    attempts: list[wire.Request] = []

    def handler(request: wire.Request) -> Canned:
        if request.url.path == "/token":
            attempts.append(request)
            raise wire.ConnectError("Connection refused")
        return Registry()(request)

    sleeps: list[float] = []
    cred = Credential(username="u", password="secret-pw")
    auth = _registry_auth("registry.example", cred, handler, sleeps=sleeps)
    with (
        HTTP(handler) as http,
        pytest.raises(TransportError) as info,
    ):
        _get(http, auth)
    assert len(attempts) == 3 and len(sleeps) == 2
    assert "token server auth.example" in str(info.value) and "secret-pw" not in str(info.value)
    assert not info.value.retryable, "already retried: the caller must not repeat the series"


def test_rotating_refresh_token_fetched_one_at_a_time() -> None:
    """Parallel requests for different repositories: each refresh_token grant sends the token
    the previous grant returned (single-use refresh tokens, as OAuth2 rotation issues them)."""
    import threading
    import time

    lock = threading.Lock()
    state = {"refresh": 0, "refused": 0}
    valid: set[str] = set()

    def token(request: wire.Request) -> Canned:
        form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
        with lock:
            if form["refresh_token"] != f"refresh-{state['refresh']}":
                state["refused"] += 1
                return Canned(401)
            state["refresh"] += 1
            rotated = f"refresh-{state['refresh']}"
        time.sleep(0.05)  # concurrent fetches would overlap here
        valid.add(f"token-{rotated}")
        return Canned(200, json={"access_token": f"token-{rotated}", "refresh_token": rotated})

    def handler(request: wire.Request) -> Canned:
        if request.url.path == "/token":
            return token(request)
        if request.headers.get("authorization", "").removeprefix("Bearer ") in valid:
            return Canned(200)
        challenge = 'Bearer realm="https://auth.example/token",service="reg"'
        return Canned(401, headers={"WWW-Authenticate": challenge})

    auth = _registry_auth("registry.example", Credential(identity_token="refresh-0"), handler)
    start = threading.Barrier(4)
    statuses: list[int | str] = []

    def pull(repo: str) -> None:
        with HTTP(handler) as http:
            start.wait()
            try:
                statuses.append(_get(http, auth, frozenset({f"repository:{repo}:pull"})))
            except AuthError as exc:
                statuses.append(str(exc))

    threads = [threading.Thread(target=pull, args=(f"r{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4 and state == {"refresh": 4, "refused": 0}
    assert auth.credential.identity_token == "refresh-4"
