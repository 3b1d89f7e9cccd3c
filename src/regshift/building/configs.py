"""Image configs, pure: history split and kept consistent with the layers, config edits, and
the one JSON form regshift writes what it creates in.

An image config's ``history`` has one entry per ``Dockerfile`` step; the steps that made a
layer are the entries without ``"empty_layer": true``, in layer order. Image tools (docker
``history``, buildkit, skopeo) pair them with ``rootfs.diff_ids`` by position, so every
config written here has exactly one non-empty entry per layer.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from .options import ConfigChanges

JSONObject = dict[str, Any]

#: The history entry given to a layer an input's history does not account for.
MISSING_HISTORY = "regshift: layer without a history entry in its image"


def is_empty(entry: Mapping[str, Any]) -> bool:
    return entry.get("empty_layer") is True


def history_of(config: Mapping[str, Any]) -> list[JSONObject]:
    """The config's history made consistent with its layers: non-empty entries beyond the
    layers become empty ones, missing ones are added (at the end) saying so."""
    layers = len(diff_ids_of(config))
    entries = config.get("history")
    history = [dict(e) for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    seen = 0
    for entry in history:
        if not is_empty(entry):
            seen += 1
            if seen > layers:
                entry["empty_layer"] = True
    history += [{"created_by": MISSING_HISTORY} for _ in range(seen, layers)]
    return history


def diff_ids_of(config: Mapping[str, Any]) -> list[str]:
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    return [str(d) for d in ids] if isinstance(ids, list) else []


def history_after(
    history: Sequence[JSONObject], base: Sequence[JSONObject], layers: int
) -> list[JSONObject]:
    """The entries of ``history`` after its base part: the base's own entries when it starts
    with them (its trailing ``ENV``/``CMD`` steps included), else everything up to the
    entry of its ``layers``-th layer."""
    if layers == 0:
        return list(history)
    own = sum(1 for e in base if not is_empty(e))
    if own == layers and list(history[: len(base)]) == list(base):
        return list(history[len(base) :])
    seen = 0
    for position, entry in enumerate(history):
        if not is_empty(entry):
            seen += 1
            if seen == layers:
                return list(history[position + 1 :])
    return []


def with_layers(
    config: Mapping[str, Any],
    diff_ids: Sequence[str],
    history: Sequence[JSONObject],
    created: str | None,
) -> JSONObject:
    """A copy of ``config`` with these layers and history (and ``created``, when given)."""
    doc = copy.deepcopy(dict(config))
    if created is not None:
        doc["created"] = created
    doc["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    doc["history"] = [dict(e) for e in history]
    return doc


def changed(config: Mapping[str, Any], changes: ConfigChanges) -> JSONObject:
    """A copy of ``config`` with ``changes`` applied to its ``config`` section."""
    doc = copy.deepcopy(dict(config))
    section = doc.get("config")
    if not isinstance(section, dict):
        section = doc["config"] = {}
    labels = {**(section.get("Labels") or {}), **changes.labels}
    for key in changes.remove_labels:
        labels.pop(key, None)
    _set(section, "Labels", labels or None)
    env = _env(section.get("Env") or [], changes.env, changes.remove_env)
    _set(section, "Env", env or None)
    for key, value in (("Entrypoint", changes.entrypoint), ("Cmd", changes.cmd)):
        if value is not None:
            _set(section, key, list(value) or None)
    for key, text in (("User", changes.user), ("WorkingDir", changes.workdir)):
        if text is not None:
            _set(section, key, text or None)
    return doc


def _set(section: JSONObject, key: str, value: object) -> None:
    if value is None:
        section.pop(key, None)
    else:
        section[key] = value


def _env(current: Sequence[str], updates: Mapping[str, str], remove: Sequence[str]) -> list[str]:
    """``KEY=VALUE`` lines: updated in place, new ones appended in the order given."""
    pending = dict(updates)
    result = []
    for line in current:
        key = str(line).partition("=")[0]
        if key in remove:
            continue
        if key in pending:
            result.append(f"{key}={pending.pop(key)}")
        else:
            result.append(str(line))
    return result + [f"{k}={v}" for k, v in pending.items() if k not in remove]
