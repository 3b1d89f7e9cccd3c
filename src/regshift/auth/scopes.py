"""Token scope sets: ``repository:<name>:<actions>`` strings merged per resource."""

from __future__ import annotations

from collections.abc import Iterable

ScopeSet = frozenset[str]


def merge_scopes(*groups: Iterable[str]) -> ScopeSet:
    """Merge scope strings so each resource appears once with the union of its actions.

    ``repository:a:pull`` and ``repository:a:pull,push`` become ``repository:a:pull,push``,
    so one token request asks for everything an operation needs.
    """
    actions: dict[str, set[str]] = {}
    for scope in (s for group in groups for s in group):
        resource, sep, acts = scope.rpartition(":")
        if not sep or not resource:
            continue  # not of the resource:actions form; registries would reject it
        actions.setdefault(resource, set()).update(a for a in acts.split(",") if a)
    return frozenset(f"{res}:{','.join(sorted(acts))}" for res, acts in actions.items() if acts)


def covers(granted: ScopeSet, wanted: ScopeSet) -> bool:
    """Whether a token issued for ``granted`` scopes also serves ``wanted``."""
    have = _by_resource(granted)
    for resource, acts in _by_resource(wanted).items():
        held = have.get(resource, set())
        if "*" not in held and not acts <= held:
            return False
    return True


def _by_resource(scopes: ScopeSet) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for scope in scopes:
        resource, _, acts = scope.rpartition(":")
        out.setdefault(resource, set()).update(acts.split(","))
    return out
