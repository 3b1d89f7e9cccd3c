"""`delete` must not break a tagged index by deleting one of its entries (issue 15, item 2).

distribution 2.8 deletes only by digest. A platform image tagged on its own (``amd64-only``)
and also listed by a multi-platform index (``multi``) cannot be untagged without deleting the
manifest, which leaves ``multi`` naming a manifest that is gone. Each test runs against the
real registry.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import regshift
from regshift.reference import Reference, parse_reference
from regshift.sample import SampleIndex, random_image, random_index

from harness.registry import RegistryServer
from support import client_for, run_cli, seed


def _multi_and_child(registry: RegistryServer, repo: str, seed_: int) -> tuple[SampleIndex, str]:
    """``multi``: a two-platform index; ``amd64-only``: its first entry, tagged on its own."""
    index = random_index(seed=seed_)
    seed(registry.host, repo, "multi", index)
    child = index.images[0].manifest.digest
    assert run_cli("tag", f"{registry.host}/{repo}@{child}", "amd64-only").code == 0
    return index, child


def _intact(registry: RegistryServer, repo: str, index: SampleIndex) -> None:
    """``multi`` still resolves to its digest and every entry still exists."""
    base = f"{registry.host}/{repo}"
    digest = run_cli("digest", f"{base}:multi")
    assert digest.code == 0 and digest.stdout.strip() == index.manifest.digest
    for image in index.images:
        assert run_cli("digest", f"{base}@{image.manifest.digest}").code == 0


def test_delete_of_a_tagged_platform_is_refused(
    open_registry: RegistryServer, repo_name: str
) -> None:
    index, _ = _multi_and_child(open_registry, repo_name, 1501)
    result = run_cli("delete", f"{open_registry.host}/{repo_name}:amd64-only")
    assert result.code == 5, result.stderr
    assert "index tag(s) multi" in result.stderr and "--force" in result.stderr
    _intact(open_registry, repo_name, index)
    assert run_cli("digest", f"{open_registry.host}/{repo_name}:amd64-only").code == 0


def test_delete_by_digest_of_a_listed_manifest_is_refused(
    open_registry: RegistryServer, repo_name: str
) -> None:
    index, child = _multi_and_child(open_registry, repo_name, 1502)
    # the untagged second platform is protected as well
    other = index.images[1].manifest.digest
    for digest in (child, other):
        result = run_cli("delete", f"{open_registry.host}/{repo_name}@{digest}")
        assert result.code == 5, result.stderr
        assert "index tag(s) multi" in result.stderr
    _intact(open_registry, repo_name, index)


def test_dry_run_refuses_and_with_force_warns(
    open_registry: RegistryServer, repo_name: str
) -> None:
    index, _ = _multi_and_child(open_registry, repo_name, 1503)
    ref = f"{open_registry.host}/{repo_name}:amd64-only"
    refused = run_cli("delete", "--dry-run", ref)
    assert refused.code == 5 and "index tag(s) multi" in refused.stderr
    planned = run_cli("delete", "--dry-run", "--force", "--json", ref)
    assert planned.code == 0, planned.stderr
    doc = planned.json()
    assert (doc["dryRun"], doc["brokenIndexes"], doc["removedTags"]) == (
        True,
        ["multi"],
        ["amd64-only"],
    )
    assert "warning: index tag(s) multi" in planned.stderr
    _intact(open_registry, repo_name, index)


def test_force_deletes_the_listed_manifest(open_registry: RegistryServer, repo_name: str) -> None:
    _, child = _multi_and_child(open_registry, repo_name, 1504)
    base = f"{open_registry.host}/{repo_name}"
    result = run_cli("delete", "--force", f"{base}:amd64-only")
    assert result.code == 0, result.stderr
    assert "would be left" not in result.stderr and "are left naming" in result.stderr
    assert run_cli("digest", f"{base}@{child}").code == 4
    assert run_cli("digest", f"{base}:amd64-only").code == 4


def test_by_digest_with_force(open_registry: RegistryServer, repo_name: str) -> None:
    index, _ = _multi_and_child(open_registry, repo_name, 1505)
    other = index.images[1].manifest.digest
    base = f"{open_registry.host}/{repo_name}"
    result = run_cli("delete", "--force", "--json", f"{base}@{other}")
    assert result.code == 0, result.stderr
    assert result.json()["brokenIndexes"] == ["multi"]
    assert run_cli("digest", f"{base}@{other}").code == 4


def test_deleting_the_index_itself_breaks_nothing(
    open_registry: RegistryServer, repo_name: str
) -> None:
    """The entries of a deleted index stay; their own tags are untouched."""
    _, child = _multi_and_child(open_registry, repo_name, 1506)
    base = f"{open_registry.host}/{repo_name}"
    result = run_cli("delete", f"{base}:multi")
    assert result.code == 0, result.stderr
    assert run_cli("digest", f"{base}:amd64-only").stdout.strip() == child
    assert run_cli("digest", f"{base}:multi").code == 4


def test_an_unrelated_image_is_deleted_without_force(
    open_registry: RegistryServer, repo_name: str
) -> None:
    index, _ = _multi_and_child(open_registry, repo_name, 1507)
    lone = seed(open_registry.host, repo_name, "lone", random_image(seed=1507))
    result = run_cli("delete", str(lone))
    assert result.code == 0, result.stderr
    _intact(open_registry, repo_name, index)


def test_more_tags_than_the_bound_are_refused_unless_forced(
    open_registry: RegistryServer, repo_name: str
) -> None:
    """Past ``max_tags`` nothing is known about the other tags: refuse, do not guess."""
    seed(open_registry.host, repo_name, "a", random_image(seed=1508))
    seed(open_registry.host, repo_name, "b", random_image(seed=1509))
    target = parse_reference(f"{open_registry.host}/{repo_name}:a")
    with client_for() as client:
        with pytest.raises(regshift.ForceRequired, match="1 tag") as refused:
            regshift.delete(client, target, max_tags=1)
        assert "--force" not in str(refused.value)  # the library names no CLI flag
        done = regshift.delete(client, target, max_tags=1, force=True)
    assert (done.method, done.unexamined) == ("digest", 1)
    assert run_cli("digest", str(target)).code == 4
    assert run_cli("digest", str(target.with_tag("b"))).code == 0


def test_library_refusal_names_no_flag(open_registry: RegistryServer, repo_name: str) -> None:
    _, child = _multi_and_child(open_registry, repo_name, 1510)
    ref: Reference = parse_reference(f"{open_registry.host}/{repo_name}@{child}")
    with client_for() as client, pytest.raises(regshift.PreconditionFailed) as refused:
        regshift.delete(client, ref)
    assert "multi" in str(refused.value) and "--" not in str(refused.value)


def test_layout_untag_of_a_listed_manifest_breaks_nothing(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    """A layout keeps its blobs when a tag goes: the index still resolves, no refusal."""
    index, child = _multi_and_child(open_registry, repo_name, 1511)
    base = f"{open_registry.host}/{repo_name}"
    layout = f"oci:{tmp_path / 'lay'}"
    assert run_cli("copy", f"{base}:multi", f"{layout}:multi").code == 0
    assert run_cli("copy", f"{base}:amd64-only", f"{layout}:amd64-only").code == 0
    assert run_cli("delete", f"{layout}:amd64-only").code == 0
    assert run_cli("digest", f"{layout}:multi").stdout.strip() == index.manifest.digest
    assert run_cli("inspect", f"{layout}:multi").code == 0
    assert run_cli("digest", f"{layout}@{child}").code == 0
