"""Stopping a process and everything it started, without ever signalling a reused PID.

psutil (~10 ms to import) is imported by the functions that use it: every workflow imports this
module with the Local executor, but only stopping a job needs it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

# Two create_time readings of one process agree to the clock tick; a reused PID is a new process
# whose creation is at least that far apart.
_SAME_PROCESS_TOLERANCE = 0.05


def own_start_time() -> float:
    """When this process was created, as `psutil.Process().create_time()` reports it.

    On Linux it is read from /proc the way psutil computes it (the start in clock ticks after
    boot, plus the boot time), so a workflow does not import psutil (~10 ms) for one number
    at start-up; elsewhere psutil answers.
    """
    try:
        with open("/proc/self/stat", "rb") as handle:
            stat = handle.read()
        with open("/proc/stat", "rb") as handle:
            boot = next(line for line in handle if line.startswith(b"btime "))
        # Fields after the command name (which may hold spaces and parentheses); the 22nd
        # field of the line, starttime, is the 20th of them.
        ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        return ticks / os.sysconf("SC_CLK_TCK") + float(boot.split()[1])
    except (OSError, ValueError, IndexError, StopIteration):
        import psutil

        return float(psutil.Process().create_time())


def same_process(pid: int, create_time: float) -> psutil.Process | None:
    """The live process `pid` if it is the one created at `create_time`, else None."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > _SAME_PROCESS_TOLERANCE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _alive(proc: psutil.Process) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal_all(procs: list[psutil.Process], group: int | None, sig: int) -> None:
    import psutil

    if group is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.send_signal(sig)


def terminate_tree(
    pid: int, *, create_time: float, grace: float = 3.0, own_group: bool = True
) -> bool:
    """SIGTERM `pid`, its process group and every descendant; SIGKILL what is left after `grace`.

    Descendants are collected before the first signal, because a dying parent's children are
    re-parented to init and could no longer be found through it. The root itself is never
    reaped here: the thread waiting on it collects its exit status.

    Returns:
        False if `pid` is gone or is no longer the process created at `create_time`.
    """
    import psutil

    root = same_process(pid, create_time)
    if root is None:
        return False
    group = pid if own_group else None
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = [root]
    _signal_all(procs, group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in procs):
        time.sleep(0.02)
    # Anything started while we waited is found again before the final signal.
    with contextlib.suppress(psutil.NoSuchProcess):
        if _alive(root):
            procs.extend(root.children(recursive=True))
    leftovers = [p for p in procs if _alive(p)]
    if leftovers or group is not None:
        _signal_all(leftovers, group, signal.SIGKILL)
    return True
