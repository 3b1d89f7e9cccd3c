"""Transfers under way in this process: one at a time per key, the others wait for it.

Units of one operation (``sync`` units, ``copy`` to several tags, ``index create``) share one
:class:`~regshift.client.Client`, and so one :class:`InFlight`. When two of them need the same
blob in the same destination repository, only one sends it; the other waits and then finds
it placed. Besides saving the bytes, this keeps two uploads of one blob from racing: the CNCF
distribution filesystem driver rewrites a repository's blob link file non-atomically (truncate,
then write) on every upload or mount of that blob, and a manifest PUT that reads the link in
between is refused with ``MANIFEST_BLOB_UNKNOWN`` / ``DIGEST_INVALID``.

Keys are the caller's (e.g. ``(endpoint, repository, digest)``); unrelated keys never wait for
each other. A transfer finished is remembered with the time it ended, so a unit whose
existence check said "missing" just before another unit placed the blob skips it, while one
that looked after that (the blob went away since) sends it again. Imports nothing of ours.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

#: How often a waiting thread looks whether its own operation was cancelled (seconds).
_POLL = 0.1


class InFlight:
    """A thread-safe registry of transfers: running ones, and those this process finished."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, threading.Event] = {}
        self._done: dict[Hashable, float] = {}  # key -> when its transfer ended (monotonic)

    def once(
        self,
        key: Hashable,
        work: Callable[[], T],
        *,
        looked: float,
        check: Callable[[], None] = lambda: None,
    ) -> T | None:
        """Run ``work`` for ``key`` unless another thread does it, or did it after ``looked``.

        ``looked`` is when the caller found the work needed (:func:`time.monotonic` before
        it asked the registry); work done before then evidently did not last, so it is done
        again. Returns ``work``'s result when this thread did the work, ``None`` when another
        thread did it (this one waited for it to finish). When that other thread failed,
        this one tries in its turn. ``check`` is called while waiting and may raise to stop
        waiting (a cancelled operation).
        """
        while True:
            with self._lock:
                if self._done.get(key, -1.0) >= looked:
                    return None
                running = self._running.get(key)
                if running is None:
                    mine = self._running[key] = threading.Event()
            if running is None:
                return self._run(key, mine, work)
            while not running.wait(_POLL):
                check()

    def _run(self, key: Hashable, event: threading.Event, work: Callable[[], T]) -> T:
        done = False
        try:
            result = work()
            done = True
            return result
        finally:
            with self._lock:
                del self._running[key]
                if done:
                    self._done[key] = time.monotonic()
            event.set()
