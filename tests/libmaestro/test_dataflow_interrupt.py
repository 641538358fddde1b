"""Ctrl-C and SIGTERM during a `parallelize` fan-out, and failures shown while it runs.

Real workflow programs run in their own process group, as a shell runs a foreground job. Their
processes run `sleep` with a unique duration (the token), so psutil finds exactly this test's
processes whatever else runs on the machine; each writes a marker file when it starts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from helpers import kill_leftovers, processes_with, wait_for

EXIT_INTERRUPTED = 130
# The session's grace period before SIGKILL is 3 s; allow generously for a loaded machine.
EXIT_DEADLINE = 12.0

# Before the fan-out that is interrupted, a first one leaves 2 processes done and 1 failed, so
# the display has something of each kind to report. Each of the 8 slow items starts a child
# that ignores SIGTERM (with "stubborn"), so only SIGKILL of the whole tree stops it.
FAN_OUT_PROGRAM = '''
import sys
import libmaestro as maestro

local = maestro.LocalExecutor()
token, markers, stubborn = sys.argv[1], sys.argv[2], sys.argv[3] == "stubborn"


def quick(label):
    return maestro.process(
        executor=local,
        name=label,
        args={"label": label},
        script='[ "$label" != bad ] || { echo "no reads in $label" >&2; exit 1; }',
    )


def slow(index):
    return maestro.process(
        executor=local,
        name=f"part_{index}",
        args={"token": token, "marker": f"{markers}/started_{index}", "stubborn": int(stubborn)},
        script="""
            touch "$marker"
            if [ "$stubborn" = 1 ]; then bash -c 'trap "" TERM; sleep "$1"' stubborn "$token" & fi
            sleep "$token"
        """,
    )


@maestro.main
def main():
    first = maestro.parallelize(["ok_1", "ok_2", "bad"], quick)
    print("first fan-out:", [type(r).__name__ for r in first], flush=True)
    rest = maestro.parallelize(range(8), slow)
    maestro.raise_failures([*first, *rest])
    print("main returned", flush=True)


main()
'''

# "bad" fails at once; the slow items wait for the test's go-ahead file (at most 10 s).
FAILURE_PROGRAM = '''
import sys
import libmaestro as maestro

local = maestro.LocalExecutor()
go = sys.argv[1]


def step(label):
    return maestro.process(
        executor=local,
        name=label,
        args={"label": label, "go": go},
        script="""
            if [ "$label" = bad ]; then echo "reference genome not found" >&2; exit 2; fi
            for _ in $(seq 1000); do [ -e "$go" ] && break; sleep 0.01; done
            [ -e "$go" ]
        """,
    )


@maestro.main
def main():
    maestro.raise_failures(maestro.parallelize(["slow_1", "bad", "slow_2"], step), what="steps")


main()
'''


class Program:
    """A workflow program started in its own session; its output is collected line by line."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self.popen = popen
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in (
                (popen.stdout, self.stdout_lines),
                (popen.stderr, self.stderr_lines),
            )
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str] | None, lines: list[str]) -> None:
        assert stream is not None
        for line in stream:
            lines.append(line.rstrip("\n"))  # noqa: PERF401  # read by the test while it grows

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        stdout, stderr = "\n".join(self.stdout_lines), "\n".join(self.stderr_lines)
        return f"exit {self.popen.returncode}\nstdout:\n{stdout}\nstderr:\n{stderr}"

    def finish(self) -> tuple[int, float]:
        """Wait for the program to end; returns its exit code and how long that took."""
        began = time.monotonic()
        try:
            code = self.popen.wait(timeout=EXIT_DEADLINE)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(
                f"program did not exit within {EXIT_DEADLINE}s\n{self.output()}"
            ) from None
        took = time.monotonic() - began
        for reader in self._readers:
            reader.join(5)
        return code, took

    def close(self) -> None:
        if self.running:
            self.popen.kill()
        self.popen.wait()
        for reader in self._readers:
            reader.join(5)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def token() -> Iterator[str]:
    """A unique `sleep` duration that marks this test's processes; leftovers are killed after."""
    value = f"300.{uuid.uuid4().int % 10**9:09d}"
    yield value
    kill_leftovers(value)


