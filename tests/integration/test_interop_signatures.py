"""Real signatures travel: cosign signs and attests, oras attaches an SBOM, regshift copies the
image with ``--referrers`` (and ``--digest-tags`` for cosign's ``sha256-<hex>.sig``/``.att``
tags) to another registry, and ``cosign verify``, ``cosign verify-attestation`` and ``oras
discover`` pass there. cosign runs both ways it stores things: its tags (the default), and
OCI 1.1 referrers (``--registry-referrers-mode=oci-1-1``, ``attest --new-bundle-format``).

Between CNCF distribution 2.8 (no referrers API: the ``sha256-<hex>`` fallback tag) and
refreg (the OCI 1.1 referrers API), in both directions. cosign signs with a key made in the
test, never uploads to a transparency log and never leaves loopback (the peers run with a dead
proxy for anything else). Peers come from ``scripts/peers``; a missing one fails.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from regshift.digests import compute_digest
from regshift.sample import random_image, random_index

from harness import interop
from harness.interop import Peers, RefReg
from harness.registry import RegistryServer
from support import run_cli, seed

# The shared fixtures interop_peers, interop_refreg and skopeo_policy (see harness.interop).
interop_peers_fixture = interop.interop_peers_fixture
interop_refreg_fixture = interop.interop_refreg_fixture
skopeo_policy_fixture = interop.skopeo_policy_fixture

SBOM_TYPE = "application/spdx+json"
_REF_NAME = "org.opencontainers.image.ref.name"
_PASSWORD = "interop-cosign-key-pw"  # protects a throw-away key made in the test
_REGISTRY_FLAGS = ("--allow-http-registry", "--allow-insecure-registry")
# verify fetches Sigstore's public trusted root over TUF unless given one: an empty root
# keeps it off the network (the key is all it needs; the transparency log is ignored).
_EMPTY_TRUSTED_ROOT = {"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}


def _server(request: pytest.FixtureRequest, kind: str, second: bool = False) -> str:
    if kind == "refreg":
        refreg: RefReg = request.getfixturevalue("interop_refreg")
        return refreg.host
    server: RegistryServer = request.getfixturevalue(
        "other_registry" if second else "open_registry"
    )
    return server.host


@dataclass(frozen=True)
class Cosign:
    """cosign with a key pair made for one test; no transparency log, plain-HTTP loopback."""

    interop_peers: Peers
    keys: Path
    # Everything as OCI 1.1 referrers: sign --registry-referrers-mode=oci-1-1 (which needs
    # COSIGN_EXPERIMENTAL=1), attest --new-bundle-format (a Sigstore bundle), and verify
    # with --experimental-oci11; otherwise cosign's sha256-<hex>.sig/.att tags.
    referrers: bool = False

    def _env(self) -> dict[str, str]:
        experimental = "1" if self.referrers else ""
        return {"COSIGN_PASSWORD": _PASSWORD, "COSIGN_EXPERIMENTAL": experimental}

    def _offline(self) -> tuple[str | Path, ...]:
        return ("--insecure-ignore-tlog=true", "--trusted-root", self.keys / "trusted_root.json")

    def run(self, *args: str | Path) -> bytes:
        return self.interop_peers.cosign_run(*args, *_REGISTRY_FLAGS, env=self._env())

    def fails_to_verify(self, ref: str) -> bool:
        """cosign verify exits non-zero (no signature it can find and check) at ``ref``."""
        key = self.keys / "cosign.pub"
        args = ("verify", "--key", key, *self._offline(), *_REGISTRY_FLAGS, ref)
        return (
            self.interop_peers.attempt(self.interop_peers.cosign, *args, env=self._env()).returncode
            != 0
        )

    def sign(self, ref: str, *extra: str) -> None:
        mode = ("--registry-referrers-mode=oci-1-1",) if self.referrers else ()
        self.run(
            "sign",
            "--key",
            self.keys / "cosign.key",
            "--tlog-upload=false",
            "--yes",
            *mode,
            *extra,
            ref,
        )

    def attest(self, ref: str, predicate: Path) -> None:
        self.run(
            "attest",
            "--key",
            self.keys / "cosign.key",
            "--tlog-upload=false",
            "--yes",
            "--type",
            "spdxjson",
            "--predicate",
            predicate,
            *self._bundle(),
            ref,
        )

    def _bundle(self) -> tuple[str, ...]:
        return ("--new-bundle-format",) if self.referrers else ()

    def verify(self, ref: str) -> list[dict[str, Any]]:
        extra = ("--experimental-oci11",) if self.referrers else ()
        out = self.run(
            "verify",
            "--key",
            self.keys / "cosign.pub",
            *self._offline(),
            "--output",
            "json",
            *extra,
            ref,
        )
        docs = json.loads(out)
        assert isinstance(docs, list)
        return docs

    def verify_attestation(self, ref: str) -> list[dict[str, Any]]:
        out = self.run(
            "verify-attestation",
            "--key",
            self.keys / "cosign.pub",
            *self._offline(),
            "--type",
            "spdxjson",
            *self._bundle(),
            ref,
        )
        return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def cosign(interop_peers: Peers, tmp_path: Path) -> Cosign:
    keys = tmp_path / "keys"
    keys.mkdir()
    interop_peers.run(
        interop_peers.cosign, "generate-key-pair", env={"COSIGN_PASSWORD": _PASSWORD}, cwd=keys
    )
    assert (keys / "cosign.key").is_file() and (keys / "cosign.pub").is_file()
    (keys / "trusted_root.json").write_text(json.dumps(_EMPTY_TRUSTED_ROOT))
    return Cosign(interop_peers, keys)


def _sbom(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "sbom.spdx.json"
    doc = {
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "dataLicense": "CC0-1.0",
        "documentNamespace": f"https://example.invalid/{name}",
    }
    path.write_text(json.dumps(doc))
    return path


def _discover(interop_peers: Peers, ref: str) -> list[dict[str, Any]]:
    """``oras discover`` of ``ref``: its referrers (with theirs nested), as oras sees them."""
    doc = json.loads(interop_peers.oras_run(["discover"], "--format", "json", ref))
    referrers = doc.get("referrers") or []
    assert isinstance(referrers, list)
    return referrers


def _signed_source(
    interop_peers: Peers, cosign: Cosign, host: str, repo: str, tmp_path: Path
) -> tuple[str, str, Path, str]:
    """An image at ``host/repo:v1``, signed and attested by cosign, with an SBOM attached by
    oras. Returns (reference, digest, SBOM file, digest of oras's SBOM manifest)."""
    image = random_image(seed=1410 + len(repo), layers=2)
    ref = str(seed(host, repo, "v1", image))
    digest = image.manifest.digest
    by_digest = f"{host}/{repo}@{digest}"
    sbom = _sbom(tmp_path, repo)
    cosign.sign(by_digest)
    cosign.attest(by_digest, sbom)
    attached = interop_peers.run(
        interop_peers.oras,
        "attach",
        "--plain-http",
        "--format",
        "json",
        "--artifact-type",
        SBOM_TYPE,
        by_digest,
        f"{sbom.name}:{SBOM_TYPE}",
        cwd=sbom.parent,
    )
    sbom_digest = json.loads(attached)["digest"]
    assert sbom_digest in [r["digest"] for r in _discover(interop_peers, by_digest)]
    return ref, digest, sbom, sbom_digest


def _assert_verified_at(
    interop_peers: Peers,
    cosign: Cosign,
    ref: str,
    digest: str,
    sbom: Path,
    sbom_digest: str,
) -> None:
    """cosign verifies the signature and the attestation at ``ref``; oras finds the SBOM,
    and pulls the very file."""
    for doc in cosign.verify(ref):
        assert doc["critical"]["image"]["docker-manifest-digest"] == digest
    statements = cosign.verify_attestation(ref)
    assert statements
    for envelope in statements:
        statement = json.loads(base64.b64decode(envelope["payload"]))
        assert statement["subject"][0]["digest"]["sha256"] == digest.removeprefix("sha256:")
        assert statement["predicate"] == json.loads(sbom.read_bytes())
    # Found by digest, not by the artifactType of the listing: refreg (go-containerregistry's
    # pkg/registry v0.22.1) lists every referrer with its config media type as artifactType,
    # the empty-JSON type for oras's SBOM, ignoring the manifest's own artifactType field.
    repo = ref.rsplit(":", 1)[0] if "@" not in ref else ref.split("@", 1)[0]
    assert sbom_digest in [r["digest"] for r in _discover(interop_peers, ref)]
    host = ref.split("/", 1)[0]
    listed = interop_peers.regctl_run((host,), "artifact", "list", "--format", "raw-body", ref)
    assert sbom_digest in [d["digest"] for d in json.loads(listed)["manifests"]]
    fetched = json.loads(interop_peers.oras_run(["manifest", "fetch"], f"{repo}@{sbom_digest}"))
    assert fetched["artifactType"] == SBOM_TYPE
    pulled = sbom.parent / "pulled"
    interop_peers.oras_run(["pull"], "--output", pulled, f"{repo}@{sbom_digest}")
    assert (pulled / sbom.name).read_bytes() == sbom.read_bytes()


@pytest.mark.parametrize("destination", ["distribution", "refreg"])
def test_cosign_tag_signatures_travel_with_digest_tags(
    interop_peers: Peers,
    cosign: Cosign,
    request: pytest.FixtureRequest,
    destination: str,
    repo_name: str,
    tmp_path: Path,
) -> None:
    """cosign's default: signatures and attestations under ``sha256-<hex>.sig``/``.att``."""
    src_host = _server(request, "distribution")
    dst_host = _server(request, destination, second=True)
    src, digest, sbom, sbom_digest = _signed_source(
        interop_peers, cosign, src_host, repo_name, tmp_path
    )
    dst = f"{dst_host}/{repo_name}:v1"

    result = run_cli("copy", "--referrers", "--digest-tags", "--json", src, dst)
    assert result.code == 0, result.stderr
    assert result.json()["digest"] == digest

    stem = digest.replace(":", "-")
    for suffix in (".sig", ".att"):
        at_src = interop_peers.crane_run("manifest", f"{src_host}/{repo_name}:{stem}{suffix}")
        at_dst = interop_peers.crane_run("manifest", f"{dst_host}/{repo_name}:{stem}{suffix}")
        assert at_dst == at_src, suffix
    _assert_verified_at(interop_peers, cosign, dst, digest, sbom, sbom_digest)

    # Control: the same image copied without them does not verify.
    bare = f"{dst_host}/{repo_name}/bare:v1"
    assert run_cli("copy", "-q", src, bare).code == 0
    assert cosign.fails_to_verify(bare)


@pytest.mark.parametrize(
    ("source", "destination"), [("distribution", "refreg"), ("refreg", "distribution")]
)
def test_cosign_referrers_travel(
    interop_peers: Peers,
    cosign: Cosign,
    request: pytest.FixtureRequest,
    source: str,
    destination: str,
    repo_name: str,
    tmp_path: Path,
) -> None:
    """cosign in OCI 1.1 mode: the signature (``--registry-referrers-mode=oci-1-1``) and the
    attestation (``--new-bundle-format``, a Sigstore bundle) are referrers like oras's SBOM,
    listed by the referrers API on refreg and by the fallback tag on distribution, and cross
    to the other kind of registry with ``--referrers`` alone: no cosign tag exists."""
    src_host = _server(request, source)
    dst_host = _server(request, destination, second=True)
    cosign = dataclasses.replace(cosign, referrers=True)
    src, digest, sbom, sbom_digest = _signed_source(
        interop_peers, cosign, src_host, repo_name, tmp_path
    )
    dst = f"{dst_host}/{repo_name}:v1"

    result = run_cli("copy", "--referrers", "--json", src, dst)
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["digest"] == digest
    referrers = _discover(interop_peers, f"{src_host}/{repo_name}@{digest}")
    assert len(referrers) == 3  # signature, attestation bundle, SBOM
    assert sorted(doc["referrers"]) == sorted(r["digest"] for r in referrers)
    at_dst = {r["digest"] for r in _discover(interop_peers, f"{dst_host}/{repo_name}@{digest}")}
    assert at_dst == {r["digest"] for r in referrers}
    for referrer in referrers:  # each referrer's manifest arrived byte for byte
        ref = f"{dst_host}/{repo_name}@{referrer['digest']}"
        assert compute_digest(interop_peers.crane_run("manifest", ref)) == referrer["digest"]
    # Only the image's tag and fallback tags: cosign can find its documents only as referrers.
    for host in (src_host, dst_host):
        tags = run_cli("ls", f"{host}/{repo_name}").stdout.split()
        assert not [t for t in tags if t.endswith((".sig", ".att"))], tags
    _assert_verified_at(interop_peers, cosign, dst, digest, sbom, sbom_digest)


def test_signatures_cross_an_air_gap_through_a_layout(
    interop_peers: Peers,
    cosign: Cosign,
    open_registry: RegistryServer,
    interop_refreg: RefReg,
    repo_name: str,
    tmp_path: Path,
) -> None:
    """Registry → ``oci:`` layout → another registry, signatures and SBOM carried both ways:
    oras reads the referrers in regshift's layout, cosign verifies at the far end."""
    src, digest, sbom, sbom_digest = _signed_source(
        interop_peers, cosign, open_registry.host, repo_name, tmp_path
    )
    layout = tmp_path / "usb"
    out = run_cli("copy", "-q", "--referrers", "--digest-tags", src, f"oci:{layout}:v1")
    assert out.code == 0, out.stderr
    in_layout = json.loads(
        interop_peers.run(
            interop_peers.oras, "discover", "--format", "json", "--oci-layout", f"{layout}:v1"
        )
    )
    assert sbom_digest in [r["digest"] for r in in_layout.get("referrers") or []]

    dst = f"{interop_refreg.host}/{repo_name}:v1"
    back = run_cli("copy", "-q", "--referrers", "--digest-tags", f"oci:{layout}:v1", dst)
    assert back.code == 0, back.stderr
    _assert_verified_at(interop_peers, cosign, dst, digest, sbom, sbom_digest)


def test_recursive_index_signatures_travel_with_all_tags_and_platform(
    interop_peers: Peers,
    cosign: Cosign,
    open_registry: RegistryServer,
    other_registry: RegistryServer,
    interop_refreg: RefReg,
    repo_name: str,
) -> None:
    """``cosign sign --recursive`` signs an index and every platform (one ``.sig`` tag each):
    ``copy --all-tags`` carries them all, ``copy --platform`` the chosen platform's."""
    sample = random_index(seed=1420, platforms=("linux/amd64", "linux/arm64/v8"))
    seed(open_registry.host, repo_name, "v1", sample)
    src_repo = f"{open_registry.host}/{repo_name}"
    cosign.sign(f"{src_repo}@{sample.manifest.digest}", "--recursive")
    digests = [sample.manifest.digest, *(image.manifest.digest for image in sample.images)]

    whole = f"{interop_refreg.host}/{repo_name}"
    out = run_cli("copy", "-q", "--all-tags", "--referrers", "--digest-tags", src_repo, whole)
    assert out.code == 0, out.stderr
    for digest in digests:
        for doc in cosign.verify(f"{whole}@{digest}"):
            assert doc["critical"]["image"]["docker-manifest-digest"] == digest

    arm = sample.images[1].manifest.digest
    one = f"{other_registry.host}/{repo_name}:arm64"
    picked = run_cli(
        "copy", "--json", "--platform", "linux/arm64", "--digest-tags", f"{src_repo}:v1", one
    )
    assert picked.code == 0, picked.stderr
    assert picked.json()["digest"] == arm
    assert [d["critical"]["image"]["docker-manifest-digest"] for d in cosign.verify(one)] == [arm]


def _copy_layout_and_discover(
    interop_peers: Peers, layout: Path, dst: str, digest: str
) -> list[str]:
    """regshift copies ``oci:LAYOUT:v1`` with its referrers to ``dst``; the referrers oras
    finds there."""
    out = run_cli("copy", "-q", "--referrers", "--digest-tags", f"oci:{layout}:v1", dst)
    assert out.code == 0, out.stderr
    repo = dst.rsplit(":", 1)[0]
    return [r["digest"] for r in _discover(interop_peers, f"{repo}@{digest}")]


def test_referrers_in_a_layout_regctl_writes_travel(
    interop_peers: Peers,
    cosign: Cosign,
    open_registry: RegistryServer,
    interop_refreg: RefReg,
    repo_name: str,
    tmp_path: Path,
) -> None:
    """regctl keeps a layout's referrers under the fallback tag, as regshift does."""
    src, digest, sbom, sbom_digest = _signed_source(
        interop_peers, cosign, open_registry.host, repo_name, tmp_path
    )
    layout = tmp_path / "regctl-layout"
    interop_peers.regctl_run(
        (open_registry.host,),
        "image",
        "copy",
        "--referrers",
        "--digest-tags",
        src,
        f"ocidir://{layout}:v1",
    )
    dst = f"{interop_refreg.host}/{repo_name}:v1"
    assert sbom_digest in _copy_layout_and_discover(interop_peers, layout, dst, digest)
    _assert_verified_at(interop_peers, cosign, dst, digest, sbom, sbom_digest)


def test_referrers_in_a_layout_oras_writes_travel(
    interop_peers: Peers,
    open_registry: RegistryServer,
    interop_refreg: RefReg,
    repo_name: str,
    tmp_path: Path,
) -> None:
    """``oras cp -r`` writes the SBOM into the layout as an untagged index.json entry with
    its subject (no fallback tag); oras discover --oci-layout finds it there."""
    image = random_image(seed=1430, layers=1)
    src = str(seed(open_registry.host, repo_name, "v1", image))
    digest = image.manifest.digest
    sbom = _sbom(tmp_path, repo_name)
    attached = interop_peers.run(
        interop_peers.oras,
        "attach",
        "--plain-http",
        "--format",
        "json",
        "--artifact-type",
        SBOM_TYPE,
        f"{open_registry.host}/{repo_name}@{digest}",
        f"{sbom.name}:{SBOM_TYPE}",
        cwd=sbom.parent,
    )
    sbom_digest = json.loads(attached)["digest"]
    layout = tmp_path / "oras-layout"
    interop_peers.run(
        interop_peers.oras, "cp", "-r", "--from-plain-http", src, "--to-oci-layout", f"{layout}:v1"
    )
    in_layout = json.loads(
        interop_peers.run(
            interop_peers.oras, "discover", "--format", "json", "--oci-layout", f"{layout}:v1"
        )
    )
    assert [r["digest"] for r in in_layout["referrers"]] == [sbom_digest]

    dst = f"{interop_refreg.host}/{repo_name}:v1"
    assert sbom_digest in _copy_layout_and_discover(interop_peers, layout, dst, digest)


def test_an_oras_layout_through_regshift_to_a_layout_oras_and_regctl_read(
    interop_peers: Peers, open_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    """Both directions on disk: regshift reads the SBOM oras keeps as an untagged index.json
    entry, and writes it both ways into its own layout: under the fallback tag (all regctl
    reads) and as an untagged entry (without it oras pull by digest gets an opaque blob and
    writes nothing); oras discover, oras pull and regctl artifact list all find it there."""
    image = random_image(seed=1431, layers=1)
    src = str(seed(open_registry.host, repo_name, "v1", image))
    digest = image.manifest.digest
    sbom = _sbom(tmp_path, repo_name)
    attached = interop_peers.run(
        interop_peers.oras,
        "attach",
        "--plain-http",
        "--format",
        "json",
        "--artifact-type",
        SBOM_TYPE,
        f"{open_registry.host}/{repo_name}@{digest}",
        f"{sbom.name}:{SBOM_TYPE}",
        cwd=sbom.parent,
    )
    sbom_digest = json.loads(attached)["digest"]
    by_oras, by_regshift = tmp_path / "by-oras", tmp_path / "by-regshift"
    interop_peers.run(
        interop_peers.oras, "cp", "-r", "--from-plain-http", src, "--to-oci-layout", f"{by_oras}:v1"
    )

    listed = run_cli("referrers", "--json", f"oci:{by_oras}:v1")
    assert listed.code == 0, listed.stderr
    assert sbom_digest in listed.stdout
    typed = run_cli("referrers", "--artifact-type", SBOM_TYPE, f"oci:{by_oras}:v1")
    assert typed.code == 0 and sbom_digest in typed.stdout, typed.stderr
    other = run_cli("referrers", "--artifact-type", "application/x-other", f"oci:{by_oras}:v1")
    assert other.code == 0 and sbom_digest not in other.stdout, other.stdout

    copied = run_cli("copy", "-q", "--referrers", f"oci:{by_oras}:v1", f"oci:{by_regshift}:v1")
    assert copied.code == 0, copied.stderr
    found = json.loads(
        interop_peers.run(
            interop_peers.oras, "discover", "--format", "json", "--oci-layout", f"{by_regshift}:v1"
        )
    )
    assert [r["digest"] for r in found["referrers"]] == [sbom_digest]
    regctl = interop_peers.regctl_run(
        (), "artifact", "list", "--format", "raw-body", f"ocidir://{by_regshift}:v1"
    )
    assert [d["digest"] for d in json.loads(regctl)["manifests"]] == [sbom_digest]
    pulled = tmp_path / "pulled"
    interop_peers.run(
        interop_peers.oras,
        "pull",
        "--output",
        pulled,
        "--oci-layout",
        f"{by_regshift}@{sbom_digest}",
    )
    assert (pulled / sbom.name).read_bytes() == sbom.read_bytes()
    entries = json.loads((by_regshift / "index.json").read_bytes())["manifests"]
    names = {e["digest"]: e.get("annotations", {}).get(_REF_NAME) for e in entries}
    fallback = digest.replace(":", "-")
    assert len(entries) == 3 and names[digest] == "v1" and names[sbom_digest] is None
    assert sorted(map(str, names.values())) == sorted(["v1", fallback, "None"])
