"""`parallelize`, `raise_failures` and `Dag` with real bash processes passing real files.

The DAG tests follow the seed's "dagger integration" section: the tleap -> parmed -> gromacs chain,
and analysis_1..3 branching after tleap. The scripts are stand-ins that read their input file and
write their output file, so a wrong wiring shows up as wrong file content.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import libmaestro as maestro
from libmaestro import (
    Dag,
    DagResult,
    FanOutError,
    LocalExecutor,
    MaestroError,
    NotRunError,
    ProcessError,
    ProcessInterruptedError,
    ProcessOutputs,
)
from libmaestro.session import Session, activate

LOCAL = LocalExecutor()

# A bash loop that waits up to 10 s for the file "$1": a rendezvous between two processes, so
# a test that needs them to overlap does not depend on how loaded the machine is.
WAIT_FOR_FILE = 'for _ in $(seq 1000); do [ -e "$1" ] && break; sleep 0.01; done; [ -e "$1" ]'


@pytest.fixture
def session(isolated_env: Path) -> Session:
    """An active session allowed 2 local processes at once, whatever the machine's CPU count."""
    created = Session.create(base=isolated_env, max_parallel=2)
    activate(created)
    return created


def spans(stamps: Path) -> dict[str, tuple[float, float]]:
    """label -> (start, end), from the `date +%s.%N` files the scripts wrote."""
    return {
        start.stem: (float(start.read_text()), float(start.with_suffix(".end").read_text()))
        for start in stamps.glob("*.start")
    }


def overlap(first: tuple[float, float], second: tuple[float, float]) -> bool:
    return first[0] < second[1] and second[0] < first[1]


# --- parallelize ---------------------------------------------------------------------------


def test_parallelize_returns_results_in_input_order(session: Session) -> None:
    """Results should follow the input order, not the order in which the items finished."""
    last_output = session.directory / "item_5" / "out.txt"

    def item(index: int) -> ProcessOutputs:
        # item_0 waits for item_5's output, so it finishes last while its result comes first.
        return maestro.process(
            executor=LOCAL,
            name=f"item_{index}",
            args={"index": index, "wait_for": str(last_output) if index == 0 else ""},
            outputs={"out": "out.txt"},
            script=f"""
                if [ -n "$wait_for" ]; then set -- "$wait_for"; {WAIT_FOR_FILE}; fi
                echo "item $index" > "$out"
            """,
        )

    results = maestro.parallelize(range(6), item)

    assert all(isinstance(r, ProcessOutputs) for r in results), results
    outputs = [r for r in results if isinstance(r, ProcessOutputs)]
    assert [r.out.read_text() for r in outputs] == [f"item {i}\n" for i in range(6)]
    ended = {
        r.workdir.name: json.loads((r.workdir / ".maestro.json").read_text())["ended_at"]
        for r in outputs
    }
    assert ended["item_0"] > ended["item_5"], "item_0 should have finished after item_5"


def test_parallelize_failed_items_keep_their_slot_and_siblings_complete(session: Session) -> None:
    """Each failure should be returned in its item's slot; the other items should all finish."""

    def item(index: int) -> ProcessOutputs:
        if index == 2:
            raise ValueError("sample 2 has no reads")  # fails before any process runs
        return maestro.process(
            executor=LOCAL,
            name=f"item_{index}",
            args={"index": index},
            outputs={"out": "out.txt"},
            script="""
                if [ "$index" = 1 ] || [ "$index" = 4 ]; then
                    echo "cannot align sample $index" >&2
                    exit 3
                fi
                echo "aligned $index" > "$out"
            """,
        )

    results = maestro.parallelize(range(6), item)

    assert len(results) == 6
    for index in (0, 3, 5):
        result = results[index]
        assert isinstance(result, ProcessOutputs), result
        assert result.out.read_text() == f"aligned {index}\n"
    for index in (1, 4):
        error = results[index]
        assert isinstance(error, ProcessError), error
        assert error.process == f"item_{index}"
        assert error.process_exit_code == 3
        assert f"cannot align sample {index}" in str(error)
    assert isinstance(results[2], ValueError)
    assert str(results[2]) == "sample 2 has no reads"


