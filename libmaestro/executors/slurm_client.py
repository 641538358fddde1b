"""The Slurm commands maestro uses, run as argv lists, parsed, and counted.

Every call goes through one `SlurmClient`, which counts them: how hard maestro leans on the
scheduler is a number a benchmark and a test can read, not a guess.
"""

from __future__ import annotations

import collections
import os
import shlex
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from libmaestro.errors import MaestroError, SubmitError

REMOTE_ENV_FILE = ".maestro.env"  # the job's variables, sourced before sbatch over SSH
# Seconds any one scheduler command may take; slurmctld answers in milliseconds when healthy.
COMMAND_TIMEOUT = 60.0
QUEUE_CHUNK = 2000  # job ids per squeue: about 16 KB of argument


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One job as the scheduler reports it."""

    job_id: str
    state: str  # Slurm's word: PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, ...
    reason: str = ""  # squeue's %r (why pending, or why it ended); "" when none
    exit_code: int | None = None  # from sacct's "code:signal", when it was asked


_RAN_TO_END = frozenset({"COMPLETED", "FAILED"})


class SlurmCommandError(Exception):
    """A status command could not be run or failed; the caller retries on its next poll."""


class RemoteShell(Protocol):
    """Runs a shell command on another host (`libmaestro.remote.connection.Host`)."""

    label: str

    def run(self, command: str, *, stdin: str | None = None) -> RemoteAnswer: ...


class RemoteAnswer(Protocol):
    @property
    def exit_status(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


class SlurmClient:
    """Runs sbatch, squeue, sacct and scancel, here or on a login node over SSH; thread-safe.

    Over SSH a job's environment cannot travel with the command; `submit` then sources the
    job's `.maestro.env` (written next to the script) before sbatch, whose --export=ALL
    passes it on.
    """

    def __init__(self, remote: RemoteShell | None = None) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self.remote = remote

    def _run(
        self, argv: list[str], *, env: Mapping[bytes, bytes] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        with self._lock:
            self.calls[argv[0]] += 1
        if self.remote is not None:
            prefix = ""
            if cwd is not None:
                prefix = (
                    f"cd {shlex.quote(str(cwd))} && set -a && . ./{REMOTE_ENV_FILE} && set +a && "
                )
            try:
                done = self.remote.run(prefix + "LC_ALL=C " + shlex.join(argv))
            except MaestroError as exc:  # the connection is gone for good
                raise OSError(str(exc)) from None
            return subprocess.CompletedProcess(argv, done.exit_status, done.stdout, done.stderr)
        return subprocess.run(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def submit(self, script: Path, *, env: Mapping[bytes, bytes]) -> str:
        """Submit `script` with `env` as the job's environment; returns the job id.

        Raises:
            SubmitError: sbatch is missing or refused the job; the message is its own words.
        """
        # The user's own SBATCH_* variables would override the script's #SBATCH lines.
        env = {k: v for k, v in env.items() if not k.startswith(b"SBATCH_")}
        try:
            done = self._run(["sbatch", "--parsable", str(script)], env=env, cwd=script.parent)
        except FileNotFoundError:
            raise SubmitError(
                "sbatch is not on PATH; run on a Slurm login node or use a Local executor"
            ) from None
        except OSError as exc:
            raise SubmitError(f"sbatch could not be run: {exc}") from None
        except subprocess.TimeoutExpired:
            raise SubmitError(
                f"sbatch did not answer within {COMMAND_TIMEOUT:.0f} s; is slurmctld up "
                "(`scontrol ping`)?"
            ) from None
        if done.returncode != 0:
            raise SubmitError(_sbatch_error(done.stderr or done.stdout))
        # --parsable prints "jobid" or "jobid;cluster".
        job_id = done.stdout.strip().split(";", 1)[0]
        if not job_id.isdigit():
            raise SubmitError(f"sbatch printed {done.stdout.strip()!r} instead of a job id")
        return job_id

    def queue(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """The jobs squeue still knows (live ones, and finished ones for MinJobAge seconds).

        Asked in chunks of QUEUE_CHUNK ids: one argument may not exceed 128 KiB on Linux.
        """
        found: dict[str, JobStatus] = {}
        for start in range(0, len(job_ids), QUEUE_CHUNK):
            found.update(self._queue(job_ids[start : start + QUEUE_CHUNK]))
        return found

    def _queue(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        done = self._status_command(
            ["squeue", "--noheader", "--states=all", "--jobs=" + ",".join(job_ids),
             "--format=%i|%T|%r"]
        )  # fmt: skip
        if done.returncode != 0:
            # squeue fails outright when asked for a single job it no longer knows; several
            # ids are filtered on the client side, so only the one-id case says this.
            if len(job_ids) == 1 and "Invalid job id" in done.stderr:
                return {}
            raise SlurmCommandError(done.stderr.strip() or f"squeue exited {done.returncode}")
        found: dict[str, JobStatus] = {}
        for line in done.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) != 3:
                continue
            job_id, state, reason = parts
            if not state.split():
                continue
            found[job_id] = JobStatus(job_id, state.split()[0], "" if reason == "None" else reason)
        return found

    def accounting(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """Finished jobs from the job completion log (`sacct -c`), for those squeue forgot."""
        done = self._status_command(
            ["sacct", "-c", "--noheader", "--parsable2", "--jobs=" + ",".join(job_ids),
             "--format=jobid,state,exitcode"]
        )  # fmt: skip
        if done.returncode != 0:
            raise SlurmCommandError(done.stderr.strip() or f"sacct exited {done.returncode}")
        found: dict[str, JobStatus] = {}
        for line in done.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) != 3 or parts[0] not in job_ids:
                continue  # a job step ("123.batch") or a line that is not a job
            if not parts[1].split():
                continue  # a record the completion log could not parse
            state = parts[1].split()[0]  # "CANCELLED by 0" -> "CANCELLED"
            code = parts[2].split(":", 1)[0]
            # Only a job that ran to its end has an exit code of its own: a TIMEOUT or a
            # CANCELLED job shows "0:15" (killed by signal 15), which is not exit status 0.
            exit_code = int(code) if code.isdigit() and state in _RAN_TO_END else None
            found[parts[0]] = JobStatus(parts[0], state, exit_code=exit_code)
        return found

    def cancel(self, job_ids: Sequence[str]) -> None:
        """scancel the jobs, all in one command; jobs that already ended are no error."""
        if job_ids:
            try:
                self._run(["scancel", *job_ids])
            except (OSError, subprocess.TimeoutExpired):
                pass  # the monitor still sees them end (or reports them lost)

    def _status_command(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            # C locale: squeue's states and messages are matched as text.
            return self._run(argv, env={**os.environb, b"LC_ALL": b"C"})
        except FileNotFoundError:
            raise SlurmCommandError(f"{argv[0]} is not on PATH") from None
        except OSError as exc:
            raise SlurmCommandError(f"{argv[0]} could not be run: {exc}") from None
        except subprocess.TimeoutExpired:
            message = f"{argv[0]} did not answer within {COMMAND_TIMEOUT:.0f} s"
            raise SlurmCommandError(message) from None


def _sbatch_error(text: str) -> str:
    """sbatch's reason without its prefixes: "Invalid partition name specified"."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "sbatch refused the job without saying why"
    last = lines[-1]
    for prefix in ("sbatch: error:", "Batch job submission failed:"):
        last = last.removeprefix(prefix).strip()
    return f"sbatch refused the job: {last}"
