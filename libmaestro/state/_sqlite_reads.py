"""The read side of `SqliteStateStore`: listings, records and what a resume reuses.

Reads take the store's connection for one short query each (see `libmaestro.state.sqlite`);
rows become frozen records through `_sqlite_rows`.
"""

# ruff: noqa: S608  # SQL text joins only our own column lists and names; values are bound

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Collection

from libmaestro.state._sqlite_db import SqliteDatabase
from libmaestro.state._sqlite_rows import (
    ART_COLS,
    RUN_COLS,
    STEP_COLS,
    WF_COLS,
    artefact_of,
    last_success_of,
    listing_filter,
    run_of,
    step_of,
    workflow_of,
)
from libmaestro.state.aggregate import aggregate_steps, rollup_of
from libmaestro.state.records import (
    ActionRecord,
    AggregatedStep,
    ArtefactRecord,
    LastSuccess,
    LineageRecord,
    Rollup,
    RunRecord,
    StepRecord,
    WorkflowRecord,
    WorkflowSummary,
)
from libmaestro.state.states import StepState, WorkflowState

# Each process's latest record decides its state; a skip decides as the record it reused.
# A process has one record per run, so its latest is the one of its highest attempt, and
# SQLite takes the bare columns of a single MAX() aggregate from the row holding the maximum.
# A skip whose origin is gone counts under a NULL state.
_ROLLUP_SQL = """
SELECT CASE WHEN l.state = 'skipped' THEN o.state ELSE l.state END AS decided,
       CASE WHEN l.state = 'skipped' THEN o.grp ELSE l.grp END AS decided_group,
       COUNT(*)
FROM (
    SELECT state, grp, reused_from, MAX(attempt)
    FROM steps WHERE workflow_id = ? GROUP BY process
) l
LEFT JOIN steps o ON o.id = l.reused_from AND o.workflow_id = ?
GROUP BY decided, decided_group
"""