def test_parallelize_raise_failures_names_each_failed_process(session: Session) -> None:
    """raise_failures on real results should raise one FanOutError with each process error."""

    def item(index: int) -> ProcessOutputs:
        return maestro.process(
            executor=LOCAL,
            name=f"sample_{index}",
            args={"index": index},
            script='[ "$index" != 1 ] && [ "$index" != 3 ] || { echo "bad $index" >&2; exit 1; }',
        )

    results = maestro.parallelize(range(4), item)

    with pytest.raises(FanOutError) as caught:
        maestro.raise_failures(results, what="samples")
    error = caught.value
    assert error.exit_code == 1
    assert [e.process for e in error.exceptions if isinstance(e, ProcessError)] == [
        "sample_1",
        "sample_3",
    ]
    assert error.message == "2 of 4 samples failed"
    text = str(error)
    assert "process 'sample_1' failed with exit code 1" in text
    assert "process 'sample_3' failed with exit code 1" in text


def test_parallelize_max_workers_bounds_concurrency_of_the_call(session: Session) -> None:
    """max_workers=3 should let exactly 3 items of the call run at once, never more."""
    lock = threading.Lock()
    running = 0
    peak = 0

    def item(_: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        # Hold on until 3 run at once (or 5 s pass), then a little longer, so that a 4th item
        # would be seen if the limit let one in.
        deadline = time.monotonic() + 5
        while peak < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.02)
        with lock:
            running -= 1

    results = maestro.parallelize(range(12), item, max_workers=3)

    assert results == [None] * 12
    assert peak == 3


def test_parallelize_max_workers_one_runs_processes_one_at_a_time(
    session: Session, tmp_path: Path
) -> None:
    """max_workers=1 should serialise the call's processes although the budget allows 2."""
    stamps = tmp_path / "stamps"
    stamps.mkdir()

    def item(index: int) -> ProcessOutputs:
        return maestro.process(
            executor=LOCAL,
            name=f"item_{index}",
            args={"stamps": str(stamps), "label": f"item_{index}"},
            script="""
                date +%s.%N > "$stamps/$label.start"
                sleep 0.1
                date +%s.%N > "$stamps/$label.end"
            """,
        )

    results = maestro.parallelize(range(4), item, max_workers=1)

    assert all(isinstance(r, ProcessOutputs) for r in results), results
    found = sorted(spans(stamps).values())
    assert len(found) == 4
    for before, after in itertools.pairwise(found):
        assert before[1] <= after[0], f"two processes overlapped: {found}"


# --- raise_failures ------------------------------------------------------------------------


def interrupted(name: str) -> ProcessInterruptedError:
    return ProcessInterruptedError(f"{name} was stopped", process=name, workdir=Path(name))


def test_raise_failures_does_nothing_without_failures() -> None:
    maestro.raise_failures([1, "two", None, Path("three")])
    maestro.raise_failures([])


def test_raise_failures_groups_every_failure_in_item_order() -> None:
    """FanOutError should be an ExceptionGroup and a MaestroError listing each failure."""
    first, second = ValueError("first\nsecond line"), KeyError("missing")
    with pytest.raises(FanOutError) as caught:
        maestro.raise_failures(["ok", first, "ok", second, "ok"])
    error = caught.value
    assert isinstance(error, ExceptionGroup)
    assert isinstance(error, MaestroError)
    assert error.exceptions == (first, second)
    assert error.exit_code == 1
    lines = str(error).splitlines()
    assert lines[0] == "2 of 5 items failed"
    assert "  - first" in lines
    assert "  - 'missing'" in lines


def test_raise_failures_from_an_iterator_has_no_total() -> None:
    with pytest.raises(FanOutError, match=r"^1 items failed$"):
        maestro.raise_failures(iter([1, RuntimeError("boom")]))


def test_raise_failures_exit_code_130_only_when_every_failure_is_an_interruption() -> None:
    with pytest.raises(FanOutError) as caught:
        maestro.raise_failures([interrupted("a"), NotRunError("not started"), "done"])
    assert caught.value.exit_code == 130
    with pytest.raises(FanOutError) as caught:
        maestro.raise_failures([interrupted("a"), ValueError("real failure")])
    assert caught.value.exit_code == 1


