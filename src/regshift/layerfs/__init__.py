"""Layer content: new layers made from files on disk, and flattened stacks of layers.

- :func:`layer_from_path` makes a layer blob from a directory (a deterministic tar), a tar,
  or a gzip / zstd compressed tar (used byte for byte);
- :func:`flatten_layers` streams a stack of layers and writes the one layer holding the file
  tree they produce (whiteouts applied).

Both give a :class:`NewLayer`: a blob on disk with its digest, size and ``diff_id``, found
in the one pass that wrote or read it, and removed when their context manager exits. Neither
holds a layer in memory. Both raise :class:`~regshift.errors.LayerError` for content that is
not a valid tar (:class:`~regshift.errors.InvalidLayerSource`, also a ``ValueError``, for a
path given to build from).
"""

from __future__ import annotations

from .blob import NewLayer
from .flatten import BlobOpener, flatten_layers
from .sources import layer_from_path

__all__ = ["BlobOpener", "NewLayer", "flatten_layers", "layer_from_path"]
