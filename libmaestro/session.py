"""A session: one run of a workflow program, its directory, its running jobs and its listeners.

The seed's API is made of free functions (`arg("x")`, `executor("default").exe(p)`), so the
session they act on is found through `current_session()`. That is the one piece of module state
in libmaestro; `@main` sets it, a plain script gets one on first use, tests use `activate()`.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from libmaestro._names import readable_name
from libmaestro.config import ProjectConfig, find_config_file, load_config
from libmaestro.config.model import ExecutorConfig, ExecutorType
from libmaestro.errors import MaestroError, ProcessDefinitionError, log_unexpected
from libmaestro.executors import backend_for
from libmaestro.executors.base import Backend
from libmaestro.jobs import JobHandle, JobResult
from libmaestro.layout import ABORT_FILE, WORK_DIR_NAME
from libmaestro.scheduler import MAX_WORKERS, Scheduler

if TYPE_CHECKING:
    from libmaestro.history import RunHistory
    from libmaestro.remote.paths import RemotePath

log = logging.getLogger(__name__)


# How long "no abort request" stays known: a process starting this much after `maestro abort`
# is no different from one that started just before it, and a 1,000-process fan-out then makes
# a few dozen checks, not 2,000.
_ABORT_RECHECK = 0.05

DEFAULT_REMOTE_PARALLEL = 64  # jobs a Slurm executor may have at once without max_parallel


class EventKind(enum.Enum):
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"  # reused from an earlier run of the same session (--resume)


@dataclass(frozen=True, slots=True)
class ProcessEvent:
    """Something that happened to one process; listeners (the live display) receive these."""

    kind: EventKind
    process: str
    executor: str
    workdir: Path
    at: float
    result: JobResult | None = None
    error: MaestroError | None = None
    stderr: Path | None = None
    inputs: tuple[Path, ...] = ()  # on STARTED: the input paths, for the run's graph
    reason: str = ""  # why it runs, or why it was skipped (shown with --explain)


Listener = Callable[[ProcessEvent], None]


class Session:
    """One run of a workflow: `maestro_work/<name>/`, one directory per process inside it."""

    def __init__(
        self,
        *,
        name: str,
        directory: Path,
        config: ProjectConfig | None = None,
        config_loader: Callable[[], ProjectConfig | None] | None = None,
        max_parallel: int | None = None,
    ) -> None:
        self.name = name
        self.scheduler = Scheduler(cpu_budget=max_parallel, workers=_workers_for(config))
        self.history: RunHistory | None = None  # set by @main: the run's record in the store
        self.directory = directory
        self.started_at = time.time()
        self.listeners: list[Listener] = []
        # A local copy of another host's file -> that file (`RemotePath`), for the graph's edges.
        self.fetched_from: dict[Path, RemotePath] = {}
        self._config = config
        self._config_loader = config_loader
        self._lock = threading.Lock()
        self._claimed: set[str] = set()
        self._running: dict[JobHandle, Backend] = {}
        self._backends: dict[ExecutorConfig, Backend] = {}
        self._stopping = False
        self._not_started = 0
        self._stopped: set[JobHandle] = set()
        # Held for a whole stop(), so a second caller returns only once the first one's jobs are
        # really gone: `@main` must not exit while the signal handler's thread is still within
        # its grace period, or what ignores SIGTERM would never get the SIGKILL.
        self._stop_lock = threading.Lock()
        # What `maestro abort` asked (read from ABORT_FILE when its mtime changes).
        self._abort_seen: int | None = None
        self._abort_all = False
        self._abort_names: frozenset[str] = frozenset()
        self._abort_path: tuple[Path | None, Path] = (None, Path(ABORT_FILE))
        self._no_abort_until = 0.0  # monotonic time until which "no request" is known

    @classmethod
    def create(
        cls,
        *,
        base: Path,
        config: ProjectConfig | None = None,
        config_loader: Callable[[], ProjectConfig | None] | None = None,
        max_parallel: int | None = None,
    ) -> Session:
        """Make a new session directory with a fresh readable name under `base/maestro_work`.

        Args:
            max_parallel: CPUs that local processes may use at once (default: the CPU count).
        """
        root = base / WORK_DIR_NAME
        root.mkdir(parents=True, exist_ok=True)
        while True:
            name = readable_name(lambda n: (root / n).exists())
            try:
                (root / name).mkdir()  # exclusive: two runs starting at once never share one
            except FileExistsError:
                continue
            return cls(
                name=name,
                directory=root / name,
                config=config,
                config_loader=config_loader,
                max_parallel=max_parallel,
            )

    @property
    def config(self) -> ProjectConfig | None:
        """The project configuration, loaded on first use when the session was made lazily."""
        with self._lock:
            if self._config is None and self._config_loader is not None:
                loader, self._config_loader = self._config_loader, None
                self._config = loader()
            return self._config

    @property
    def stopping(self) -> bool:
        return self._stopping

    def claim(self, process: str) -> Path:
        """Reserve a process's directory; a second process with the same name is an error."""
        return self.claim_new(process)[0]

    def reserve(self, process: str) -> None:
        """Register a process name without a local directory (a process on another host)."""
        with self._lock:
            if process in self._claimed:
                raise ProcessDefinitionError(
                    f"a process named {process!r} already ran in session {self.name!r}; "
                    "give each process call a unique name"
                )
            self._claimed.add(process)

    def claim_new(self, process: str) -> tuple[Path, bool]:
        """Like `claim`, and also say whether the directory already existed (an earlier attempt).

        Creating the directory is how that is found out: one system call, where listing it
        would be another for every process of a run.
        """
        with self._lock:
            if process in self._claimed:
                raise ProcessDefinitionError(
                    f"a process named {process!r} already ran in session {self.name!r}; "
                    "give each process call a unique name (for example with the sample in it: "
                    f"name=f'{process}_{{sample}}')"
                )
            self._claimed.add(process)
        workdir = self.directory / process
        try:
            workdir.mkdir(parents=True)
        except FileExistsError:
            return workdir, True
        return workdir, False

    def abort_requested(self, process: str) -> bool:
        """True if a user aborted `process` (or everything not started yet) in this session.

        While there is no request, one system call per `_ABORT_RECHECK` (an existence check,
        which unlike a failing stat raises nothing); the request file is re-read only when it
        changed.
        """
        if self._abort_path[0] is not self.directory:  # made once per session directory
            self._abort_path = (self.directory, self.directory / ABORT_FILE)
        now = time.monotonic()
        if now < self._no_abort_until:
            return False
        path = self._abort_path[1]
        if not os.access(path, os.F_OK):
            self._no_abort_until = now + _ABORT_RECHECK
            return False
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return False
        if mtime != self._abort_seen:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self._abort_all = bool(data.get("all"))
                self._abort_names = frozenset(str(n) for n in data.get("processes", ()))
            except (OSError, ValueError, AttributeError):
                log.warning("ignoring unreadable abort request %s", path)
            self._abort_seen = mtime
        return self._abort_all or process in self._abort_names

    def backend(self, executor: ExecutorConfig) -> Backend:
        """The backend that runs jobs for this executor, made once per session."""
        with self._lock:
            found = self._backends.get(executor)
            if found is None:
                found = self._backends[executor] = backend_for(executor)
            return found

    def track(self, handle: JobHandle, backend: Backend) -> bool:
        """Record a started job; False if the session is stopping and the job must be cancelled."""
        with self._lock:
            self._running[handle] = backend
            return not self._stopping

    def untrack(self, handle: JobHandle) -> None:
        with self._lock:
            self._running.pop(handle, None)

    def count_not_started(self) -> None:
        """A process was refused because the session is stopping (reported at the end)."""
        with self._lock:
            self._not_started += 1

    @property
    def never_started(self) -> int:
        """Processes refused while stopping, plus fan-out items and DAG nodes never run."""
        return self._not_started + self.scheduler.never_started

    def request_stop(self) -> None:
        """Mark the session as stopping, so nothing new starts; safe to call in a signal handler.

        It takes no lock (the interrupted thread may hold it); assigning a bool is atomic, and
        `stop()` sets the flag again under the lock before it cancels anything.
        """
        self._stopping = True

    def stop(self, *, grace: float = 3.0) -> int:
        """Start nothing new and stop every running job's process tree.

        Returns:
            How many jobs this session has stopped so far, over every call. Several callers may
            stop one session (the signal handler's thread and `@main`'s clean-up); counting only
            this call's jobs would report 0 for jobs another caller was already stopping.
        """
        self._stopping = True  # before waiting for another stop(), so nothing new starts
        self.scheduler.stop()
        with self._stop_lock:
            with self._lock:
                self._stopping = True
                running = dict(self._running)
                self._stopped.update(running)
            by_backend: dict[int, tuple[Backend, list[JobHandle]]] = {}
            for handle, backend in running.items():
                by_backend.setdefault(id(backend), (backend, []))[1].append(handle)
            for backend, handles in by_backend.values():
                backend.cancel(handles, grace=grace)
            with self._lock:
                return len(self._stopped)

    def emit(self, event: ProcessEvent) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a broken display must never stop the workflow
                log_unexpected(log, "a session listener failed")


