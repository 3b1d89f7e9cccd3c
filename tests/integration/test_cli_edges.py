"""How the `regshift` process behaves at the edges of a terminal session (found by a bug hunt):

* a reader that goes away (``regshift manifest REF | head -1``) is not an error;
* Ctrl-C or Ctrl-D at a prompt, and Ctrl-C while ``tag --from-file -`` reads its list, exit
  130 like Ctrl-C anywhere else;
* ``--json`` prints its error document for usage errors found inside a command too;
* on a terminal, the result of ``copy`` is printed after the progress bars are gone (a live
  display redraws its region and overwrote it).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from regshift.sample import random_image

from harness.registry import RegistryServer
from support import run_cli, seed

MiB = 1024 * 1024


def _regshift(*args: str) -> list[str]:
    return [sys.executable, "-m", "regshift", *args]


def _read_all(fd: int, timeout: float = 10) -> bytes:
    """Everything written to a pty's master until the other side closes (or goes quiet)."""
    out = b""
    while select.select([fd], [], [], timeout)[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the slave side is closed
            break
        if not data:
            break
        out += data
    return out


def test_a_reader_that_goes_away_is_not_an_error(
    open_registry: RegistryServer, repo_name: str
) -> None:
    src = seed(open_registry.host, repo_name, "v1", random_image(seed=981))
    for args in (("manifest", str(src)), ("digest", "--json", str(src))):
        proc = subprocess.Popen(_regshift(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # gone before the first byte is written
        with proc.stderr:
            stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=30) == 0, stderr
        assert stderr == ""


def _default_sigint() -> None:
    """SIGINT as a terminal gives it. A suite started in the background by a shell without
    job control inherits SIGINT ignored, and Python then installs no handler for it: the
    Ctrl-C these tests send would be lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _terminal_and_default_sigint() -> None:
    _default_sigint()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.mark.parametrize("key", [b"\x03", b"\x04"], ids=["ctrl-c", "ctrl-d"])
def test_ctrl_c_or_ctrl_d_at_the_password_prompt_is_an_interruption(key: bytes) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        _regshift("digest", "-u", "bob", "127.0.0.1:1/a/b:v1"),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,  # then the pty becomes its terminal: Ctrl-C sends SIGINT
        preexec_fn=_terminal_and_default_sigint,
    )
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 20
    while b"Password" not in screen and time.monotonic() < deadline:
        screen += _read_all(master, timeout=1) if select.select([master], [], [], 1)[0] else b""
    assert b"Password" in screen
    os.write(master, key)
    screen += _read_all(master)
    os.close(master)
    assert proc.wait(timeout=20) == 130
    assert b"regshift: interrupted" in screen and b"internal error" not in screen


def test_ctrl_c_while_the_from_file_list_is_read_is_an_interruption() -> None:
    proc = subprocess.Popen(
        _regshift("tag", "--from-file", "-"),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    _wait_until_reading_a_pipe(proc.pid)  # the list is being read: start-up is over
    proc.send_signal(2)  # SIGINT, as Ctrl-C sends it
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert b"regshift: interrupted" in stderr and b"Aborted" not in stderr


def _wait_until_reading_a_pipe(pid: int, timeout: float = 30) -> None:
    """Until the process sleeps in a read of a pipe (Linux: ``/proc/PID/wchan``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "pipe_read" in Path(f"/proc/{pid}/wchan").read_text():
            return
        time.sleep(0.05)
    raise AssertionError("the process never waited for its list on stdin")


@pytest.mark.parametrize(
    "args",
    [
        ("copy", "--platform", "linux", "127.0.0.1:1/a:v1", "127.0.0.1:1/b:v1"),
        ("copy", "--all-tags", "--include", "(", "127.0.0.1:1/a", "127.0.0.1:1/b"),
    ],
    ids=["bad-platform", "bad-regex"],
)
def test_json_prints_the_error_document_for_usage_errors_inside_a_command(
    args: tuple[str, ...],
) -> None:
    result = run_cli(args[0], "--json", *args[1:])
    assert result.code == 2
    error = result.json()["error"]
    assert error["type"] == "UsageError" and error["exitCode"] == 2 and error["message"]


def test_copy_result_comes_after_the_progress_bars_on_a_terminal(
    open_registry: RegistryServer, other_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    image = random_image(seed=982, layers=2, layer_size=MiB, raw_layers=True)
    src = seed(open_registry.host, repo_name, "v1", image)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        _regshift("copy", str(src), f"{other_registry.host}/{repo_name}:v1"),
        stdout=slave,
        stderr=slave,
        env={**os.environ, "COLUMNS": "200", "TERM": "xterm"},
    )
    os.close(slave)
    screen = _read_all(master).decode("utf-8", "replace")
    os.close(master)
    assert proc.wait(timeout=30) == 0
    summary = screen.rfind("streamed")
    redraws = [m.end() for m in re.finditer(r"\x1b\[(\d*A|2K)", screen)]
    assert redraws, "a live display was drawn"
    assert summary > max(redraws), "the summary was printed under the live display"
