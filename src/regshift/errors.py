"""Every exception regshift raises, in one small tree.

Catch :class:`RegistryError` to catch everything the library raises on purpose::

    RegistryError
    ├── InvalidReference (also a ValueError)      a reference that does not parse
    ├── ManifestError                             a manifest we cannot read or accept
    │   └── UnsupportedMediaType
    ├── DigestMismatch                            bytes that do not hash to the digest promised
    ├── AuthError                                 no usable credentials, token endpoint refused
    ├── PreconditionFailed                        expect_digest / no_clobber refused the write
    │   ├── ForceRequired                         a safety check that ``force=True`` overrides
    │   └── DuplicatePlatform                     an index would list one platform twice
    ├── PlatformNotFound                          no image of the source is for the platform asked
    ├── EntryNotFound                             no entry of an index is the one named
    ├── IncompatibleInputs (also a ValueError)    images that cannot be built into one
    ├── LayoutError                               an OCI image layout missing, malformed, unwritable
    │   └── NotFoundInLayout                      no such tag, manifest or blob in the layout
    ├── LayerError                                layer content that cannot be read as a tar
    │   └── InvalidLayerSource (also a ValueError)  a layer path given to build from is unusable
    ├── TransportError                            connect, TLS, timeout (wraps wire errors)
    └── APIError                                  the registry answered with an error status
        ├── NotFound                              404 (MANIFEST_UNKNOWN, NAME_UNKNOWN, ...)
        ├── Unauthorized                          401 / 403 (UNAUTHORIZED, DENIED)
        ├── RateLimited                           429 (TOOMANYREQUESTS)
        └── Unsupported                           405 / UNSUPPORTED (e.g. deletes disabled)

Lower-level exceptions (regshift.wire, json, OSError) are translated at the boundary with
``raise ... from exc``, so callers never need to import the HTTP layer to handle failures.
Messages never contain credentials or tokens, nor name command-line flags: an error that a
setting could get past says which in :attr:`RegistryError.hint` (one of the ``HINT_*``
names), and a front end (the CLI) phrases that in its own terms.
"""

from __future__ import annotations

from typing import NamedTuple

#: :attr:`RegistryError.hint` values: what the user could change to get past an error.
HINT_TIMEOUT = "timeout"  # a longer timeout
HINT_TRUST = "trust"  # trust the registry's CA, or skip TLS verification for it
HINT_LOGIN = "login"  # configure credentials (none were found)
HINT_INSECURE = "insecure"  # allow plain HTTP for the registry
HINT_DUPLICATES = "duplicates"  # allow an index to list one platform more than once


class RegistryError(Exception):
    """Base class of every error regshift raises.

    Attributes:
        hint: what the user could change to get past the error (a ``HINT_*`` name), for a
            front end to phrase in its own terms; ``None`` when there is nothing to suggest.
    """

    hint: str | None = None

    def with_hint(self, advice: str) -> str:
        """The message with ``advice`` (a front end's phrasing of :attr:`hint`) added
        where it belongs: at the end, or for an :class:`APIError` after its context."""
        return f"{self}{advice}"


class InvalidReference(RegistryError, ValueError):
    """A string is not a valid image reference (or repository / tag / digest)."""


class ManifestError(RegistryError):
    """A manifest is malformed, too large, or otherwise unusable."""


class UnsupportedMediaType(ManifestError):
    """A manifest or descriptor has a media type regshift does not handle."""


class DigestMismatch(RegistryError):
    """Content does not hash to the digest it was announced with."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.what = what
        self.expected = expected
        self.actual = actual
        super().__init__(f"{what}: digest mismatch: expected {expected}, got {actual}")


class AuthError(RegistryError):
    """Authentication could not be performed (missing credentials, token refused, ...)."""


class LayoutError(RegistryError):
    """An OCI image layout is missing, malformed, or cannot be read or written."""


class NotFoundInLayout(LayoutError):
    """A tag, manifest or blob is not in the layout, or there is no layout there at all
    (no such directory, or no ``index.json`` in it)."""


class PreconditionFailed(RegistryError):
    """A guard such as ``expect_digest`` or ``no_clobber`` refused an operation."""


class ForceRequired(PreconditionFailed):
    """A safety check refused an operation that ``force=True`` would carry out (a delete that
    takes other tags or images along, a write over a referrers tag)."""


class DuplicatePlatform(PreconditionFailed):
    """An index would list two entries for one platform (allowing duplicates gets past it)."""

    hint = HINT_DUPLICATES


class EntryNotFound(RegistryError):
    """No entry of an index is the platform or digest named (the index itself exists)."""


class IncompatibleInputs(RegistryError, ValueError):
    """Images that cannot be built into one: a platform mismatch, a single image mixed with
    an index, an image that shares only part of its base, a rebase onto another old base.
    Refused before anything is written."""


class LayerError(RegistryError):
    """A layer's content cannot be read: not a tar, corrupt compression, an unsafe path."""


