"""References to OCI image layouts: ``oci:PATH``, ``oci:PATH:TAG``, ``oci:PATH@DIGEST``.

Parsing only, no I/O (the layout itself is :mod:`regshift.layout`), so opening a repository
can tell and parse both kinds of reference without loading the layout code.
"""

from __future__ import annotations

import contextlib
import ntpath
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidReference
from .reference import LAYOUT_PREFIX, validate_digest, validate_tag

__all__ = ["LayoutReference", "parse_layout_reference"]


@dataclass(frozen=True, slots=True)
class LayoutReference:
    """A reference to an image in an OCI layout: ``oci:PATH[:TAG]`` or ``oci:PATH@DIGEST``.

    Attributes:
        path: The layout directory.
        tag: The tag (a ``ref.name`` annotation), if any.
        digest: The manifest digest, if any; a reference has a tag or a digest, not both.

    Raises:
        InvalidReference: the tag or digest is malformed, or both are given.
    """

    path: Path
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if self.tag is not None and self.digest is not None:
            raise InvalidReference(
                f"invalid layout reference {quote(str(self.path))}: "
                "give a tag or a digest, not both"
            )
        if self.tag is not None:
            validate_tag(self.tag)
        if self.digest is not None:
            validate_digest(self.digest)

    @property
    def identifier(self) -> str | None:
        """The digest, else the tag; ``None`` when the reference names neither."""
        return self.digest or self.tag

    @property
    def name(self) -> str:
        """The layout without tag or digest, ``oci:PATH`` (as :attr:`Reference.name`)."""
        return f"{LAYOUT_PREFIX}{self.path}"

    def repo_only(self) -> LayoutReference:
        """The layout without tag or digest (as :meth:`Reference.repo_only`)."""
        return LayoutReference(self.path)

    def with_tag(self, tag: str) -> LayoutReference:
        """The same layout at ``tag`` (as :meth:`Reference.with_tag`)."""
        return LayoutReference(self.path, tag=tag)

    def __str__(self) -> str:
        text = f"{LAYOUT_PREFIX}{self.path}"
        if self.digest is not None:
            return f"{text}@{self.digest}"
        if self.tag is not None:
            return f"{text}:{self.tag}"
        return text


def parse_layout_reference(text: str, *, windows: bool | None = None) -> LayoutReference:
    """Parse ``oci:PATH``, ``oci:PATH:TAG`` or ``oci:PATH@DIGEST``.

    The digest is what follows the last ``@`` when that part contains no path separator.
    On POSIX the tag is what follows the last ``:`` when that part contains no ``/`` and is
    a valid tag; otherwise the ``:`` belongs to the path (``oci:/tmp/a:b/c`` is the path
    ``/tmp/a:b/c``). On Windows ``\\`` separates too, and a path holds no ``:`` past its
    drive (``C:``, ``\\\\server\\share``), so the drive is never a tag
    (``oci:C:\\images\\app:1.0`` is the tag ``1.0`` of ``C:\\images\\app``; ``oci:C:1.0`` is
    the directory ``1.0`` on drive ``C:``) and any later ``:`` must introduce a valid tag.
    A trailing ``:`` (an empty tag) is an error.

    Args:
        text: The reference.
        windows: Parse Windows paths; by default, whether this is Windows.

    Raises:
        InvalidReference: not an ``oci:`` reference, an empty path, an invalid digest,
            an invalid tag on Windows, or a tag together with a digest.
    """
    windows = os.name == "nt" if windows is None else windows
    try:
        return _parse_layout_reference(text, windows)
    except InvalidReference as exc:
        raise InvalidReference(f"invalid layout reference {quote(text)}: {exc}") from None


def _parse_layout_reference(text: str, windows: bool) -> LayoutReference:
    if not text.startswith(LAYOUT_PREFIX):  # which parser to call is open_repository's choice
        raise InvalidReference(
            f'expected "{LAYOUT_PREFIX}PATH[:TAG]" or "{LAYOUT_PREFIX}PATH@DIGEST"'
        )
    separators = "/\\" if windows else "/"
    rest = text[len(LAYOUT_PREFIX) :]
    digest: str | None = None
    before, at, after = rest.rpartition("@")
    if at and not any(sep in after for sep in separators):
        rest, digest = before, validate_digest(after)
    tag: str | None = None
    drive, tail = ntpath.splitdrive(rest) if windows else ("", rest)
    if drive.endswith(":"):  # C: or \\?\C: (a share name cannot hold a ':')
        rest = tail
    else:
        drive = ""
    before, colon, after = rest.rpartition(":")
    if colon and not any(sep in after for sep in separators):
        if not after:
            raise InvalidReference("empty tag after ':'")
        if windows:  # no ':' in a Windows path past its drive: this must be a tag
            tag, rest = validate_tag(after), before
        else:
            with contextlib.suppress(InvalidReference):
                tag = validate_tag(after)
                rest = before
    rest = drive + rest
    if not rest:
        raise InvalidReference("empty path")
    if tag is not None and digest is not None:
        raise InvalidReference("give a tag or a digest, not both")
    return LayoutReference(Path(rest), tag=tag, digest=digest)


def quote(value: str) -> str:
    """Double-quote ``value`` on one line, escaping quotes and unprintable characters."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return '"' + "".join(out) + '"'
