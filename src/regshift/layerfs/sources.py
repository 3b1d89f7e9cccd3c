"""A layer from a path on disk: a directory, a tar, or a gzip or zstd compressed tar.

- A compressed tarball is the blob, byte for byte: its digest is the file's sha256, and the
  ``diff_id`` is found by decompressing it as it is hashed (one read of the file, which is
  also checked to be a whole, valid tar).
- A plain tar is gzip-compressed as it is read (checked, hashed both ways, one pass).
- A directory is tarred deterministically (see :mod:`.directory`) and compressed the same way.

The compression is sniffed from the file's first bytes, not its name.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..errors import InvalidLayerSource, LayerError
from ..mediatypes import MediaType
from .blob import GzipBlob, NewLayer
from .directory import write_directory
from .reading import (
    CHUNK,
    ChunkReader,
    compression,
    corrupt_as,
    decompressed,
    file_chunks,
    read_tar,
)

_COMPRESSED_TYPES = {"gzip": MediaType.OCI_LAYER_GZIP, "zstd": MediaType.OCI_LAYER_ZSTD}


@contextmanager
def layer_from_path(path: Path, *, source_date_epoch: int | None = None) -> Iterator[NewLayer]:
    """Make a layer from a directory, a tar or a compressed tar.

    Args:
        path: the directory or file.
        source_date_epoch: for a directory, the latest modification time recorded (later
            times are clamped to it); tarballs are used as they are.

    Yields:
        The layer; a blob written for it is removed when the context exits.

    Raises:
        InvalidLayerSource: ``path`` does not exist, cannot be read, or is not a valid tar
            (or a gzip / zstd compressed one).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise InvalidLayerSource(f"{path}: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(mode):
        with _workdir() as work:
            yield _from_directory(path, work, source_date_epoch)
        return
    if not stat.S_ISREG(mode):
        raise InvalidLayerSource(f"{path}: not a directory or a regular file")
    with path.open("rb") as handle:
        try:
            kind = compression(handle.read(8))
        except LayerError as exc:
            raise InvalidLayerSource(f"{path}: {exc}") from exc
    if kind != "tar":
        yield _compressed(path, kind)
        return
    with _workdir() as work:
        yield _from_tar(path, work)


@contextmanager
def _workdir() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="regshift-layer-"))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _from_directory(path: Path, work: Path, epoch: int | None) -> NewLayer:
    with GzipBlob(work / "layer.tar.gz") as blob:
        write_directory(path, blob, epoch=epoch)
    return blob.layer(MediaType.OCI_LAYER_GZIP, f"regshift append dir:{path.name}")


def _from_tar(path: Path, work: Path) -> NewLayer:
    with GzipBlob(work / "layer.tar.gz") as blob, path.open("rb") as handle:
        reader = ChunkReader(file_chunks(handle), on_chunk=blob.write)
        with corrupt_as(str(path), InvalidLayerSource):
            read_tar(reader)
    return blob.layer(MediaType.OCI_LAYER_GZIP, f"regshift append file:{path.name}")


def _compressed(path: Path, kind: str) -> NewLayer:
    blob_hash, tar_hash = hashlib.sha256(), hashlib.sha256()
    size = 0
    with path.open("rb") as handle, corrupt_as(str(path), InvalidLayerSource):
        raw = ChunkReader(file_chunks(handle), on_chunk=blob_hash.update)
        stream = decompressed(raw)
        read_tar(_Tee(stream, tar_hash.update))
        while raw.read(CHUNK):  # anything after the end of the compressed stream
            pass
        size = handle.tell()
    return NewLayer(
        path=path,
        digest=f"sha256:{blob_hash.hexdigest()}",
        size=size,
        diff_id=f"sha256:{tar_hash.hexdigest()}",
        media_type=_COMPRESSED_TYPES[kind],
        created_by=f"regshift append file:{path.name}",
    )


class _Tee:
    """A readable that hashes what is read from it."""

    def __init__(self, stream: IO[bytes], sink: Callable[[bytes], None]) -> None:
        self._stream = stream
        self._sink = sink

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._sink(data)
        return data
