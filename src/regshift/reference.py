"""Parse and normalise container image references, without any I/O.

The accepted language is the CNCF distribution reference grammar::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [ domain "/" ] path
    domain           := host [ ":" port ]
    host             := domain-component ( "." domain-component )* | "[" ipv6 "]"
    domain-component := [A-Za-z0-9] | [A-Za-z0-9] [A-Za-z0-9-]* [A-Za-z0-9]
    ipv6             := [0-9A-Fa-f:]+
    port             := [0-9]+
    path             := path-component ( "/" path-component )*
    path-component   := [a-z0-9]+ ( separator [a-z0-9]+ )*
    separator        := "." | "_" | "__" | "-"+
    tag              := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest           := algorithm ":" encoded
    algorithm        := [A-Za-z][A-Za-z0-9]* ( [-_+.] [A-Za-z][A-Za-z0-9]* )*
    encoded          := [0-9a-fA-F]{32,}

The first ``/``-separated component is a domain only when it contains ``.`` or
``:`` or is exactly ``localhost``; otherwise the whole name is a Docker Hub path.
Of the digest algorithms only ``sha256`` (64 lowercase hex digits) and ``sha512``
(128) are accepted. Docker Hub names are normalised: no domain or
``index.docker.io`` becomes ``docker.io``, and a single-component path there gets
the ``library/`` prefix. The normalised ``registry/repository`` may be at most 255
characters long. All character classes are ASCII only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import string
from dataclasses import dataclass

from regshift.errors import ForceRequired, InvalidReference
from regshift.redaction import mask_userinfo

__all__ = [
    "DEFAULT_TAG",
    "DOCKER_HUB",
    "DOCKER_HUB_ENDPOINT",
    "Reference",
    "is_fallback_tag",
    "is_layout_reference",
    "is_loopback_host",
    "normalise_registry",
    "parse_reference",
    "parse_repository",
    "refuse_fallback_tag",
    "validate_digest",
    "validate_tag",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
DEFAULT_TAG = "latest"

_LEGACY_DOCKER_HUB = "index.docker.io"
_OFFICIAL_PREFIX = "library/"
_NAME_MAX = 255
_TAG_MAX = 128
_DIGEST_SIZES = {"sha256": 64, "sha512": 128}

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_IPV6_HOST = re.compile(r"\[[0-9A-Fa-f:]+\]")
_PORT = re.compile(r"[0-9]+")
_ALGORITHM = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*")
_ENCODED = re.compile(r"[0-9a-fA-F]{32,}")
_LOWER_HEX = re.compile(r"[0-9a-f]+")
_IMAGE_ID = re.compile(r"[0-9a-f]{64}")

_TAG_START = frozenset(string.ascii_letters + string.digits + "_")
_TAG_CHARS = _TAG_START | {".", "-"}


class _Problem(InvalidReference):
    """One reason a piece of a reference is invalid; public callers add context."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed, normalised image reference.

    Constructing one directly validates every field and applies the Docker Hub
    normalisation, so ``Reference("docker.io", "alpine")`` has the repository
    ``library/alpine``.

    Attributes:
        registry: Normalised ``domain[:port]``, e.g. ``docker.io``, ``[::1]:5000``.
        repository: Repository path, e.g. ``library/alpine``.
        tag: The tag, if any.
        digest: The digest, if any; it wins over the tag for resolution.

    Raises:
        InvalidReference: A field does not follow the grammar.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        try:
            registry, repository = _check_name(self.registry, self.repository)
            _check_identifiers(self.tag, self.digest)
        except _Problem as exc:
            text = _compose(self.registry, self.repository, self.tag, self.digest)
            raise InvalidReference(f"invalid reference {_quote(text)}: {exc}") from None
        object.__setattr__(self, "registry", registry)
        object.__setattr__(self, "repository", repository)

    @property
    def endpoint(self) -> str:
        """The ``host[:port]`` to connect to (``registry-1.docker.io`` for Docker Hub)."""
        return DOCKER_HUB_ENDPOINT if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """The full repository name, ``registry/repository``."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What to resolve: the digest if set, else the tag, else ``latest``."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def is_loopback(self) -> bool:
        """Whether the registry host is localhost, in 127.0.0.0/8 or ``::1``."""
        return is_loopback_host(self.registry)

    def with_tag(self, tag: str) -> Reference:
        """Return the same repository with ``tag`` and no digest.

        Raises:
            InvalidReference: ``tag`` is not a valid tag.
        """
        return dataclasses.replace(self, tag=validate_tag(tag), digest=None)

    def with_digest(self, digest: str) -> Reference:
        """Return the same repository and tag with ``digest``.

        Raises:
            InvalidReference: ``digest`` is not a valid, supported digest.
        """
        return dataclasses.replace(self, digest=validate_digest(digest))

    def with_repository(self, repository: str) -> Reference:
        """Return the same registry, tag and digest with another repository path.

        Raises:
            InvalidReference: ``repository`` is not a valid path, or the name is too long.
        """
        return dataclasses.replace(self, repository=repository)

    def repo_only(self) -> Reference:
        """Return the same registry and repository without tag or digest."""
        return Reference(self.registry, self.repository)

    def scope(self, actions: str) -> str:
        """Return the token scope ``repository:<repository>:<actions>``.

        Args:
            actions: Comma-separated actions, e.g. ``"pull"`` or ``"pull,push"``.
        """
        return f"repository:{self.repository}:{actions}"

    def __str__(self) -> str:
        return _compose(self.registry, self.repository, self.tag, self.digest)


def parse_reference(text: str, *, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse ``name``, ``name:tag``, ``name@digest`` or ``name:tag@digest``.

    Args:
        text: The reference exactly as written; surrounding whitespace is an error.
        default_tag: Tag to use when neither tag nor digest is given; ``None``
            leaves the reference bare.

    Returns:
        The normalised reference.

    Raises:
        InvalidReference: ``text`` is not a valid reference.
    """
    try:
        return _parse(text, default_tag)
    except _Problem as exc:
        raise InvalidReference(f"invalid reference {_quote(text)}: {exc}") from None