def test_raise_failures_error_splits_with_except_star() -> None:
    """`except*` should split the group and keep FanOutError (and its exit code) in each part."""
    caught: list[BaseExceptionGroup[Exception]] = []
    try:
        maestro.raise_failures([interrupted("a"), ValueError("v"), interrupted("b")])
    except* ValueError as value_errors:
        caught.append(value_errors)
    except* ProcessInterruptedError as interruptions:
        caught.append(interruptions)
    values, stops = caught
    assert isinstance(values, FanOutError)
    assert [str(e) for e in values.exceptions] == ["v"]
    assert values.exit_code == 1
    assert isinstance(stops, FanOutError)
    assert len(stops.exceptions) == 2
    assert stops.exit_code == 130


# --- the seed's molecular dynamics steps, as stand-ins ---------------------------------------


def tleap(path: Path, molecule: str) -> ProcessOutputs:
    return maestro.process(
        executor=LOCAL,
        name="tleap",
        inputs={"pdb": path},
        args={"molecule": molecule},
        outputs={"prmtop": "system.prmtop", "inpcrd": "system.inpcrd"},
        script="""
            { echo "prmtop of $molecule"; cat "$pdb"; } > "$prmtop"
            { echo "inpcrd of $molecule"; grep -c '^ATOM' "$pdb"; } > "$inpcrd"
        """,
    )


def parmed(prepared: ProcessOutputs, molecule: str) -> ProcessOutputs:
    return maestro.process(
        executor=LOCAL,
        name="parmed",
        inputs={"prmtop": prepared.prmtop, "inpcrd": prepared.inpcrd},
        args={"molecule": molecule},
        outputs={"gro": "system.gro", "topol": "topol.top"},
        script="""
            { echo "gro of $molecule"; cat "$inpcrd"; } > "$gro"
            { echo "topol of $molecule"; cat "$prmtop"; } > "$topol"
        """,
    )


def gromacs(converted: ProcessOutputs, molecule: str) -> ProcessOutputs:
    return maestro.process(
        executor=LOCAL,
        name="gromacs",
        inputs={"gro": converted.gro, "topol": converted.topol},
        args={"molecule": molecule},
        outputs={"trajectory": "md.xtc"},
        script="""
            { echo "md of $molecule"; cat "$gro" "$topol"; } > "$trajectory"
        """,
    )


PDB = "HEADER test\nATOM      1  N   MET A   1\nATOM      2  CA  MET A   1\n"


def test_dag_runs_the_tleap_parmed_gromacs_chain(session: Session, tmp_path: Path) -> None:
    """Each step should receive the previous step's real output files."""
    pdb = tmp_path / "1v9e.pdb"
    pdb.write_text(PDB)
    dag = Dag()
    prepared = dag.node("tleap", tleap, pdb, "1v9e")
    converted = dag.node("parmed", parmed, prepared, "1v9e")
    dag.node("gromacs", gromacs, converted, "1v9e")

    done = dag.run()

    assert done.ok, (done.failed, done.not_run)
    assert list(done) == ["tleap", "parmed", "gromacs"]
    assert dag.edges() == [("tleap", "parmed"), ("parmed", "gromacs")]
    trajectory = done["gromacs"].trajectory
    assert trajectory.read_text() == (
        f"md of 1v9e\ngro of 1v9e\ninpcrd of 1v9e\n2\ntopol of 1v9e\nprmtop of 1v9e\n{PDB}"
    )
    # parmed read tleap's files through its own working directory (staged as symlinks).
    staged = done["parmed"].workdir / "system.prmtop"
    assert staged.resolve() == done["tleap"].prmtop.resolve()


