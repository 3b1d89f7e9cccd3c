"""What the index verbs take and give: the index format, :class:`IndexOptions` and
:class:`IndexResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ..copying.options import BlobStep
from ..layout_reference import LayoutReference
from ..manifests import Manifest, Platform
from ..progress import ProgressCallback, ignore
from ..reference import Reference
from ..transport import default_jobs
from .entries import IndexEntry, parse_platforms

Target = str | Reference | LayoutReference


class IndexFormat(StrEnum):
    """The media type of an index regshift creates."""

    OCI = "oci"  # an OCI image index (children keep their own media types)
    DOCKER = "docker"  # a Docker manifest list (every child a Docker schema 2 manifest)


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexOptions:
    """How to build or change an index.

    Attributes:
        platforms: take only these platforms from a source that is an index (a single image
            must be for one of them); :class:`Platform` s or strings (``"linux/arm64"``).
        allow_duplicate_platforms: let the index list one platform more than once (else
            refused; ``index_add`` replaces the entry it already has).
        format: the media type of a new index (``index_create``).
        referrers: also bring the referrers (signatures, SBOMs) of every child along.
        include_foreign: also copy non-distributable (foreign) layers of the children.
        dry_run: plan only; write nothing.
        jobs: blobs transferred at once.
        progress: receives :class:`ProgressEvent` s, one at a time (see ``CopyOptions``).

    Raises:
        ValueError: a platform string is not ``os/arch[/variant]``.
    """

    platforms: tuple[Platform, ...] = ()
    allow_duplicate_platforms: bool = False
    format: IndexFormat = IndexFormat.OCI
    referrers: bool = False
    include_foreign: bool = False
    dry_run: bool = False
    jobs: int = field(default_factory=lambda: default_jobs())
    progress: ProgressCallback = ignore

    def __post_init__(self) -> None:
        object.__setattr__(self, "platforms", parse_platforms(self.platforms))
        object.__setattr__(self, "format", IndexFormat(self.format))


@dataclass(frozen=True, slots=True)
class IndexResult:
    """What one index verb did (or, in a dry run, would do).

    Attributes:
        destination: where the index was written (``repository:tag``).
        index: the index written (or that would be), exact bytes.
        entries: its entries, in order.
        added / replaced / removed: entries added, entries replaced by an added one of the
            same platform (the old ones), entries removed.
        previous: what the tag pointed at before (None: nothing).
        up_to_date: the tag already pointed at this very index; nothing was written.
        blobs / bytes: the children's blobs by outcome (``mounted``, ``streamed``,
            ``skipped``), as for a copy.
        manifests: manifest writes at the destination (children, referrers, the index).
        steps: every blob planned, with its action (and outcome once copied).
        referrers: the referrers copied along.
        notes: what the user should know (an entry replaced, a platform left out).
    """

    destination: str
    index: Manifest = field(repr=False)
    entries: tuple[IndexEntry, ...]
    tags: tuple[str, ...]
    previous: str | None
    dry_run: bool = False
    up_to_date: bool = False
    added: tuple[IndexEntry, ...] = ()
    replaced: tuple[IndexEntry, ...] = ()
    removed: tuple[IndexEntry, ...] = ()
    blobs: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    manifests: int = 0
    steps: tuple[BlobStep, ...] = ()
    referrers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """The digest of the index."""
        return self.index.digest

    @property
    def media_type(self) -> str:
        return self.index.media_type
