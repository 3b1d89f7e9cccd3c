"""A directory as a deterministic tar: the same tree gives the same bytes.

Names are sorted (parents before children), owners are numeric 0:0 with no user or group
names, file modes (with setuid, setgid, sticky) and whole-second modification times are
kept, times clamped to ``SOURCE_DATE_EPOCH`` when one is given. Symlinks stay symlinks;
files hard-linked inside the tree become tar hard links to the first name. Extended
attributes are not recorded: they differ between hosts (SELinux labels) and would make the
digest depend on the machine. Sockets cannot be in a tar and are left out. The directory
itself has no entry: its content is the image's root.
"""

from __future__ import annotations

import os
import stat
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import InvalidLayerSource
from .reading import tar_writer

_TYPES = (
    (stat.S_ISDIR, tarfile.DIRTYPE),
    (stat.S_ISLNK, tarfile.SYMTYPE),
    (stat.S_ISREG, tarfile.REGTYPE),
    (stat.S_ISCHR, tarfile.CHRTYPE),
    (stat.S_ISBLK, tarfile.BLKTYPE),
    (stat.S_ISFIFO, tarfile.FIFOTYPE),
)


def walk(root: Path) -> Iterator[tuple[str, Path]]:
    """``(name in the tar, path)`` of everything under ``root``, depth first, sorted."""
    try:
        with os.scandir(root) as scan:
            names = sorted(entry.name for entry in scan)
    except OSError as exc:
        raise InvalidLayerSource(f"{root}: {exc.strerror or exc}") from exc
    for name in names:
        path = root / name
        yield name, path
        if path.is_dir() and not path.is_symlink():
            for sub, subpath in walk(path):
                yield f"{name}/{sub}", subpath


def header(
    name: str, path: Path, epoch: int | None, seen: dict[tuple[int, int], str]
) -> tarfile.TarInfo | None:
    """The tar header of one file (None for a socket); ``seen`` maps inodes of hard-linked
    files to the first name they were written under."""
    st = path.lstat()
    kind = next((t for test, t in _TYPES if test(st.st_mode)), None)
    if kind is None:
        return None
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime) if epoch is None else min(int(st.st_mtime), epoch)
    if kind == tarfile.SYMTYPE:
        info.linkname = os.readlink(path)
    elif kind == tarfile.REGTYPE:
        first = seen.setdefault((st.st_dev, st.st_ino), name) if st.st_nlink > 1 else name
        if first != name:
            info.type, info.linkname = tarfile.LNKTYPE, first
        else:
            info.size = st.st_size
    elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE) and sys.platform != "win32":
        # Device files exist on POSIX only (Windows has no st_rdev, os.major, os.minor).
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info


def write_directory(root: Path, out: object, *, epoch: int | None) -> None:
    """Write the tar of everything under ``root`` to ``out``.

    Raises:
        InvalidLayerSource: a file cannot be read.
    """
    seen: dict[tuple[int, int], str] = {}
    with tar_writer(out) as archive:
        for name, path in walk(root):
            try:
                info = header(name, path, epoch, seen)
                if info is None:
                    continue
                if info.isreg():
                    with path.open("rb") as handle:
                        archive.addfile(info, handle)
                else:
                    archive.addfile(info)
            except OSError as exc:
                raise InvalidLayerSource(f"{path}: {exc.strerror or exc}") from exc
