"""PID files and `kill_run` on real processes: a reused or dead PID is never signalled."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from helpers import kill_leftovers

import libmaestro
from libmaestro.background import PidFile, background_dir
from libmaestro.history import create_workflow, open_store


@pytest.fixture
def token() -> Iterator[str]:
    value = f"300.{uuid.uuid4().int % 10**9:09d}"
    yield value
    kill_leftovers(value)


def _pid_file(root: Path, pid: int, start_time: float) -> PidFile:
    directory = background_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    pid_file = PidFile(
        path=directory / f"{pid}.json",
        pid=pid,
        start_time=start_time,
        host=socket.gethostname(),
        command=("python", "workflow.py"),
        cwd=root,
        stdout=directory / "x.out",
        stderr=directory / "x.err",
    )
    pid_file.path.write_text(pid_file.to_json())
    return pid_file


def test_kill_run_pid_reuse_never_signals_the_new_process(isolated_env: Path, token: str) -> None:
    """A PID file whose PID now belongs to an unrelated process should be reported stale."""
    sleeper = subprocess.Popen(["sleep", token])
    try:
        started = psutil.Process(sleeper.pid).create_time()
        pid_file = _pid_file(isolated_env, sleeper.pid, started - 100)
        store = open_store()
        [target] = libmaestro.find_kill_targets(
            store, name=str(sleeper.pid), all_runs=False, root=isolated_env, project=None
        )
        result = libmaestro.kill_run(store, target, timeout=1)
        assert result.outcome is libmaestro.KillOutcome.STALE
        assert sleeper.poll() is None, "the unrelated process was signalled"
        assert not pid_file.path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_kill_run_stale_pid_file_is_removed(isolated_env: Path) -> None:
    gone = subprocess.Popen(["true"])
    started = psutil.Process(gone.pid).create_time()
    gone.wait()
    pid_file = _pid_file(isolated_env, gone.pid, started)
    store = open_store()
    [target] = libmaestro.find_kill_targets(
        store, name=None, all_runs=False, root=isolated_env, project=None
    )
    result = libmaestro.kill_run(store, target)
    assert result.outcome is libmaestro.KillOutcome.STALE
    assert not pid_file.path.exists()


def test_kill_run_refuses_a_run_on_another_host(isolated_env: Path) -> None:
    store = open_store()
    workflow = create_workflow(
        store, session="far_away", project="p", entry=isolated_env / "w.py", config_path=None
    )
    me = psutil.Process()
    store.start_run(
        workflow.id, pid=os.getpid(), pid_start_time=me.create_time(), host="elsewhere.example"
    )
    active, _ = libmaestro.active_runs(store)
    assert [(a.workflow.session, a.is_local) for a in active] == [("far_away", False)]
    [target] = libmaestro.find_kill_targets(
        store, name="far_away", all_runs=False, root=isolated_env, project=None
    )
    with pytest.raises(libmaestro.KillError, match=r"elsewhere\.example") as caught:
        libmaestro.kill_run(store, target)
    assert caught.value.exit_code == 2
    assert (
        libmaestro.find_kill_targets(
            store, name=None, all_runs=True, root=isolated_env, project=None
        )
        == []
    )


def test_find_kill_targets_several_active_runs_asks_for_a_name(isolated_env: Path) -> None:
    store = open_store()
    for name in ("one", "two"):
        workflow = create_workflow(
            store, session=name, project="p", entry=isolated_env / "w.py", config_path=None
        )
        store.start_run(workflow.id, pid=os.getpid(), pid_start_time=psutil.Process().create_time())
    with pytest.raises(libmaestro.KillError, match=r"one.*two|two.*one"):
        libmaestro.find_kill_targets(
            store, name=None, all_runs=False, root=isolated_env, project="p"
        )
