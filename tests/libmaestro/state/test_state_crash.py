"""Crash safety and concurrency of the store, with real processes killed by real signals."""

from __future__ import annotations

import dataclasses
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import psutil
from state_helpers import new_workflow, python, start_run

from libmaestro.state import (
    Fingerprint,
    Reason,
    RunRecord,
    RunState,
    SqliteStateStore,
    StepState,
    WorkflowState,
    run_is_alive,
)

MakeFile = Callable[..., Fingerprint]

# Runs succeed_step in a child, and stops it inside the transaction, just before COMMIT, after
# the artefacts and the new state were written: the worst moment for a SIGKILL.
KILLED_MID_SUCCESS = r"""
import sqlite3, sys, time
from pathlib import Path

real_connect = sqlite3.connect

def connect(*args, **kwargs):
    conn = real_connect(*args, **kwargs)
    seen = []
    def trace(sql):
        seen.append(sql)
        if sql.strip() == "COMMIT" and any("INSERT INTO artefacts" in s for s in seen):
            print("in-transaction", flush=True)
            time.sleep(60)
    conn.set_trace_callback(trace)
    return conn

sqlite3.connect = connect
from libmaestro.state import Fingerprint, SqliteStateStore

store = SqliteStateStore(Path(sys.argv[1]))
outputs = [Fingerprint.of_file(Path(p)) for p in sys.argv[3:]]
store.succeed_step(int(sys.argv[2]), outputs=outputs)
print("committed", flush=True)
"""

# A whole run in a child: step1 succeeds, step2 starts, then the process SIGKILLs itself.
RUN_KILLED_MIDWAY = r"""
import os, signal, sys
from pathlib import Path
import psutil
from libmaestro.state import Fingerprint, SqliteStateStore

store = SqliteStateStore(Path(sys.argv[1]))
out = Path(sys.argv[2])
wf = store.get_workflow("killed-run")
run = store.start_run(wf.id, pid=os.getpid(), pid_start_time=psutil.Process().create_time())
step = store.start_step(run.id, process="step1")
out.write_text("one")
store.succeed_step(step.id, outputs=[Fingerprint.of_file(out)])
store.start_step(run.id, process="step2")
os.kill(os.getpid(), signal.SIGKILL)
"""

# One writer among several: its own session, `count` steps, each started then succeeded.
WRITER = r"""
import os, sys, time
from pathlib import Path
from libmaestro.state import Fingerprint, RunState, SqliteStateStore

db, name, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
while not go.exists():
    time.sleep(0.005)
store = SqliteStateStore(db)
wf = store.create_workflow(session=name, project="concurrent", entry="main.py")
run = store.start_run(wf.id, pid=os.getpid(), pid_start_time=None)
for i in range(count):
    step = store.start_step(run.id, process=f"p{i}")
    out = Fingerprint(path=Path(f"/out/{name}/{i}"), size=i, mtime_ns=i)
    store.succeed_step(step.id, outputs=[out])
store.finish_run(run.id, RunState.SUCCEEDED)
print("done", flush=True)
"""


def _integrity(path: Path) -> str:
    with sqlite3.connect(path) as raw:
        return str(raw.execute("PRAGMA integrity_check").fetchone()[0])


def test_sigkill_inside_succeed_step_leaves_no_success(
    store: SqliteStateStore, store_path: Path, make_file: MakeFile
) -> None:
    """A writer killed before COMMIT should leave the step running, no artefacts, a sound file."""
    wf = new_workflow(store, "crash")
    run = start_run(store, wf.id)
    step = store.start_step(run.id, process="align")
    out = make_file("aligned.bam", "bam")
    child = python(KILLED_MID_SUCCESS, str(store_path), str(step.id), str(out.path))
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        assert line == "in-transaction", child.stderr.read() if child.stderr else ""
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL

    after = store.step(step.id)
    assert after.state is StepState.RUNNING
    assert store.artefacts(step.id) == []
    assert store.last_success(wf.id, "align") is None
    assert _integrity(store_path) == "ok"
    # The killed writer's lock is gone: this process can write at once, and succeed the step.
    done = store.succeed_step(step.id, outputs=[out])
    assert done.state is StepState.SUCCEEDED
    assert [a.path for a in store.artefacts(step.id)] == [out.path]


