"""`maestro status`: the session listing and one session's aggregated view, from a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from helpers import wait_for
from typer.testing import CliRunner, Result

from libmaestro.state import (
    Fingerprint,
    RunRecord,
    RunState,
    SqliteStateStore,
    StepRecord,
    StepState,
    WorkflowRecord,
)
from maestro_cli import app as app_module
from maestro_cli.commands import status as status_module

T0 = 1_700_000_000.0

Invoke = Callable[..., Result]


@pytest.fixture
def maestro_status(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run `maestro status ARGS` in this process; stdout and stderr stay apart."""
    monkeypatch.setenv("COLUMNS", "160")  # wide enough that table cells do not wrap
    app = app_module.app

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, ["status", *args], obj={}, catch_exceptions=False)

    return invoke


def run_step(
    store: SqliteStateStore,
    run: RunRecord,
    name: str,
    root: Path,
    *,
    fail: bool = False,
    group: str = "",
    at: float = T0,
) -> StepRecord:
    """Record one step of `run` that really wrote its log and its output under `root`."""
    workdir = root / name
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / ".maestro.out").write_text(f"{name} says hello\n")
    step = store.start_step(
        run.id, process=name, executor="local", workdir=workdir, group=group, started_at=at
    )
    if fail:
        return store.fail_step(
            step.id, exit_code=127, error=f"{name}.sh: line 3: samtools: command not found",
            ended_at=at + 2,
        )  # fmt: skip
    output = workdir / "out.txt"
    output.write_text(name)
    return store.succeed_step(step.id, outputs=[Fingerprint.of_file(output)], ended_at=at + 3)


def seed_example(store: SqliteStateStore, root: Path, session: str = "brave-otter") -> int:
    """Seed 003: step3 fails in run 1; run 2 skips step1-2 and runs step3-5, which succeed."""
    wf = store.create_workflow(
        session=session, project="demo", entry="workflow.py", metadata={"sample": "S1"},
        created_at=T0,
    )  # fmt: skip
    run1 = store.start_run(wf.id, pid=1, pid_start_time=None, started_at=T0)
    done = [run_step(store, run1, f"step{i}", root / "r1", at=T0 + i) for i in (1, 2)]
    run_step(store, run1, "step3", root / "r1", fail=True, at=T0 + 3)
    store.finish_run(run1.id, RunState.FAILED, ended_at=T0 + 10)
    run2 = store.start_run(wf.id, pid=1, pid_start_time=None, started_at=T0 + 100)
    for step in done:
        store.record_skipped(run2.id, reused=step.id)
    for i in (3, 4, 5):
        run_step(store, run2, f"step{i}", root / "r2", at=T0 + 100 + i)
    store.finish_run(run2.id, RunState.SUCCEEDED, ended_at=T0 + 130)
    return wf.id


def finished(
    store: SqliteStateStore, session: str, *, at: float, state: RunState = RunState.SUCCEEDED,
    metadata: dict[str, str] | None = None,
) -> WorkflowRecord:  # fmt: skip
    """A workflow with one run of one step, ended in `state`."""
    wf = store.create_workflow(
        session=session, project="proj", entry="wf.py", metadata=metadata, created_at=at
    )
    run = store.start_run(wf.id, pid=1, pid_start_time=None, started_at=at)
    step = store.start_step(run.id, process="only", started_at=at)
    if state is RunState.SUCCEEDED:
        store.succeed_step(step.id, outputs=[], ended_at=at + 1)
    else:
        store.fail_step(step.id, exit_code=1, ended_at=at + 1)
    store.finish_run(run.id, state, ended_at=at + 65)
    return wf


def dead_pid() -> tuple[int, float]:
    """The pid and start time of a process that has exited."""
    proc = subprocess.Popen(["sleep", "30"])
    started = psutil.Process(proc.pid).create_time()
    proc.kill()
    proc.wait()
    return proc.pid, started


def row(output: str, first: str) -> list[str]:
    """The cells of the table line that starts with `first` (plain output: no box)."""
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no line starting with {first!r} in:\n{output}")


def listed(output: str, names: set[str]) -> list[str]:
    """The sessions of `names` in the order the listing shows them."""
    return [
        cells[0] for line in output.splitlines() if (cells := line.split()) and cells[0] in names
    ]


# --- the listing --------------------------------------------------------------------------