def _workers_for(config: ProjectConfig | None) -> int | None:
    """Worker threads for a configuration whose executors run jobs off this machine.

    A thread waits for each process, and Slurm jobs take no local CPU, so a Slurm executor
    needs as many threads as jobs it may have queued and running (its max_parallel).
    """
    if config is None:
        return None
    remote = [e for e in config.executors.values() if e.type is not ExecutorType.LOCAL]
    if not remote:
        return None
    return min(MAX_WORKERS, sum(e.max_parallel or DEFAULT_REMOTE_PARALLEL for e in remote))


class _ActiveSession:
    """Holds the session the free functions act on (see the module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.session: Session | None = None


_active = _ActiveSession()


def _default_config() -> ProjectConfig | None:
    script = Path(sys.argv[0]).resolve().parent if sys.argv and sys.argv[0] else None
    path = find_config_file(cwd=Path.cwd(), script_dir=script, env=os.environ)
    return load_config(path) if path is not None else None


def current_session() -> Session:
    """The active session; a program without `@main` gets one here, on first use."""
    with _active.lock:
        if _active.session is None:
            _active.session = Session.create(base=Path.cwd(), config_loader=_default_config)
            log.info("session %s started in %s", _active.session.name, _active.session.directory)
        return _active.session


def activate(session: Session | None) -> Session | None:
    """Make `session` the active one (None clears it); returns the one it replaces."""
    with _active.lock:
        previous, _active.session = _active.session, session
        return previous
