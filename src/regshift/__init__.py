"""regshift: tag, copy and promote container images directly against registries.

The library is synchronous and thread-safe; one :class:`Client` holds the connection pool,
credentials and tokens for every registry an operation touches::

    import regshift

    with regshift.Client() as client:
        result = regshift.tag(client, "registry.example/app:1.4.2", ["stable"])
        print(result.digest)
"""

import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__

# A library stays silent unless its user configures logging (retries are logged as warnings).
logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
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
    from .copying import CopyOptions, CopyResult, RepositoryCopyResult, copy, copy_repository
    from .errors import (
        APIError,
        AuthError,
        DigestMismatch,
        ForceRequired,
        InvalidReference,
        LayoutError,
        ManifestError,
        NotFound,
        PlatformNotFound,
        PreconditionFailed,
        RateLimited,
        RegistryError,
        TransportError,
        Unauthorized,
        Unsupported,
        UnsupportedMediaType,
    )
    from .inspection import ImageInfo, describe
    from .layout import Layout
    from .layout_reference import LayoutReference, parse_layout_reference
    from .manifests import Descriptor, Manifest, Platform, parse_manifest
    from .mediatypes import MediaType
    from .ops import DeleteResult, delete, digest, list_tags, login, logout, manifest
    from .progress import ProgressEvent, ProgressState
    from .reference import Reference, parse_reference, parse_repository
    from .referrers import attach, list_referrers, referrer_tree
    from .tagging import TagAction, TagOutcome, TagResult, tag
    from .transport import TransportOptions


# Names are imported on first use (PEP 562), so `regshift --help` and small scripts do not
# pay for httpx and the HTTP stack until they talk to a registry.
_LAZY = {
    "CopyOptions": "copying",
    "CopyResult": "copying",
    "ImageInfo": "inspection",
    "Layout": "layout",
    "LayoutError": "errors",
    "LayoutReference": "layout_reference",
    "ProgressEvent": "progress",
    "ProgressState": "progress",
    "RepositoryCopyResult": "copying",
    "attach": "referrers",
    "copy": "copying",
    "copy_repository": "copying",
    "describe": "inspection",
    "list_referrers": "referrers",
    "parse_layout_reference": "layout_reference",
    "referrer_tree": "referrers",
    "APIError": "errors",
    "AuthError": "errors",
    "ChainKeychain": "auth.credentials",
    "Client": "client",
    "ClientOptions": "client",
    "Credential": "auth.credentials",
    "DeleteResult": "ops",
    "Descriptor": "manifests",
    "DigestMismatch": "errors",
    "EnvKeychain": "auth.credentials",
    "FileKeychain": "auth.credentials",
    "ForceRequired": "errors",
    "InvalidReference": "errors",
    "Keychain": "auth.credentials",
    "Manifest": "manifests",
    "ManifestError": "errors",
    "MediaType": "mediatypes",
    "NotFound": "errors",
    "Platform": "manifests",
    "PlatformNotFound": "errors",
    "PreconditionFailed": "errors",
    "PutResult": "client",
    "RateLimited": "errors",
    "Reference": "reference",
    "RegistryError": "errors",
    "StaticKeychain": "auth.credentials",
    "TagAction": "tagging",
    "TagOutcome": "tagging",
    "TagResult": "tagging",
    "TransportError": "errors",
    "TransportOptions": "transport",
    "Unauthorized": "errors",
    "Unsupported": "errors",
    "UnsupportedMediaType": "errors",
    "default_keychain": "auth.credentials",
    "delete": "ops",
    "digest": "ops",
    "list_tags": "ops",
    "login": "ops",
    "logout": "ops",
    "manifest": "ops",
    "parse_manifest": "manifests",
    "parse_reference": "reference",
    "parse_repository": "reference",
    "tag": "tagging",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'regshift' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "APIError",
    "AuthError",
    "ChainKeychain",
    "Client",
    "ClientOptions",
    "CopyOptions",
    "CopyResult",
    "Credential",
    "DeleteResult",
    "Descriptor",
    "DigestMismatch",
    "EnvKeychain",
    "FileKeychain",
    "ForceRequired",
    "ImageInfo",
    "InvalidReference",
    "Keychain",
    "Layout",
    "LayoutError",
    "LayoutReference",
    "Manifest",
    "ManifestError",
    "MediaType",
    "NotFound",
    "Platform",
    "PlatformNotFound",
    "PreconditionFailed",
    "ProgressEvent",
    "ProgressState",
    "PutResult",
    "RateLimited",
    "Reference",
    "RegistryError",
    "RepositoryCopyResult",
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
    "attach",
    "copy",
    "copy_repository",
    "default_keychain",
    "delete",
    "describe",
    "digest",
    "list_referrers",
    "list_tags",
    "login",
    "logout",
    "manifest",
    "parse_layout_reference",
    "parse_manifest",
    "parse_reference",
    "parse_repository",
    "referrer_tree",
    "tag",
]
