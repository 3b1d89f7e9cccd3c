"""A registry's announced pull budget (Docker Hub's ``ratelimit-*`` headers), kept per registry.

Docker Hub answers manifest requests with ``ratelimit-limit: 100;w=21600`` and
``ratelimit-remaining: 76;w=21600`` (pulls left in a window of ``w`` seconds); only manifest
GETs count, HEADs are free (https://docs.docker.com/docker-hub/usage/pulls/). The IETF
draft's ``RateLimit-Remaining: 76`` (no window) is read the same way. A registry that sends
no such header has no budget here and nothing changes.

:class:`PullBudget` remembers the last numbers seen and guards each counted pull: while
plenty is left, pulls run in parallel; once the budget comes within ``slow_below`` of the
reserve, pulls to that registry go one at a time (each answer updates the count before the
next pull is sent, so parallel work cannot overshoot); a pull that would leave fewer than
``reserve`` raises :class:`~regshift.errors.RateLimitReserve` without being sent. Nothing
here does I/O.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Mapping

from .errors import RateLimitReserve

_VALUE = re.compile(r"^\s*(\d+)\s*(?:;(.*))?$")
_WINDOW = re.compile(r"(?:^|;)\s*w\s*=\s*(\d+)")


def parse_budget(value: str | None) -> tuple[int, int | None] | None:
    """``(count, window seconds or None)`` of a ``ratelimit-*`` header value, or ``None``."""
    if not value:
        return None
    first = value.split(",", 1)[0]  # a repeated header: the first (most restrictive) policy
    match = _VALUE.match(first)
    if match is None:
        return None
    window = _WINDOW.search(match.group(2) or "")
    return int(match.group(1)), int(window.group(1)) if window else None


class PullBudget:
    """The pull budget of one registry, as its last answer announced it; thread-safe."""

    def __init__(self, registry: str, *, reserve: int, slow_below: int) -> None:
        self.registry = registry
        self.reserve = max(0, reserve)
        self.slow_below = max(0, slow_below)
        self.remaining: int | None = None
        self.limit: int | None = None
        self.window: int | None = None
        self._lock = threading.Lock()
        self._one_at_a_time = threading.Lock()

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take the numbers from an answer's headers (answers without them change nothing)."""
        remaining = parse_budget(headers.get("ratelimit-remaining"))
        limit = parse_budget(headers.get("ratelimit-limit"))
        if remaining is None and limit is None:
            return  # most answers: nothing announced, nothing to take the lock for
        with self._lock:
            if remaining is not None:
                self.remaining, self.window = remaining[0], remaining[1] or self.window
            if limit is not None:
                self.limit = limit[0]

    @property
    def low(self) -> bool:
        """Whether the budget is close enough to the reserve to send pulls one at a time."""
        return self.remaining is not None and self.remaining <= self.reserve + self.slow_below

    @contextlib.contextmanager
    def pull(self, what: str) -> Iterator[None]:
        """Guard one counted pull (a manifest GET); the answer is observed inside.

        Raises:
            RateLimitReserve: the pull would leave fewer than ``reserve`` pulls.
        """
        if not self.low:
            yield
            return
        with self._one_at_a_time:
            self._check(what)
            yield

    def _check(self, what: str) -> None:
        with self._lock:
            remaining, limit, window = self.remaining, self.limit, self.window
        if remaining is None or remaining > self.reserve:
            return
        of = f" of {limit}" if limit is not None else ""
        per = f" per {window} s" if window is not None else ""
        keep = f", keeping {self.reserve} in reserve" if self.reserve else ""
        raise RateLimitReserve(
            f"{what}: not sent: registry {self.registry} announces {remaining}{of} pulls "
            f"left{per} (ratelimit-remaining){keep}; stopping before running out"
        )
