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

from .capabilities import MULTI_TAG_PUSH
from .client import Client
from .digests import matches
from .errors import APIError, PreconditionFailed, RegistryError
from .manifests import Manifest
from .reference import (
    Reference,
    is_layout_reference,
    parse_reference,
    refuse_fallback_tag,
    validate_digest,
    validate_tag,
)

if TYPE_CHECKING:
    from .layout import LayoutReference

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
    source: str | Reference,
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
        source: the image, by tag or digest.
        new_tags: tags to point at the same manifest.
        expect_digest: promote only if ``source`` still resolves to this digest (sha256 or
            sha512: compared with the manifest's bytes hashed in its algorithm).
        no_clobber: refuse (before writing anything) if a tag exists at another digest.
        dry_run: look everything up, write nothing.
        raise_on_error: raise the first per-tag error after trying every tag.
        force: also write referrers tags (``sha256-<hex>``, see
            :func:`regshift.reference.is_fallback_tag`), replacing the referrers list there.

    Raises:
        ValueError: ``new_tags`` is empty (nothing is sent).
        InvalidReference: a malformed source, tag or ``expect_digest`` (nothing is sent).
        ForceRequired: a new tag is a referrers tag and ``force`` is not set (nothing is sent).
        PreconditionFailed: ``expect_digest`` or ``no_clobber`` refused (nothing is written).
        RegistryError: the source cannot be read, or (``raise_on_error``) a tag failed.
    """
    if isinstance(new_tags, str):  # one tag, not its characters
        new_tags = [new_tags]
    tags = _unique([validate_tag(t) for t in new_tags])
    if not tags:
        raise ValueError("tag: give at least one new tag")
    for name in tags:  # before anything is sent, like every other refusal here
        refuse_fallback_tag(str(source), name, force=force)
    if expect_digest is not None:
        validate_digest(expect_digest)
    if isinstance(source, str) and is_layout_reference(source):
        from .layout import parse_layout_reference

        return _tag_in_layout(
            parse_layout_reference(source), tags, expect_digest, no_clobber, dry_run
        )
    src = parse_reference(source) if isinstance(source, str) else source
    start, start_retries = client.stats.this_thread, client.stats.retries
    scopes = [src.scope("pull" if dry_run else "pull,push")]
    manifest = client.get_manifest(src, scopes=scopes)
    _check_expected(str(src), manifest, expect_digest)
    previous = _lookup_previous(client, src, tags, scopes) if (no_clobber or dry_run) else {}
    if no_clobber:
        _refuse_clobber(str(src.repo_only()), manifest, previous)
    if dry_run:
        outcomes = [_planned(t, manifest, previous.get(t)) for t in tags]
    else:
        outcomes = _write_tags(client, src, manifest, tags, previous, scopes)
    result = TagResult(
        source=src,
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


def _tag_in_layout(
    src: LayoutReference,
    tags: list[str],
    expect_digest: str | None,
    no_clobber: bool,
    dry_run: bool,
) -> TagResult:
    """The same promotion inside an OCI layout: new index.json entries, same manifest bytes."""
    from .layout import Layout

    layout = Layout(src.path)
    manifest = layout.get_manifest(src.identifier or layout.default_identifier())
    _check_expected(str(src), manifest, expect_digest)
    previous = {t: (d.digest if (d := layout.head_manifest(t)) else None) for t in tags}
    if no_clobber:
        _refuse_clobber(str(src), manifest, previous)
    outcomes = []
    for name in tags:
        if dry_run or _is(manifest, previous[name]):
            outcomes.append(_planned(name, manifest, previous[name]))
        else:
            layout.put_manifest(manifest, name)
            outcomes.append(_written(name, "index.json", previous))
    return TagResult(
        source=src,
        digest=manifest.digest,
        media_type=manifest.media_type,
        size=manifest.size,
        outcomes=tuple(outcomes),
        dry_run=dry_run,
    )


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


def _lookup_previous(
    client: Client, src: Reference, tags: list[str], scopes: list[str]
) -> dict[str, str | None]:
    return {name: client.digest_of(src.with_tag(name), scopes=scopes) for name in tags}


def _refuse_clobber(where: str, manifest: Manifest, previous: dict[str, str | None]) -> None:
    taken = {t: d for t, d in previous.items() if d is not None and not _is(manifest, d)}
    if taken:
        listing = ", ".join(f"{t} -> {d}" for t, d in taken.items())
        raise PreconditionFailed(
            f"{where}: --no-clobber: tag(s) already point elsewhere ({listing}); nothing tagged"
        )


def _planned(name: str, manifest: Manifest, before: str | None) -> TagOutcome:
    if _is(manifest, before):
        return TagOutcome(name, TagAction.UNCHANGED, previous=before)
    return TagOutcome(name, TagAction.WOULD_TAG, previous=before)


def _write_tags(
    client: Client,
    src: Reference,
    manifest: Manifest,
    tags: list[str],
    previous: dict[str, str | None],
    scopes: list[str],
) -> list[TagOutcome]:
    done = {
        t: TagOutcome(t, TagAction.UNCHANGED, previous=manifest.digest)
        for t in tags
        if _is(manifest, previous.get(t))
    }
    pending = [t for t in tags if t not in done]
    if len(pending) >= 2 and client.capabilities.get(src.endpoint, MULTI_TAG_PUSH) is not False:
        for name in _multi_tag(client, src, manifest, pending, scopes):
            done[name] = _written(name, "multi-tag", previous)
    for name in (t for t in pending if t not in done):
        try:
            client.put_manifest(src.with_tag(name), manifest, scopes=scopes)
            done[name] = _written(name, "put", previous)
        except RegistryError as exc:
            log.debug("tag %s failed: %s", name, exc)
            done[name] = TagOutcome(name, TagAction.FAILED, "put", previous.get(name), exc)
    return [done[t] for t in tags]


def _multi_tag(
    client: Client, src: Reference, manifest: Manifest, tags: list[str], scopes: list[str]
) -> tuple[str, ...]:
    """Try one multi-tag PUT; return the tags the registry confirmed, learning its support."""
    try:
        result = client.put_manifest(
            src.with_digest(manifest.digest), manifest, tags=tags, scopes=scopes
        )
    except RegistryError as exc:
        # Every failure falls back to a PUT per tag (which records its own errors), but only
        # a refused query (400 / 414 / 431) says the registry lacks the feature: a denial,
        # a rate limit or a dropped connection says nothing about it.
        log.debug("multi-tag push failed on %s: %s", src.endpoint, exc)
        if isinstance(exc, APIError) and exc.status in (400, 414, 431):
            client.capabilities.set(src.endpoint, MULTI_TAG_PUSH, False)
        return ()
    if not result.checked:  # tags confirmed by looking tell nothing about the feature
        client.capabilities.set(src.endpoint, MULTI_TAG_PUSH, bool(result.tags))
    return result.tags


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
