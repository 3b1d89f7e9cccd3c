"""The walk through nested indexes: each index once, cycles refused, depth bounded.

A registry cannot serve a cycle (manifests are content-addressed), so these run against a
small in-memory source that can lie about a digest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

import pytest

from regshift.errors import ManifestError
from regshift.graph import MAX_INDEX_DEPTH, resolve
from regshift.manifests import Descriptor, Manifest, parse_manifest
from regshift.mediatypes import MediaType
from regshift.sample import random_image


@dataclass
class _Source:
    """A dict of manifests by digest: enough of a Source for resolve() on indexes."""

    manifests: dict[str, Manifest]
    fetches: list[str]
    name: str = "mem"

    def get_manifest(self, identifier: str) -> Manifest:
        self.fetches.append(identifier)
        return self.manifests[identifier]

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[Iterator[bytes]]:
        raise AssertionError("no blob is read to resolve an index")


def _index(*children: Manifest) -> Manifest:
    entries = [{"mediaType": c.media_type, "digest": c.digest, "size": c.size} for c in children]
    doc = {"schemaVersion": 2, "mediaType": MediaType.OCI_INDEX, "manifests": entries}
    return parse_manifest(json.dumps(doc).encode())


def _source(*manifests: Manifest) -> _Source:
    return _Source({m.digest: m for m in manifests}, [])


def test_a_nested_index_listed_twice_is_walked_once() -> None:
    image = random_image(seed=1).manifest
    inner = _index(image)
    top = _index(inner, inner)
    source = _source(top, inner, image)
    graph = resolve(source, top.digest)  # type: ignore[arg-type]
    assert graph.indexes == (inner,) and graph.images == (image,)
    assert graph.children() == [image, inner]
    assert source.fetches.count(inner.digest) == 1


def test_an_index_that_lists_an_ancestor_is_refused() -> None:
    """Content addressing makes a cycle impossible, unless a source lies about a digest."""
    image = random_image(seed=2).manifest
    inner = _index(image)
    top = _index(inner)
    lying = replace(_index(image, top), digest=inner.digest)  # "inner" now lists the top
    source = _source(top, lying, image)
    with pytest.raises(ManifestError, match="lists itself"):
        resolve(source, top.digest)  # type: ignore[arg-type]


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    image = random_image(seed=3).manifest
    chain = [image]
    for _ in range(MAX_INDEX_DEPTH):
        chain.append(_index(chain[-1]))
    source = _source(*chain)
    graph = resolve(source, chain[-1].digest)  # type: ignore[arg-type]
    assert graph.children() == [image, *chain[1:-1]]  # innermost first
    deeper = _index(chain[-1])
    source = _source(*chain, deeper)
    with pytest.raises(ManifestError, match=f"more than {MAX_INDEX_DEPTH} levels"):
        resolve(source, deeper.digest)  # type: ignore[arg-type]
