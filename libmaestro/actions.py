"""What a user can do to a recorded workflow: invalidate, rerun, abort. Shared by CLI and UI.

Every action is planned first: the plan lists the steps it touches and the files it deletes
(with their size), so a person can confirm it. `apply_action` plans again (the store may have
moved on since the plan was shown), performs it and records it in the store's action history.

    invalidate-workflow   every successful step becomes invalidated and its output files are
                          deleted; a new run (or --resume) redoes everything
    invalidate-step       the step becomes invalidated and its outputs are deleted; with
                          `propagate`, every step downstream of it too (by recorded lineage)
    invalidate-artefact   the file is deleted, its producing step stays (the next resume sees
                          the output missing and runs it again); with `propagate` (outputs
                          only) everything downstream of the file is invalidated
    rerun                 failed or invalidated steps run again, with what is downstream of
                          them: a `--resume` of the instance, started detached
    abort                 pending steps of a running workflow never start (all of them, or one)

Files a user provided (inputs that no step of the workflow produced) are never deleted.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from libmaestro.errors import MaestroError
from libmaestro.layout import ABORT_FILE, ATTEMPTS_DIR, WORK_DIR_NAME
from libmaestro.state import (
    AggregatedStep,
    ArtefactRecord,
    ArtefactRole,
    SqliteStateStore,
    StateNotFoundError,
    StepRecord,
    StepState,
    WorkflowRecord,
    WorkflowState,
)

KINDS = ("invalidate-workflow", "invalidate-step", "invalidate-artefact", "rerun", "abort")
RERUN_REASON = "RERUN"  # the reason recorded on steps invalidated so that a rerun redoes them


class ActionRefused(MaestroError):
    """The action does not apply (a rerun of a succeeded step, propagation from an input, ...)."""


@dataclass(frozen=True, slots=True)
class ActionRequest:
    kind: str  # one of KINDS
    session: str
    step_id: int | None = None  # invalidate-step; rerun and abort: None means all that apply
    artefact_id: int | None = None  # invalidate-artefact
    propagate: bool = False  # invalidate-step and invalidate-artefact (outputs only)


@dataclass(frozen=True, slots=True)
class ActionPlan:
    request: ActionRequest
    steps: tuple[StepRecord, ...]  # invalidated, rerun or aborted
    files: tuple[Path, ...]  # deleted
    bytes: int
    summary: str  # one sentence, for the confirmation prompt
    pid: int | None = None  # rerun: the detached run started by `apply_action`


class _Instance:
    """One workflow instance as the actions see it: aggregated steps, artefacts, lineage."""

    def __init__(self, store: SqliteStateStore, session: str) -> None:
        try:
            self.workflow: WorkflowRecord = store.get_workflow(session)
        except StateNotFoundError:
            raise ActionRefused(
                f"there is no session {session!r} in {store.path}; `maestro status` lists them"
            ) from None
        self.store = store
        self.aggregated: list[AggregatedStep] = store.aggregated_steps(self.workflow.id)
        self.by_process = {a.process: a for a in self.aggregated}
        self.records = {s.id: s for s in store.steps(self.workflow.id)}
        self._artefacts: dict[int, list[ArtefactRecord]] = {}

    @property
    def running(self) -> bool:
        return self.workflow.state is WorkflowState.RUNNING

    def artefacts(self, step_id: int) -> list[ArtefactRecord]:
        if step_id not in self._artefacts:
            self._artefacts[step_id] = self.store.artefacts(step_id)
        return self._artefacts[step_id]

    def outputs(self, step: StepRecord) -> list[ArtefactRecord]:
        return [a for a in self.artefacts(step.id) if a.role is ArtefactRole.OUTPUT]

    def authoritative(self, step_id: int) -> AggregatedStep:
        record = self.records.get(step_id)
        if record is None:
            raise ActionRefused(f"session {self.workflow.session!r} has no step with id {step_id}")
        return self.by_process[record.process]

    def artefact(self, artefact_id: int) -> ArtefactRecord:
        for step_id in self.records:
            for artefact in self.artefacts(step_id):
                if artefact.id == artefact_id:
                    return artefact
        raise ActionRefused(
            f"session {self.workflow.session!r} has no artefact with id {artefact_id}"
        )

    def _consumers(self) -> dict[tuple[str, Path], set[str]]:
        """(producing process, output path) -> the processes that consumed that output."""
        produced: dict[int, tuple[str, Path]] = {}  # output artefact id -> (process, path)
        for record_id, record in self.records.items():
            for artefact in self.artefacts(record_id):
                if artefact.role is ArtefactRole.OUTPUT:
                    produced[artefact.id] = (record.process, artefact.path)
        consumers: dict[tuple[str, Path], set[str]] = {}
        for edge in self.store.lineage(self.workflow.id):
            output = produced.get(edge.artefact_id)
            consumer = self.records.get(edge.step_id)
            if output is not None and consumer is not None:
                consumers.setdefault(output, set()).add(consumer.process)
        return consumers

    def downstream(
        self, steps: Iterable[AggregatedStep], *, only: ArtefactRecord | None = None
    ) -> list[AggregatedStep]:
        """Every step that consumed, directly or not, an output of `steps` (not `steps`).

        With `only`, start from the consumers of that one output artefact instead.
        """
        consumers = self._consumers()
        start = list(steps)
        seen = {a.process for a in start}
        found: list[AggregatedStep] = []

        def visit(names: Iterable[str]) -> None:
            for name in sorted(names):
                if name not in seen and name in self.by_process:
                    seen.add(name)
                    queue.append(name)
                    found.append(self.by_process[name])

        queue: list[str] = []
        if only is not None:
            # Records of any run count: an output made in run 1 may be consumed in run 2.
            producer = self.records[only.step_id].process
            visit(consumers.get((producer, only.path), ()))
        else:
            queue = [a.process for a in start]
        while queue:
            process = queue.pop(0)
            visit(n for (p, _), names in consumers.items() if p == process for n in names)
        return found

    def session_directory(self) -> Path:
        for record in self.records.values():
            # An earlier attempt's directory was moved into <session>/.attempts/.
            if record.workdir is not None and ATTEMPTS_DIR not in record.workdir.parts:
                return record.workdir.parent
        return Path(self.workflow.entry).parent / WORK_DIR_NAME / self.workflow.session


def _size(path: Path) -> int:
    try:
        if path.is_dir() and not path.is_symlink():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.lstat().st_size
    except OSError:
        return 0


def _existing(paths: Iterable[Path]) -> list[Path]:
    return [p for p in dict.fromkeys(paths) if p.exists() or p.is_symlink()]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _files_text(files: Sequence[Path], size: int) -> str:
    if not files:
        return "deletes no files"
    return f"deletes {_plural(len(files), 'file')} ({size / 1e6:.1f} MB)"


def _refuse_while_running(instance: _Instance, what: str) -> None:
    if instance.running:
        raise ActionRefused(
            f"session {instance.workflow.session!r} is running; {what} once it ended, or stop "
            f"it first (`maestro abort {instance.workflow.session}` or `maestro kill`)"
        )


def _invalidation(
    request: ActionRequest, instance: _Instance, targets: list[AggregatedStep], extra: list[Path]
) -> ActionPlan:
    steps = [a for a in targets if a.state.is_success]
    files = _existing([*extra, *(o.path for a in steps for o in instance.outputs(a.step))])
    size = sum(_size(f) for f in files)
    summary = (
        f"invalidate {_plural(len(steps), 'step')} of session {request.session}"
        f" ({', '.join(a.process for a in steps[:5])}{', ...' if len(steps) > 5 else ''})"
        if steps
        else f"invalidate no step of session {request.session}"
    )
    return ActionPlan(request, tuple(a.step for a in steps), tuple(files), size,
                      f"{summary}; {_files_text(files, size)}")  # fmt: skip


def plan_action(store: SqliteStateStore, request: ActionRequest) -> ActionPlan:
    """What `request` would do, without doing it.

    Raises:
        ActionRefused: the action does not apply; the message says why and what to do.
    """
    if request.kind not in KINDS:
        raise ActionRefused(f"unknown action {request.kind!r}; one of {', '.join(KINDS)}")
    instance = _Instance(store, request.session)
    match request.kind:
        case "invalidate-workflow":
            _refuse_while_running(instance, "invalidate it")
            return _invalidation(request, instance, instance.aggregated, [])
        case "invalidate-step":
            _refuse_while_running(instance, "invalidate its steps")
            if request.step_id is None:
                raise ActionRefused("invalidate-step needs a step")
            target = instance.authoritative(request.step_id)
            if not target.state.is_success:
                raise ActionRefused(
                    f"step {target.process!r} is {target.state.value}, not successful: it will "
                    "run again anyway on `--resume`; only successful steps can be invalidated"
                )
            targets = [target, *(instance.downstream([target]) if request.propagate else [])]
            return _invalidation(request, instance, targets, [])
        case "invalidate-artefact":
            _refuse_while_running(instance, "invalidate its files")
            return _plan_artefact(request, instance)
        case "rerun":
            return _plan_rerun(request, instance)
        case _:
            return _plan_abort(request, instance)


def _plan_artefact(request: ActionRequest, instance: _Instance) -> ActionPlan:
    if request.artefact_id is None:
        raise ActionRefused("invalidate-artefact needs an artefact")
    artefact = instance.artefact(request.artefact_id)
    if artefact.role is ArtefactRole.INPUT:
        if request.propagate:
            raise ActionRefused(
                f"{artefact.path} is an input artefact; propagation is offered for output "
                "artefacts only (invalidate the output of the step that produced it instead)"
            )
        if artefact.source_id is None:
            raise ActionRefused(
                f"{artefact.path} is an input you provided, not a file this workflow made; "
                "maestro never deletes it"
            )
        artefact = instance.artefact(artefact.source_id)
    producer = instance.authoritative(artefact.step_id)
    targets = instance.downstream([producer], only=artefact) if request.propagate else []
    plan = _invalidation(request, instance, targets, [artefact.path])
    head = f"delete {artefact.path} (step {producer.process!r} stays and reruns on --resume)"
    rest = f"; and {plan.summary}" if targets else f"; {_files_text(plan.files, plan.bytes)}"
    return ActionPlan(request, plan.steps, plan.files, plan.bytes, head + rest)


def _plan_rerun(request: ActionRequest, instance: _Instance) -> ActionPlan:
    _refuse_while_running(instance, "rerun steps")
    rerunnable = {StepState.FAILED, StepState.INVALIDATED, StepState.ABORTED}
    if request.step_id is not None:
        target = instance.authoritative(request.step_id)
        if target.state not in rerunnable:
            raise ActionRefused(
                f"step {target.process!r} is {target.state.value}; only failed, aborted or "
                "invalidated steps can be rerun (invalidate it first to run it again)"
            )
        targets = [target]
    else:
        targets = [a for a in instance.aggregated if a.state in rerunnable]
        if not targets:
            raise ActionRefused(
                f"session {request.session!r} has no failed, aborted or invalidated step to rerun"
            )
    downstream = [a for a in instance.downstream(targets) if a not in targets]
    steps = (*(a.step for a in targets), *(a.step for a in downstream))
    names = ", ".join(a.process for a in (*targets, *downstream))
    # Steps downstream of a failure that never started have no record, so they cannot be
    # listed; the resume runs them all the same.
    unreached = (
        "; steps the last run never reached run too"
        if instance.workflow.state is not WorkflowState.SUCCEEDED
        else ""
    )
    summary = (
        f"rerun {_plural(len(steps), 'step')} of session {request.session} ({names}) as a "
        f"detached --resume{unreached}; deletes no files (earlier attempts move to .attempts/)"
    )
    return ActionPlan(request, steps, (), 0, summary)


def _plan_abort(request: ActionRequest, instance: _Instance) -> ActionPlan:
    if not instance.running:
        raise ActionRefused(
            f"session {request.session!r} is {instance.workflow.state.value}, not running; "
            "there is nothing to abort"
        )
    pending = [a for a in instance.aggregated if a.state is StepState.PENDING]
    if request.step_id is not None:
        target = instance.authoritative(request.step_id)
        if target.state is not StepState.PENDING:
            raise ActionRefused(
                f"step {target.process!r} is {target.state.value}; only a pending step can be "
                f"aborted (`maestro kill {request.session}` stops running ones)"
            )
        pending = [target]
        summary = f"abort pending step {target.process!r} of session {request.session}"
    else:
        summary = (
            f"abort session {request.session}: {_plural(len(pending), 'pending step')} and "
            "everything not yet started never start; running steps finish"
        )
    return ActionPlan(request, tuple(a.step for a in pending), (), 0, summary)


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_abort_request(session_directory: Path, processes: Sequence[str] | None) -> Path:
    """Ask the running workflow not to start `processes` (None: anything not yet started).

    The workflow reads this file before it starts each process (`Session.abort_requested`).
    """
    path = session_directory / ABORT_FILE
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        current = {"all": False, "processes": []}
    if processes is None:
        current["all"] = True
    else:
        current["processes"] = sorted({*current.get("processes", []), *processes})
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(current) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def apply_action(
    store: SqliteStateStore, request: ActionRequest, *, who: str | None = None
) -> ActionPlan:
    """Plan `request` again, perform it, and record it in the store's action history.

    Raises:
        ActionRefused: as `plan_action`.
    """
    plan = plan_action(store, request)
    instance_id = store.get_workflow(request.session).id
    pid: int | None = None
    if request.kind.startswith("invalidate"):
        for step in plan.steps:
            store.record_step_state(step.id, StepState.INVALIDATED, reason="INVALIDATED")
        for path in plan.files:
            _delete(path)
    elif request.kind == "rerun":
        for step in plan.steps:
            if step.state.is_success:  # downstream of a rerun step: redo it too
                store.record_step_state(step.id, StepState.INVALIDATED, reason=RERUN_REASON)
        instance = _Instance(store, request.session)
        pid = _start_resume(instance.workflow, store, instance.session_directory())
    else:
        instance = _Instance(store, request.session)
        names = None if request.step_id is None else [s.process for s in plan.steps]
        write_abort_request(instance.session_directory(), names)
    store.record_action(
        what=request.kind,
        who=who or getpass.getuser(),
        workflow_id=instance_id,
        details={
            "steps": [s.process for s in plan.steps],
            "files": [str(f) for f in plan.files],
            "bytes": plan.bytes,
            "propagate": request.propagate,
            "summary": plan.summary,
            **({"pid": pid} if pid is not None else {}),
        },
        at=time.time(),
    )
    return ActionPlan(plan.request, plan.steps, plan.files, plan.bytes, plan.summary, pid)


def _start_resume(workflow: WorkflowRecord, store: SqliteStateStore, directory: Path) -> int:
    """Start `--resume` of the session detached, where and as the session was first run."""
    # Imported here: background pulls in the process-starting machinery that planning never needs.
    from libmaestro.background import start_background
    from libmaestro.project import Project, RunOptions, find_project

    entry = Path(workflow.entry)
    if not entry.exists():
        raise ActionRefused(
            f"session {workflow.session!r} was started from {entry}, which no longer exists; "
            "it cannot be rerun from here"
        )
    # The run's working directory is the one that holds maestro_work/<session>/.
    found = find_project(entry)
    project = Project(directory.parent.parent, found.entry, found.name, found.settings)
    config = workflow.metadata.get("config")
    options = RunOptions(
        resume=workflow.session,
        config=Path(config) if config and Path(config).is_file() else None,
    )
    os.environ.setdefault("MAESTRO_STORE", str(store.path))  # the detached run records here too
    return start_background(project, options).pid
