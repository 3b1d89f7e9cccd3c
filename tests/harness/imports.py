"""What a `regshift tag` process must not import; shared by the tag test and the benchmark."""

from __future__ import annotations

__all__ = ["NOT_FOR_TAG"]

#: Copying, layouts (and their storage backend), referrers (and the fallback-index schema),
#: the image graph, inspection and progress bars (rich, pygments): a tag uses none. It reads
#: and writes through regshift.storage and regshift.storage.registry only.
NOT_FOR_TAG = (
    "rich",
    "pygments",
    "regshift.copying",
    "regshift.graph",
    "regshift.layout",
    "regshift.referrers",
    "regshift.storage.oci",
    "regshift.storage.fallback",
    "regshift.inspection",
    "regshift.indexes",
    "regshift.progress",
    "regshift.ops",
    "regshift.sample",
    "regshift.cli.copying",
    "regshift.cli.progress",
    "regshift.cli.inspecting",
)
