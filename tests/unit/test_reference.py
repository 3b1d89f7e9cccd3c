"""Tests for regshift.reference: grammar tables, helpers and property tests."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest
from hypothesis import assume, given, settings, strategies as st

from regshift.errors import InvalidReference, RegistryError
from regshift.reference import (
    DEFAULT_TAG,
    DOCKER_HUB,
    DOCKER_HUB_ENDPOINT,
    Reference,
    is_loopback_host,
    parse_reference,
    parse_repository,
    validate_digest,
    validate_tag,
)

SHA256_HEX = hashlib.sha256(b"regshift").hexdigest()
SHA512_HEX = hashlib.sha512(b"regshift").hexdigest()
SHA256 = f"sha256:{SHA256_HEX}"
SHA512 = f"sha512:{SHA512_HEX}"
TAG_128 = "t" * 128
LONG_PATH_OK = "a" * 243  # "example.com/" + 243 = 255
LONG_HUB_OK = "b" * 237  # "docker.io/library/" + 237 = 255

HUB = DOCKER_HUB
LIB = "library/"

# (input, registry, repository, tag, digest, canonical str)
VALID: list[tuple[str, str, str, str | None, str | None, str]] = [
    # Docker Hub normalisation
    ("alpine", HUB, "library/alpine", "latest", None, "docker.io/library/alpine:latest"),
    ("library/alpine", HUB, "library/alpine", "latest", None, "docker.io/library/alpine:latest"),
    ("docker.io/alpine", HUB, "library/alpine", "latest", None, "docker.io/library/alpine:latest"),
    ("index.docker.io/alpine", HUB, "library/alpine", "latest", None, f"{HUB}/{LIB}alpine:latest"),
    ("index.docker.io/user/app", HUB, "user/app", "latest", None, "docker.io/user/app:latest"),
    (
        "docker.io/library/alpine:3.20",
        HUB,
        "library/alpine",
        "3.20",
        None,
        f"{HUB}/{LIB}alpine:3.20",
    ),
    ("user/app:1", HUB, "user/app", "1", None, "docker.io/user/app:1"),
    ("a1/b2", HUB, "a1/b2", "latest", None, "docker.io/a1/b2:latest"),
    ("0/1", HUB, "0/1", "latest", None, "docker.io/0/1:latest"),
    ("user/team/app", HUB, "user/team/app", "latest", None, "docker.io/user/team/app:latest"),
    ("localhost", HUB, "library/localhost", "latest", None, "docker.io/library/localhost:latest"),
    ("localhost:5000", HUB, "library/localhost", "5000", None, "docker.io/library/localhost:5000"),
    ("a.b", HUB, "library/a.b", "latest", None, "docker.io/library/a.b:latest"),
    (
        "docker.io:443/alpine",
        "docker.io:443",
        "alpine",
        "latest",
        None,
        "docker.io:443/alpine:latest",
    ),
    ("Docker.IO/alpine", "Docker.IO", "alpine", "latest", None, "Docker.IO/alpine:latest"),
    # localhost, IPs, IPv6
    ("localhost/app", "localhost", "app", "latest", None, "localhost/app:latest"),
    ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None, "localhost:5000/app:dev"),
    ("localhost:5000/team/app", "localhost:5000", "team/app", "latest", None, ""),
    ("127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", None, "127.0.0.1:5000/app:latest"),
    ("10.0.0.1/app", "10.0.0.1", "app", "latest", None, "10.0.0.1/app:latest"),
    ("[::1]:5000/a", "[::1]:5000", "a", "latest", None, "[::1]:5000/a:latest"),
    ("[::1]/a", "[::1]", "a", "latest", None, "[::1]/a:latest"),
    ("[2001:db8::1]:443/ns/app:v1", "[2001:db8::1]:443", "ns/app", "v1", None, ""),
    ("[FE80::1]:5000/a", "[FE80::1]:5000", "a", "latest", None, "[FE80::1]:5000/a:latest"),
    # domains
    ("example.com/app", "example.com", "app", "latest", None, "example.com/app:latest"),
    ("example.com/alpine", "example.com", "alpine", "latest", None, "example.com/alpine:latest"),
    ("my-registry.example.com/app", "my-registry.example.com", "app", "latest", None, ""),
    (
        "a-b--c.example-domain.com:8443/x/y/z",
        "a-b--c.example-domain.com:8443",
        "x/y/z",
        "latest",
        None,
        "",
    ),
    ("ghcr.io/org/team/sub/app:1.0", "ghcr.io", "org/team/sub/app", "1.0", None, ""),
    ("foo.bar/baz", "foo.bar", "baz", "latest", None, "foo.bar/baz:latest"),
    ("Example.COM/a", "Example.COM", "a", "latest", None, "Example.COM/a:latest"),
    ("EXAMPLE.com:5000/a/b", "EXAMPLE.com:5000", "a/b", "latest", None, ""),
    ("1.2.3.4.5/a", "1.2.3.4.5", "a", "latest", None, "1.2.3.4.5/a:latest"),
    ("x.y:0/a", "x.y:0", "a", "latest", None, "x.y:0/a:latest"),
    # path separators
    ("example.com/a.b", "example.com", "a.b", "latest", None, "example.com/a.b:latest"),
    ("example.com/a_b", "example.com", "a_b", "latest", None, "example.com/a_b:latest"),
    ("example.com/a__b", "example.com", "a__b", "latest", None, "example.com/a__b:latest"),
    ("example.com/a-b", "example.com", "a-b", "latest", None, "example.com/a-b:latest"),
    ("example.com/a---b", "example.com", "a---b", "latest", None, "example.com/a---b:latest"),
    ("example.com/a.b_c__d-e--f/g", "example.com", "a.b_c__d-e--f/g", "latest", None, ""),
    ("ns/a.b_c__d-e---f", HUB, "ns/a.b_c__d-e---f", "latest", None, ""),
    ("x/0.0/1_1", HUB, "x/0.0/1_1", "latest", None, "docker.io/x/0.0/1_1:latest"),
    # tags
    (f"a:{TAG_128}", HUB, "library/a", TAG_128, None, f"docker.io/library/a:{TAG_128}"),
    ("a:_under", HUB, "library/a", "_under", None, "docker.io/library/a:_under"),
    ("a:V1.2-rc_3", HUB, "library/a", "V1.2-rc_3", None, "docker.io/library/a:V1.2-rc_3"),
    ("a:1", HUB, "library/a", "1", None, "docker.io/library/a:1"),
    ("a:x..--__", HUB, "library/a", "x..--__", None, "docker.io/library/a:x..--__"),
    ("example.com:5000/a:5000", "example.com:5000", "a", "5000", None, ""),
    # digests
    (f"a@{SHA256}", HUB, "library/a", None, SHA256, f"docker.io/library/a@{SHA256}"),
    (f"a:tag@{SHA256}", HUB, "library/a", "tag", SHA256, f"docker.io/library/a:tag@{SHA256}"),
    (f"example.com/a@{SHA512}", "example.com", "a", None, SHA512, f"example.com/a@{SHA512}"),
    (f"localhost:5000/a:1@{SHA256}", "localhost:5000", "a", "1", SHA256, ""),
    (f"[::1]:5000/a@{SHA256}", "[::1]:5000", "a", None, SHA256, f"[::1]:5000/a@{SHA256}"),
    # name length
    (f"example.com/{LONG_PATH_OK}", "example.com", LONG_PATH_OK, "latest", None, ""),
    (LONG_HUB_OK, HUB, f"library/{LONG_HUB_OK}", "latest", None, ""),
    (f"example.com/{'a/' * 121}a", "example.com", f"{'a/' * 121}a", "latest", None, ""),
]


def _canonical(case: tuple[str, str, str, str | None, str | None, str]) -> str:
    """Return the expected canonical form; an empty cell means "built from the fields"."""
    _, registry, repository, tag, digest, canonical = case
    if canonical:
        return canonical
    text = f"{registry}/{repository}"
    text += f":{tag}" if tag is not None else ""
    return text + (f"@{digest}" if digest is not None else "")


@pytest.mark.parametrize("case", VALID, ids=[c[0][:60] for c in VALID])
def test_parse_valid(case: tuple[str, str, str, str | None, str | None, str]) -> None:
    text, registry, repository, tag, digest, _ = case
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert str(ref) == _canonical(case)
    assert ref.name == f"{registry}/{repository}"


@pytest.mark.parametrize("text", [c[0] for c in VALID], ids=[c[0][:60] for c in VALID])
def test_round_trip(text: str) -> None:
    ref = parse_reference(text)
    assert parse_reference(str(ref)) == ref
    assert parse_reference(str(ref), default_tag=None) == ref
    bare = parse_reference(text, default_tag=None)
    assert parse_reference(str(bare), default_tag=None) == bare


# (input, substring of the error message)
INVALID: list[tuple[str, str]] = [
    # empty / whitespace / image ids
    ("", 'invalid reference "": empty reference'),
    (" alpine", 'invalid reference " alpine": leading or trailing whitespace'),
    ("alpine ", "leading or trailing whitespace"),
    ("alpine\n", 'invalid reference "alpine\\n": leading or trailing whitespace'),
    ("\talpine", "leading or trailing whitespace"),
    ("alp ine", "contains whitespace"),
    ("a\tb", 'invalid reference "a\\tb": contains whitespace'),
    ("a:b c", "contains whitespace"),
    ("a\u00a0b", "contains whitespace"),
    (SHA256_HEX, "image ID"),
    # missing parts
    (":tag", 'invalid reference ":tag": missing repository name'),
    (f"@{SHA256}", "missing repository name"),
    (":", "missing repository name"),
    ("@", "missing repository name"),
    ("example.com/", "missing repository name"),
    ("a@", 'invalid reference "a@": invalid digest "": empty'),
    ("a:tag@", 'invalid digest "": empty'),
    ("a:", 'invalid reference "a:": invalid tag "": empty'),
    ("localhost:5000/a:", 'invalid tag "": empty'),
    ("a:@" + SHA256, 'invalid tag "": empty'),
    # lowercase
    ("Foo/bar", 'invalid reference "Foo/bar": repository name must be lowercase'),
    ("UPPER", "repository name must be lowercase"),
    ("aB", "repository name must be lowercase"),
    ("example.com/Foo", "repository name must be lowercase"),
    ("example.com/foo/Bar:tag", "repository name must be lowercase"),
    ("LOCALHOST/a", "repository name must be lowercase"),
    ("Localhost:5000", "repository name must be lowercase"),
    # path components
    ("a..b", 'invalid path component "a..b"'),
    ("a___b", 'invalid path component "a___b"'),
    ("a._b", 'invalid path component "a._b"'),
    ("a.-b", 'invalid path component "a.-b"'),
    ("-a", 'invalid path component "-a"'),
    ("a-", 'invalid path component "a-"'),
    (".a", 'invalid path component ".a"'),
    ("a.", 'invalid path component "a."'),
    ("_a", 'invalid path component "_a"'),
    ("a_", 'invalid path component "a_"'),
    ("a/-b", 'invalid path component "-b"'),
    ("a/b-", 'invalid path component "b-"'),
    ("example.com/a..b", 'invalid path component "a..b"'),
    ("caf\u00e9", 'invalid path component "caf\u00e9"'),
    ("a+b", 'invalid path component "a+b"'),
    ("a:b:c", 'invalid path component "a:b"'),
    ("\ud800", 'invalid path component "\\ud800"'),
    ("a\x00b", 'invalid path component "a\\x00b"'),
    ('a"b', 'invalid path component "a\\"b"'),
    # slashes
    ("a//b", 'empty path component in "a//b"'),
    ("a/", 'empty path component in "a/"'),
    ("/a", 'empty path component in "/a"'),
    ("example.com//a", 'empty path component in "/a"'),
    ("example.com/a/", "empty path component"),
    ("//", "empty path component"),
    # tags
    (f"a:{'t' * 129}", "too long (129 > 128)"),
    ("a:.x", 'invalid tag ".x": must start with a letter, digit or "_"'),
    ("a:-x", 'invalid tag "-x": must start with'),
    ("a:x!y", 'invalid tag "x!y": only letters, digits'),
    ("a:x+y", 'invalid tag "x+y"'),
    ("a:\u00e9", 'invalid tag "\u00e9"'),
    ("a:\uff11", 'invalid tag "\uff11"'),
    # digests
    ("a@sha256:abc", 'invalid digest "sha256:abc": sha256 needs exactly 64 lowercase hex digits'),
    (f"a@sha256:{SHA256_HEX.upper()}", "sha256 needs exactly 64 lowercase hex digits"),
    (f"a@sha256:{SHA256_HEX[:-1]}", "sha256 needs exactly 64"),
    (f"a@sha256:{SHA256_HEX}0", "sha256 needs exactly 64"),
    (f"a@sha256:{SHA256_HEX[:-1]}g", "sha256 needs exactly 64"),
    (f"a@sha512:{SHA256_HEX}", "sha512 needs exactly 128 lowercase hex digits"),
    (f"a@sha512:{SHA512_HEX.upper()}", "sha512 needs exactly 128"),
    ("a@md5:" + "0" * 32, 'unsupported digest algorithm "md5"'),
    ("a@sha384:" + "0" * 96, 'unsupported digest algorithm "sha384"'),
    (f"a@SHA256:{SHA256_HEX}", 'unsupported digest algorithm "SHA256"'),
    (f"a@sha256+b64u:{SHA256_HEX}", "unsupported digest algorithm"),
    ("a@sha256", 'invalid digest "sha256": expected "<algorithm>:<hex>"'),
    (f"a@:{SHA256_HEX}", 'malformed algorithm ""'),
    (f"a@9sha:{SHA256_HEX}", 'malformed algorithm "9sha"'),
    (f"a@sha-:{SHA256_HEX}", 'malformed algorithm "sha-"'),
    ("a@foo:xyz", "at least 32 hex digits"),
    ("a@foo:" + "0" * 31, "at least 32 hex digits"),
    (f"a@{SHA256}@{SHA256}", "invalid digest"),
    (f"a@{SHA256}:", "sha256 needs exactly 64"),
    (f"a@{SHA256}/x", "invalid digest"),
    # ports
    ("example.com:abc/a", 'invalid reference "example.com:abc/a": invalid port "abc"'),
    ("example.com:/a", 'invalid port ""'),
    ("localhost:50a0/a", 'invalid port "50a0"'),
    ("example.com:\uff15\uff10\uff10\uff10/a", "invalid port"),
    ("example.com:1:2/a", 'invalid port "1:2"'),
    ("example.com:-1/a", 'invalid port "-1"'),
    ("[::1]:/a", 'invalid port ""'),
    ("[::1]:x/a", 'invalid port "x"'),
    # hosts
    ("exa_mple.com/a", 'invalid registry host "exa_mple.com"'),
    ("-example.com/a", 'invalid registry host "-example.com"'),
    ("example-.com/a", 'invalid registry host "example-.com"'),
    ("example..com/a", 'invalid registry host "example..com"'),
    ("example.com./a", 'invalid registry host "example.com."'),
    (".example.com/a", 'invalid registry host ".example.com"'),
    (":5000/a", 'invalid registry host ""'),
    ("[::1/a", 'invalid registry host "[::1"'),
    ("[::g]:5000/a", 'invalid registry host "[::g]"'),
    ("[]:5000/a", 'invalid registry host "[]"'),
    ("[::1]x/a", 'invalid registry host "[::1]x"'),
    ("[fe80::1%eth0]/a", "invalid registry host"),
    ("::1/a", 'invalid registry host ""'),
    ("b\u00fccher.example/a", "invalid registry host"),
    ("a.b_c/d", 'invalid registry host "a.b_c"'),
    # name length
    (f"example.com/{LONG_PATH_OK}a", "repository name too long (256 > 255)"),
    (f"{LONG_HUB_OK}b", "repository name too long (256 > 255)"),
    (f"example.com/{'a' * 248}", "repository name too long (260 > 255)"),
    (f"index.docker.io/{LIB}{'c' * 238}", "repository name too long (256 > 255)"),
]


@pytest.mark.parametrize(("text", "message"), INVALID, ids=[c[0][:60] for c in INVALID])
def test_parse_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    error = str(info.value)
    assert message in error
    assert error.startswith("invalid reference ")
    assert len(error.splitlines()) == 1


@pytest.mark.parametrize(("text", "message"), INVALID, ids=[c[0][:60] for c in INVALID])
def test_parse_repository_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=r"^invalid repository ") as info:
        parse_repository(text)
    assert message.split(": ", 1)[-1] in str(info.value)


def test_invalid_reference_is_a_value_error_and_registry_error() -> None:
    with pytest.raises(ValueError):
        parse_reference("Foo/bar")
    with pytest.raises(RegistryError):
        parse_reference("Foo/bar")


def test_error_message_exact() -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference("Foo/bar")
    assert str(info.value) == 'invalid reference "Foo/bar": repository name must be lowercase'


@pytest.mark.parametrize(
    ("default_tag", "expected"), [("latest", "latest"), (None, None), ("stable", "stable")]
)
def test_default_tag(default_tag: str | None, expected: str | None) -> None:
    assert parse_reference("alpine", default_tag=default_tag).tag == expected


def test_default_tag_not_applied_with_digest_or_tag() -> None:
    assert parse_reference(f"alpine@{SHA256}", default_tag="stable").tag is None
    assert parse_reference("alpine:1", default_tag="stable").tag == "1"


def test_invalid_default_tag() -> None:
    with pytest.raises(InvalidReference, match='invalid tag "-x"'):
        parse_reference("alpine", default_tag="-x")


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("alpine", "docker.io/library/alpine"),
        ("user/app", "docker.io/user/app"),
        ("localhost:5000/a/b", "localhost:5000/a/b"),
        ("[::1]:5000/a", "[::1]:5000/a"),
    ],
)
def test_parse_repository(text: str, name: str) -> None:
    ref = parse_repository(text)
    assert ref.name == name
    assert ref.tag is None
    assert ref.digest is None


@pytest.mark.parametrize(
    "text", ["alpine:3", f"alpine@{SHA256}", f"a:1@{SHA256}", "localhost:5000"]
)
def test_parse_repository_rejects_tag_and_digest(text: str) -> None:
    with pytest.raises(InvalidReference, match="cannot include a tag or digest"):
        parse_repository(text)


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("alpine", DOCKER_HUB_ENDPOINT),
        ("index.docker.io/user/app", "registry-1.docker.io"),
        ("docker.io:443/a", "docker.io:443"),
        ("localhost:5000/a", "localhost:5000"),
        ("[::1]:5000/a", "[::1]:5000"),
        ("ghcr.io/o/a", "ghcr.io"),
    ],
)
def test_endpoint(text: str, endpoint: str) -> None:
    assert parse_reference(text).endpoint == endpoint


@pytest.mark.parametrize(
    ("text", "identifier"),
    [
        ("alpine", "latest"),
        ("alpine:3", "3"),
        (f"alpine@{SHA256}", SHA256),
        (f"alpine:3@{SHA256}", SHA256),
    ],
)
def test_identifier(text: str, identifier: str) -> None:
    assert parse_reference(text).identifier == identifier


def test_identifier_of_bare_reference_is_latest() -> None:
    assert parse_reference("alpine", default_tag=None).identifier == DEFAULT_TAG


@pytest.mark.parametrize(
    ("text", "actions", "scope"),
    [
        ("alpine", "pull", "repository:library/alpine:pull"),
        ("localhost:5000/a/b:1", "pull,push", "repository:a/b:pull,push"),
        (f"ghcr.io/o/a@{SHA256}", "*", "repository:o/a:*"),
    ],
)
def test_scope(text: str, actions: str, scope: str) -> None:
    assert parse_reference(text).scope(actions) == scope


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LocalHost", True),
        ("localhost:5000", True),
        ("127.0.0.1", True),
        ("127.0.0.1:5000", True),
        ("127.255.3.4:80", True),
        ("[::1]", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("[0:0:0:0:0:0:0:1]:5000", True),
        ("128.0.0.1", False),
        ("10.0.0.1:5000", False),
        ("192.168.1.1", False),
        ("[::2]:5000", False),
        ("[::1", False),
        ("localhost.example.com", False),
        ("docker.io", False),
        ("example.com:5000", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("text", "loopback"),
    [
        ("localhost/a", True),
        ("localhost:5000/a", True),
        ("127.0.0.1:5000/a", True),
        ("[::1]:5000/a", True),
        ("alpine", False),
        ("localhost", False),
        ("10.1.1.1:5000/a", False),
    ],
)
def test_reference_is_loopback(text: str, loopback: bool) -> None:
    assert parse_reference(text).is_loopback is loopback


def test_with_tag_drops_digest() -> None:
    ref = parse_reference(f"localhost:5000/a:1@{SHA256}")
    new = ref.with_tag("2")
    assert new == Reference("localhost:5000", "a", tag="2")
    assert ref.digest == SHA256  # the original is unchanged


@pytest.mark.parametrize("tag", ["", "-x", ".x", "t" * 129, "a/b", "a:b"])
def test_with_tag_validates(tag: str) -> None:
    with pytest.raises(InvalidReference, match=r"^invalid tag "):
        parse_reference("alpine").with_tag(tag)


def test_with_digest_keeps_tag() -> None:
    ref = parse_reference("ghcr.io/o/a:1").with_digest(SHA512)
    assert (ref.tag, ref.digest) == ("1", SHA512)
    assert str(ref) == f"ghcr.io/o/a:1@{SHA512}"


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        ("", "empty"),
        ("sha256:abc", "sha256 needs exactly 64"),
        ("md5:" + "0" * 32, "unsupported digest algorithm"),
        (SHA256_HEX, "expected"),
    ],
)
def test_with_digest_validates(digest: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=r"^invalid digest ") as info:
        parse_reference("alpine").with_digest(digest)
    assert message in str(info.value)


def test_with_repository() -> None:
    ref = parse_reference(f"alpine:3@{SHA256}")
    assert ref.with_repository("busybox") == Reference(HUB, "library/busybox", "3", SHA256)
    assert ref.with_repository("me/busybox").repository == "me/busybox"
    other = parse_reference("localhost:5000/a:1").with_repository("b/c")
    assert str(other) == "localhost:5000/b/c:1"


@pytest.mark.parametrize(
    ("repository", "message"),
    [
        ("Bad", "must be lowercase"),
        ("a//b", "empty path component"),
        ("", "missing repository name"),
        ("a" * 300, "too long"),
    ],
)
def test_with_repository_validates(repository: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=re.escape(message)):
        parse_reference("ghcr.io/o/a").with_repository(repository)


def test_repo_only() -> None:
    ref = parse_reference(f"ghcr.io/o/a:1@{SHA256}")
    assert ref.repo_only() == Reference("ghcr.io", "o/a")
    assert str(ref.repo_only()) == "ghcr.io/o/a"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((HUB, "alpine"), "docker.io/library/alpine"),
        (("index.docker.io", "alpine"), "docker.io/library/alpine"),
        (("index.docker.io", "u/a"), "docker.io/u/a"),
        (("localhost", "a"), "localhost/a"),
        (("[::1]:5000", "a"), "[::1]:5000/a"),
    ],
)
def test_constructor_normalises(args: tuple[str, str], expected: str) -> None:
    assert str(Reference(*args)) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"registry": "myhost", "repository": "a"}, 'must contain "." or ":" or be "localhost"'),
        ({"registry": "exa_mple.com", "repository": "a"}, "invalid registry host"),
        ({"registry": "example.com:x", "repository": "a"}, "invalid port"),
        ({"registry": HUB, "repository": "Foo"}, "must be lowercase"),
        ({"registry": HUB, "repository": "a", "tag": "-x"}, "invalid tag"),
        ({"registry": HUB, "repository": "a", "digest": "sha256:0"}, "invalid digest"),
        ({"registry": HUB, "repository": "a" * 240}, "too long (258 > 255)"),
    ],
)
def test_constructor_validates(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidReference, match=r"^invalid reference ") as info:
        Reference(**kwargs)
    assert message in str(info.value)


def test_reference_is_frozen_with_slots() -> None:
    ref = parse_reference("alpine")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "x"  # type: ignore[misc]
    assert not hasattr(ref, "__dict__")
    assert hash(ref) == hash(parse_reference("docker.io/library/alpine:latest"))


def test_validate_tag_and_digest_return_input() -> None:
    assert validate_tag("v1.0") == "v1.0"
    assert validate_tag(TAG_128) == TAG_128
    assert validate_digest(SHA256) == SHA256
    assert validate_digest(SHA512) == SHA512


def test_validate_messages_quote_input() -> None:
    with pytest.raises(InvalidReference) as info:
        validate_tag("bad tag")
    assert str(info.value).startswith('invalid tag "bad tag"')
    with pytest.raises(InvalidReference) as info:
        validate_digest("sha1:" + "0" * 40)
    assert 'unsupported digest algorithm "sha1"' in str(info.value)


# --- property tests -----------------------------------------------------------------------

GRAMMAR_ALPHABET = "aAz09:/@._-[]+ sha256\n\u00e9"

LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
ALNUM = LOWER_ALNUM + LOWER_ALNUM[:26].upper()
WORD = ALNUM + "_"

_alnum_run = st.text(alphabet=LOWER_ALNUM, min_size=1, max_size=8)
_separator = st.sampled_from([".", "_", "__", "-", "--", "---"])
_path_component = st.tuples(
    _alnum_run, st.lists(st.tuples(_separator, _alnum_run).map("".join), max_size=3)
).map(lambda parts: parts[0] + "".join(parts[1]))
_domain_component = st.tuples(
    st.sampled_from(ALNUM), st.text(alphabet=ALNUM + "-", max_size=10), st.sampled_from(ALNUM)
).map(lambda parts: parts[0] + (parts[1] + parts[2] if parts[1] else ""))
_host = st.one_of(
    st.lists(_domain_component, min_size=2, max_size=4).map(".".join),
    st.just("localhost"),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip.exploded}]"),
)
_domain = st.tuples(_host, st.none() | st.text(alphabet="0123456789", min_size=1, max_size=6)).map(
    lambda hp: hp[0] if hp[1] is None else f"{hp[0]}:{hp[1]}"
)
_tag = st.tuples(st.sampled_from(WORD), st.text(alphabet=WORD + ".-", max_size=127)).map("".join)
_digest = st.binary(max_size=16).flatmap(
    lambda data: st.sampled_from(
        [f"sha256:{hashlib.sha256(data).hexdigest()}", f"sha512:{hashlib.sha512(data).hexdigest()}"]
    )
)


@settings(database=None, max_examples=300)
@given(st.one_of(st.text(), st.text(alphabet=GRAMMAR_ALPHABET)))
def test_arbitrary_text_parses_or_raises_invalid_reference(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        message = str(exc)
        assert message.startswith("invalid reference ")
        assert len(message.splitlines()) == 1
    else:
        assert parse_reference(str(ref)) == ref


@settings(database=None, max_examples=300)
@given(
    domain=st.none() | _domain,
    components=st.lists(_path_component, min_size=1, max_size=4),
    tag=st.none() | _tag,
    digest=st.none() | _digest,
)
def test_generated_valid_references_round_trip(
    domain: str | None, components: list[str], tag: str | None, digest: str | None
) -> None:
    path = "/".join(components)
    if domain is None and len(components) > 1:
        # An unqualified first component with "." or ":" or "localhost" would be a domain.
        assume("." not in components[0] and components[0] != "localhost")
    name = path if domain is None else f"{domain}/{path}"
    text = name + (f":{tag}" if tag is not None else "") + (f"@{digest}" if digest else "")
    assume(re.fullmatch(r"[0-9a-f]{64}", text) is None)
    registry = HUB if domain in (None, "index.docker.io") else domain
    repository = f"library/{path}" if registry == HUB and "/" not in path else path
    assume(len(registry) + 1 + len(repository) <= 255)

    ref = parse_reference(text)

    assert (ref.registry, ref.repository, ref.digest) == (registry, repository, digest)
    assert ref.tag == (DEFAULT_TAG if tag is None and digest is None else tag)
    assert parse_reference(str(ref)) == ref
    assert str(parse_reference(str(ref))) == str(ref)
