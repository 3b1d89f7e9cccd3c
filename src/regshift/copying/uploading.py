"""Uploading one blob into a registry: mount, stream, chunks, resume, restart.

A blob goes up in one streamed PUT, or (above ``chunked_threshold``, or once the registry
refused a monolithic body with 413) in ``chunk_size`` PATCHes; a dropped PATCH is resumed
from the offset the registry reports, so at most one chunk is sent twice. A lost session or
a transient failure restarts the blob (a fresh session, a fresh GET of the source).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..errors import APIError, NotFound, RegistryError, TransportError, Unauthorized
from ..manifests import Descriptor
from ..progress import ProgressState
from ..storage import BlobMounter, ChunkedUploads, Repository
from .options import BlobAction

if TYPE_CHECKING:
    from .running import Run

log = logging.getLogger(__name__)


class Restart(Exception):
    """The upload session is gone; the blob must be sent again from the start."""


class Uploader:
    """Uploads into one registry repository (through its upload sessions)."""

    def __init__(self, repo: ChunkedUploads) -> None:
        self.repo = repo
        self.client = repo.client
        self.chunked = False  # set once the destination refused a monolithic upload (413)

    def transfer(self, run: Run, desc: Descriptor, action: BlobAction, source: Repository) -> str:
        """Mount or stream one blob; return ``mounted`` or ``streamed``."""
        with self.repo.transfer_slots(source):
            return self._transfer(run, desc, action, source)

    def _transfer(self, run: Run, desc: Descriptor, action: BlobAction, source: Repository) -> str:
        location = None
        if action is BlobAction.MOUNT:
            mounted, location = self._mount(desc, source)
            if mounted:
                return "mounted"
        self._stream_with_retries(run, desc, location)
        return "streamed"

    def _mount(self, desc: Descriptor, source: Repository) -> tuple[bool, str | None]:
        """Try a cross-repository mount: (True, None), or (False, session to upload into)."""
        assert isinstance(self.repo, BlobMounter)
        try:
            return self.repo.mount_blob(desc, source)
        except APIError as exc:
            # Some registries answer a refused mount with an error instead of 202 (Harbor:
            # 401 for an unknown source project, goharbor/harbor#17097): upload instead.
            log.info("mount of %s refused (%s); uploading", desc.digest, exc)
            return False, None

    def _stream_with_retries(self, run: Run, desc: Descriptor, location: str | None) -> None:
        """Stream one blob; on a transient failure restart it (a fresh session, a fresh GET),
        as the client's retry policy says (at least ``CopyOptions.attempts`` tries)."""
        sessions = [location] if location is not None else []  # a refused mount's session

        def once() -> None:
            run.cancel.check()
            self._stream_once(run, desc, sessions.pop() if sessions else None)

        def landed(exc: Exception) -> bool | None:
            if self.repo.has_blob(desc):  # the commit landed; only its answer was lost
                return True
            run.emit(desc, ProgressState.RETRYING)
            return None

        try:
            self.client.retry_policy.run(
                once,
                retry_on=_may_restart,
                before_retry=landed,
                tries=max(run.opts.attempts, self.client.max_attempts),
                stop=run.cancel.event,
                on_retry=self.client.on_retry(f"blob {desc.digest}"),
            )
        except Restart as exc:
            raise TransportError(f"blob {desc.digest}: {exc}") from None

    def _stream_once(self, run: Run, desc: Descriptor, location: str | None) -> None:
        """One try: into ``location`` or a new session, which is cancelled on any failure. A
        413 to a monolithic body switches to chunks at once (not a failed try)."""
        while True:
            chunked = self.chunked or desc.size > run.opts.chunked_threshold
            location = location or self.repo.start_upload()
            try:
                self._stream(run, desc, location, chunked)
                return
            except APIError as exc:
                self._abandon(location)
                location = None
                if exc.status != 413 or chunked:
                    raise
                # The registry (or a proxy in front of it) caps request bodies: use chunks,
                # for this blob and every later one.
                log.info("monolithic upload refused (413); switching to chunked uploads")
                self.chunked = True
            except BaseException:  # a dropped connection, a bad blob, a cancelled copy
                self._abandon(location)
                raise

    def _abandon(self, location: str | None) -> None:
        if location is not None:
            self.repo.cancel_upload(location)

    def _stream(self, run: Run, desc: Descriptor, location: str, chunked: bool) -> None:
        with run.chunks(desc) as verified:
            if chunked:
                self._chunked(run, desc, location, verified)
            else:
                self.repo.finish_upload(location, desc.digest, verified, desc.size)

    def _chunked(self, run: Run, desc: Descriptor, location: str, data: Iterator[bytes]) -> None:
        offset = 0
        for chunk in rechunk(data, run.opts.chunk_size):
            location, offset = self._patch(run, location, chunk, offset)
        self.repo.finish_upload(location, desc.digest, b"", None)

    def _patch(self, run: Run, location: str, chunk: memoryview, start: int) -> tuple[str, int]:
        """PATCH one chunk; after a dropped connection (or a 416) resume from the offset the
        registry reports, as the client's retry policy says; a lost session restarts the blob."""
        url, sent_from = location, start  # where the next try sends from

        def send() -> tuple[str, int]:
            try:
                status = self.repo.patch_upload(url, chunk[sent_from - start :], sent_from)
            except NotFound as exc:  # the session expired or was cleaned up
                raise Restart(f"upload session lost: {exc}") from None
            return status.location or url, status.offset

        def resume(exc: Exception) -> tuple[str, int] | None:
            nonlocal url, sent_from
            url, sent_from = self._resume_point(url, start, len(chunk))
            log.info("chunk at %d failed (%s); registry has %d bytes", start, exc, sent_from)
            if sent_from == start + len(chunk):
                return url, sent_from  # all of it landed; only the answer was lost
            run.tally.add_resent(start + len(chunk) - sent_from)
            return None

        try:
            return self.client.retry_policy.run(
                send,
                retry_on=_resumable,
                before_retry=resume,
                stop=run.cancel.event,
                on_retry=self.client.on_retry(f"chunk at offset {start}"),
            )
        except (TransportError, APIError) as exc:
            if not _resumable(exc):
                raise
            tries = self.client.max_attempts
            raise Restart(f"chunk at offset {start} failed {tries} times ({exc})") from None

    def _resume_point(self, location: str, start: int, length: int) -> tuple[str, int]:
        try:
            status = self.repo.upload_status(location)
        except RegistryError as exc:
            raise Restart(f"upload session lost: {exc}") from None
        if not start <= status.offset <= start + length:
            raise Restart(f"registry holds {status.offset} bytes, outside chunk at {start}")
        return status.location or location, status.offset


