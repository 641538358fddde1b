"""Running one process on an SSH host (an executor with `ssh`), and bringing remote inputs here.

The same steps as `libmaestro.runner.run_process`, done on the host through its connection:
a working directory in the session's remote directory, inputs staged there (in place when they
already live on that host, copied in when not), the script written, the job started detached,
its outputs checked on the host. The outputs stay there and are returned as `RemotePath`s.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path, PurePosixPath
from typing import cast

from libmaestro import runner
from libmaestro.config.model import ExecutorConfig, SshTarget
from libmaestro.errors import ProcessError, ProcessInterruptedError
from libmaestro.jobs import JobResult, JobSpec, JobState
from libmaestro.launch import job_command, job_variables
from libmaestro.process import Process, ProcessOutputs
from libmaestro.remote.paths import RemotePath
from libmaestro.remote.workspace import RemoteWorkspace, fetch
from libmaestro.session import EventKind, ProcessEvent, Session
from libmaestro.staging import check_inputs_exist

log = logging.getLogger(__name__)

TRANSFERS_DIR = ".transfers"  # <session>/.transfers/<process>/: remote inputs copied here

_workspaces: dict[tuple[str, SshTarget], RemoteWorkspace] = {}
_workspaces_lock = threading.Lock()


def workspace(session: Session, target: SshTarget) -> RemoteWorkspace:
    with _workspaces_lock:
        key = (session.name, target)
        if key not in _workspaces:
            _workspaces[key] = RemoteWorkspace(target, session.name)
        return _workspaces[key]


def localize_inputs(process: Process, session: Session) -> Process:
    """`process` with every input that lives on another host copied here first (recorded)."""
    remote = {v: p for v, p in process.inputs.items() if isinstance(p, RemotePath)}
    if not remote:
        return process
    directory = session.directory / TRANSFERS_DIR / process.name
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    local = dict(process.inputs)
    for var, path in remote.items():
        started = time.monotonic()
        (directory / var).mkdir()  # one directory per input: the file keeps its own name
        local[var] = fetch(cast(RemotePath, path), directory / var)
        session.fetched_from[local[var]] = cast(RemotePath, path)
        log.info("%s: copied input %s = %s here in %.1fs", process.name, var, path,
                 time.monotonic() - started)  # fmt: skip
    return Process(
        process.name,
        process.script,
        inputs=local,
        outputs=process.outputs,
        args=process.args,
        dependencies=process.dependencies,
        doc=process.doc,
    )


def _remote_outputs(process: Process, target: SshTarget, workdir: PurePosixPath) -> ProcessOutputs:
    outputs = {
        var: RemotePath(target, workdir / rel.as_posix()) for var, rel in process.outputs.items()
    }
    return ProcessOutputs(cast(dict[str, Path], outputs), cast(Path, RemotePath(target, workdir)))


def run_remote_process(
    process: Process, *, executor: ExecutorConfig, session: Session
) -> ProcessOutputs:
    """Run `process` on `executor.ssh`'s host; see the module docstring. Raises as run_process."""
    target = executor.ssh
    assert target is not None
    name = executor.name
    if session.stopping:
        raise runner._not_started(process, session)
    if session.abort_requested(process.name):
        raise runner._aborted(process, session)
    runner._check_definition(process)
    check_inputs_exist(
        process.name, {v: p for v, p in process.inputs.items() if isinstance(p, Path)}
    )
    space = workspace(session, target)
    backend = session.backend(executor)
    history = session.history
    decision = history.decide(process, executor) if history else None
    remote_dir = space.workdir(process.name)
    expected = [remote_dir / rel.as_posix() for rel in process.outputs.values()]
    # A success is reused only if its outputs are still on the host (one command to check).
    if history and decision and decision.reuse is not None and not space.missing(expected):
        session.reserve(process.name)
        history.skipped(decision)
        session.emit(
            ProcessEvent(
                EventKind.SKIPPED, process.name, name, Path(str(remote_dir)), time.time(),
                inputs=tuple(process.inputs.values()),  # the graph keeps its edges
                reason=f"up to date (from run {decision.reuse.step.attempt})",
            )
        )  # fmt: skip
        return _remote_outputs(process, target, remote_dir)
    session.reserve(process.name)
    subdirs = sorted(
        {rel.parent.as_posix() for rel in process.outputs.values() if len(rel.parts) > 1}
    )
    workdir = space.prepare(
        process.name, subdirs, script_name=runner.SCRIPT_FILE, script=process.prepared.text
    )
    staged = space.stage(process.name, process.inputs, workdir, executor.effective_staging)
    script = workdir / runner.SCRIPT_FILE
    outputs = {var: workdir / rel.as_posix() for var, rel in process.outputs.items()}
    variables = job_variables(session, process, workdir, staged, outputs)
    local_workdir = Path(str(workdir))  # a path on the host, carried in the local type
    spec = JobSpec(
        session=session.name,
        process=process.name,
        workdir=local_workdir,
        argv=job_command(
            str(script),
            local_workdir,
            executor,
            session=session,
            process=process,
            variables=variables,
        ),
        env={},
        stdout=local_workdir / runner.STDOUT_FILE,
        stderr=local_workdir / runner.STDERR_FILE,
        variables=variables,
    )
    step_id = (
        history.started(process, executor, local_workdir, decision)
        if history and decision
        else None
    )
    try:
        handle, result = runner._execute(
            spec, backend, session, process, executor, decision, step_id
        )
    except BaseException as exc:
        runner._record_not_run(session, step_id, exc)
        raise
    error = _check(process, executor, space, workdir, expected, result, session, handle.backend_id)
    if error is not None:
        runner._report_failure(session, step_id, spec, name, result, error)
        raise error
    if history and step_id is not None:
        history.succeeded(step_id, process, {}, result)
    session.emit(
        ProcessEvent(EventKind.SUCCEEDED, process.name, name, local_workdir, time.time(), result)
    )
    return _remote_outputs(process, target, workdir)


