"""Drawing progress: rich bars on a terminal, log lines with -v, nothing otherwise."""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..progress import ProgressEvent


class NullDisplay:
    """Shows nothing (stderr is not a terminal and -v was not given)."""

    def __enter__(self) -> NullDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, event: ProgressEvent) -> None:
        return None


class LineDisplay(NullDisplay):
    """One line per finished blob or manifest on stderr (-v without a terminal)."""

    def __call__(self, event: ProgressEvent) -> None:
        from ..progress import ProgressState

        if event.state in (ProgressState.PROGRESS, ProgressState.STARTED):
            return
        click.echo(
            f"{event.state:>8} {event.kind} {event.digest} ({event.total} bytes)"
            f" -> {event.destination}",
            err=True,
        )


class BarDisplay:
    """A rich progress bar per blob being streamed (bytes and rate), on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> BarDisplay:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def __call__(self, event: ProgressEvent) -> None:
        from ..progress import ProgressState

        key = (event.destination, event.digest)
        with self._lock:
            task = self._tasks.get(key)
            if task is None:
                label = f"{event.kind} {event.digest.split(':')[-1][:12]}"
                task = self._progress.add_task(label, total=event.total or None)
                self._tasks[key] = task
        if event.state in (ProgressState.SKIPPED, ProgressState.MOUNTED, ProgressState.WRITTEN):
            label = f"{event.kind} {event.digest.split(':')[-1][:12]} {event.state}"
            self._progress.update(task, description=label, completed=event.total)
        else:
            self._progress.update(task, completed=event.done)


def make_display(verbose: bool, quiet: bool) -> NullDisplay | LineDisplay | BarDisplay:
    """Pick the display for this run."""
    if quiet:
        return NullDisplay()
    if sys.stderr.isatty():
        return BarDisplay()
    return LineDisplay() if verbose else NullDisplay()