class SqliteReads(SqliteDatabase):
    """Every query of the state store; `SqliteStateStore` adds the writes."""

    def get_workflow(self, session: str) -> WorkflowRecord:
        """See `StateStore.get_workflow`."""
        with self._read() as conn:
            sql = f"SELECT {WF_COLS} FROM workflows w WHERE w.session = ?"
            return workflow_of(self._one(conn, sql, (session,), f"session named {session!r}"))

    def workflow(self, workflow_id: int) -> WorkflowRecord:
        """See `StateStore.workflow`."""
        with self._read() as conn:
            return self._get_workflow(conn, workflow_id)

    def latest_workflow(self, project: str | None = None) -> WorkflowRecord | None:
        """See `StateStore.latest_workflow`."""
        where, params = ("WHERE w.project = ?", [project]) if project is not None else ("", [])
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {WF_COLS} FROM workflows w {where} "
                "ORDER BY w.created_at DESC, w.id DESC LIMIT 1",
                params,
            ).fetchone()
        return None if row is None else workflow_of(row)

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
        """See `StateStore.list_workflows`."""
        where, params = listing_filter(
            search=search, errors_only=errors_only, states=states, project=project
        )
        sql = (
            f"SELECT {WF_COLS}, {RUN_COLS} FROM workflows w "
            f"LEFT JOIN runs r ON r.id = w.latest_run_id{where} "
            "ORDER BY w.created_at DESC, w.id DESC LIMIT :limit OFFSET :offset"
        )
        params.update(limit=max(0, limit), offset=max(0, offset))
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        width = WF_COLS.count(",") + 1
        result = []
        for row in rows:
            run = None if row[width] is None else run_of(row[width:])
            result.append(
                WorkflowSummary(
                    workflow=workflow_of(row[:width]),
                    latest_run=run,
                    attempts=0 if run is None else run.attempt,
                )
            )
        return result

    def count_workflows(
        self,
        *,
        search: str | None = None,
        errors_only: bool = False,
        states: Collection[WorkflowState] | None = None,
        project: str | None = None,
    ) -> int:
        """See `StateStore.count_workflows`."""
        where, params = listing_filter(
            search=search, errors_only=errors_only, states=states, project=project
        )
        with self._read() as conn:
            (count,) = conn.execute(f"SELECT count(*) FROM workflows w{where}", params).fetchone()
        return int(count)

    def runs(self, workflow_id: int) -> list[RunRecord]:
        """See `StateStore.runs`."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {RUN_COLS} FROM runs r WHERE r.workflow_id = ? ORDER BY r.attempt",
                (workflow_id,),
            ).fetchall()
        return [run_of(row) for row in rows]

    def run(self, run_id: int) -> RunRecord:
        """See `StateStore.run`."""
        with self._read() as conn:
            return self._get_run(conn, run_id)

    def steps(self, workflow_id: int, run_id: int | None = None) -> list[StepRecord]:
        """See `StateStore.steps`."""
        with self._read() as conn:
            return self._steps(conn, workflow_id, run_id)

    @staticmethod
    def _steps(conn: sqlite3.Connection, workflow_id: int, run_id: int | None) -> list[StepRecord]:
        if run_id is None:
            sql = (
                f"SELECT {STEP_COLS} FROM steps s WHERE s.workflow_id = ? ORDER BY s.attempt, s.id"
            )
            return [step_of(row) for row in conn.execute(sql, (workflow_id,))]
        sql = f"SELECT {STEP_COLS} FROM steps s WHERE s.run_id = ? ORDER BY s.id"
        return [step_of(row) for row in conn.execute(sql, (run_id,))]

    def step(self, step_id: int) -> StepRecord:
        """See `StateStore.step`."""
        with self._read() as conn:
            return self._get_step(conn, step_id)

    def aggregated_steps(self, workflow_id: int) -> list[AggregatedStep]:
        """See `StateStore.aggregated_steps`."""
        return aggregate_steps(self.steps(workflow_id))

    def rollup(self, workflow_id: int) -> Rollup:
        """See `StateStore.rollup`.

        Counted in SQL, as `aggregate_steps` decides: `maestro status` and the UI's list show
        one per session, and reading every record of a 10,000-step session took 130 ms a row.
        States and groups come in no particular order (`rollup_of` keeps first appearance).
        """
        with self._read() as conn:
            rows = conn.execute(_ROLLUP_SQL, (workflow_id, workflow_id)).fetchall()
        if any(state is None for state, _, _ in rows):  # a skip's origin is gone: walk them all
            return rollup_of(self.aggregated_steps(workflow_id))
        counts: Counter[StepState] = Counter()
        groups: dict[str, Counter[StepState]] = {}
        for state, group, number in rows:
            step_state = StepState(state)
            counts[step_state] += number
            if group:
                groups.setdefault(group, Counter())[step_state] += number
        return Rollup(
            counts=dict(counts),
            total=sum(counts.values()),
            groups={name: dict(group) for name, group in groups.items()},
        )

    def last_success(self, workflow_id: int, process: str) -> LastSuccess | None:
        """See `StateStore.last_success`."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {STEP_COLS} FROM steps s WHERE s.workflow_id = ? AND s.process = ? "
                "ORDER BY s.attempt, s.id",
                (workflow_id, process),
            ).fetchall()
            records = [step_of(row) for row in rows]
            # A skip's origin has the same process name, so it is among `records`.
            chosen = aggregate_steps(records)
            if not chosen or chosen[0].state is not StepState.SUCCEEDED:
                return None
            step = chosen[0].step
            arts = [
                artefact_of(row)
                for row in conn.execute(
                    f"SELECT {ART_COLS} FROM artefacts a WHERE a.step_id = ? ORDER BY a.id",
                    (step.id,),
                )
            ]
        return last_success_of(step, arts)

    def last_successes(self, workflow_id: int) -> dict[str, LastSuccess]:
        """See `StateStore.last_successes`."""
        with self._read() as conn:
            chosen = [
                item.step
                for item in aggregate_steps(self._steps(conn, workflow_id, None))
                if item.state is StepState.SUCCEEDED
            ]
            wanted = {step.id for step in chosen}
            by_step: dict[int, list[ArtefactRecord]] = {}
            for row in conn.execute(
                f"SELECT {ART_COLS} FROM artefacts a WHERE a.workflow_id = ? ORDER BY a.id",
                (workflow_id,),
            ):
                if row[2] in wanted:
                    by_step.setdefault(row[2], []).append(artefact_of(row))
        return {step.process: last_success_of(step, by_step.get(step.id, [])) for step in chosen}

    def artefacts(self, step_id: int) -> list[ArtefactRecord]:
        """See `StateStore.artefacts`."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {ART_COLS} FROM artefacts a WHERE a.step_id = ? "
                "ORDER BY a.role = 'output', a.id",
                (step_id,),
            ).fetchall()
        return [artefact_of(row) for row in rows]

    def lineage(self, workflow_id: int) -> list[LineageRecord]:
        """See `StateStore.lineage`."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT l.step_id, l.artefact_id FROM lineage l JOIN steps s ON s.id = l.step_id "
                "WHERE s.workflow_id = ? ORDER BY l.step_id, l.artefact_id",
                (workflow_id,),
            ).fetchall()
        return [LineageRecord(step_id=row[0], artefact_id=row[1]) for row in rows]

    def actions(self, workflow_id: int | None = None) -> list[ActionRecord]:
        """See `StateStore.actions`."""
        where, params = (
            ("WHERE workflow_id = ?", [workflow_id]) if workflow_id is not None else ("", [])
        )
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT id, workflow_id, at, who, what, details FROM actions {where} "
                "ORDER BY at, id",
                params,
            ).fetchall()
        return [
            ActionRecord(
                id=r[0], workflow_id=r[1], at=r[2], who=r[3], what=r[4], details=json.loads(r[5])
            )
            for r in rows
        ]
