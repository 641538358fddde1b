"""Resume on real workflow programs: what reruns, what is skipped, and the reason given for each.

Every test runs a chained workflow (step1 -> ... -> stepN, each step reading its predecessor's
output file and writing its own) as a user does, `python workflow.py`, with `@main` reading
MAESTRO_RESUME / MAESTRO_EXPLAIN as `maestro run --resume --explain` sets them. The decisions are
checked twice: in the plain progress lines and in the real SQLite store under the test's HOME.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import processes_with, run_program, shown, wait_for

from libmaestro.graph import NodeState, find_run_graph, load_graph
from libmaestro.history import store_path
from libmaestro.layout import WORK_DIR_NAME
from libmaestro.state import SqliteStateStore, StepState

CONFIG = """
[executor.default]
type = "Local"

[executor.mod]
type = "Local"
modules = ["tool/1.0"]

[args]
x = "1"
"""
INPUT = "hello\n"  # data/x.txt, read by step1


def step_script(name: str, *extra: str) -> str:
    """The default script: prepared line 2 `set -eu`, 3 the copy, 4 the echo, then `extra`."""
    return "\n".join(["set -eu", 'cat "$src" > "$out"', f'echo "{name}" >> "$out"', *extra])


def chain_program(
    steps: int = 5,
    *,
    scripts: Mapping[str, str] | None = None,
    arg_steps: Sequence[str] = (),
    executors: Mapping[str, str] | None = None,
) -> str:
    """A workflow program of `steps` chained processes, each written out as its own call."""
    lines = ["import libmaestro as maestro", "", "", "@maestro.main", "def main():"]
    lines.append('    prev = "data/x.txt"')
    for i in range(1, steps + 1):
        name = f"step{i}"
        script = (scripts or {}).get(name, step_script(name))
        args = '{"x": maestro.arg("x")}' if name in arg_steps else "{}"
        lines += [
            "    prev = maestro.process(",
            f"        name={name!r},",
            f"        executor={(executors or {}).get(name, 'default')!r},",
            f"        args={args},",
            '        inputs={"src": prev},',
            f'        outputs={{"out": "{name}.txt"}},',
            f"        script={script!r},",
            "    ).out",
        ]
    lines += ["", "", 'if __name__ == "__main__":', "    main()", ""]
    return "\n".join(lines)


STARTED = re.compile(r"^maestro: started (\S+) \([^)]*\)(?:: (.*))?$")
SKIPPED = re.compile(r"^maestro: skipped (\S+): (.*)$")


@dataclass(repr=False)
class Outcome:
    """One run of the program: what it printed, and which steps ran or were skipped, and why."""

    result: subprocess.CompletedProcess[str]
    ran: list[str]
    skipped: list[str]
    reasons: dict[str, str]

    @classmethod
    def of(cls, result: subprocess.CompletedProcess[str]) -> Outcome:
        ran, skipped, reasons = [], [], {}
        for line in result.stderr.splitlines():
            if match := STARTED.match(line):
                ran.append(match[1])
                reasons[match[1]] = match[2] or ""
            elif match := SKIPPED.match(line):
                skipped.append(match[1])
                reasons[match[1]] = match[2]
        return cls(result, ran, skipped, reasons)

    def __repr__(self) -> str:
        return shown(self.result)


class Project:
    """A workflow project on disk, run as `python workflow.py` (with or without --resume)."""

    def __init__(self, root: Path, program: str, config: str = CONFIG) -> None:
        self.root = root
        (root / "data").mkdir(parents=True)
        (root / "data" / "x.txt").write_text(INPUT)
        self.write(program, config)

    def write(self, program: str | None = None, config: str | None = None) -> None:
        if program is not None:
            (self.root / "workflow.py").write_text(program)
        if config is not None:
            (self.root / "Maestro.toml").write_text(config)

    def run(self, *, resume: bool = True, env: Mapping[str, str] | None = None) -> Outcome:
        extra = {"MAESTRO_RESUME": "latest", "MAESTRO_EXPLAIN": "1"} if resume else {}
        result = run_program(self.root / "workflow.py", cwd=self.root, env={**extra, **(env or {})})
        return Outcome.of(result)

    @property
    def session(self) -> Path:
        (only,) = (self.root / WORK_DIR_NAME).iterdir()
        return only

    def output(self, step: str) -> Path:
        return self.session / step / f"{step}.txt"

    def attempts(self, step: str) -> list[Path]:
        return sorted((self.session / ".attempts").glob(f"{step}.*"))


def latest_run_states() -> dict[str, StepState]:
    """Each step's state in the latest run of the latest session, from the real store."""
    with SqliteStateStore(store_path()) as store:
        workflow = store.latest_workflow()
        assert workflow is not None
        run = store.runs(workflow.id)[-1]
        return {step.process: step.state for step in store.steps(workflow.id, run.id)}


