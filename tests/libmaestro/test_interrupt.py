"""Ctrl-C and SIGTERM on a real workflow program: it exits 130 and leaves no process behind.

Each program's jobs run `sleep` with a unique duration (the token), so the test finds exactly
its own processes with psutil, whatever else runs on the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import kill_leftovers, processes_with, wait_for

# A job tree that ignores politeness: two plain sleeps (one in the background), and a child that
# traps and ignores SIGTERM, so only SIGKILL of the whole tree stops everything.
STUBBORN_SCRIPT = """
    bash -c 'sleep "$1" & sleep "$1"; wait' sleeper "$token" &
    bash -c 'trap "" TERM; sleep "$1"' stubborn "$token" &
    touch "$marker"
    wait
"""

SEQUENTIAL_PROGRAM = f'''
import sys
import libmaestro

@libmaestro.main
def main():
    token, marker = sys.argv[1], sys.argv[2]
    libmaestro.process(
        executor=libmaestro.LocalExecutor(),
        name="stubborn",
        args={{"token": token, "marker": marker}},
        script="""{STUBBORN_SCRIPT}""",
    )
    print("main returned", flush=True)

main()
'''

FAN_OUT_PROGRAM = '''
import concurrent.futures
import sys
import libmaestro

@libmaestro.main
def main():
    token, markers = sys.argv[1], sys.argv[2]
    executor = libmaestro.LocalExecutor()

    def one(index):
        return libmaestro.process(
            executor=executor,
            name=f"part_{index}",
            args={"token": token, "marker": f"{markers}/started_{index}"},
            script="""
                touch "$marker"
                bash -c 'trap "" TERM; sleep "$1"' stubborn "$token" &
                sleep "$token"
            """,
        )

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(4)))
    print("main returned", flush=True)

main()
'''

EXIT_INTERRUPTED = 130
# The session's grace period before SIGKILL is 3 s; allow generously for a loaded machine.
EXIT_DEADLINE = 12.0


@pytest.fixture
def token() -> Iterator[str]:
    """A unique `sleep` duration that marks this test's processes; leftovers are killed after."""
    value = f"300.{uuid.uuid4().int % 10**9:09d}"
    yield value
    kill_leftovers(value)


@pytest.fixture
def start_program(
    tmp_path: Path, isolated_env: Path
) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start a workflow program in its own process group, as a shell starts a foreground job."""
    started: list[subprocess.Popen[str]] = []

    def start(source: str, *args: str) -> subprocess.Popen[str]:
        program = tmp_path / "workflow.py"
        program.write_text(source)
        proc = subprocess.Popen(
            [sys.executable, str(program), *args],
            cwd=isolated_env,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, float]:
    """Wait for the program to end; returns its exit code, its output and how long it took."""
    began = time.monotonic()
    try:
        stdout, stderr = proc.communicate(timeout=EXIT_DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(
            f"program did not exit within {EXIT_DEADLINE}s of the signal\n"
            f"stdout:\n{stdout}\nstderr:\n{stderr}"
        ) from None
    output = f"exit {proc.returncode}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    return proc.returncode, output, time.monotonic() - began


def assert_no_leftovers(token: str) -> None:
    # SIGKILL is delivered asynchronously: give the kernel a moment, not a fixed sleep.
    try:
        wait_for(lambda: not processes_with(token), timeout=3, what="the jobs to disappear")
    except AssertionError:
        left = [" ".join(p.info["cmdline"] or ()) for p in processes_with(token)]
        raise AssertionError(f"processes left behind: {left}") from None


def start_stubborn(
    start_program: Callable[..., subprocess.Popen[str]], token: str, tmp_path: Path
) -> subprocess.Popen[str]:
    marker = tmp_path / "started"
    proc = start_program(SEQUENTIAL_PROGRAM, token, str(marker))
    wait_for(lambda: marker.exists() or proc.poll() is not None, what="the job to start")
    assert proc.poll() is None, finish(proc)[1]
    wait_for(lambda: len(processes_with(token)) >= 3, what="all three sleeps to start")
    return proc


def test_interrupt_sigint_to_group_stops_whole_tree(
    start_program: Callable[..., subprocess.Popen[str]], token: str, tmp_path: Path
) -> None:
    """Ctrl-C (SIGINT to the foreground process group) should stop every job and exit 130."""
    proc = start_stubborn(start_program, token, tmp_path)
    os.killpg(proc.pid, signal.SIGINT)
    code, output, took = finish(proc)
    assert code == EXIT_INTERRUPTED, output
    assert took < 8, output  # the grace period before SIGKILL is 3 s
    assert "interrupted; stopped 1 running process(es)" in output
    assert "main returned" not in output
    assert "Traceback" not in output
    assert_no_leftovers(token)


def test_interrupt_sigterm_to_program_stops_whole_tree(
    start_program: Callable[..., subprocess.Popen[str]], token: str, tmp_path: Path
) -> None:
    """SIGTERM to the program alone (as `kill PID` does) should stop every job and exit 130."""
    proc = start_stubborn(start_program, token, tmp_path)
    os.kill(proc.pid, signal.SIGTERM)
    code, output, _ = finish(proc)
    assert code == EXIT_INTERRUPTED, output
    assert "interrupted" in output
    assert "Traceback" not in output
    assert_no_leftovers(token)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_fan_out_starts_nothing_new_and_leaves_no_orphans(
    start_program: Callable[..., subprocess.Popen[str]],
    token: str,
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    """With 2 of 4 processes running in a thread pool, a signal should start none of the rest."""
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = start_program(FAN_OUT_PROGRAM, token, str(markers))

    def started() -> int:
        return len(list(markers.iterdir()))

    wait_for(lambda: started() >= 2 or proc.poll() is not None, what="two processes to start")
    assert proc.poll() is None, finish(proc)[1]
    wait_for(lambda: len(processes_with(token)) >= 4, what="both jobs' sleeps to start")
    if sig is signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    code, output, _ = finish(proc)
    assert code == EXIT_INTERRUPTED, output
    assert started() == 2, f"{started()} processes started\n{output}"
    assert "interrupted; stopped 2 running process(es)" in output
    assert "main returned" not in output
    assert "Traceback" not in output
    assert_no_leftovers(token)
