"""Retries and connection errors: the policy every request (and token request) follows.

Kept below :mod:`regshift.auth` and :mod:`regshift.transport` in the import order, so the
token flow and the HTTP layer share one backoff, one ``Retry-After`` rule and one wording for
connection failures.
"""

from __future__ import annotations

import email.utils
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from .errors import TransportError
from .redaction import redact_secrets

#: Defaults of :class:`~regshift.transport.TransportOptions` (retries after the first try,
#: first delay in seconds, longest ``Retry-After`` honoured in seconds).
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_RETRY_AFTER = 60.0
#: Statuses worth another try: the request timed out, was rate-limited or the server failed.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def translate(exc: httpx.TransportError, what: str) -> TransportError:
    """Turn an httpx transport failure into a one-line :class:`TransportError`."""
    if isinstance(exc, httpx.TimeoutException):
        kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
        return TransportError(f"{what}: {kind} timed out (see --timeout)")
    if isinstance(exc, httpx.LocalProtocolError):
        # h11 quotes the refused header value (a whole ``Authorization`` token): never print it.
        return TransportError(
            f"{what}: a request header is not valid HTTP "
            "(a credential with a line break or control character?)",
            retryable=False,
        )
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return TransportError(
                f"{what}: TLS certificate verification failed ({cause.verify_message}); "
                "pass the registry's CA with --ca-file, or --insecure to skip verification",
                retryable=False,
            )
        cause = cause.__cause__ or cause.__context__
    reason = redact_secrets(str(exc)) or type(exc).__name__
    return TransportError(f"{what}: {reason}")


def retry_after_seconds(value: str | None) -> float | None:
    """Parse ``Retry-After`` in either form: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring ``Retry-After`` up to a cap."""

    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    sleep: Callable[[float], None] = time.sleep

    def delays(self) -> Iterable[float]:
        """The default delays before each retry."""
        for attempt in range(self.retries):
            yield self.delay(attempt)

    def delay(self, attempt: int) -> float:
        """The jittered delay before retry number ``attempt`` (0-based)."""
        return float(self.backoff * 2**attempt * (0.5 + random.random()))

    def wait(
        self, default: float, retry_after: float | None, stop: threading.Event | None = None
    ) -> float:
        """Sleep before a retry, or until ``stop`` is set; return the delay chosen."""
        delay = default if retry_after is None else min(retry_after, self.max_retry_after)
        if stop is None:
            self.sleep(delay)
        else:
            stop.wait(delay)
        return delay
