"""Copies into an OCI image layout that already holds content (left by regshift or another tool)."""

from __future__ import annotations

from pathlib import Path

import pytest

from regshift.layout import Layout
from regshift.manifests import Manifest
from regshift.sample import random_index

from harness.registry import RegistryServer
from support import run_cli, seed


def _damage(layout: Layout, manifest: Manifest, how: str) -> None:
    """Leave a broken copy of ``manifest``'s blob, as a tool that does not write atomically may."""
    path = layout.blob_path(manifest.digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = manifest.raw
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    else:  # same size, one byte changed: a size check alone cannot tell
        path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 0xFF]))


@pytest.mark.parametrize("how", ["truncated", "same-size"])
@pytest.mark.parametrize("which", ["child", "top"])
def test_existing_broken_manifest_in_layout_is_rewritten(
    which: str, how: str, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    """A manifest blob already in the layout counts only if it hashes to its digest; else
    the copy rewrites it instead of writing a tag over a broken index."""
    sample = random_index(seed=967)
    src = seed(open_registry.host, repo_name, "v1", sample)
    layout = Layout(tmp_path / "dst", create=True)
    broken = sample.images[0].manifest if which == "child" else sample.manifest
    _damage(layout, broken, how)
    result = run_cli("copy", str(src), f"oci:{layout.path}:v1")
    assert result.code == 0, result.stderr
    assert layout.blob_path(broken.digest).read_bytes() == broken.raw
    assert Layout(layout.path).verify() == []
    assert Layout(layout.path).resolve("v1").digest == sample.manifest.digest
