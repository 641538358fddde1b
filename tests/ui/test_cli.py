"""`maestro ui` on the command line: its options and its errors (serving is in test_browser)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def maestro(*args: str) -> subprocess.CompletedProcess[str]:
    """The real `maestro` program, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "maestro_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "120"},
    )


def test_ui_help_lists_its_options() -> None:
    result = maestro("ui", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--token", "--open"):
        assert option in result.stdout


def test_ui_on_a_busy_port_says_so() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = maestro("ui", "--port", str(port))
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