@pytest.fixture
def start_program(tmp_path: Path, isolated_env: Path) -> Iterator[Callable[..., Program]]:
    """Start a workflow program with MAESTRO_PLAIN=1 (from isolated_env) in its own group."""
    started: list[Program] = []

    def start(source: str, *args: str, jobs: int) -> Program:
        program = tmp_path / "workflow.py"
        program.write_text(source)
        popen = subprocess.Popen(
            [sys.executable, str(program), *args],
            cwd=isolated_env,
            env={**os.environ, "MAESTRO_JOBS": str(jobs)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(Program(popen))
        return started[-1]

    yield start
    for program in started:
        program.close()


def assert_no_leftovers(token: str) -> None:
    # SIGKILL is delivered asynchronously: give the kernel a moment, not a fixed sleep.
    try:
        wait_for(lambda: not processes_with(token), timeout=3, what="the jobs to disappear")
    except AssertionError:
        left = [" ".join(p.info["cmdline"] or ()) for p in processes_with(token)]
        raise AssertionError(f"processes left behind: {left}") from None


def interrupt_fan_out(
    start_program: Callable[..., Program],
    token: str,
    markers: Path,
    sig: signal.Signals,
    *,
    stubborn: bool,
) -> tuple[Program, int, float]:
    """Start FAN_OUT_PROGRAM with 2 slots, wait until 2 slow items run, then send `sig`."""
    markers.mkdir()
    program = start_program(
        FAN_OUT_PROGRAM, token, str(markers), "stubborn" if stubborn else "polite", jobs=2
    )
    wait_for(
        lambda: len(list(markers.iterdir())) >= 2 or not program.running,
        timeout=20,
        what="two slow items to start",
    )
    assert program.running, program.output()
    per_item = 2 if stubborn else 1
    wait_for(lambda: len(processes_with(token)) >= 2 * per_item, what="their sleeps to start")
    if sig is signal.SIGINT:
        os.killpg(program.popen.pid, sig)  # Ctrl-C: the whole foreground group
    else:
        os.kill(program.popen.pid, sig)  # `kill PID`: the program alone
    code, took = program.finish()
    return program, code, took


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_during_parallelize_stops_everything_and_reports(
    start_program: Callable[..., Program], token: str, tmp_path: Path, sig: signal.Signals
) -> None:
    """A signal during a fan-out should stop both running trees, start none of the other 6
    items, report what finished/failed/was interrupted, and exit 130 within seconds."""
    markers = tmp_path / "markers"
    program, code, took = interrupt_fan_out(start_program, token, markers, sig, stubborn=True)
    output = program.output()

    assert code == EXIT_INTERRUPTED, output
    assert took < 8, output  # the grace period before SIGKILL is 3 s
    assert len(list(markers.iterdir())) == 2, output  # nothing new started
    assert "first fan-out: ['ProcessOutputs', 'ProcessOutputs', 'ProcessError']" in output
    assert "main returned" not in output
    assert "Traceback" not in output
    lines = program.stderr_lines
    assert "maestro: done ok_1" in " ".join(lines), output
    assert any(re.match(r"maestro: bad failed \(exit code 1\); stderr: \S+", li) for li in lines)
    started = [li for li in lines if li.startswith("maestro: started part_")]
    assert len(started) == 2, output
    interrupted = [li for li in lines if re.match(r"maestro: part_\d failed \(interrupted\)", li)]
    assert len(interrupted) == 2, output
    assert re.search(
        r"session \w+ interrupted: 2 succeeded, 1 failed, 2 interrupted in [\d.]+s", output
    ), output
    assert any(
        line.startswith("maestro: error: interrupted; stopped 2 running process(es)")
        for line in lines
    ), output
    assert_no_leftovers(token)


def test_interrupt_during_parallelize_reports_items_never_started(
    start_program: Callable[..., Program], token: str, tmp_path: Path
) -> None:
    """The final report should say that 6 items of the fan-out never started."""
    markers = tmp_path / "markers"
    program, code, _ = interrupt_fan_out(
        start_program, token, markers, signal.SIGINT, stubborn=False
    )
    output = program.output()
    assert code == EXIT_INTERRUPTED, output
    assert_no_leftovers(token)
    assert re.search(r"\b6\b[^\n]*(not started|never started|did not start|not run)", output), (
        output
    )


def test_failed_item_shows_its_log_path_while_siblings_still_run(
    start_program: Callable[..., Program], tmp_path: Path
) -> None:
    """The failure line, with the stderr log's path, should appear before the fan-out ends."""
    go = tmp_path / "go"
    program = start_program(FAILURE_PROGRAM, str(go), jobs=3)

    def failure_line() -> str | None:
        for line in program.stderr_lines:
            if line.startswith("maestro: bad failed"):
                return line
        return None

    wait_for(
        lambda: failure_line() is not None or not program.running,
        timeout=20,
        what="the failure line",
    )
    line = failure_line()
    assert line is not None, program.output()
    # Shown while its siblings are still running: they cannot end before `go` exists.
    assert program.running, program.output()
    assert not any(li.startswith("maestro: done") for li in program.stderr_lines)
    match = re.fullmatch(r"maestro: bad failed \(exit code 2\); stderr: (\S+)", line)
    assert match, line
    log = Path(match[1])
    assert log.name == ".maestro.err"
    assert log.read_text() == "reference genome not found\n"
    position = len(program.stderr_lines)

    go.touch()
    code, _ = program.finish()
    output = program.output()

    assert code == 1, output
    done = [i for i, li in enumerate(program.stderr_lines) if li.startswith("maestro: done slow_")]
    assert len(done) == 2, output
    assert min(done) >= position, output
    assert "1 of 3 steps failed" in output
    assert "process 'bad' failed with exit code 2" in output
    assert "reference genome not found" in output
