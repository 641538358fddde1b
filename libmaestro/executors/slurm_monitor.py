"""Watch every Slurm job of this program with one batched query per poll.

Asking the scheduler about each job separately is the classic way to hurt a cluster (a job
every few seconds times hundreds of jobs); here one thread asks `squeue` about all watched jobs
at once, and the interval between polls grows while nothing changes:

    after a submission or a change   min_interval (0.5 s)
    each quiet poll                  x1.5, up to max_interval (the executor's poll_interval)

A job squeue no longer lists is looked up in the completion log (`sacct -c`), then in the exit
file the job writes itself; a job found nowhere is LOST, never assumed to have succeeded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from libmaestro.errors import log_unexpected
from libmaestro.executors.slurm_client import JobStatus, SlurmClient, SlurmCommandError
from libmaestro.jobs import ExitRecord, JobResult, JobState

log = logging.getLogger(__name__)

MIN_INTERVAL = 0.5
DEFAULT_MAX_INTERVAL = 10.0
BACKOFF = 1.5
# A job that ended but whose exit file is not visible yet (NFS attribute caches on a real
# cluster) is asked about this many more times before its exit code is taken as unknown.
EXIT_FILE_POLLS = 3
# Status commands failing for this long mark the jobs lost: the scheduler is gone.
GIVE_UP_AFTER = 600.0

_SUCCESS = frozenset({"COMPLETED"})
_CANCELLED = frozenset({"CANCELLED", "REVOKED"})
_FAILED = frozenset(
    {"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
     "SPECIAL_EXIT"}
)  # fmt: skip
TERMINAL_STATES = _SUCCESS | _CANCELLED | _FAILED


@dataclass(slots=True)
class _Watched:
    job_id: str
    exit_file: Path
    submitted_at: float
    done: threading.Event = field(default_factory=threading.Event)
    result: JobResult | None = None
    exit_file_polls: int = 0
    last_state: str = "PENDING"


def read_local_file(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _result(
    watched: _Watched, status: JobStatus | None, now: float, record: ExitRecord | None
) -> JobResult:
    """The JobResult a terminal status (or none at all: lost) means."""
    started = record.started_at if record else watched.submitted_at
    ended = record.ended_at if record else now
    # Only a job that ran to its end has an exit code; a killed one's "0:15" is not status 0.
    ran_to_end = status is not None and status.state in _SUCCESS | {"FAILED"}
    exit_code = record.code if record else (status.exit_code if ran_to_end and status else None)
    if status is None:
        if record is None:
            return JobResult(JobState.LOST, None, started_at=started, ended_at=ended, reason="LOST")
        state = JobState.SUCCEEDED if record.code == 0 else JobState.FAILED
        return JobResult(state, record.code, started_at=started, ended_at=ended)
    if status.state in _SUCCESS and (exit_code in (0, None)):
        return JobResult(JobState.SUCCEEDED, 0, started_at=started, ended_at=ended)
    state = JobState.CANCELLED if status.state in _CANCELLED else JobState.FAILED
    reason = status.state
    if status.reason and status.reason not in {"None", status.state}:
        reason = f"{status.state} ({status.reason})"
    return JobResult(state, exit_code, started_at=started, ended_at=ended, reason=reason)


class SlurmMonitor:
    """One polling thread for all Slurm jobs of this program; `wait` blocks on its answers."""

    def __init__(
        self,
        client: SlurmClient,
        *,
        min_interval: float = MIN_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        read_file: Callable[[Path], str | None] = read_local_file,
    ) -> None:
        self.client = client
        self.read_file = read_file  # the exit files are on the submit host (maybe over SSH)
        self.min_interval = min_interval
        self.max_interval = max(max_interval, min_interval)
        self._watched: dict[str, _Watched] = {}
        self._cond = threading.Condition()
        self._interval = min_interval
        self._next_poll = 0.0
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None

    def watch(self, job_id: str, exit_file: Path) -> None:
        """Follow a just-submitted job; polling speeds up to see it start."""
        with self._cond:
            self._watched[job_id] = _Watched(job_id, exit_file, time.time())
            self._speed_up()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="maestro-slurm-monitor", daemon=True
                )
                self._thread.start()

    def wait(self, job_id: str) -> JobResult:
        with self._cond:
            watched = self._watched[job_id]
        watched.done.wait()  # kept afterwards: a cancelled job's result is read twice
        assert watched.result is not None
        return watched.result

    def wait_until(self, job_id: str, deadline: float) -> bool:
        """Wait for a job to end until `deadline` (time.monotonic); True if it ended."""
        with self._cond:
            watched = self._watched.get(job_id)
        if watched is None:
            return True
        return watched.done.wait(max(0.0, deadline - time.monotonic()))

    def state_of(self, job_id: str) -> str | None:
        """The last state polled for a watched job (for displays and tests)."""
        with self._cond:
            watched = self._watched.get(job_id)
            return watched.last_state if watched else None

    def poll_soon(self) -> None:
        """Ask again at the short interval (after a cancel, to see the jobs end quickly)."""
        with self._cond:
            self._speed_up()

    def _speed_up(self) -> None:
        self._interval = self.min_interval
        self._next_poll = min(self._next_poll or float("inf"), time.monotonic() + self.min_interval)
        self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    pending = [w for w in self._watched.values() if not w.done.is_set()]
                    if not pending:
                        self._thread = None
                        self._next_poll = 0.0
                        return
                    delay = self._next_poll - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
            try:
                changed = self._poll(pending)
            except Exception as exc:  # never let the thread die: every wait() would hang
                log_unexpected(log, "Slurm status poll failed")
                changed = self._command_failed(pending, f"{type(exc).__name__}: {exc}")
            with self._cond:
                slower = min(self._interval * BACKOFF, self.max_interval)
                self._interval = self.min_interval if changed else slower
                self._next_poll = time.monotonic() + self._interval

    def _poll(self, watched: Sequence[_Watched]) -> bool:
        """One round of status queries; True when any job changed state."""
        now = time.time()
        try:
            queued = self.client.queue([w.job_id for w in watched])
        except SlurmCommandError as exc:
            return self._command_failed(watched, str(exc))
        gone = [w for w in watched if w.job_id not in queued]
        accounted = {}
        if gone:
            try:
                accounted = self.client.accounting([w.job_id for w in gone])
            except SlurmCommandError as exc:
                # No completion log here (or not readable by this user): the jobs' own exit
                # files still say how they ended.
                log.info("sacct -c is not available (%s); using the jobs' exit files", exc)
        self._failing_since = None
        changed = False
        for item in watched:
            status = queued.get(item.job_id) or accounted.get(item.job_id)
            if status is not None and status.state not in TERMINAL_STATES:
                changed |= status.state != item.last_state
                item.last_state = status.state
                continue
            record = ExitRecord.parse(self.read_file(item.exit_file))
            if (
                status is not None
                and status.state in _SUCCESS | {"FAILED"}
                and record is None
                and item.exit_file_polls < EXIT_FILE_POLLS
            ):
                item.exit_file_polls += 1  # ended, but its exit file is not visible yet
                continue
            item.result = _result(item, status, now, record)
            item.last_state = status.state if status else "LOST"
            item.done.set()
            changed = True
        return changed

    def _command_failed(self, watched: Sequence[_Watched], error: str) -> bool:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        log.warning("Slurm status query failed (will retry): %s", error)
        if now - self._failing_since < GIVE_UP_AFTER:
            return False
        self._failing_since = None  # jobs watched from now on get the full time again
        # Lost to us, but maybe alive on the cluster: cancel them so none outlives the run.
        self.client.cancel([item.job_id for item in watched])
        for item in watched:
            item.result = JobResult(
                JobState.LOST, None, started_at=item.submitted_at, ended_at=time.time(),
                reason=f"LOST (the scheduler did not answer for {GIVE_UP_AFTER:.0f} s: {error})",
            )  # fmt: skip
            item.done.set()
        return True
