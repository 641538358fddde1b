"""Run jobs through Slurm: a batch script per job, sbatch, and one shared status monitor."""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from libmaestro._fs import write_new_file
from libmaestro.config.model import ExecutorConfig
from libmaestro.errors import MaestroError, SubmitError
from libmaestro.executors.base import Backend
from libmaestro.executors.slurm_client import REMOTE_ENV_FILE, RemoteShell, SlurmClient
from libmaestro.executors.slurm_monitor import DEFAULT_MAX_INTERVAL, SlurmMonitor
from libmaestro.executors.slurm_script import EXIT_FILE, SBATCH_FILE, render
from libmaestro.jobs import JobHandle, JobResult, JobSpec

# How long `cancel` waits for scancelled jobs to be reported ended (Slurm's KillWait is 30 s by
# default, and a job is CANCELLED only once its processes are gone).
CANCEL_WAIT = 45.0

_client = SlurmClient()
_monitors: dict[tuple[str, float], SlurmMonitor] = {}
_monitors_lock = threading.Lock()


def slurm_client() -> SlurmClient:
    """The one client of this program: its `calls` count every scheduler command made."""
    return _client


def _monitor(max_interval: float, remote: RemoteHost | None) -> SlurmMonitor:
    """Executors with the same poll interval (and login node) share one monitor, so one query
    covers all their jobs."""
    key = (remote.label if remote else "", max_interval)
    with _monitors_lock:
        found = _monitors.get(key)
        if found is None:
            if remote is None:
                found = SlurmMonitor(_client, max_interval=max_interval)
            else:
                found = SlurmMonitor(
                    SlurmClient(remote), max_interval=max_interval,
                    read_file=lambda path: _read_remote(remote, path),
                )  # fmt: skip
            _monitors[key] = found
        return found


class RemoteHost(RemoteShell, Protocol):
    """A login node over SSH (`libmaestro.remote.connection.Host`)."""

    def write_text(self, remote: str, text: str, *, mode: int = 0o644) -> None: ...


def _read_remote(remote: RemoteHost, path: Path) -> str | None:
    done = remote.run(f"cat {shlex.quote(str(path))} 2>/dev/null")
    return done.stdout if done.exit_status == 0 else None


class SlurmBackend(Backend):
    """Jobs are Slurm batch jobs; `backend_id` is the job id."""

    def __init__(self, config: ExecutorConfig, *, host: RemoteHost | None = None) -> None:
        assert config.slurm is not None
        self.config = config
        self.host = host  # submit on this login node over SSH; None: here
        interval = config.slurm.poll_interval
        self.monitor = _monitor(float(interval) if interval else DEFAULT_MAX_INTERVAL, host)

    def start(self, spec: JobSpec) -> JobHandle:
        script = spec.workdir / SBATCH_FILE
        if self.host is None:
            write_new_file(script, render(self.config, spec), mode=0o755)
        else:
            try:
                self.host.write_text(str(script), render(self.config, spec), mode=0o755)
                self.host.write_text(
                    str(spec.workdir / REMOTE_ENV_FILE),
                    "".join(f"{k}={shlex.quote(v)}\n" for k, v in spec.variables.items()),
                    mode=0o600,
                )
            except MaestroError as exc:
                raise SubmitError(str(exc)) from None
        job_id = self.monitor.client.submit(script, env=spec.env)
        self.monitor.watch(job_id, spec.workdir / EXIT_FILE)
        return JobHandle(self.config.name, job_id)

    def wait(self, handle: JobHandle) -> JobResult:
        return self.monitor.wait(handle.backend_id)

    def cancel(self, handles: Sequence[JobHandle], *, grace: float = 3.0) -> None:  # noqa: ARG002
        # Slurm applies its own grace (SIGTERM, KillWait, SIGKILL); ours does not apply.
        ids = [h.backend_id for h in dict.fromkeys(handles)]
        self.monitor.client.cancel(ids)
        self.monitor.poll_soon()
        deadline = time.monotonic() + CANCEL_WAIT
        for job_id in ids:
            if self.monitor.state_of(job_id) is None:
                continue  # not a job this program watches
            self.monitor.wait_until(job_id, deadline)
