"""Progress as data: the library reports events, the CLI decides how (or whether) to draw them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class ProgressState(StrEnum):
    """Where one blob or manifest is in a copy."""

    SKIPPED = "skipped"  # already at the destination
    MOUNTED = "mounted"  # cross-repository mount: no bytes moved
    STARTED = "started"  # streaming began
    PROGRESS = "progress"  # more bytes moved (``done`` of ``total``)
    RETRYING = "retrying"  # the transfer failed and is being resumed or restarted
    DONE = "done"  # streamed and committed
    FAILED = "failed"
    WRITTEN = "written"  # a manifest or tag was PUT


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One progress report.

    Attributes:
        kind: ``blob``, ``manifest`` or ``tag``.
        digest: the blob or manifest digest (for ``tag``: the tag name).
        state: what happened.
        done: bytes moved so far for this item.
        total: the item's size in bytes.
        destination: the destination repository (``registry/repository``).
    """

    kind: str
    digest: str
    state: ProgressState
    done: int = 0
    total: int = 0
    destination: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def ignore(_: ProgressEvent) -> None:
    """The default callback: report nothing."""
