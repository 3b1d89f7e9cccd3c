"""Issue 15, cosmetic: progress rates and restarts, tag -q, message grammar."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from regshift.cli.progress import BarDisplay
from regshift.digests import compute_digest
from regshift.errors import ManifestError
from regshift.layout import Layout, parse_layout_reference
from regshift.progress import ProgressEvent, ProgressState
from regshift.referrers import fallback_tag
from regshift.sample import random_image
from regshift.storage.oci import LayoutRepository

from artifacts import signature_of
from harness.registry import RegistryServer
from support import run_cli, seed

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def _render(events: list[ProgressEvent]) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with BarDisplay(console) as display:
        for event in events:
            display(event)
    return out.getvalue().split("\r")[-1]  # the last frame rich drew


def _event(state: ProgressState, done: int = 0, digest: str = DIGEST) -> ProgressEvent:
    return ProgressEvent("blob", digest, state, done, 1000, "reg/repo")


def test_finished_and_skipped_blobs_show_no_question_mark_rate() -> None:
    frame = _render(
        [
            _event(ProgressState.STARTED),
            _event(ProgressState.PROGRESS, 500),
            _event(ProgressState.DONE, 1000),
            _event(ProgressState.SKIPPED, 1000, OTHER),
        ]
    )
    bars = [line for line in frame.splitlines() if "blob " in line]
    assert len(bars) == 2 and not any("?" in line for line in bars), frame
    assert "skipped" in frame and "done" in frame
    done_line = next(line for line in frame.splitlines() if "done" in line)
    assert "/s" in done_line, done_line  # the average rate of what was streamed
    skipped_line = next(line for line in frame.splitlines() if "skipped" in line)
    assert "/s" not in skipped_line, skipped_line


def test_a_restarted_blob_says_so_next_to_its_bar() -> None:
    frame = _render(
        [
            _event(ProgressState.STARTED),
            _event(ProgressState.PROGRESS, 600),
            _event(ProgressState.RETRYING),
            _event(ProgressState.STARTED),
            _event(ProgressState.PROGRESS, 200),
        ]
    )
    assert "restarted (was at 600 bytes)" in frame, frame


def test_tag_accepts_quiet(open_registry: RegistryServer, repo_name: str) -> None:
    ref = seed(open_registry.host, repo_name, "v1", random_image(seed=1541))
    quiet = run_cli("tag", "-q", str(ref), "stable")
    assert quiet.code == 0, quiet.stderr
    assert quiet.stdout == "" and quiet.stderr == ""
    missing = run_cli("tag", "--quiet", f"{ref.name}:nope", "x")
    assert missing.code == 4 and "regshift: error:" in missing.stderr and missing.stdout == ""
    as_json = run_cli("tag", "-q", "--json", str(ref), "stable2")
    assert as_json.code == 0 and as_json.json()["tags"][0]["tag"] == "stable2"


@pytest.mark.parametrize("where", ["layout"])
def test_a_fallback_tag_holding_a_manifest_is_named_without_a_bad_article(
    where: str, tmp_path: Path
) -> None:
    image, other = random_image(seed=1542), random_image(seed=1543)
    layout = Layout(tmp_path / "lay", create=True)
    for sample, tag in ((image, "v1"), (other, fallback_tag(image.manifest.digest))):
        for blob in sample.blobs:
            layout.write_blob(compute_digest(blob), len(blob), [blob])
        layout.put_manifest(sample.manifest, tag)
    sig = signature_of(image.manifest)
    for blob in sig.blobs:
        layout.write_blob(compute_digest(blob), len(blob), [blob])
    with pytest.raises(ManifestError) as info:
        LayoutRepository.open(parse_layout_reference(f"oci:{layout.path}:v1"), create=True).attach(
            sig.manifest
        )
    message = str(info.value)
    assert "holds a application" not in message
    assert f"holds {other.manifest.media_type}, not an OCI image index" in message
