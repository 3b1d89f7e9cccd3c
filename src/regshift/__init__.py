"""regshift: tag, copy and promote container images directly against registries.

The library is synchronous and thread-safe; one :class:`Client` holds the connection pool,
credentials and tokens for every registry an operation touches::

    import regshift

    with regshift.Client() as client:
        result = regshift.tag(client, "registry.example/app:1.4.2", ["stable"])
        print(result.digest)
"""

from ._version import __version__
from .auth.credentials import (
    ChainKeychain,
    Credential,
    EnvKeychain,
    FileKeychain,
    Keychain,
    StaticKeychain,
    default_keychain,
)
from .client import Client, ClientOptions, PutResult
from .errors import (
    APIError,
    AuthError,
    DigestMismatch,
    InvalidReference,
    ManifestError,
    NotFound,
    PreconditionFailed,
    RateLimited,
    RegistryError,
    TransportError,
    Unauthorized,
    Unsupported,
    UnsupportedMediaType,
)
from .manifest import Descriptor, Manifest, Platform, parse_manifest
from .mediatypes import MediaType
from .ops import DeleteResult, delete, digest, list_tags, login, logout, manifest
from .reference import Reference, parse_reference, parse_repository
from .tag import TagAction, TagOutcome, TagResult, tag
from .transport import TransportOptions

__all__ = [
    "APIError",
    "AuthError",
    "ChainKeychain",
    "Client",
    "ClientOptions",
    "Credential",
    "DeleteResult",
    "Descriptor",
    "DigestMismatch",
    "EnvKeychain",
    "FileKeychain",
    "InvalidReference",
    "Keychain",
    "Manifest",
    "ManifestError",
    "MediaType",
    "NotFound",
    "Platform",
    "PreconditionFailed",
    "PutResult",
    "RateLimited",
    "Reference",
    "RegistryError",
    "StaticKeychain",
    "TagAction",
    "TagOutcome",
    "TagResult",
    "TransportError",
    "TransportOptions",
    "Unauthorized",
    "Unsupported",
    "UnsupportedMediaType",
    "__version__",
    "default_keychain",
    "delete",
    "digest",
    "list_tags",
    "login",
    "logout",
    "manifest",
    "parse_manifest",
    "parse_reference",
    "parse_repository",
    "tag",
]