def assert_reran(outcome: Outcome, ran: Sequence[str], skipped: Sequence[str]) -> None:
    """Exactly `ran` ran and `skipped` were skipped, in the output and in the store alike."""
    assert outcome.result.returncode == 0, outcome
    assert outcome.ran == list(ran), outcome
    assert outcome.skipped == list(skipped), outcome
    states = latest_run_states()
    expected = {name: StepState.SUCCEEDED for name in ran}
    expected.update({name: StepState.SKIPPED for name in skipped})
    assert states == expected


def first_run(project: Project) -> Outcome:
    outcome = project.run(resume=False)
    assert outcome.result.returncode == 0, outcome
    assert not any(outcome.reasons.values()), outcome  # reasons are shown with --explain only
    return outcome


def size(path: Path) -> int:
    return path.stat().st_size


STEPS = [f"step{i}" for i in range(1, 6)]


# --- each component of the cache key -------------------------------------------------------


def test_resume_unchanged_session_skips_every_step(tmp_path: Path) -> None:
    project = Project(tmp_path / "p", chain_program())
    first_run(project)
    again = project.run()
    assert_reran(again, [], STEPS)
    assert all(again.reasons[s] == "up to date (from run 1)" for s in STEPS), again
    assert project.output("step5").read_text() == INPUT + "".join(f"{s}\n" for s in STEPS)


def test_resume_script_edit_reruns_that_step_and_its_consumers(tmp_path: Path) -> None:
    project = Project(tmp_path / "p", chain_program())
    first_run(project)
    before = {s: size(project.output(s)) for s in STEPS}
    old_script = (project.session / "step3" / ".maestro.sh").read_text().splitlines()

    project.write(chain_program(scripts={"step3": step_script("step3 edited")}))
    outcome = project.run()

    assert_reran(outcome, ["step3", "step4", "step5"], ["step1", "step2"])
    # The line of .maestro.sh (the script as it ran, shebang included) that first differs.
    assert outcome.reasons["step3"] == "script changed at line 4", outcome
    new_script = (project.session / "step3" / ".maestro.sh").read_text().splitlines()
    assert new_script[:3] == old_script[:3] and new_script[3] != old_script[3]
    assert new_script[3] == 'echo "step3 edited" >> "$out"'
    for producer, consumer in (("step3", "step4"), ("step4", "step5")):
        after = size(project.output(producer))
        assert after == before[producer] + len(" edited")
        expected = f"input {producer}/{producer}.txt changed: size {before[producer]}→{after}"
        assert outcome.reasons[consumer] == expected, outcome
    assert outcome.reasons["step1"] == outcome.reasons["step2"] == "up to date (from run 1)"


def test_resume_arg_change_reruns_the_steps_using_it_and_consumers_whose_input_changed(
    tmp_path: Path,
) -> None:
    """step2 and step4 use arg x; only step4 writes it into its output, so step3 stays skipped
    (step2 writes the same bytes again) while step5, which reads step4's output, reruns."""
    scripts = {
        "step2": step_script("step2", 'test -n "$x"'),
        "step4": step_script("step4", 'echo "x=$x" >> "$out"'),
    }
    program = chain_program(scripts=scripts, arg_steps=("step2", "step4"))
    project = Project(tmp_path / "p", program)
    first_run(project)
    assert project.output("step4").read_text().endswith("step4\nx=1\n")

    project.write(config=CONFIG.replace('x = "1"', 'x = "2"'))
    outcome = project.run()

    assert_reran(outcome, ["step2", "step4", "step5"], ["step1", "step3"])
    assert outcome.reasons["step2"] == "arg x changed: '1' → '2'", outcome
    assert outcome.reasons["step4"] == "arg x changed: '1' → '2'", outcome
    # Same size, other bytes: decided by the content hash.
    assert outcome.reasons["step5"] == "input step4/step4.txt changed: content modified", outcome
    assert outcome.reasons["step3"] == "up to date (from run 1)", outcome
    assert project.output("step5").read_text().endswith("step4\nx=2\nstep5\n")