class InvalidLayerSource(LayerError, ValueError):
    """A file or directory given to make a layer from does not exist or is not a usable
    tar (a usage error, unlike a corrupt layer read from storage)."""


class PlatformNotFound(RegistryError):
    """No image of a source is for the platform(s) asked for (the source itself exists).

    Attributes:
        reference: the source, as the user named it.
        wanted: the platforms asked for, as given.
        available: the platforms the source has (its index entries, or the config of a
            single image), in source order, each once.
    """

    def __init__(self, reference: str, wanted: list[str], available: list[str]) -> None:
        self.reference = reference
        self.wanted = list(wanted)
        self.available = list(available)
        have = ", ".join(self.available) or "none"
        super().__init__(
            f"{reference}: no platform matches {', '.join(self.wanted)} (available: {have})"
        )


class TransportError(RegistryError):
    """The registry could not be reached or the connection failed (connect, TLS, timeout).

    ``retryable`` is False where repeating cannot help (a certificate that does not verify).
    """

    def __init__(self, message: str, *, retryable: bool = True, hint: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.hint = hint


class Diagnostic(NamedTuple):
    """One entry of an OCI error body: ``{"code": ..., "message": ..., "detail": ...}``."""

    code: str
    message: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


class APIError(RegistryError):
    """The registry answered with an error status.

    Attributes:
        status: HTTP status code.
        method: HTTP method of the failed request.
        url: the request URL with any query string removed (never carries secrets).
        errors: the parsed OCI error entries, possibly empty.
        retry_after: seconds the registry asked us to wait, when it said so.
    """

    def __init__(
        self,
        *,
        status: int,
        method: str,
        url: str,
        errors: list[Diagnostic] | None = None,
        text: str = "",
        retry_after: float | None = None,
        context: str = "",
        hint: str | None = None,
    ) -> None:
        self.hint = hint
        self.status = status
        self.method = method
        self.url = url
        self.errors = list(errors or [])
        self.text = text
        self.retry_after = retry_after
        self.context = context
        super().__init__(self._message())

    @property
    def codes(self) -> list[str]:
        """The OCI error codes of the body (``MANIFEST_UNKNOWN``, ``DENIED``, ...)."""
        return [e.code for e in self.errors]

    @property
    def retryable(self) -> bool:
        """Whether repeating an idempotent request may succeed."""
        return self.status in RETRYABLE_STATUSES

    def with_hint(self, advice: str) -> str:
        """The message with ``advice`` after the context (what the request was for)."""
        return self._message(advice) if self.context else f"{self}{advice}"

    def _message(self, advice: str = "") -> str:
        detail = "; ".join(str(e) for e in self.errors) or self.text or "no error body"
        prefix = f"{self.context}{advice}: " if self.context else ""
        return f"{prefix}{self.method} {self.url}: HTTP {self.status}: {detail}"


class NotFound(APIError):
    """The registry has no such repository, manifest, blob or upload (404)."""


class Unauthorized(APIError):
    """The registry refused our credentials or they lack a scope (401 / 403)."""


class RateLimited(APIError):
    """The registry asked us to slow down (429)."""


class RateLimitReserve(RegistryError):
    """A registry's announced pull budget (Docker Hub's ``ratelimit-remaining``) is down to
    the reserve the caller keeps: stopped before running out, nothing more was pulled."""


class Unsupported(APIError):
    """The registry does not support this operation (405, or ``UNSUPPORTED``)."""


RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def api_error_class(status: int, codes: list[str]) -> type[APIError]:
    """Pick the most specific :class:`APIError` subclass for a status and error codes."""
    if status == 404:
        return NotFound
    if status in (401, 403) or "DENIED" in codes or "UNAUTHORIZED" in codes:
        return Unauthorized
    if status == 429 or "TOOMANYREQUESTS" in codes:
        return RateLimited
    if status == 405 or "UNSUPPORTED" in codes:
        return Unsupported
    return APIError
