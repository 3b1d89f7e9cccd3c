"""What a `regshift tag` process must not import; shared by the tag test and the benchmark."""

from __future__ import annotations

__all__ = ["NOT_FOR_TAG"]

#: Copying, layouts, referrers, inspection and progress bars (rich, pygments): a tag uses none.
NOT_FOR_TAG = (
    "rich",
    "pygments",
    "regshift.copying",
    "regshift.layout",
    "regshift.referrers",
    "regshift.store",
    "regshift.inspection",
    "regshift.progress",
    "regshift.ops",
    "regshift.sample",
    "regshift.cli.copying",
    "regshift.cli.progress",
    "regshift.cli.inspecting",
)