def test_resume_input_file_change_reruns_its_reader_and_every_consumer(tmp_path: Path) -> None:
    project = Project(tmp_path / "p", chain_program())
    first_run(project)
    data = project.root / "data" / "x.txt"
    data.write_text("hello, a longer line\n")

    outcome = project.run()

    assert_reran(outcome, STEPS, [])
    expected = f"input data/x.txt changed: size {len(INPUT)}→{size(data)}"
    assert outcome.reasons["step1"] == expected, outcome
    assert outcome.reasons["step2"].startswith("input step1/step1.txt changed: size "), outcome

    data.write_text("HELLO, A LONGER LINE\n")  # same size, other content
    same_size = project.run()
    assert_reran(same_size, STEPS, [])
    assert same_size.reasons["step1"] == "input data/x.txt changed: content modified", same_size


def test_resume_touched_or_rewritten_files_rerun_nothing(tmp_path: Path) -> None:
    """Content hashes decide when mtimes change: same bytes, nothing reruns."""
    project = Project(tmp_path / "p", chain_program())
    first_run(project)
    data = project.root / "data" / "x.txt"
    later = data.stat().st_mtime_ns + 5_000_000_000
    os.utime(data, ns=(later, later))
    middle = project.output("step2")
    middle.write_bytes(middle.read_bytes())  # an output rewritten with the same bytes
    os.utime(middle, ns=(later, later))
    assert data.stat().st_mtime_ns == later

    outcome = project.run()

    assert_reran(outcome, [], STEPS)


def test_resume_executor_change_reruns_the_steps_on_it_and_their_consumers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """step2 runs on executor `mod`, which loads environment modules (a fake module system
    records what was loaded in $LOADED, and step2 writes that into its output)."""
    modules_home = tmp_path / "fake_modules"
    (modules_home / "init").mkdir(parents=True)
    (modules_home / "init" / "bash").write_text('module() { shift; export LOADED="$*"; }\n')
    monkeypatch.setenv("MODULESHOME", str(modules_home))
    monkeypatch.delenv("BASH_FUNC_module%%", raising=False)
    scripts = {"step2": step_script("step2", 'echo "loaded $LOADED" >> "$out"')}
    program = chain_program(scripts=scripts, executors={"step2": "mod"})
    project = Project(tmp_path / "p", program)
    first_run(project)
    assert project.output("step2").read_text().endswith("loaded tool/1.0\n")

    # How inputs are staged is not part of the key: the results cannot differ.
    copying = CONFIG.replace("modules =", 'staging_mode = "Copy"\nmodules =')
    project.write(config=copying)
    assert_reran(project.run(), [], STEPS)

    project.write(config=CONFIG.replace("tool/1.0", "tool/2.0"))
    outcome = project.run()

    assert_reran(outcome, ["step2", "step3", "step4", "step5"], ["step1"])
    reason = outcome.reasons["step2"]
    assert reason.startswith("executor changed: "), outcome
    assert "tool/1.0" in reason and "tool/2.0" in reason, outcome
    assert outcome.reasons["step3"] == "input step2/step2.txt changed: content modified"
    assert project.output("step2").read_text().endswith("loaded tool/2.0\n")


def test_resume_producer_rerun_with_identical_output_does_not_rerun_consumers(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path / "p", chain_program())
    first_run(project)
    recorded = project.output("step2").stat().st_mtime_ns

    # A no-op inserted at line 3 of step2's script: it reruns and writes the same bytes.
    noop = step_script("step2").replace("set -eu", "set -eu\n: a no-op")
    project.write(chain_program(scripts={"step2": noop}))
    outcome = project.run()

    assert_reran(outcome, ["step2"], ["step1", "step3", "step4", "step5"])
    assert outcome.reasons["step2"] == "script changed at line 3", outcome
    assert project.output("step2").stat().st_mtime_ns != recorded  # it was really rewritten
    assert all(outcome.reasons[s] == "up to date (from run 1)" for s in STEPS[2:]), outcome
    # And the next resume still skips them (step3 compares its input by content again).
    assert_reran(project.run(), [], STEPS)