def test_parallelize_runs_a_whole_pipeline_per_input_file(session: Session, tmp_path: Path) -> None:
    """The seed's pattern: the MD pipeline on several input files at once, one result each."""
    names = ["1v9e_ph4", "1v9e_ph10", "BtCAII_ph4"]
    for name in names:
        (tmp_path / f"{name}.pdb").write_text(f"HEADER {name}\nATOM      1  N   MET A   1\n")

    def pipeline(name: str) -> str:
        prepared = maestro.process(
            executor=LOCAL,
            name=f"tleap_{name}",
            inputs={"pdb": tmp_path / f"{name}.pdb"},
            outputs={"prmtop": "system.prmtop"},
            script='head -n1 "$pdb" > "$prmtop"',
        )
        simulated = maestro.process(
            executor=LOCAL,
            name=f"gromacs_{name}",
            inputs={"prmtop": prepared.prmtop},
            outputs={"trajectory": "md.xtc"},
            script='{ cat "$prmtop"; echo simulated; } > "$trajectory"',
        )
        return simulated.trajectory.read_text()

    results = maestro.parallelize(names, pipeline)

    assert results == [f"HEADER {name}\nsimulated\n" for name in names]


def analysis(upstream: ProcessOutputs, label: str, stamps: Path, *, peer: str = "") -> Path:
    """A stand-in analysis: it reads its input, takes ~0.3 s, and time-stamps its start and end.

    With `peer`, it first waits (up to 10 s) for that analysis to have started as well.
    """
    out = maestro.process(
        executor=LOCAL,
        name=label,
        inputs={"source": upstream[0]},
        args={"label": label, "stamps": str(stamps), "peer": peer},
        outputs={"report": "report.txt"},
        script=f"""
            date +%s.%N > "$stamps/$label.start"
            if [ -n "$peer" ]; then set -- "$stamps/$peer.start"; {WAIT_FOR_FILE}; fi
            {{ echo "$label"; head -n1 "$source"; }} > "$report"
            sleep 0.3
            date +%s.%N > "$stamps/$label.end"
        """,
    )
    return out.report


def test_dag_branches_run_concurrently_and_dependents_wait(
    session: Session, tmp_path: Path
) -> None:
    """analysis_1 and analysis_2 should overlap; analysis_3 should start after analysis_2 ends."""
    pdb = tmp_path / "1v9e.pdb"
    pdb.write_text(PDB)
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    dag = Dag()
    prepared = dag.node("tleap", tleap, pdb, "1v9e")
    dag.node("analysis_1", analysis, prepared, "analysis_1", stamps, peer="analysis_2")
    second = dag.node("analysis_2", analysis, prepared, "analysis_2", stamps, peer="analysis_1")
    dag.node("analysis_3", analysis, [second], "analysis_3", stamps)

    done = dag.run()

    assert done.ok, (done.failed, done.not_run)
    found = spans(stamps)
    assert overlap(found["analysis_1"], found["analysis_2"]), found
    assert found["analysis_3"][0] >= found["analysis_2"][1], found
    assert done["analysis_1"].read_text() == "analysis_1\nprmtop of 1v9e\n"
    assert done["analysis_3"].read_text() == "analysis_3\nanalysis_2\n"
    assert sorted(dag.edges()) == [
        ("analysis_2", "analysis_3"),
        ("tleap", "analysis_1"),
        ("tleap", "analysis_2"),
    ]


def test_dag_failed_node_skips_exactly_its_downstream(session: Session, tmp_path: Path) -> None:
    """A failure should mark only what depends on it as not run; other branches should finish."""
    pdb = tmp_path / "1v9e.pdb"
    pdb.write_text(PDB)
    failed_status = session.directory / "analysis_2" / ".maestro.json"

    def failing(upstream: ProcessOutputs) -> ProcessOutputs:
        return maestro.process(
            executor=LOCAL,
            name="analysis_2",
            inputs={"source": upstream.prmtop},
            script='echo "analysis_2 cannot parse $source" >&2; exit 4',
        )

    def slow_sibling(upstream: ProcessOutputs) -> str:
        # Finishes only once analysis_2 has failed: the failure must not cancel it.
        out = maestro.process(
            executor=LOCAL,
            name="analysis_1",
            inputs={"source": upstream.prmtop},
            args={"failed_status": str(failed_status)},
            outputs={"report": "report.txt"},
            script=f"""
                set -- "$failed_status"; {WAIT_FOR_FILE}
                wc -l < "$source" > "$report"
            """,
        )
        return out.report.read_text().strip()

    dag = Dag()
    prepared = dag.node("tleap", tleap, pdb, "1v9e")
    dag.node("analysis_1", slow_sibling, prepared)
    second = dag.node("analysis_2", failing, prepared)
    third = dag.node("analysis_3", lambda report: report, second)
    dag.node("analysis_4", lambda a, b: (a, b), third, {"extra": second})

    done = dag.run()

    assert set(done.succeeded) == {"tleap", "analysis_1"}
    assert done["analysis_1"] == "4"
    assert set(done.failed) == {"analysis_2"}
    error = done.failed["analysis_2"]
    assert isinstance(error, ProcessError)
    assert error.process_exit_code == 4
    assert set(done.not_run) == {"analysis_3", "analysis_4"}
    for name in ("analysis_3", "analysis_4"):
        assert isinstance(done.not_run[name], NotRunError)
        assert str(done.not_run[name]) == "not run: 'analysis_2' failed"
    assert not done.ok


