"""`tag` and `delete` edge cases found by a bug hunt, each against the real registry.

* HEAD answers without ``Docker-Content-Digest``: ``delete`` must still see the tags that
  share a digest (it deleted them silently), ``--no-clobber`` must see a tag already there;
* an error answer from an open registry does not depend on the credential configuration;
* ``digest --json`` reports the manifest's size;
* ``delete --dry-run`` of a digest that does not exist fails as the real run would;
* ``delete`` of a shared tag on a registry refusing every delete says so;
* ``tag --from-file``: registries named in the file are covered by ``--insecure``, a file
  that is not UTF-8 is a usage error, and ``--json`` prints a list whatever the file's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from regshift.reference import parse_reference
from regshift.sample import push_sample, random_image

from harness.proxy import FaultProxy, RewriteHeader, Rule
from harness.registry import RegistryServer
from support import client_for, run_cli, seed, write_docker_config


@pytest.fixture
def no_digest_proxy(open_registry: RegistryServer) -> Iterator[FaultProxy]:
    """The open registry behind a proxy that strips ``Docker-Content-Digest`` from HEADs."""
    with FaultProxy(open_registry.host) as proxy:
        proxy.add_rule(Rule(method="HEAD", action=RewriteHeader("Docker-Content-Digest", None)))
        yield proxy


def _tags(registry: RegistryServer, repo: str) -> list[str]:
    return sorted(run_cli("ls", f"{registry.host}/{repo}").stdout.split())


def test_delete_sees_shared_tags_when_heads_carry_no_digest(
    no_digest_proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    src = seed(open_registry.host, repo_name, "a", random_image(seed=971))
    assert run_cli("tag", str(src), "b").code == 0
    result = run_cli("delete", f"{no_digest_proxy.host}/{repo_name}:a")
    assert result.code == 5, result.stderr
    assert "tag(s) b" in result.stderr
    assert _tags(open_registry, repo_name) == ["a", "b"], "nothing may be deleted"


def test_no_clobber_sees_a_tag_already_there_when_heads_carry_no_digest(
    no_digest_proxy: FaultProxy, open_registry: RegistryServer, repo_name: str
) -> None:
    src = seed(open_registry.host, repo_name, "a", random_image(seed=972))
    assert run_cli("tag", str(src), "same").code == 0
    via = f"{no_digest_proxy.host}/{repo_name}:a"
    result = run_cli("tag", "--no-clobber", "--json", via, "same")
    assert result.code == 0, result.stderr
    assert result.json()["tags"][0]["action"] == "unchanged"


def test_a_404_from_an_open_registry_does_not_look_up_credentials(
    open_registry: RegistryServer, repo_name: str
) -> None:
    """A credential store that cannot run must not turn "not found" (4) into an auth error."""
    seed(open_registry.host, repo_name, "v1", random_image(seed=973))
    write_docker_config({"credsStore": "not-installed-regshift-test"})
    result = run_cli("manifest", f"{open_registry.host}/{repo_name}:nope")
    assert result.code == 4, result.stderr
    assert "MANIFEST_UNKNOWN" in result.stderr


def test_digest_json_reports_the_manifest_size(
    open_registry: RegistryServer, repo_name: str
) -> None:
    image = random_image(seed=974)
    src = seed(open_registry.host, repo_name, "v1", image)
    doc = run_cli("digest", "--json", str(src)).json()
    assert (doc["digest"], doc["size"]) == (image.manifest.digest, image.manifest.size)


def test_delete_dry_run_of_a_missing_digest_is_not_found(
    open_registry: RegistryServer, repo_name: str
) -> None:
    seed(open_registry.host, repo_name, "v1", random_image(seed=975))
    missing = f"{open_registry.host}/{repo_name}@sha256:{'0' * 64}"
    assert run_cli("delete", "--dry-run", missing).code == 4
    assert run_cli("delete", missing).code == 4


def test_delete_of_a_shared_tag_where_no_delete_is_allowed_says_so(
    no_delete_registry: RegistryServer, repo_name: str
) -> None:
    src = seed(no_delete_registry.host, repo_name, "a", random_image(seed=976))
    assert run_cli("tag", str(src), "b").code == 0
    result = run_cli("delete", str(src))
    assert result.code == 5, result.stderr
    assert "it may allow no deletes at all" in result.stderr


@pytest.fixture
def no_delete_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """distribution without ``storage.delete.enabled``: every DELETE is 405 UNSUPPORTED."""
    registry = RegistryServer(tmp_path / "no-delete", delete=False).start()
    try:
        yield registry
    finally:
        registry.stop()


def test_from_file_registries_are_covered_by_insecure(
    tls_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    ref = parse_reference(f"{tls_registry.host}/{repo_name}:v1")
    with client_for(ca_file=str(tls_registry.ca_file)) as client:
        push_sample(client, ref, random_image(seed=977))
    plan = tmp_path / "plan.txt"
    plan.write_text(f"{ref} via-file\n")
    result = run_cli("tag", "--insecure", "--from-file", str(plan))
    assert result.code == 0, result.stderr
    listed = run_cli("ls", "--insecure", f"{tls_registry.host}/{repo_name}")
    assert "via-file" in listed.stdout.split()


def test_from_file_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    plan = tmp_path / "plan.txt"
    plan.write_bytes(b"127.0.0.1:1/app:1 \xff\xfe\n")
    result = run_cli("tag", "--from-file", str(plan))
    assert result.code == 2
    assert "not UTF-8 text" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "encoding",
    ["utf-8-sig", "utf-16"],  # what Windows PowerShell 5 writes (Out-File, `>`), BOM first
)
def test_from_file_with_a_byte_order_mark_is_read(
    encoding: str, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    ref = parse_reference(f"{open_registry.host}/{repo_name}:v1")
    with client_for() as client:
        push_sample(client, ref, random_image(seed=978))
    plan = tmp_path / "plan.txt"
    plan.write_bytes(f"{ref} from-bom\r\n".encode(encoding))
    result = run_cli("tag", "--from-file", str(plan))
    assert result.code == 0, result.stderr
    listed = run_cli("ls", f"{open_registry.host}/{repo_name}")
    assert "from-bom" in listed.stdout.split()


def test_from_file_json_is_a_list_even_for_one_line(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    src = seed(open_registry.host, repo_name, "v1", random_image(seed=978))
    plan = tmp_path / "plan.txt"
    plan.write_text(f"{src} stable\n")
    result = run_cli("tag", "--json", "--from-file", str(plan))
    assert result.code == 0, result.stderr
    docs = result.json()
    assert isinstance(docs, list) and [d["source"] for d in docs] == [str(src)]


def test_a_failed_multi_tag_push_falls_back_and_learns_nothing(
    open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    """A dropped connection or a 403 on the multi-tag PUT: each tag gets its own PUT, no
    exception escapes, and the registry is not marked as lacking the feature for a week."""
    import regshift
    from regshift.capabilities import MULTI_TAG_PUSH, Capabilities

    from harness.proxy import ResetRequest, Respond

    src = seed(open_registry.host, repo_name, "v1", random_image(seed=979))
    faults = {"reset": ResetRequest(0), "denied": Respond.oci_error(403, "DENIED", "no")}
    for name, fault in faults.items():
        cache = tmp_path / name
        with FaultProxy(open_registry.host) as proxy:
            proxy.add_rule(Rule(method="PUT", path=r"\?tag=", action=fault))
            with client_for(cache_dir=cache) as client:
                ref = parse_reference(f"{proxy.host}/{repo_name}:{src.tag}")
                result = regshift.tag(client, ref, [f"{name}-a", f"{name}-b"], raise_on_error=False)
            host = proxy.host
        assert [o.method for o in result.outcomes] == ["put", "put"], name
        assert not result.failed, name
        assert Capabilities(cache).get(host, MULTI_TAG_PUSH) is None, name


def test_one_tag_given_as_a_string_is_one_tag(
    open_registry: RegistryServer, repo_name: str
) -> None:
    import regshift

    src = seed(open_registry.host, repo_name, "v1", random_image(seed=980))
    with client_for() as client:
        result = regshift.tag(client, src, "stable")
    assert [o.tag for o in result.outcomes] == ["stable"]
    assert _tags(open_registry, repo_name) == ["stable", "v1"]
