"""`maestro run --background`, `maestro ps` and `maestro kill` on real detached workflows.

Every job sleeps for a unique duration (the token), so psutil finds exactly this test's
processes; whatever a failing test leaves behind is killed by PID afterwards.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import psutil
import pytest
from cli_helpers import shown
from helpers import kill_leftovers, processes_with, wait_for

from libmaestro.history import create_workflow, open_store
from libmaestro.state import RunState, StepState

Run = Callable[..., subprocess.CompletedProcess[str]]
LOCAL = '[executor.default]\ntype = "Local"\n'
PID = re.compile(r"pid (\d+)")
SESSION = re.compile(r"^session: (\w+)$", re.MULTILINE)


@pytest.fixture
def token() -> Iterator[str]:
    value = f"300.{uuid.uuid4().int % 10**9:09d}"
    yield value
    kill_leftovers(value)


@pytest.fixture
def background(maestro_process: Run) -> Iterator[Callable[..., tuple[int, str]]]:
    """`maestro run --background` in a project; the workflow is SIGKILLed by PID after the test."""
    pids: list[int] = []

    def start(project: Path, *args: str) -> tuple[int, str]:
        result = maestro_process("run", "--background", *args, cwd=project, timeout=30)
        assert result.returncode == 0, shown(result)
        pid = int(PID.findall(result.stdout)[0])
        pids.append(pid)
        session = SESSION.search(result.stdout)
        assert session, shown(result)
        return pid, session[1]

    yield start
    for pid in pids:
        with suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)
            for child in proc.children(recursive=True):
                with suppress(psutil.NoSuchProcess):
                    child.kill()
            proc.kill()


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def project(root: Path, body: str) -> Path:
    root.mkdir()
    (root / "Maestro.toml").write_text(LOCAL)
    source = f"import libmaestro as maestro\n\n\n@maestro.main\ndef main():\n{body}\n\nmain()\n"
    (root / "workflow.py").write_text(source)
    return root


def test_run_background_survives_parent_exit_and_sighup(tmp_path: Path, token: str) -> None:
    """The workflow should finish and write its output after its parent shell got SIGHUP."""
    root = project(
        tmp_path / "p",
        '    maestro.process(name="nap", executor="default", outputs={"o": "out.txt"},\n'
        '        script="sleep 1.5; echo done > $o")',
    )
    report = tmp_path / "report.txt"
    line = f"{shlex.quote(sys.executable)} -m maestro_cli run --background > {report}"
    # The parent shell stays (as a login shell would) until its terminal hangs up.
    shell = subprocess.Popen(
        ["bash", "-c", f"{line}; exec sleep {token}"], cwd=root, start_new_session=True
    )
    workflow_pid = 0
    try:
        wait_for(lambda: "stop it:" in report.read_text() if report.exists() else False)
        text = report.read_text()
        workflow_pid = int(PID.findall(text)[0])
        os.killpg(shell.pid, signal.SIGHUP)  # the terminal closes: the CLI's group gets SIGHUP
        shell.wait(timeout=5)
        wait_for(lambda: not _running(workflow_pid), timeout=20, what="the workflow to end")
        outputs = list((root / "maestro_work").glob("*/nap/out.txt"))
        assert [p.read_text() for p in outputs] == ["done\n"], text
        logs = re.findall(r"^std(?:out|err): (.+)$", text, re.MULTILINE)
        assert len(logs) == 2 and all(Path(p).is_file() for p in logs), text
        store = open_store()
        session = SESSION.search(text)
        assert session, text
        runs = store.runs(store.get_workflow(session[1]).id)
        assert [r.state for r in runs] == [RunState.SUCCEEDED]
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
        if workflow_pid:
            with suppress(psutil.NoSuchProcess):
                psutil.Process(workflow_pid).kill()


def test_kill_deep_tree_leaves_nothing_and_records_aborted(
    tmp_path: Path, token: str, background: Callable[..., tuple[int, str]], maestro_process: Run
) -> None:
    """bash -> bash -> sleep plus a child that ignores SIGTERM: none of them should survive."""
    script = (
        f"bash -c 'bash -c \\\"sleep {token}\\\"' & "
        f"bash -c 'trap \\\"\\\" TERM; sleep {token}' & wait"
    )
    root = project(
        tmp_path / "p", f'    maestro.process(name="deep", executor="default", script="{script}")'
    )
    pid, session = background(root)
    wait_for(lambda: len(processes_with(token)) >= 2, what="both sleeps to start")
    result = maestro_process("kill", session, "--timeout", "8", cwd=root)
    assert result.returncode == 0, shown(result)
    assert session in result.stdout
    assert processes_with(token) == []
    assert not _running(pid)
    store = open_store()
    workflow = store.get_workflow(session)
    assert [r.state for r in store.runs(workflow.id)] == [RunState.ABORTED]
    assert [s.state for s in store.steps(workflow.id)] == [StepState.ABORTED]
    again = maestro_process("kill", session, cwd=root)
    assert again.returncode == 0, shown(again)
    assert "already ended (aborted)" in again.stdout


FAN_OUT = """\
    release = {release!r}
    # The first two items to start finish at once, the others sleep until `release` exists:
    # which two come first is up to the scheduler, so a counter (under flock) decides.
    script = (
        'n=$(flock {counter} bash -c \\'n=$(cat {counter}.n 2>/dev/null || echo 0); '
        'echo $((n + 1)) > {counter}.n; echo $n\\'); '
        'if [ "$n" -ge 2 ] && [ ! -e {release} ]; then sleep {token}; fi; echo "$i" > "$o"'
    )

    def one(i):
        return maestro.process(name=f"part_{{i}}", executor="default", args={{"i": str(i)}},
                               outputs={{"o": "o.txt"}}, script=script)

    maestro.raise_failures(maestro.parallelize(range(6), one))"""


def test_kill_during_fan_out_then_resume_reruns_only_unfinished(
    tmp_path: Path, token: str, background: Callable[..., tuple[int, str]], maestro_process: Run
) -> None:
    release = tmp_path / "release"
    counter = tmp_path / "started"
    root = project(
        tmp_path / "p", FAN_OUT.format(release=str(release), counter=str(counter), token=token)
    )
    _, session = background(root, "--jobs", "2")
    wait_for(lambda: len(processes_with(token)) == 2, what="two items to sleep", timeout=20)
    store = open_store()
    workflow = store.get_workflow(session)

    def finished() -> set[str]:
        steps = store.steps(workflow.id)
        return {s.process for s in steps if s.state is StepState.SUCCEEDED}

    # The runner records a success shortly after the job ends (its writer batches commits).
    wait_for(lambda: len(finished()) == 2, what="the two finished items recorded")
    done = finished()
    result = maestro_process("kill", "--timeout", "8", cwd=root)  # the project's only run
    assert result.returncode == 0, shown(result)
    assert processes_with(token) == []
    states = {s.process: s.state for s in store.steps(workflow.id)}
    assert {p for p, s in states.items() if s is StepState.SUCCEEDED} == done
    assert all(s is StepState.ABORTED for p, s in states.items() if p not in done)
    release.touch()
    resumed = maestro_process("run", "--resume", cwd=root, timeout=60)
    assert resumed.returncode == 0, shown(resumed)
    skipped = set(re.findall(r"^maestro: skipped (\S+):", resumed.stderr, re.MULTILINE))
    ran = set(re.findall(r"^maestro: started (\S+) ", resumed.stderr, re.MULTILINE))
    assert skipped == done, shown(resumed)
    assert ran == {f"part_{i}" for i in range(6)} - done, shown(resumed)


def test_kill_refuses_a_run_on_another_host(maestro: Callable[..., Any]) -> None:
    store = open_store()
    workflow = create_workflow(
        store, session="far_away", project="p", entry=Path("w.py").resolve(), config_path=None
    )
    store.start_run(
        workflow.id,
        pid=os.getpid(),
        pid_start_time=psutil.Process().create_time(),
        host="elsewhere.example",
    )
    listed = maestro("ps")
    assert listed.exit_code == 0, listed.output
    assert "elsewhere.example (other host)" in listed.output
    result = maestro("kill", "far_away")
    assert result.exit_code == 2, result.output
    assert "elsewhere.example" in result.output
    assert store.runs(workflow.id)[0].state is RunState.RUNNING


def test_kill_pid_file_of_reused_pid_is_reported_stale(
    isolated_env: Path, token: str, maestro: Callable[..., Any]
) -> None:
    sleeper = subprocess.Popen(["sleep", token])
    try:
        directory = isolated_env / "maestro_work" / ".background"
        directory.mkdir(parents=True)
        started = psutil.Process(sleeper.pid).create_time() - 50
        (directory / f"{sleeper.pid}.json").write_text(
            f'{{"pid": {sleeper.pid}, "start_time": {started}, "host": "{socket.gethostname()}",'
            f' "command": ["x"], "cwd": ".", "stdout": "o", "stderr": "e"}}'
        )
        result = maestro("kill", str(sleeper.pid))
        assert result.exit_code == 0, result.output
        assert "stale PID file" in result.output
        assert sleeper.poll() is None
        assert not (directory / f"{sleeper.pid}.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
