"""What a build is asked to do and what it reports: options, config changes, new layers,
results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from ..copying import CopyOptions
from ..manifests import Descriptor, Platform
from ..progress import ProgressCallback, ignore
from ..transport import default_jobs

#: Outcomes a result counts blobs and bytes by.
OUTCOMES = ("mounted", "streamed", "uploaded", "skipped")


class LayerBlob(Protocol):
    """A layer blob on disk to add to an image (``append``, ``flatten``).

    Attributes:
        path: the blob (compressed or not, as ``media_type`` says).
        digest: the sha256 of the blob's bytes.
        size: the blob's size in bytes.
        diff_id: the sha256 of the uncompressed tar.
        media_type: an OCI layer type (``tar+gzip``, ``tar+zstd`` or ``tar``).
        created_by: the ``created_by`` of the layer's history entry.
    """

    @property
    def path(self) -> Path: ...
    @property
    def digest(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def diff_id(self) -> str: ...
    @property
    def media_type(self) -> str: ...
    @property
    def created_by(self) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildOptions:
    """How to build.

    Attributes:
        platforms: with indexes as inputs, build only these platforms (each must be in
            every input); strings such as ``"linux/arm64"`` or :class:`Platform` s.
        jobs: blobs transferred at once.
        dry_run: plan only; write nothing.
        created: the ``created`` timestamp (RFC 3339) of the new config and of every history
            entry the build adds; None keeps the config's and adds none (reproducible).
        force: write a destination tag that is a referrers tag (``sha256-<hex>``).
        progress: receives :class:`ProgressEvent` s, one call at a time (see
            :class:`~regshift.copying.CopyOptions`).

    Raises:
        ValueError: a platform string is not ``os/arch[/variant]``.
    """

    platforms: tuple[Platform, ...] = ()
    jobs: int = field(default_factory=lambda: default_jobs())
    dry_run: bool = False
    created: str | None = None
    force: bool = False
    progress: ProgressCallback = ignore

    def __post_init__(self) -> None:
        if self.created is not None:
            _check_timestamp(self.created)
        # CopyOptions parses and checks platforms the one way regshift does.
        object.__setattr__(self, "platforms", self.copy_options().platforms)

    def copy_options(self) -> CopyOptions:
        """The options of the blob transfers (the copy machinery's)."""
        return CopyOptions(platforms=self.platforms, jobs=self.jobs, progress=self.progress)


def _check_timestamp(text: str) -> None:
    """An RFC 3339 date and time, as configs hold them (``2024-05-01T12:00:00Z``)."""
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"invalid timestamp {text!r}: expected RFC 3339, e.g. 2024-05-01T12:00:00Z"
        ) from None
    if "T" not in text.upper():
        raise ValueError(f"invalid timestamp {text!r}: expected a date and a time")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigChanges:
    """Edits of an image's config (``mutate``). Labels and environment variables not named
    are kept; an empty value keeps the key with an empty value; ``remove_*`` deletes keys.

    Attributes:
        labels: ``config.Labels`` to set.
        remove_labels: labels to delete.
        env: ``config.Env`` variables to set (replaced in place, new ones appended).
        remove_env: variables to delete.
        entrypoint: the new ``Entrypoint`` (an empty sequence removes it); None keeps it.
        cmd: the new ``Cmd`` (an empty sequence removes it); None keeps it.
        user: the new ``User``; None keeps it.
        workdir: the new ``WorkingDir``; None keeps it.
        annotations: annotations of the manifest(s) written (an OCI feature: a Docker
            image given annotations is written as OCI).
    """

    labels: Mapping[str, str] = field(default_factory=dict)
    remove_labels: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    remove_env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    user: str | None = None
    workdir: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LayerStep:
    """One layer of a result and where it came from.

    ``action`` is what the plan does with its blob (``skip``, ``mount``, ``stream``,
    ``upload`` or ``foreign``); ``source`` is the repository, layout or file it comes from.
    """

    descriptor: Descriptor
    diff_id: str
    source: str
    action: str


@dataclass(frozen=True, slots=True)
class ImageResult:
    """One image (one platform) of a result: its manifest, its new config in full, its
    layers."""

    platform: str
    digest: str
    media_type: str
    config: Descriptor
    config_json: bytes = field(repr=False)
    layers: tuple[LayerStep, ...]
    config_action: str = "upload"


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What a build (merge, mutate, rebase, append, flatten) did, or would do (dry run).

    ``blobs`` and ``bytes`` count by outcome: ``mounted``, ``streamed`` (from another
    registry or layout), ``uploaded`` (made here: configs, new layers), ``skipped`` (already
    there). ``requests`` counts every request the build sent, reading its inputs included.
    """

    destination: str
    digest: str
    media_type: str
    tags: tuple[str, ...]
    platforms: tuple[str, ...]
    images: tuple[ImageResult, ...]
    blobs: dict[str, int]
    bytes: dict[str, int]
    manifests: int
    requests: int
    seconds: float
    dry_run: bool = False
    notes: tuple[str, ...] = ()
