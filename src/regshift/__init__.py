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

from ._version import __version__ as __version__

# A library stays silent unless its user configures logging (retries are logged as warnings).
logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from .auth.credentials import (
        ChainKeychain as ChainKeychain,
        Credential as Credential,
        EnvKeychain as EnvKeychain,
        FileKeychain as FileKeychain,
        Keychain as Keychain,
        StaticKeychain as StaticKeychain,
        default_keychain as default_keychain,
    )
    from .building import (
        BuildOptions as BuildOptions,
        BuildResult as BuildResult,
        ConfigChanges as ConfigChanges,
        append as append,
        build as build,
        flatten as flatten,
        merge as merge,
        mutate as mutate,
        rebase as rebase,
    )
    from .client import (
        Client as Client,
        ClientOptions as ClientOptions,
        PutResult as PutResult,
    )
    from .copying import (
        CopyOptions as CopyOptions,
        CopyResult as CopyResult,
        RepositoryCopyResult as RepositoryCopyResult,
        copy as copy,
        copy_repository as copy_repository,
    )
    from .errors import (
        APIError as APIError,
        AuthError as AuthError,
        DigestMismatch as DigestMismatch,
        DuplicatePlatform as DuplicatePlatform,
        EntryNotFound as EntryNotFound,
        ForceRequired as ForceRequired,
        IncompatibleInputs as IncompatibleInputs,
        InvalidReference as InvalidReference,
        LayoutError as LayoutError,
        ManifestError as ManifestError,
        NotFound as NotFound,
        PlatformNotFound as PlatformNotFound,
        PreconditionFailed as PreconditionFailed,
        RateLimited as RateLimited,
        RateLimitReserve as RateLimitReserve,
        RegistryError as RegistryError,
        TransportError as TransportError,
        Unauthorized as Unauthorized,
        Unsupported as Unsupported,
        UnsupportedMediaType as UnsupportedMediaType,
    )
    from .indexes import (
        IndexEntry as IndexEntry,
        IndexFormat as IndexFormat,
        IndexOptions as IndexOptions,
        IndexResult as IndexResult,
        index_add as index_add,
        index_annotate as index_annotate,
        index_create as index_create,
        index_remove as index_remove,
    )
    from .inspection import (
        ImageInfo as ImageInfo,
        describe as describe,
    )
    from .layout import (
        Layout as Layout,
    )
    from .layout_reference import (
        LayoutReference as LayoutReference,
        parse_layout_reference as parse_layout_reference,
    )
    from .manifests import (
        Descriptor as Descriptor,
        Manifest as Manifest,
        Platform as Platform,
        parse_manifest as parse_manifest,
    )
    from .mediatypes import (
        MediaType as MediaType,
    )
    from .ops import (
        DeleteResult as DeleteResult,
        delete as delete,
        digest as digest,
        list_tags as list_tags,
        login as login,
        logout as logout,
        manifest as manifest,
    )
    from .probing import (
        ProbeResult as ProbeResult,
        probe as probe,
    )
    from .progress import (
        ProgressEvent as ProgressEvent,
        ProgressState as ProgressState,
    )
    from .reference import (
        Reference as Reference,
        parse_reference as parse_reference,
        parse_repository as parse_repository,
    )
    from .referrers import (
        attach as attach,
        list_referrers as list_referrers,
        referrer_tree as referrer_tree,
    )
    from .syncfile import (
        parse_sync_file as parse_sync_file,
    )
    from .syncing import (
        SyncOptions as SyncOptions,
        SyncResult as SyncResult,
        plan_sync as plan_sync,
        sync as sync,
    )
    from .tagging import (
        TagAction as TagAction,
        TagOutcome as TagOutcome,
        TagResult as TagResult,
        tag as tag,
    )
    from .transport import (
        TransportOptions as TransportOptions,
    )

# Names are imported on first use (PEP 562), so `regshift --help` and small scripts do not
# pay for the HTTP layer (http.client, ssl) until they talk to a registry.
_LAZY = {
    "BuildOptions": "building",
    "BuildResult": "building",
    "ConfigChanges": "building",
    "IncompatibleInputs": "errors",
    "append": "building",
    "build": "building",
    "flatten": "building",
    "merge": "building",
    "mutate": "building",
    "rebase": "building",
    "CopyOptions": "copying",
    "CopyResult": "copying",
    "ImageInfo": "inspection",
    "IndexEntry": "indexes",
    "IndexFormat": "indexes",
    "IndexOptions": "indexes",
    "IndexResult": "indexes",
    "index_add": "indexes",
    "index_annotate": "indexes",
    "index_create": "indexes",
    "index_remove": "indexes",
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
    "RateLimitReserve": "errors",
    "SyncOptions": "syncing",
    "SyncResult": "syncing",
    "parse_sync_file": "syncfile",
    "plan_sync": "syncing",
    "sync": "syncing",
    "probe": "probing",
    "ProbeResult": "probing",
    "APIError": "errors",
    "AuthError": "errors",
    "ChainKeychain": "auth.credentials",
    "Client": "client",
    "ClientOptions": "client",
    "Credential": "auth.credentials",
    "DeleteResult": "ops",
    "Descriptor": "manifests",
    "DigestMismatch": "errors",
    "DuplicatePlatform": "errors",
    "EntryNotFound": "errors",
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


#: The public surface, written once: the names of the lazy table (a test checks that the
#: ``TYPE_CHECKING`` imports above, which type checkers read, name the same objects).
__all__ = sorted([*_LAZY, "__version__"])
