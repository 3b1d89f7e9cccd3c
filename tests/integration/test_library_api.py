"""Issue 15, library: the verbs take what the README shows, and refuse what does nothing."""

from __future__ import annotations

import threading
import time

import pytest

import regshift
from regshift.manifests import Platform
from regshift.sample import random_image, random_index

from harness.registry import RegistryServer
from support import client_for, seed


def test_describe_takes_a_reference_string_like_every_verb(
    open_registry: RegistryServer, repo_name: str
) -> None:
    index = random_index(seed=1531)
    ref = seed(open_registry.host, repo_name, "v1", index)
    with client_for() as client:
        info = regshift.describe(client, str(ref))
        narrowed = regshift.describe(client, ref, platforms=["linux/amd64"])
    assert info.digest == index.manifest.digest
    assert len(info.images) == 2
    assert [i.platform for i in narrowed.images] == ["linux/amd64"]


def test_describe_takes_a_layout_reference(
    open_registry: RegistryServer, repo_name: str, tmp_path: object
) -> None:
    image = random_image(seed=1532)
    ref = seed(open_registry.host, repo_name, "v1", image)
    layout = f"oci:{tmp_path}/layout:v1"
    with client_for() as client:
        regshift.copy(client, ref, [layout])
        info = regshift.describe(client, layout)
    assert info.digest == image.manifest.digest


def test_copy_options_accept_platform_strings() -> None:
    options = regshift.CopyOptions(platforms=("linux/arm64", Platform("linux", "amd64")))
    assert options.platforms == (Platform("linux", "arm64"), Platform("linux", "amd64"))
    assert regshift.CopyOptions(platforms="linux/arm64").platforms == (  # type: ignore[arg-type]
        Platform("linux", "arm64"),
    )
    with pytest.raises(ValueError, match="os/arch"):
        regshift.CopyOptions(platforms=("linux",))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="platforms"):
        regshift.CopyOptions(platforms=(42,))  # type: ignore[arg-type]


def test_copy_with_platform_strings_copies_that_platform(
    open_registry: RegistryServer, repo_name: str
) -> None:
    index = random_index(seed=1533)
    ref = seed(open_registry.host, repo_name, "v1", index)
    options = regshift.CopyOptions(platforms=("linux/amd64",))  # type: ignore[arg-type]
    with client_for() as client:
        (result,) = regshift.copy(client, ref, [f"{ref.name}:amd64"], options=options)
    assert result.digest == index.images[0].manifest.digest


def test_tag_with_no_new_tags_is_refused(open_registry: RegistryServer, repo_name: str) -> None:
    ref = seed(open_registry.host, repo_name, "v1", random_image(seed=1534))
    open_registry.mark()
    with client_for() as client, pytest.raises(ValueError, match="at least one new tag"):
        regshift.tag(client, ref, [])
    assert open_registry.requests() == []


def test_progress_callbacks_are_never_run_at_once(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str
) -> None:
    """A callback like the README's ``print`` is entered by one thread at a time."""
    index = random_index(seed=1535)
    ref = seed(open_registry.host, repo_name, "v1", index)
    inside, overlaps, threads, events = threading.Lock(), [], set(), []

    def callback(event: regshift.ProgressEvent) -> None:
        if not inside.acquire(blocking=False):
            overlaps.append(event)
            return
        try:
            threads.add(threading.get_ident())
            events.append(event)
            time.sleep(0.01)  # long enough for a second worker to arrive
        finally:
            inside.release()

    options = regshift.CopyOptions(jobs=8, progress=callback)
    with client_for() as client:
        regshift.copy(client, ref, [f"{other_registry.host}/{repo_name}:v1"], options=options)
    assert len(threads) > 1, "events must come from several workers for this test to mean much"
    assert overlaps == []
    assert len(events) >= 6
