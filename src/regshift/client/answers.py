"""Reading what a registry answers, for every endpoint family of :class:`~regshift.client.Client`:
bodies read raw and bounded, and the error for an answer regshift cannot use."""

from __future__ import annotations

import contextlib

from .. import wire
from ..errors import APIError, ManifestError
from ..reference import Reference
from ..transport import stream_error

# Digests are over the bytes as stored, so manifests and blobs are asked for unencoded and
# read raw, never decoded: storage backends (S3/GCS behind a registry, CDNs) may label a
# .tar.gz layer "Content-Encoding: gzip", and a decoded body would fail its digest check.
IDENTITY = {"Accept-Encoding": "identity"}


def read_limited(response: wire.Response, limit: int, *, what: str) -> bytes:
    with contextlib.closing(response):
        declared = content_length(response)
        if declared > limit:
            raise ManifestError(f"{what} is {declared} bytes, above the {limit} limit")
        data = bytearray()
        try:
            for chunk in response.iter_raw():  # the exact bytes: see IDENTITY
                data += chunk
                if len(data) > limit:
                    raise ManifestError(f"{what} is larger than the {limit} byte limit")
        except wire.HTTPError as exc:
            raise stream_error(exc, response, what) from None
        return bytes(data)


def content_length(response: wire.Response) -> int:
    try:
        return max(0, int(response.headers.get("content-length", "0")))
    except ValueError:
        return 0


def answer_error(ref: Reference, response: wire.Response, text: str) -> APIError:
    """An answer regshift cannot use, as an error naming ``ref``."""
    return APIError(
        status=response.status_code, method=response.request.method, url=display(ref), text=text
    )


def display(ref: Reference) -> str:
    return str(ref)
