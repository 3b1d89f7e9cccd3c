"""The ``regshift`` process's own start-up and exit: keeping the garbage collector out of them.

Only the command line may do this: the process is ours, whereas the library runs inside
other people's programs and never touches the collector.

A short command is mostly start-up and exit. Start-up imports a few hundred modules (the HTTP
layer, click, the standard library, regshift) and builds click's command tree: only objects that
live until exit, yet CPython 3.11 runs several full collections over them while importing,
and at exit one more full collection over everything before tearing the modules down. For
a two-request ``regshift tag`` that was about 60 ms of 250 (median of 15 runs on the
benchmark machine, start-up and exit each about half of it). So:

- :func:`begin` turns the collector off for start-up;
- :func:`start_up_done`, called once the command has its client (its modules are imported
  by then), freezes every object alive (never scanned again) and turns the collector back
  on for the work itself, which may run for hours;
- at interpreter exit everything is frozen again, so the final collection finds nothing
  to scan; the operating system reclaims the memory. Files are closed by ``with`` blocks
  and standard streams are flushed by the interpreter, neither depends on that collection.
"""

from __future__ import annotations

import atexit
import gc

_started = False


def begin() -> None:
    """At the start of the ``regshift`` process: no collections until the work starts."""
    global _started
    if _started:
        return
    _started = True
    gc.disable()
    atexit.register(gc.freeze)


def start_up_done() -> None:
    """The command's modules are imported: freeze what exists, collect again from here on.

    Does nothing unless :func:`begin` turned the collector off (so in-process callers of the
    click commands, such as tests, keep their collector as it was).
    """
    if _started and not gc.isenabled():
        gc.freeze()
        gc.enable()
