"""Listing workflow instances: newest first, paging, search, errors only, and their rollups."""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from state_helpers import start_run

from libmaestro.state import (
    RunRecord,
    RunState,
    SqliteStateStore,
    StepState,
    WorkflowState,
    WorkflowSummary,
    rollup_of,
)


def _sessions(rows: list[WorkflowSummary]) -> list[str]:
    return [row.workflow.session for row in rows]


@pytest.fixture
def filled(store: SqliteStateStore) -> SqliteStateStore:
    """Six instances created one second apart (oldest first), in every interesting state."""
    specs = [
        ("ancient-owl", "rnaseq", {"sample": "S1", "batch": "b1"}, RunState.SUCCEEDED),
        ("brave-fox", "rnaseq", {"sample": "S2", "batch": "b1"}, RunState.FAILED),
        ("calm-yak", "chipseq", {"sample": "S10"}, RunState.INTERRUPTED),
        ("dull-emu", "chipseq", {"owner": "ada"}, RunState.ABORTED),
        ("eager-elk", "rnaseq", {"note": "100%_done"}, None),  # still running
        ("fresh-ant", "variants", {}, "never"),  # created, never run
    ]
    for i, (session, project, meta, end) in enumerate(specs):
        wf = store.create_workflow(
            session=session,
            project=project,
            entry="main.py",
            metadata=meta,
            created_at=1000.0 + i,
        )
        if end == "never":
            continue
        run = start_run(store, wf.id)
        step = store.start_step(run.id, process="only")
        if end is RunState.SUCCEEDED:
            store.succeed_step(step.id, outputs=[])
        if isinstance(end, RunState):
            if end is RunState.INTERRUPTED:
                dead = {run.id}
                store.mark_interrupted_runs(lambda r: r.id not in dead)  # noqa: B023 - called at once
            else:
                store.finish_run(run.id, end)
    return store


def test_list_is_newest_first_with_latest_run(filled: SqliteStateStore) -> None:
    rows = filled.list_workflows()
    assert _sessions(rows) == [
        "fresh-ant",
        "eager-elk",
        "dull-emu",
        "calm-yak",
        "brave-fox",
        "ancient-owl",
    ]
    states = {row.workflow.session: row.workflow.state for row in rows}
    assert states == {
        "fresh-ant": WorkflowState.PENDING,
        "eager-elk": WorkflowState.RUNNING,
        "dull-emu": WorkflowState.ABORTED,
        "calm-yak": WorkflowState.INTERRUPTED,
        "brave-fox": WorkflowState.FAILED,
        "ancient-owl": WorkflowState.SUCCEEDED,
    }
    assert rows[0].latest_run is None and rows[0].attempts == 0
    latest = rows[1].latest_run
    assert isinstance(latest, RunRecord)
    assert (latest.state, rows[1].attempts) == (RunState.RUNNING, 1)


def test_list_pages_without_overlap(filled: SqliteStateStore) -> None:
    pages = [_sessions(filled.list_workflows(limit=4, offset=o)) for o in (0, 4, 8)]
    assert pages[0] == ["fresh-ant", "eager-elk", "dull-emu", "calm-yak"]
    assert pages[1] == ["brave-fox", "ancient-owl"]
    assert pages[2] == []
    assert filled.count_workflows() == 6
    assert filled.list_workflows(limit=0) == []


def test_list_equal_creation_times_are_ordered_by_id(store: SqliteStateStore) -> None:
    for name in ["a", "b", "c"]:
        store.create_workflow(session=name, project="p", entry="e", created_at=5.0)
    assert _sessions(store.list_workflows()) == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("fox", ["brave-fox"]),  # a substring of the session name
        ("BRAVE", ["brave-fox"]),  # case-insensitive
        ("chipseq", ["dull-emu", "calm-yak"]),  # the project
        ("S1", ["calm-yak", "ancient-owl"]),  # any metadata value (S1 and S10)
        ("owner", ["dull-emu"]),  # any metadata key
        ("sample=S1", ["calm-yak", "ancient-owl"]),  # key=value: value is a substring
        ("sample=S10", ["calm-yak"]),
        ("batch=b1 rnaseq", ["brave-fox", "ancient-owl"]),  # every term must match
        ("batch=b1 fox", ["brave-fox"]),
        ("100%", ["eager-elk"]),  # LIKE wildcards are literal
        ("%", ["eager-elk"]),
        ("_", ["eager-elk"]),
        ("main.py", ["fresh-ant", "eager-elk", "dull-emu", "calm-yak", "brave-fox", "ancient-owl"]),
        ("nothing-like-this", []),
        ("owner=bob", []),
    ],
)
def test_search_by_name_or_metadata(
    filled: SqliteStateStore, search: str, expected: list[str]
) -> None:
    assert _sessions(filled.list_workflows(search=search)) == expected
    assert filled.count_workflows(search=search) == len(expected)


