"""Small verbs on top of :class:`Client`: digest, manifest, tags, delete, login.

``digest``, ``manifest``, ``list_tags`` and ``delete`` also take OCI layout references
(``oci:PATH[:TAG]``, ``oci:PATH@DIGEST``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .auth.credentials import Credential, StaticKeychain, erase_credential, store_credential
from .client import Client, ClientOptions
from .errors import APIError, PreconditionFailed, Unsupported
from .layout import (
    Layout,
    LayoutError,
    LayoutReference,
    is_layout_reference,
    parse_layout_reference,
)
from .manifests import Descriptor, Manifest
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
    """

    reference: Reference | LayoutReference
    digest: str
    method: str
    removed_tags: tuple[str, ...]
    dry_run: bool = False


def delete(
    client: Client, ref: str | Reference, *, force: bool = False, dry_run: bool = False
) -> DeleteResult:
    """Remove a tag, or (with ``force`` when it is tagged) a manifest by digest.

    A tag is deleted with the registry's tag-delete API when it has one. Registries without
    it (distribution 2.8 answers 400 ``DIGEST_INVALID``) can only delete the manifest, which
    takes every tag pointing at it along: that is done silently only when no other tag shares
    the digest; otherwise the tags are named and ``force`` is required.

    Raises:
        PreconditionFailed: the delete would remove other tags and ``force`` is not set.
        Unsupported: the registry does not allow deletes at all.
    """
    if isinstance(ref, str) and is_layout_reference(ref):
        return _delete_in_layout(parse_layout_reference(ref), dry_run)
    target = _ref(ref)
    scopes = [target.scope("pull,delete")]
    if target.digest:
        if dry_run:  # the real run would find out with its DELETE
            client.resolve_digest(target, scopes=scopes)
        return _delete_digest(client, target, target.digest, force, dry_run, scopes, asked_tag=None)
    found = client.resolve_digest(target, scopes=scopes)
    if dry_run:
        return _delete_digest(client, target, found.digest, force, dry_run, scopes, target.tag)
    try:
        client.delete_manifest(target, scopes=scopes)
        return DeleteResult(target, found.digest, "tag", (target.identifier,))
    except APIError as exc:
        if not _no_tag_delete(exc):
            raise
        return _delete_digest(
            client, target, found.digest, force, dry_run, scopes, target.tag, refused=exc
        )


def _delete_in_layout(ref: LayoutReference, dry_run: bool) -> DeleteResult:
    """Untag in a layout's index.json; blobs stay (layouts have no garbage collector here)."""
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


def _delete_digest(
    client: Client,
    target: Reference,
    digest_: str,
    force: bool,
    dry_run: bool,
    scopes: list[str],
    asked_tag: str | None,
    *,
    refused: APIError | None = None,
) -> DeleteResult:
    sharing = tags_pointing_at(client, target.repo_only(), digest_, scopes=scopes)
    others = [t for t in sharing if t != asked_tag]
    if others and not force:
        # distribution answers a tag DELETE 405 UNSUPPORTED when it allows no deletes at all,
        # and 400 DIGEST_INVALID when it only cannot delete tags: say which it may be.
        maybe = (
            " (it refused to delete the tag with 405: it may allow no deletes at all)"
            if isinstance(refused, Unsupported)
            else ""
        )
        raise PreconditionFailed(
            f"{target}: the registry can only delete manifest {digest_}, which would also remove "
            f"tag(s) {', '.join(others)}; use --force to delete by digest{maybe}"
        )
    if not dry_run:
        try:
            client.delete_manifest(target.repo_only().with_digest(digest_), scopes=scopes)
        except Unsupported as exc:
            exc.add_note(
                "the registry does not allow deletes (distribution: storage.delete.enabled)"
            )
            raise
    return DeleteResult(target, digest_, "digest", tuple(sharing), dry_run)


def tags_pointing_at(
    client: Client, repo: Reference, digest_: str, *, scopes: list[str] | None = None
) -> list[str]:
    """The tags of ``repo`` that currently resolve to ``digest_``: one HEAD per tag, or a GET
    where the HEAD names no usable digest (a missing header must not hide a shared tag)."""
    if not digest_.startswith("sha256:"):
        # Tags resolve to sha256 digests (a HEAD's, else the bytes'): compare the same
        # content, by the sha256 of the manifest ``digest_`` names (a verified GET).
        target = repo.repo_only().with_digest(digest_)
        digest_ = client.get_manifest(target, scopes=scopes or ()).digest
    found = []
    for name in client.list_tags(repo, scopes=scopes or ()):
        if client.digest_of(repo.with_tag(name), scopes=scopes or ()) == digest_:
            found.append(name)  # (a tag deleted since the listing resolves to None)
    return found


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
