"""``probe``: what a registry really supports, found by trying it in one repository.

Each capability is ``True``, ``False`` or ``None`` (unknown), with the evidence: the requests
sent and the statuses seen. With push rights the probe writes small things into the
repository it is given, and nowhere else: two blobs (a random one and a config naming the
probe), an image manifest under two ``regshift-probe-<id>-*`` tags, an OCI index and an
artifact (``artifactType``, the empty config, ``subject`` the image). It then removes what
it wrote, as far as the registry lets it (referrer, index, image by digest, which takes
its tags along on distribution, then blobs), and lists whatever stayed. The empty config
blob (``{}``, shared by every artifact) is removed only when the probe brought it.
Without push rights it reports what reading shows (auth, referrers API, tag pagination).

What is learnt is remembered as regshift remembers capabilities anyway: multi-tag push in
the capability cache, referrers API support for the rest of the run.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from . import wire
from .capabilities import MULTI_TAG_PUSH
from .client import Client
from .errors import APIError
from .mediatypes import MediaType
from .reference import Reference, parse_repository
from .storage.registry import REFERRERS_API

__all__ = ["CAPABILITIES", "Finding", "ProbeResult", "probe"]

#: The capabilities reported, in order (their JSON keys).
CAPABILITIES = (
    "push",
    "mount",
    "referrersApi",
    "tagDelete",
    "manifestDelete",
    "blobDelete",
    "multiTagPush",
    "chunkedUpload",
    "ociIndex",
    "ociArtifacts",
    "tagPagination",
)
_EMPTY = b"{}"
_ARTIFACT_TYPE = "application/vnd.regshift.probe.v1"
_MAX_CHUNK_TRIED = 1024 * 1024  # a larger announced minimum is not tried: probes stay small


@dataclass(frozen=True, slots=True)
class Finding:
    """One capability: supported (True/False) or unknown (None), and why we say so."""

    value: bool | None
    evidence: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What ``probe`` found. ``left_behind`` names what it wrote and could not remove."""

    registry: str
    repository: str
    auth: str  # none, basic, bearer
    findings: dict[str, Finding]
    chunk_min_length: int | None = None
    left_behind: tuple[str, ...] = ()


Answer = tuple[int, wire.Response | None]


def _try(send: Callable[[], wire.Response]) -> Answer:
    """The status of one request (an error status is an answer too, not a failure)."""
    try:
        response = send()
    except APIError as exc:
        return exc.status, None
    return response.status_code, response


@dataclass
class _Probe:
    client: Client
    repo: Reference
    findings: dict[str, Finding] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)
    chunk_min: int | None = None

    def send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: list[tuple[str, str | int | float | bool | None]] | None = None,
    ) -> Answer:
        scopes = [self.repo.scope("pull,push,delete")]
        return _try(
            lambda: self.client.request(
                method,
                self.repo,
                path,
                scopes=scopes,
                content=content,
                headers=headers,
                params=params,
                missing_ok=True,
            )
        )

    def found(self, name: str, value: bool | None, evidence: str) -> None:
        self.findings[name] = Finding(value, evidence)


