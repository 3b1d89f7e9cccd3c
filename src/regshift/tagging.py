"""Give an image more tags without pulling it: GET the manifest once, PUT the same bytes.

Requests on an open registry: 1 GET + 1 PUT per tag. With two or more tags, a registry that
supports the OCI multi-tag push (``PUT /manifests/<digest>?tag=a&tag=b``) takes them all in
one PUT; support is probed once per registry and remembered (see :mod:`capabilities`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from .client import Client
from .digests import matches
from .errors import PreconditionFailed, RegistryError
from .manifests import Manifest
from .reference import Reference, refuse_fallback_tag, validate_digest, validate_tag
from .storage import MultiTagPusher, Repository, open_repository, scoped

if TYPE_CHECKING:
    from .layout_reference import LayoutReference

log = logging.getLogger(__name__)


class TagAction(StrEnum):
    """What happened to one tag."""

    TAGGED = "tagged"  # written (previous target not looked up)
    CREATED = "created"  # written; the tag did not exist
    MOVED = "moved"  # written; the tag pointed at another digest
    UNCHANGED = "unchanged"  # already at the digest, nothing written
    WOULD_TAG = "would-tag"  # dry run: would be written
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TagOutcome:
    """The result for one new tag.

    Attributes:
        tag: the tag name.
        action: what happened.
        method: ``multi-tag`` (one PUT for several tags), ``put`` (PUT per tag) or ``none``.
        previous: the digest the tag pointed at before, when it was looked up.
        error: the error, for ``failed``.
    """

    tag: str
    action: TagAction
    method: str = "none"
    previous: str | None = None
    error: RegistryError | None = None


@dataclass(frozen=True, slots=True)
class TagResult:
    """The outcome of :func:`tag`."""

    source: Reference | LayoutReference
    digest: str
    media_type: str
    size: int
    outcomes: tuple[TagOutcome, ...]
    dry_run: bool = False
    requests: int = 0
    retries: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> tuple[TagOutcome, ...]:
        """The tags that could not be written."""
        return tuple(o for o in self.outcomes if o.action is TagAction.FAILED)

    @property
    def ok(self) -> bool:
        """Whether every tag is in place (or would be, in a dry run)."""
        return not self.failed


def tag(
    client: Client,
    source: str | Reference | LayoutReference,
    new_tags: Sequence[str],
    *,
    expect_digest: str | None = None,
    no_clobber: bool = False,
    dry_run: bool = False,
    raise_on_error: bool = True,
    force: bool = False,
) -> TagResult:
    """Add ``new_tags`` (in the same repository) to the manifest ``source`` names, byte for byte.

    Args:
        client: the client to use.
        source: the image, by tag or digest (a registry reference, or an OCI layout:
            ``oci:PATH[:TAG]`` or a :class:`LayoutReference`).
        new_tags: tags to point at the same manifest.
        expect_digest: promote only if ``source`` still resolves to this digest (sha256 or
            sha512: compared with the manifest's bytes hashed in its algorithm).
        no_clobber: refuse (before writing anything) if a tag exists at another digest.
        dry_run: look everything up, write nothing.
        raise_on_error: raise the first per-tag error after trying every tag.
        force: also write referrers tags (``sha256-<hex>``), replacing the list there.

    Raises:
        ValueError: ``new_tags`` is empty (nothing is sent).
        InvalidReference: a malformed source, tag or ``expect_digest`` (nothing is sent).
        ForceRequired: a new tag is a referrers tag and ``force`` is not set (nothing is sent).
        PreconditionFailed: ``expect_digest`` or ``no_clobber`` refused (nothing is written).
        RegistryError: the source cannot be read, or (``raise_on_error``) a tag failed.
    """
    tags = _checked(source, new_tags, expect_digest, force)
    start, start_retries = client.stats.this_thread, client.stats.retries
    repo = scoped(open_repository(client, source), "pull" if dry_run else "pull,push")
    manifest = repo.get_manifest(repo.identifier or "latest")
    _check_expected(str(repo.reference), manifest, expect_digest)
    # Where a lookup costs nothing (a layout) every tag's previous target is reported.
    lookup = no_clobber or dry_run or repo.local
    previous = {t: repo.head(t) for t in tags} if lookup else {}
    if no_clobber:
        _refuse_clobber(repo.name, manifest, previous)
    if dry_run:
        outcomes = [_planned(t, manifest, previous.get(t)) for t in tags]
    else:
        outcomes = _write_tags(repo, manifest, tags, previous)
    result = TagResult(
        source=repo.reference,
        digest=manifest.digest,
        media_type=manifest.media_type,
        size=manifest.size,
        outcomes=tuple(outcomes),
        dry_run=dry_run,
        requests=client.stats.this_thread - start,
        retries=client.stats.retries - start_retries,
    )
    if raise_on_error and result.failed:
        _raise_first(result)
    return result


def _checked(
    source: object, new_tags: Sequence[str], expect_digest: str | None, force: bool
) -> list[str]:
    """The new tags, each once, checked before anything is sent (like every refusal here)."""
    if isinstance(new_tags, str):  # one tag, not its characters
        new_tags = [new_tags]
    tags = _unique([validate_tag(t) for t in new_tags])
    if not tags:
        raise ValueError("tag: give at least one new tag")
    for name in tags:
        refuse_fallback_tag(str(source), name, force=force)
    if expect_digest is not None:
        validate_digest(expect_digest)
    return tags


def _is(manifest: Manifest, digest: str | None) -> bool:
    """Whether ``digest`` names ``manifest``'s content, in the digest's own algorithm: an
    expected ``sha512:`` digest or a registry that reports sha512 is compared with the
    sha512 of the bytes, not with their sha256."""
    return digest is not None and matches(manifest.raw, digest)


def _check_expected(where: str, manifest: Manifest, expected: str | None) -> None:
    if expected is not None and not _is(manifest, expected):
        raise PreconditionFailed(
            f"{where}: resolves to {manifest.digest}, not the expected {expected}; nothing tagged"
        )


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


def _refuse_clobber(where: str, manifest: Manifest, previous: dict[str, str | None]) -> None:
    taken = {t: d for t, d in previous.items() if d is not None and not _is(manifest, d)}
    if taken:
        listing = ", ".join(f"{t} -> {d}" for t, d in taken.items())
        raise PreconditionFailed(
            f"{where}: tag(s) already point elsewhere ({listing}); not clobbered, nothing tagged"
        )


def _planned(name: str, manifest: Manifest, before: str | None) -> TagOutcome:
    if _is(manifest, before):
        return TagOutcome(name, TagAction.UNCHANGED, previous=before)
    return TagOutcome(name, TagAction.WOULD_TAG, previous=before)


def _write_tags(
    repo: Repository, manifest: Manifest, tags: list[str], previous: dict[str, str | None]
) -> list[TagOutcome]:
    done = {
        t: TagOutcome(t, TagAction.UNCHANGED, previous=manifest.digest)
        for t in tags
        if _is(manifest, previous.get(t))
    }
    pending = [t for t in tags if t not in done]
    if len(pending) >= 2 and isinstance(repo, MultiTagPusher):
        for name in repo.put_tags(manifest, pending):
            done[name] = _written(name, "multi-tag", previous)
    for name in (t for t in pending if t not in done):
        try:
            repo.put_manifest(manifest, [name])
            done[name] = _written(name, repo.write_method, previous)
        except RegistryError as exc:
            log.debug("tag %s failed: %s", name, exc)
            done[name] = TagOutcome(
                name, TagAction.FAILED, repo.write_method, previous.get(name), exc
            )
    return [done[t] for t in tags]


def _written(name: str, method: str, previous: dict[str, str | None]) -> TagOutcome:
    if name not in previous:
        return TagOutcome(name, TagAction.TAGGED, method)
    before = previous[name]
    action = TagAction.CREATED if before is None else TagAction.MOVED
    return TagOutcome(name, action, method, before)


def _raise_first(result: TagResult) -> None:
    first = result.failed[0]
    assert first.error is not None
    ok = [o.tag for o in result.outcomes if o.action is not TagAction.FAILED]
    if ok:
        first.error.add_note(f"tags written: {', '.join(ok)}")
    raise first.error
