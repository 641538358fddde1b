"""`maestro run --resume [SESSION] [--explain]`: restarting a session through the real CLI.

The workflows are real programs run by `python -m maestro_cli run` in their project directory;
what the run did is read back from the real SQLite store (the test's own HOME, or `--store`).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path

from cli_helpers import sessions, shown
from helpers import processes_with, wait_for

from libmaestro.history import store_path
from libmaestro.state import RunState, SqliteStateStore, StepState, run_is_alive

Run = Callable[..., subprocess.CompletedProcess[str]]
LOCAL = '[executor.default]\ntype = "Local"\n'
INPUT = "hello\n"


def chain_program(steps: int, scripts: dict[str, str], arg_steps: Sequence[str] = ()) -> str:
    """`steps` chained processes, step i reading step i-1's output (step1 reads data/x.txt)."""
    lines = ["import libmaestro as maestro", "", "", "@maestro.main", "def main():"]
    lines.append('    prev = "data/x.txt"')
    for i in range(1, steps + 1):
        name = f"step{i}"
        default = f'cat "$src" > "$out"\necho "{name}" >> "$out"'
        args = '{"nap": maestro.arg("nap")}' if name in arg_steps else "{}"
        lines += [
            "    prev = maestro.process(",
            f"        name={name!r},",
            '        executor="default",',
            f"        args={args},",
            '        inputs={"src": prev},',
            f'        outputs={{"out": "{name}.txt"}},',
            f"        script={scripts.get(name, default)!r},",
            "    ).out",
        ]
    lines += ["", "", 'if __name__ == "__main__":', "    main()", ""]
    return "\n".join(lines)


# Seed 003: step3 fails while the project has a file `bug`; removing it is the fix.
BUGGY_STEP3 = (
    'if [ -e ../../../bug ]; then echo "step3: bug present" >&2; exit 3; fi\n'
    'cat "$src" > "$out"\necho "step3" >> "$out"'
)
SEED_PROGRAM = chain_program(5, {"step3": BUGGY_STEP3})


def write_project(root: Path, program: str, config: str = LOCAL) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "data" / "x.txt").write_text(INPUT)
    (root / "workflow.py").write_text(program)
    (root / "Maestro.toml").write_text(config)
    return root


STARTED = re.compile(r"^maestro: started (\S+) \(default\)(?:: (.*))?$", re.MULTILINE)
SKIPPED = re.compile(r"^maestro: skipped (\S+): (.*)$", re.MULTILINE)


