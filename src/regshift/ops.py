"""Small verbs: digest, manifest, tags, delete, login.

``digest``, ``manifest``, ``list_tags`` and ``delete`` work on any
:class:`~regshift.storage.Repository`: a registry reference, or an OCI layout
(``oci:PATH[:TAG]``, ``oci:PATH@DIGEST`` or a :class:`LayoutReference`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .auth.credentials import Credential, StaticKeychain, erase_credential, store_credential
from .client import Client, ClientOptions
from .errors import APIError, ForceRequired, NotFound, Unsupported
from .manifests import Descriptor, Manifest
from .mediatypes import is_index
from .reference import Reference
from .storage import ManifestDeleter, Repository, open_repository, scoped

if TYPE_CHECKING:
    from .layout_reference import LayoutReference


def _identifier(repo: Repository) -> str:
    return repo.identifier or "latest"


def digest(client: Client, ref: str | Reference | LayoutReference) -> Descriptor:
    """Resolve ``ref`` to its manifest descriptor (HEAD, falling back to GET + sha256)."""
    repo = open_repository(client, ref)
    return repo.resolve(_identifier(repo))


def manifest(client: Client, ref: str | Reference | LayoutReference) -> Manifest:
    """The manifest of ``ref``, with ``raw`` exactly as the registry stores it."""
    repo = open_repository(client, ref)
    return repo.get_manifest(_identifier(repo))


def list_tags(client: Client, repository: str | Reference | LayoutReference) -> list[str]:
    """Every tag of ``repository`` (a name without tag or digest), across all pages."""
    return open_repository(client, repository, repository=True).list_tags()


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """What :func:`delete` removed.

    Attributes:
        reference: what the user asked to delete.
        digest: the manifest digest involved.
        method: ``tag`` (the registry deleted just the tag) or ``digest`` (the manifest went).
        removed_tags: every tag that no longer exists because of this delete.
        dry_run: nothing was deleted.
        broken_indexes: (``force`` only) tags of indexes that list the deleted manifest and
            now name a manifest the registry no longer has.
        unexamined: (``force`` only) tags of the repository past ``max_tags``, not looked at.
    """

    reference: Reference | LayoutReference
    digest: str
    method: str
    removed_tags: tuple[str, ...]
    dry_run: bool = False
    broken_indexes: tuple[str, ...] = ()
    unexamined: int = 0


#: Tags :func:`delete` looks at before deleting a manifest by digest (a HEAD each, and a GET
#: of each index among them); a repository with more is refused unless ``force`` is set.
MAX_DELETE_TAGS = 1000


def delete(
    client: Client,
    ref: str | Reference | LayoutReference,
    *,
    force: bool = False,
    dry_run: bool = False,
    max_tags: int = MAX_DELETE_TAGS,
) -> DeleteResult:
    """Remove a tag, or (with ``force`` when it is in use) a manifest by digest.

    A tag is deleted with the registry's tag-delete API when it has one. Registries without
    it (distribution 2.8 answers 400 ``DIGEST_INVALID``) can only delete the manifest, which
    takes every tag pointing at it along, and leaves every index listing it (a multi-platform
    image whose platform is also tagged on its own) naming a manifest that is gone. Before a
    manifest is deleted, the first ``max_tags`` tags of the repository are looked at: a HEAD
    each, and a GET of each index, whose own entries are compared (nested indexes are not
    followed further). The delete goes ahead only when no other tag points at the manifest,
    no tagged index lists it, and the repository has no more tags than were looked at;
    otherwise the tags concerned are named and ``force`` is required. Indexes that are not
    tagged (pushed by digest only) cannot be found this way.

    In an OCI layout only tags can be deleted (an ``index.json`` entry; the blobs stay), and
    nothing can break: an index listing the manifest still finds it in ``blobs/``.

    Raises:
        ForceRequired: the delete would remove other tags or break a tagged index, or the
            repository has more than ``max_tags`` tags, and ``force`` is not set.
        Unsupported: the registry does not allow deletes at all.
        LayoutError: a layout reference without a tag.
    """
    repo = open_repository(client, ref)
    if not isinstance(repo, ManifestDeleter):
        return _untag(repo, dry_run)
    repo = scoped(repo, "pull,delete")
    check = _Check(repo, force, max_tags)
    if repo.digest:
        if dry_run:  # the real run would find out with its DELETE
            repo.resolve(repo.digest)
        return _delete_digest(check, repo, repo.digest, dry_run, asked_tag=None)
    asked = _identifier(repo)
    found = repo.resolve(asked)
    if dry_run:
        return _delete_digest(check, repo, found.digest, dry_run, repo.tag)
    try:
        repo.delete(asked)
        return DeleteResult(repo.reference, found.digest, "tag", (asked,))
    except APIError as exc:
        if not _no_tag_delete(exc):
            raise
        return _delete_digest(check, repo, found.digest, dry_run, repo.tag, refused=exc)


def _untag(repo: Repository, dry_run: bool) -> DeleteResult:
    """Where tags are entries of their own (a layout): delete the tag, nothing else."""
    if repo.tag is None:
        repo.delete(repo.digest or "")  # refused: only tags can be deleted here
    tag = repo.tag or ""
    found = repo.resolve(tag)
    if not dry_run:
        repo.delete(tag)
    return DeleteResult(repo.reference, found.digest, "tag", (tag,), dry_run)


def _no_tag_delete(exc: APIError) -> bool:
    """Whether a tag DELETE failed only because the registry cannot delete tags."""
    return isinstance(exc, Unsupported) or exc.status == 400 or "DIGEST_INVALID" in exc.codes


@dataclass(frozen=True, slots=True)
class _Check:
    """What deleting a manifest by digest is checked against: the repository's tags."""

    repo: Repository
    force: bool
    max_tags: int


