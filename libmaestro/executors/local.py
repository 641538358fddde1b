"""Run jobs as child processes of this program, each in its own session and process group."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from libmaestro._proctree import terminate_tree
from libmaestro.executors.base import Backend
from libmaestro.jobs import JobHandle, JobResult, JobSpec, JobState

_EXEC_ATTEMPTS = 20
# The job's stdout and stderr: created (or emptied) like `open(path, "wb")`, never inherited.
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


class _DevNull:
    """One read-only /dev/null descriptor for every job's stdin, opened on first use.

    `subprocess.DEVNULL` opens and closes /dev/null for every job; a job only needs a descriptor
    to duplicate. Close-on-exec, so no job inherits it beyond its own stdin. A forked copy of
    this program closes the inherited one and opens its own when it needs one.
    """

    def __init__(self) -> None:
        self._fd: int | None = None
        self._lock = threading.Lock()

    def fileno(self) -> int:
        fd = self._fd
        if fd is not None:
            return fd
        with self._lock:
            if self._fd is None:
                self._fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            return self._fd

    def forget(self) -> None:
        """In a forked child: drop the parent's descriptor, open a new one on first use."""
        fd, self._fd = self._fd, None
        self._lock = threading.Lock()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


_DEVNULL = _DevNull()
os.register_at_fork(after_in_child=_DEVNULL.forget)


@dataclass(slots=True)
class _Running:
    popen: subprocess.Popen[bytes]
    started_at: float


class LocalBackend(Backend):
    """Jobs are local processes; `backend_id` is `"pid:start time"`.

    A child's PID cannot be reused before it is reaped, and this backend reaps it only in
    `wait`, so while a job is known here its PID is its own: the kernel's record of its start
    (which `terminate_tree` checks) is read only when it is cancelled. Reading it at start costs
    about a millisecond per job, as /proc blocks while the child is still exec'ing.

    Each job gets its own session (`setsid`), so Ctrl-C at the terminal reaches the orchestrator
    only; the orchestrator then stops every job's whole tree itself, which is what lets it report
    what was running and leave no orphans behind.
    """

    def __init__(self, executor_name: str = "local") -> None:
        self.executor_name = executor_name
        self._running: dict[str, _Running] = {}
        # The termination under way for each job being cancelled. Two callers may cancel one job
        # at once (the runner's waiting thread on Ctrl-C, and the session's stop); the second
        # must wait for the first termination, not start its own: by then the job's root may be
        # a zombie whose children are out of reach, and a fresh terminate_tree would SIGKILL the
        # process group at once, cutting the first one's grace period short.
        self._cancelling: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, spec: JobSpec) -> JobHandle:
        # Plain descriptors rather than file objects: the job only needs them to be duplicated.
        out = os.open(spec.stdout, _LOG_FLAGS, 0o666)
        try:
            err = os.open(spec.stderr, _LOG_FLAGS, 0o666)
            try:
                popen = self._spawn(spec, out, err)
            finally:
                os.close(err)
        finally:
            os.close(out)
        started_at = time.time()
        backend_id = f"{popen.pid}:{started_at:.3f}"
        with self._lock:
            self._running[backend_id] = _Running(popen, started_at)
        return JobHandle(self.executor_name, backend_id)

    def _spawn(self, spec: JobSpec, out: int, err: int) -> subprocess.Popen[bytes]:
        for attempt in range(_EXEC_ATTEMPTS):
            try:
                return subprocess.Popen(
                    spec.argv,
                    cwd=spec.workdir,
                    env=spec.env,
                    stdin=_DEVNULL.fileno(),
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                # "Text file busy": another thread forked while this job's script was still
                # open for writing, and its child holds that descriptor until it execs. The
                # runner avoids this by starting a local script's interpreter itself; a script
                # in a container or behind `module load` is still executed. The window is
                # microseconds; waiting a moment is the standard cure.
                if exc.errno != errno.ETXTBSY or attempt == _EXEC_ATTEMPTS - 1:
                    raise
                time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")  # the last attempt returned or raised

    def wait(self, handle: JobHandle) -> JobResult:
        with self._lock:
            running = self._running[handle.backend_id]
        popen = running.popen
        # os.wait4 instead of Popen.wait: the same reaping, plus the child's resource use.
        _, status, usage = os.wait4(popen.pid, 0)
        ended_at = time.time()
        popen.returncode = os.waitstatus_to_exitcode(status)
        with self._lock:
            self._running.pop(handle.backend_id, None)
        signal_number = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        return JobResult(
            state=JobState.SUCCEEDED if exit_code == 0 else JobState.FAILED,
            exit_code=exit_code,
            signal=signal_number,
            started_at=running.started_at,
            ended_at=ended_at,
            max_rss_kib=usage.ru_maxrss,
            user_seconds=usage.ru_utime,
            system_seconds=usage.ru_stime,
        )

    def cancel(self, handles: Sequence[JobHandle], *, grace: float = 3.0) -> None:
        threads: list[threading.Thread] = []
        with self._lock:
            for handle in dict.fromkeys(handles):
                target = self._running.get(handle.backend_id)
                if target is None or target.popen.returncode is not None:
                    continue
                thread = self._cancelling.get(handle.backend_id)
                if thread is None:
                    # Terminate all trees in parallel so N jobs take one grace period, not N.
                    thread = threading.Thread(
                        target=self._terminate,
                        args=(handle.backend_id, target, grace),
                        daemon=True,
                    )
                    self._cancelling[handle.backend_id] = thread
                    thread.start()
                threads.append(thread)
        for thread in threads:
            thread.join()

    def _terminate(self, backend_id: str, target: _Running, grace: float) -> None:
        import psutil  # ~10 ms to import: only stopping a job needs it

        try:
            # Not reaped yet (see the class docstring), so this PID is still the job's.
            with contextlib.suppress(psutil.NoSuchProcess):
                create_time = psutil.Process(target.popen.pid).create_time()
                terminate_tree(target.popen.pid, create_time=create_time, grace=grace)
        finally:
            with self._lock:
                self._cancelling.pop(backend_id, None)
