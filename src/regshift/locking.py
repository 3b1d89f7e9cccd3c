"""Advisory file locks between regshift processes (``flock``), waiting a bounded time.

Imports nothing of ours. ``fcntl`` is imported when a lock is taken: only writers lock, and
this module is imported on paths where nothing is written.
"""

from __future__ import annotations

import errno
import time

#: flock errors meaning "this file system cannot lock", not "this lock failed".
NO_FLOCK = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})


def lock_within(fd: int, seconds: float, poll: float = 0.01) -> bool:
    """Take an exclusive ``flock`` on ``fd``, waiting at most ``seconds``.

    Returns:
        True once locked, or when the file system cannot lock at all (there is nothing to
        wait for); False when another holder kept it for ``seconds`` (a stopped process: a
        crashed one releases its locks with its descriptors).

    Raises:
        OSError: any other failure of ``flock``.
    """
    import fcntl

    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
        except OSError as exc:
            if exc.errno in NO_FLOCK:
                return True
            raise
        time.sleep(poll)
