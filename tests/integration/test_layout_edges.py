"""OCI layout edge cases: concurrent writer processes, a fallback tag that is not an index,
and the exit code for a layout that is not there."""

from __future__ import annotations

import errno
import fcntl
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from regshift.digests import compute_digest
from regshift.errors import ManifestError
from regshift.layout import Layout, LayoutError, NotFoundInLayout, parse_layout_reference
from regshift.referrers import fallback_tag
from regshift.sample import SampleImage, random_image
from regshift.storage.fallback import update_fallback
from regshift.storage.oci import LayoutRepository

from artifacts import SBOM_TYPE, sbom_of, signature_of
from harness.registry import RegistryServer
from support import run_cli, seed

# One writer process: wait for the go file, add COUNT tags, then delete the odd ones.
_WRITER = """
import sys, time
from pathlib import Path
from regshift.layout import Layout
path, ready, go, prefix, count = sys.argv[1:]
layout = Layout(Path(path))
manifest = layout.get_manifest("base")
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.001)
for i in range(int(count)):
    layout.put_manifest(manifest, f"{prefix}-{i}")
for i in range(1, int(count), 2):
    assert layout.delete_tag(f"{prefix}-{i}")
"""
_PROCESSES = 8
_TAGS_EACH = 15


def _store(layout: Layout, image: SampleImage, tag: str) -> None:
    for blob in image.blobs:
        layout.write_blob(compute_digest(blob), len(blob), [blob])
    layout.put_manifest(image.manifest, tag)


def _start_writers(layout: Layout, tmp_path: Path) -> list[subprocess.Popen[bytes]]:
    """Start the writers, wait until each is ready, then let them all go at once."""
    go = tmp_path / "go"
    procs = []
    for p in range(_PROCESSES):
        ready = tmp_path / f"ready-{p}"
        args = [str(layout.path), str(ready), str(go), f"p{p}", str(_TAGS_EACH)]
        procs.append(subprocess.Popen([sys.executable, "-c", _WRITER, *args]))
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{p}").exists() for p in range(_PROCESSES)):
        assert time.monotonic() < deadline, "writer processes did not start"
        time.sleep(0.01)
    go.touch()
    return procs


def test_concurrent_processes_lose_no_tag_updates(tmp_path: Path) -> None:
    """Several processes adding and deleting distinct tags in one layout at once: every
    update lands (index.json read-modify-writes hold an flock on the layout directory)."""
    layout = Layout(tmp_path / "lay", create=True)
    _store(layout, random_image(seed=1601), "base")
    procs = _start_writers(layout, tmp_path)
    assert [proc.wait(timeout=90) for proc in procs] == [0] * _PROCESSES
    expected = {"base"} | {f"p{p}-{i}" for p in range(_PROCESSES) for i in range(0, _TAGS_EACH, 2)}
    assert set(Layout(layout.path).tags()) == expected
    assert sorted(p.name for p in layout.path.iterdir()) == ["blobs", "index.json", "oci-layout"]


@pytest.mark.parametrize(("code", "outcome"), [(errno.ENOLCK, "unlocked"), (errno.EBADF, "error")])
def test_flock_unsupported_goes_ahead_other_errors_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, outcome: str
) -> None:
    """A file system that cannot flock does not stop tagging; any other lock error does."""
    layout = Layout(tmp_path / "lay", create=True)
    image = random_image(seed=1602)
    _store(layout, image, "base")

    def broken_flock(fd: int, operation: int) -> Any:
        raise OSError(code, "flock failed")

    monkeypatch.setattr(fcntl, "flock", broken_flock)
    if outcome == "unlocked":
        layout.put_manifest(image.manifest, "v2")
        assert layout.tags() == ["base", "v2"]
        return
    with pytest.raises(LayoutError, match=r"^cannot lock .*: flock failed$"):
        layout.put_manifest(image.manifest, "v2")
    assert layout.tags() == ["base"]


