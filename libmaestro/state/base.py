"""The state store contract: what the runner writes and what `status`, `logs` and the UI read.

Only the runner and the action commands write; everything else reads through these methods and
never looks into ``maestro_work/`` itself. Every write is one short transaction, so a run, a
``maestro status`` and the UI can use one store at once, from several processes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from libmaestro.state.records import (
    ActionRecord,
    AggregatedStep,
    ArtefactRecord,
    Fingerprint,
    LastSuccess,
    LineageRecord,
    Rollup,
    RunRecord,
    StepRecord,
    WorkflowRecord,
    WorkflowSummary,
)
from libmaestro.state.states import Reason, RunState, StepState, WorkflowState

#: The schema this code reads and writes (`PRAGMA user_version` in SQLite).
SCHEMA_VERSION = 2


class StateStore(Protocol):
    """Where runs, steps, artefacts and their lineage are recorded.

    Contract for implementations:

    - A step becomes SUCCEEDED only in `succeed_step`, in the same transaction that records its
      output artefacts and lineage: after a crash a step is either succeeded with all its
      outputs recorded, or not succeeded at all.
    - Every state change is checked against `libmaestro.state.states` and refused with
      `StateTransitionError` when the state machine does not allow it.
    - A finished run has no pending or running step: ending a run (or finding it interrupted)
      aborts what it left active.
    - Times default to "now"; the arguments exist so tests and imports can set them.
    - Lookups by an unknown session, run or step raise `StateNotFoundError`.
    """

    # --- writes ---------------------------------------------------------------------------

    def create_workflow(
        self,
        *,
        session: str,
        project: str,
        entry: str,
        config: str = "",
        args: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        user: str | None = None,
        host: str | None = None,
        metadata: Mapping[str, str] | None = None,
        created_at: float | None = None,
    ) -> WorkflowRecord:
        """Record a new workflow instance; `session` must be new (else StateConflictError).

        `user` and `host` default to the current user and machine.
        """
        ...

    def start_run(
        self,
        workflow_id: int,
        *,
        pid: int,
        pid_start_time: float | None,
        command: Sequence[str] = (),
        host: str | None = None,
        started_at: float | None = None,
    ) -> RunRecord:
        """Start the next attempt of an instance; refused while another of its runs is running."""
        ...

    def finish_run(
        self, run_id: int, state: RunState, *, ended_at: float | None = None
    ) -> RunRecord:
        """End a running run; its pending and running steps become aborted (RUN_ENDED)."""
        ...

    def record_waiting(self, run_id: int, waiting: int) -> None:
        """Note how much a running run has yet to start (see `RunRecord.waiting`); a run that
        has ended keeps 0."""
        ...

    def start_step(
        self,
        run_id: int,
        *,
        process: str,
        state: StepState = StepState.RUNNING,
        cache_key: str = "",
        executor: str = "",
        workdir: Path | None = None,
        job_id: str = "",
        group: str = "",
        inputs: Sequence[Fingerprint] = (),
        started_at: float | None = None,
        reason: str = "",
    ) -> StepRecord:
        """Record a process call of a running run, pending or running; `inputs` are recorded.

        A process name appears at most once per run (else StateConflictError).
        """
        ...

    def record_skipped(
        self, run_id: int, *, reused: int, group: str | None = None, reason: str = Reason.UP_TO_DATE
    ) -> StepRecord:
        """Record that a running run reuses the success of step `reused` ("already successful").

        The new skipped record copies the process name, cache key, executor and workdir of the
        reused step, which must be a succeeded step of the same instance.
        """
        ...

    def record_step_state(
        self,
        step_id: int,
        state: StepState,
        *,
        reason: str = "",
        job_id: str | None = None,
        exit_code: int | None = None,
        error: str = "",
        started_at: float | None = None,
        ended_at: float | None = None,
        max_rss_kib: int | None = None,
        cpu_seconds: float | None = None,
    ) -> StepRecord:
        """Move a step to any allowed state except SUCCEEDED (that is `succeed_step`'s alone).

        Moving to running stamps `started_at`; moving to a terminal state stamps `ended_at`.
        Recording a pending or running step's current state again only updates its details
        (for example the `job_id` learnt after submission).
        """
        ...

    def succeed_step(
        self,
        step_id: int,
        *,
        outputs: Sequence[Fingerprint],
        inputs: Sequence[Fingerprint] = (),
        exit_code: int | None = 0,
        ended_at: float | None = None,
        max_rss_kib: int | None = None,
        cpu_seconds: float | None = None,
    ) -> StepRecord:
        """Mark a running step succeeded together with its verified outputs, in one transaction.

        `inputs` are recorded too (pass them here or to `start_step`, not both). An input whose
        path is an output of a succeeded step of the instance gets a lineage edge to it.
        """
        ...

    def fail_step(
        self,
        step_id: int,
        *,
        reason: str = "",
        exit_code: int | None = None,
        error: str = "",
        ended_at: float | None = None,
        max_rss_kib: int | None = None,
        cpu_seconds: float | None = None,
    ) -> StepRecord:
        """Mark a pending or running step failed, with why (reason, exit code, error text)."""
        ...

    def abort_step(
        self, step_id: int, *, reason: str = Reason.CANCELLED, error: str = ""
    ) -> StepRecord:
        """Mark a pending or running step aborted (stopped from outside)."""
        ...

    def mark_interrupted_runs(self, is_alive: Callable[[RunRecord], bool]) -> list[RunRecord]:
        """Mark every running run whose process is gone as interrupted; return those runs.

        `is_alive` is asked about each running run outside any transaction (it may be slow);
        `libmaestro.state.run_is_alive` answers for runs of this machine. Steps those runs left
        pending or running become aborted (INTERRUPTED).
        """
        ...

    def move_workdir(self, workflow_id: int, old: Path, new: Path) -> int:
        """Point the steps recorded in working directory `old` at `new` (attempts moved aside)."""
        ...

    def record_action(
        self,
        *,
        what: str,
        who: str | None = None,
        workflow_id: int | None = None,
        details: Mapping[str, Any] | None = None,
        at: float | None = None,
    ) -> ActionRecord:
        """Keep a trace of a user's action (invalidate, rerun, abort, kill)."""
        ...

    # --- reads ----------------------------------------------------------------------------

    def get_workflow(self, session: str) -> WorkflowRecord:
        """The instance of a session."""
        ...

    def workflow(self, workflow_id: int) -> WorkflowRecord:
        """The instance with this id."""
        ...

    def latest_workflow(self, project: str | None = None) -> WorkflowRecord | None:
        """The most recently created instance (of `project` if given), or None."""
        ...

    def list_workflows(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        search: str | None = None,
        errors_only: bool = False,
        states: Collection[WorkflowState] | None = None,
        project: str | None = None,
    ) -> list[WorkflowSummary]:
        """Instances newest first, one page at a time.

        Args:
            limit: the page size.
            offset: how many matching instances to pass over.
            search: whitespace-separated terms that must all match, case-insensitively, as a
                substring of the session name, project, entry or any metadata key or value;
                ``key=value`` matches metadata `key` exactly with `value` as a substring.
            errors_only: only failed and interrupted instances.
            states: only instances in one of these states.
            project: only instances of this project.
        """
        ...

    def count_workflows(
        self,
        *,
        search: str | None = None,
        errors_only: bool = False,
        states: Collection[WorkflowState] | None = None,
        project: str | None = None,
    ) -> int:
        """How many instances `list_workflows` would page through with the same filters."""
        ...

    def runs(self, workflow_id: int) -> list[RunRecord]:
        """The runs of an instance, first attempt first."""
        ...

    def run(self, run_id: int) -> RunRecord:
        """One run."""
        ...

    def steps(self, workflow_id: int, run_id: int | None = None) -> list[StepRecord]:
        """Every step record of an instance (or of one of its runs), in the order recorded."""
        ...

    def step(self, step_id: int) -> StepRecord:
        """One step record."""
        ...

    def aggregated_steps(self, workflow_id: int) -> list[AggregatedStep]:
        """Each step's authoritative state across runs (see `libmaestro.state.aggregate`)."""
        ...

    def rollup(self, workflow_id: int) -> Rollup:
        """The aggregated view counted per state."""
        ...

    def last_success(self, workflow_id: int, process: str) -> LastSuccess | None:
        """The success resume may reuse for `process`, if its authoritative state is succeeded."""
        ...

    def last_successes(self, workflow_id: int) -> dict[str, LastSuccess]:
        """`last_success` for every process of an instance at once (a few queries in all)."""
        ...

    def artefacts(self, step_id: int) -> list[ArtefactRecord]:
        """The files a step consumed and produced, inputs first."""
        ...

    def lineage(self, workflow_id: int) -> list[LineageRecord]:
        """Every "step consumed output artefact" edge of an instance."""
        ...

    def actions(self, workflow_id: int | None = None) -> list[ActionRecord]:
        """Recorded actions, oldest first (of one instance if given)."""
        ...

    def close(self) -> None:
        """Release the database; the store reopens on next use."""
        ...
