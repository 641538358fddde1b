"""`@main`: check the configuration, open the session, run the workflow, close it.

The Python counterpart of the original's `#[maestro::main]`: nothing runs until every executor,
arg and input that the program requests anywhere is known to exist; then the session directory
is created, the live display starts, and at the end (or on Ctrl-C, SIGTERM or a failure) every
running process is stopped and the outcome reported with a clear exit code.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import NoReturn, ParamSpec, TypeVar

from libmaestro.config import ProjectConfig, find_config_file, load_config
from libmaestro.console import Display, error_text, make_display
from libmaestro.errors import (
    EXIT_INTERRUPTED,
    MaestroError,
    ProjectError,
    StartupError,
    debug_requested,
)
from libmaestro.frozen import bundle_info, handle_command_line, is_frozen, program_path
from libmaestro.history import (
    EXPLAIN_ENV_VAR,
    RESUME_ENV_VAR,
    RunHistory,
    create_workflow,
    open_store,
)
from libmaestro.layout import ABORT_FILE, WORK_DIR_NAME
from libmaestro.manifest import manifest_references
from libmaestro.project import JOBS_ENV_VAR, ProjectSettings, read_pyproject
from libmaestro.recorder import GraphRecorder
from libmaestro.session import Session, activate
from libmaestro.startup import check_backends, check_references, project_root
from libmaestro.state import (
    RunState,
    SqliteStateStore,
    StateNotFoundError,
    WorkflowRecord,
    run_is_alive,
)

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def prepare(entry: Path) -> tuple[ProjectConfig | None, Path | None]:
    """Load the configuration and run the startup check for the program whose entry is `entry`.

    Raises:
        ConfigError: Maestro.toml is invalid.
        StartupError: the program requests something the configuration does not provide.
    """
    config_path = find_config_file(cwd=Path.cwd(), script_dir=entry.parent, env=os.environ)
    config = load_config(config_path) if config_path is not None else None
    root = project_root(entry)
    # `maestro build` leaves a manifest; while the source is unchanged it saves the parse.
    # A bundled program has no source: it checks what `maestro bundle` recorded in it.
    references = bundle_info().references if is_frozen() else manifest_references(root, entry)
    if references is None:
        # Parsing the project is the slow path (no manifest, or the source changed since).
        from libmaestro.analysis import scan_project

        references = scan_project(entry, root=root)
    problems = check_references(config, references)
    if not problems:  # probing runtimes is only worth it for a configuration that is complete
        problems = check_backends(config, references)
    if problems:
        raise StartupError([str(p) for p in problems], config_file=config_path)
    return config, config_path


def _max_parallel(settings: ProjectSettings) -> int | None:
    """`maestro run --jobs N` (through the environment), else `[tool.maestro] max_parallel`."""
    jobs = os.environ.get(JOBS_ENV_VAR, "")
    if jobs:
        if not jobs.isdigit() or int(jobs) < 1:
            raise ProjectError(f"{JOBS_ENV_VAR}={jobs!r} must be a positive integer like 4")
        return int(jobs)
    return settings.max_parallel


@contextmanager
def _signals_interrupt(session: Session) -> Iterator[None]:
    """While the workflow runs, make Ctrl-C and SIGTERM stop its jobs and interrupt it.

    The jobs are stopped at once, from a thread, rather than once KeyboardInterrupt reaches
    `run_main`: a workflow that fans out with a ThreadPoolExecutor is stuck in the pool's
    shutdown until its worker threads return, and they return only when their jobs end, so the
    program hung until every running job finished by itself and the queued ones had started and
    run too. Marking the session as stopping first keeps queued work from starting a job. The
    handler takes no lock itself (the interrupted main thread may hold one), hence the thread.
    Only the main thread can install signal handlers; elsewhere this does nothing.
    """
    if not threading_is_main():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> NoReturn:  # noqa: ARG001
        if not session.stopping:
            session.request_stop()
            threading.Thread(target=session.stop, name="maestro-stop", daemon=True).start()
        raise KeyboardInterrupt

    # SIGHUP too: a dropped SSH session or a closed terminal must stop the jobs, not orphan them.
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, interrupt) for sig in handled}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def threading_is_main() -> bool:
    return threading.current_thread() is threading.main_thread()


def _quiet_signals() -> None:
    # A second Ctrl-C while processes are being stopped must not abandon them half-way.
    if threading_is_main():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _exit(display: Display, message: str, code: int) -> NoReturn:
    display.error(message)
    sys.exit(code)


def _open_session(entry: Path, config: ProjectConfig | None, config_path: Path | None) -> Session:
    """A new session, or with `--resume` the earlier one, with its run recorded in the store."""
    root = project_root(entry)
    settings, name = read_pyproject(root)
    project = bundle_info().name if is_frozen() else name or root.name
    max_parallel = _max_parallel(settings)
    resume = os.environ.get(RESUME_ENV_VAR, "")
    store = open_store()
    # A run that died without a final state (SIGKILL, power loss) is recorded as interrupted,
    # so its unfinished steps are not mistaken for running ones.
    store.mark_interrupted_runs(run_is_alive)
    if resume:
        workflow = _resumable(store, resume, project=project, entry=entry)
        directory = Path.cwd() / WORK_DIR_NAME / workflow.session
        if not directory.is_dir():
            raise ProjectError(
                f"session {workflow.session!r} has no directory {directory} any more, so it "
                "cannot be resumed; run without --resume to start a new session"
            )
        # A user's abort was for the run it stopped; the new run starts what is left.
        (directory / ABORT_FILE).unlink(missing_ok=True)
        session = Session(
            name=workflow.session, directory=directory, config=config, max_parallel=max_parallel
        )
    else:
        session = Session.create(base=Path.cwd(), config=config, max_parallel=max_parallel)
        workflow = create_workflow(
            store, session=session.name, project=project, entry=entry, config_path=config_path
        )
    explain = os.environ.get(EXPLAIN_ENV_VAR, "") not in {"", "0"}
    session.history = RunHistory.start(store, workflow, resuming=bool(resume), explain=explain)
    session.history.waiting = lambda: session.scheduler.waiting
    return session


def _resumable(
    store: SqliteStateStore, resume: str, *, project: str, entry: Path
) -> WorkflowRecord:
    if resume != "latest":
        try:
            return store.get_workflow(resume)
        except StateNotFoundError:
            # A misspelt name is a usage error (exit 2, like "no earlier session" below), and
            # the store's own message named neither the project's sessions nor what to do.
            recent = [s.workflow.session for s in store.list_workflows(project=project, limit=5)]
            known = f"; recent sessions of {project}: {', '.join(recent)}" if recent else ""
            raise ProjectError(
                f"there is no session named {resume!r} to resume{known} "
                "(`maestro status` lists them; --resume alone takes the latest)"
            ) from None
    candidates = store.list_workflows(project=project, limit=50)
    for summary in candidates:
        if summary.workflow.entry == str(entry):
            return summary.workflow
    raise ProjectError(
        f"there is no earlier session of {project} ({entry}) to resume; "
        "run without --resume first, or name a session: --resume SESSION"
    )


def _finish(session: Session, state: RunState) -> None:
    if session.history is not None:
        try:
            session.history.finish(state)
        except MaestroError as exc:  # the run's outcome is already decided; say, don't mask it
            log.warning("could not record the end of the run: %s", exc)


def run_main(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `fn` as a workflow's main function; see the module docstring."""
    explain = os.environ.get(EXPLAIN_ENV_VAR, "") not in {"", "0"}
    display = make_display(explain=explain)
    if is_frozen():
        handle_command_line()  # --help, --version, --config, --resume, ... of a bundled program
        entry = program_path()
    else:
        entry = Path(inspect.getsourcefile(fn) or sys.argv[0]).resolve()
    try:
        config, config_path = prepare(entry)
        session = _open_session(entry, config, config_path)
    except MaestroError as exc:
        if debug_requested():
            raise
        _exit(display, error_text(exc), exc.exit_code)
    previous = activate(session)
    recorder = GraphRecorder(session)
    session.listeners.append(recorder)
    session.listeners.append(display.handle)
    display.start(session)
    try:
        with _signals_interrupt(session):
            result = fn(*args, **kwargs)
    except KeyboardInterrupt:
        _quiet_signals()
        stopped = session.stop()
        _finish(session, RunState.ABORTED)
        display.finish(outcome="interrupted")
        if debug_requested():
            raise
        never = session.never_started
        unstarted = f"; {never} process(es) or fan-out item(s) never started" if never else ""
        _exit(
            display,
            f"interrupted; stopped {stopped} running process(es){unstarted}",
            EXIT_INTERRUPTED,
        )
    except MaestroError as exc:
        _quiet_signals()
        session.stop()
        interrupted = exc.exit_code == EXIT_INTERRUPTED
        _finish(session, RunState.ABORTED if interrupted else RunState.FAILED)
        display.finish(outcome="interrupted" if interrupted else "failed")
        if debug_requested():
            raise
        _exit(display, error_text(exc), exc.exit_code)
    except BaseException:
        _quiet_signals()
        session.stop()
        _finish(session, RunState.FAILED)
        display.finish(outcome="failed")
        raise
    finally:
        activate(previous)
        recorder.close()
    _finish(session, RunState.SUCCEEDED)
    display.finish(outcome="succeeded")
    return result


def main(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a workflow's main function: `@libmaestro.main` (often `@maestro.main`)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return run_main(fn, *args, **kwargs)

    return wrapper
