"""Running one process: working directory, staging, launch, wait, verification, record.

Everything a process leaves behind sits in its working directory, next to its outputs:

    .maestro.sh     the script exactly as it ran (dedented, with its shebang)
    .maestro.out    its standard output
    .maestro.err    its standard error
    .maestro.json   exit status, times and resource use, when there is no run history
                    (a plain script; with @main they are in the state store)
    .maestro.sbatch the batch script submitted to Slurm (Slurm executors)
    .maestro.exit   "<exit code> <started> <ended>", written by a Slurm job as it ends
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from libmaestro._fs import tail_lines, write_new_file
from libmaestro.config.model import ExecutorConfig, ExecutorType
from libmaestro.errors import (
    ProcessDefinitionError,
    ProcessError,
    ProcessInterruptedError,
    SubmitError,
)
from libmaestro.executors.base import Backend
from libmaestro.executors.slurm_script import EXIT_FILE, SBATCH_FILE
from libmaestro.history import Decision
from libmaestro.jobs import JobHandle, JobResult, JobSpec, JobState
from libmaestro.launch import job_command, job_environment, job_variables
from libmaestro.process import Process, ProcessOutputs
from libmaestro.scheduler import StoppedError
from libmaestro.session import EventKind, ProcessEvent, Session
from libmaestro.staging import check_inputs_exist, stage_inputs

SCRIPT_FILE = ".maestro.sh"
STDOUT_FILE = ".maestro.out"
STDERR_FILE = ".maestro.err"
STATUS_FILE = ".maestro.json"
OWN_FILES = frozenset({SCRIPT_FILE, STDOUT_FILE, STDERR_FILE, STATUS_FILE, SBATCH_FILE, EXIT_FILE})
ATTEMPTS_DIR = ".attempts"  # earlier attempts' working directories, kept on --resume
STDERR_TAIL_LINES = 10


def _record(
    workdir: Path, *, session: Session, process: Process, executor: str, result: JobResult
) -> None:
    status = {
        "session": session.name,
        "process": process.name,
        "executor": executor,
        "state": result.state.value,
        "exit_code": result.exit_code,
        "signal": result.signal,
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "duration_seconds": round(result.duration, 6),
        "max_rss_kib": result.max_rss_kib,
        "user_seconds": result.user_seconds,
        "system_seconds": result.system_seconds,
    }
    write_new_file(workdir / STATUS_FILE, json.dumps(status, indent=2) + "\n")


def _how_it_ended(result: JobResult) -> str:
    if result.state is JobState.LOST:
        return "was lost: the scheduler no longer knows the job and it left no exit status"
    if result.state is JobState.CANCELLED:
        return "was cancelled"
    if result.signal is not None:
        try:
            signame = signal.Signals(result.signal).name
        except ValueError:
            signame = f"signal {result.signal}"
        return f"was killed by {signame}"
    if result.exit_code is None:
        return f"ended {result.reason or 'without an exit status'}"
    return f"failed with exit code {result.exit_code}"


def _failure_message(
    process: Process, executor: str, workdir: Path, result: JobResult, job: JobHandle
) -> str:
    how = _how_it_ended(result)
    where = f"executor {executor!r}"
    if job.backend_id.isdigit():  # a Slurm job id (Local ids are "pid:start time")
        where += f", Slurm job {job.backend_id}"
        if result.reason:
            where += f": {result.reason}"
    stderr = workdir / STDERR_FILE
    tail = tail_lines(stderr, STDERR_TAIL_LINES)
    shown = "\n".join(f"    {line}" for line in tail) if tail else "    (stderr is empty)"
    return (
        f"process {process.name!r} {how} ({where}); working directory {workdir}; "
        f"stdout {workdir / STDOUT_FILE}; last lines of {stderr}:\n{shown}"
    )


def _wait(
    backend: Backend,
    handle: JobHandle,
    session: Session,
    process: Process,
    workdir: Path,
    executor: str,
) -> JobResult:
    try:
        return backend.wait(handle)
    except BaseException:
        # Ctrl-C (KeyboardInterrupt) or SIGTERM arrived while this thread waited: stop the job's
        # whole tree, collect its exit status so no zombie is left, and let the interrupt go on.
        backend.cancel([handle])
        result = backend.wait(handle)
        _record(workdir, session=session, process=process, executor=executor, result=result)
        session.emit(
            ProcessEvent(
                EventKind.INTERRUPTED, process.name, executor, workdir, time.time(), result
            )
        )
        raise
    finally:
        session.untrack(handle)


def _aborted(process: Process, session: Session) -> ProcessInterruptedError:
    session.count_not_started()
    return ProcessInterruptedError(
        f"process {process.name!r} was not started: a user aborted it "
        f"(`maestro abort {session.name}` or the UI)",
        process=process.name,
        workdir=session.directory / process.name,
    )


def _not_started(process: Process, session: Session) -> ProcessInterruptedError:
    session.count_not_started()
    return ProcessInterruptedError(
        f"process {process.name!r} was not started because the session is stopping",
        process=process.name,
        workdir=session.directory / process.name,
    )


def _mark_running(session: Session, step_id: int | None, started: ProcessEvent) -> None:
    """Record in the run history that the step runs, and tell the listeners (STARTED)."""
    if session.history is not None and step_id is not None:
        session.history.running(step_id)
    session.emit(started)


def _execute(
    spec: JobSpec,
    backend: Backend,
    session: Session,
    process: Process,
    executor: ExecutorConfig,
    decision: Decision | None,
    step_id: int | None,
) -> tuple[JobHandle, JobResult]:
    """Wait for a slot (the session's CPU budget and the executor's limit), run, wait, release."""
    name = executor.name
    workdir = spec.workdir
    try:
        session.scheduler.acquire(executor)
    except StoppedError:
        raise _not_started(process, session) from None
    except KeyboardInterrupt:  # Ctrl-C while this (main) thread waited for a slot
        session.count_not_started()
        raise
    if session.abort_requested(process.name):  # `maestro abort` while it waited for the slot
        session.scheduler.release(executor)
        raise _aborted(process, session)
    history = session.history
    try:
        # Recorded and shown once the job is under way: the bookkeeping then overlaps the
        # job's own start instead of delaying it. A job that cannot start is still shown
        # starting, then failing.
        started = ProcessEvent(
            EventKind.STARTED, process.name, name, workdir, time.time(),
            inputs=tuple(process.inputs.values()),
            reason=decision.text if decision else "",
        )  # fmt: skip
        try:
            handle = backend.start(spec)
        except OSError as exc:
            # The kernel would not run the script, mostly because its shebang names an interpreter
            # that is not installed; Popen then blames the script itself ("No such file or
            # directory: .maestro.sh"), and the raw OSError reached the user as a traceback.
            shebang = process.prepared.text.split("\n", 1)[0]
            if exc.errno == errno.E2BIG:
                fix = "its args and inputs are too large to pass; give big values in a file"
            elif exc.errno in (errno.ENOENT, errno.ENOEXEC, errno.EACCES):
                fix = f"check that its first line {shebang!r} names an installed interpreter"
            else:
                fix = "check the machine's limits (processes, open files) and try again"
            start_error = ProcessError(
                f"process {process.name!r} could not be started: {exc.strerror or exc}; {fix} "
                f"(working directory {workdir})",
                process=process.name,
                workdir=workdir,
            )
            _mark_running(session, step_id, started)
            session.emit(
                ProcessEvent(
                    EventKind.FAILED, process.name, name, workdir, time.time(), error=start_error
                )
            )
            raise start_error from exc
        except SubmitError as exc:
            submit_error = ProcessError(
                f"process {process.name!r} could not be submitted (executor {name!r}): {exc} "
                f"(working directory {workdir})",
                process=process.name,
                workdir=workdir,
            )
            _mark_running(session, step_id, started)
            session.emit(
                ProcessEvent(
                    EventKind.FAILED, process.name, name, workdir, time.time(), error=submit_error
                )
            )
            raise submit_error from None
        if not session.track(handle, backend):
            backend.cancel([handle])  # stop() ran between our check and the start
        _mark_running(session, step_id, started)
        if history is not None and step_id is not None and executor.type is ExecutorType.SLURM:
            # The job id is in the store as soon as it exists, so a run killed with SIGKILL
            # still leaves `maestro kill` (and a person) the ids to scancel. Local jobs die
            # with their orchestrator and need no such record.
            history.submitted(step_id, handle.backend_id)
        result = _wait(backend, handle, session, process, workdir, name)
        return handle, result
    finally:
        session.scheduler.release(executor)


def _check_definition(process: Process) -> None:
    # An output named like one of maestro's own files would be overwritten by it (or overwrite
    # it) and still "exist" at the end, so the run would succeed with the wrong content.
    clashes = [
        f"{var} = {rel}" for var, rel in process.outputs.items() if rel.parts[0] in OWN_FILES
    ]
    if clashes:
        raise ProcessDefinitionError(
            f"process {process.name!r}: output {', '.join(clashes)} uses a name that maestro "
            f"keeps for its own files ({', '.join(sorted(OWN_FILES))}); choose another name"
        )


def _fresh_workdir(session: Session, process: Process) -> Path:
    """The process's working directory, emptied of an earlier attempt's files.

    On `--resume` a step that runs again finds its previous attempt's directory; that is moved
    to `<session>/.attempts/` (never deleted: its logs explain the earlier failure) so staging
    and outputs start clean.
    """
    workdir, existed = session.claim_new(process.name)
    if existed and any(workdir.iterdir()):
        attempts = session.directory / ATTEMPTS_DIR
        attempts.mkdir(exist_ok=True)
        moved = attempts / f"{process.name}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}"
        workdir.rename(moved)
        workdir.mkdir()
        if session.history is not None:  # the earlier attempt's record follows its files
            session.history.moved(workdir, moved)
    return workdir


# What `Path.exists()` counts as "does not exist" rather than as an error to raise.
_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def _stat_outputs(paths: Mapping[str, Path]) -> tuple[dict[str, os.stat_result], list[str]]:
    """Each output's `os.stat` (by variable), and the variables of those that do not exist.

    One system call per output, whose result the run history reuses for the fingerprint.
    """
    found: dict[str, os.stat_result] = {}
    missing: list[str] = []
    for var, path in paths.items():
        try:
            found[var] = os.stat(path)  # noqa: PTH116  # a quarter of Path.stat's cost
        except OSError as exc:
            if exc.errno not in _ABSENT:
                raise
            missing.append(var)
    return found, missing


def _verify(
    process: Process,
    executor: str,
    workdir: Path,
    result: JobResult,
    session: Session,
    job: JobHandle,
    found: dict[str, os.stat_result] | None = None,
    paths: Mapping[str, Path] | None = None,
) -> ProcessError | None:
    """The error the process's end means, or None when it succeeded with all its outputs.

    `found` receives the `os.stat` of every output that exists (see `_stat_outputs`); `paths`
    are the outputs' paths when the caller has them already.
    """
    ended_badly = result.exit_code != 0 or result.state is not JobState.SUCCEEDED
    if ended_badly and session.stopping:
        return ProcessInterruptedError(
            f"process {process.name!r} was stopped because the session is stopping; "
            f"working directory {workdir}",
            process=process.name,
            workdir=workdir,
            exit_code=result.exit_code,
        )
    if ended_badly:
        # A job the scheduler ended (TIMEOUT, CANCELLED, lost) failed whatever its exit code.
        return ProcessError(
            _failure_message(process, executor, workdir, result, job),
            process=process.name,
            workdir=workdir,
            exit_code=result.exit_code,
        )
    if paths is None:
        paths = {var: workdir / rel for var, rel in process.outputs.items()}
    stats, absent = _stat_outputs(paths)
    if found is not None:
        found.update(stats)
    missing = tuple(absent)
    if not missing:
        return None
    listed = ", ".join(f"{var} = {process.outputs[var]}" for var in missing)
    return ProcessError(
        f"process {process.name!r} exited 0 but did not write {len(missing)} declared "
        f"output{'s' if len(missing) > 1 else ''}: {listed}; the script must create "
        f'them at "$<name>" (working directory {workdir})',
        process=process.name,
        workdir=workdir,
        exit_code=0,
        missing_outputs=missing,
    )


def _outputs(process: Process, workdir: Path) -> ProcessOutputs:
    return ProcessOutputs({var: workdir / rel for var, rel in process.outputs.items()}, workdir)


def _record_not_run(session: Session, step_id: int | None, exc: BaseException) -> None:
    """Record in the run history how a step ended that `_execute` raised out of."""
    history = session.history
    if history is None or step_id is None:
        return
    if isinstance(exc, ProcessInterruptedError | KeyboardInterrupt):
        history.aborted(step_id, str(exc) or "stopped by Ctrl-C or SIGTERM while it ran")
    else:
        history.failed(step_id, None, str(exc))


def _report_failure(
    session: Session,
    step_id: int | None,
    spec: JobSpec,
    executor: str,
    result: JobResult,
    error: ProcessError,
) -> None:
    """Record and announce a job that ran but failed its check (`error`)."""
    interrupted = isinstance(error, ProcessInterruptedError)
    history = session.history
    if history is not None and step_id is not None:
        if interrupted:
            history.aborted(step_id, str(error))
        else:
            history.failed(step_id, result, str(error))
    kind = EventKind.INTERRUPTED if interrupted else EventKind.FAILED
    session.emit(
        ProcessEvent(
            kind, spec.process, executor, spec.workdir, time.time(), result, error,
            Path(spec.stderr),
        )
    )  # fmt: skip


def run_process(process: Process, *, executor: ExecutorConfig, session: Session) -> ProcessOutputs:
    """Run `process` with `executor` in `session` and return its verified outputs.

    With run history (`@main`), a resumed session reuses the step's last success instead when
    nothing that determines it changed (see `libmaestro.history`).

    Raises:
        ProcessDefinitionError: the name was already used in this session, or an output is
            named like one of maestro's own files.
        StagingError: an input is missing or cannot be staged.
        ProcessError: the script failed or did not write every declared output.
        ProcessInterruptedError: the session is stopping (Ctrl-C, SIGTERM, abort).
    """
    if executor.ssh is not None or process.has_remote_inputs:
        # Imported here: the SSH layer (asyncssh) is loaded only by workflows that use it.
        from libmaestro.remote.run import localize_inputs, run_remote_process

        if executor.ssh is not None:
            return run_remote_process(process, executor=executor, session=session)
        process = localize_inputs(process, session)
    name = executor.name
    if session.stopping:
        raise _not_started(process, session)
    if session.abort_requested(process.name):
        raise _aborted(process, session)
    backend = session.backend(executor)
    _check_definition(process)
    input_stats = check_inputs_exist(process.name, process.inputs)
    history = session.history
    decision = history.decide(process, executor) if history else None
    if history and decision and decision.reuse is not None:
        session.claim(process.name)  # still one process per name and session
        history.skipped(decision)
        workdir = session.directory / process.name
        session.emit(
            ProcessEvent(
                EventKind.SKIPPED, process.name, name, workdir, time.time(),
                inputs=tuple(process.inputs.values()),  # the graph keeps its edges
                reason=f"up to date (from run {decision.reuse.step.attempt})",
            )
        )  # fmt: skip
        return _outputs(process, workdir)
    workdir = _fresh_workdir(session, process)
    staged: dict[str, str] = {}
    if process.inputs:
        reserved = {rel.parts[0] for rel in process.outputs.values()} | OWN_FILES
        staged = stage_inputs(
            process.inputs,
            workdir,
            executor.effective_staging,
            reserved=reserved,
            stats=input_stats,
        )
    for rel in process.outputs.values():
        if len(rel.parts) > 1:
            (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
    # Maestro's own files as strings: a Path per file costs more than the rest of this.
    here = str(workdir)
    script = f"{here}/{SCRIPT_FILE}"
    write_new_file(script, process.prepared.text, mode=0o755)
    outputs = _outputs(process, workdir)  # returned once verified; the paths are needed before
    paths = outputs.as_dict()
    variables = job_variables(session, process, workdir, staged, paths)
    spec = JobSpec(
        session=session.name,
        process=process.name,
        workdir=workdir,
        argv=job_command(
            script, workdir, executor, session=session, process=process, variables=variables
        ),
        env=job_environment(variables),
        stdout=f"{here}/{STDOUT_FILE}",
        stderr=f"{here}/{STDERR_FILE}",
    )
    step_id = (
        history.started(process, executor, workdir, decision, input_stats=input_stats)
        if history and decision
        else None
    )
    try:
        handle, result = _execute(spec, backend, session, process, executor, decision, step_id)
    except BaseException as exc:
        _record_not_run(session, step_id, exc)
        raise
    if history is None:
        # Without run history (a plain script) this file is the only record of how it ended.
        _record(workdir, session=session, process=process, executor=name, result=result)
    output_stats: dict[str, os.stat_result] = {}
    error = _verify(process, name, workdir, result, session, handle, output_stats, paths)
    if error is not None:
        _report_failure(session, step_id, spec, name, result, error)
        raise error
    if history and step_id is not None:
        # SUCCEEDED is recorded with the verified outputs' fingerprints, in one transaction.
        history.succeeded(step_id, process, paths, result, stats=output_stats)
    session.emit(
        ProcessEvent(EventKind.SUCCEEDED, process.name, name, workdir, time.time(), result)
    )
    return outputs