def parse_repository(text: str) -> Reference:
    """Parse a repository name that carries neither tag nor digest.

    Returns:
        A reference with ``tag`` and ``digest`` both ``None``.

    Raises:
        InvalidReference: ``text`` is not a valid name, or has a tag or digest.
    """
    try:
        ref = _parse(text, None)
        if ref.tag is not None or ref.digest is not None:
            raise _Problem("a repository name cannot include a tag or digest")
    except _Problem as exc:
        raise InvalidReference(f"invalid repository {_quote(text)}: {exc}") from None
    return ref


def validate_tag(tag: str) -> str:
    """Return ``tag`` unchanged if it is a valid tag.

    Raises:
        InvalidReference: ``tag`` is empty, longer than 128 characters or malformed.
    """
    try:
        _check_tag(tag)
    except _Problem as exc:
        raise InvalidReference(str(exc)) from None
    return tag


def validate_digest(digest: str) -> str:
    """Return ``digest`` unchanged if it is a valid sha256 or sha512 digest.

    Raises:
        InvalidReference: ``digest`` is malformed or uses an unsupported algorithm.
    """
    try:
        _check_digest(digest)
    except _Problem as exc:
        raise InvalidReference(str(exc)) from None
    return digest


# The referrers tag schema (OCI distribution-spec 1.1) names the index of a digest's
# referrers ``<algorithm>-<encoded>`` (regshift.referrers.fallback_tag): for the digests
# regshift knows, sha256, and sha512 cut to 64 hex digits.
_FALLBACK_TAG = re.compile(r"(?:sha256|sha512)-[0-9a-f]{64}")


def is_fallback_tag(tag: str) -> bool:
    """Whether ``tag`` is the referrers tag (``regshift.referrers.fallback_tag``) of a sha256
    or sha512 digest.

    Such a tag holds the referrers index of that digest: other tags are images, these are
    lists to merge (``sha256-<hex>.sig`` and other suffixed cosign tags are not).
    """
    return _FALLBACK_TAG.fullmatch(tag) is not None


