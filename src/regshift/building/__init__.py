"""Build images server-side, without pulling: merge, mutate, rebase, and a base plus new
layers (the core of ``append`` and ``flatten``).

A build reads only manifests and configs of its inputs (registry images or ``oci:``
layouts), composes one image per platform, and writes the result through the copy
machinery: layers on the destination's registry are mounted (no bytes move), others are
streamed once and verified, new configs and layer files uploaded; then child manifests, the
index, and the tag, last. What it creates is written in one stable JSON form, with no "now"
timestamps unless asked, so the same inputs give the same digest.

The package, by job: :mod:`.options` (options, config changes, the new-layer interface,
results), :mod:`.configs` (history and config edits, pure), :mod:`.inputs` (reading the
inputs, pairing them by platform), :mod:`.plan` (one image: layers and their sources, media
types, manifest, index), :mod:`.writing` (blobs, manifests, tag; the result) and
:mod:`.verbs` (``merge``, ``mutate``, ``rebase``, ``build``, ``append``, ``flatten``).
"""

from .options import (
    BuildOptions,
    BuildResult,
    ConfigChanges,
    ImageResult,
    LayerBlob,
    LayerStep,
)
from .verbs import append, build, flatten, merge, mutate, rebase

__all__ = [
    "BuildOptions",
    "BuildResult",
    "ConfigChanges",
    "ImageResult",
    "LayerBlob",
    "LayerStep",
    "append",
    "build",
    "flatten",
    "merge",
    "mutate",
    "rebase",
]
