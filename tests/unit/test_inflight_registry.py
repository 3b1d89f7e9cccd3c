"""InFlight: one transfer per key at a time; the others wait, then skip or take over."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from regshift.inflight import InFlight


def _in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        try:
            out.append(target())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _holding(
    inflight: InFlight, key: str, result: object
) -> tuple[threading.Event, threading.Thread, list[object]]:
    """A thread running the work for ``key`` until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def work() -> object:
        started.set()
        release.wait(10)
        if isinstance(result, Exception):
            raise result
        return result

    thread, out = _in_thread(lambda: inflight.once(key, work, looked=time.monotonic()))
    assert started.wait(10)
    return release, thread, out


def test_a_waiter_finds_the_work_done_and_skips_it() -> None:
    inflight = InFlight()
    before = time.monotonic()
    release, holder, held = _holding(inflight, "k", "streamed")
    calls: list[str] = []
    waiter, waited = _in_thread(
        lambda: inflight.once("k", lambda: calls.append("ran"), looked=before)
    )
    waiter.join(0.3)
    assert waiter.is_alive(), "waits while the other transfer runs"
    release.set()
    holder.join(10)
    waiter.join(10)
    assert (held, waited, calls) == (["streamed"], [None], [])
    # Looked before it was placed: skipped; looked after (so it went away since): sent again.
    assert inflight.once("k", lambda: "again", looked=before) is None
    assert inflight.once("k", lambda: "again", looked=time.monotonic()) == "again"


def test_a_waiter_takes_over_when_the_transfer_failed() -> None:
    inflight = InFlight()
    release, holder, held = _holding(inflight, "k", RuntimeError("dropped"))
    waiter, waited = _in_thread(lambda: inflight.once("k", lambda: "mine", looked=time.monotonic()))
    release.set()
    holder.join(10)
    waiter.join(10)
    assert isinstance(held[0], RuntimeError)
    assert waited == ["mine"]


def test_unrelated_keys_do_not_wait() -> None:
    inflight = InFlight()
    release, holder, _ = _holding(inflight, "a", "streamed")
    try:
        assert inflight.once("b", lambda: "other", looked=time.monotonic()) == "other"
    finally:
        release.set()
        holder.join(10)


def test_a_cancelled_waiter_stops_waiting() -> None:
    inflight = InFlight()
    release, holder, _ = _holding(inflight, "k", "streamed")

    def cancelled() -> None:
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            inflight.once("k", lambda: "mine", looked=time.monotonic(), check=cancelled)
    finally:
        release.set()
        holder.join(10)
