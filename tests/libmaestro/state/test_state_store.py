"""SqliteStateStore: recording runs and steps, the aggregated view (seed 003) and resume lookups."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from state_helpers import new_workflow, start_run

from libmaestro.state import (
    ArtefactRole,
    Fingerprint,
    NewStep,
    Reason,
    RunState,
    SqliteStateStore,
    StateBusyError,
    StateConflictError,
    StateNotFoundError,
    StateTransitionError,
    StepState,
    StepSuccess,
    WorkflowState,
    default_store_path,
)

MakeFile = Callable[..., Fingerprint]
STEPS = ["step1", "step2", "step3", "step4", "step5"]


def test_seed_003_worked_example(store: SqliteStateStore, make_file: MakeFile) -> None:
    """Step3 fails in run 1; run 2 skips step1/2 and runs step3-5: all succeeded, with their runs."""
    wf = new_workflow(store, "seed-example")
    run1 = start_run(store, wf.id)
    firsts = {}
    for name in ["step1", "step2"]:
        step = store.start_step(run1.id, process=name, cache_key=f"key-{name}")
        firsts[name] = store.succeed_step(step.id, outputs=[make_file(f"{name}.out")])
    step3 = store.start_step(run1.id, process="step3")
    store.fail_step(step3.id, exit_code=2, reason="exit code 2", error="step3: bad input")
    store.finish_run(run1.id, RunState.FAILED)
    assert store.workflow(wf.id).state is WorkflowState.FAILED

    run2 = start_run(store, wf.id)
    assert run2.attempt == 2
    for name in ["step1", "step2"]:
        skipped = store.record_skipped(run2.id, reused=firsts[name].id)
        assert (skipped.state, skipped.reused_from, skipped.reason) == (
            StepState.SKIPPED,
            firsts[name].id,
            Reason.UP_TO_DATE,
        )
        assert skipped.cache_key == f"key-{name}"
    step3 = store.start_step(run2.id, process="step3")

    # While run 2 is active: step3 shows its state in run 2, step1/2 their success in run 1.
    view = {item.process: item for item in store.aggregated_steps(wf.id)}
    assert [item.process for item in store.aggregated_steps(wf.id)] == STEPS[:3]
    assert (view["step3"].state, view["step3"].attempt) == (StepState.RUNNING, 2)
    assert (view["step1"].state, view["step1"].attempt) == (StepState.SUCCEEDED, 1)
    assert view["step1"].latest_attempt == 2
    assert store.workflow(wf.id).state is WorkflowState.RUNNING
    running = store.rollup(wf.id)
    assert (running.count(StepState.RUNNING), running.count(StepState.SUCCEEDED)) == (1, 2)

    store.succeed_step(step3.id, outputs=[make_file("step3.out")])
    for name in ["step4", "step5"]:
        step = store.start_step(run2.id, process=name)
        store.succeed_step(step.id, outputs=[make_file(f"{name}.out")])
    store.finish_run(run2.id, RunState.SUCCEEDED)

    view = {item.process: item for item in store.aggregated_steps(wf.id)}
    assert list(view) == STEPS
    assert {name: (item.state, item.attempt) for name, item in view.items()} == {
        "step1": (StepState.SUCCEEDED, 1),
        "step2": (StepState.SUCCEEDED, 1),
        "step3": (StepState.SUCCEEDED, 2),
        "step4": (StepState.SUCCEEDED, 2),
        "step5": (StepState.SUCCEEDED, 2),
    }
    assert view["step1"].step.id == firsts["step1"].id
    assert view["step3"].step.run_id == run2.id
    rollup = store.rollup(wf.id)
    assert (rollup.total, rollup.count(StepState.SUCCEEDED), rollup.all_succeeded) == (5, 5, True)
    assert rollup.count(StepState.FAILED) == 0
    assert store.workflow(wf.id).state is WorkflowState.SUCCEEDED
    # The per-run history is intact: run 1 still shows step3 failed, run 2 shows the skips.
    assert [(s.process, s.state) for s in store.steps(wf.id, run1.id)] == [
        ("step1", StepState.SUCCEEDED),
        ("step2", StepState.SUCCEEDED),
        ("step3", StepState.FAILED),
    ]
    assert [s.state for s in store.steps(wf.id, run2.id)][:2] == [StepState.SKIPPED] * 2
    assert len(store.steps(wf.id)) == 8


def test_aggregated_view_shows_a_later_failed_rerun(
    store: SqliteStateStore, make_file: MakeFile
) -> None:
    """A success re-executed in a later run that failed should not hide that failure."""
    wf = new_workflow(store, "rerun-fails")
    run1 = start_run(store, wf.id)
    step = store.start_step(run1.id, process="align", cache_key="old")
    store.succeed_step(step.id, outputs=[make_file("a.bam")])
    store.finish_run(run1.id, RunState.SUCCEEDED)
    assert store.last_success(wf.id, "align") is not None
    run2 = start_run(store, wf.id)
    again = store.start_step(run2.id, process="align", cache_key="new")
    store.fail_step(again.id, exit_code=1)
    store.finish_run(run2.id, RunState.FAILED)
    (item,) = store.aggregated_steps(wf.id)
    assert (item.state, item.attempt) == (StepState.FAILED, 2)
    assert store.last_success(wf.id, "align") is None
    assert store.last_successes(wf.id) == {}


def test_invalidated_success_is_not_reusable(store: SqliteStateStore, make_file: MakeFile) -> None:
    wf = new_workflow(store, "invalidated")
    run = start_run(store, wf.id)
    step = store.start_step(run.id, process="count")
    store.succeed_step(step.id, outputs=[make_file("n.txt")])
    store.finish_run(run.id, RunState.SUCCEEDED)
    store.record_step_state(step.id, StepState.INVALIDATED, reason="user")
    (item,) = store.aggregated_steps(wf.id)
    assert item.state is StepState.INVALIDATED
    assert store.last_success(wf.id, "count") is None
    with pytest.raises(StateConflictError, match="only a succeeded step"):
        store.record_skipped(start_run(store, wf.id).id, reused=step.id)


def test_succeed_step_records_outputs_inputs_and_lineage(
    store: SqliteStateStore, make_file: MakeFile
) -> None:
    wf = new_workflow(store, "lineage")
    run = start_run(store, wf.id)
    reads = make_file("reads.fq", "ACGT\n")
    first = store.start_step(run.id, process="trim", inputs=[reads])
    trimmed = make_file("trimmed.fq", "ACG\n")
    store.succeed_step(first.id, outputs=[trimmed], max_rss_kib=1234, cpu_seconds=0.5)
    second = store.start_step(run.id, process="align")
    bam = make_file("x.bam", "bam")
    done = store.succeed_step(second.id, outputs=[bam], inputs=[trimmed], exit_code=0)
    assert (done.state, done.exit_code, done.ended_at is not None) == (
        StepState.SUCCEEDED,
        0,
        True,
    )

    trim_arts = store.artefacts(first.id)
    assert [(a.role, a.path.name) for a in trim_arts] == [
        (ArtefactRole.INPUT, "reads.fq"),
        (ArtefactRole.OUTPUT, "trimmed.fq"),
    ]
    assert trim_arts[0].source_id is None  # a workflow input, made by no step
    assert trim_arts[1].fingerprint == trimmed
    assert trim_arts[1].sha256 is not None and len(trim_arts[1].sha256) == 64
    align_in = store.artefacts(second.id)[0]
    assert align_in.source_id == trim_arts[1].id
    assert [(e.step_id, e.artefact_id) for e in store.lineage(wf.id)] == [
        (second.id, trim_arts[1].id)
    ]
    success = store.last_success(wf.id, "trim")
    assert success is not None
    assert success.step.max_rss_kib == 1234
    assert [a.path for a in success.outputs] == [trimmed.path]
    assert [a.path for a in success.inputs] == [reads.path]
    bulk = store.last_successes(wf.id)
    assert set(bulk) == {"trim", "align"}
    assert bulk["trim"] == success


def test_skipped_step_resolves_to_its_origin_for_resume(
    store: SqliteStateStore, make_file: MakeFile
) -> None:
    wf = new_workflow(store, "resume-twice")
    run1 = start_run(store, wf.id)
    step = store.start_step(run1.id, process="index")
    origin = store.succeed_step(step.id, outputs=[make_file("idx")])
    store.finish_run(run1.id, RunState.SUCCEEDED)
    for _ in range(2):
        run = start_run(store, wf.id)
        store.record_skipped(run.id, reused=origin.id)
        store.finish_run(run.id, RunState.SUCCEEDED)
    success = store.last_success(wf.id, "index")
    assert success is not None and success.step.id == origin.id
    (item,) = store.aggregated_steps(wf.id)
    assert (item.attempt, item.latest_attempt) == (1, 3)


def test_finish_run_aborts_what_it_left_active(store: SqliteStateStore) -> None:
    wf = new_workflow(store, "left-over")
    run = start_run(store, wf.id)
    pending = store.start_step(run.id, process="wait", state=StepState.PENDING)
    running = store.start_step(run.id, process="work")
    assert pending.started_at is None and running.started_at is not None
    ended = store.finish_run(run.id, RunState.ABORTED)
    assert ended.state is RunState.ABORTED and ended.ended_at is not None
    for step_id in (pending.id, running.id):
        step = store.step(step_id)
        assert (step.state, step.reason) == (StepState.ABORTED, Reason.RUN_ENDED)
    assert store.workflow(wf.id).state is WorkflowState.ABORTED
    with pytest.raises(StateTransitionError):
        store.finish_run(run.id, RunState.SUCCEEDED)
    with pytest.raises(StateConflictError, match="has ended"):
        store.start_step(run.id, process="late")


def test_a_batch_refuses_steps_once_its_own_write_ended_the_run(store: SqliteStateStore) -> None:
    # The run history writes a run's steps and its end in one batch; a step queued after the
    # end must be refused there as it is outside a batch, and the others kept.
    wf = new_workflow(store, "batched")
    run = start_run(store, wf.id)
    with store.batch():
        first = store.add_step(run.id, process="first")
        second = store.add_step(run.id, process="second")
        store.finish_run(run.id, RunState.SUCCEEDED)
        with pytest.raises(StateConflictError, match="has ended"):
            store.add_step(run.id, process="late")
    assert [s.id for s in store.steps(wf.id)] == [first, second]
    # The next batch reads the run afresh: ended still.
    with store.batch(), pytest.raises(StateConflictError, match="has ended"):
        store.add_step(run.id, process="later")


def test_store_refuses_moves_the_state_machine_forbids(
    store: SqliteStateStore, make_file: MakeFile
) -> None:
    wf = new_workflow(store, "refusals")
    run = start_run(store, wf.id)
    step = store.start_step(run.id, process="a", state=StepState.PENDING)
    with pytest.raises(StateTransitionError, match="only through succeed_step"):
        store.record_step_state(step.id, StepState.SUCCEEDED)
    with pytest.raises(StateTransitionError, match="pending to succeeded"):
        store.succeed_step(step.id, outputs=[make_file("o")])
    assert store.artefacts(step.id) == []  # the refused success recorded nothing
    store.record_step_state(step.id, StepState.RUNNING, job_id="123:4.5")
    store.fail_step(step.id, exit_code=137, reason="OUT_OF_MEMORY")
    with pytest.raises(StateTransitionError, match="failed to succeeded"):
        store.succeed_step(step.id, outputs=[])
    with pytest.raises(StateTransitionError):
        store.abort_step(step.id)
    with pytest.raises(StateTransitionError, match="record_skipped"):
        store.start_step(run.id, process="b", state=StepState.SKIPPED)
    with pytest.raises(StateConflictError, match="already recorded in run 1"):
        store.start_step(run.id, process="a")
    failed = store.step(step.id)
    assert (failed.exit_code, failed.reason, failed.job_id) == (137, "OUT_OF_MEMORY", "123:4.5")


def test_record_step_state_updates_details_of_an_active_step(store: SqliteStateStore) -> None:
    wf = new_workflow(store, "details")
    run = start_run(store, wf.id)
    step = store.start_step(run.id, process="a", started_at=100.0)
    again = store.record_step_state(step.id, StepState.RUNNING, job_id="4242")
    assert (again.state, again.job_id, again.started_at) == (StepState.RUNNING, "4242", 100.0)
    aborted = store.abort_step(step.id, error="Ctrl-C")
    assert (aborted.state, aborted.reason, aborted.error) == (
        StepState.ABORTED,
        Reason.CANCELLED,
        "Ctrl-C",
    )


def test_one_running_run_per_session(store: SqliteStateStore) -> None:
    wf = new_workflow(store, "single")
    run = start_run(store, wf.id)
    with pytest.raises(StateConflictError, match="already running"):
        start_run(store, wf.id)
    store.finish_run(run.id, RunState.SUCCEEDED)
    assert start_run(store, wf.id).attempt == 2
    assert [r.attempt for r in store.runs(wf.id)] == [1, 2]


def test_workflow_record_round_trip(store: SqliteStateStore) -> None:
    wf = store.create_workflow(
        session="round-trip",
        project="rnaseq",
        entry="workflow/main.py",
        config='[executor.default]\ntype = "Local"\n',
        args={"threads": 4, "genome": "hg38"},
        inputs={"reads": ["a.fq", "b.fq"]},
        user="ada",
        host="node1",
        metadata={"sample": "S1", "lab": "gen"},
        created_at=1234.5,
    )
    assert store.get_workflow("round-trip") == wf
    assert wf.args == {"threads": 4, "genome": "hg38"}
    assert (wf.user, wf.host, wf.created_at, wf.state) == (
        "ada",
        "node1",
        1234.5,
        WorkflowState.PENDING,
    )
    assert hash(wf) == hash(store.workflow(wf.id))
    with pytest.raises(StateConflictError, match="already recorded"):
        store.create_workflow(session="round-trip", project="x", entry="y")
    with pytest.raises(StateNotFoundError, match="no session named 'nope'"):
        store.get_workflow("nope")
    with pytest.raises(StateNotFoundError):
        store.step(999)
    defaulted = store.create_workflow(session="defaults", project="p", entry="e")
    assert defaulted.user and defaulted.host and defaulted.metadata == {}


def test_actions_are_recorded(store: SqliteStateStore) -> None:
    wf = new_workflow(store, "acted")
    action = store.record_action(
        what="invalidate", who="ada", workflow_id=wf.id, details={"step": "align"}
    )
    store.record_action(what="gc")
    assert store.actions(wf.id) == [action]
    assert [a.what for a in store.actions()] == ["invalidate", "gc"]


def test_constructor_does_no_io(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "state.db"
    store = SqliteStateStore(path)
    assert not path.parent.exists()
    assert store.latest_workflow() is None
    assert path.exists()
    store.close()
    store.close()  # idempotent


def test_store_uses_wal_and_reopens_after_close(store: SqliteStateStore, store_path: Path) -> None:
    new_workflow(store, "one")
    store.close()
    assert store.get_workflow("one").session == "one"
    with sqlite3.connect(store_path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_busy_database_raises_a_clear_error(store_path: Path) -> None:
    store = SqliteStateStore(store_path, busy_timeout=0.2)
    store.latest_workflow()  # create it
    blocker = sqlite3.connect(store_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StateBusyError, match="locked by another process"):
            store.create_workflow(session="blocked", project="p", entry="e")
        assert store.latest_workflow() is None  # readers are not blocked in WAL mode
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert new_workflow(store, "unblocked").session == "unblocked"
    store.close()


def test_default_store_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = Path.home()
    assert default_store_path({"MAESTRO_HOME": "/srv/m"}) == Path("/srv/m/state.db")
    assert default_store_path({"XDG_DATA_HOME": "/x/data"}) == Path("/x/data/maestro/state.db")
    assert default_store_path({"XDG_DATA_HOME": "rel"}) == home / ".local/share/maestro/state.db"
    assert default_store_path({}) == home / ".local/share/maestro/state.db"
    monkeypatch.setenv("MAESTRO_HOME", str(tmp_path / "mh"))
    assert default_store_path() == tmp_path / "mh" / "state.db"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert default_store_path({}) == home / "Library/Application Support/maestro/state.db"


def test_an_input_inside_an_output_directory_has_that_directory_as_its_source(
    store: SqliteStateStore, tmp_path: Path
) -> None:
    # A scatter step writes a directory of parts; each worker reads one part. The lineage runs
    # from the directory to every worker, so invalidating the scatter reaches them.
    wf = new_workflow(store, "scatter")
    run = start_run(store, wf.id)
    parts = tmp_path / "split" / "parts"
    (parts / "nested").mkdir(parents=True)
    (parts / "0.txt").write_text("0\n")
    (parts / "nested" / "1.txt").write_text("1\n")
    (tmp_path / "split" / "parts.log").write_text("beside, not inside\n")
    split = store.start_step(run.id, process="split")
    store.succeed_step(split.id, outputs=[_fingerprint_of(parts)])
    (directory,) = store.artefacts(split.id)
    inputs = [
        _fingerprint_of(parts / "0.txt"),
        _fingerprint_of(parts / "nested" / "1.txt"),
        _fingerprint_of(tmp_path / "split" / "parts.log"),
    ]
    worker = store.start_step(run.id, process="w0", inputs=inputs)
    recorded = {a.path.name: a.source_id for a in store.artefacts(worker.id)}
    assert recorded == {"0.txt": directory.id, "1.txt": directory.id, "parts.log": None}
    assert [(e.step_id, e.artefact_id) for e in store.lineage(wf.id)] == [(worker.id, directory.id)]


def _fingerprint_of(path: Path) -> Fingerprint:
    return Fingerprint(path=path, size=path.stat().st_size, mtime_ns=path.stat().st_mtime_ns)


@pytest.mark.parametrize("reader", ["same store object", "another store object"])
def test_an_invalidated_producer_is_no_longer_an_inputs_source(
    store: SqliteStateStore, store_path: Path, make_file: MakeFile, reader: str
) -> None:
    # The store remembers the outputs it wrote, so a later step of the run finds its producer
    # without a query; what it remembers must not outlive an invalidation.
    wf = new_workflow(store, "invalidated_source")
    run = start_run(store, wf.id)
    trimmed = make_file("trimmed.fq", "ACG\n")
    trim = store.start_step(run.id, process="trim")
    store.succeed_step(trim.id, outputs=[trimmed])
    (made,) = store.artefacts(trim.id)
    first = store.start_step(run.id, process="align", inputs=[trimmed])
    assert store.artefacts(first.id)[0].source_id == made.id
    store.finish_run(run.id, RunState.SUCCEEDED)
    store.record_step_state(trim.id, StepState.INVALIDATED, reason="user")

    with SqliteStateStore(store_path) as other:
        writer = store if reader == "same store object" else other
        again = writer.start_step(start_run(writer, wf.id).id, process="align", inputs=[trimmed])
        assert writer.artefacts(again.id)[0].source_id is None


def test_a_producer_whose_batch_rolled_back_is_no_inputs_source(
    store: SqliteStateStore, make_file: MakeFile
) -> None:
    wf = new_workflow(store, "rolled_back")
    run = start_run(store, wf.id)
    trimmed = make_file("trimmed.fq", "ACG\n")
    with pytest.raises(RuntimeError), store.batch():
        trim = store.start_step(run.id, process="trim")
        store.succeed_step(trim.id, outputs=[trimmed])
        raise RuntimeError("the batch fails before its commit")
    align = store.start_step(run.id, process="align", inputs=[trimmed])
    (recorded,) = store.artefacts(align.id)
    assert recorded.source_id is None
    assert store.lineage(wf.id) == []


def test_add_steps_records_a_chain_in_one_call_with_its_lineage(
    store: SqliteStateStore, make_file: MakeFile
) -> None:
    # The run history records a commit interval's steps with one call. A step that reads what
    # an earlier step of the same call made must get it as its source, although neither is in
    # the tables when the call starts.
    wf = new_workflow(store, "chain_in_one_call")
    run = start_run(store, wf.id)
    reads = make_file("reads.fq", "ACGT\n")
    trimmed = make_file("trimmed.fq", "ACG\n")
    bam = make_file("aligned.bam", "BAM\n")
    done = StepSuccess(outputs=[trimmed], exit_code=0, ended_at=12.0, cpu_seconds=0.5)
    ids = store.add_steps(
        run.id,
        [
            NewStep(process="trim", inputs=[reads], started_at=10.0, success=done),
            NewStep(process="align", inputs=[trimmed], success=StepSuccess(outputs=[bam])),
            NewStep(process="report", state=StepState.PENDING, reason="first run"),
        ],
    )
    trim, align, report = (store.step(step_id) for step_id in ids)
    assert [trim.process, align.process, report.process] == ["trim", "align", "report"]
    assert (trim.state, trim.started_at, trim.ended_at) == (StepState.SUCCEEDED, 10.0, 12.0)
    assert (align.state, report.state, report.reason) == (
        StepState.SUCCEEDED,
        StepState.PENDING,
        "first run",
    )
    (made,) = [a for a in store.artefacts(trim.id) if a.role is ArtefactRole.OUTPUT]
    (read,) = [a for a in store.artefacts(align.id) if a.role is ArtefactRole.INPUT]
    assert (read.path, read.source_id) == (trimmed.path, made.id)
    assert [(e.step_id, e.artefact_id) for e in store.lineage(wf.id)] == [(align.id, made.id)]
    # Steps recorded afterwards, one at a time, get the next ids and find the same producer.
    later = store.start_step(run.id, process="index", inputs=[trimmed])
    assert later.id == ids[-1] + 1
    assert store.artefacts(later.id)[0].source_id == made.id


@pytest.mark.parametrize("clash", ["recorded before", "twice in the call"])
def test_add_steps_records_none_when_one_is_already_recorded(
    store: SqliteStateStore, clash: str
) -> None:
    wf = new_workflow(store, "clash")
    run = start_run(store, wf.id)
    if clash == "recorded before":
        store.start_step(run.id, process="align")
        names = ["trim", "align"]
    else:
        names = ["trim", "trim"]
    before = len(store.steps(wf.id))
    duplicate = names[1]
    with pytest.raises(StateConflictError, match=f"step {duplicate} is already recorded in run 1"):
        store.add_steps(run.id, [NewStep(process=name) for name in names])
    assert len(store.steps(wf.id)) == before
    assert store.add_steps(run.id, [NewStep(process="trim")])  # nothing of the call was kept
