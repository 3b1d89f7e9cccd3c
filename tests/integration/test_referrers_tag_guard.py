"""`tag` and `copy` do not overwrite referrers tags (issue 15, item 3).

On a registry without the referrers API (distribution 2.8) the signatures of a digest are
listed by the index under its fallback tag ``sha256-<hex>``. Writing an image there hides
them, so every path that writes a user-named tag refuses such a name (exit 5, nothing sent or
created) unless forced. Each test runs against the real registry.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import regshift
from regshift.reference import Reference
from regshift.referrers import fallback_tag
from regshift.sample import random_image

from artifacts import attach_artifact, signature_of
from harness.registry import RegistryServer
from support import client_for, run_cli, seed


def _signed(registry: RegistryServer, repo: str, seed_: int) -> tuple[Reference, str, Reference]:
    """``v1`` with one signature (listed under its fallback tag), and an unrelated ``other``."""
    image = random_image(seed=seed_)
    signed = seed(registry.host, repo, "v1", image)
    signature = signature_of(image.manifest)
    with client_for() as client:
        attach_artifact(client, signed.repo_only(), signature)
    other = seed(registry.host, repo, "other", random_image(seed=seed_ + 1))
    return signed, signature.digest, other


def _signatures(ref: Reference) -> list[str]:
    listed = run_cli("referrers", "--json", str(ref))
    assert listed.code == 0, listed.stderr
    return [node["digest"] for node in listed.json()["referrers"]]


def _digest(ref: Reference) -> str:
    found = run_cli("digest", str(ref))
    assert found.code == 0, found.stderr
    return found.stdout.strip()


def test_tag_refuses_a_referrers_tag(open_registry: RegistryServer, repo_name: str) -> None:
    signed, signature, other = _signed(open_registry, repo_name, 1521)
    name = fallback_tag(run_cli("digest", str(signed)).stdout.strip())
    result = run_cli("tag", str(other), "fine", name)
    assert result.code == 5, result.stderr
    assert name in result.stderr and "--force" in result.stderr
    assert _signatures(signed) == [signature]
    assert run_cli("digest", str(other.with_tag("fine"))).code == 4, "nothing may be sent"

    forced = run_cli("tag", "--force", str(other), name)
    assert forced.code == 0, forced.stderr
    assert _digest(other.with_tag(name)) == _digest(other), "--force writes the tag"


def test_tag_from_file_refuses_a_referrers_tag(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    signed, signature, other = _signed(open_registry, repo_name, 1523)
    name = fallback_tag(run_cli("digest", str(signed)).stdout.strip())
    plan = tmp_path / "plan.txt"
    plan.write_text(f"{other} {name}\n")
    result = run_cli("tag", "--from-file", str(plan))
    assert result.code == 5, result.stderr
    assert name in result.stderr and "--force" in result.stderr
    assert _signatures(signed) == [signature]


def test_copy_refuses_a_referrers_tag(open_registry: RegistryServer, repo_name: str) -> None:
    signed, signature, other = _signed(open_registry, repo_name, 1525)
    name = fallback_tag(run_cli("digest", str(signed)).stdout.strip())
    result = run_cli("copy", str(other), str(other.with_tag(name)))
    assert result.code == 5, result.stderr
    assert name in result.stderr and "--force" in result.stderr
    assert _signatures(signed) == [signature]

    # A destination without a tag takes the source's: copying the referrers index of one
    # repository over another's is refused just the same.
    dst_repo = f"{open_registry.host}/{repo_name}-dst"
    assert run_cli("copy", "--referrers", str(signed), f"{dst_repo}:v1").code == 0
    result = run_cli("copy", str(signed.with_tag(name)), dst_repo)
    assert result.code == 5, result.stderr

    forced = run_cli("copy", "--force", str(other), str(other.with_tag(name)))
    assert forced.code == 0, forced.stderr
    assert _digest(other.with_tag(name)) == _digest(other)


def test_copy_to_a_layout_refuses_a_referrers_tag(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    signed, _, other = _signed(open_registry, repo_name, 1527)
    name = fallback_tag(run_cli("digest", str(signed)).stdout.strip())
    path = tmp_path / "lay"
    result = run_cli("copy", str(other), f"oci:{path}:{name}")
    assert result.code == 5, result.stderr
    assert "--force" in result.stderr
    assert not path.exists(), "nothing may be created"

    # a layout keeps its referrers under the same fallback tags
    assert run_cli("copy", "--referrers", str(signed), f"oci:{path}:v1").code == 0
    before = run_cli("digest", f"oci:{path}:{name}").stdout.strip()
    assert run_cli("copy", str(other), f"oci:{path}:{name}").code == 5
    assert run_cli("digest", f"oci:{path}:{name}").stdout.strip() == before
    assert run_cli("copy", "--force", str(other), f"oci:{path}:{name}").code == 0
    assert run_cli("digest", f"oci:{path}:{name}").stdout.strip() != before


def test_tag_in_a_layout_refuses_a_referrers_tag(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    signed, _, _ = _signed(open_registry, repo_name, 1529)
    name = fallback_tag(run_cli("digest", str(signed)).stdout.strip())
    layout = f"oci:{tmp_path / 'lay'}"
    assert run_cli("copy", "--referrers", str(signed), f"{layout}:v1").code == 0
    before = run_cli("digest", f"{layout}:{name}").stdout.strip()
    assert run_cli("tag", f"{layout}:v1", name).code == 5
    assert run_cli("digest", f"{layout}:{name}").stdout.strip() == before


def test_library_refuses_unless_forced(open_registry: RegistryServer, repo_name: str) -> None:
    signed, signature, other = _signed(open_registry, repo_name, 1531)
    with client_for() as client:
        name = fallback_tag(regshift.digest(client, signed).digest)
        with pytest.raises(regshift.ForceRequired) as by_tag:
            regshift.tag(client, other, [name])
        with pytest.raises(regshift.PreconditionFailed) as by_copy:
            regshift.copy(client, other, [other.with_tag(name)])
        for refused in (by_tag.value, by_copy.value):
            assert name in str(refused) and "--" not in str(refused)
        assert _signatures(signed) == [signature]
        regshift.tag(client, other, [name], force=True)
        assert regshift.digest(client, other.with_tag(name)).digest == (
            regshift.digest(client, other).digest
        )
        regshift.copy(
            client, signed, [other.with_tag(name)], options=regshift.CopyOptions(force=True)
        )
        assert regshift.digest(client, other.with_tag(name)).digest == (
            regshift.digest(client, signed).digest
        )


def test_cosign_suffix_tags_are_not_refused(open_registry: RegistryServer, repo_name: str) -> None:
    """``sha256-<hex>.sig`` is an image (a cosign signature), not a referrers list."""
    signed, _, other = _signed(open_registry, repo_name, 1533)
    name = fallback_tag(run_cli("digest", str(signed)).stdout.strip()) + ".sig"
    assert run_cli("tag", str(other), name).code == 0
