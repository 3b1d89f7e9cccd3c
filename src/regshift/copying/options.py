"""What a copy is asked to do and what it reports: options, blob steps, results."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ..manifests import Descriptor, Platform
from ..progress import ProgressCallback, ignore
from ..transport import default_jobs

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyOptions:
    """How to copy.

    Attributes:
        platforms: copy only these platforms of an index (empty, or every one: digest kept);
            :class:`Platform` s or strings such as ``"linux/arm64"`` (parsed with
            :meth:`Platform.parse`).
        jobs: blobs transferred at once.
        dry_run: plan only; write nothing.
        include_foreign: also copy non-distributable (foreign) layers.
        force: copy even when the destination tag already has the source digest, and write
            a destination tag that is a referrers tag (``sha256-<hex>``), replacing that list.
        chunk_size: bytes per PATCH for chunked uploads (also the most re-sent on resume).
        chunked_threshold: blobs larger than this are uploaded in chunks.
        referrers: also copy the referrers (signatures, SBOMs, attestations) of every manifest
            copied, recursively, and list them at the destination as it supports.
        digest_tags: also copy the legacy cosign tags ``sha256-<hex>.sig/.att/.sbom``.
        attempts: tries per blob before the copy fails (resumes do not count).
        progress: receives :class:`ProgressEvent` s. Events come from worker threads, but
            calls are serialised (one at a time, under one lock), so a plain ``print`` or a
            non-thread-safe callback is safe; keep it quick, transfers wait for it.

    Raises:
        ValueError: a platform string is not ``os/arch[/variant]``.
        TypeError: a platform is neither a string nor a :class:`Platform`.
    """

    platforms: tuple[Platform, ...] = ()
    jobs: int = field(default_factory=lambda: default_jobs())
    dry_run: bool = False
    include_foreign: bool = False
    force: bool = False
    chunk_size: int = 16 * MiB
    chunked_threshold: int = 512 * MiB
    attempts: int = 3
    referrers: bool = False
    digest_tags: bool = False
    progress: ProgressCallback = ignore

    def __post_init__(self) -> None:
        if isinstance(self.platforms, str | Platform):  # one platform, not its characters
            object.__setattr__(self, "platforms", (self.platforms,))
        object.__setattr__(self, "platforms", tuple(_platform(p) for p in self.platforms))


def _platform(value: object) -> Platform:
    if isinstance(value, Platform):
        return value
    if isinstance(value, str):
        return Platform.parse(value)
    raise TypeError(f"platforms: expected 'os/arch[/variant]' or a Platform, not {value!r}")


class BlobAction(StrEnum):
    """What a copy does (or, in a dry run, would do) with one blob."""

    SKIP = "skip"
    MOUNT = "mount"
    STREAM = "stream"
    FOREIGN = "foreign"  # non-distributable layer, not copied


@dataclass(frozen=True, slots=True)
class BlobStep:
    """One blob of the plan and what happened to it (``outcome`` is set after the copy)."""

    descriptor: Descriptor
    action: BlobAction
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What one ``copy`` to one destination did.

    ``blobs`` and ``bytes`` count by outcome: ``mounted``, ``streamed``, ``skipped``.
    ``manifests`` counts manifest writes at the destination, each once however often its
    request was retried: child manifests, the image by digest before its referrers, every
    referrer (and its children), every write of a referrers fallback index, cosign digest
    tags, and the tag itself. ``requests`` counts every HTTP request sent for it.
    """

    source: str
    destination: str
    digest: str
    media_type: str
    tags: tuple[str, ...]
    previous: str | None
    blobs: dict[str, int]
    bytes: dict[str, int]
    manifests: int
    requests: int
    seconds: float
    dry_run: bool = False
    up_to_date: bool = False
    steps: tuple[BlobStep, ...] = ()
    notes: tuple[str, ...] = ()
    resent_bytes: int = 0
    referrers: tuple[str, ...] = ()
    digest_tags: tuple[str, ...] = ()
    retries: int = 0


@dataclass(frozen=True, slots=True)
class RepositoryCopyResult:
    """What ``copy --all-tags`` did, tag by tag."""

    source: str
    destination: str
    results: tuple[CopyResult, ...]
    excluded: tuple[str, ...]
    requests: int
    seconds: float
