"""Run jobs through Slurm: a batch script per job, sbatch, and one shared status monitor."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from libmaestro._fs import write_new_file
from libmaestro.config.model import ExecutorConfig
from libmaestro.executors.base import Backend
from libmaestro.executors.slurm_client import SlurmClient
from libmaestro.executors.slurm_monitor import DEFAULT_MAX_INTERVAL, SlurmMonitor
from libmaestro.executors.slurm_script import EXIT_FILE, SBATCH_FILE, render
from libmaestro.jobs import JobHandle, JobResult, JobSpec

# How long `cancel` waits for scancelled jobs to be reported ended (Slurm's KillWait is 30 s by
# default, and a job is CANCELLED only once its processes are gone).
CANCEL_WAIT = 45.0

_client = SlurmClient()
_monitors: dict[float, SlurmMonitor] = {}
_monitors_lock = threading.Lock()


def slurm_client() -> SlurmClient:
    """The one client of this program: its `calls` count every scheduler command made."""
    return _client


def _monitor(max_interval: float) -> SlurmMonitor:
    """Executors with the same poll interval share one monitor, so one query covers their jobs."""
    with _monitors_lock:
        found = _monitors.get(max_interval)
        if found is None:
            found = _monitors[max_interval] = SlurmMonitor(_client, max_interval=max_interval)
        return found


class SlurmBackend(Backend):
    """Jobs are Slurm batch jobs; `backend_id` is the job id."""

    def __init__(self, config: ExecutorConfig) -> None:
        assert config.slurm is not None
        self.config = config
        interval = config.slurm.poll_interval
        self.monitor = _monitor(float(interval) if interval else DEFAULT_MAX_INTERVAL)

    def start(self, spec: JobSpec) -> JobHandle:
        script = spec.workdir / SBATCH_FILE
        write_new_file(script, render(self.config, spec), mode=0o755)
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
