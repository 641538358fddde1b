"""`maestro logs`: a step's stdout or stderr, found through the workdir the store recorded."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner, Result

from libmaestro.state import (
    Fingerprint,
    RunRecord,
    RunState,
    SqliteStateStore,
    StepRecord,
    StepState,
)
from maestro_cli import app as app_module
from maestro_cli.commands import logs as logs_module

Invoke = Callable[..., Result]


@pytest.fixture
def maestro_logs(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run `maestro logs ARGS` in this process; stdout and stderr stay apart."""
    monkeypatch.setattr(logs_module, "POLL_SECONDS", 0.02)
    app = app_module.app

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, ["logs", *args], obj={}, catch_exceptions=False)

    return invoke


def live_run(store: SqliteStateStore, session: str = "brave-otter") -> RunRecord:
    """A running run of a new session, recorded by this (living) process."""
    wf = store.create_workflow(session=session, project="p", entry="wf.py")
    me = psutil.Process()
    return store.start_run(wf.id, pid=me.pid, pid_start_time=me.create_time())


def started(
    store: SqliteStateStore, run: RunRecord, name: str, root: Path, *, out: str | None = None,
    err: str | None = None,
) -> StepRecord:  # fmt: skip
    """A running step whose workdir holds the given logs (None: that log was not written)."""
    workdir = root / name
    workdir.mkdir(parents=True)
    if out is not None:
        (workdir / ".maestro.out").write_text(out)
    if err is not None:
        (workdir / ".maestro.err").write_text(err)
    return store.start_step(run.id, process=name, workdir=workdir, executor="local")


def succeed(store: SqliteStateStore, step: StepRecord) -> StepRecord:
    assert step.workdir is not None
    output = step.workdir / "out.txt"
    output.write_text("done\n")
    return store.succeed_step(step.id, outputs=[Fingerprint.of_file(output)])


LINES = "".join(f"line {i}\n" for i in range(1, 11))


def test_logs_prints_stdout_and_stderr(
    maestro_logs: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    run = live_run(store)
    succeed(store, started(store, run, "count", tmp_path, out=LINES, err="warning: low depth\n"))
    result = maestro_logs("brave-otter", "count")
    assert result.exit_code == 0, result.output
    assert result.stdout == LINES
    err = maestro_logs("brave-otter", "count", "--stderr")
    assert err.exit_code == 0, err.output
    assert err.stdout == "warning: low depth\n"


@pytest.mark.parametrize(
    ("text", "count", "expected"),
    [
        (LINES, 3, "line 8\nline 9\nline 10\n"),
        (LINES, 0, ""),
        (LINES, 50, LINES),
        ("a\nb\nno newline at the end", 2, "b\nno newline at the end"),
        ("", 5, ""),
    ],
)
def test_logs_tail(
    maestro_logs: Invoke,
    store: SqliteStateStore,
    tmp_path: Path,
    text: str,
    count: int,
    expected: str,
) -> None:
    run = live_run(store)
    succeed(store, started(store, run, "count", tmp_path, out=text))
    result = maestro_logs("brave-otter", "count", "--tail", str(count))
    assert result.exit_code == 0, result.output
    assert result.stdout == expected


def test_logs_tail_of_a_long_log(
    maestro_logs: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    """Lines spanning several read blocks are counted from the end."""
    text = "".join(f"{i:06d} {'x' * 200}\n" for i in range(2000))
    run = live_run(store)
    succeed(store, started(store, run, "count", tmp_path, out=text))
    result = maestro_logs("brave-otter", "count", "-n", "700")
    assert result.exit_code == 0, result.output
    assert result.stdout == "".join(text.splitlines(keepends=True)[-700:])


def test_logs_follow_prints_appended_lines_until_the_step_ends(
    maestro_logs: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    run = live_run(store)
    step = started(store, run, "count", tmp_path, out="first\n")
    assert step.workdir is not None
    log = step.workdir / ".maestro.out"

    def write_then_succeed() -> None:
        for i in range(5):
            time.sleep(0.05)
            with log.open("a") as handle:
                handle.write(f"more {i}\n")
        succeed(store, step)

    writer = threading.Thread(target=write_then_succeed)
    writer.start()
    began = time.monotonic()
    result = maestro_logs("brave-otter", "count", "--follow")
    writer.join()
    assert result.exit_code == 0, result.output
    assert result.stdout == "first\n" + "".join(f"more {i}\n" for i in range(5))
    assert time.monotonic() - began < 10


def test_logs_follow_stops_when_the_run_died(
    maestro_logs: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    created = psutil.Process(proc.pid).create_time()
    proc.kill()
    proc.wait()
    wf = store.create_workflow(session="killed", project="p", entry="wf.py")
    run = store.start_run(wf.id, pid=proc.pid, pid_start_time=created)
    started(store, run, "count", tmp_path, out="partial\n")
    result = maestro_logs("killed", "count", "-f")
    assert result.exit_code == 0, result.output
    assert result.stdout == "partial\n"
    assert store.run(run.id).state is RunState.INTERRUPTED


def test_logs_of_a_skipped_step_come_from_the_success_it_reused(
    maestro_logs: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    run1 = live_run(store)
    done = succeed(store, started(store, run1, "count", tmp_path / "r1", out="from run 1\n"))
    store.finish_run(run1.id, RunState.SUCCEEDED)
    me = psutil.Process()
    run2 = store.start_run(run1.workflow_id, pid=me.pid, pid_start_time=me.create_time())
    store.record_skipped(run2.id, reused=done.id)
    result = maestro_logs("brave-otter", "count")
    assert result.exit_code == 0, result.output
    assert result.stdout == "from run 1\n"
    assert "skipped in run 2 as already successful; showing the log of run 1" in result.stderr


def test_logs_missing_file_names_it(
    maestro_logs: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    run = live_run(store)
    step = started(store, run, "count", tmp_path, out="x\n")
    assert step.workdir is not None
    result = maestro_logs("brave-otter", "count", "--stderr")
    assert result.exit_code == 1, result.output
    assert str(step.workdir / ".maestro.err") in result.stderr.replace("\n", "")
    assert "may not have started yet" in result.stderr


def test_logs_of_a_step_without_workdir(maestro_logs: Invoke, store: SqliteStateStore) -> None:
    run = live_run(store)
    store.start_step(run.id, process="later", state=StepState.PENDING)
    result = maestro_logs("brave-otter", "later")
    assert result.exit_code == 1, result.output
    assert "has not started" in result.stderr


def test_logs_unknown_step_lists_the_steps(
    maestro_logs: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    run = live_run(store)
    succeed(store, started(store, run, "count", tmp_path, out=""))
    succeed(store, started(store, run, "report", tmp_path, out=""))
    result = maestro_logs("brave-otter", "cuont")
    assert result.exit_code == 2, result.output
    assert "no step 'cuont'" in result.stderr and "did you mean 'count'?" in result.stderr
    assert "its steps: count, report" in result.stderr


def test_logs_unknown_session(maestro_logs: Invoke, store: SqliteStateStore) -> None:
    live_run(store, "brave-otter")
    result = maestro_logs("brave-oter", "count")
    assert result.exit_code == 2, result.output
    assert "did you mean 'brave-otter'?" in result.stderr