def test_dag_node_starts_as_soon_as_its_own_inputs_are_ready(session: Session) -> None:
    """A fast chain should not wait for an unrelated slow node."""
    released = threading.Event()
    order: list[str] = []

    def slow() -> str:
        # Returns only after `fast_2` ran: a DAG that ran level by level would time out here.
        assert released.wait(10), "fast_2 did not run while slow was still running"
        order.append("slow")
        return "slow"

    def fast_2(value: int) -> int:
        order.append("fast_2")
        released.set()
        return value + 1

    dag = Dag()
    dag.node("slow", slow)
    first = dag.node("fast_1", lambda: 1)
    dag.node("fast_2", fast_2, first)

    done = dag.run()

    assert done.ok, done.failed
    assert order == ["fast_2", "slow"]
    assert dict(done) == {"slow": "slow", "fast_1": 1, "fast_2": 2}


def test_dag_runs_a_chain_in_one_thread_and_counts_what_is_still_to_come(
    session: Session,
) -> None:
    # Each step of a chain is ready only when the one before ends: handing it to another
    # thread cost a thread wake-up per step. The steps still to run stay counted as waiting.
    seen: list[tuple[str, int]] = []
    added = itertools.count()
    add = session.scheduler.add

    def counted_add(*args: Any) -> None:
        next(added)
        add(*args)

    session.scheduler.add = counted_add  # type: ignore[method-assign]

    def step(previous: int, index: int) -> int:
        seen.append((threading.current_thread().name, session.scheduler.waiting))
        return previous + index

    dag = Dag()
    node = dag.node("c0", lambda: 0)
    for index in range(1, 6):
        node = dag.node(f"c{index}", step, node, index)

    done = dag.run()

    assert done.ok, done.failed
    assert done["c5"] == 15
    assert next(added) == 1  # c0 alone was queued; each later step ran where its input ended
    threads = {name for name, _ in seen}
    assert len(threads) == 1, seen
    assert [waiting for _, waiting in seen] == [4, 3, 2, 1, 0]


class Sample(NamedTuple):
    name: str
    reads: object


def test_dag_resolves_nodes_inside_lists_tuples_dicts_and_named_tuples(session: Session) -> None:
    dag = Dag()
    one = dag.node("one", lambda: 1)
    two = dag.node("two", lambda: 2)
    seen = dag.node(
        "seen",
        lambda *args, **kwargs: (args, kwargs),
        [one, two, 3],
        (one,),
        {"k": two, "nested": [one, {"deep": two}]},
        Sample("s1", two),
        Sample("plain", "reads.fq"),  # no Node inside: passed as it is
        total=[two, two],
    )
    done = dag.run()

    assert done.ok, done.failed
    args, kwargs = done["seen"]
    assert args == (
        [1, 2, 3],
        (1,),
        {"k": 2, "nested": [1, {"deep": 2}]},
        Sample("s1", 2),
        Sample("plain", "reads.fq"),
    )
    assert isinstance(args[3], Sample)
    assert kwargs == {"total": [2, 2]}
    # A node used several times is still one edge.
    assert sorted(dag.edges()) == [("one", "seen"), ("two", "seen")]
    assert repr(seen) == "Node('seen')"


