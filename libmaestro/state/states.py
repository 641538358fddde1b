"""The state machines of steps, runs and workflow instances: the one place they are defined.

A *workflow instance* is one session. Each time it is started (first attempt or a restart with
``--resume``) it gets a new *run*. Each process call inside a run is a *step*, named by its
process name, which is unique within the instance.

Step states:

=============  ========  ==================================================================
state          terminal  meaning
=============  ========  ==================================================================
pending        no        known to the run, waiting for its inputs or for a free slot
running        no        submitted to its executor and not finished
succeeded      yes       exited 0 and its declared outputs were verified and recorded
failed         yes       non-zero exit, missing outputs, staging error, executor failure
skipped        yes       already successful: an earlier run's success was reused unchanged
aborted        yes       stopped from outside (kill, Ctrl-C) or its run ended or died first
invalidated    yes       a success (or skip) that a user declared stale; it will rerun
=============  ========  ==================================================================

``succeeded`` and ``skipped`` are the successful states (`StepState.is_success`). A step never
leaves a terminal state except a success becoming ``invalidated``; running it again makes a new
step record in a new run. Allowed moves (``new`` means the record is being created)::

    new        -> pending | running | skipped
    pending    -> running | skipped | failed | aborted
    running    -> succeeded | failed | aborted
    succeeded  -> invalidated
    skipped    -> invalidated

Why a step ended is a separate free-text *reason* (`Reason` lists the common ones; a backend's
own word such as Slurm's ``OUT_OF_MEMORY`` is kept as is), so the state set stays small.

Run states: ``running`` then exactly one of ``succeeded``, ``failed``, ``aborted`` (stopped on
purpose) or ``interrupted`` (its process died without saying so: SIGKILL, power loss; found by
`StateStore.mark_interrupted_runs`). A workflow instance's state is its latest run's state, or
``pending`` before its first run.
"""

from __future__ import annotations

import enum

from libmaestro.state.errors import StateTransitionError


class StepState(enum.Enum):
    """Where one step (one process call in one run) is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    ABORTED = "aborted"
    INVALIDATED = "invalidated"

    @property
    def is_terminal(self) -> bool:
        """True once the step is over in its run (everything but pending and running)."""
        return self not in _ACTIVE_STEP_STATES

    @property
    def is_success(self) -> bool:
        """True for succeeded and skipped (already successful)."""
        return self in _SUCCESS_STEP_STATES


_ACTIVE_STEP_STATES = frozenset({StepState.PENDING, StepState.RUNNING})
_SUCCESS_STEP_STATES = frozenset({StepState.SUCCEEDED, StepState.SKIPPED})

#: Every allowed move; the key None stands for "the record is being created".
STEP_TRANSITIONS: dict[StepState | None, frozenset[StepState]] = {
    None: frozenset({StepState.PENDING, StepState.RUNNING, StepState.SKIPPED}),
    StepState.PENDING: frozenset(
        {StepState.RUNNING, StepState.SKIPPED, StepState.FAILED, StepState.ABORTED}
    ),
    StepState.RUNNING: frozenset({StepState.SUCCEEDED, StepState.FAILED, StepState.ABORTED}),
    StepState.SUCCEEDED: frozenset({StepState.INVALIDATED}),
    StepState.SKIPPED: frozenset({StepState.INVALIDATED}),
    StepState.FAILED: frozenset(),
    StepState.ABORTED: frozenset(),
    StepState.INVALIDATED: frozenset(),
}


def can_transition(old: StepState | None, new: StepState) -> bool:
    """Whether a step may move from `old` (None: a new record) to `new`."""
    return new in STEP_TRANSITIONS[old]


def check_transition(old: StepState | None, new: StepState, *, step: str = "") -> None:
    """Raise `StateTransitionError` unless a step may move from `old` to `new`.

    Args:
        old: the current state, or None when the step record is being created.
        new: the requested state.
        step: a name for the message (for example ``"align (run 2)"``).
    """
    if can_transition(old, new):
        return
    what = f"step {step}" if step else "a step"
    start = "a new record" if old is None else old.value
    allowed = ", ".join(sorted(s.value for s in STEP_TRANSITIONS[old])) or "nothing (it is final)"
    raise StateTransitionError(
        f"{what} cannot go from {start} to {new.value}; from {start} it can go to: {allowed}"
    )


class Reason(enum.StrEnum):
    """Common reasons a step ended as it did; backends may record their own words instead."""

    INTERRUPTED = "INTERRUPTED"  # its run's process died (SIGKILL, power loss)
    RUN_ENDED = "RUN_ENDED"  # its run finished while the step had not
    CANCELLED = "CANCELLED"  # kill, Ctrl-C or an abort action
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    MISSING_OUTPUTS = "MISSING_OUTPUTS"
    UP_TO_DATE = "UP_TO_DATE"  # skipped: same cache key, outputs unchanged


class RunState(enum.Enum):
    """Where one run (one start of a workflow instance) is in its life."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    INTERRUPTED = "interrupted"

    @property
    def is_terminal(self) -> bool:
        """True for every state but running."""
        return self is not RunState.RUNNING


def check_run_transition(old: RunState, new: RunState, *, run: str = "") -> None:
    """Raise `StateTransitionError` unless a run may move from `old` to `new`.

    A run only ever moves once: from running to one of its terminal states.
    """
    if old is RunState.RUNNING and new is not RunState.RUNNING:
        return
    what = f"run {run}" if run else "a run"
    raise StateTransitionError(
        f"{what} cannot go from {old.value} to {new.value}: only a running run can end"
    )


class WorkflowState(enum.Enum):
    """The state of a workflow instance: its latest run's, or pending before the first run."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    INTERRUPTED = "interrupted"

    @classmethod
    def of_run(cls, latest: RunState | None) -> WorkflowState:
        """The instance state given its latest run's state (None: it never ran)."""
        return cls.PENDING if latest is None else cls(latest.value)

    @property
    def is_error(self) -> bool:
        """True for the states an "errors only" listing shows: failed and interrupted."""
        return self in {WorkflowState.FAILED, WorkflowState.INTERRUPTED}
