"""Flatten: one layer holding the file tree a stack of layers produces.

Each layer is streamed once from storage (its digest verified as it passes), decompressed,
and spilled to a temporary tar; only its headers are read into the tree
(:class:`~.tree.FileTree`). The result is then written in one pass from the spill files, in
a fixed order (parents first, names sorted), with numeric owners (no user or group names),
modes, times, link targets, device numbers and PAX records (extended attributes) kept.
Memory holds the headers, never a file's content; the disk holds the uncompressed layers
and the result (in the system's temporary directory, ``TMPDIR``).
"""

from __future__ import annotations

import contextlib
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO

from ..digests import DigestVerifier
from ..errors import LayerError
from ..manifests import Descriptor
from ..mediatypes import MediaType
from ..progress import ProgressCallback, ProgressEvent, ProgressState
from .blob import GzipBlob, NewLayer
from .reading import (
    BLOCK,
    CHUNK,
    ENCODING,
    ERRORS,
    ChunkReader,
    corrupt_as,
    decompressed,
    entries,
    is_empty_tar,
    tar_writer,
)
from .tree import FileTree, Inode

BlobOpener = Callable[[Descriptor], AbstractContextManager[Iterator[bytes]]]

#: PAX records the writer derives from the header itself (or that differ run to run).
_DERIVED = frozenset(
    {"path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime", "ctime",
     "hdrcharset"}
)  # fmt: skip


@contextmanager
def flatten_layers(
    open_blob: BlobOpener,
    layers: Sequence[Descriptor],
    *,
    progress: ProgressCallback | None = None,
    created_by: str = "regshift flatten",
) -> Iterator[NewLayer]:
    """One gzip layer with the file tree ``layers`` (bottom first) produce.

    Args:
        open_blob: opens a layer's bytes (e.g. :meth:`Repository.open_blob`).
        layers: the layer descriptors, in order; gzip, zstd or uncompressed.
        progress: gets ``blob`` events (started, progress with bytes read, done) per layer.
        created_by: the new layer's history ``created_by``.

    Yields:
        The layer; its blob is removed when the context exits.

    Raises:
        DigestMismatch: a layer's bytes do not match its descriptor.
        LayerError: a layer is not a valid (compressed) tar, or its entries cannot be
            applied (a hard link to nothing, a symlink loop, a sparse file).
    """
    work = Path(tempfile.mkdtemp(prefix="regshift-flatten-"))
    try:
        tree = FileTree()
        for index, desc in enumerate(layers):
            spill = work / f"layer-{index}.tar"
            _spill(open_blob, desc, spill, progress)
            _read_headers(spill, tree, index, desc)
        with GzipBlob(work / "flat.tar.gz") as blob:
            _write(tree, work, blob)
        yield blob.layer(MediaType.OCI_LAYER_GZIP, created_by)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _spill(
    open_blob: BlobOpener, desc: Descriptor, spill: Path, progress: ProgressCallback | None
) -> None:
    """Stream a layer into ``spill`` uncompressed, verifying its digest and size."""
    what = f"layer {desc.digest}"
    verifier = DigestVerifier(desc.digest, desc.size, what=what)
    report = progress or (lambda _: None)

    def seen(chunk: bytes) -> None:
        verifier.update(chunk)
        report(ProgressEvent("blob", desc.digest, ProgressState.PROGRESS, verifier.seen, desc.size))

    report(ProgressEvent("blob", desc.digest, ProgressState.STARTED, 0, desc.size))
    with open_blob(desc) as chunks, spill.open("wb") as out:
        raw = ChunkReader(iter(chunks), on_chunk=seen)
        try:
            with corrupt_as(what):
                shutil.copyfileobj(decompressed(raw), out, CHUNK)
        except LayerError:
            _drain(raw)
            verifier.verify()  # damaged on the way: say so rather than "not a tar"
            raise
        _drain(raw)
    verifier.verify()
    report(ProgressEvent("blob", desc.digest, ProgressState.DONE, verifier.seen, desc.size))


def _drain(raw: ChunkReader) -> None:
    while raw.read(CHUNK):
        pass


def _read_headers(spill: Path, tree: FileTree, index: int, desc: Descriptor) -> None:
    with spill.open("rb") as handle:
        if is_empty_tar(handle.read(BLOCK)):
            return
    with (
        corrupt_as(f"layer {desc.digest}"),
        tarfile.open(spill, mode="r:", encoding=ENCODING, errors=ERRORS) as archive,
    ):
        for member in entries(archive, lambda: spill.stat().st_size):
            tree.apply(member, index, member.offset_data)


def _write(tree: FileTree, work: Path, out: GzipBlob) -> None:
    """Write the tree as a tar, content read from the spill files."""
    first: dict[int, str] = {}  # an inode's first path: later ones are hard links to it
    with contextlib.ExitStack() as stack:
        spills: dict[int, IO[bytes]] = {}
        archive = stack.enter_context(tar_writer(out))
        for path, node in tree.walk():
            if node.inode is None:
                if node.info is not None:  # an implied directory gets no entry
                    archive.addfile(_header(path, node.info))
                continue
            inode = node.inode
            if id(inode) in first:
                link = _header(path, inode.info)
                link.type, link.linkname, link.size = tarfile.LNKTYPE, first[id(inode)], 0
                archive.addfile(link)
                continue
            first[id(inode)] = path
            if not inode.info.isreg():
                archive.addfile(_header(path, inode.info))
                continue
            archive.addfile(_header(path, inode.info), _content(inode, work, spills, stack))


def _content(
    inode: Inode, work: Path, spills: dict[int, IO[bytes]], stack: contextlib.ExitStack
) -> IO[bytes]:
    handle = spills.get(inode.source)
    if handle is None:
        handle = spills[inode.source] = stack.enter_context(
            (work / f"layer-{inode.source}.tar").open("rb")
        )
    handle.seek(inode.offset)
    return handle


def _header(path: str, info: tarfile.TarInfo) -> tarfile.TarInfo:
    """A fresh header for ``path`` with ``info``'s metadata (numeric owners only)."""
    out = tarfile.TarInfo(path)
    out.type = tarfile.REGTYPE if info.isreg() else info.type
    out.mode, out.uid, out.gid, out.mtime = info.mode, info.uid, info.gid, info.mtime
    out.uname = out.gname = ""
    out.linkname = info.linkname if info.issym() else ""
    out.size = info.size if info.isreg() else 0
    out.devmajor, out.devminor = info.devmajor, info.devminor
    out.pax_headers = {k: v for k, v in info.pax_headers.items() if k not in _DERIVED}
    return out
