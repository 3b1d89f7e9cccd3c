"""`regshift tag` on the real registry: byte fidelity, request counts, guards."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

import regshift
from regshift.capabilities import MULTI_TAG_PUSH, Capabilities
from regshift.digests import compute_digest
from regshift.manifests import parse_manifest
from regshift.mediatypes import MediaType
from regshift.reference import parse_reference
from regshift.sample import SampleImage, SampleIndex, random_image, random_index

from harness.imports import NOT_FOR_TAG
from harness.proxy import Rule
from harness.registry import RegistryServer
from support import client_for, run_cli, seed

SAMPLES = {
    "docker-v2-compact": lambda: random_image(seed=11, docker=True),
    "docker-manifest-list": lambda: random_index(seed=12, docker=True),
    "oci-manifest-pretty": lambda: random_image(seed=13, pretty=True),
    "oci-index-pretty": lambda: random_index(
        seed=14, pretty=True, platforms=("linux/amd64", "linux/arm64/v8", "linux/s390x")
    ),
}


def _raw(registry: RegistryServer, repo: str, ref: str, accept: str) -> httpx.Response:
    return httpx.get(f"{registry.url}/v2/{repo}/manifests/{ref}", headers={"Accept": accept})


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_tag_keeps_bytes_and_digest(
    any_registry: RegistryServer, repo_name: str, kind: str
) -> None:
    """On every registry implementation of the matrix."""
    sample: SampleImage | SampleIndex = SAMPLES[kind]()
    raw = sample.manifest.raw
    if kind.endswith("pretty"):
        assert raw.endswith(b"\n") and b"\n  " in raw  # really pretty-printed, trailing newline
    else:
        assert b"\n" not in raw
    src = seed(any_registry.host, repo_name, "1.4.2", sample)

    result = run_cli("tag", "--json", str(src), "stable", "1.4")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["digest"] == sample.manifest.digest == compute_digest(raw)
    assert [t["tag"] for t in doc["tags"]] == ["stable", "1.4"]

    for new in ("stable", "1.4"):
        served = _raw(any_registry, repo_name, new, sample.manifest.media_type)
        assert served.status_code == 200
        assert served.content == raw, "the registry must serve exactly the source bytes"
        assert served.headers["docker-content-digest"] == sample.manifest.digest
        assert served.headers["content-type"] == sample.manifest.media_type
        out = run_cli("manifest", f"{any_registry.host}/{repo_name}:{new}")
        assert out.stdout_bytes == raw
    if isinstance(sample, SampleIndex):
        for image in sample.images:  # every platform still resolvable by digest under the new tag
            child = _raw(any_registry, repo_name, image.manifest.digest, image.manifest.media_type)
            assert child.status_code == 200 and child.content == image.manifest.raw
        listed = parse_manifest(
            _raw(any_registry, repo_name, "stable", sample.manifest.media_type).content
        )
        assert [d.digest for d in listed.manifests] == [i.manifest.digest for i in sample.images]


def _tag_routes(registry: RegistryServer) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in registry.requests()]


def test_request_counts_any_registry(
    any_registry: RegistryServer, repo_name: str, tmp_path
) -> None:
    """The same on every implementation of the matrix: none of them does the OCI multi-tag
    push (distribution 3.1 ignores ``?tag=`` as 2.8 does; refreg stores the manifest under
    its digest and sends no ``OCI-Tag``)."""
    src = seed(any_registry.host, repo_name, "v1", random_image(seed=21))
    digest = random_image(seed=21).manifest.digest
    path = f"/v2/{repo_name}/manifests"

    # A single tag: exactly 1 GET + 1 PUT.
    any_registry.mark()
    with client_for(cache_dir=tmp_path) as client:
        regshift.tag(client, src, ["one"])
    assert _tag_routes(any_registry) == [("GET", f"{path}/v1"), ("PUT", f"{path}/one")]

    # First multi-tag run against a registry: one probe of the OCI multi-tag push, which
    # no registry of the matrix has (no OCI-Tag header), then a PUT per tag. The answer is
    # remembered.
    any_registry.mark()
    with client_for(cache_dir=tmp_path) as client:
        result = regshift.tag(client, src, ["a", "b", "c"])
    probe = f"{path}/{digest}?tag=a&tag=b&tag=c"
    assert _tag_routes(any_registry) == [
        ("GET", f"{path}/v1"),
        ("PUT", probe),
        ("PUT", f"{path}/a"),
        ("PUT", f"{path}/b"),
        ("PUT", f"{path}/c"),
    ]
    assert [o.method for o in result.outcomes] == ["put"] * 3
    assert Capabilities(tmp_path).get(src.endpoint, MULTI_TAG_PUSH) is False

    # Every later run (a new client, as a new CLI process would be): 1 GET + 3 PUT.
    any_registry.mark()
    with client_for(cache_dir=tmp_path) as client:
        result = regshift.tag(client, src, ["x", "y", "z"])
        assert result.requests == 4
    assert _tag_routes(any_registry) == [
        ("GET", f"{path}/v1"),
        ("PUT", f"{path}/x"),
        ("PUT", f"{path}/y"),
        ("PUT", f"{path}/z"),
    ]


def test_request_counts_token_registry(
    token_registry: RegistryServer, repo_name: str, tmp_path
) -> None:
    user, password = token_registry.username, token_registry.password
    assert user and password
    src = seed(
        token_registry.host,
        repo_name,
        "v1",
        random_image(seed=22),
        username=user,
        password=password,
    )
    Capabilities(tmp_path).set(src.endpoint, MULTI_TAG_PUSH, False)
    server = token_registry.token_server
    server.reset()
    token_registry.mark()
    with client_for(username=user, password=password, cache_dir=tmp_path) as client:
        regshift.tag(client, src, ["a", "b", "c"])
        assert client.token_requests(src.endpoint) == 1
    fetched = server.requests
    assert len(fetched) == 1, fetched
    assert fetched[0].scopes == [f"repository:{repo_name}:pull,push"]
    assert fetched[0].user == user
    routes = _tag_routes(token_registry)
    path = f"/v2/{repo_name}/manifests"
    assert routes == [("GET", f"{path}/v1"), ("GET", f"{path}/v1")] + [
        ("PUT", f"{path}/{t}") for t in "abc"
    ]
    assert [r.status for r in token_registry.requests()][:2] == [401, 200]


def test_expect_digest(open_registry: RegistryServer, repo_name: str) -> None:
    src = seed(open_registry.host, repo_name, "1.0", random_image(seed=23))
    good = random_image(seed=23).manifest.digest
    assert run_cli("tag", "--expect-digest", good, str(src), "prod").code == 0
    open_registry.mark()
    bad = "sha256:" + "0" * 64
    result = run_cli("tag", "--expect-digest", bad, str(src), "prod2")
    assert result.code == 5
    assert "not the expected" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not [r for r in open_registry.requests() if r.method == "PUT"]
    open_registry.mark()
    malformed = run_cli("tag", "--expect-digest", "nope", str(src), "prod3")
    assert malformed.code == 2, malformed.stderr
    assert 'invalid digest "nope"' in malformed.stderr
    assert open_registry.requests() == [], "a malformed digest is refused before any request"


def test_no_clobber(open_registry: RegistryServer, repo_name: str) -> None:
    a = seed(open_registry.host, repo_name, "a", random_image(seed=24))
    seed(open_registry.host, repo_name, "b", random_image(seed=25))
    open_registry.mark()
    result = run_cli("tag", "--no-clobber", str(a), "new", "b")
    assert result.code == 5, result.stderr
    assert "b -> sha256:" in result.stderr
    assert not [r for r in open_registry.requests() if r.method == "PUT"], "nothing may be written"
    result = run_cli("tag", "--no-clobber", "--json", str(a), "new", "a")
    assert result.code == 0
    actions = {t["tag"]: t["action"] for t in result.json()["tags"]}
    assert actions == {"new": "created", "a": "unchanged"}


def test_dry_run_writes_nothing(open_registry: RegistryServer, repo_name: str) -> None:
    a = seed(open_registry.host, repo_name, "a", random_image(seed=26))
    seed(open_registry.host, repo_name, "old", random_image(seed=27))
    open_registry.mark()
    result = run_cli("tag", "--dry-run", "--json", str(a), "old", "fresh")
    assert result.code == 0
    tags = {t["tag"]: t for t in result.json()["tags"]}
    assert tags["old"]["action"] == "would-tag"
    assert tags["old"]["previous"] == random_image(seed=27).manifest.digest
    assert tags["fresh"]["previous"] is None
    assert {r.method for r in open_registry.requests()} <= {"GET", "HEAD"}


def test_text_output(open_registry: RegistryServer, repo_name: str) -> None:
    src = seed(open_registry.host, repo_name, "1.0", random_image(seed=28))
    result = run_cli("tag", str(src), "stable")
    assert result.code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{src} sha256:")
    assert lines[1].split() == ["stable", "tagged"]


def test_skopeo_pushed_image_can_be_tagged(
    open_registry: RegistryServer, repo_name: str, tmp_path
) -> None:
    """Interop: skopeo pushes, regshift tags, skopeo reads exactly the same bytes back."""
    import subprocess

    from regshift.sample import random_index

    sample = random_index(seed=29)
    layout = tmp_path / "layout"
    _write_layout(layout, sample, "v1")
    dest = f"docker://{open_registry.host}/{repo_name}:v1"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{layout}:v1",
            dest,
        ],
        check=True,
        capture_output=True,
    )
    result = run_cli("tag", "--json", f"{open_registry.host}/{repo_name}:v1", "promoted")
    assert result.code == 0, result.stderr
    assert result.json()["digest"] == sample.manifest.digest
    raw = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{open_registry.host}/{repo_name}:promoted",
        ],
        check=True,
        capture_output=True,
    ).stdout
    assert raw == sample.manifest.raw
    assert run_cli("manifest", f"{open_registry.host}/{repo_name}:promoted").stdout_bytes == raw


def _write_layout(path, sample: SampleIndex, tag: str) -> None:
    """A minimal OCI image layout holding ``sample`` (for skopeo to push)."""
    import json

    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> None:
        (blobs / compute_digest(data).split(":")[1]).write_bytes(data)

    for image in sample.images:
        for blob in image.blobs:
            put(blob)
        put(image.manifest.raw)
    put(sample.manifest.raw)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = {
        "mediaType": MediaType.OCI_INDEX,
        "digest": sample.manifest.digest,
        "size": sample.manifest.size,
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))


def test_multi_tag_push_used_where_supported(
    open_registry: RegistryServer, repo_name: str, tmp_path
) -> None:
    """A registry confirming tags with OCI-Tag gets one PUT for them all.

    Emulated: distribution 2.8 lacks the feature, so the proxy adds the headers a supporting
    registry sends (for a and b; c is left to a PUT of its own).
    """
    from harness.proxy import FaultProxy, RewriteHeader

    seed(open_registry.host, repo_name, "v1", random_image(seed=81))
    with FaultProxy(open_registry.host) as proxy:
        proxy.add_rule(Rule(method="PUT", path=r"\?tag=", action=RewriteHeader("OCI-Tag", "a, b")))
        with client_for(cache_dir=tmp_path) as client:
            result = regshift.tag(
                client, parse_reference(f"{proxy.host}/{repo_name}:v1"), ["a", "b", "c"]
            )
        puts = [r.path for r in proxy.requests if r.method == "PUT"]
    assert [(o.tag, o.method) for o in result.outcomes] == [
        ("a", "multi-tag"),
        ("b", "multi-tag"),
        ("c", "put"),
    ]
    assert len(puts) == 2 and "?tag=a&tag=b&tag=c" in puts[0] and puts[1].endswith("/manifests/c")
    assert Capabilities(tmp_path).get(proxy.host, MULTI_TAG_PUSH) is True


def test_promote_many_images_in_one_run(
    any_registry: RegistryServer, repo_name: str, tmp_path
) -> None:
    """`tag --from-file`: many images, one process, one connection pool; a bad line fails alone."""
    lines = ["# promotions for release 7", ""]
    for i in range(5):
        seed(any_registry.host, f"{repo_name}/app{i}", "1.4.2", random_image(seed=90 + i))
        lines.append(f"{any_registry.host}/{repo_name}/app{i}:1.4.2 stable 1.4")
    lines.append(f"{any_registry.host}/{repo_name}/missing:1.0 stable")
    plan = tmp_path / "promote.txt"
    plan.write_text("\n".join(lines) + "\n")
    any_registry.mark()
    result = run_cli("tag", "--json", "--from-file", str(plan))
    assert result.code == 4, result.stderr
    docs = result.json()
    assert [d.get("digest") for d in docs[:5]] == [
        random_image(seed=90 + i).manifest.digest for i in range(5)
    ]
    assert "error" in docs[5] and "missing:1.0" in docs[5]["error"]
    assert result.stderr.count("regshift: error:") == 1
    for i in range(5):
        out = run_cli("ls", f"{any_registry.host}/{repo_name}/app{i}").stdout.split()
        assert sorted(out) == ["1.4", "1.4.2", "stable"]
    bad = tmp_path / "bad.txt"
    bad.write_text("only-a-source\n")
    usage = run_cli("tag", "--from-file", str(bad))
    assert usage.code == 2 and "bad.txt:1" in usage.stderr
    assert run_cli("tag", "--from-file", str(plan), "extra").code == 2


def test_tag_process_imports_only_what_it_uses(
    open_registry: RegistryServer, repo_name: str
) -> None:
    """A real `regshift tag` process (the console entry point) loads no copy, layout or UI code."""
    src = seed(open_registry.host, repo_name, "1.0", random_image(seed=95))
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('MODULES', *sorted(sys.modules)))\n"
        "from regshift.cli.main import main\n"
        f"main(['tag', {str(src)!r}, 'stable'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "stable" in proc.stdout and "tagged" in proc.stdout
    loaded = set(proc.stdout.split("MODULES", 1)[1].split())
    assert {"regshift.wire", "regshift.tagging", "regshift.client"} <= loaded  # imports seen
    assert "httpx" not in loaded  # the HTTP layer is the standard library's
    unused = sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in NOT_FOR_TAG))
    assert unused == []
    assert "regshift.proxies" not in loaded  # read only when a proxy variable is set
