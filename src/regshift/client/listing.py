"""The listing endpoints of :class:`~regshift.client.Client`: a repository's tags, a
registry's catalog and a manifest's referrers (the OCI referrers API), every page of each,
following ``Link`` headers (bounded, same host only).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import wire
from ..errors import APIError, ManifestError
from ..manifests import MAX_MANIFEST_BYTES, Descriptor, parse_manifest
from ..mediatypes import MediaType
from ..reference import Reference
from .answers import IDENTITY, answer_error, display, read_limited

if TYPE_CHECKING:
    from ..session import SessionPool

_MAX_TAG_PAGES = 10_000
_TAG_PAGE_SIZE = 1000  # ECR rejects n > 1000 (go-containerregistry #1091)


class Referrers(NamedTuple):
    """The answer of the OCI referrers API for one subject digest.

    Attributes:
        descriptors: the referrer descriptors (all pages).
        filtered: the registry applied the ``artifactType`` filter (``OCI-Filters-Applied``).
    """

    descriptors: tuple[Descriptor, ...]
    filtered: bool = False


class ListingEndpoints:
    """Tags, catalog and referrers, a part of :class:`~regshift.client.Client` (which
    inherits them)."""

    #: How a request reaches a registry: the client's session pool, set by ``Client``.
    _sessions: SessionPool

    # -- referrers ------------------------------------------------------------------------

    def get_referrers(
        self,
        repo: Reference,
        digest: str,
        *,
        artifact_type: str | None = None,
        scopes: Iterable[str] = (),
    ) -> Referrers | None:
        """``GET /v2/<name>/referrers/<digest>``, all pages; None when there is no such API.

        distribution 2.8 answers a plain-text 404 (no referrers API); a registry may also answer
        with something that is not an image index. Both mean: use the fallback tag schema.
        """
        found: list[Descriptor] = []
        filtered = False
        pages = self._pages(
            repo,
            f"/referrers/{digest}",
            kind="referrers",
            loops="referrers pagination loops",
            scopes=scopes,
            params=[("artifactType", artifact_type)] if artifact_type else [],
            headers={"Accept": MediaType.OCI_INDEX, **IDENTITY},
            missing_ok=True,
            stream=True,
        )
        for response in pages:
            if response.status_code == 404:
                response.close()
                return None
            raw = read_limited(response, MAX_MANIFEST_BYTES, what=f"referrers of {digest}")
            try:
                index = parse_manifest(raw, response.headers.get("content-type", ""))
            except ManifestError:
                return None
            if not index.is_index:
                return None
            found.extend(index.manifests)
            filtered = filtered or "artifactType" in response.headers.get("oci-filters-applied", "")
        return Referrers(tuple(found), filtered)

    # -- tags -----------------------------------------------------------------------------

    def list_tags(
        self, repo: Reference, *, scopes: Iterable[str] = (), page_size: int = _TAG_PAGE_SIZE
    ) -> list[str]:
        """All tags of a repository, following ``Link`` pagination (bounded, same host only)."""
        loops = "tag list pagination loops or never ends"
        pages = self._pages(repo, f"/tags/list?n={page_size}", loops=loops, scopes=scopes)
        return [tag for response in pages for tag in _tags_from(response, repo)]

    def list_repositories(self, registry: str, *, page_size: int = _TAG_PAGE_SIZE) -> list[str]:
        """Every repository of a registry (``GET /v2/_catalog``, following ``Link`` pages).

        Raises:
            Unauthorized / NotFound / Unsupported: the registry refuses or has no catalog.
        """
        root = Reference(registry=registry, repository="catalog")
        pages = self._pages(
            root,
            f"_catalog?n={page_size}",
            loops="catalog pagination loops or never ends",
            kind="_catalog",
            scopes=["registry:catalog:*"],
            api_root=True,
        )
        found: list[str] = []
        for response in pages:
            try:
                doc = response.json()
            except (ValueError, RecursionError):
                doc = None
            names = doc.get("repositories") if isinstance(doc, dict) else None
            if names is None and isinstance(doc, dict):
                continue  # an empty registry may answer {"repositories": null}
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise answer_error(root, response, "catalog is not a JSON list of strings")
            found.extend(names)
        return found

    def _pages(
        self, repo: Reference, path: str, *, loops: str, kind: str = "tags/list", **request: Any
    ) -> Iterator[wire.Response]:
        """GET ``path`` and each next page its ``Link`` header names (bounded, same host
        only; ``params`` go with the first page only); ``loops`` is the error text when the
        links go round in circles or never end."""
        from ..links import next_link  # paging only: not loaded by a tag

        next_path: str | None = path
        seen: set[str] = set()
        while next_path is not None:
            if next_path in seen or len(seen) >= _MAX_TAG_PAGES:
                raise APIError(status=200, method="GET", url=display(repo), text=loops)
            seen.add(next_path)
            response = self._sessions.request("GET", repo, next_path, **request)
            request.pop("params", None)
            yield response
            link = response.headers.get("link", "")
            repository = "" if request.get("api_root") else repo.repository
            next_path = next_link(link, repository, repo.endpoint, kind=kind)


def _tags_from(response: wire.Response, repo: Reference) -> list[str]:
    try:
        doc = response.json()
    except (ValueError, RecursionError):
        doc = None
    tags = doc.get("tags") if isinstance(doc, dict) else None
    if tags is None and isinstance(doc, dict):
        return []  # distribution answers {"name": ..., "tags": null} for an empty repository
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise APIError(
            status=response.status_code,
            method="GET",
            url=display(repo),
            text="tag list is not a JSON list of strings",
        )
    return tags