@dataclass(frozen=True, slots=True)
class _Usage:
    """Who uses a manifest, among the tags looked at."""

    tags: tuple[str, ...]  # tags pointing at it
    indexes: tuple[str, ...]  # tags of indexes listing it as an entry
    unexamined: int  # tags past the bound, not looked at


def _delete_digest(
    check: _Check,
    target: Repository,
    digest_: str,
    dry_run: bool,
    asked_tag: str | None,
    *,
    refused: APIError | None = None,
) -> DeleteResult:
    usage = _usage(check, digest_)
    if not check.force:
        _refuse_unsafe(check, target, digest_, usage, asked_tag, refused)
    if not dry_run:
        try:
            target.delete(digest_)
        except Unsupported as exc:
            exc.add_note(
                "the registry does not allow deletes (distribution: storage.delete.enabled)"
            )
            raise
    return DeleteResult(
        target.reference, digest_, "digest", usage.tags, dry_run, usage.indexes, usage.unexamined
    )


def _refuse_unsafe(
    check: _Check,
    target: Repository,
    digest_: str,
    usage: _Usage,
    asked_tag: str | None,
    refused: APIError | None,
) -> None:
    others = [t for t in usage.tags if t != asked_tag]
    problems = []
    if others:
        problems.append(f"would also remove tag(s) {', '.join(others)}")
    if usage.indexes:
        problems.append(
            f"is listed by index tag(s) {', '.join(usage.indexes)}, which would be left naming "
            "a manifest the registry no longer has"
        )
    if usage.unexamined:
        problems.append(
            f"may be used by the {usage.unexamined} tag(s) past the first {check.max_tags} "
            "looked at"
        )
    if not problems:
        return
    # distribution answers a tag DELETE 405 UNSUPPORTED when it allows no deletes at all,
    # and 400 DIGEST_INVALID when it only cannot delete tags: say which it may be.
    maybe = (
        " (it refused to delete the tag with 405: it may allow no deletes at all)"
        if isinstance(refused, Unsupported)
        else ""
    )
    what = "the registry can only delete manifest" if asked_tag else "manifest"
    raise ForceRequired(
        f"{target.reference}: {what} {digest_}, which {'; and '.join(problems)}{maybe}"
    )


def _usage(check: _Check, digest_: str) -> _Usage:
    """The tags pointing at ``digest_`` and the tagged indexes listing it, among the first
    ``max_tags`` tags: one HEAD per tag (a GET where the HEAD names no usable digest, so a
    missing header cannot hide a tag), and a GET per index."""
    if not digest_.startswith("sha256:"):
        # Tags resolve to sha256 digests (a HEAD's, else the bytes'), and index entries name
        # sha256 digests: compare the same content, by the sha256 of the manifest ``digest_``
        # names (a verified GET).
        digest_ = check.repo.get_manifest(digest_).digest
    names = check.repo.list_tags()
    tags, indexes = [], []
    for name in names[: check.max_tags]:
        try:
            found = check.repo.resolve(name)
            if found.digest == digest_:
                tags.append(name)
            elif _lists(check, name, found, digest_):
                indexes.append(name)
        except NotFound:  # deleted since the listing
            continue
    return _Usage(tuple(tags), tuple(indexes), max(0, len(names) - check.max_tags))


def _lists(check: _Check, tag: str, found: Descriptor, digest_: str) -> bool:
    """Whether the manifest at ``tag`` is an index with an entry ``digest_`` (one level: an
    index whose entries are indexes is not followed further)."""
    if found.media_type and not is_index(found.media_type):
        return False  # a HEAD without Content-Type is read to find out
    index = check.repo.get_manifest(tag)
    return index.is_index and any(child.digest == digest_ for child in index.manifests)


def login(
    registry: str,
    username: str,
    password: str,
    *,
    options: ClientOptions | None = None,
    config_path: Path | None = None,
) -> str:
    """Check the credentials against ``registry`` and store them in Docker's format.

    Returns:
        Where they were stored (a file or a credential helper), never the secret.

    Raises:
        AuthError / Unauthorized: the registry or its token server refused them.
    """
    cred = Credential(username=username, password=password, source="login")
    base = options or ClientOptions()
    with Client(replace(base, keychain=StaticKeychain(cred))) as client:
        client.ping(registry)
    return store_credential(registry, username, password, config_path=config_path)


def logout(registry: str, *, config_path: Path | None = None) -> bool:
    """Remove stored credentials for ``registry``; False when there were none."""
    return erase_credential(registry, config_path=config_path)
