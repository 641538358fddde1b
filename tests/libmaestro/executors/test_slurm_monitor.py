"""Tests for the Slurm status monitor: one batched query per poll, backoff, and how jobs end.

The monitor talks to a scripted client: a job that vanishes from squeue, one the scheduler
lost, or a scheduler that stops answering cannot be produced on demand on a real Slurm. The
client's own parsing is tested against stand-in commands in test_slurm_client.py.
"""

from __future__ import annotations

import itertools
import os
import shlex
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

import libmaestro.executors.slurm_monitor as slurm_monitor
from libmaestro import Process, ProcessError, SlurmExecutor
from libmaestro.config.model import SlurmConfig
from libmaestro.executors.slurm_client import JobStatus, SlurmClient, SlurmCommandError
from libmaestro.executors.slurm_monitor import SlurmMonitor
from libmaestro.executors.slurm_script import EXIT_FILE
from libmaestro.jobs import JobResult, JobState
from libmaestro.session import Session

# One answer of a status command: the jobs it reports (only those asked about are returned),
# or an error to raise.
Answer = Mapping[str, JobStatus] | SlurmCommandError


class ScriptedClient(SlurmClient):
    """Answers queue()/accounting() from scripts, one entry per call; the last one repeats."""

    def __init__(self, queue: Sequence[Answer], accounting: Sequence[Answer] = ({},)) -> None:
        super().__init__()
        self.queue_script = list(queue)
        self.accounting_script = list(accounting)
        self.queue_calls: list[tuple[float, list[str]]] = []  # (time.monotonic(), job ids)
        self.accounting_calls: list[list[str]] = []
        self.on_queue: Callable[[int], None] | None = None  # runs before answer n (0-based)
        self.finished = False
        self._lock = threading.Lock()

    def queue(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        with self._lock:
            index = len(self.queue_calls)
            self.queue_calls.append((time.monotonic(), list(job_ids)))
        if self.finished:
            return {}
        if self.on_queue is not None:
            self.on_queue(index)
        return self._answer(self.queue_script, index, job_ids)

    def accounting(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        with self._lock:
            index = len(self.accounting_calls)
            self.accounting_calls.append(list(job_ids))
        if self.finished:
            return {job: JobStatus(job, "CANCELLED") for job in job_ids}
        return self._answer(self.accounting_script, index, job_ids)

    def finish(self) -> None:
        """From now on every job is reported CANCELLED, so the monitor's thread ends."""
        self.finished = True

    @staticmethod
    def _answer(
        script: Sequence[Answer], index: int, job_ids: Sequence[str]
    ) -> dict[str, JobStatus]:
        answer = script[min(index, len(script) - 1)]
        if isinstance(answer, SlurmCommandError):
            raise answer
        return {job: status for job, status in answer.items() if job in job_ids}


class Harness:
    def __init__(self, root: Path, client: ScriptedClient, monitor: SlurmMonitor) -> None:
        self.root = root
        self.client = client
        self.monitor = monitor
        self.watched: list[str] = []

    def exit_file(self, job_id: str) -> Path:
        return self.root / job_id / EXIT_FILE

    def watch(self, job_id: str, exit_text: str | None = None) -> None:
        path = self.exit_file(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        if exit_text is not None:
            path.write_text(exit_text)
        self.watched.append(job_id)
        self.monitor.watch(job_id, path)

    def result(self, job_id: str, timeout: float = 20) -> JobResult:
        ended = self.monitor.wait_until(job_id, time.monotonic() + timeout)
        assert ended, f"job {job_id} did not end within {timeout} s"
        return self.monitor.wait(job_id)


MakeHarness = Callable[..., Harness]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[MakeHarness]:
    """`harness(queue=[...], accounting=[...], min_interval=0.01, max_interval=0.05)`."""
    made: list[Harness] = []

    def make(
        queue: Sequence[Answer],
        accounting: Sequence[Answer] = ({},),
        *,
        min_interval: float = 0.01,
        max_interval: float = 0.05,
    ) -> Harness:
        client = ScriptedClient(queue, accounting)
        monitor = SlurmMonitor(client, min_interval=min_interval, max_interval=max_interval)
        made.append(Harness(tmp_path / f"jobs{len(made)}", client, monitor))
        return made[-1]

    yield make
    for each in made:  # end every job, so no polling thread outlives its test
        each.client.finish()
        each.monitor.poll_soon()
        for job_id in each.watched:
            each.result(job_id)


def status(job_id: str, state: str, reason: str = "", exit_code: int | None = None) -> JobStatus:
    return JobStatus(job_id, state, reason, exit_code)


# --- how a job ended -----------------------------------------------------------------------


def test_slurm_monitor_completed_job_succeeds_with_times_from_its_exit_file(
    harness: MakeHarness,
) -> None:
    h = harness(
        queue=[{"1": status("1", "PENDING")}, {"1": status("1", "RUNNING")},
               {"1": status("1", "COMPLETED")}]
    )  # fmt: skip
    h.watch("1", "0 100.5 107.25\n")
    result = h.result("1")
    assert result.state is JobState.SUCCEEDED
    assert result.exit_code == 0
    assert (result.started_at, result.ended_at) == (100.5, 107.25)
    assert h.monitor.state_of("1") == "COMPLETED"


def test_slurm_monitor_failed_job_has_its_exit_code_and_reason(harness: MakeHarness) -> None:
    h = harness(queue=[{"1": status("1", "FAILED", "NonZeroExitCode")}])
    h.watch("1", "3 100.0 101.0\n")
    result = h.result("1")
    assert result.state is JobState.FAILED
    assert result.exit_code == 3
    assert result.reason == "FAILED (NonZeroExitCode)"


def test_slurm_monitor_timeout_without_exit_file_fails_without_exit_code(
    harness: MakeHarness,
) -> None:
    h = harness(queue=[{"1": status("1", "RUNNING")}, {"1": status("1", "TIMEOUT", "TimeLimit")}])
    h.watch("1")
    result = h.result("1")
    assert result.state is JobState.FAILED
    assert result.exit_code is None
    assert "TIMEOUT" in result.reason
    assert result.ended_at >= result.started_at > 0


def test_slurm_monitor_cancelled_job_is_cancelled(harness: MakeHarness) -> None:
    h = harness(queue=[{"1": status("1", "CANCELLED")}])
    h.watch("1")
    result = h.result("1")
    assert result.state is JobState.CANCELLED
    assert result.exit_code is None


def test_slurm_monitor_waits_briefly_for_a_late_exit_file(harness: MakeHarness) -> None:
    """On NFS the exit file can appear a poll or two after squeue says the job ended."""
    h = harness(queue=[{"1": status("1", "FAILED", "NonZeroExitCode")}])

    def write_late(index: int) -> None:
        if index == 2:
            h.exit_file("1").write_text("9 50.0 60.0\n")

    h.client.on_queue = write_late
    h.watch("1")
    result = h.result("1")
    assert (result.state, result.exit_code) == (JobState.FAILED, 9)
    assert (result.started_at, result.ended_at) == (50.0, 60.0)


@pytest.mark.parametrize(
    ("accounted", "expected"),
    [
        (status("1", "COMPLETED", exit_code=0), JobState.SUCCEEDED),
        (status("1", "OUT_OF_MEMORY", exit_code=None), JobState.FAILED),
        (status("1", "CANCELLED", exit_code=None), JobState.CANCELLED),
    ],
)
def test_slurm_monitor_job_gone_from_squeue_is_taken_from_accounting(
    harness: MakeHarness, accounted: JobStatus, expected: JobState
) -> None:
    h = harness(queue=[{"2": status("2", "RUNNING")}], accounting=[{"1": accounted}])
    h.watch("1")
    h.watch("2")
    result = h.result("1")
    assert result.state is expected
    if expected is JobState.FAILED:
        assert result.reason == "OUT_OF_MEMORY"
    # Only the job squeue no longer lists was looked up in the completion log.
    assert h.client.accounting_calls
    assert all(ids == ["1"] for ids in h.client.accounting_calls)
    assert h.monitor.state_of("2") == "RUNNING"


@pytest.mark.parametrize(("code", "expected"), [(0, JobState.SUCCEEDED), (4, JobState.FAILED)])
def test_slurm_monitor_job_forgotten_everywhere_ends_by_its_exit_file(
    harness: MakeHarness, code: int, expected: JobState
) -> None:
    h = harness(queue=[{}], accounting=[{}])
    h.watch("1", f"{code} 10.0 20.0\n")
    result = h.result("1")
    assert (result.state, result.exit_code) == (expected, code)
    assert (result.started_at, result.ended_at) == (10.0, 20.0)


def test_slurm_monitor_job_found_nowhere_is_lost_never_succeeded(harness: MakeHarness) -> None:
    h = harness(queue=[{"1": status("1", "RUNNING")}, {}], accounting=[{}])
    h.watch("1")
    result = h.result("1")
    assert result.state is JobState.LOST
    assert result.exit_code is None
    assert h.monitor.state_of("1") == "LOST"


@pytest.mark.parametrize("state", ["TIMEOUT", "CANCELLED", "NODE_FAIL"])
def test_slurm_monitor_job_that_did_not_complete_never_has_exit_code_zero(
    harness: MakeHarness, state: str
) -> None:
    # What SlurmClient.accounting makes of "1|TIMEOUT|0:0" or "1|CANCELLED by 0|0:15".
    h = harness(queue=[{}], accounting=[{"1": status("1", state, exit_code=0)}])
    h.watch("1")
    result = h.result("1")
    assert result.state is not JobState.SUCCEEDED
    assert result.exit_code != 0


# --- batching and backoff ------------------------------------------------------------------


def test_slurm_monitor_asks_about_all_jobs_in_one_query_per_poll(harness: MakeHarness) -> None:
    ids = [str(1000 + n) for n in range(25)]
    running = {job: status(job, "RUNNING") for job in ids}
    completed = {job: status(job, "COMPLETED") for job in ids}
    h = harness(queue=[running, running, running, completed], min_interval=0.05)
    for job in ids:
        h.exit_file(job).parent.mkdir(parents=True)
        h.exit_file(job).write_text("0 1.0 2.0\n")
    for job in ids:  # all within the first interval
        h.watch(job)
    assert all(h.result(job).state is JobState.SUCCEEDED for job in ids)
    calls = h.client.queue_calls
    assert len(calls) == 4  # one squeue per poll, not one per job
    assert sorted(calls[-1][1]) == sorted(ids)
    assert all(len(set(asked)) == len(asked) for _, asked in calls)
    assert h.client.accounting_calls == []  # squeue knew every job


def test_slurm_monitor_backs_off_while_nothing_changes(harness: MakeHarness) -> None:
    minimum, maximum, observed = 0.01, 0.04, 1.5
    h = harness(queue=[{"1": status("1", "RUNNING")}], min_interval=minimum, max_interval=maximum)
    h.watch("1")
    time.sleep(observed)
    times = [at for at, _ in h.client.queue_calls]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Polling at the minimum interval would have asked ~150 times.
    assert 5 <= len(times) < observed / minimum / 2
    late = statistics.median(gaps[-5:])
    assert late >= 3 * minimum  # the interval grew ...
    assert late < maximum + 0.1  # ... but not beyond the maximum (loosely: a loaded machine)


@pytest.mark.parametrize("how", ["a new job", "poll_soon"])
def test_slurm_monitor_polls_again_soon_after_a_submission_or_cancel(
    harness: MakeHarness, how: str
) -> None:
    h = harness(
        queue=[{"1": status("1", "RUNNING"), "2": status("2", "PENDING")}],
        min_interval=0.01,
        max_interval=5.0,
    )
    h.watch("1")
    time.sleep(1.2)  # quiet polls: the interval is now over half a second
    polls_before = len(h.client.queue_calls)
    asked = time.monotonic()
    if how == "a new job":
        h.watch("2")
    else:
        h.monitor.poll_soon()

    def polled_since() -> bool:
        return len(h.client.queue_calls) > polls_before

    deadline = time.monotonic() + 5
    while not polled_since() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert polled_since()
    at, ids = h.client.queue_calls[polls_before]
    assert at - asked < 0.35  # not the 0.5 s or more the backed-off interval had left
    if how == "a new job":
        assert "2" in ids


# --- when the scheduler does not answer ----------------------------------------------------


def test_slurm_monitor_retries_failed_status_commands(harness: MakeHarness) -> None:
    down = SlurmCommandError("slurm_load_jobs error: Unable to contact slurm controller")
    h = harness(queue=[down, down, down, {"1": status("1", "COMPLETED")}])
    h.watch("1", "0 1.0 2.0\n")
    result = h.result("1")
    assert result.state is JobState.SUCCEEDED
    assert len(h.client.queue_calls) == 4


def test_slurm_monitor_gives_up_on_a_silent_scheduler(
    harness: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slurm_monitor, "GIVE_UP_AFTER", 0.3)
    down = SlurmCommandError("slurm_load_jobs error: Unable to contact slurm controller")
    h = harness(queue=[down])
    h.watch("1", "0 1.0 2.0\n")  # even an exit file does not count while squeue is down
    result = h.result("1")
    assert result.state is JobState.LOST
    assert result.exit_code is None
    assert "Unable to contact slurm controller" in result.reason
    assert len(h.client.queue_calls) > 1  # it was retried before giving up
    assert h.client.queue_calls[-1][0] - h.client.queue_calls[0][0] >= 0.3


def test_slurm_monitor_later_jobs_get_the_full_retry_time_again(
    harness: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slurm_monitor, "GIVE_UP_AFTER", 0.3)
    down = SlurmCommandError("slurm_load_jobs error: Unable to contact slurm controller")
    h = harness(queue=[down])
    h.watch("1")
    assert h.result("1").state is JobState.LOST
    # The scheduler is back (sbatch worked for job 2); one squeue hiccup must not lose it.
    calls = len(h.client.queue_calls)
    h.client.queue_script = [down] * (calls + 1) + [{"2": status("2", "COMPLETED")}]
    h.watch("2", "0 1.0 2.0\n")
    assert h.result("2").state is JobState.SUCCEEDED


# --- through the runner, with stand-in Slurm commands ---------------------------------------


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Stand-in Slurm commands: sbatch answers job 4242 (after running the batch script to its
    end, with `run=True`), squeue has already forgotten the job, sacct prints `sacct_line`."""
    directory = tmp_path / "slurm-bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")

    def install(sacct_line: str, *, run: bool) -> None:
        job = 'bash "${@: -1}" > .maestro.out 2> .maestro.err\n' if run else ""
        scripts = {
            "sbatch": job + "echo 4242\n",
            "squeue": "echo 'slurm_load_jobs error: Invalid job id specified' >&2\nexit 1\n",
            "sacct": f"printf '%s\\n' {shlex.quote(sacct_line)}\n",
            "scancel": "true\n",
        }
        for name, body in scripts.items():
            path = directory / name
            path.write_text("#!/bin/bash\n" + body)
            path.chmod(0o755)

    return install


def test_slurm_monitor_failed_job_fails_the_process(
    session: Session, fake_slurm: Callable[..., None]
) -> None:
    fake_slurm("4242|FAILED|3:0", run=True)
    with pytest.raises(ProcessError) as caught:
        SlurmExecutor(SlurmConfig()).exe(
            Process(name="step", script="echo broken input >&2\nexit 3")
        )
    assert caught.value.process_exit_code == 3
    message = str(caught.value)
    assert "Slurm job 4242" in message
    assert "broken input" in message


def test_slurm_monitor_timed_out_job_fails_the_process(
    session: Session, fake_slurm: Callable[..., None]
) -> None:
    fake_slurm("4242|TIMEOUT|0:0", run=False)  # killed at its time limit: no exit file
    with pytest.raises(ProcessError):
        SlurmExecutor(SlurmConfig()).exe(Process(name="step", script="sleep 100000"))