def test_dag_gathers_real_outputs_of_a_list_of_nodes(session: Session) -> None:
    def part(index: int) -> Path:
        return maestro.process(
            executor=LOCAL,
            name=f"part_{index}",
            args={"index": index},
            outputs={"out": "part.txt"},
            script='echo "part $index" > "$out"',
        ).out

    def gather(parts: list[Path]) -> str:
        out = maestro.process(
            executor=LOCAL,
            name="gather",
            inputs={f"part_{i}": path for i, path in enumerate(parts)},
            outputs={"merged": "merged.txt"},
            script='cat "$part_0" "$part_1" "$part_2" > "$merged"',
        )
        return out.merged.read_text()

    dag = Dag()
    parts = [dag.node(f"part_{i}", part, i) for i in range(3)]
    dag.node("gather", gather, parts)

    done = dag.run()

    assert done["gather"] == "part 0\npart 1\npart 2\n"


def test_dag_rejects_a_duplicate_node_name() -> None:
    dag = Dag()
    dag.node("tleap", lambda: None)
    with pytest.raises(MaestroError, match="already has a node named 'tleap'"):
        dag.node("tleap", lambda: None)
    assert list(dag.nodes) == ["tleap"]


def test_dag_rejects_a_node_of_another_dag() -> None:
    other = Dag()
    foreign = other.node("tleap", lambda: None)
    dag = Dag()
    with pytest.raises(MaestroError, match="depends on 'tleap', which belongs to another Dag"):
        dag.node("parmed", lambda x: x, foreign)
    # Same name, different node: still foreign.
    dag.node("tleap", lambda: None)
    with pytest.raises(MaestroError, match="belongs to another Dag"):
        dag.node("parmed", lambda x: x, {"inputs": [foreign]})
    assert list(dag.nodes) == ["tleap"]


def no_reads() -> None:
    raise ValueError("no reads")


def failing_dag_result() -> DagResult:
    dag = Dag()
    dag.node("ok", lambda: 1)
    bad = dag.node("bad", no_reads)
    dag.node("child", lambda x: x, bad)
    return dag.run()


def test_dag_result_is_a_mapping_of_succeeded_nodes(session: Session) -> None:
    done = failing_dag_result()

    assert done["ok"] == 1
    assert list(done) == ["ok"]
    assert len(done) == 1
    assert dict(done) == {"ok": 1}
    assert "ok" in done
    assert "bad" not in done
    assert "child" not in done
    assert done.get("bad") is None
    with pytest.raises(KeyError, match="node 'bad' failed: no reads"):
        done["bad"]
    with pytest.raises(KeyError, match="node 'child' did not run: not run: 'bad' failed"):
        done["child"]
    with pytest.raises(KeyError, match="unknown"):
        done["unknown"]
    assert not done.ok
    assert isinstance(done.failed["bad"], ValueError)


def test_dag_result_raise_failures(session: Session) -> None:
    done = failing_dag_result()
    with pytest.raises(FanOutError) as caught:
        done.raise_failures()
    error = caught.value
    assert error.message == "1 node(s) failed, 1 did not run"
    assert [type(e) for e in error.exceptions] == [ValueError, NotRunError]
    assert error.exit_code == 1

    dag = Dag()
    dag.node("only", lambda: "fine")
    fine = dag.run()
    assert fine.ok
    fine.raise_failures()  # nothing to raise


def test_dag_of_a_stopping_session_runs_nothing(session: Session) -> None:
    """Once the session stops, a DAG should start no node and report each as not run."""
    session.stop()
    ran: list[str] = []
    dag = Dag()
    first = dag.node("first", lambda: ran.append("first"))
    dag.node("second", lambda x: ran.append("second"), first)

    done = dag.run()

    assert ran == []
    assert set(done.not_run) == {"first", "second"}
    with pytest.raises(FanOutError) as caught:
        done.raise_failures()
    assert caught.value.exit_code == 130


def test_parallelize_in_a_stopping_session_starts_nothing(session: Session) -> None:
    session.stop()
    ran: list[int] = []
    results = maestro.parallelize(range(3), ran.append)
    assert ran == []
    assert all(isinstance(r, NotRunError) for r in results), results
