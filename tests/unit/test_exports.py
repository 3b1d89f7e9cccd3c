"""The curated public surface: complete, sorted, importable (as httpx checks its own)."""

from __future__ import annotations

import subprocess
import sys

import regshift


def test_all_is_sorted_and_resolves() -> None:
    assert regshift.__all__ == sorted(regshift.__all__)
    for name in regshift.__all__:
        assert getattr(regshift, name) is not None, name


def test_unknown_attribute() -> None:
    try:
        regshift.nope  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_help_imports_no_http_stack() -> None:
    """`regshift --help` stays fast: httpx and rich are imported only by commands that use them."""
    code = (
        "import sys\n"
        "from regshift.cli.main import cli\n"
        "try:\n"
        "    cli.main(['--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('httpx', 'rich', 'rich.console') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_verbs_are_functions_even_after_every_module_is_imported() -> None:
    """No submodule shares a name with a public verb (a module would shadow it)."""
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(regshift.__path__, "regshift."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for name in (
        "tag",
        "digest",
        "manifest",
        "delete",
        "list_tags",
        "login",
        "logout",
        "copy",
        "describe",
    ):
        assert callable(getattr(regshift, name)) and not isinstance(
            getattr(regshift, name), type(regshift)
        )


def _type_checking_imports() -> dict[str, str]:
    """``name -> module`` of the ``if TYPE_CHECKING:`` imports of ``regshift/__init__.py``."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(regshift.__file__).read_text(encoding="utf-8"))
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    found: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1 and node.module, node
        for alias in node.names:
            assert alias.asname == alias.name, f"{alias.name}: re-export it as itself"
            found[alias.name] = node.module
    return found


def test_all_lazy_table_and_type_checking_imports_agree() -> None:
    """The surface is written once (the lazy table); ``__all__`` is derived from it, and the
    imports type checkers read name the very objects the lazy table loads."""
    import importlib

    lazy: dict[str, str] = regshift._LAZY  # type: ignore[attr-defined]
    assert _type_checking_imports() == lazy
    assert sorted([*lazy, "__version__"]) == regshift.__all__
    for name, module in lazy.items():
        owner = importlib.import_module(f"regshift.{module}")
        assert getattr(regshift, name) is getattr(owner, name), name


def test_commands_defined_elsewhere_are_all_registered() -> None:
    """The commands ``regshift.cli.main`` imports only when they run: each name resolves to
    its command, and every command of those modules has a name in the table."""
    import importlib

    import click

    from regshift.cli.main import cli

    table: dict[str, str] = cli.ELSEWHERE  # type: ignore[attr-defined]
    ctx = click.Context(cli)
    for name in table:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name, name
        assert name in cli.list_commands(ctx)
    for module in set(table.values()):
        for command in importlib.import_module(f"regshift.cli.{module}").COMMANDS:
            assert table.get(command.name) == module, f"{command.name} is not registered"


def test_tag_loads_no_command_defined_elsewhere() -> None:
    """``regshift tag`` pays for none of the build, index or sync command definitions."""
    code = (
        "import sys\n"
        "from regshift.cli.main import cli\n"
        "try:\n"
        "    cli.main(['tag', '--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('regshift.cli.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.strip().splitlines()[-1]
    for module in ("building", "indexing", "syncing"):
        assert f"regshift.cli.{module}" not in loaded, loaded