def probe(client: Client, repository: str | Reference) -> ProbeResult:
    """Find out what the registry of ``repository`` supports (see the module's description).

    Raises:
        InvalidReference: ``repository`` is not a repository name.
        RegistryError: the registry cannot be reached at all.
    """
    repo = parse_repository(repository) if isinstance(repository, str) else repository.repo_only()
    client.ping(repo.endpoint, scopes=[repo.scope("pull")])
    state = _Probe(client, repo)
    tag = f"regshift-probe-{secrets.token_hex(4)}"
    pushed = _push(state, tag)
    if pushed is None:
        _read_only(state)
    else:
        _with_push(state, tag, *pushed)
    _remember(client, repo, state.findings)
    return ProbeResult(
        registry=repo.registry,
        repository=repo.repository,
        auth=client.auth_scheme(repo.endpoint) or "none",
        findings={
            name: state.findings.get(name, Finding(None, "not tried")) for name in CAPABILITIES
        },
        chunk_min_length=state.chunk_min,
        left_behind=tuple(state.left),
    )


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _canonical(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _upload(state: _Probe, data: bytes) -> tuple[int, str]:
    """A monolithic upload (POST, then PUT with the bytes): the last status and what was sent."""
    status, started = state.send("POST", "/blobs/uploads/")
    if started is None or status != 202:
        return status, f"POST /blobs/uploads/ {status}"
    location = started.headers.get("location", "")
    status, _ = state.send(
        "PUT",
        location,
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        params=[("digest", _digest(data))],
    )
    return status, f"POST /blobs/uploads/ 202, PUT ?digest= {status}"


def _push(state: _Probe, tag: str) -> tuple[bytes, bytes, bytes] | None:
    """Push a random blob, a config and an image under ``tag``; None without push rights."""
    layer = b"regshift probe " + secrets.token_bytes(32)
    status, evidence = _upload(state, layer)
    if status != 201:
        state.found("push", False, evidence)
        return None
    config = _canonical({"architecture": "amd64", "os": "linux", "regshift.probe": tag})
    _upload(state, config)
    image = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": MediaType.OCI_MANIFEST,
            "config": _descriptor(MediaType.OCI_CONFIG, config),
            "layers": [_descriptor(MediaType.OCI_LAYER, layer)],
        }
    )
    put_status, _ = _put_manifest(state, tag, image, MediaType.OCI_MANIFEST)
    state.found("push", put_status == 201, f"{evidence}; PUT /manifests/{tag} {put_status}")
    if put_status != 201:
        state.left += [f"blob {_digest(layer)}", f"blob {_digest(config)}"]
        return None
    return layer, config, image


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": _digest(data), "size": len(data)}


def _put_manifest(
    state: _Probe, ref: str, body: bytes, media_type: str, tags: tuple[str, ...] = ()
) -> Answer:
    return state.send(
        "PUT",
        f"/manifests/{ref}",
        content=body,
        headers={"Content-Type": media_type},
        params=[("tag", t) for t in tags],
    )


def _with_push(state: _Probe, tag: str, layer: bytes, config: bytes, image: bytes) -> None:
    image_digest = _digest(image)
    _put_manifest(state, f"{tag}-b", image, MediaType.OCI_MANIFEST)
    written_tags = [tag, f"{tag}-b"]
    written_tags += _multi_tag(state, tag, image)
    _chunked(state)
    _mount(state, layer)
    index = _index(state, image)
    empty_ours, artifact = _artifact(state, image)
    _referrers(state, image_digest, artifact)
    _pagination(state)
    tag_deleted = _tag_delete(state, f"{tag}-b")
    if tag_deleted:
        written_tags.remove(f"{tag}-b")
    manifests = [m for m in (artifact, index, image) if m is not None]
    _manifest_delete(state, manifests)
    blobs = [layer, config, *([_EMPTY] if empty_ours else [])]
    _blob_delete(state, blobs)
    _left_tags(state, written_tags)


def _multi_tag(state: _Probe, tag: str, image: bytes) -> list[str]:
    wanted = (f"{tag}-c", f"{tag}-d")
    status, answer = _put_manifest(state, _digest(image), image, MediaType.OCI_MANIFEST, wanted)
    confirmed = answer.headers.get_list("oci-tag", split_commas=True) if answer else []
    supported = status == 201 and all(t in [c.strip() for c in confirmed] for t in wanted)
    if status in (400, 414, 431) or (status == 201 and not confirmed):
        state.found(
            "multiTagPush", False, f"PUT /manifests/<digest>?tag=&tag= {status}, no OCI-Tag"
        )
    elif supported:
        state.found("multiTagPush", True, f"PUT /manifests/<digest>?tag=&tag= {status}, OCI-Tag")
    else:
        state.found("multiTagPush", None, f"PUT /manifests/<digest>?tag=&tag= {status}")
    return list(wanted) if confirmed else []


