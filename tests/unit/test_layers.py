"""The documented import order is true: every module imports only modules below it.

:data:`ORDER` is the order README's "Development" section documents, bottom first. The test
walks every import of a regshift module (relative or absolute) in every module under
``src/regshift`` (at module level or
inside a function; imports under ``if TYPE_CHECKING:`` are for type checkers and do not run)
and fails on one that reaches a module at or above its own place. A package may import its
own modules (``regshift`` and ``regshift.copying`` re-export; ``regshift.storage`` chooses a
backend). Verb modules import no other verb module. So there are no import cycles either.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "regshift"
README = SRC.parents[1] / "README.md"

#: Bottom first. Groups: plumbing with no I/O, auth, HTTP, the two backends and the storage
#: interface over them, the image graph, the verbs, the command line.
_GROUPS = (
    "_version errors redaction locking inflight hostos proxies reference layout_reference digests",
    "mediatypes manifests links",
    "wire.errors wire.url wire.messages wire.connections wire.client wire",
    "retries progress semver ratelimit syncfile",
    "auth auth.challenge auth.scopes auth.configfiles auth.credentials auth.flow",
    "transport capabilities session client.answers client.uploads client.listing client sample",
    "layout.files layout.blobs layout",
    "storage storage.fallback storage.registry storage.oci",
    "graph",
    "layerfs.reading layerfs.blob layerfs.directory layerfs.sources layerfs.tree layerfs.flatten",
    "layerfs",
    "tagging ops inspection referrers probing",
    "copying copying.options copying.workers copying.uploading copying.running copying.single",
    "copying.repository",
    "building building.options building.configs building.inputs building.plan building.writing",
    "building.verbs",
    "indexes indexes.entries indexes.options indexes.sources indexes.writing indexes.verbs",
    "syncing",
    "cli cli.process cli.options cli.exits cli.progress cli.copying cli.inspecting cli.building",
    "cli.indexing cli.syncing",
    "cli.main",
    "__main__",
)
ORDER = [name for group in _GROUPS for name in group.split()]
VERBS = ("tagging", "ops", "inspection", "referrers", "probing", "copying")


def _name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if package else parts), package


def _exists(name: str) -> bool:
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _runtime_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of a regshift module that runs (relative or
    absolute; not under TYPE_CHECKING)."""
    name, package = _name(path)
    base = name.split(".") if name else []
    if not package:
        base = base[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for sub in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and not node.level):
            found += _absolute(node)
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        parent = base[: len(base) - (node.level - 1)]
        target = ".".join([*parent, node.module] if node.module else parent)
        if node.module is None:  # `from . import x`: a module x, or a name of the package
            subs = [f"{target}.{a.name}".lstrip(".") for a in node.names]
            found += [(node.lineno, s if _exists(s) else target) for s in subs]
        else:
            found.append((node.lineno, target))
    return found


def _absolute(node: ast.Import | ast.ImportFrom) -> list[tuple[int, str]]:
    """The regshift modules an absolute import names (``from regshift.errors import …``)."""
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    return [
        (node.lineno, name.removeprefix("regshift."))
        for name in names
        if name.startswith("regshift.")
    ]


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p)[0] or "regshift")
def test_imports_go_down_the_order(path: Path) -> None:
    name, _ = _name(path)
    if not name:
        return  # regshift/__init__.py re-exports the whole surface (lazily)
    assert name in ORDER, f"{name} has no place in the documented order"
    for line, target in _runtime_imports(path):
        if target == name or target.startswith(f"{name}."):
            continue  # a package importing its own modules
        assert target in ORDER, f"{name}:{line} imports {target}, which has no place"
        assert ORDER.index(target) < ORDER.index(name), f"{name}:{line} imports up: {target}"
        if name.split(".")[0] in VERBS:
            other = target.split(".")[0]
            assert other == name.split(".")[0] or other not in VERBS, (
                f"verb module {name}:{line} imports verb module {target}"
            )


def test_every_module_has_a_place() -> None:
    assert sorted(_name(p)[0] for p in MODULES if _name(p)[0]) == sorted(ORDER)


def test_readme_documents_the_same_order() -> None:
    """README's module list (Development) names the top-level modules in this order."""
    text = README.read_text(encoding="utf-8")
    paragraph = text[text.index("Layout: `src/regshift/`") :].split("`tests/harness/`", 1)[0]
    named = [n.rstrip("/") for n in re.findall(r"`([\w/]+)`", paragraph)]
    tops = list(dict.fromkeys(n.split(".")[0] for n in ORDER if n not in ("_version", "__main__")))
    shown = [n for n in named if n in tops]
    assert list(dict.fromkeys(shown)) == tops
