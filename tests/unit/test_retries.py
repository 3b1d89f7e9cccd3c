"""The one retry policy (RetryPolicy.run), and library messages that name no CLI flag."""

from __future__ import annotations

import ast
import re
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import regshift.errors as errors_module
from regshift import wire
from regshift.cli.exits import HINTS, one_line
from regshift.errors import (
    HINT_DUPLICATES,
    HINT_INSECURE,
    HINT_LOGIN,
    HINT_TIMEOUT,
    HINT_TRUST,
    APIError,
    NotFound,
    RegistryError,
    TransportError,
    Unauthorized,
)
from regshift.retries import RetryableAnswer, RetryPolicy, translate

Outcome = Exception | str  # what one try does: raise the exception, or return the string


def _policy(sleeps: list[float], retries: int = 2) -> RetryPolicy:
    return RetryPolicy(retries=retries, backoff=1.0, max_retry_after=5.0, sleep=sleeps.append)


def _tries(outcomes: list[Outcome]) -> tuple[Callable[[], str], list[int]]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return attempt, calls


def _api(status: int, retry_after: float | None = None) -> APIError:
    return APIError(status=status, method="GET", url="r/x", text="t", retry_after=retry_after)


@pytest.mark.parametrize(
    ("outcomes", "result", "calls", "waits"),
    [
        (["ok"], "ok", 1, 0),
        ([TransportError("reset"), TransportError("reset"), "ok"], "ok", 3, 2),
        ([TransportError("reset")] * 3, TransportError, 3, 2),  # 1 + retries tries, no more
        ([TransportError("bad cert", retryable=False), "ok"], TransportError, 1, 0),
        ([_api(503), "ok"], "ok", 2, 1),
        ([_api(404), "ok"], APIError, 1, 0),  # not transient
        ([_api(401), "ok"], APIError, 1, 0),
        ([ValueError("bug"), "ok"], ValueError, 1, 0),  # not a registry failure: no retry
    ],
)
def test_run_counts_tries_and_retries_only_transient_failures(
    outcomes: list[Outcome], result: object, calls: int, waits: int
) -> None:
    sleeps: list[float] = []
    reported: list[str] = []
    attempt, made = _tries(outcomes)
    policy = _policy(sleeps)

    def run() -> str:
        return policy.run(attempt, on_retry=lambda why, waited, _: reported.append(why))

    if isinstance(result, type):
        with pytest.raises(result):
            run()
    else:
        assert run() == result
    assert len(made) == calls
    assert len(sleeps) == waits and len(reported) == waits


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    sleeps: list[float] = []
    seen: list[tuple[float, float | None]] = []
    attempt, _ = _tries([_api(429, retry_after=120), _api(503, retry_after=2), "ok"])
    result = _policy(sleeps).run(attempt, on_retry=lambda _, w, ra: seen.append((w, ra)))
    assert result == "ok"
    assert sleeps == [5.0, 2.0] and seen == [(5.0, 120), (2.0, 2)]


def test_a_retryable_answer_is_retried_and_the_last_handed_back() -> None:
    discarded: list[str] = []

    def attempt() -> str:
        name = f"answer{len(discarded)}"
        raise RetryableAnswer(name, "HTTP 503", 1.0, discard=lambda: discarded.append(name))

    sleeps: list[float] = []
    assert _policy(sleeps).run(attempt, on_retry=lambda *_: None) == "answer2"
    assert discarded == ["answer0", "answer1"], "the last answer is returned open, not discarded"
    assert sleeps == [1.0, 1.0]


def test_before_retry_ends_the_run_when_the_failed_try_did_its_work() -> None:
    sleeps: list[float] = []
    attempt, made = _tries([TransportError("answer lost"), "sent again"])
    landed = _policy(sleeps).run(
        attempt, on_retry=lambda *_: None, before_retry=lambda exc: f"landed ({exc})"
    )
    assert landed == "landed (answer lost)" and len(made) == 1 and sleeps == []


def test_tries_and_stop() -> None:
    sleeps: list[float] = []
    attempt, made = _tries([TransportError("x")] * 9 + ["ok"])
    assert _policy(sleeps, retries=0).tries == 1
    assert _policy(sleeps).run(attempt, on_retry=lambda *_: None, tries=10) == "ok"
    assert len(made) == 10
    stop = threading.Event()
    stop.set()  # a cancelled copy: the wait ends at once, the sleep function is not used
    attempt, made = _tries([TransportError("x"), "ok"])
    policy = RetryPolicy(retries=1, backoff=60.0, sleep=lambda _: pytest.fail("slept"))
    assert policy.run(attempt, on_retry=lambda *_: None, stop=stop) == "ok"