EDITED = "edited while step1 ran\n"


def test_resume_input_changed_while_its_step_ran_reruns_that_step(tmp_path: Path) -> None:
    """The input fingerprint is the one the step read: a file edited while the step ran (after
    it read it) must not let the stale output be reused."""
    script = "\n".join(
        [
            "set -eu",
            'cat "$src" > "$out"',
            'touch "$MAESTRO_WORKDIR/read"',
            "for _ in $(seq 500); do [ -e ../../../go ] && break; sleep 0.02; done",
            'echo "step1" >> "$out"',
        ]
    )
    project = Project(tmp_path / "p", chain_program(2, scripts={"step1": script}))
    child = subprocess.Popen(
        [sys.executable, str(project.root / "workflow.py")],
        cwd=project.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: any(project.root.glob("maestro_work/*/step1/read")), what="step1 read")
        (project.root / "data" / "x.txt").write_text(EDITED)
        (project.root / "go").touch()
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert project.output("step1").read_text() == INPUT + "step1\n"  # made from the old input

    outcome = project.run()

    assert_reran(outcome, ["step1", "step2"], [])
    expected = f"input data/x.txt changed: size {len(INPUT)}→{len(EDITED)}"
    assert outcome.reasons["step1"] == expected, outcome
    assert project.output("step2").read_text() == EDITED + "step1\nstep2\n"


# --- outputs deleted or modified -----------------------------------------------------------


def test_resume_deleted_output_reruns_its_step_but_not_consumers_of_the_same_bytes(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path / "p", chain_program())
    first_run(project)
    project.output("step2").unlink()

    outcome = project.run()

    assert_reran(outcome, ["step2"], ["step1", "step3", "step4", "step5"])
    assert outcome.reasons["step2"] == "output step2/step2.txt is missing", outcome
    assert project.output("step2").read_text() == INPUT + "step1\nstep2\n"


def test_resume_deleted_output_reruns_consumers_when_the_new_output_differs(
    tmp_path: Path,
) -> None:
    """step2 also reads an undeclared file (so changing it alone reruns nothing); once its
    output is deleted it reruns, its new output differs, and so its consumers rerun."""
    scripts = {"step2": step_script("step2", 'cat ../../../data/hidden.txt >> "$out"')}
    project = Project(tmp_path / "p", chain_program(scripts=scripts))
    (project.root / "data" / "hidden.txt").write_text("v1\n")
    first_run(project)
    before = size(project.output("step2"))
    (project.root / "data" / "hidden.txt").write_text("version 2\n")
    assert_reran(project.run(), [], STEPS)  # undeclared: invisible to the cache key

    project.output("step2").unlink()
    outcome = project.run()

    assert_reran(outcome, ["step2", "step3", "step4", "step5"], ["step1"])
    assert outcome.reasons["step2"] == "output step2/step2.txt is missing", outcome
    after = size(project.output("step2"))
    expected = f"input step2/step2.txt changed: size {before}→{after}"
    assert outcome.reasons["step3"] == expected, outcome
    assert project.output("step5").read_text().endswith("step2\nversion 2\nstep3\nstep4\nstep5\n")


def test_resume_modified_output_reruns_its_step(tmp_path: Path) -> None:
    project = Project(tmp_path / "p", chain_program())
    first_run(project)
    output = project.output("step2")
    original = output.read_text()
    with output.open("a") as handle:
        handle.write("!")

    outcome = project.run()

    assert_reran(outcome, ["step2"], ["step1", "step3", "step4", "step5"])
    expected = f"output step2/step2.txt changed: size {len(original)}→{len(original) + 1}"
    assert outcome.reasons["step2"] == expected, outcome
    assert output.read_text() == original  # rewritten: step3's recorded input matches again

    output.write_text(original.upper())  # same size, other bytes
    same_size = project.run()
    assert_reran(same_size, ["step2"], ["step1", "step3", "step4", "step5"])
    assert same_size.reasons["step2"] == "output step2/step2.txt changed: content modified"


# --- the failed attempt's files, crash safety, concurrent runs -------------------------------


