"""Detached runs: starting a workflow program in the background, finding it, and stopping it.

`start_background` starts the program in a new session (no controlling terminal, stdin from
/dev/null, output to files under `maestro_work/.background/`) and records a PID file there. The
program's own `@main` records the run in the state store (pid, process start time, host), so
`active_runs` and `kill_run` work from the store; the PID file covers the moment before that
and runs whose store entry is gone.

A PID is only ever signalled after its process's creation time matched the recorded one, so a
PID that the system has since given to another process is never hit; a run recorded on another
host is refused instead of signalling a local PID.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil

from libmaestro._fs import atomic_write_text
from libmaestro._proctree import same_process
from libmaestro.containers import remove_session_containers
from libmaestro.errors import EXIT_USAGE, MaestroError
from libmaestro.executors.slurm import slurm_client
from libmaestro.layout import WORK_DIR_NAME
from libmaestro.project import Project, RunOptions, program_command
from libmaestro.state import (
    Rollup,
    RunRecord,
    RunState,
    SqliteStateStore,
    StateNotFoundError,
    WorkflowRecord,
    WorkflowState,
    run_is_alive,
)

log = logging.getLogger(__name__)

BACKGROUND_DIR = ".background"  # maestro_work/.background/: PID files and detached runs' logs
DEFAULT_KILL_TIMEOUT = 10.0


class KillError(MaestroError):
    """`maestro kill` cannot act: the run is ambiguous, unknown or on another host (usage)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True, slots=True)
