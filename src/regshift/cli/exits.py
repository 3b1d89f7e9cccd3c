"""Exit codes, and the one place that turns exceptions into a message and a code."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from enum import IntEnum
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from .options import CommonOptions


class ExitStatus(IntEnum):
    """Documented exit codes of every command."""

    OK = 0
    ERROR = 1  # any other registry / transport / digest error
    USAGE = 2  # bad flags or an invalid reference
    AUTH = 3  # no usable credentials, or the registry refused them
    NOT_FOUND = 4  # no such repository, tag, manifest
    PRECONDITION = 5  # --expect-digest, --no-clobber, refusals that --force overrides
    INTERRUPTED = 130  # Ctrl-C

    @classmethod
    def for_error(cls, exc: BaseException) -> ExitStatus:
        """The exit code for an exception raised by the library."""
        from ..errors import (
            AuthError,
            EntryNotFound,
            IncompatibleInputs,
            InvalidLayerSource,
            InvalidReference,
            NotFound,
            NotFoundInLayout,
            PlatformNotFound,
            PreconditionFailed,
            Unauthorized,
        )

        for kind, status in (
            (InvalidReference, cls.USAGE),
            (IncompatibleInputs, cls.USAGE),
            (InvalidLayerSource, cls.USAGE),  # a layer file or directory the user named
            (AuthError, cls.AUTH),
            (Unauthorized, cls.AUTH),
            (NotFound, cls.NOT_FOUND),
            (NotFoundInLayout, cls.NOT_FOUND),
            (PlatformNotFound, cls.NOT_FOUND),
            (EntryNotFound, cls.NOT_FOUND),
            (PreconditionFailed, cls.PRECONDITION),
        ):
            if isinstance(exc, kind):
                return status
        return cls.ERROR


#: How the CLI phrases each :attr:`RegistryError.hint <regshift.errors.RegistryError.hint>`:
#: the flags that change the setting (library messages never name them).
HINTS = {
    "timeout": " (see --timeout)",
    "trust": "; pass the registry's CA with --ca-file, or --insecure to skip verification",
    "login": "; use regshift login or --username",
    "insecure": " or mark the registry --insecure",
    "duplicates": "; use --allow-duplicate-platforms to keep both",
}


def message(exc: BaseException) -> str:
    """The error's message with the CLI's phrasing of its hint, if any."""
    from ..errors import RegistryError

    text = str(exc)
    if isinstance(exc, RegistryError) and exc.hint in HINTS:
        text = exc.with_hint(HINTS[exc.hint])
    return text


def one_line(exc: BaseException) -> str:
    """The error and its notes on a single line; a refusal that ``--force`` (which every
    command that can raise it offers) would override says so."""
    from ..errors import ForceRequired

    parts = [message(exc) or type(exc).__name__, *getattr(exc, "__notes__", [])]
    if isinstance(exc, ForceRequired):
        parts.append("use --force to go ahead anyway")
    return "; ".join(" ".join(p.split()) for p in parts)


def run_guarded(opts: CommonOptions, work: Callable[[], int]) -> None:
    """Run a command body; map every failure to one stderr line and an exit code."""
    from ..errors import RegistryError

    try:
        with _debug_logging(opts.debug):
            code = work()
        sys.stdout.flush()  # a reader gone away shows here, not at interpreter exit
    except (KeyboardInterrupt, click.Abort):  # click.Abort: Ctrl-C or Ctrl-D at a prompt
        click.echo("regshift: interrupted", err=True)
        code = ExitStatus.INTERRUPTED
    except click.ClickException as exc:
        if opts.json and isinstance(exc, click.UsageError):
            _json_error(exc, ExitStatus.USAGE)
        raise
    except RegistryError as exc:
        code = _report(opts, exc, ExitStatus.for_error(exc))
    except Exception as exc:
        if reader_gone(exc, windows=os.name == "nt", stdout_fails=_stdout_fails):
            code = _stdout_gone()
        else:
            if opts.debug:
                traceback.print_exc()
            code = _report(opts, exc, ExitStatus.ERROR, prefix="internal error: ")
    sys.exit(int(code))


def reader_gone(exc: BaseException, *, windows: bool, stdout_fails: Callable[[], bool]) -> bool:
    """Whether ``exc`` says the reader of our standard output went away.

    POSIX: a write to a pipe without reader raises BrokenPipeError (Python ignores SIGPIPE,
    so no signal kills the process; Windows has no SIGPIPE at all). Windows: the C runtime
    turns "the pipe is being closed" (ERROR_NO_DATA) into EINVAL, a plain OSError, so there
    an EINVAL counts only when ``stdout_fails()`` confirms that standard output is broken.
    """
    if isinstance(exc, BrokenPipeError):
        return True
    return windows and isinstance(exc, OSError) and exc.errno == errno.EINVAL and stdout_fails()


def _stdout_fails() -> bool:
    """Does flushing standard output fail (what a failed write left is still buffered)?"""
    try:
        sys.stdout.flush()
    except OSError:
        return True
    return False


def _report(opts: CommonOptions, exc: BaseException, code: ExitStatus, prefix: str = "") -> int:
    message = prefix + one_line(exc)
    click.echo(f"regshift: error: {message}", err=True)
    if opts.json:
        _json_error(exc, code, message)
    return code


def _json_error(exc: BaseException, code: ExitStatus, message: str | None = None) -> None:
    text = message if message is not None else one_line(exc)
    doc = {"error": {"type": type(exc).__name__, "message": text, "exitCode": int(code)}}
    click.echo(json.dumps(doc, indent=2))


def _stdout_gone() -> int:
    """The reader of our output went away (``regshift ls REPO | head -1``): not an error of
    ours. Standard output is pointed at /dev/null so the final flush at exit cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return ExitStatus.OK


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


@contextlib.contextmanager
def _debug_logging(enabled: bool) -> Iterator[None]:
    """Send the library's log to stderr for the duration of one command."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("regshift")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
