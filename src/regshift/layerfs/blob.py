"""A new layer blob: what it is (:class:`NewLayer`) and how one is written (:class:`GzipBlob`).

A layer is written in one pass: tar bytes go in, are hashed (the ``diff_id``), compressed,
hashed again (the blob digest) and written to disk, so memory does not grow with the layer.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

#: One fixed gzip level, so the same tar gives the same blob (with the same zlib); 6 is
#: zlib's and Go's default, what docker and buildkit use.
GZIP_LEVEL = 6


@dataclass(frozen=True, slots=True)
class NewLayer:
    """A layer blob on disk, ready to be added to an image.

    Attributes:
        path: the blob. A temporary file, removed when the context manager that made it
            exits; for a compressed tarball used byte for byte, the tarball itself.
        digest: sha256 of the blob's bytes.
        size: the blob's size in bytes.
        diff_id: sha256 of the uncompressed tar.
        media_type: the OCI layer media type (``tar+gzip``, ``tar+zstd`` or ``tar``).
        created_by: what made it, for the layer's history entry.
    """

    path: Path
    digest: str
    size: int
    diff_id: str
    media_type: str
    created_by: str


class HashingWriter:
    """A writable that hashes (sha256) and counts what passes through to ``target``."""

    def __init__(self, target: IO[bytes] | gzip.GzipFile) -> None:
        self._target = target
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._target.write(data)

    def flush(self) -> None:
        self._target.flush()

    @property
    def digest(self) -> str:
        return f"sha256:{self._hash.hexdigest()}"


class GzipBlob:
    """Uncompressed tar bytes in (:meth:`write`), a reproducible gzip blob out at ``path``.

    The gzip header carries no file name and a zero timestamp; :attr:`tar` hashes the
    uncompressed bytes and :attr:`blob` the compressed ones.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("wb")
        self.blob = HashingWriter(self._file)
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=self.blob, compresslevel=GZIP_LEVEL, mtime=0
        )
        self.tar = HashingWriter(self._gzip)

    def write(self, data: bytes, /) -> int:
        return self.tar.write(data)

    def __enter__(self) -> GzipBlob:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._gzip.close()
        finally:
            self._file.close()

    def layer(self, media_type: str, created_by: str) -> NewLayer:
        """The finished layer (after the ``with`` block closed the blob)."""
        return NewLayer(
            path=self.path,
            digest=self.blob.digest,
            size=self.blob.size,
            diff_id=self.tar.digest,
            media_type=media_type,
            created_by=created_by,
        )