def _chunked(state: _Probe) -> None:
    status, started = state.send("POST", "/blobs/uploads/")
    if started is None or status != 202:
        state.found("chunkedUpload", None, f"POST /blobs/uploads/ {status}")
        return
    announced = started.headers.get("oci-chunk-min-length", "")
    state.chunk_min = int(announced) if announced.isdigit() else None
    size = max(state.chunk_min or 0, 64)
    if size > _MAX_CHUNK_TRIED:
        state.send("DELETE", started.headers.get("location", ""))
        state.found("chunkedUpload", None, f"minimum chunk {size} bytes announced; not tried")
        return
    data = secrets.token_bytes(size * 2)
    location, seen = started.headers.get("location", ""), ["POST 202"]
    for offset in (0, size):
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + size - 1}",
        }
        status, answer = state.send(
            "PATCH", location, content=data[offset : offset + size], headers=headers
        )
        seen.append(f"PATCH {status}")
        if answer is None or status != 202:
            state.found("chunkedUpload", False, ", ".join(seen))
            state.send("DELETE", location)
            return
        location = answer.headers.get("location", location)
    status, _ = state.send("PUT", location, params=[("digest", _digest(data))])
    seen.append(f"PUT {status}")
    state.found("chunkedUpload", status == 201, ", ".join(seen))
    if status == 201:
        deleted, _ = state.send("DELETE", f"/blobs/{_digest(data)}")
        if deleted not in (200, 202, 204):
            state.left.append(f"blob {_digest(data)} (chunked-upload probe)")


def _mount(state: _Probe, layer: bytes) -> None:
    """A mount of the probe blob from the repository itself: 201 when the registry honours
    mount requests, 202 (an upload session instead) when it ignores them. The probe writes
    into no other repository, so a cross-repository mount proper is not tried."""
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("mount", _digest(layer)),
        ("from", state.repo.repository),
    ]
    status, answer = state.send("POST", "/blobs/uploads/", params=params)
    if status == 202 and answer is not None:
        state.send("DELETE", answer.headers.get("location", ""))
    value = True if status == 201 else False if status == 202 else None
    state.found("mount", value, f"POST /blobs/uploads/?mount=&from=<same repository> {status}")


def _index(state: _Probe, image: bytes) -> bytes | None:
    index = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": MediaType.OCI_INDEX,
            "manifests": [
                {
                    **_descriptor(MediaType.OCI_MANIFEST, image),
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    )
    status, _ = _put_manifest(state, _digest(index), index, MediaType.OCI_INDEX)
    state.found("ociIndex", status == 201, f"PUT OCI index by digest {status}")
    return index if status == 201 else None


def _artifact(state: _Probe, image: bytes) -> tuple[bool, bytes | None]:
    """Push an artifact (the empty config, ``artifactType``, subject the image)."""
    had_empty, _ = state.send("HEAD", f"/blobs/{_digest(_EMPTY)}")
    ours = had_empty == 404
    if ours:
        _upload(state, _EMPTY)
    artifact = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": MediaType.OCI_MANIFEST,
            "artifactType": _ARTIFACT_TYPE,
            "config": _descriptor(MediaType.OCI_EMPTY, _EMPTY),
            "layers": [_descriptor(MediaType.OCI_EMPTY, _EMPTY)],
            "subject": _descriptor(MediaType.OCI_MANIFEST, image),
        }
    )
    status, answer = _put_manifest(state, _digest(artifact), artifact, MediaType.OCI_MANIFEST)
    subject = answer is not None and bool(answer.headers.get("oci-subject"))
    note = ", OCI-Subject" if subject else ""
    state.found("ociArtifacts", status == 201, f"PUT artifact manifest {status}{note}")
    return ours, artifact if status == 201 else None


