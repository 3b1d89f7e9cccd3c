"""The pure parts of building: history kept consistent with the layers, config edits, the
one JSON form."""

from __future__ import annotations

from typing import Any

import pytest

from regshift.building import BuildOptions, ConfigChanges
from regshift.building.configs import (
    MISSING_HISTORY,
    changed,
    history_after,
    history_of,
    with_layers,
)
from regshift.manifests import encode_document as encode

L = {"created_by": "layer"}
E = {"created_by": "ENV", "empty_layer": True}


def _config(layers: int, history: Any) -> dict[str, Any]:
    ids = [f"sha256:{i:064x}" for i in range(layers)]
    return {"rootfs": {"type": "layers", "diff_ids": ids}, "history": history}


@pytest.mark.parametrize(
    ("layers", "history", "expected"),
    [
        (2, [L, E, L], [L, E, L]),
        (2, [L], [L, {"created_by": MISSING_HISTORY}]),
        (0, None, []),
        (1, [L, L], [L, {**L, "empty_layer": True}]),
        (1, "nonsense", [{"created_by": MISSING_HISTORY}]),
    ],
    ids=["consistent", "missing", "none", "too-many", "not-a-list"],
)
def test_history_has_one_non_empty_entry_per_layer(
    layers: int, history: Any, expected: list[dict[str, Any]]
) -> None:
    assert history_of(_config(layers, history)) == expected


A, B, C = ({"created_by": x} for x in "ABC")


@pytest.mark.parametrize(
    ("history", "base", "layers", "expected"),
    [
        ([A, E, B, C], [A, E], 1, [B, C]),  # starts with the base's entries (its ENV too)
        ([A, B, C], [{"created_by": "other"}], 1, [B, C]),  # else split after layer 1
        ([A, E, B, E, C], [A], 2, [E, C]),
        ([A, B], [], 0, [A, B]),  # FROM scratch: everything
    ],
)
def test_history_after_the_base_part(
    history: list[dict[str, Any]],
    base: list[dict[str, Any]],
    layers: int,
    expected: list[dict[str, Any]],
) -> None:
    assert history_after(history, base, layers) == expected


def test_with_layers_replaces_rootfs_and_history_and_leaves_the_input_alone() -> None:
    config = {"created": "then", "config": {"Env": ["A=1"]}, **_config(1, [L])}
    doc = with_layers(config, ["sha256:x"], [A], None)
    assert doc["rootfs"] == {"type": "layers", "diff_ids": ["sha256:x"]}
    assert doc["history"] == [A] and doc["created"] == "then"
    assert with_layers(config, [], [], "2024-01-01T00:00:00Z")["created"] == "2024-01-01T00:00:00Z"
    assert config["history"] == [L]


def test_config_changes() -> None:
    config = {"config": {"Labels": {"a": "1", "b": "2"}, "Env": ["PATH=/bin", "X=1", "Y=2"]}}
    changes = ConfigChanges(
        labels={"a": "", "c": "3"},
        remove_labels=("b",),
        env={"X": "9", "Z": "3"},
        remove_env=("Y",),
        entrypoint=("/app",),
        cmd=(),
        user="",
        workdir="/w",
    )
    section = changed(config, changes)["config"]
    assert section["Labels"] == {"a": "", "c": "3"}
    assert section["Env"] == ["PATH=/bin", "X=9", "Z=3"]
    assert section["Entrypoint"] == ["/app"]
    assert "Cmd" not in section and "User" not in section
    assert section["WorkingDir"] == "/w"
    assert config["config"]["Labels"] == {"a": "1", "b": "2"}  # the input is not changed


def test_encode_is_one_stable_form() -> None:
    assert encode({"b": 1, "a": ["é"]}) == '{"b":1,"a":["é"]}'.encode()


@pytest.mark.parametrize("created", ["yesterday", "2024-05-01", "2024-13-01T00:00:00Z"])
def test_created_must_be_a_timestamp(created: str) -> None:
    with pytest.raises(ValueError, match="invalid timestamp"):
        BuildOptions(created=created)
