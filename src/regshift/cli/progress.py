"""Drawing progress: rich bars on a terminal, log lines with -v, nothing otherwise."""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import ProgressColumn, Task

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
    """A rich progress bar per blob being streamed (bytes and rate), on stderr.

    A finished blob shows its average rate, a skipped or mounted one no rate (nothing
    moved); a blob that starts over (a new upload session) says so next to its bar.
    """

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            _rate_column(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[tuple[str, str], Any] = {}
        self._notes: dict[Any, str] = {}
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
        label = f"{event.kind} {event.digest.split(':')[-1][:12]}"
        with self._lock:
            task = self._tasks.get(key)
            if task is None:
                task = self._progress.add_task(label, total=event.total or None, moved=False)
                self._tasks[key] = task
        if event.state in (ProgressState.SKIPPED, ProgressState.MOUNTED, ProgressState.WRITTEN):
            self._progress.update(task, description=f"{label} {event.state}", completed=event.total)
            return
        at = next((t.completed for t in self._progress.tasks if t.id == task), 0)
        if event.state is ProgressState.RETRYING or event.done < at:
            # The blob starts over in a new upload session: its bar goes back to 0.
            self._notes[task] = f"restarted (was at {_size(at)})"
        finished = "done" if event.state is ProgressState.DONE else ""
        self._progress.update(
            task,
            description=" ".join(filter(None, (label, finished, self._notes.get(task)))),
            completed=0 if event.state is ProgressState.RETRYING else event.done,
            moved=True,
        )


def _size(count: float) -> str:
    from rich.filesize import decimal

    return decimal(int(count))


def _rate_column() -> ProgressColumn:
    """Bytes per second while streaming and the average once done; blank (not ``?``) for
    blobs that moved nothing (skipped, mounted) or have no rate yet."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            if not task.fields.get("moved"):
                return Text("")
            speed = task.finished_speed or task.speed
            if speed is None and task.finished and task.elapsed:
                speed = task.completed / task.elapsed
            if not speed:
                return Text("")
            return Text(f"{_size(speed)}/s", style="progress.data.speed")

    return RateColumn()


def make_display(verbose: bool, quiet: bool) -> NullDisplay | LineDisplay | BarDisplay:
    """Pick the display for this run."""
    if quiet:
        return NullDisplay()
    if sys.stderr.isatty():
        return BarDisplay()
    return LineDisplay() if verbose else NullDisplay()