def _referrers(state: _Probe, subject: str, artifact: bytes | None) -> None:
    status, answer = state.send(
        "GET", f"/referrers/{subject}", headers={"Accept": MediaType.OCI_INDEX}
    )
    listed = False
    if answer is not None and status == 200:
        try:
            doc = answer.json()
        except ValueError:
            doc = None
        entries = doc.get("manifests") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            state.found("referrersApi", False, f"GET /referrers/<digest> {status}, not an index")
            return
        listed = artifact is not None and any(
            isinstance(e, dict) and e.get("digest") == _digest(artifact) for e in entries
        )
        how = ", lists the probe artifact" if listed else ""
        state.found("referrersApi", True, f"GET /referrers/<digest> {status}, an index{how}")
        return
    state.found(
        "referrersApi", False if status == 404 else None, f"GET /referrers/<digest> {status}"
    )


def _pagination(state: _Probe) -> None:
    status, answer = state.send("GET", "/tags/list", params=[("n", 1)])
    if answer is None or status != 200:
        state.found("tagPagination", None, f"GET /tags/list?n=1 {status}")
        return
    try:
        tags = answer.json().get("tags") or []
    except (ValueError, AttributeError):
        tags = []
    link = "link" in answer.headers
    if len(tags) == 1 and link:
        state.found("tagPagination", True, f"GET /tags/list?n=1 {status}, 1 tag, Link")
    elif len(tags) > 1:
        state.found("tagPagination", False, f"GET /tags/list?n=1 {status}, {len(tags)} tags")
    else:
        state.found("tagPagination", None, f"GET /tags/list?n=1 {status}, {len(tags)} tag(s)")


def _tag_delete(state: _Probe, tag: str) -> bool:
    status, _ = state.send("DELETE", f"/manifests/{tag}")
    ok = status in (200, 202, 204)
    state.found("tagDelete", ok, f"DELETE /manifests/<tag> {status}")
    return ok


def _manifest_delete(state: _Probe, manifests: list[bytes]) -> None:
    statuses = []
    for body in manifests:
        status, _ = state.send("DELETE", f"/manifests/{_digest(body)}")
        statuses.append(status)
        if status not in (200, 202, 204):
            state.left.append(f"manifest {_digest(body)}")
    ok = bool(statuses) and all(s in (200, 202, 204) for s in statuses)
    value = ok if statuses else None
    state.found(
        "manifestDelete", value, f"DELETE /manifests/<digest> {', '.join(map(str, statuses))}"
    )


def _blob_delete(state: _Probe, blobs: list[bytes]) -> None:
    statuses = []
    for data in blobs:
        status, _ = state.send("DELETE", f"/blobs/{_digest(data)}")
        statuses.append(status)
        if status not in (200, 202, 204):
            state.left.append(f"blob {_digest(data)}")
    ok = all(s in (200, 202, 204) for s in statuses)
    state.found("blobDelete", ok, f"DELETE /blobs/<digest> {', '.join(map(str, statuses))}")


def _left_tags(state: _Probe, tags: list[str]) -> None:
    """Tags still there once their manifest is deleted (a registry that keeps tags apart
    from manifests): deleted where tags can be, else listed."""
    can_delete = state.findings.get("tagDelete", Finding(None, "")).value
    for tag in tags:
        status, _ = state.send("HEAD", f"/manifests/{tag}")
        if status == 200 and can_delete:
            state.send("DELETE", f"/manifests/{tag}")
            status, _ = state.send("HEAD", f"/manifests/{tag}")
        if status == 200:
            state.left.append(f"tag {tag}")


def _read_only(state: _Probe) -> None:
    """Without push rights: what reading shows."""
    _referrers(state, _digest(b""), None)
    _pagination(state)


def _remember(client: Client, repo: Reference, findings: dict[str, Finding]) -> None:
    multi = findings.get("multiTagPush")
    if multi is not None and multi.value is not None:
        client.capabilities.set(repo.endpoint, MULTI_TAG_PUSH, multi.value)
    referrers = findings.get("referrersApi")
    if referrers is not None and referrers.value is not None:
        client.run_capabilities.set(repo.endpoint, REFERRERS_API, referrers.value)