def test_errors_only_and_state_filters(filled: SqliteStateStore) -> None:
    assert _sessions(filled.list_workflows(errors_only=True)) == ["calm-yak", "brave-fox"]
    assert filled.count_workflows(errors_only=True) == 2
    running = filled.list_workflows(states=[WorkflowState.RUNNING, WorkflowState.PENDING])
    assert _sessions(running) == ["fresh-ant", "eager-elk"]
    assert filled.list_workflows(states=[]) == []
    both = filled.list_workflows(errors_only=True, states=[WorkflowState.FAILED])
    assert _sessions(both) == ["brave-fox"]
    assert _sessions(filled.list_workflows(errors_only=True, search="calm")) == ["calm-yak"]
    assert _sessions(filled.list_workflows(project="rnaseq", limit=2)) == [
        "eager-elk",
        "brave-fox",
    ]


def test_latest_workflow_per_project(filled: SqliteStateStore) -> None:
    latest = filled.latest_workflow()
    assert latest is not None and latest.session == "fresh-ant"
    chip = filled.latest_workflow("chipseq")
    assert chip is not None and chip.session == "dull-emu"
    assert filled.latest_workflow("unknown") is None


def test_interrupted_listing_row_has_aborted_step(filled: SqliteStateStore) -> None:
    wf = filled.get_workflow("calm-yak")
    (step,) = filled.steps(wf.id)
    assert (step.state, step.reason) == (StepState.ABORTED, "INTERRUPTED")


@pytest.mark.parametrize("seed", range(12))
def test_rollup_counts_what_the_aggregated_view_shows(store: SqliteStateStore, seed: int) -> None:
    # `rollup` is counted in SQL for the listings; it must agree with the aggregated view in
    # every history: reruns, skips that reuse an earlier success, failures, steps a run never
    # reached or left pending, and successes invalidated afterwards.
    rng = random.Random(seed)
    wf = store.create_workflow(session=f"random-{seed}", project="demo", entry="main.py")
    names = [f"align_{i}" for i in range(6)] + [f"call_{i}" for i in range(4)] + ["merge"]
    authoritative: dict[str, int] = {}  # process -> its latest succeeded record
    for _ in range(rng.randint(1, 4)):
        run = start_run(store, wf.id)
        for name in names:
            fate = rng.choice(["unreached", "succeeded", "failed", "skipped", "pending"])
            group = name.split("_")[0] if "_" in name else ""
            if fate == "skipped" and name in authoritative:
                store.record_skipped(run.id, reused=authoritative[name], group=group or None)
            elif fate == "pending":
                store.start_step(run.id, process=name, group=group, state=StepState.PENDING)
            elif fate in {"succeeded", "failed", "skipped"}:
                step = store.start_step(run.id, process=name, group=group)
                if fate == "failed":
                    store.fail_step(step.id, exit_code=1)
                else:
                    store.succeed_step(step.id, outputs=[])
                    authoritative[name] = step.id
        store.finish_run(run.id, rng.choice([RunState.SUCCEEDED, RunState.FAILED]))
        for name, step_id in list(authoritative.items()):
            if rng.random() < 0.15:
                store.record_step_state(step_id, StepState.INVALIDATED)
                del authoritative[name]
    assert store.rollup(wf.id) == rollup_of(store.aggregated_steps(wf.id))


def test_rollup_of_a_skip_whose_origin_is_gone_falls_back_to_the_full_walk(
    store: SqliteStateStore, store_path: Path
) -> None:
    wf = store.create_workflow(session="orphan", project="demo", entry="main.py")
    first = start_run(store, wf.id)
    origin = store.start_step(first.id, process="a")
    store.succeed_step(origin.id, outputs=[])
    store.finish_run(first.id, RunState.SUCCEEDED)
    second = start_run(store, wf.id)
    store.record_skipped(second.id, reused=origin.id)
    store.finish_run(second.id, RunState.SUCCEEDED)
    store.close()
    with closing(sqlite3.connect(store_path)) as raw:  # foreign keys off: a damaged store
        raw.execute("DELETE FROM steps WHERE id = ?", (origin.id,))
        raw.commit()
    assert store.rollup(wf.id) == rollup_of(store.aggregated_steps(wf.id))
    assert store.rollup(wf.id).counts == {StepState.SKIPPED: 1}
