"""Writing a built image: blobs, then configs, child manifests, the index, the tag.

Blobs go through the copy machinery (:mod:`regshift.copying`), one run per source: a layer
on the destination's registry is mounted (no bytes move), one elsewhere (another registry,
a layout) is streamed once and verified, configs and new layer files are uploaded the
same way; what the destination has is skipped after a HEAD. Foreign layers are referenced,
not copied. Everything the tag points to is written before the tag, so a failure writes no
tag.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from ..copying.options import BlobAction, BlobStep
from ..copying.running import Destination, Run
from ..copying.workers import Cancel, workers
from ..digests import matches
from ..errors import DigestMismatch
from ..manifests import Descriptor, Manifest
from ..mediatypes import is_foreign
from ..progress import ProgressEvent, ProgressState
from .options import OUTCOMES, BuildOptions, BuildResult, ImageResult, LayerStep
from .plan import Composed, LocalBlobs, compose, compose_index

if TYPE_CHECKING:
    from ..client import Client
    from ..storage import Repository
    from .plan import ImagePlan


@dataclass(frozen=True, slots=True)
class Blob:
    """One blob the result needs, where it comes from, and what the plan does with it."""

    descriptor: Descriptor
    source: Repository | LocalBlobs
    action: BlobAction = BlobAction.STREAM


class Build:
    """One build's write: the composed images, the top manifest, the blob plan."""

    def __init__(
        self,
        client: Client,
        dest: Repository,
        plans: Sequence[ImagePlan],
        *,
        index_annotations: dict[str, str] | None,
        options: BuildOptions,
        local: LocalBlobs | None = None,
        started: tuple[float, int] | None = None,
    ) -> None:
        """``index_annotations`` None writes a single image (one plan), else an index with
        these annotations; ``local`` holds the new layers' files; ``started`` is when the
        build began (monotonic time, the client's request count)."""
        self.client, self.dest, self.opts = client, dest, options
        self.started, self.start_requests = started or (time.monotonic(), client.requests)
        self.images = [compose(p) for p in plans]
        self.local = local or LocalBlobs()
        for image in self.images:
            self.local.add(image.config_descriptor.digest, image.config)
        self.index = None
        if index_annotations is not None:
            docker = all(i.plan.docker for i in self.images)
            self.index = compose_index(self.images, docker, index_annotations)
        self.tally = {k: dict.fromkeys(OUTCOMES, 0) for k in ("blobs", "bytes")}
        self.manifests = 0

    @property
    def top(self) -> Manifest:
        return self.index if self.index is not None else self.images[0].manifest

    def blobs(self) -> dict[str, Blob]:
        """Every blob once: each image's layers, then its config."""
        found: dict[str, Blob] = {}
        for image in self.images:
            for layer in image.plan.layers:
                found.setdefault(layer.descriptor.digest, Blob(layer.descriptor, layer.source))
            desc = image.config_descriptor
            found.setdefault(desc.digest, Blob(desc, self.local))
        return found

    def run(self) -> BuildResult:
        """Check the destination digest, plan, and (unless a dry run) write."""
        if self.dest.digest and not matches(self.top.raw, self.dest.digest):
            raise DigestMismatch(f"destination {self.dest.name}", self.dest.digest, self.top.digest)
        with workers(self.opts.jobs) as (pool, cancel):
            planned = self._plan(pool, cancel)
            if not self.opts.dry_run:
                self._transfer(planned, pool, cancel)
                self._put_manifests()
        return self._result(planned)

    def _plan(self, pool: ThreadPoolExecutor, cancel: Cancel) -> dict[str, Blob]:
        blobs = self.blobs()
        wanted = [b for b in blobs.values() if not is_foreign(b.descriptor.media_type)]
        present = dict(
            zip(
                [b.descriptor.digest for b in wanted],
                pool.map(lambda b: self.dest.has_blob(b.descriptor), wanted),
                strict=True,
            )
        )
        planned = {}
        for digest, blob in blobs.items():
            planned[digest] = Blob(
                blob.descriptor, blob.source, self._action(blob, present.get(digest))
            )
        return planned

    def _action(self, blob: Blob, present: bool | None) -> BlobAction:
        if present is None:
            return BlobAction.FOREIGN
        if present:
            return BlobAction.SKIP
        if isinstance(blob.source, LocalBlobs):
            return BlobAction.STREAM  # reported as "upload"
        return self._destination(blob.source).move

    def _destination(self, source: Repository | LocalBlobs) -> Destination:
        # A copy run reads only name, endpoint and open_blob of its source (see LocalBlobs).
        return Destination(self.dest, cast("Repository", source))

    def _transfer(self, planned: dict[str, Blob], pool: ThreadPoolExecutor, cancel: Cancel) -> None:
        """One copy run per source, each moving its blobs in parallel; configs last."""
        groups: dict[int, list[Blob]] = {}
        for blob in planned.values():
            if blob.action is not BlobAction.FOREIGN:
                groups.setdefault(id(blob.source), []).append(blob)
        ordered = sorted(groups.values(), key=lambda g: g[0].source is self.local)
        for group in ordered:
            source = group[0].source
            dest = self._destination(source)
            run = Run(
                self.client,
                cast("Repository", source),
                dest,
                self.opts.copy_options(),
                pool,
                cancel,
            )
            run.copy_blobs(tuple(BlobStep(b.descriptor, b.action) for b in group))
            local = isinstance(source, LocalBlobs)
            for outcome in ("mounted", "streamed", "skipped"):
                counted = "uploaded" if local and outcome == "streamed" else outcome
                self.tally["blobs"][counted] += run.tally.blobs[outcome]
                self.tally["bytes"][counted] += run.tally.bytes[outcome]

    def _put_manifests(self) -> None:
        """Child manifests by digest, then the top one under the tag."""
        if self.index is not None:
            for image in self.images:
                self.dest.put_manifest(image.manifest)
                self._written(image.manifest)
        tags = [self.dest.tag] if self.dest.tag else []
        self.dest.put_manifest(self.top, tags, listed=True)
        self._written(self.top)

    def _written(self, manifest: Manifest) -> None:
        self.manifests += 1
        event = ProgressEvent(
            "manifest",
            manifest.digest,
            ProgressState.WRITTEN,
            manifest.size,
            manifest.size,
            self.dest.name,
        )
        self.opts.progress(event)

    def _result(self, planned: dict[str, Blob]) -> BuildResult:
        images = tuple(self._image_result(i, planned) for i in self.images)
        tag = self.dest.tag
        where = (
            f"{self.dest.name}:{tag}"
            if tag
            else f"{self.dest.name}@{self.dest.digest or self.top.digest}"
        )
        return BuildResult(
            destination=where,
            digest=self.top.digest,
            media_type=self.top.media_type,
            tags=(tag,) if tag else (),
            platforms=tuple(i.platform for i in images if i.platform),
            images=images,
            blobs=dict(self.tally["blobs"]),
            bytes=dict(self.tally["bytes"]),
            manifests=self.manifests,
            requests=self.client.requests - self.start_requests,
            seconds=time.monotonic() - self.started,
            dry_run=self.opts.dry_run,
        )

    def _image_result(self, image: Composed, planned: dict[str, Blob]) -> ImageResult:
        layers = tuple(
            LayerStep(desc, layer.diff_id, layer.where, _action_name(planned[desc.digest]))
            for desc, layer in zip(image.manifest.layers, image.plan.layers, strict=True)
        )
        platform = image.plan.platform
        return ImageResult(
            platform=str(platform) if platform is not None else "",
            digest=image.manifest.digest,
            media_type=image.manifest.media_type,
            config=image.config_descriptor,
            config_json=image.config,
            layers=layers,
            config_action=_action_name(planned[image.config_descriptor.digest]),
        )


def _action_name(blob: Blob) -> str:
    if blob.action is BlobAction.STREAM and isinstance(blob.source, LocalBlobs):
        return "upload"
    return str(blob.action)
