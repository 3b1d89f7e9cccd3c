"""Retries and connection errors: the one policy every retry site follows.

:class:`RetryPolicy` is built once per client from :class:`~regshift.transport.TransportOptions`
(``retries``, ``backoff``, ``max_retry_after``) and used by every site that tries again: a
registry request (:mod:`regshift.session`), a manifest PUT whose answer was lost
(:mod:`regshift.client`), a token request (:mod:`regshift.auth.flow`), and a blob upload
restarted or a chunk resumed while copying. :meth:`RetryPolicy.run` is the loop: counted
tries, a retryable-error test (:func:`transient`, over the one status set
:data:`~regshift.errors.RETRYABLE_STATUSES`), ``Retry-After`` honoured up to a cap, waits
that a cancelled operation cuts short.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from . import wire
from .errors import HINT_TIMEOUT, HINT_TRUST, APIError, TransportError
from .redaction import redact_secrets

T = TypeVar("T")
A = TypeVar("A")

#: Defaults of :class:`~regshift.transport.TransportOptions` (retries after the first try,
#: first delay in seconds, longest ``Retry-After`` honoured in seconds).
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_RETRY_AFTER = 60.0


def translate(exc: wire.TransportError, what: str) -> TransportError:
    """Turn an HTTP-layer failure into a one-line :class:`TransportError`."""
    if isinstance(exc, wire.TimeoutException):
        kind = "connect" if isinstance(exc, wire.ConnectTimeout) else "read"
        return TransportError(f"{what}: {kind} timed out", hint=HINT_TIMEOUT)
    if isinstance(exc, wire.UnsupportedProtocol):  # nothing was sent; trying again cannot help
        return TransportError(f"{what}: {exc}", retryable=False)
    if isinstance(exc, wire.LocalProtocolError):
        # Never print the refused value: it may be a whole ``Authorization`` token.
        return TransportError(
            f"{what}: a request header is not valid HTTP "
            "(a credential with a line break or control character?)",
            retryable=False,
        )
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return TransportError(
                f"{what}: TLS certificate verification failed ({cause.verify_message})",
                retryable=False,
                hint=HINT_TRUST,
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


class RetryableAnswer(Exception, Generic[A]):
    """Raised by a try whose *answer* is worth another try (a retryable status): the policy
    discards it and tries again, and hands the last one back when no tries are left."""

    def __init__(
        self,
        answer: A,
        why: str,
        retry_after: float | None = None,
        discard: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(why)
        self.answer = answer
        self.retry_after = retry_after
        self.discard = discard


def transient(exc: Exception) -> bool:
    """Whether trying again may help: a connection failure (not a certificate refused) or a
    retryable status (:data:`~regshift.errors.RETRYABLE_STATUSES`)."""
    if isinstance(exc, TransportError | APIError):
        return exc.retryable
    return isinstance(exc, RetryableAnswer)


#: Told, before each retry, why (the failure's one line), the seconds waited and the
#: ``Retry-After`` the server asked for (``None`` when it did not).
OnRetry = Callable[[str, float, float | None], None]


@dataclass(slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring ``Retry-After`` up to a cap.

    ``retries`` is the one setting: every site gets ``1 + retries`` tries (:attr:`tries`).
    """

    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    sleep: Callable[[float], None] = time.sleep

    @property
    def tries(self) -> int:
        """Tries a transient failure gets: the first plus ``retries``."""
        return self.retries + 1

    def run(
        self,
        attempt: Callable[[], T],
        *,
        on_retry: OnRetry,
        retry_on: Callable[[Exception], bool] = transient,
        before_retry: Callable[[Exception], T | None] | None = None,
        tries: int | None = None,
        stop: threading.Event | None = None,
    ) -> T:
        """Call ``attempt`` until it returns, at most ``tries`` times (default :attr:`tries`).

        A failure ``retry_on`` accepts is tried again after a wait (the backoff, or the
        failure's ``retry_after`` capped at ``max_retry_after``; setting ``stop`` ends it at
        once), reported to ``on_retry``; any other failure, or one on the last try, is
        raised -- except a :class:`RetryableAnswer`, whose answer is returned. Before the
        wait ``before_retry`` may look whether the failed try did its work after all: what
        it returns (not ``None``) is the result, and nothing is tried again.
        """
        tries = self.tries if tries is None else tries
        number = 1
        while True:
            try:
                return attempt()
            except Exception as exc:
                if number >= tries or not retry_on(exc):
                    if isinstance(exc, RetryableAnswer):
                        return cast(T, exc.answer)
                    raise
                if isinstance(exc, RetryableAnswer) and exc.discard is not None:
                    exc.discard()
                if before_retry is not None and (done := before_retry(exc)) is not None:
                    return done
                retry_after = getattr(exc, "retry_after", None)
                on_retry(str(exc), self.pause(number, retry_after, stop), retry_after)
                number += 1

    def pause(
        self, number: int, retry_after: float | None = None, stop: threading.Event | None = None
    ) -> float:
        """Wait after failed try ``number`` (counted from 1), or until ``stop`` is set;
        return the seconds waited."""
        return self.wait(self.delay(number - 1), retry_after, stop)

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
