"""The state store: every workflow instance, run, step, artefact and their lineage, per user.

The state machines are in `libmaestro.state.states`, the aggregated view in
`libmaestro.state.aggregate`, the contract in `libmaestro.state.base` and the SQLite
implementation in `libmaestro.state.sqlite`. This package never imports the executors, the
runner or the CLI: the runner alone connects them (STYLE.md §1).
"""

from __future__ import annotations

from libmaestro.state.aggregate import aggregate_steps, rollup_of
from libmaestro.state.base import SCHEMA_VERSION, StateStore
from libmaestro.state.errors import (
    StateBusyError,
    StateConflictError,
    StateError,
    StateNotFoundError,
    StateTransitionError,
    StateVersionError,
)
from libmaestro.state.liveness import run_is_alive
from libmaestro.state.records import (
    ActionRecord,
    AggregatedStep,
    ArtefactRecord,
    ArtefactRole,
    Fingerprint,
    LastSuccess,
    LineageRecord,
    NewStep,
    Rollup,
    RunRecord,
    StepRecord,
    StepSuccess,
    WorkflowRecord,
    WorkflowSummary,
)
from libmaestro.state.sqlite import SqliteStateStore, default_store_path
from libmaestro.state.states import (
    STEP_TRANSITIONS,
    Reason,
    RunState,
    StepState,
    WorkflowState,
    can_transition,
    check_run_transition,
    check_transition,
)

__all__ = [
    "SCHEMA_VERSION",
    "STEP_TRANSITIONS",
    "ActionRecord",
    "AggregatedStep",
    "ArtefactRecord",
    "ArtefactRole",
    "Fingerprint",
    "LastSuccess",
    "LineageRecord",
    "NewStep",
    "Reason",
    "Rollup",
    "RunRecord",
    "RunState",
    "SqliteStateStore",
    "StateBusyError",
    "StateConflictError",
    "StateError",
    "StateNotFoundError",
    "StateStore",
    "StateTransitionError",
    "StateVersionError",
    "StepRecord",
    "StepState",
    "StepSuccess",
    "WorkflowRecord",
    "WorkflowState",
    "WorkflowSummary",
    "aggregate_steps",
    "can_transition",
    "check_run_transition",
    "check_transition",
    "default_store_path",
    "rollup_of",
    "run_is_alive",
]
