"""Copy images between repositories, registries and layouts, moving as few bytes as possible.

The source is resolved once into an :class:`~regshift.graph.ImageGraph` (every manifest's
exact bytes); each destination then gets, in dependency order:

1. blobs: HEAD to skip what exists; on the same registry a cross-repository mount (no bytes
   move); otherwise a stream GET -> upload through bounded memory, hashed on the way and
   refused before commit if the digest or size is wrong;
2. child manifests by digest (for an index);
3. the top manifest under the tag, last, so a tag never points at something incomplete.

Either side may be an OCI image layout (``oci:PATH[:TAG]``): both are a
:class:`~regshift.storage.Repository`, so the same plan, verification and ordering apply.

The package, by job: :mod:`.options` (options and results), :mod:`.workers` (thread pool,
cancellation), :mod:`.running` (one source -> destination run: plan, blobs, manifests,
referrers), :mod:`.uploading` (registry uploads: stream, chunks, resume, restart),
:mod:`.single` (``copy``) and :mod:`.repository` (``copy_repository``, every tag). Planning
the image graph lives below, in :mod:`regshift.graph`, shared with inspect.
"""

from .options import BlobAction, BlobStep, CopyOptions, CopyResult, RepositoryCopyResult
from .repository import copy_repository
from .single import copy

__all__ = [
    "BlobAction",
    "BlobStep",
    "CopyOptions",
    "CopyResult",
    "RepositoryCopyResult",
    "copy",
    "copy_repository",
]
