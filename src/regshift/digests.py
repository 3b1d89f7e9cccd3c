"""Content digests: compute, compare across algorithms, and verify while streaming.

Registries name content by sha256 almost everywhere, but a digest may use sha512 (the OCI
image-spec registers both): a digest given by a user or announced by a registry is compared
with content by hashing the bytes in *that digest's* algorithm (:func:`matches`), never by
comparing strings with our own sha256.
"""

from __future__ import annotations

import hashlib
import re

from .errors import DigestMismatch, InvalidReference

_ALGORITHMS = {"sha256": 64, "sha512": 128}


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    """Return the ``<algorithm>:<hex>`` digest of ``data``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


_HEX = re.compile(r"[0-9a-f]+")


def split_digest(digest: str) -> tuple[str, str]:
    """Split ``sha256:<hex>`` into its algorithm and hex parts.

    Raises:
        InvalidReference: the digest is malformed or uses an unsupported algorithm.
    """
    algorithm, sep, hexpart = digest.partition(":")
    length = _ALGORITHMS.get(algorithm)
    if not sep or length is None:
        raise InvalidReference(f"invalid digest {digest!r}: unsupported digest algorithm")
    if len(hexpart) != length or not _HEX.fullmatch(hexpart):
        raise InvalidReference(
            f"invalid digest {digest!r}: expected {length} lower-case hex digits"
        )
    return algorithm, hexpart


def parse_digest(text: str) -> str | None:
    """``text`` as a digest regshift can check (sha256 or sha512, lower-case hex), else
    ``None``: for digests announced by a registry, where an unusable value is ignored."""
    try:
        split_digest(text)
    except InvalidReference:
        return None
    return text


def matches(data: bytes, digest: str) -> bool:
    """Whether ``data`` hashes to ``digest`` in the digest's own algorithm (sha256 or sha512).

    A malformed digest or one of another algorithm matches nothing.
    """
    if parse_digest(digest) is None:
        return False
    return compute_digest(data, digest.partition(":")[0]) == digest


def verify_bytes(data: bytes, digest: str, *, what: str) -> None:
    """Raise :class:`DigestMismatch` unless ``data`` hashes to ``digest`` (its algorithm).

    Raises:
        InvalidReference: ``digest`` is malformed or of an unsupported algorithm.
        DigestMismatch: the bytes hash to something else.
    """
    algorithm, _ = split_digest(digest)
    actual = compute_digest(data, algorithm)
    if actual != digest:
        raise DigestMismatch(what, digest, actual)


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
