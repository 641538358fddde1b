"""Helpers shared by the test suite: project trees, workflow programs run as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil

LOCAL_CONFIG = '[executor.default]\ntype = "Local"\n'


def build_file_tree(root: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write `files` (relative path -> text, dedented; or bytes) under `root` and return `root`."""
    for relpath, content in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


def run_program(
    program: Path,
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 30,
    traceback_expected: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a workflow program with this interpreter, as a user runs `python workflow.py`.

    A traceback on its stderr fails the test unless the test expects one: a user sees none
    without --debug, and one from a background thread (a listener, the run history) is a bug
    even when the program goes on to succeed.
    """
    result = subprocess.run(
        [sys.executable, str(program)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if not traceback_expected:
        assert "Traceback" not in result.stderr, shown(result)
    return result


def shown(result: subprocess.CompletedProcess[str]) -> str:
    """Everything the program printed, for assertion messages."""
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def wait_for(
    condition: Callable[[], bool], *, timeout: float = 10, what: str = "condition"
) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def processes_with(token: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line contains `token`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or ())
            if token in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def kill_leftovers(token: str) -> None:
    """SIGKILL processes a failed test left behind (found by their unique token), by PID."""
    for proc in processes_with(token):
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
