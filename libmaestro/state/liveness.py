"""Is the process that recorded a run still alive? The default for `mark_interrupted_runs`."""

from __future__ import annotations

import os

from libmaestro.state.records import RunRecord

# Two create_time readings of one process agree to the clock tick; a reused pid belongs to a
# process created later than that.
_SAME_PROCESS_TOLERANCE = 0.05


def run_is_alive(run: RunRecord, *, hostname: str | None = None) -> bool:
    """True unless the run's process is certainly gone.

    A run recorded on another machine is assumed alive: its pid means nothing here. A pid that
    now belongs to a process created at another time (a reused pid) counts as gone, as does a
    zombie.

    Args:
        run: the run to check.
        hostname: this machine's name (default: `os.uname().nodename`).
    """
    here = os.uname().nodename if hostname is None else hostname
    if run.host and run.host != here:
        return True
    # Imported here (~10 ms): a store with no run left running never asks.
    import psutil

    try:
        proc = psutil.Process(run.pid)
        if (
            run.pid_start_time is not None
            and abs(proc.create_time() - run.pid_start_time) > _SAME_PROCESS_TOLERANCE
        ):
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists, owned by someone else: not provably dead
