"""The command-line process keeps the garbage collector out of start-up, and only its own.

Each case runs in a fresh interpreter: the collector's state is process-wide, and pytest's
own must stay untouched.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_collector_off_during_start_up_and_back_on_with_the_client() -> None:
    states = _run(
        """
        import gc
        from regshift.cli import process
        from regshift.cli.options import CommonOptions
        process.begin()
        print(gc.isenabled())
        with CommonOptions().client():
            print(gc.isenabled(), gc.get_freeze_count() > 0)
        """
    )
    assert states == ["False", "True", "True"]


def test_main_gives_the_collector_back_when_no_client_was_made() -> None:
    states = _run(
        """
        import gc
        from regshift.cli.main import main
        try:
            main(["--version"])
        except SystemExit:
            pass
        print("collector", gc.isenabled())
        """
    )
    assert states[-2:] == ["collector", "True"]


def test_click_commands_in_process_leave_the_collector_alone() -> None:
    """Tests and embedders call the click group, not main(): nothing is frozen for them."""
    states = _run(
        """
        import gc
        from regshift.cli.options import CommonOptions
        with CommonOptions().client():
            print(gc.isenabled(), gc.get_freeze_count())
        """
    )
    assert states == ["True", "0"]