def test_status_lists_newest_first_with_counts(
    maestro_status: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    seed_example(store, tmp_path / "w")
    finished(store, "calm-heron", at=T0 + 500, state=RunState.FAILED)
    finished(store, "eager-lynx", at=T0 + 1000)
    result = maestro_status()
    assert result.exit_code == 0, result.output
    assert listed(result.stdout, {"brave-otter", "calm-heron", "eager-lynx"}) == [
        "eager-lynx",
        "calm-heron",
        "brave-otter",
    ]
    assert row(result.stdout, "session")[:8] == [
        "session", "project", "state", "started", "duration", "runs", "steps", "tags",
    ]  # fmt: skip
    otter = " ".join(row(result.stdout, "brave-otter"))
    assert "demo succeeded" in otter and "30.0s 2 5 ok sample=S1" in otter
    assert "proj failed" in " ".join(row(result.stdout, "calm-heron"))
    assert "1m05s 1 1 failed" in " ".join(row(result.stdout, "calm-heron"))


def test_status_errors_only_shows_failed_and_interrupted(
    maestro_status: Invoke, store: SqliteStateStore
) -> None:
    finished(store, "ok-one", at=T0)
    finished(store, "bad-one", at=T0 + 1, state=RunState.FAILED)
    finished(store, "gone-one", at=T0 + 2, state=RunState.INTERRUPTED)
    result = maestro_status("--errors")
    assert result.exit_code == 0, result.output
    assert listed(result.stdout, {"ok-one", "bad-one", "gone-one"}) == ["gone-one", "bad-one"]


def test_status_search_matches_name_and_metadata(
    maestro_status: Invoke, store: SqliteStateStore
) -> None:
    finished(store, "rnaseq-a", at=T0, metadata={"sample": "S7"})
    finished(store, "rnaseq-b", at=T0 + 1, metadata={"sample": "S8"})
    finished(store, "chip-c", at=T0 + 2, metadata={"sample": "S7"})
    names = {"rnaseq-a", "rnaseq-b", "chip-c"}
    by_tag = maestro_status("--search", "sample=S7")
    assert by_tag.exit_code == 0, by_tag.output
    assert listed(by_tag.stdout, names) == ["chip-c", "rnaseq-a"]
    assert listed(maestro_status("-s", "rnaseq").stdout, names) == ["rnaseq-b", "rnaseq-a"]
    assert listed(maestro_status("-s", "rnaseq S7").stdout, names) == ["rnaseq-a"]
    nothing = maestro_status("-s", "nope")
    assert nothing.exit_code == 0 and "no session matches" in nothing.stderr


def test_status_limit_and_all(maestro_status: Invoke, store: SqliteStateStore) -> None:
    names = {f"wf-{i}" for i in range(25)}
    for i in range(25):
        finished(store, f"wf-{i}", at=T0 + i)
    default = maestro_status()
    assert len(listed(default.stdout, names)) == 20
    assert "20 of 25 sessions shown" in default.stdout
    limited = maestro_status("--limit", "3")
    assert listed(limited.stdout, names) == ["wf-24", "wf-23", "wf-22"]
    everything = maestro_status("--all")
    assert len(listed(everything.stdout, names)) == 25 and "sessions shown" not in everything.stdout


def test_status_on_an_empty_store_says_how_to_start(
    maestro_status: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "none" / "state.db"
    monkeypatch.setenv("MAESTRO_STORE", str(path))
    result = maestro_status()
    assert result.exit_code == 0, result.output
    assert "no workflow recorded yet" in result.stderr and "maestro run" in result.stderr
    assert not path.exists()  # looking does not create the store
    as_json = maestro_status("--json")
    assert json.loads(as_json.stdout)["result"] == {"workflows": [], "total": 0, "shown": 0}


def test_status_list_json(maestro_status: Invoke, store: SqliteStateStore, tmp_path: Path) -> None:
    seed_example(store, tmp_path / "w")
    finished(store, "later", at=T0 + 1000, state=RunState.FAILED)
    result = maestro_status("--json")
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    assert envelope.keys() == {"maestro", "schema", "command", "result"}
    assert envelope["command"] == "status" and envelope["schema"] == 1
    rows = envelope["result"]["workflows"]
    assert [r["session"] for r in rows] == ["later", "brave-otter"]
    otter = rows[1]
    assert otter["state"] == "succeeded" and otter["attempts"] == 2
    assert otter["steps"] == {"succeeded": 5} and otter["total_steps"] == 5
    assert otter["duration_seconds"] == 30.0 and otter["metadata"] == {"sample": "S1"}


def test_status_shows_a_run_whose_process_died_as_interrupted(
    maestro_status: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    pid, started = dead_pid()
    wf = store.create_workflow(session="killed-run", project="p", entry="wf.py", created_at=T0)
    run = store.start_run(wf.id, pid=pid, pid_start_time=started, started_at=T0)
    run_step(store, run, "first", tmp_path / "w", at=T0)
    store.start_step(run.id, process="second", started_at=T0 + 5)
    result = maestro_status("--errors")
    assert result.exit_code == 0, result.output
    assert row(result.stdout, "killed-run")[2] == "interrupted"
    assert "1 ok · 1 aborted" in result.stdout
    view = maestro_status("killed-run")
    assert row(view.stdout, "second")[1:3] == ["aborted", "1"] and "INTERRUPTED" in view.stdout


# --- one session --------------------------------------------------------------------------


def test_status_session_is_the_aggregated_view_of_seed_003(
    maestro_status: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    seed_example(store, tmp_path / "w")
    result = maestro_status("brave-otter")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name, run in (("step1", "1"), ("step2", "1"), ("step3", "2"), ("step4", "2")):
        assert row(out, name)[1:3] == ["succeeded", run]
    assert row(out, "step5")[1:5] == ["succeeded", "2", "3.0s", "local"]
    assert "up to date in run 2" in " ".join(row(out, "step1"))
    assert row(out, "1")[1] == "failed" and "2 ok · 1 failed" in " ".join(row(out, "1"))
    assert row(out, "2")[1] == "succeeded" and "3 ok · 2 skipped" in " ".join(row(out, "2"))
    assert "5 steps: 5 ok" in out


def test_status_session_json_of_seed_003(
    maestro_status: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    seed_example(store, tmp_path / "w")
    result = maestro_status("brave-otter", "--json")
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)["result"]
    assert [(s["process"], s["state"], s["run"]) for s in view["steps"]] == [
        ("step1", "succeeded", 1),
        ("step2", "succeeded", 1),
        ("step3", "succeeded", 2),
        ("step4", "succeeded", 2),
        ("step5", "succeeded", 2),
    ]
    assert [s["latest_run"] for s in view["steps"]] == [2, 2, 2, 2, 2]
    assert [(r["run"], r["state"]) for r in view["runs"]] == [(1, "failed"), (2, "succeeded")]
    assert view["runs"][1]["steps"] == {"skipped": 2, "succeeded": 3}
    assert view["rollup"]["counts"] == {"succeeded": 5} and view["rollup"]["total"] == 5
    assert view["workflow"]["session"] == "brave-otter" and view["workflow"]["state"] == "succeeded"


def test_status_why_shows_each_attempt_with_its_reason_and_logs(
    maestro_status: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    seed_example(store, tmp_path / "w")
    result = maestro_status("brave-otter", "--why", "step3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "step3 in session brave-otter: succeeded (run 2)" in out
    assert row(out, "1")[1] == "failed" and "samtools: command not found" in out
    assert row(out, "2")[1] == "succeeded"
    assert f"stdout: {tmp_path / 'w' / 'r2' / 'step3' / '.maestro.out'}" in out
    assert f"stderr: {tmp_path / 'w' / 'r2' / 'step3' / '.maestro.err'}  (missing)" in out
    skipped = maestro_status("brave-otter", "--why", "step1")
    assert "up to date; reused the success of run 1" in skipped.stdout
    data = json.loads(maestro_status("brave-otter", "--why", "step1", "--json").stdout)["result"]
    assert [(h["run"], h["state"], h["reused_run"]) for h in data["history"]] == [
        (1, "succeeded", None),
        (2, "skipped", 1),
    ]


def test_status_why_shows_the_recorded_decision_of_a_running_step(
    maestro_status: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    wf = store.create_workflow(session="rerun", project="p", entry="wf.py", created_at=T0)
    run = store.start_run(wf.id, pid=psutil.Process().pid, pid_start_time=None)
    step = store.start_step(run.id, process="count", workdir=tmp_path)
    reason = "input reads.fq changed: size 1200\u21921310"
    store.record_step_state(step.id, StepState.RUNNING, reason=reason)
    result = maestro_status("rerun", "--why", "count")
    assert result.exit_code == 0, result.output
    assert row(result.stdout, "1")[1] == "running" and reason in result.stdout


def test_status_groups_a_large_fan_out(
    maestro_status: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    wf = store.create_workflow(session="fan", project="p", entry="wf.py", created_at=T0)
    run = store.start_run(wf.id, pid=1, pid_start_time=None, started_at=T0)
    run_step(store, run, "split", tmp_path / "w", at=T0)
    failing = {"align_007", "align_100", "align_150"}
    for i in range(200):
        name = f"align_{i:03d}"
        run_step(store, run, name, tmp_path / "w", fail=name in failing, group="align", at=T0 + 5)
    store.finish_run(run.id, RunState.FAILED, ended_at=T0 + 60)
    result = maestro_status("fan")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert row(out, "align")[:2] == ["align", "\u00d7200"]
    assert "197 ok · 3 failed" in " ".join(row(out, "align"))
    shown = {line.split()[0] for line in out.splitlines() if line.strip().startswith("align_")}
    assert shown == failing
    assert row(out, "align_100")[1:3] == ["failed", "1"]
    assert "201 steps: 198 ok · 3 failed" in out
    expanded = maestro_status("fan", "--all")
    assert sum(line.strip().startswith("align_") for line in expanded.stdout.splitlines()) == 200
    capped = maestro_status("fan", "--limit", "1")
    assert "… 2 more not ok (--all lists them)" in capped.stdout


def test_status_unknown_session_suggests_a_name(
    maestro_status: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    seed_example(store, tmp_path / "w")
    result = maestro_status("brave-oter")
    assert result.exit_code == 2, result.output
    assert "no session 'brave-oter'" in result.stderr
    assert "did you mean 'brave-otter'?" in result.stderr
    step = maestro_status("brave-otter", "--why", "step9")
    assert step.exit_code == 2, step.output
    assert "no step 'step9'" in step.stderr and "its steps: step1, step2" in step.stderr


def test_status_rejects_why_without_a_session(maestro_status: Invoke) -> None:
    result = maestro_status("--why", "step1")
    assert result.exit_code == 2, result.output


def test_status_watch_of_a_finished_workflow_returns_at_once(
    maestro_status: Invoke,
    store: SqliteStateStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_example(store, tmp_path / "w")
    monkeypatch.setattr(status_module, "WATCH_SECONDS", 60.0)
    began = time.monotonic()
    result = maestro_status("brave-otter", "--watch")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - began < 10
    assert row(result.stdout, "step5")[1] == "succeeded"


def test_status_watch_redraws_until_the_run_ends(
    maestro_status: Invoke, store: SqliteStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(status_module, "WATCH_SECONDS", 0.05)
    wf = store.create_workflow(session="live", project="p", entry="wf.py", created_at=T0)
    run = store.start_run(wf.id, pid=psutil.Process().pid, pid_start_time=None)
    step = store.start_step(run.id, process="work")

    def finish() -> None:
        time.sleep(0.4)
        store.succeed_step(step.id, outputs=[])
        store.finish_run(run.id, RunState.SUCCEEDED)

    worker = threading.Thread(target=finish)
    worker.start()
    result = maestro_status("live", "--watch")
    worker.join()
    assert result.exit_code == 0, result.output
    states = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("work ")]
    assert states[0] == "running" and states[-1] == "succeeded"
    assert len(states) >= 2


def test_status_watch_stops_quietly_on_ctrl_c(
    maestro_status: Invoke, store: SqliteStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = store.create_workflow(session="live", project="p", entry="wf.py", created_at=T0)
    store.start_run(wf.id, pid=psutil.Process().pid, pid_start_time=None)

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", interrupt)  # the first wait of --watch
    result = maestro_status("live", "--watch")
    assert result.exit_code == 0, result.output
    assert "Aborted" not in result.output


WAITING_FAN_OUT = """
import libmaestro as maestro


def step(i):
    return maestro.process(
        name=f"item_{i}", executor="default", outputs={"o": "o.txt"},
        script='while [ ! -e ../../../go ]; do sleep 0.05; done; echo > "$o"',
    )


@maestro.main
def main():
    maestro.raise_failures(maestro.parallelize(range(6), step))


main()
"""


def test_status_shows_what_a_running_fan_out_has_yet_to_start(
    maestro_status: Invoke, store: SqliteStateStore, tmp_path: Path
) -> None:
    # One CPU for six items: two have begun (one runs, one waits for the CPU), four have no
    # step record yet. The listing still tells how much is ahead.
    project = tmp_path / "fan"
    project.mkdir()
    (project / "Maestro.toml").write_text('[executor.default]\ntype = "Local"\n')
    (project / "workflow.py").write_text(WAITING_FAN_OUT)
    env = {**os.environ, "MAESTRO_JOBS": "1", "MAESTRO_PLAIN": "1"}
    program = subprocess.Popen(
        [sys.executable, "workflow.py"], cwd=project, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def listed_waiting() -> int:
            rows = json.loads(maestro_status("--json").stdout)["result"]["workflows"]
            return int(rows[0]["waiting"]) if rows else -1

        wait_for(lambda: listed_waiting() == 4 + 1, timeout=30, what="5 waiting to be recorded")
        assert "5 waiting" in maestro_status().stdout
        (project / "go").touch()
        assert program.wait(timeout=60) == 0
    finally:
        if program.poll() is None:
            program.kill()
            program.wait()
    rows = json.loads(maestro_status("--json").stdout)["result"]["workflows"]
    assert rows[0]["state"] == "succeeded" and rows[0]["waiting"] == 0
    assert rows[0]["steps"] == {"succeeded": 6}
