"""Content digests: compute, and verify while streaming."""

from __future__ import annotations

import hashlib

from .errors import DigestMismatch, InvalidReference

_ALGORITHMS = {"sha256": 64, "sha512": 128}


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    """Return the ``<algorithm>:<hex>`` digest of ``data``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def split_digest(digest: str) -> tuple[str, str]:
    """Split ``sha256:<hex>`` into its algorithm and hex parts.

    Raises:
        InvalidReference: the digest is malformed or uses an unsupported algorithm.
    """
    algorithm, sep, hexpart = digest.partition(":")
    length = _ALGORITHMS.get(algorithm)
    if not sep or length is None:
        raise InvalidReference(f"invalid digest {digest!r}: unsupported digest algorithm")
    if len(hexpart) != length or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidReference(
            f"invalid digest {digest!r}: expected {length} lower-case hex digits"
        )
    return algorithm, hexpart


class DigestVerifier:
    """Hash bytes as they stream past and check them against an expected digest and size."""

    def __init__(self, expected: str, size: int | None = None, *, what: str = "blob") -> None:
        algorithm, _ = split_digest(expected)
        self.expected = expected
        self.size = size
        self.what = what
        self.seen = 0
        self._hash = hashlib.new(algorithm)
        self._algorithm = algorithm

    def update(self, chunk: bytes) -> None:
        """Feed the next chunk; fail early when more bytes arrive than announced."""
        self.seen += len(chunk)
        if self.size is not None and self.seen > self.size:
            raise DigestMismatch(
                self.what, f"{self.expected} ({self.size} bytes)", f"more than {self.size} bytes"
            )
        self._hash.update(chunk)

    @property
    def actual(self) -> str:
        """The digest of what was fed so far."""
        return f"{self._algorithm}:{self._hash.hexdigest()}"

    def verify(self) -> None:
        """Raise :class:`DigestMismatch` unless the size and digest match."""
        if self.size is not None and self.seen != self.size:
            raise DigestMismatch(
                self.what,
                f"{self.expected} ({self.size} bytes)",
                f"{self.actual} ({self.seen} bytes)",
            )
        if self.actual != self.expected:
            raise DigestMismatch(self.what, self.expected, self.actual)