def test_resume_keeps_the_failed_attempt_directory_under_attempts(tmp_path: Path) -> None:
    scripts = {
        "step3": step_script("step3").replace(
            "set -eu",
            'set -eu\nif [ -e ../../../bug ]; then echo "step3 hit the bug" >&2; exit 3; fi',
        )
    }
    project = Project(tmp_path / "p", chain_program(scripts=scripts))
    (project.root / "bug").touch()
    failed = project.run(resume=False)
    assert failed.result.returncode == 1, failed
    assert (project.session / "step3" / ".maestro.err").read_text() == "step3 hit the bug\n"

    (project.root / "bug").unlink()
    outcome = project.run()

    assert_reran(outcome, ["step3", "step4", "step5"], ["step1", "step2"])
    assert outcome.reasons["step3"] == "no earlier success in this session", outcome
    (kept,) = project.attempts("step3")
    assert kept.parent == project.session / ".attempts"
    assert (kept / ".maestro.err").read_text() == "step3 hit the bug\n"
    assert not (kept / "step3.txt").exists()
    assert (kept / ".maestro.sh").read_text() == (
        project.session / "step3" / ".maestro.sh"
    ).read_text()
    with SqliteStateStore(store_path()) as store:
        workflow = store.latest_workflow()
        assert workflow is not None
        first = store.runs(workflow.id)[0]
        (failed_step,) = [s for s in store.steps(workflow.id, first.id) if s.process == "step3"]
        assert (failed_step.state, failed_step.exit_code) == (StepState.FAILED, 3)
        # Its record follows its files, so `maestro logs` shows that attempt's stderr.
        assert failed_step.workdir == kept
        second = store.runs(workflow.id)[1]
        (rerun,) = [s for s in store.steps(workflow.id, second.id) if s.process == "step3"]
        assert rerun.workdir == project.session / "step3"
    # The new attempt started in a clean directory.
    assert (project.session / "step3" / ".maestro.err").read_text() == ""
    assert project.attempts("step1") == project.attempts("step4") == []


