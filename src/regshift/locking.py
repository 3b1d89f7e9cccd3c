"""Advisory file locks between regshift processes, waiting a bounded time.

POSIX (Linux, macOS): ``flock`` on the whole file, advisory, released when the descriptor
is closed. Windows: ``msvcrt.locking`` of one byte at :data:`WINDOWS_LOCK_OFFSET`. Windows
byte-range locks are mandatory (a locked range cannot be read by anyone else), so the byte
lies far past the end of any file regshift locks (Windows allows locking beyond the end of
a file): other programs reading the file are never blocked, only other regshift lockers.

Imports nothing of ours. ``fcntl`` / ``msvcrt`` are imported, each only on its platform, when
a lock is taken: only writers lock, and this module is imported on paths where nothing is
written.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable

#: flock errors meaning "this file system cannot lock", not "this lock failed".
NO_FLOCK = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})

#: Where the Windows lock byte lies: 1 GiB into the file, past the end of any lock file,
#: ``oci-layout`` or ``capabilities.json.lock`` (kept below 2 GiB for 32-bit offsets).
WINDOWS_LOCK_OFFSET = 1 << 30

# msvcrt.locking reports through the C runtime's errno: a range another handle holds is
# EACCES (ERROR_LOCK_VIOLATION); a file system that cannot lock (ERROR_INVALID_FUNCTION,
# ERROR_NOT_SUPPORTED) is EINVAL, the runtime's mapping of unknown Windows errors.
_WINDOWS_BUSY = frozenset({errno.EACCES})
_WINDOWS_NO_LOCK = frozenset({errno.EINVAL})


def lock_within(fd: int, seconds: float, poll: float = 0.01) -> bool:
    """Take an exclusive lock on ``fd``, waiting at most ``seconds``.

    Returns:
        True once locked, or when the file system cannot lock at all (there is nothing to
        wait for); False when another holder kept it for ``seconds`` (a stopped process: a
        crashed one releases its locks with its descriptors).

    Raises:
        OSError: any other failure to lock.
    """
    windows = sys.platform == "win32"
    return wait_for_lock(lambda: _try_lock(fd), seconds, poll, windows=windows)


def unlock(fd: int) -> None:
    """Release a lock taken by :func:`lock_within` before ``fd`` is closed.

    Closing releases it anyway; Windows releases a closed handle's locks only "when system
    resources allow", so holders unlock explicitly. Failures are ignored (nothing was held).
    """
    try:
        if sys.platform == "win32":
            import msvcrt

            os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        pass


def wait_for_lock(
    try_lock: Callable[[], None], seconds: float, poll: float, *, windows: bool
) -> bool:
    """Call ``try_lock`` (a non-blocking lock attempt) until it succeeds, at most ``seconds``.

    ``windows`` says how to read its failures (see :func:`lock_failure`). Returns as
    :func:`lock_within` does.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            try_lock()
            return True
        except OSError as exc:
            failure = lock_failure(exc, windows=windows)
            if failure == "unsupported":
                return True
            if failure != "busy":
                raise
            if time.monotonic() >= deadline:
                return False
        time.sleep(poll)


def lock_failure(exc: OSError, *, windows: bool) -> str:
    """What a failed non-blocking lock means: ``"busy"`` (another holder),
    ``"unsupported"`` (the file system cannot lock) or ``"error"``."""
    if windows:
        busy = exc.errno in _WINDOWS_BUSY
        unsupported = exc.errno in _WINDOWS_NO_LOCK
    else:
        busy = isinstance(exc, BlockingIOError)  # EWOULDBLOCK / EAGAIN
        unsupported = exc.errno in NO_FLOCK
    return "busy" if busy else "unsupported" if unsupported else "error"


def _try_lock(fd: int) -> None:
    """One non-blocking attempt at the platform's lock; raises OSError when it fails."""
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)  # msvcrt locks from the file position
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
