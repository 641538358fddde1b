"""Fixtures for the command line: in-process for quick commands, a real process for `run`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import shown
from typer.testing import CliRunner

from libmaestro.state import SqliteStateStore
from maestro_cli.app import app, split_program_args


class InvokeResult:
    def __init__(self, exit_code: int, output: str) -> None:
        self.exit_code = exit_code
        self.output = output


@pytest.fixture
def maestro() -> Callable[..., InvokeResult]:
    """Run `maestro ARGS` in this process (exceptions are never swallowed, as in hatch)."""

    def invoke(*args: str) -> InvokeResult:
        own, program = split_program_args(list(args))
        result = CliRunner().invoke(app, own, obj={"program_args": program}, catch_exceptions=False)
        return InvokeResult(result.exit_code, result.output)

    return invoke


@pytest.fixture
def maestro_process() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `maestro` program (`python -m maestro_cli`) as a user would."""

    def run(
        *args: str,
        cwd: Path,
        env: dict[str, str] | None = None,
        timeout: float = 60,
        traceback_expected: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        result = subprocess.run(
            [sys.executable, "-m", "maestro_cli", *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if not traceback_expected:  # none without --debug; one from a thread is a bug
            assert "Traceback" not in result.stderr, shown(result)
        return result

    return run


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SqliteStateStore]:
    """A real run-history store that the commands find through MAESTRO_STORE."""
    path = tmp_path / "store" / "state.db"
    monkeypatch.setenv("MAESTRO_STORE", str(path))
    with SqliteStateStore(path) as opened:
        yield opened