def started(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {m[1]: m[2] or "" for m in STARTED.finditer(result.stderr)}


def skipped(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {m[1]: m[2] for m in SKIPPED.finditer(result.stderr)}


def integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_run_resume_seed_example_fix_and_restart(maestro_process: Run, tmp_path: Path) -> None:
    """Seed 003's worked example, end to end: run 1 fails at step3; after the fix, run 2 skips
    step1/2 as already successful and runs step3-5; the aggregated view shows all five
    succeeded, step1/2 in run 1 and step3-5 in run 2."""
    project = write_project(tmp_path / "seed", SEED_PROGRAM)
    (project / "bug").touch()

    first = maestro_process("run", cwd=project)

    assert first.returncode == 1, shown(first)
    assert "process 'step3' failed with exit code 3" in first.stderr
    (session,) = sessions(project)
    with SqliteStateStore(store_path()) as store:
        workflow = store.get_workflow(session.name)
        (run1,) = store.runs(workflow.id)
        assert run1.state is RunState.FAILED
        states = {s.process: s.state for s in store.steps(workflow.id, run1.id)}
        assert states == {
            "step1": StepState.SUCCEEDED,
            "step2": StepState.SUCCEEDED,
            "step3": StepState.FAILED,
        }  # step4 and step5 never started
        rollup = store.rollup(workflow.id)
        assert not rollup.all_succeeded
        assert rollup.counts == {StepState.SUCCEEDED: 2, StepState.FAILED: 1}
        run1_ids = {s.process: s.id for s in store.steps(workflow.id, run1.id)}

    (project / "bug").unlink()  # the fix
    second = maestro_process("run", "--resume", cwd=project)

    assert second.returncode == 0, shown(second)
    lines = second.stderr.splitlines()
    assert "maestro: skipped step1: up to date (from run 1)" in lines
    assert "maestro: skipped step2: up to date (from run 1)" in lines
    assert list(started(second)) == ["step3", "step4", "step5"]
    assert f"maestro: session {session.name} in {session}" in lines
    assert sessions(project) == [session]  # the same session directory, no second one
    assert (
        session / "step5" / "step5.txt"
    ).read_text() == INPUT + "step1\nstep2\nstep3\nstep4\nstep5\n"
    (failed_attempt,) = (session / ".attempts").glob("step3.*")
    assert (failed_attempt / ".maestro.err").read_text() == "step3: bug present\n"
    with SqliteStateStore(store_path()) as store:
        workflow = store.get_workflow(session.name)
        run1, run2 = store.runs(workflow.id)
        assert (run1.state, run2.state) == (RunState.FAILED, RunState.SUCCEEDED)
        assert (run1.attempt, run2.attempt) == (1, 2)
        in_run2 = {s.process: s for s in store.steps(workflow.id, run2.id)}
        assert {name: s.state for name, s in in_run2.items()} == {
            "step1": StepState.SKIPPED,
            "step2": StepState.SKIPPED,
            "step3": StepState.SUCCEEDED,
            "step4": StepState.SUCCEEDED,
            "step5": StepState.SUCCEEDED,
        }
        assert in_run2["step1"].reused_from == run1_ids["step1"]
        assert in_run2["step2"].reused_from == run1_ids["step2"]
        view = [(a.process, a.state, a.attempt) for a in store.aggregated_steps(workflow.id)]
        assert view == [
            ("step1", StepState.SUCCEEDED, 1),
            ("step2", StepState.SUCCEEDED, 1),
            ("step3", StepState.SUCCEEDED, 2),
            ("step4", StepState.SUCCEEDED, 2),
            ("step5", StepState.SUCCEEDED, 2),
        ]
        rollup = store.rollup(workflow.id)
        assert rollup.all_succeeded and rollup.total == 5
        assert rollup.counts == {StepState.SUCCEEDED: 5}
        assert store.get_workflow(session.name).state.value == "succeeded"

    third = maestro_process("run", "--resume", "--explain", cwd=project)

    assert third.returncode == 0, shown(third)
    assert started(third) == {}
    assert skipped(third) == {
        "step1": "up to date (from run 1)",
        "step2": "up to date (from run 1)",
        "step3": "up to date (from run 2)",
        "step4": "up to date (from run 2)",
        "step5": "up to date (from run 2)",
    }
    with SqliteStateStore(store_path()) as store:
        workflow = store.get_workflow(session.name)
        attempts = [
            (a.process, a.attempt, a.latest_attempt) for a in store.aggregated_steps(workflow.id)
        ]
        assert attempts == [(f"step{i}", 1 if i < 3 else 2, 3) for i in range(1, 6)]


def test_run_resume_after_sigkill_reruns_only_the_unfinished_steps(
    maestro_process: Run, tmp_path: Path
) -> None:
    """`maestro run` is SIGKILLed (its whole process group) while step4 sleeps: the store stays
    consistent, the run is found interrupted, and --resume reruns step4-6 only."""
    token = f"{400 + os.getpid() % 500}.{time.time_ns() % 10_000:04d}"  # sleep length = our tag
    step4 = 'touch "$MAESTRO_WORKDIR/started"\nsleep "$nap"\ncat "$src" > "$out"\necho "step4" >> "$out"'
    project = write_project(
        tmp_path / "killed",
        chain_program(6, {"step4": step4}, arg_steps=("step4",)),
        LOCAL + f'[args]\nnap = "{token}"\n',
    )
    log = (tmp_path / "run.log").open("w")
    cli = subprocess.Popen(
        [sys.executable, "-m", "maestro_cli", "run"],
        cwd=project,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, to kill as a whole
    )

    def recorded() -> dict[str, StepState]:
        with SqliteStateStore(store_path()) as store:
            latest = store.latest_workflow()
            return {s.process: s.state for s in store.steps(latest.id)} if latest else {}

    mid_run = {f"step{i}": StepState.SUCCEEDED for i in (1, 2, 3)} | {"step4": StepState.RUNNING}
    try:
        wait_for(lambda: any(project.glob("maestro_work/*/step4/started")), what="step4 to start")
        wait_for(lambda: bool(processes_with(token)), what="step4's sleep")
        wait_for(lambda: recorded() == mid_run, what="step1-3 to be recorded")
        os.killpg(cli.pid, signal.SIGKILL)
        cli.wait(timeout=10)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()
        log.close()
        # The job runs in its own session, out of the killed group: end it by its pid.
        for proc in processes_with(token):
            proc.kill()
        wait_for(lambda: not processes_with(token), what="the leftover sleep to end")
    (session,) = sessions(project)

    with SqliteStateStore(store_path()) as store:
        workflow = store.get_workflow(session.name)
        (run,) = store.runs(workflow.id)
        assert run.state is RunState.RUNNING  # nobody could record its end
        wait_for(lambda: not run_is_alive(run), what="the workflow process to be gone")
        (marked,) = store.mark_interrupted_runs(run_is_alive)
        assert marked.id == run.id and marked.state is RunState.INTERRUPTED
        steps = {s.process: s for s in store.steps(workflow.id)}
        assert {n: s.state for n, s in steps.items()} == mid_run | {"step4": StepState.ABORTED}
        assert steps["step4"].reason == "INTERRUPTED"
        assert not store.rollup(workflow.id).all_succeeded
    assert integrity(store_path()) == "ok"

    (project / "Maestro.toml").write_text(LOCAL + '[args]\nnap = "0"\n')  # step4 reruns anyway
    resumed = maestro_process("run", "--resume", "--explain", cwd=project)

    assert resumed.returncode == 0, shown(resumed)
    assert skipped(resumed) == {f"step{i}": "up to date (from run 1)" for i in (1, 2, 3)}
    assert started(resumed) == {
        "step4": "no earlier success in this session",
        "step5": "no earlier success in this session",
        "step6": "no earlier success in this session",
    }
    assert sessions(project) == [session]
    assert (session / "step6" / "step6.txt").read_text() == INPUT + "".join(
        f"step{i}\n" for i in range(1, 7)
    )
    (killed_attempt,) = (session / ".attempts").glob("step4.*")
    assert (killed_attempt / "started").exists()
    with SqliteStateStore(store_path()) as store:
        workflow = store.get_workflow(session.name)
        assert [r.state for r in store.runs(workflow.id)] == [
            RunState.INTERRUPTED,
            RunState.SUCCEEDED,
        ]
        view = {a.process: (a.state, a.attempt) for a in store.aggregated_steps(workflow.id)}
        assert view == {f"step{i}": (StepState.SUCCEEDED, 1 if i <= 3 else 2) for i in range(1, 7)}
        assert store.rollup(workflow.id).all_succeeded
    assert integrity(store_path()) == "ok"


def test_run_resume_unknown_session_is_a_one_line_usage_error(
    maestro_process: Run, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "p", chain_program(2, {}))
    first = maestro_process("run", cwd=project)
    assert first.returncode == 0, shown(first)
    (session,) = sessions(project)

    result = maestro_process("run", "--resume", "no_such_session", cwd=project)

    assert result.returncode == 2, shown(result)
    (line,) = result.stderr.strip().splitlines()
    assert "no session named 'no_such_session'" in line
    assert session.name in line  # what could have been meant
    assert "Traceback" not in result.stderr
    assert sessions(project) == [session]
    with SqliteStateStore(store_path()) as store:
        (summary,) = store.list_workflows()
        assert summary.attempts == 1


def test_run_resume_in_a_project_that_never_ran_is_a_clear_error(
    maestro_process: Run, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "fresh", chain_program(2, {}))

    result = maestro_process("run", "--resume", "--explain", cwd=project)

    assert result.returncode == 2, shown(result)
    (line,) = result.stderr.strip().splitlines()
    assert "there is no earlier session of fresh" in line
    assert "run without --resume first" in line
    assert "Traceback" not in result.stderr
    assert sessions(project) == []
    with SqliteStateStore(store_path()) as store:
        assert store.list_workflows() == []


def test_run_resume_named_session_not_the_latest_with_store_option(
    maestro_process: Run, tmp_path: Path
) -> None:
    """`maestro --store PATH run --resume NAME` restarts that older session, in that store."""
    project = write_project(tmp_path / "p", SEED_PROGRAM)
    store_file = tmp_path / "elsewhere" / "state.db"
    (project / "bug").touch()
    failed = maestro_process("--store", str(store_file), "run", cwd=project)
    assert failed.returncode == 1, shown(failed)
    (older,) = sessions(project)
    (project / "bug").unlink()
    newer_run = maestro_process("--store", str(store_file), "run", cwd=project)
    assert newer_run.returncode == 0, shown(newer_run)
    assert len(started(newer_run)) == 5  # a new session: everything runs
    (newer,) = set(sessions(project)) - {older}

    resumed = maestro_process(
        "--store", str(store_file), "run", "--resume", older.name, cwd=project
    )

    assert resumed.returncode == 0, shown(resumed)
    assert f"maestro: session {older.name} in {older}" in resumed.stderr.splitlines()
    assert list(skipped(resumed)) == ["step1", "step2"]
    assert list(started(resumed)) == ["step3", "step4", "step5"]
    assert set(sessions(project)) == {older, newer}
    assert not store_path().exists()  # everything went to --store
    with SqliteStateStore(store_file) as store:
        runs = {
            s.workflow.session: [r.state for r in store.runs(s.workflow.id)]
            for s in store.list_workflows()
        }
        assert runs == {
            older.name: [RunState.FAILED, RunState.SUCCEEDED],
            newer.name: [RunState.SUCCEEDED],
        }