def _may_restart(exc: Exception) -> bool:
    """Whether a failed blob upload is worth a restart: a lost session, a retryable status or
    connection failure, or a 401 mid-stream (the token expired while a body that cannot be
    replayed was in flight; the restart's first request re-authenticates)."""
    if isinstance(exc, Restart):
        return True
    if isinstance(exc, TransportError | APIError):
        return exc.retryable or isinstance(exc, Unauthorized)
    return False


def _resumable(exc: Exception) -> bool:
    """Whether a failed PATCH is worth asking the registry for its offset: a dropped
    connection, a retryable status, or 416 (it holds another offset than the chunk assumed)."""
    if isinstance(exc, APIError):
        return exc.retryable or exc.status == 416
    return isinstance(exc, TransportError) and exc.retryable


def rechunk(chunks: Iterable[bytes], size: int) -> Iterator[memoryview]:
    """Regroup a stream into pieces of ``size`` bytes (the last may be shorter).

    One buffer is filled and handed out again and again: each piece is valid only until the
    next is requested, so an upload holds one chunk of memory, whatever the blob's size.
    """
    buf = bytearray(size)
    view = memoryview(buf)
    filled = 0
    for chunk in chunks:
        taken = 0
        while taken < len(chunk):
            n = min(size - filled, len(chunk) - taken)
            view[filled : filled + n] = chunk[taken : taken + n]
            filled += n
            taken += n
            if filled == size:
                yield view
                filled = 0
    if filled:
        yield view[:filled]
