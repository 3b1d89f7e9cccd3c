"""Reading layer bytes: chunks as a file, decompression chosen by the content's magic bytes,
and a tar check that reads a whole archive as it streams past.

The compression is sniffed rather than taken from the media type: Docker's
``rootfs.diff.tar.gzip`` type is also found on uncompressed layers (old ``docker save``
output), and containerd and umoci sniff the same way.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Protocol, cast

from ..errors import InvalidLayerSource, LayerError

CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE
#: Names are UTF-8 (PAX); bytes that are not survive as surrogates, both ways.
ENCODING, ERRORS = "utf-8", "surrogateescape"

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Compressions a layer may not use (the OCI image-spec allows gzip and zstd only).
_REFUSED = ((b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"), (b"\x04\x22\x4d\x18", "lz4"))


def compression(head: bytes) -> str:
    """``gzip``, ``zstd`` or ``tar`` (none), from the first bytes of a layer.

    Raises:
        LayerError: the bytes are compressed in a way a layer may not be.
    """
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    for magic, name in _REFUSED:
        if head.startswith(magic):
            raise LayerError(f"compressed with {name}; a layer is a tar, gzip or zstd")
    return "tar"


class Readable(Protocol):
    """Anything with ``read``."""

    def read(self, size: int = -1, /) -> bytes: ...


class ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks; ``on_chunk`` sees each chunk once."""

    def __init__(
        self, chunks: Iterator[bytes], on_chunk: Callable[[bytes], object] | None = None
    ) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._on_chunk = on_chunk

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            if self._on_chunk is not None:
                self._on_chunk(chunk)
            self._pending = memoryview(chunk)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def file_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    """The rest of an open file, in chunks of :data:`CHUNK` bytes."""
    while chunk := handle.read(CHUNK):
        yield chunk


def decompressed(raw: io.RawIOBase) -> IO[bytes]:
    """The uncompressed tar stream of a layer read from ``raw`` (compression sniffed).

    gzip may hold several members and zstd several frames: both are read to the end.

    Raises:
        LayerError: compressed with something a layer may not use.
    """
    buffered = io.BufferedReader(raw, CHUNK)
    kind = compression(buffered.peek(8)[:8])
    if kind == "gzip":
        return cast("IO[bytes]", gzip.GzipFile(fileobj=buffered, mode="rb"))
    if kind == "zstd":
        import zstandard  # only layers compressed with zstd need it

        reader = zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
        return io.BufferedReader(reader, CHUNK)
    return buffered


#: What the standard library and zstandard raise on corrupt input, translated at the boundary.
def _corrupt_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (tarfile.TarError, zlib.error, EOFError)
    errors += (gzip.BadGzipFile,)
    try:
        import zstandard
    except ImportError:  # pragma: no cover - zstandard is a dependency
        return errors
    return (*errors, zstandard.ZstdError)


@contextlib.contextmanager
def corrupt_as(what: str, error: type[LayerError] = LayerError) -> Iterator[None]:
    """Turn a decompression or tar error into one line: ``what: not a valid tar (...)``."""
    try:
        yield
    except _corrupt_errors() as exc:
        detail = str(exc) or type(exc).__name__
        raise error(f"{what}: not a valid layer tar ({detail})") from exc


def read_tar(stream: Readable) -> int:
    """Read a tar archive to its end, checking every header; return the entry count.

    Member data is read past, not kept; whatever follows the end-of-archive blocks is
    read too, so a hash fed by ``stream`` covers every byte.

    Raises:
        tarfile.TarError: a header does not parse (see :func:`corrupt_as`).
    """
    count = 0
    head = stream.read(BLOCK)
    while len(head) < BLOCK and (more := stream.read(BLOCK - len(head))):
        head += more
    if not is_empty_tar(head):  # tarfile refuses an archive with no entry at all
        prefixed = _Prefixed(head, stream)
        with tarfile.open(
            fileobj=cast("IO[bytes]", prefixed), mode="r|", encoding=ENCODING, errors=ERRORS
        ) as archive:
            for _ in entries(archive, lambda: prefixed.count):
                count += 1
    while stream.read(CHUNK):
        pass
    return count


def is_empty_tar(head: bytes) -> bool:
    """Whether a tar's first block is the end-of-archive block: a tar with no entries (a
    valid, empty layer, which :mod:`tarfile` refuses to open)."""
    return len(head) == BLOCK and not any(head)


def entries(archive: tarfile.TarFile, length: Callable[[], int]) -> Iterator[tarfile.TarInfo]:
    """Every entry of ``archive``, its headers forgotten as it goes (:func:`forget_headers`).

    An archive may end right after its last entry's data, without padding that data to a
    whole block and without the end-of-archive blocks: Go's ``archive/tar`` reads that as
    the end (umoci 0.4's ``insert`` writes such layers; umoci, containerd and docker unpack
    them), so it is the end here too. ``length()`` is the archive's length in bytes, asked
    only then; an archive cut anywhere else is refused.

    Raises:
        tarfile.TarError: a header does not parse, or the archive is cut short.
    """
    last: tarfile.TarInfo | None = None
    while True:
        try:
            member = archive.next()
        except tarfile.ReadError:
            if last is None or length() != last.offset_data + last.size:
                raise
            return
        if member is None:
            return
        last = member
        yield member
        forget_headers(archive)


class _Prefixed:
    """A readable: ``head``, then the rest of ``stream``; ``count`` bytes read so far."""

    def __init__(self, head: bytes, stream: Readable) -> None:
        self._head = head
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._read(size)
        self.count += len(data)
        return data

    def _read(self, size: int) -> bytes:
        if not self._head:
            return self._stream.read(size)
        if size < 0:
            data, self._head = self._head + self._stream.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        return data


def sniff_file(path: Path) -> bytes:
    """The first bytes of a file.

    Raises:
        InvalidLayerSource: it cannot be read.
    """
    try:
        with path.open("rb") as handle:
            return handle.read(8)
    except OSError as exc:
        raise InvalidLayerSource(f"{path}: {exc.strerror or exc}") from exc


def tar_writer(out: object) -> tarfile.TarFile:
    """A streaming PAX tar writer onto ``out`` (anything with ``write``)."""
    archive = tarfile.open(  # noqa: SIM115 - the caller closes it
        fileobj=cast("IO[bytes]", out),
        mode="w|",
        format=tarfile.PAX_FORMAT,
        encoding=ENCODING,
        errors=ERRORS,
    )
    archive.copybufsize = CHUNK  # type: ignore[attr-defined]  # real, missing from the stubs
    return archive


def forget_headers(archive: tarfile.TarFile) -> None:
    """Drop the headers a reading :class:`~tarfile.TarFile` keeps of every entry so far, so
    memory does not grow with the number of entries (only extraction needs them)."""
    archive.members.clear()  # type: ignore[attr-defined]  # real, missing from the stubs
