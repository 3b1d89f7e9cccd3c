"""The worker pool of a copy and its cancellation (Ctrl-C or a first failure)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor


class Cancelled(Exception):
    """The copy was interrupted (Ctrl-C): workers stop at their next chunk."""


class Cancel:
    """A flag the main thread raises and workers check between chunks."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    @property
    def event(self) -> threading.Event:
        """Set once the copy is cancelled (pauses wait on it, so they end at once)."""
        return self._event

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled


@contextlib.contextmanager
def workers(jobs: int) -> Iterator[tuple[ThreadPoolExecutor, Cancel]]:
    """A thread pool that, on Ctrl-C or any error, tells its workers to stop, then waits."""
    cancel = Cancel()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="regshift")
    try:
        yield pool, cancel
    except BaseException:
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
