"""Multi-platform images assembled from single-platform ones, without pulling anything.

``index_create`` makes a new image index whose entries are the source manifests (their
bytes and digests unchanged), each with the platform its config names; ``index_add``,
``index_remove`` and ``index_annotate`` change an existing index. Every verb writes in the
same order as a copy: the children and their blobs are brought into the destination
repository first, with the copy machinery (:mod:`regshift.copying`: mounted within one
registry, streamed across registries and from layouts, verified), then the index by
digest and under its tag, last. A failure writes no tag.

What regshift writes is its one stable JSON form (:func:`regshift.storage.fallback.encode_index`):
compact, keys in a fixed order, so the same entries in the same order give the same digest.
Entries an existing index already lists are kept as they are listed, byte for byte.

The package, by job: :mod:`.entries` (entries as regshift writes them, platforms and
duplicates; pure), :mod:`.options` (options and results), :mod:`.sources` (the
destination, the sources and an existing index, read), :mod:`.writing` (children, then the
index and its tag; the result) and :mod:`.verbs` (the four verbs).
"""

from .entries import IndexEntry
from .options import IndexFormat, IndexOptions, IndexResult
from .verbs import index_add, index_annotate, index_create, index_remove

__all__ = [
    "IndexEntry",
    "IndexFormat",
    "IndexOptions",
    "IndexResult",
    "index_add",
    "index_annotate",
    "index_create",
    "index_remove",
]
