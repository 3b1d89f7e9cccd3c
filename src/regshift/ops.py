"""Small verbs on top of :class:`Client`: digest, manifest, tags, delete, login.

``digest``, ``manifest``, ``list_tags`` and ``delete`` also take OCI layout references
(``oci:PATH[:TAG]``, ``oci:PATH@DIGEST``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .auth.credentials import Credential, StaticKeychain, erase_credential, store_credential
from .client import Client, ClientOptions
from .errors import APIError, ForceRequired, NotFound, Unsupported
from .layout import (
    Layout,
    LayoutError,
    LayoutReference,
    is_layout_reference,
    parse_layout_reference,
)
from .manifests import Descriptor, Manifest
from .mediatypes import is_index
from .reference import Reference, parse_reference, parse_repository


def _ref(text: str | Reference) -> Reference:
    return parse_reference(text) if isinstance(text, str) else text


def _layout(text: str | Reference) -> tuple[Layout, str] | None:
    """The layout and identifier (tag or digest, else the layout's default) of ``oci:``."""
    if not isinstance(text, str) or not is_layout_reference(text):
        return None
    ref = parse_layout_reference(text)
    layout = Layout(ref.path)
    return layout, ref.identifier or layout.default_identifier()


def digest(client: Client, ref: str | Reference) -> Descriptor:
    """Resolve ``ref`` to its manifest descriptor (HEAD, falling back to GET + sha256)."""
    layout = _layout(ref)
    if layout is not None:
        return layout[0].resolve(layout[1])
    return client.resolve_digest(_ref(ref))


def manifest(client: Client, ref: str | Reference) -> Manifest:
    """The manifest of ``ref``, with ``raw`` exactly as the registry stores it."""
    layout = _layout(ref)
    if layout is not None:
        return layout[0].get_manifest(layout[1])
    return client.get_manifest(_ref(ref))


def list_tags(client: Client, repository: str | Reference) -> list[str]:
    """Every tag of ``repository`` (a name without tag or digest), across all pages."""
    if isinstance(repository, str) and is_layout_reference(repository):
        return Layout(parse_layout_reference(repository).path).tags()
    repo = parse_repository(repository) if isinstance(repository, str) else repository
    return client.list_tags(repo)


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
    ref: str | Reference,
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

    Raises:
        ForceRequired: the delete would remove other tags or break a tagged index, or the
            repository has more than ``max_tags`` tags, and ``force`` is not set.
        Unsupported: the registry does not allow deletes at all.
    """
    if isinstance(ref, str) and is_layout_reference(ref):
        return _delete_in_layout(parse_layout_reference(ref), dry_run)
    target = _ref(ref)
    scopes = [target.scope("pull,delete")]
    check = _Check(client, target.repo_only(), scopes, force, max_tags)
    if target.digest:
        if dry_run:  # the real run would find out with its DELETE
            client.resolve_digest(target, scopes=scopes)
        return _delete_digest(check, target, target.digest, dry_run, asked_tag=None)
    found = client.resolve_digest(target, scopes=scopes)
    if dry_run:
        return _delete_digest(check, target, found.digest, dry_run, target.tag)
    try:
        client.delete_manifest(target, scopes=scopes)
        return DeleteResult(target, found.digest, "tag", (target.identifier,))
    except APIError as exc:
        if not _no_tag_delete(exc):
            raise
        return _delete_digest(check, target, found.digest, dry_run, target.tag, refused=exc)


def _delete_in_layout(ref: LayoutReference, dry_run: bool) -> DeleteResult:
    """Untag in a layout's index.json; blobs stay (layouts have no garbage collector here).

    No tag or index can break: the manifest stays in ``blobs/``, so an index listing it still
    resolves (and a garbage collector walking from index.json keeps it for that index).
    """
    layout = Layout(ref.path)
    if ref.tag is None:
        raise LayoutError(
            f"{ref}: give a tag to delete from a layout (deleting by digest is not supported)"
        )
    found = layout.resolve(ref.tag)
    if not dry_run:
        layout.delete_tag(ref.tag)
    return DeleteResult(ref, found.digest, "tag", (ref.tag,), dry_run)


def _no_tag_delete(exc: APIError) -> bool:
    """Whether a tag DELETE failed only because the registry cannot delete tags."""
    return isinstance(exc, Unsupported) or exc.status == 400 or "DIGEST_INVALID" in exc.codes


@dataclass(frozen=True, slots=True)
class _Check:
    """What deleting a manifest by digest is checked against: the repository's tags."""

    client: Client
    repo: Reference
    scopes: list[str]
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
    target: Reference,
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
            check.client.delete_manifest(
                target.repo_only().with_digest(digest_), scopes=check.scopes
            )
        except Unsupported as exc:
            exc.add_note(
                "the registry does not allow deletes (distribution: storage.delete.enabled)"
            )
            raise
    return DeleteResult(
        target, digest_, "digest", usage.tags, dry_run, usage.indexes, usage.unexamined
    )


def _refuse_unsafe(
    check: _Check,
    target: Reference,
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
    raise ForceRequired(f"{target}: {what} {digest_}, which {'; and '.join(problems)}{maybe}")


def _usage(check: _Check, digest_: str) -> _Usage:
    """The tags pointing at ``digest_`` and the tagged indexes listing it, among the first
    ``max_tags`` tags: one HEAD per tag (a GET where the HEAD names no usable digest, so a
    missing header cannot hide a tag), and a GET per index."""
    if not digest_.startswith("sha256:"):
        # Tags resolve to sha256 digests (a HEAD's, else the bytes'), and index entries name
        # sha256 digests: compare the same content, by the sha256 of the manifest ``digest_``
        # names (a verified GET).
        target = check.repo.with_digest(digest_)
        digest_ = check.client.get_manifest(target, scopes=check.scopes).digest
    names = check.client.list_tags(check.repo, scopes=check.scopes)
    tags, indexes = [], []
    for name in names[: check.max_tags]:
        ref = check.repo.with_tag(name)
        try:
            found = check.client.resolve_digest(ref, scopes=check.scopes)
            if found.digest == digest_:
                tags.append(name)
            elif _lists(check, ref, found, digest_):
                indexes.append(name)
        except NotFound:  # deleted since the listing
            continue
    return _Usage(tuple(tags), tuple(indexes), max(0, len(names) - check.max_tags))


def _lists(check: _Check, ref: Reference, found: Descriptor, digest_: str) -> bool:
    """Whether the manifest at ``ref`` is an index with an entry ``digest_`` (one level: an
    index whose entries are indexes is not followed further)."""
    if found.media_type and not is_index(found.media_type):
        return False  # a HEAD without Content-Type is read to find out
    index = check.client.get_manifest(ref, scopes=check.scopes)
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
