"""The files of an OCI image layout: atomic writes and the lock on ``index.json``.

Every write is atomic: a temporary file in the same directory, ``fsync``, then
``os.replace``, so a crash leaves either the old or the new file, never half of one. Each
read-modify-write of ``index.json`` holds a lock shared by every :class:`~regshift.layout.Layout`
on the same directory in this process and an exclusive lock between processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..digests import DigestVerifier
from ..errors import LayoutError
from ..hostos import replace_file
from ..locking import lock_within, unlock

LAYOUT_FILE = "oci-layout"
_TMP_PREFIX = ".regshift-tmp-"
#: mkstemp creates 0600 files; layouts are shared with other tools and users.
_FILE_MODE = 0o644
_LOCK_WAIT = 60.0  # seconds another process may hold index.json before we give up

# index.json updates are read-modify-write: one lock per layout directory in this process,
# plus a lock between processes (see dir_flock and lock_target).
_INDEX_LOCKS: dict[str, threading.Lock] = {}
_INDEX_LOCKS_GUARD = threading.Lock()


def index_lock_for(path: Path) -> threading.Lock:
    """The lock for one layout's ``index.json``, shared by every :class:`Layout` on that path."""
    key = os.path.realpath(path)
    with _INDEX_LOCKS_GUARD:
        return _INDEX_LOCKS.setdefault(key, threading.Lock())


@contextlib.contextmanager
def dir_flock(directory: Path) -> Iterator[None]:
    """Hold the layout's inter-process lock (see :func:`lock_target`). Closing releases it.

    Raises:
        LayoutError: the lock target cannot be opened or locked (a file system without
            lock support is not an error: the caller goes ahead unlocked).
    """
    windows = os.name == "nt"
    target = lock_target(directory, windows=windows)
    with os_errors(f"cannot lock {directory}"):
        fd = os.open(target, os.O_RDONLY | (0 if windows else getattr(os, "O_DIRECTORY", 0)))
    try:
        _lock_within(fd, directory, _LOCK_WAIT)
        try:
            yield
        finally:
            unlock(fd)
    finally:
        os.close(fd)


def lock_target(directory: Path, *, windows: bool) -> Path:
    """What a layout update locks, so that no lock file is added to the layout.

    POSIX: the directory itself (Linux and macOS ``flock`` a directory descriptor).
    Windows cannot open a directory as a file: there it is the layout's ``oci-layout``
    file, locked at a byte far past its end (:mod:`regshift.locking`), so readers of the
    file are not blocked. Every layout has that file, and regshift never replaces it.
    """
    return directory / LAYOUT_FILE if windows else directory


def _lock_within(fd: int, directory: Path, seconds: float) -> None:
    """Take the lock, waiting at most ``seconds``; a file system that cannot lock lets
    the update go ahead unlocked, as before."""
    try:
        locked = lock_within(fd, seconds, poll=0.05)
    except OSError as exc:
        raise LayoutError(f"cannot lock {directory}: {os_reason(exc)}") from exc
    if not locked:
        raise LayoutError(
            f"cannot lock {directory}: another process has held it for {seconds:.0f} s"
        )


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def write_atomically(
    path: Path,
    chunks: Iterable[bytes],
    *,
    check: Callable[[], None] | None = None,
    errors: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> None:
    """Replace ``path`` with ``chunks``: temp file in the same directory, fsync, rename.

    ``check`` runs before anything is committed. Our own file operations run inside
    ``errors()`` (a caller may turn them into :class:`LayoutError`); what ``chunks`` or
    ``check`` raise propagates unchanged. The temporary file never outlives a failure.
    """
    with errors():
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with errors():
                    out.write(chunk)
            if check is not None:
                check()
            with errors():
                out.flush()
                os.fsync(out.fileno())
        with errors():
            os.chmod(tmp, _FILE_MODE)
            replace_file(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fed(verifier: DigestVerifier, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks``, each fed to ``verifier`` before it is passed on."""
    for chunk in chunks:
        verifier.update(chunk)
        yield chunk


def fsync_dir(directory: Path) -> None:
    """Make a rename durable; best effort (not every platform can open a directory)."""
    if os.name == "nt":  # Windows cannot open a directory as a file; NTFS journals renames
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def os_errors(doing: str) -> Iterator[None]:
    """Translate an OSError into a one-line :class:`LayoutError`: ``<doing>: <reason>``."""
    try:
        yield
    except OSError as exc:
        raise LayoutError(f"{doing}: {os_reason(exc)}") from exc


def os_reason(exc: OSError) -> str:
    return exc.strerror or one_line(str(exc))


def one_line(text: str) -> str:
    return " ".join(text.split())
