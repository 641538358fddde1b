"""Run jobs on an SSH host, detached there, so a dropped connection does not kill them.

A job is started by one command that is safe to repeat: if the connection drops while it runs,
the retried command finds `.maestro.pid` and answers with the job already started, so nothing
runs twice. The job runs in its own session on the host (`setsid`), its variables come from
`.maestro.env` (written from stdin, values shell-quoted), and it writes its exit status, start
and end times to `.maestro.exit` as it ends. One thread per host asks about all of that host's
jobs with a single command per poll; after a reconnection it simply asks again (re-attaches).

    <remote workdir>/.maestro.env   the injected variables, `NAME='value'` lines
    <remote workdir>/.maestro.pid   the job's process group on the host
    <remote workdir>/.maestro.exit  "<exit code> <started> <ended>", written as it ends
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from libmaestro.errors import SubmitError
from libmaestro.executors.base import Backend
from libmaestro.jobs import ExitRecord, JobHandle, JobResult, JobSpec, JobState
from libmaestro.remote.connection import Host, SshError

PID_FILE = ".maestro.pid"
ENV_FILE = ".maestro.env"
EXIT_FILE = ".maestro.exit"
MIN_INTERVAL = 0.01  # a trivial job has often ended by the first poll
MAX_INTERVAL = 2.0

# $1: the workdir; stdin: the variables; then the command. Prints the job's pid.
_LAUNCH = r"""
cd "$1" || exit 97
shift
if [ -s .maestro.pid ]; then cat .maestro.pid; exit 0; fi
cat > .maestro.env
setsid bash -c '
  set -a; . ./.maestro.env; set +a
  started=$(date +%s.%N)
  "$@" > .maestro.out 2> .maestro.err < /dev/null
  code=$?
  printf "%s %s %s\n" "$code" "$started" "$(date +%s.%N)" > .maestro.exit.tmp
  mv .maestro.exit.tmp .maestro.exit
' maestro-job "$@" > /dev/null 2>&1 < /dev/null &
echo $! > .maestro.pid
cat .maestro.pid
"""

# Arguments: workdirs. One line per job: "<workdir>|exit|<code> <started> <ended>",
# "<workdir>|running" or "<workdir>|gone". The exit file is read again after a failed liveness
# check: the job may have ended between the two.
_POLL = r"""
for d in "$@"; do
  if [ -f "$d/.maestro.exit" ]; then printf '%s|exit|%s\n' "$d" "$(cat "$d/.maestro.exit")"
  elif kill -0 "$(cat "$d/.maestro.pid" 2>/dev/null || echo none)" 2>/dev/null; then
    printf '%s|running\n' "$d"
  elif [ -f "$d/.maestro.exit" ]; then printf '%s|exit|%s\n' "$d" "$(cat "$d/.maestro.exit")"
  else printf '%s|gone\n' "$d"; fi
done
"""

# Arguments: grace seconds, then pids. TERM to each job's process group, KILL after the grace.
_CANCEL = r"""
grace=$1; shift
for p in "$@"; do kill -TERM -- "-$p" 2>/dev/null; done
waited=0
while [ "$waited" -lt "$grace" ]; do
  alive=0
  for p in "$@"; do kill -0 -- "-$p" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && exit 0
  sleep 0.2; waited=$((waited + 1))
