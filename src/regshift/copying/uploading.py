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
        """Stream one blob; on a transient failure restart it (a fresh session, a fresh GET)."""
        attempts = max(run.opts.attempts, self.client.max_attempts)
        attempt = 0
        while attempt < attempts:
            attempt += 1
            chunked = self.chunked or desc.size > run.opts.chunked_threshold
            try:
                if location is None:
                    location = self.repo.start_upload()
                assert location is not None
                self._stream(run, desc, location, chunked)
                return
            except (TransportError, Restart, APIError) as exc:
                self._abandon(location)
                location = None
                if not self._may_restart(exc, attempt, attempts, chunked):
                    if isinstance(exc, Restart):
                        raise TransportError(f"blob {desc.digest}: {exc}") from None
                    raise
                if self._switched_to_chunks(exc, chunked):
                    attempt -= 1  # not a failed try: the blob goes up again, in chunks
                if self.repo.has_blob(desc):  # the commit landed; only its answer was lost
                    return
                run.emit(desc, ProgressState.RETRYING)
                run.cancel.check()
                retry_after = exc.retry_after if isinstance(exc, APIError) else None
                self.client.pause_before_retry(
                    f"blob {desc.digest}", str(exc), attempt, retry_after, stop=run.cancel.event
                )
                run.cancel.check()
            except BaseException:  # a bad blob, a cancelled copy, a broken layout source
                self._abandon(location)
                raise
        raise TransportError(f"blob {desc.digest}: not uploaded after {attempts} attempts")

    @staticmethod
    def _switched_to_chunks(exc: Exception, chunked: bool) -> bool:
        return isinstance(exc, APIError) and exc.status == 413 and not chunked

    def _may_restart(self, exc: Exception, attempt: int, attempts: int, chunked: bool) -> bool:
        if self._switched_to_chunks(exc, chunked):
            # The registry (or a proxy in front of it) caps request bodies: use chunks, for
            # this blob and every later one (a blob already in flight may see its own 413).
            if not self.chunked:
                log.info("monolithic upload refused (413); switching to chunked uploads")
                self.chunked = True
            return True
        if attempt >= attempts or (isinstance(exc, TransportError) and not exc.retryable):
            return False
        # 401 mid-stream: the token expired while a body that cannot be replayed was in
        # flight; the restart's first request re-authenticates.
        return not isinstance(exc, APIError) or exc.retryable or isinstance(exc, Unauthorized)

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
        """PATCH one chunk; after a dropped connection resume from the registry's offset."""
        sent_from = start
        for _ in range(run.opts.attempts + 1):
            try:
                status = self.repo.patch_upload(location, chunk[sent_from - start :], sent_from)
                return status.location or location, status.offset
            except (TransportError, APIError) as exc:
                if isinstance(exc, NotFound):  # the session expired or was cleaned up
                    raise Restart(f"upload session lost: {exc}") from None
                if isinstance(exc, APIError) and not exc.retryable and exc.status != 416:
                    raise
                # A dropped connection, or 416 (the registry holds another offset than this
                # chunk assumed): ask the registry where it stands and go on from there.
                location, sent_from = self._resume_point(location, start, len(chunk))
                log.info("chunk at %d failed (%s); registry has %d bytes", start, exc, sent_from)
                if sent_from == start + len(chunk):
                    return location, sent_from  # all of it landed; only the answer was lost
                run.tally.add_resent(start + len(chunk) - sent_from)
        raise Restart(f"chunk at offset {start} failed {run.opts.attempts + 1} times")

    def _resume_point(self, location: str, start: int, length: int) -> tuple[str, int]:
        try:
            status = self.repo.upload_status(location)
        except RegistryError as exc:
            raise Restart(f"upload session lost: {exc}") from None
        if not start <= status.offset <= start + length:
            raise Restart(f"registry holds {status.offset} bytes, outside chunk at {start}")
        return status.location or location, status.offset


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
