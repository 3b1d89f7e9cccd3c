"""``regshift inspect`` and ``regshift referrers``: read-only views of an image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .exits import ExitStatus

if TYPE_CHECKING:
    from ..inspection import ImageInfo
    from ..referrers import ReferrerNode
    from .options import CommonOptions


def run_inspect(opts: CommonOptions, reference: str, platforms: Sequence[str]) -> int:
    """Describe an image (registry or ``oci:`` layout) and print it."""
    from ..inspection import describe
    from .options import parse_platforms

    wanted = parse_platforms(platforms)
    with opts.client() as client:
        info = describe(client, reference, platforms=wanted)
    opts.emit(_info_doc(info), "\n".join(_info_lines(info)))
    return ExitStatus.OK


def _info_doc(info: ImageInfo) -> dict[str, Any]:
    return {
        "reference": info.name,
        "digest": info.digest,
        "mediaType": info.media_type,
        "size": info.size,
        "totalSize": info.total_size,
        "referrers": info.referrers,
        "platforms": [
            {
                "platform": i.platform,
                "digest": i.digest,
                "mediaType": i.media_type,
                "created": i.created,
                "labels": i.labels,
                "entrypoint": i.entrypoint,
                "cmd": i.cmd,
                "size": i.total_size,
                "layers": [
                    {"digest": x.digest, "size": x.size, "mediaType": x.media_type}
                    for x in i.layers
                ],
            }
            for i in info.images
        ],
    }


def _info_lines(info: ImageInfo) -> list[str]:
    lines = [
        f"{info.name}",
        f"  digest:     {info.digest}",
        f"  media type: {info.media_type}",
        f"  size:       {info.total_size:,} bytes in all; {info.referrers} referrer(s)",
    ]
    for image in info.images:
        lines.append(f"  {image.platform or '(unknown platform)'}  {image.digest}")
        if image.created:
            lines.append(f"    created:    {image.created}")
        if image.entrypoint or image.cmd:
            lines.append(f"    entrypoint: {image.entrypoint}  cmd: {image.cmd}")
        for key, value in sorted(image.labels.items()):
            lines.append(f"    label:      {key}={value}")
        for layer in image.layers:
            lines.append(f"    layer:      {layer.digest} {layer.size:>12,} bytes")
        lines.append(f"    total:      {image.total_size:,} bytes")
    return lines


def run_referrers(opts: CommonOptions, reference: str, artifact_type: str | None) -> int:
    """List the referrers of an image as a tree."""
    from ..referrers import subject_digest, walk
    from ..storage import open_repository

    with opts.client() as client:
        repo = open_repository(client, reference)
        digest = subject_digest(repo, repo.identifier or "latest")  # exit 4 when missing
        tree = walk(repo, digest, artifact_type=artifact_type)
    doc = {"reference": reference, "digest": digest, "referrers": [_node_doc(n) for n in tree]}
    lines = [f"{reference} {digest}"] + [line for n in tree for line in _node_lines(n, 1)]
    if not tree:
        lines.append("  (no referrers)")
    opts.emit(doc, "\n".join(lines))
    return ExitStatus.OK


def _node_doc(node: ReferrerNode) -> dict[str, Any]:
    return {
        "digest": node.descriptor.digest,
        "mediaType": node.descriptor.media_type,
        "artifactType": node.artifact_type,
        "size": node.descriptor.size,
        "annotations": node.annotations,
        "referrers": [_node_doc(c) for c in node.children],
    }


def _node_lines(node: ReferrerNode, depth: int) -> list[str]:
    pad = "  " * depth
    desc = node.descriptor
    lines = [f"{pad}└─ {node.artifact_type or desc.media_type}  {desc.digest}  {desc.size:,} bytes"]
    lines += [f"{pad}     {k}={v}" for k, v in sorted(node.annotations.items())]
    return lines + [line for child in node.children for line in _node_lines(child, depth + 1)]
