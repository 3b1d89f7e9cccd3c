"""Artifacts (signature-like, SBOM-like) that refer to an image, for referrer tests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from regshift.client import Client
from regshift.digests import compute_digest
from regshift.manifests import Manifest, parse_manifest
from regshift.mediatypes import MediaType
from regshift.reference import Reference
from regshift.referrers import AttachResult, attach

SIG_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM_TYPE = "application/spdx+json"
EMPTY_JSON = b"{}"
INDEX = MediaType.OCI_INDEX.value


@dataclass(frozen=True)
class Artifact:
    """An artifact manifest and the blobs it needs (the empty config first)."""

    manifest: Manifest
    blobs: tuple[bytes, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest


def make_artifact(
    subject: Manifest,
    artifact_type: str,
    payload: bytes,
    *,
    layer_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Artifact:
    """An OCI image manifest used as an artifact: empty config, one layer, a subject."""
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MediaType.OCI_MANIFEST.value,
        "artifactType": artifact_type,
        "config": {
            "mediaType": MediaType.OCI_EMPTY.value,
            "digest": compute_digest(EMPTY_JSON),
            "size": len(EMPTY_JSON),
        },
        "layers": [
            {
                "mediaType": layer_type or artifact_type,
                "digest": compute_digest(payload),
                "size": len(payload),
            }
        ],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    raw = json.dumps(doc, indent=2).encode()
    return Artifact(parse_manifest(raw), (EMPTY_JSON, payload))


def signature_of(subject: Manifest, who: str = "ci") -> Artifact:
    return make_artifact(
        subject,
        SIG_TYPE,
        json.dumps({"critical": {"image": {"docker-manifest-digest": subject.digest}}}).encode(),
        layer_type="application/vnd.dev.cosign.simplesigning.v1+json",
        annotations={"dev.cosignproject.cosign/signature": f"MEUCIQ-{who}", "signer": who},
    )


def sbom_of(subject: Manifest) -> Artifact:
    return make_artifact(
        subject,
        SBOM_TYPE,
        json.dumps({"spdxVersion": "SPDX-2.3", "name": subject.digest}).encode(),
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )


def push_blobs(client: Client, repo: Reference, artifact: Artifact) -> None:
    for blob in artifact.blobs:
        if not client.blob_exists(repo, compute_digest(blob)):
            client.put_blob(repo, blob)


def attach_artifact(client: Client, repo: Reference, artifact: Artifact) -> AttachResult:
    push_blobs(client, repo, artifact)
    return attach(client, repo, artifact.manifest)