def refuse_fallback_tag(where: str, tag: str | None, *, force: bool) -> None:
    """Refuse to write ``tag`` as a destination when it is a referrers tag.

    Writing an image there replaces the index that lists the referrers of that digest, so
    its signatures, SBOMs and attestations could no longer be found.

    Raises:
        ForceRequired: ``tag`` is a fallback tag and ``force`` is not set.
    """
    if tag is not None and not force and is_fallback_tag(tag):
        raise ForceRequired(
            f"{where}: tag {tag} is a referrers tag (it lists the signatures, SBOMs and "
            "attestations of a digest); writing an image there would hide them; nothing written"
        )


LAYOUT_PREFIX = "oci:"


def is_layout_reference(text: str) -> bool:
    """Whether ``text`` names an OCI image layout (``oci:PATH...``) rather than a registry."""
    return text.startswith(LAYOUT_PREFIX)


def normalise_registry(text: str) -> str:
    """Validate a registry host as users type it for ``login``; return its normal form.

    Accepts ``host[:port]``, optionally with an ``http(s)://`` prefix and a trailing ``/``
    (as Docker config keys are written); Docker Hub spellings become ``docker.io``.

    Raises:
        InvalidReference: not a valid registry host.
    """
    host = re.sub(r"^https?://", "", text.strip()).split("/", 1)[0]
    if host in (_LEGACY_DOCKER_HUB, DOCKER_HUB_ENDPOINT, DOCKER_HUB):
        return DOCKER_HUB
    try:
        _check_registry(host)
    except InvalidReference as exc:
        raise InvalidReference(f"invalid registry {_quote(text)}: {exc}") from None
    return host