# -- library messages are neutral; the CLI adds its flags -----------------------------------


def _cert_error() -> wire.ConnectError:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "self-signed certificate"
    exc = wire.ConnectError("handshake failed")
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "hint", "cli"),
    [
        (
            translate(wire.ReadTimeout("slow"), "GET r"),
            HINT_TIMEOUT,
            "GET r: read timed out (see --timeout)",
        ),
        (
            translate(_cert_error(), "GET r"),
            HINT_TRUST,
            "GET r: TLS certificate verification failed (self-signed certificate); "
            "pass the registry's CA with --ca-file, or --insecure to skip verification",
        ),
        (
            Unauthorized(
                status=401,
                method="GET",
                url="http://r/v2/a/manifests/1",
                text="no",
                context="r/a:1: no credentials found",
                hint=HINT_LOGIN,
            ),
            HINT_LOGIN,
            "r/a:1: no credentials found; use regshift login or --username: "
            "GET http://r/v2/a/manifests/1: HTTP 401: no",
        ),
    ],
)
def test_library_message_is_neutral_and_the_cli_adds_the_flags(
    exc: RegistryError, hint: str, cli: str
) -> None:
    assert exc.hint == hint
    assert not re.search(r"--[a-z]|regshift login", str(exc)), str(exc)
    assert one_line(exc) == cli, "the CLI prints what it printed before"


def test_every_hint_has_cli_wording() -> None:
    names = {v for k, v in vars(errors_module).items() if k.startswith("HINT_")}
    hints = {HINT_TIMEOUT, HINT_TRUST, HINT_LOGIN, HINT_INSECURE, HINT_DUPLICATES}
    assert names == hints == set(HINTS)
    assert one_line(NotFound(status=404, method="GET", url="u", text="t")) == (
        "GET u: HTTP 404: t"
    ), "no hint, nothing added"


_NEUTRAL = [
    *(f"client/{m}.py" for m in ("__init__", "answers", "uploads", "listing")),
    *("session.py", "transport.py", "retries.py", "auth/flow.py"),
    *(f"indexes/{m}.py" for m in ("entries", "options", "sources", "writing", "verbs")),
]


@pytest.mark.parametrize("name", _NEUTRAL)
def test_library_strings_name_no_cli_flag(name: str) -> None:
    """Every string in these modules, docstrings aside: no ``--flag``, no ``regshift login``."""
    import regshift

    tree = ast.parse((Path(regshift.__file__).parent / name).read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    texts = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if id(node) not in docstrings
    ]
    assert texts, "the check sees the module's strings"
    flagged = [t for t in texts if re.search(r"(^|\s)--[a-z]|regshift login", t)]
    assert flagged == []


@pytest.mark.parametrize(
    ("url", "hint", "cli"),
    [
        (
            "http://registry.example/v2/",
            HINT_INSECURE,
            "registry.example: refusing to send credentials over plain HTTP to "
            "registry.example; use HTTPS or mark the registry --insecure",
        ),
        (
            "http://auth.example/token",
            None,
            "registry.example: refusing to send credentials over plain HTTP to "
            "auth.example; use HTTPS or its token realm must use HTTPS",
        ),
    ],
)
def test_plain_http_refusal_hint(url: str, hint: str | None, cli: str) -> None:
    from regshift.auth.credentials import Credential
    from regshift.auth.flow import RegistryAuth
    from regshift.errors import AuthError

    auth = RegistryAuth(
        "registry.example",
        lambda _: Credential(),
        allow_plain_http=False,
        user_agent="t",
        send=lambda request: pytest.fail("nothing is sent"),
    )
    with pytest.raises(AuthError) as info:
        auth.require_secure(wire.URL(url), "credentials")
    assert info.value.hint == hint and "--" not in str(info.value)
    assert one_line(info.value) == cli


def test_the_client_exposes_its_one_policy_for_larger_operations() -> None:
    from regshift.client import Client, ClientOptions
    from regshift.transport import TransportOptions

    options = ClientOptions(transport=TransportOptions(retries=5, backoff=0.25), cache_dir=None)
    with Client(options) as client:
        assert client.retry_policy.tries == client.max_attempts == 6
        assert client.retry_policy.backoff == 0.25
        client.on_retry("blob sha256:ab")("connection reset", 0.5, None)
        assert (client.stats.retries, client.stats.retry_wait) == (1, 0.5)