done
for p in "$@"; do kill -KILL -- "-$p" 2>/dev/null; done
exit 0
"""


def env_file(variables: Mapping[str, str]) -> str:
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in variables.items())


def bash(script: str, *args: str) -> str:
    """A command line that runs `script` with `args` as $1..., nothing interpolated."""
    return shlex.join(["bash", "-c", script, "maestro", *args])


@dataclass(slots=True)
class _Job:
    workdir: str
    pid: str
    submitted_at: float
    done: threading.Event = field(default_factory=threading.Event)
    result: JobResult | None = None
    cancelled: bool = False


class RemoteBackend(Backend):
    """Jobs are detached process groups on one SSH host; `backend_id` is `host:pid:workdir`."""

    def __init__(self, executor_name: str, host: Host) -> None:
        self.executor_name = executor_name
        self.host = host
        self._jobs: dict[str, _Job] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._interval = MIN_INTERVAL

    def start(self, spec: JobSpec) -> JobHandle:
        workdir = str(spec.workdir)
        try:
            done = self.host.run(bash(_LAUNCH, workdir, *spec.argv), stdin=env_file(spec.variables))
        except SshError as exc:
            raise SubmitError(str(exc)) from None
        pid = done.stdout.strip()
        if done.exit_status != 0 or not pid.isdigit():
            raise SubmitError(
                f"could not start the job on {self.host.label} in {workdir}: "
                f"{(done.stderr or done.stdout).strip() or f'exit status {done.exit_status}'}"
            )
        backend_id = f"{self.host.label}:{pid}:{workdir}"
        with self._cond:
            self._jobs[backend_id] = _Job(workdir, pid, time.time())
            self._interval = MIN_INTERVAL
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name=f"maestro-remote-{self.host.label}", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        return JobHandle(self.executor_name, backend_id)

    def wait(self, handle: JobHandle) -> JobResult:
        with self._cond:
            job = self._jobs[handle.backend_id]
        job.done.wait()
        assert job.result is not None
        return job.result

    def cancel(self, handles: Sequence[JobHandle], *, grace: float = 3.0) -> None:
        with self._cond:
            jobs = [self._jobs[h.backend_id] for h in handles if h.backend_id in self._jobs]
            jobs = [j for j in jobs if not j.done.is_set()]
            for job in jobs:
                job.cancelled = True
        if not jobs:
            return
        steps = max(1, int(grace / 0.2))
        try:
            self.host.run(bash(_CANCEL, str(steps), *(j.pid for j in jobs)))
        except SshError:
            pass  # reported by the monitor: the jobs end as lost if they cannot be reached
        with self._cond:
            self._interval = MIN_INTERVAL
            self._cond.notify_all()
        for job in jobs:
            job.done.wait(timeout=grace + 30)

    def _loop(self) -> None:
        while True:
            with self._cond:
                pending = [j for j in self._jobs.values() if not j.done.is_set()]
                if not pending:
                    self._thread = None
                    return
                self._cond.wait(self._interval)
                pending = [j for j in self._jobs.values() if not j.done.is_set()]
            if not pending:
                continue
            try:
                done = self.host.run(bash(_POLL, *(j.workdir for j in pending)))
            except SshError as exc:
                for job in pending:  # reconnection gave up: the host is gone for good
                    self._finish(job, self._ended(job, JobState.LOST, f"LOST ({exc})"))
                continue
            changed = self._read_poll(pending, done.stdout)
            with self._cond:
                self._interval = (
                    MIN_INTERVAL if changed else min(self._interval * 1.5, MAX_INTERVAL)
                )

    def _read_poll(self, pending: list[_Job], output: str) -> bool:
        by_dir = {job.workdir: job for job in pending}
        changed = False
        for line in output.splitlines():
            workdir, _, rest = line.partition("|")
            job = by_dir.get(workdir)
            if job is None:
                continue
            kind, _, fields = rest.partition("|")
            if kind == "running":
                continue
            changed = True
            now = time.time()
            if kind == "exit":
                record = ExitRecord.parse(fields) or ExitRecord(-1, job.submitted_at, now)
                state = JobState.SUCCEEDED if record.code == 0 else JobState.FAILED
                self._finish(job, JobResult(state, record.code, started_at=record.started_at,
                                            ended_at=record.ended_at))  # fmt: skip
            elif job.cancelled:
                self._finish(job, self._ended(job, JobState.CANCELLED, "CANCELLED"))
            else:  # no exit file and no process: killed from outside, or the host rebooted
                self._finish(job, self._ended(job, JobState.LOST, "LOST"))
        return changed

    @staticmethod
    def _ended(job: _Job, state: JobState, reason: str) -> JobResult:
        return JobResult(state, None, started_at=job.submitted_at, ended_at=time.time(),
                         reason=reason)  # fmt: skip

    def _finish(self, job: _Job, result: JobResult) -> None:
        job.result = result
        job.done.set()
