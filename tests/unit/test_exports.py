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
