"""Helpers for the state store tests (imported as `state_helpers`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from libmaestro.state import RunRecord, SqliteStateStore, WorkflowRecord

REPO = Path(__file__).resolve().parents[3]


def new_workflow(store: SqliteStateStore, session: str, **kwargs: object) -> WorkflowRecord:
    """Create an instance of project "demo" unless `kwargs` says otherwise."""
    fields: dict[str, object] = {"project": "demo", "entry": "main.py", **kwargs}
    return store.create_workflow(session=session, **fields)  # type: ignore[arg-type]  # test shorthand


def start_run(store: SqliteStateStore, workflow_id: int) -> RunRecord:
    """Start a run owned by this (live) test process."""
    return store.start_run(
        workflow_id,
        pid=os.getpid(),
        pid_start_time=psutil.Process().create_time(),
        command=["maestro", "run"],
    )


def python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start `python -c code args...` with the repository importable; pipes for output."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