def test_a_lock_held_too_long_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process keeps the layout locked (stopped, say): give up with one line after
    the wait, writing nothing, instead of hanging."""
    import os

    from regshift.layout import files as layout_module

    lay = Layout(tmp_path / "lay", create=True)
    image = random_image(seed=1605)
    _store(lay, image, "base")
    held = os.open(lay.path, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # another open file description: as another process
    monkeypatch.setattr(layout_module, "_LOCK_WAIT", 0.3)
    try:
        with pytest.raises(LayoutError, match=r"another process has held it for 0 s"):
            lay.put_manifest(image.manifest, "v2")
    finally:
        os.close(held)
    assert lay.tags() == ["base"]
    lay.put_manifest(image.manifest, "v2")  # released: goes ahead
    assert lay.tags() == ["base", "v2"]


def test_layout_attach_refuses_a_fallback_tag_that_is_not_an_index(tmp_path: Path) -> None:
    """The subject's sha256-<hex> tag already holds an image manifest: attach refuses (as
    the registry path does) and writes nothing, neither the referrer nor the tag."""
    image, other = random_image(seed=1603), random_image(seed=1604)
    layout = Layout(tmp_path / "lay", create=True)
    _store(layout, image, "v1")
    tag = fallback_tag(image.manifest.digest)
    _store(layout, other, tag)
    sig = signature_of(image.manifest)
    for blob in sig.blobs:
        layout.write_blob(compute_digest(blob), len(blob), [blob])
    before = (layout.path / "index.json").read_bytes()
    with pytest.raises(ManifestError) as info:
        LayoutRepository.open(parse_layout_reference(f"oci:{layout.path}:v1"), create=True).attach(
            sig.manifest
        )
    message = str(info.value)
    assert "\n" not in message and tag in message and "not an OCI image index" in message
    assert (layout.path / "index.json").read_bytes() == before
    assert Layout(layout.path).get_manifest(tag).raw == other.manifest.raw
    assert not layout.has_blob(sig.manifest.digest)


def test_layout_attach_still_merges_into_an_existing_index(tmp_path: Path) -> None:
    """The check does not get in the way of the normal case: a second referrer is merged."""
    image = random_image(seed=1605)
    layout = Layout(tmp_path / "lay", create=True)
    _store(layout, image, "v1")
    target = LayoutRepository.open(parse_layout_reference(f"oci:{layout.path}:v1"), create=True)
    sigs = [signature_of(image.manifest, who) for who in ("a", "b")]
    for sig in sigs:
        target.attach(sig.manifest)
    index = json.loads(layout.get_manifest(fallback_tag(image.manifest.digest)).raw)
    assert [e["digest"] for e in index["manifests"]] == [s.digest for s in sigs]


def test_referrers_in_a_layout_are_read_and_written_both_ways(tmp_path: Path) -> None:
    """regctl lists a layout's referrers under the fallback tag only; oras keeps each as an
    untagged index.json entry only. regshift reads both (each referrer once, filtered by
    artifact type as a registry listing is; an untagged entry whose blob is missing, or
    that refers to another image, is not one) and writes both."""
    image, other = random_image(seed=1606), random_image(seed=1607)
    layout = Layout(tmp_path / "lay", create=True)
    _store(layout, image, "v1")
    _store(layout, other, "v2")
    repo = LayoutRepository.open(parse_layout_reference(f"oci:{layout.path}:v1"))
    sig, sbom = signature_of(image.manifest), sbom_of(image.manifest)
    ours, elsewhere = signature_of(image.manifest, "ours"), sbom_of(other.manifest)
    gone = signature_of(image.manifest, "gone")
    layout.write_blob(sig.digest, sig.manifest.size, [sig.manifest.raw])
    update_fallback(repo, sig.manifest, image.manifest.digest)  # as regctl writes it
    for artifact in (sbom, elsewhere, gone):
        layout.put_manifest(artifact.manifest)  # as oras writes it
    (layout.path / "blobs" / "sha256" / gone.digest.split(":")[1]).unlink()
    repo.attach(ours.manifest)

    entries = json.loads((layout.path / "index.json").read_bytes())["manifests"]
    untagged = [e["digest"] for e in entries if "annotations" not in e]
    assert untagged == [sbom.digest, elsewhere.digest, gone.digest, ours.digest]
    fallback = json.loads(layout.get_manifest(fallback_tag(image.manifest.digest)).raw)
    assert [e["digest"] for e in fallback["manifests"]] == [sig.digest, ours.digest]
    found = repo.list_referrers(image.manifest.digest)
    assert [d.digest for d in found] == [sig.digest, ours.digest, sbom.digest]
    listed = found[2]
    assert (listed.artifact_type, listed.size) == (SBOM_TYPE, sbom.manifest.size)
    assert listed.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    sboms = repo.list_referrers(image.manifest.digest, artifact_type=SBOM_TYPE)
    assert [d.digest for d in sboms] == [sbom.digest]
    assert [d.digest for d in repo.list_referrers(other.manifest.digest)] == [elsewhere.digest]
    assert layout.tags() == ["v1", "v2", fallback_tag(image.manifest.digest)]


_READ_COMMANDS = [
    ("ls", ""),
    ("digest", ":v1"),
    ("manifest", ":v1"),
    ("inspect", ":v1"),
    ("referrers", ":v1"),
    ("delete", ":v1"),
]


@pytest.mark.parametrize("missing", ["directory", "index.json"])
@pytest.mark.parametrize(("command", "suffix"), _READ_COMMANDS)
def test_missing_layout_exits_not_found(
    tmp_path: Path, command: str, suffix: str, missing: str
) -> None:
    """No layout directory, or no index.json in it: exit 4, as for a missing repository."""
    path = tmp_path / "no-such-layout"
    if missing == "index.json":
        Layout(path, create=True)
        (path / "index.json").unlink()
    result = run_cli(command, f"oci:{path}{suffix}")
    assert result.code == 4, result.stderr
    assert result.stderr.count("\n") == 1 and str(path) in result.stderr


def test_missing_index_is_not_an_absent_tag(tmp_path: Path) -> None:
    """head_manifest answers None for an absent tag, but a vanished index.json is an error."""
    layout = Layout(tmp_path / "lay", create=True)
    assert layout.head_manifest("v1") is None
    (layout.path / "index.json").unlink()
    with pytest.raises(NotFoundInLayout, match=r"index\.json: missing"):
        layout.head_manifest("v1")


def test_copy_into_a_new_layout_still_creates_it(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    """Writing is not reading: a copy to a layout that does not exist yet creates it."""
    image = random_image(seed=1606)
    src = seed(open_registry.host, repo_name, "v1", image)
    dst = tmp_path / "new" / "layout"
    result = run_cli("copy", str(src), f"oci:{dst}:v1")
    assert result.code == 0, result.stderr
    assert Layout(dst).resolve("v1").digest == image.manifest.digest
