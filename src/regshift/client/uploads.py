"""The blob-upload endpoints of :class:`~regshift.client.Client`: an upload session started
(or a cross-repository mount asked for), chunks PATCHed, its state asked for, committed or
cancelled; and what the registry's answers must say (a ``Location`` on the registry itself,
a ``Range`` of the bytes it holds).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple

from .. import wire
from ..digests import compute_digest
from ..errors import RegistryError
from ..reference import Reference
from ..transport import printable
from .answers import answer_error

if TYPE_CHECKING:
    from ..session import QueryList, SessionPool

log = logging.getLogger(__package__)  # the client's logger: regshift.client


class UploadStart(NamedTuple):
    """The answer to starting an upload: mounted, or a session location to upload to."""

    mounted: bool
    location: str | None


class UploadStatus(NamedTuple):
    """Where an upload session stands: bytes received so far and where to send the next."""

    location: str | None
    offset: int


class UploadEndpoints:
    """Blob uploads, a part of :class:`~regshift.client.Client` (which inherits them)."""

    #: How a request reaches a registry: the client's session pool, set by ``Client``.
    _sessions: SessionPool

    def put_blob(self, ref: Reference, data: bytes, *, scopes: Iterable[str] = ()) -> str:
        """Upload a small blob monolithically (POST, then PUT with the bytes); return its digest."""
        digest = compute_digest(data)
        upload = self.start_upload(ref, scopes=scopes)
        assert upload.location is not None
        self.finish_upload(ref, upload.location, digest, data, scopes=scopes)
        return digest

    def start_upload(
        self,
        ref: Reference,
        *,
        mount: str | None = None,
        from_repository: str | None = None,
        scopes: Iterable[str] = (),
    ) -> UploadStart:
        """POST an upload session; with ``mount``, ask for a cross-repository mount first.

        Returns ``mounted=True`` on 201 (the blob is now in ``ref``'s repository), else the
        session ``location`` (a 202 to a mount request means: mount refused, upload here).
        """
        params: QueryList = []
        if mount:
            params.append(("mount", mount))
            if from_repository:
                params.append(("from", from_repository))
        push = [ref.scope("pull,push"), *scopes]
        response = self._sessions.request(
            "POST", ref, "/blobs/uploads/", scopes=push, params=params
        )
        if response.status_code == 201 and mount:
            return UploadStart(mounted=True, location=None)
        return UploadStart(
            mounted=False, location=_upload_location(ref, response, self._scheme(ref))
        )

    def finish_upload(
        self,
        ref: Reference,
        location: str,
        digest: str,
        content: bytes | Iterable[bytes] = b"",
        *,
        size: int | None = None,
        scopes: Iterable[str] = (),
    ) -> None:
        """PUT the (rest of the) blob to the session and commit it under ``digest``.

        ``content`` may be an iterator of chunks (streamed, never buffered); give ``size``
        then, so it goes out with a ``Content-Length``. A one-shot stream is never retried.
        """
        length = len(content) if isinstance(content, bytes) else size
        headers = {"Content-Type": "application/octet-stream"}
        if length is not None:
            headers["Content-Length"] = str(length)
        self._sessions.request(
            "PUT",
            ref,
            location,
            scopes=[ref.scope("pull,push"), *scopes],
            params=[("digest", digest)],
            content=content,
            headers=headers,
            retry=False,  # a lost response may hide a commit: callers check the blob first
        )

    def patch_upload(
        self,
        ref: Reference,
        location: str,
        chunk: bytes | memoryview,
        start: int,
        *,
        scopes: Iterable[str] = (),
    ) -> UploadStatus:
        """PATCH one chunk at offset ``start``; returns the next location and offset.

        The chunk goes out in 256 KiB pieces, so a large chunk is never copied whole on its
        way to the socket (memory stays at one chunk per upload).
        """
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(chunk) - 1}",  # distribution: no "bytes " unit
            "Content-Length": str(len(chunk)),
        }
        response = self._sessions.request(
            "PATCH",
            ref,
            location,
            scopes=[ref.scope("pull,push"), *scopes],
            content=_pieces(chunk),
            headers=headers,
        )
        return _upload_status(ref, response, self._scheme(ref), default=start + len(chunk))

    def upload_status(
        self, ref: Reference, location: str, *, scopes: Iterable[str] = ()
    ) -> UploadStatus:
        """GET an upload session: how many bytes the registry holds, and where to continue."""
        response = self._sessions.request(
            "GET", ref, location, scopes=[ref.scope("pull,push"), *scopes]
        )
        return _upload_status(ref, response, self._scheme(ref), default=None)

    def cancel_upload(self, ref: Reference, location: str, *, scopes: Iterable[str] = ()) -> None:
        """DELETE an upload session, best effort (cleanup after a failed copy)."""
        try:
            self._sessions.request(
                "DELETE", ref, location, scopes=[ref.scope("pull,push"), *scopes]
            )
        except RegistryError as exc:
            log.debug("cancelling upload failed: %s", exc)

    def _scheme(self, ref: Reference) -> str | None:
        """The scheme the session uses for ``ref``'s registry (an upload Location's too)."""
        return self._sessions.session(ref.endpoint).scheme


def _pieces(data: bytes | memoryview, size: int = 256 * 1024) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


def _upload_status(
    ref: Reference, response: wire.Response, scheme: str | None, default: int | None
) -> UploadStatus:
    has_location = "location" in response.headers
    location = _upload_location(ref, response, scheme) if has_location else None
    offset = _range_end(response.headers.get("range", ""))
    if offset is None:
        if default is None:
            raise answer_error(ref, response, "upload status has no Range header")
        offset = default
    return UploadStatus(location=location, offset=offset)


def _upload_location(ref: Reference, response: wire.Response, scheme: str | None) -> str:
    """The absolute upload URL of a 202 response, refusing other hosts and schemes.

    The Location must be on the registry itself -- its endpoint's host and port, over the
    scheme the session uses for it (``scheme``) -- not merely on whatever host answered:
    after a redirect, ``response.request`` is the redirect target's, which must get no
    upload (nor the registry's credentials with it).
    """
    location = response.headers.get("location", "")
    if not location:
        raise answer_error(ref, response, "upload response has no Location header")
    try:
        url = response.request.url.join(location)
    except wire.InvalidURL:
        text = f"refusing upload Location that is not a valid URL: {printable(location)}"
        raise answer_error(ref, response, text) from None
    first = response.history[0].request.url if response.history else response.request.url
    try:
        registry = wire.URL(f"{scheme or first.scheme}://{ref.endpoint}")
    except wire.InvalidURL:
        registry = first
    if url.origin != registry.origin:
        where = "another host" if url.host != registry.host else "another port or scheme"
        text = f"refusing upload Location on {where}: {url.scheme}://{url.netloc}"
        raise answer_error(ref, response, text)
    return str(url)


def _range_end(value: str) -> int | None:
    """The offset after a ``Range: 0-<last>`` upload-status header.

    distribution clamps the end to 0, so ``0-0`` means an empty session (a one-byte one
    cannot be told apart; regshift never sends chunks that small).
    """
    start, sep, last = value.removeprefix("bytes=").partition("-")
    if not sep or not start.isdigit() or not last.isdigit():
        return None
    return int(last) + 1 if int(last) > 0 else 0