class PidFile:
    """What `maestro run --background` recorded about the program it started."""

    path: Path
    pid: int
    start_time: float  # psutil create_time of the program, to recognise a reused PID
    host: str
    command: tuple[str, ...]
    cwd: Path
    stdout: Path
    stderr: Path

    def to_json(self) -> str:
        return json.dumps(
            {
                "pid": self.pid,
                "start_time": self.start_time,
                "host": self.host,
                "command": list(self.command),
                "cwd": str(self.cwd),
                "stdout": str(self.stdout),
                "stderr": str(self.stderr),
            },
            indent=2,
        )

    @classmethod
    def read(cls, path: Path) -> PidFile | None:
        """The PID file at `path`, or None if it is missing or unreadable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                path=path,
                pid=int(data["pid"]),
                start_time=float(data["start_time"]),
                host=str(data["host"]),
                command=tuple(str(a) for a in data["command"]),
                cwd=Path(data["cwd"]),
                stdout=Path(data["stdout"]),
                stderr=Path(data["stderr"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def is_alive(self) -> bool:
        """True if the recorded process still runs (the PID is not someone else's now)."""
        return same_process(self.pid, self.start_time) is not None


def background_dir(root: Path) -> Path:
    return root / WORK_DIR_NAME / BACKGROUND_DIR


def start_background(project: Project, options: RunOptions = RunOptions()) -> PidFile:
    """Start the project's workflow fully detached and return at once with its PID file.

    The program gets a new session (so SIGHUP of the terminal and signals to the caller's
    process group never reach it), stdin from /dev/null, and its output in log files.
    """
    argv, env = program_command(project, options)
    env["MAESTRO_PLAIN"] = "1"  # no terminal to draw a live view on
    directory = background_dir(project.root)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    # The PID is known only once the program runs: open the logs under a provisional name and
    # rename them after; the program keeps writing to the same open files.
    provisional = directory / f"{stamp}-starting-{os.getpid()}"
    out_tmp, err_tmp = provisional.with_suffix(".out"), provisional.with_suffix(".err")
    with out_tmp.open("wb") as out, err_tmp.open("wb") as err:
        child = subprocess.Popen(
            argv,
            cwd=project.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
    # Reap it when it ends: a long-lived caller (the UI starting reruns) must not collect
    # zombies. A daemon thread, so a short-lived caller (`maestro run --background`) exits at once.
    threading.Thread(target=child.wait, name="maestro-reap", daemon=True).start()
    stdout = directory / f"{stamp}-{child.pid}.out"
    stderr = directory / f"{stamp}-{child.pid}.err"
    out_tmp.rename(stdout)
    err_tmp.rename(stderr)
    try:
        start_time = psutil.Process(child.pid).create_time()
    except psutil.NoSuchProcess:  # it ended already; the PID file is then stale at once
        start_time = time.time()
    pid_file = PidFile(
        path=directory / f"{child.pid}.json",
        pid=child.pid,
        start_time=start_time,
        host=socket.gethostname(),
        command=tuple(argv),
        cwd=project.root,
        stdout=stdout,
        stderr=stderr,
    )
    atomic_write_text(pid_file.path, pid_file.to_json())
    return pid_file


def wait_for_session(
    store: SqliteStateStore, pid_file: PidFile, *, timeout: float = 2.0
) -> str | None:
    """The session name of the run the background program recorded, or None after `timeout`.

    None too if the program ended first (its log says why).
    """
    deadline = time.monotonic() + timeout
    while True:
        if store.path.exists():
            for summary in store.list_workflows(limit=20):
                run = summary.latest_run
                if run is not None and _is_process_of(run, pid_file):
                    return summary.workflow.session
        if time.monotonic() > deadline or not pid_file.is_alive():
            return None
        time.sleep(0.05)


def _is_process_of(run: RunRecord, pid_file: PidFile) -> bool:
    return (
        run.pid == pid_file.pid
        and run.host == pid_file.host
        and run.pid_start_time is not None
        and abs(run.pid_start_time - pid_file.start_time) <= 0.05
    )


# --- finding runs -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActiveRun:
    """A run the store records as running, with its session and progress."""

    workflow: WorkflowRecord
    run: RunRecord
    rollup: Rollup

    @property
    def is_local(self) -> bool:
        return self.run.host == socket.gethostname()

    @property
    def progress(self) -> tuple[int, int]:
        """(finished steps, all steps) of the session, a step's latest state counting."""
        done = sum(n for state, n in self.rollup.counts.items() if state.is_terminal)
        return done, self.rollup.total


def active_runs(
    store: SqliteStateStore, *, project: str | None = None
) -> tuple[list[ActiveRun], list[RunRecord]]:
    """The runs still running (of `project` if given), and those just found interrupted.

    A run whose process is gone without a final state is marked interrupted first.
    """
    interrupted = store.mark_interrupted_runs(run_is_alive)
    active: list[ActiveRun] = []
    for summary in store.list_workflows(
        limit=10_000, states=[WorkflowState.RUNNING], project=project
    ):
        run = summary.latest_run
        if run is not None and run.state is RunState.RUNNING:
            active.append(ActiveRun(summary.workflow, run, store.rollup(summary.workflow.id)))
    return active, interrupted


# --- killing -----------------------------------------------------------------------------


class KillOutcome(enum.Enum):
    STOPPED = "stopped"  # the program stopped itself on SIGTERM within the timeout
    KILLED = "killed"  # SIGKILL of its remaining tree (--force, or after the timeout)
    ALREADY_ENDED = "already_ended"  # nothing to do: the run had finished
    STALE = "stale"  # a PID file whose process is gone (or whose PID was reused): removed


@dataclass(frozen=True, slots=True)
class KillResult:
    outcome: KillOutcome
    pid: int
    session: str | None = None
    state: str = ""  # the run's final state in the store, if there is a run
    pid_file: Path | None = None  # the PID file that was removed, if any
    containers: tuple[str, ...] = ()  # ids of the session's Podman/Docker containers removed


@dataclass(frozen=True, slots=True)
class KillTarget:
    """What `maestro kill` was asked to stop: a recorded run, or only a PID file."""

    run: RunRecord | None
    workflow: WorkflowRecord | None
    pid_file: PidFile | None


def find_kill_targets(
    store: SqliteStateStore, *, name: str | None, all_runs: bool, root: Path, project: str | None
) -> list[KillTarget]:
    """The runs `maestro kill [NAME] [--all]` means, run from the project at `root`.

    Raises:
        KillError: nothing matches NAME, or NAME is absent and the project has several active
            runs (the message lists them).
    """
    active, _ = active_runs(store) if store.path.exists() else ([], [])
    here = socket.gethostname()
    if all_runs:
        targets = [KillTarget(a.run, a.workflow, _pid_file_of(a, root)) for a in active]
        return [t for t in targets if t.run is not None and t.run.host == here]
    if name is None:
        mine = [a for a in active if project is None or a.workflow.project == project]
        if len(mine) > 1:
            listed = ", ".join(f"{a.workflow.session} (pid {a.run.pid})" for a in mine)
            raise KillError(
                f"{len(mine)} runs of {project or 'this host'} are active: {listed}; "
                "name one: maestro kill SESSION (or --all)"
            )
        if mine:
            return [KillTarget(mine[0].run, mine[0].workflow, _pid_file_of(mine[0], root))]
        return [KillTarget(None, None, f) for f in _pid_files(root) if not f.is_alive()]
    if name.isdigit():
        pid = int(name)
        for item in active:
            if item.run.pid == pid and item.run.host == here:
                return [KillTarget(item.run, item.workflow, _pid_file_of(item, root))]
        pid_file = PidFile.read(background_dir(root) / f"{pid}.json")
        if pid_file is None:
            raise KillError(
                f"no active run has pid {pid} and there is no PID file "
                f"{background_dir(root) / f'{pid}.json'}; `maestro ps` lists the active runs"
            )
        return [KillTarget(None, None, pid_file)]
    try:
        workflow = store.get_workflow(name)
    except StateNotFoundError:
        raise KillError(
            f"no session {name!r} in {store.path}; `maestro ps` lists the active runs"
        ) from None
    runs = store.runs(workflow.id)
    if not runs:
        raise KillError(f"session {name!r} has no run to kill")
    latest = runs[-1]
    found = next((a for a in active if a.run.id == latest.id), None)
    return [KillTarget(latest, workflow, _pid_file_of(found, root) if found else None)]


def _pid_files(root: Path) -> list[PidFile]:
    directory = background_dir(root)
    files = (
        (PidFile.read(p) for p in sorted(directory.glob("*.json"))) if directory.is_dir() else ()
    )
    return [f for f in files if f is not None]


def _pid_file_of(item: ActiveRun, root: Path) -> PidFile | None:
    roots = {root, Path(item.workflow.entry).parent}
    for base in roots:
        pid_file = PidFile.read(background_dir(base) / f"{item.run.pid}.json")
        if pid_file is not None and _is_process_of(item.run, pid_file):
            return pid_file
    return None


def kill_run(
    store: SqliteStateStore,
    target: KillTarget,
    *,
    force: bool = False,
    timeout: float = DEFAULT_KILL_TIMEOUT,
) -> KillResult:
    """Stop a run and every process it started; record it aborted. Idempotent.

    Without `force` the orchestrator gets SIGTERM, on which it stops its job trees and records
    the run aborted; whatever of its tree is left after `timeout` seconds gets SIGKILL. Then the
    session's Podman/Docker containers, which live outside the tree (under conmon or dockerd)
    and outlive a SIGKILLed launcher, are removed by their `maestro.session` label.

    Raises:
        KillError: the run was recorded on another host.
    """
    run, pid_file = target.run, target.pid_file
    session = target.workflow.session if target.workflow else None
    here = socket.gethostname()
    host = run.host if run is not None else pid_file.host if pid_file is not None else here
    if host != here:
        raise KillError(
            f"session {session or '?'} runs on host {host!r}, not on this host ({here!r}); "
            f"its pid means nothing here: run `maestro kill {session or ''}` on {host}"
        )
    if run is None:
        assert pid_file is not None  # a target has a run or a PID file
        return _kill_pid_file(store, pid_file, force=force, timeout=timeout)
    pid, start_time = run.pid, run.pid_start_time
    removed = _remove(pid_file)
    if run.state is not RunState.RUNNING:
        cancel_recorded_jobs(store, run)  # a run that died (SIGKILL) may have left Slurm jobs
        return KillResult(KillOutcome.ALREADY_ENDED, pid, session, run.state.value, removed)
    proc = same_process(pid, start_time) if start_time is not None else None
    if proc is None:  # gone (or its PID reused) without a final state
        cancel_recorded_jobs(store, run)
        containers = _remove_containers(session)
        store.mark_interrupted_runs(run_is_alive)
        state = store.run(run.id).state.value
        return KillResult(KillOutcome.ALREADY_ENDED, pid, session, state, removed, containers)
    outcome = _stop_tree(proc, force=force, timeout=timeout)
    # The orchestrator scancels its jobs on SIGTERM; after a SIGKILL (--force, or a run that
    # did not stop in time) the ids recorded for its unfinished steps are cancelled here.
    cancel_recorded_jobs(store, run)
    containers = _remove_containers(session)
    current = store.run(run.id)
    if current.state is RunState.RUNNING:
        current = store.finish_run(run.id, RunState.ABORTED)
    return KillResult(outcome, pid, session, current.state.value, removed, containers)


def _remove_containers(session: str | None) -> tuple[str, ...]:
    """Remove the session's containers left running (a SIGKILLed launcher cannot)."""
    return tuple(remove_session_containers(session)) if session else ()


def cancel_recorded_jobs(store: SqliteStateStore, run: RunRecord) -> list[str]:
    """scancel the Slurm jobs recorded for `run`'s unfinished steps; returns their ids.

    Unfinished includes steps marked aborted because their run died (reason INTERRUPTED):
    `maestro status` or `ps` may have recorded that before `maestro kill` ran. scancel of a job
    that already ended does nothing.
    """
    ids = [
        step.job_id
        for step in store.steps(run.workflow_id, run.id)
        if step.job_id.isdigit()
        and (not step.state.is_terminal or step.reason in {"INTERRUPTED", "RUN_ENDED"})
    ]
    if ids and shutil.which("scancel"):
        slurm_client().cancel(ids)
    return ids


def _kill_pid_file(
    store: SqliteStateStore, pid_file: PidFile, *, force: bool, timeout: float
) -> KillResult:
    proc = same_process(pid_file.pid, pid_file.start_time)
    if proc is None:
        _remove(pid_file)
        if store.path.exists():
            store.mark_interrupted_runs(run_is_alive)
        return KillResult(KillOutcome.STALE, pid_file.pid, pid_file=pid_file.path)
    # The program has not recorded its run yet (or the store is elsewhere): stop it by its tree.
    outcome = _stop_tree(proc, force=force, timeout=timeout)
    _remove(pid_file)
    return KillResult(outcome, pid_file.pid, pid_file=pid_file.path)


def _remove(pid_file: PidFile | None) -> Path | None:
    if pid_file is None:
        return None
    pid_file.path.unlink(missing_ok=True)
    return pid_file.path


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return list(proc.children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _stop_tree(root: psutil.Process, *, force: bool, timeout: float) -> KillOutcome:
    """SIGTERM `root` and wait for it (unless `force`), then SIGKILL whatever is left of its tree.

    The descendants are collected before the first signal: once the orchestrator exits, a job
    it failed to stop is re-parented to init and can no longer be found through it.
    psutil.Process objects check the creation time, so none of them hits a reused PID.
    """
    known = {p.pid: p for p in _descendants(root)}
    if not force:
        with contextlib.suppress(psutil.NoSuchProcess):
            root.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            known.update((p.pid, p) for p in _descendants(root))
            if not _alive(root):
                break
            time.sleep(0.05)
        if not _alive(root) and not any(_alive(p) for p in known.values()):
            return KillOutcome.STOPPED
    _kill_all(root, known)
    return KillOutcome.KILLED


def _kill_all(root: psutil.Process, known: dict[int, psutil.Process]) -> None:
    """SIGKILL `root` and every process of its tree, freezing it first so none can fork more."""
    frozen: dict[int, psutil.Process] = {}
    pending = [root, *known.values()]
    while pending:  # SIGSTOP top-down, finding children started meanwhile, until none are new
        proc = pending.pop()
        if proc.pid in frozen or not _alive(proc):
            continue
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.suspend()
            frozen[proc.pid] = proc
            pending.extend(_descendants(proc))
    for proc in frozen.values():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.kill()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(_alive(p) for p in frozen.values()):
        time.sleep(0.02)