def is_loopback_host(host: str) -> bool:
    """Tell whether a host is localhost, in 127.0.0.0/8 or ``::1``.

    Args:
        host: ``host``, ``host:port``, ``[ipv6]``, ``[ipv6]:port`` or a bare IPv6
            address; the port is ignored.
    """
    name = _host_without_port(host)
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_without_port(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end != -1 else host
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def _parse(text: str, default_tag: str | None) -> Reference:
    _check_text(text)
    name, tag, digest = _split_reference(text)
    if not name:
        raise _Problem("missing repository name")
    registry, repository = _check_name(*_split_domain(name))
    if tag is None and digest is None:
        tag = default_tag
    _check_identifiers(tag, digest)
    return Reference(registry, repository, tag, digest)


def _check_text(text: str) -> None:
    if not text:
        raise _Problem("empty reference")
    if text != text.strip():
        raise _Problem("leading or trailing whitespace")
    if any(ch.isspace() for ch in text):
        raise _Problem("contains whitespace")
    if _IMAGE_ID.fullmatch(text):
        raise _Problem("a 64-character hex string is an image ID, not a repository name")


def _split_reference(text: str) -> tuple[str, str | None, str | None]:
    """Split into name, tag and digest; the tag follows the last ``:`` after the last ``/``."""
    rest, at, digest = text.partition("@")
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        return rest[:colon], rest[colon + 1 :], digest if at else None
    return rest, None, digest if at else None


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and _looks_like_domain(first):
        return first, rest
    return DOCKER_HUB, name


def _looks_like_domain(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def _check_name(registry: str, repository: str) -> tuple[str, str]:
    """Validate a registry and path; return them with Docker Hub normalisation applied."""
    _check_registry(registry)
    _check_path(repository)
    if registry == _LEGACY_DOCKER_HUB:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = _OFFICIAL_PREFIX + repository
    length = len(registry) + 1 + len(repository)
    if length > _NAME_MAX:
        raise _Problem(f"repository name too long ({length} > {_NAME_MAX})")
    return registry, repository


def _check_registry(domain: str) -> None:
    if "@" in domain:  # never quote the part after a colon: it may be a password
        raise _Problem("a registry cannot carry user info (user:password@)")
    if not _looks_like_domain(domain):
        raise _Problem(f'registry {_quote(domain)} must contain "." or ":" or be "localhost"')
    host, port = _split_port(domain)
    if not _valid_host(host):
        raise _Problem(f"invalid registry host {_quote(host)}")
    if port is not None and not _PORT.fullmatch(port):
        raise _Problem(f"invalid port {_quote(port)}")


def _split_port(domain: str) -> tuple[str, str | None]:
    if domain.startswith("["):
        end = domain.find("]") + 1
        if end and domain[end:].startswith(":"):
            return domain[:end], domain[end + 1 :]
        return domain, None
    host, colon, port = domain.partition(":")
    return host, port if colon else None


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        return _IPV6_HOST.fullmatch(host) is not None
    return all(_DOMAIN_COMPONENT.fullmatch(part) for part in host.split("."))


def _check_path(path: str) -> None:
    if not path:
        raise _Problem("missing repository name")
    if any("A" <= ch <= "Z" for ch in path):
        raise _Problem("repository name must be lowercase")
    for component in path.split("/"):
        if not component:
            raise _Problem(f"empty path component in {_quote(path)}")
        if not _PATH_COMPONENT.fullmatch(component):
            raise _Problem(
                f"invalid path component {_quote(component)} (lowercase letters and digits,"
                ' separated by ".", "_", "__" or dashes)'
            )


def _check_identifiers(tag: str | None, digest: str | None) -> None:
    if tag is not None:
        _check_tag(tag)
    if digest is not None:
        _check_digest(digest)


def _check_tag(tag: str) -> None:
    prefix = f"invalid tag {_quote(tag)}"
    if not tag:
        raise _Problem(f"{prefix}: empty")
    if len(tag) > _TAG_MAX:
        raise _Problem(f"{prefix}: too long ({len(tag)} > {_TAG_MAX})")
    if tag[0] not in _TAG_START:
        raise _Problem(f'{prefix}: must start with a letter, digit or "_"')
    if not all(ch in _TAG_CHARS for ch in tag):
        raise _Problem(f'{prefix}: only letters, digits, "_", "." and "-" are allowed')


def _check_digest(digest: str) -> None:
    prefix = f"invalid digest {_quote(digest)}"
    if not digest:
        raise _Problem(f"{prefix}: empty")
    algorithm, colon, encoded = digest.partition(":")
    if not colon:
        raise _Problem(f'{prefix}: expected "<algorithm>:<hex>"')
    if not _ALGORITHM.fullmatch(algorithm):
        raise _Problem(f"{prefix}: malformed algorithm {_quote(algorithm)}")
    size = _DIGEST_SIZES.get(algorithm)
    if size is not None:
        if len(encoded) != size or not _LOWER_HEX.fullmatch(encoded):
            raise _Problem(f"{prefix}: {algorithm} needs exactly {size} lowercase hex digits")
        return
    if not _ENCODED.fullmatch(encoded):
        raise _Problem(f"{prefix}: the encoded part must be at least 32 hex digits")
    supported = ", ".join(_DIGEST_SIZES)
    raise _Problem(
        f"{prefix}: unsupported digest algorithm {_quote(algorithm)} (supported: {supported})"
    )


def _compose(registry: str, repository: str, tag: str | None, digest: str | None) -> str:
    text = f"{registry}/{repository}"
    if tag is not None:
        text += f":{tag}"
    if digest is not None:
        text += f"@{digest}"
    return text


def _quote(value: str) -> str:
    """Double-quote ``value`` on one line, escaping quotes and unprintable characters;
    a password typed into a URL (``user:password@host``) is masked."""
    return '"' + "".join(map(_escape_char, _mask_login(value))) + '"'


_DIGEST_STARTS = tuple(f"{algorithm}:" for algorithm in ("sha256", "sha384", "sha512"))


def _mask_login(value: str) -> str:
    """Mask ``user:password@`` where it can only be a login: in a URL, or before the first
    ``/`` (where a registry name is). ``name:tag@digest`` keeps its tag, however mistyped."""
    at, slash = value.find("@"), value.find("/")
    if "://" in value:
        return mask_userinfo(value)
    if at == -1 or (slash != -1 and at > slash) or value[at + 1 :].startswith(_DIGEST_STARTS):
        return value
    return mask_userinfo(value)


def _escape_char(ch: str) -> str:
    if ch in '"\\':
        return "\\" + ch
    if ch.isprintable():
        return ch
    return ch.encode("unicode_escape").decode("ascii")