PARALLEL_PROGRAM = """
import concurrent.futures
import os
import pathlib
import time

import libmaestro as maestro


@maestro.main
def main():
    # Wait until every run of the test has opened its session: their writes really overlap.
    sync = pathlib.Path(os.environ["SYNC_DIR"])
    (sync / str(os.getpid())).touch()
    deadline = time.monotonic() + 20
    while len(list(sync.iterdir())) < int(os.environ["SYNC_COUNT"]):
        assert time.monotonic() < deadline, "the other run never started"
        time.sleep(0.01)

    def part(i):
        return maestro.process(
            name=f"part_{i:02d}",
            executor="default",
            args={"i": i},
            outputs={"out": "out.txt"},
            script='echo "$i" > "$out"',
        )

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        done = list(pool.map(part, range(30)))
    print(len(done))


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("layout", ["two_projects", "one_project_twice"])
def test_resume_store_two_runs_at_once_record_every_step(tmp_path: Path, layout: str) -> None:
    roots = [tmp_path / "a", tmp_path / "b"] if layout == "two_projects" else [tmp_path / "a"] * 2
    for root in roots:
        root.mkdir(exist_ok=True)
        (root / "workflow.py").write_text(PARALLEL_PROGRAM)
        (root / "Maestro.toml").write_text('[executor.default]\ntype = "Local"\n')
    sync = tmp_path / "sync"
    sync.mkdir()
    env = {**os.environ, "SYNC_DIR": str(sync), "SYNC_COUNT": "2"}
    # The store exists already, as it does for every run but a user's very first: two
    # processes creating a new store at once can still collide (reported, libmaestro/state).
    with SqliteStateStore(store_path()) as store:
        assert store.list_workflows() == []
    children = [
        subprocess.Popen(
            [sys.executable, str(root / "workflow.py")],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for root in roots
    ]
    results = [child.communicate(timeout=60) for child in children]
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
        assert out == "30\n"
        assert "locked" not in err and "Traceback" not in err, err

    with SqliteStateStore(store_path()) as store:
        workflows = [summary.workflow for summary in store.list_workflows()]
        assert len(workflows) == 2
        assert len({w.session for w in workflows}) == 2
        runs = [store.runs(w.id) for w in workflows]
        assert [[r.state.value for r in rs] for rs in runs] == [["succeeded"], ["succeeded"]]
        (first,), (second,) = runs
        assert first.ended_at is not None and second.ended_at is not None
        assert first.started_at < second.ended_at and second.started_at < first.ended_at
        steps = [s for w in workflows for s in store.steps(w.id)]
        assert len(steps) == 60
        assert all(s.state is StepState.SUCCEEDED for s in steps), [
            (s.process, s.state, s.reason, s.error)
            for s in steps
            if s.state is not StepState.SUCCEEDED
        ]
        for w in workflows:
            assert sorted(s.process for s in store.steps(w.id)) == [
                f"part_{i:02d}" for i in range(30)
            ]
            rollup = store.rollup(w.id)
            assert rollup.all_succeeded and rollup.total == 30
            assert rollup.groups == {"part": {StepState.SUCCEEDED: 30}}
    with closing(sqlite3.connect(store_path())) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


RUNNING_STEP2 = {"step1": StepState.SUCCEEDED, "step2": StepState.RUNNING}


def test_resume_after_sigkill_reruns_only_the_steps_that_had_not_succeeded(
    tmp_path: Path,
) -> None:
    """The workflow process is SIGKILLed while step2 runs; the next start finds its run
    interrupted (its pid is gone) and --resume reruns step2 and step3 only."""
    token = f"{300 + os.getpid() % 600}.{time.time_ns() % 10_000:04d}"
    scripts = {
        "step2": step_script("step2").replace(
            "set -eu", 'set -eu\ntouch "$MAESTRO_WORKDIR/started"\nsleep "$x"'
        )
    }
    project = Project(
        tmp_path / "p",
        chain_program(3, scripts=scripts, arg_steps=("step2",)),
        CONFIG.replace('x = "1"', f'x = "{token}"'),
    )
    child = subprocess.Popen(
        [sys.executable, str(project.root / "workflow.py")],
        cwd=project.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: any(project.root.glob("maestro_work/*/step2/started")), what="step2")
        wait_for(lambda: bool(processes_with(token)), what="step2's sleep")
        # Records are written in batches (libmaestro.history_writer.Writer): kill once step1's
        # success is committed, as it is a moment after it ends.
        wait_for(lambda: latest_run_states() == RUNNING_STEP2, what="step1 recorded")
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        for proc in processes_with(token):  # the job has its own session: not in our group
            proc.kill()
        wait_for(lambda: not processes_with(token), what="the leftover sleep to end")

    project.write(config=CONFIG)  # step2 must rerun anyway; now it is fast
    outcome = project.run()

    assert_reran(outcome, ["step2", "step3"], ["step1"])
    with SqliteStateStore(store_path()) as store:
        workflow = store.latest_workflow()
        assert workflow is not None
        assert [r.state.value for r in store.runs(workflow.id)] == ["interrupted", "succeeded"]
        first = store.runs(workflow.id)[0]
        killed = {s.process: s for s in store.steps(workflow.id, first.id)}
        assert killed["step1"].state is StepState.SUCCEEDED
        assert killed["step2"].state is StepState.ABORTED
        assert killed["step2"].reason == "INTERRUPTED"
        assert "step3" not in killed
        aggregated = {a.process: (a.state, a.attempt) for a in store.aggregated_steps(workflow.id)}
        assert aggregated == {
            "step1": (StepState.SUCCEEDED, 1),
            "step2": (StepState.SUCCEEDED, 2),
            "step3": (StepState.SUCCEEDED, 2),
        }
    (kept,) = project.attempts("step2")
    assert (kept / "started").exists()


def test_resume_that_skips_every_step_keeps_the_run_graph_edges(tmp_path: Path) -> None:
    # `maestro dag` draws the newest run: a resume that reused every step drew its nodes
    # without a single edge, as if nothing fed anything.
    project = Project(tmp_path / "p", chain_program(3))
    first_run(project)
    assert_reran(project.run(), [], ["step1", "step2", "step3"])
    found = find_run_graph(project.root)
    assert found is not None
    graph = load_graph(found)
    assert sorted(graph.edges) == [("step1", "step2"), ("step2", "step3")]
    assert {node.state for node in graph.nodes} == {NodeState.SKIPPED}
