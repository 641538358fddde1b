"""Column lists, row decoding, JSON encoding and listing filters (private to `state/sqlite.py`)."""

# ruff: noqa: S608  # SQL text joins only our own column lists and names; values are bound

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from libmaestro.state.records import (
    ArtefactRecord,
    ArtefactRole,
    LastSuccess,
    RunRecord,
    StepRecord,
    WorkflowRecord,
)
from libmaestro.state.states import RunState, StepState, WorkflowState

WF_COLS = (
    "w.id, w.session, w.project, w.entry, w.config, w.args, w.inputs, w.user, w.host, "
    "w.metadata, w.created_at, w.state"
)
RUN_COLS = (
    "r.id, r.workflow_id, r.attempt, r.state, r.started_at, r.ended_at, r.pid, "
    "r.pid_start_time, r.host, r.command, r.waiting"
)
STEP_COLS = (
    "s.id, s.workflow_id, s.run_id, s.attempt, s.process, s.state, s.reason, s.cache_key, "
    "s.executor, s.workdir, s.job_id, s.exit_code, s.started_at, s.ended_at, s.max_rss_kib, "
    "s.cpu_seconds, s.error, s.grp, s.reused_from"
)
ART_COLS = (
    "a.id, a.workflow_id, a.step_id, a.role, a.path, a.size, a.mtime_ns, a.sha256, a.source_id"
)
_STEP_STATES = {state.value: state for state in StepState}
_ROLES = {role.value: role for role in ArtefactRole}
ACTIVE_STATES = (StepState.PENDING.value, StepState.RUNNING.value)


def now(value: float | None) -> float:
    return time.time() if value is None else value


def to_json(value: Mapping[str, Any] | Sequence[str] | None, empty: str = "{}") -> str:
    return empty if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def workflow_of(row: Sequence[Any]) -> WorkflowRecord:
    return WorkflowRecord(
        id=row[0],
        session=row[1],
        project=row[2],
        entry=row[3],
        config=row[4],
        args=json.loads(row[5]),
        inputs=json.loads(row[6]),
        user=row[7],
        host=row[8],
        metadata=json.loads(row[9]),
        created_at=row[10],
        state=WorkflowState(row[11]),
    )


def run_of(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        id=row[0],
        workflow_id=row[1],
        attempt=row[2],
        state=RunState(row[3]),
        started_at=row[4],
        ended_at=row[5],
        pid=row[6],
        pid_start_time=row[7],
        host=row[8],
        command=tuple(json.loads(row[9])),
        waiting=row[10],
    )


def step_of(row: Sequence[Any]) -> StepRecord:
    return StepRecord(
        id=row[0],
        workflow_id=row[1],
        run_id=row[2],
        attempt=row[3],
        process=row[4],
        state=_STEP_STATES[row[5]],
        reason=row[6],
        cache_key=row[7],
        executor=row[8],
        workdir=None if row[9] is None else Path(row[9]),
        job_id=row[10],
        exit_code=row[11],
        started_at=row[12],
        ended_at=row[13],
        max_rss_kib=row[14],
        cpu_seconds=row[15],
        error=row[16],
        group=row[17],
        reused_from=row[18],
    )


def artefact_of(row: Sequence[Any]) -> ArtefactRecord:
    return ArtefactRecord(
        id=row[0],
        workflow_id=row[1],
        step_id=row[2],
        role=_ROLES[row[3]],
        path=Path(row[4]),
        size=row[5],
        mtime_ns=row[6],
        sha256=row[7],
        source_id=row[8],
    )


def like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def listing_filter(
    *,
    search: str | None,
    errors_only: bool,
    states: Collection[WorkflowState] | None,
    project: str | None,
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (possibly empty) and its named parameters for a workflow listing."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for n, term in enumerate((search or "").split()):
        key, sep, value = term.partition("=")
        if sep and key:
            clauses.append(
                "w.id IN (SELECT workflow_id FROM workflow_tags "
                f"WHERE key = :k{n} COLLATE NOCASE AND value LIKE :t{n} ESCAPE '\\')"
            )
            params[f"k{n}"], params[f"t{n}"] = key, like_pattern(value)
        else:
            like = f"LIKE :t{n} ESCAPE '\\'"
            clauses.append(
                f"(w.session {like} OR w.project {like} OR w.entry {like} OR w.id IN "
                f"(SELECT workflow_id FROM workflow_tags WHERE key {like} OR value {like}))"
            )
            params[f"t{n}"] = like_pattern(term)
    wanted = {s.value for s in states} if states is not None else None
    if errors_only:
        errors = {s.value for s in WorkflowState if s.is_error}
        wanted = errors if wanted is None else wanted & errors
    if wanted is not None:
        names = [f"s{i}" for i in range(len(wanted))]
        params.update(zip(names, sorted(wanted), strict=True))
        clauses.append(f"w.state IN ({', '.join(':' + n for n in names)})" if names else "0")
    if project is not None:
        clauses.append("w.project = :project")
        params["project"] = project
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def last_success_of(step: StepRecord, arts: list[ArtefactRecord]) -> LastSuccess:
    return LastSuccess(
        step=step,
        outputs=[a for a in arts if a.role is ArtefactRole.OUTPUT],
        inputs=[a for a in arts if a.role is ArtefactRole.INPUT],
    )