def _check(
    process: Process,
    executor: ExecutorConfig,
    space: RemoteWorkspace,
    workdir: PurePosixPath,
    expected: list[PurePosixPath],
    result: JobResult,
    session: Session,
    job_id: str,
) -> ProcessError | None:
    host = space.host.label
    failed = result.exit_code != 0 or result.state is not JobState.SUCCEEDED
    if failed and session.stopping:
        return ProcessInterruptedError(
            f"process {process.name!r} was stopped on {host} because the session is stopping; "
            f"working directory {host}:{workdir}",
            process=process.name, workdir=Path(str(workdir)), exit_code=result.exit_code,
        )  # fmt: skip
    if failed:
        how = runner._how_it_ended(result)
        tail = space.tail(workdir / runner.STDERR_FILE, runner.STDERR_TAIL_LINES)
        shown = "\n".join(f"    {line}" for line in tail) if tail else "    (stderr is empty)"
        where = f"Slurm job {job_id}: {result.reason}" if job_id.isdigit() else f"on {host}"
        return ProcessError(
            f"process {process.name!r} {how} (executor {executor.name!r}, {where}); working "
            f"directory {host}:{workdir}; last lines of {host}:{workdir / runner.STDERR_FILE}:"
            f"\n{shown}",
            process=process.name, workdir=Path(str(workdir)), exit_code=result.exit_code,
        )  # fmt: skip
    missing = space.missing(expected)
    if not missing:
        return None
    listed = ", ".join(str(p.relative_to(workdir)) for p in missing)
    return ProcessError(
        f"process {process.name!r} exited 0 on {host} but did not write {listed}; the script "
        f'must create its outputs at "$<name>" (working directory {host}:{workdir})',
        process=process.name, workdir=Path(str(workdir)), exit_code=0,
        missing_outputs=tuple(str(p) for p in missing),
    )  # fmt: skip