def test_run_killed_midway_is_interrupted_and_resumes_what_did_not_succeed(
    store: SqliteStateStore, store_path: Path, tmp_path: Path
) -> None:
    wf = new_workflow(store, "killed-run")
    child = python(RUN_KILLED_MIDWAY, str(store_path), str(tmp_path / "one.txt"))
    _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err
    assert _integrity(store_path) == "ok"

    (run,) = store.runs(wf.id)
    assert run.state is RunState.RUNNING  # nobody said otherwise, yet
    marked = store.mark_interrupted_runs(run_is_alive)
    assert [r.id for r in marked] == [run.id]
    assert marked[0].state is RunState.INTERRUPTED and marked[0].ended_at is not None
    assert store.workflow(wf.id).state is WorkflowState.INTERRUPTED
    view = {item.process: item.state for item in store.aggregated_steps(wf.id)}
    assert view == {"step1": StepState.SUCCEEDED, "step2": StepState.ABORTED}
    assert store.step(store.steps(wf.id)[1].id).reason == Reason.INTERRUPTED
    # Resume: step1 is reusable, step2 is not.
    assert set(store.last_successes(wf.id)) == {"step1"}
    run2 = start_run(store, wf.id)
    assert run2.attempt == 2
    assert store.mark_interrupted_runs(run_is_alive) == []  # this process is alive


def test_mark_interrupted_runs_asks_the_callback(store: SqliteStateStore) -> None:
    wfs = [new_workflow(store, f"wf{i}") for i in range(3)]
    runs = [start_run(store, wf.id) for wf in wfs]
    store.finish_run(runs[2].id, RunState.SUCCEEDED)
    asked: list[int] = []

    def is_alive(run: RunRecord) -> bool:
        asked.append(run.id)
        return run.id == runs[0].id

    marked = store.mark_interrupted_runs(is_alive)
    assert asked == [runs[0].id, runs[1].id]  # only running runs are asked about
    assert [r.id for r in marked] == [runs[1].id]
    assert store.run(runs[0].id).state is RunState.RUNNING
    assert store.run(runs[2].id).state is RunState.SUCCEEDED


def test_run_is_alive_checks_pid_start_time_and_host(store: SqliteStateStore) -> None:
    wf = new_workflow(store, "alive")
    me = start_run(store, wf.id)
    assert run_is_alive(me)
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = dataclasses.replace(me, pid=gone.pid, pid_start_time=None)
    assert not run_is_alive(dead)
    reused = dataclasses.replace(me, pid_start_time=psutil.Process().create_time() - 100)
    assert not run_is_alive(reused)
    assert run_is_alive(dataclasses.replace(dead, host="another-machine"))
    assert not run_is_alive(dataclasses.replace(dead, host="here"), hostname="here")


def test_two_processes_write_at_once(store_path: Path, tmp_path: Path) -> None:
    """Two writers on a brand-new store: no "database is locked", all 400 steps recorded."""
    go = tmp_path / "go"
    children = [python(WRITER, str(store_path), name, "200", str(go)) for name in ("a", "b")]
    go.touch()
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert out.strip() == "done"
        assert "locked" not in err
    with SqliteStateStore(store_path) as store:
        for name in ("a", "b"):
            wf = store.get_workflow(name)
            assert wf.state is WorkflowState.SUCCEEDED
            rollup = store.rollup(wf.id)
            assert (rollup.total, rollup.count(StepState.SUCCEEDED)) == (200, 200)
            assert len(store.last_successes(wf.id)) == 200
    assert _integrity(store_path) == "ok"


def test_threads_share_one_store(store: SqliteStateStore) -> None:
    wf = new_workflow(store, "threads")
    run = start_run(store, wf.id)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(25):
                step = store.start_step(run.id, process=f"w{worker}-{i}", group=f"w{worker}")
                store.succeed_step(step.id, outputs=[])
                store.aggregated_steps(wf.id)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rollup = store.rollup(wf.id)
    assert rollup.total == 200
    assert set(rollup.groups) == {f"w{n}" for n in range(8)}
    assert all(counts == {StepState.SUCCEEDED: 25} for counts in rollup.groups.values())
