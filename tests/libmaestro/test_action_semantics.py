"""Invalidate, rerun and abort on a real diamond-shaped run: which steps and files go, which stay.

split -> (left, right) -> join        plus `lonely`, which shares nothing with the rest
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import run_program, shown, wait_for

from libmaestro.actions import (
    ActionRefused,
    ActionRequest,
    apply_action,
    plan_action,
    write_abort_request,
)
from libmaestro.history import open_store
from libmaestro.layout import ABORT_FILE
from libmaestro.state import ArtefactRole, SqliteStateStore, StepState

CONFIG = """
    [args]
    fail_join = "no"

    [inputs]
    reads = ["data/reads.txt"]

    [executor.default]
    type = "Local"
"""
DIAMOND = """
    import libmaestro as maestro

    @maestro.main
    def main():
        split = maestro.process(
            name="split", executor="default", inputs={"reads": maestro.inputs("reads")[0]},
            outputs={"a": "a.txt", "b": "b.txt"},
            script='head -n 1 "$reads" > "$a"; tail -n 1 "$reads" > "$b"',
        )
        left = maestro.process(
            name="left", executor="default", inputs={"part": split.a}, outputs={"out": "left.txt"},
            script='tr a-z A-Z < "$part" > "$out"',
        )
        right = maestro.process(
            name="right", executor="default", inputs={"part": split.b},
            outputs={"out": "right.txt"}, script='rev < "$part" > "$out"',
        )
        maestro.process(
            name="join", executor="default", inputs={"l": left.out, "r": right.out},
            args={"fail": maestro.arg("fail_join")}, outputs={"out": "joined.txt"},
            script='[ "$fail" = no ] || exit 9; cat "$l" "$r" > "$out"',
        )
        maestro.process(
            name="lonely", executor="default", outputs={"out": "alone.txt"},
            script='echo alone > "$out"',
        )

    main()
"""


@pytest.fixture
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "store.db"
    monkeypatch.setenv("MAESTRO_STORE", str(path))
    return path


@pytest.fixture
def diamond(tmp_path: Path, file_tree: Callable[..., Path], store_path: Path) -> Path:
    """A project whose diamond ran once, successfully; returns the project directory."""
    root = file_tree(
        {"Maestro.toml": CONFIG, "workflow.py": DIAMOND, "data/reads.txt": "acgt\ntgca\n"},
        root=tmp_path / "project",
    )
    result = run_program(root / "workflow.py", cwd=root, env={"MAESTRO_STORE": str(store_path)})
    assert result.returncode == 0, shown(result)
    return root


def session_of(store: SqliteStateStore) -> str:
    workflow = store.latest_workflow()
    assert workflow is not None
    return workflow.session


def steps_by_name(store: SqliteStateStore, session: str) -> dict[str, object]:
    workflow = store.get_workflow(session)
    return {a.process: a for a in store.aggregated_steps(workflow.id)}


def output_of(store: SqliteStateStore, session: str, process: str) -> list[Path]:
    step = steps_by_name(store, session)[process].step  # type: ignore[attr-defined]
    return [a.path for a in store.artefacts(step.id) if a.role is ArtefactRole.OUTPUT]


def test_invalidate_step_with_propagation_removes_it_and_everything_downstream(
    diamond: Path, store_path: Path
) -> None:
    with open_store(store_path) as store:
        session = session_of(store)
        left = steps_by_name(store, session)["left"].step  # type: ignore[attr-defined]
        request = ActionRequest("invalidate-step", session, step_id=left.id, propagate=True)

        plan = plan_action(store, request)
        assert sorted(s.process for s in plan.steps) == ["join", "left"]
        expected = output_of(store, session, "left") + output_of(store, session, "join")
        assert sorted(plan.files) == sorted(expected)
        assert plan.bytes == sum(p.stat().st_size for p in expected)
        assert "invalidate 2 steps" in plan.summary and "deletes 2 files" in plan.summary

        apply_action(store, request, who="tester")

        states = {n: a.state for n, a in steps_by_name(store, session).items()}  # type: ignore[attr-defined]
        assert states == {
            "split": StepState.SUCCEEDED, "left": StepState.INVALIDATED,
            "right": StepState.SUCCEEDED, "join": StepState.INVALIDATED,
            "lonely": StepState.SUCCEEDED,
        }  # fmt: skip
        assert not any(p.exists() for p in expected)
        assert all(p.exists() for p in output_of(store, session, "right"))
        assert (diamond / "data" / "reads.txt").exists()  # the user's input is never touched
        action = store.actions(store.get_workflow(session).id)[-1]
        assert (action.what, action.who) == ("invalidate-step", "tester")
        assert action.details["steps"] == ["left", "join"]


def test_invalidate_step_without_propagation_keeps_downstream(
    diamond: Path, store_path: Path
) -> None:
    with open_store(store_path) as store:
        session = session_of(store)
        split = steps_by_name(store, session)["split"].step  # type: ignore[attr-defined]
        plan = apply_action(store, ActionRequest("invalidate-step", session, step_id=split.id))
        assert [s.process for s in plan.steps] == ["split"]
        states = {n: a.state for n, a in steps_by_name(store, session).items()}  # type: ignore[attr-defined]
        assert states["left"] is StepState.SUCCEEDED and states["split"] is StepState.INVALIDATED


def test_invalidate_output_artefact_keeps_its_step_and_propagates_to_consumers(
    diamond: Path, store_path: Path
) -> None:
    with open_store(store_path) as store:
        session = session_of(store)
        split = steps_by_name(store, session)["split"].step  # type: ignore[attr-defined]
        b_file = next(
            a
            for a in store.artefacts(split.id)
            if a.role is ArtefactRole.OUTPUT and a.path.name == "b.txt"
        )
        request = ActionRequest(
            "invalidate-artefact", session, artefact_id=b_file.id, propagate=True
        )

        plan = apply_action(store, request)

        assert sorted(s.process for s in plan.steps) == ["join", "right"]  # not left
        assert not b_file.path.exists()
        states = {n: a.state for n, a in steps_by_name(store, session).items()}  # type: ignore[attr-defined]
        assert states["split"] is StepState.SUCCEEDED  # the producing step stays
        assert states["left"] is StepState.SUCCEEDED
        assert states["right"] is StepState.INVALIDATED


def test_propagation_from_an_input_artefact_and_deleting_user_inputs_are_refused(
    diamond: Path, store_path: Path
) -> None:
    with open_store(store_path) as store:
        session = session_of(store)
        split = steps_by_name(store, session)["split"].step  # type: ignore[attr-defined]
        reads = next(a for a in store.artefacts(split.id) if a.role is ArtefactRole.INPUT)

        with pytest.raises(ActionRefused, match="output artefacts only"):
            plan_action(
                store,
                ActionRequest("invalidate-artefact", session, artefact_id=reads.id, propagate=True),
            )
        with pytest.raises(ActionRefused, match="never deletes it"):
            plan_action(store, ActionRequest("invalidate-artefact", session, artefact_id=reads.id))
        assert reads.path.exists()


def test_invalidate_workflow_removes_every_output_and_resume_redoes_it(
    diamond: Path, store_path: Path
) -> None:
    with open_store(store_path) as store:
        session = session_of(store)
        outputs = [
            p
            for n in ("split", "left", "right", "join", "lonely")
            for p in output_of(store, session, n)
        ]
        plan = apply_action(store, ActionRequest("invalidate-workflow", session))
        assert len(plan.steps) == 5 and sorted(plan.files) == sorted(outputs)
        assert not any(p.exists() for p in outputs)
        # The last run reached every step: all five are listed, and nothing is left unsaid.
        rerun = plan_action(store, ActionRequest("rerun", session))
        assert len(rerun.steps) == 5 and "never reached" not in rerun.summary

    resumed = run_program(
        diamond / "workflow.py", cwd=diamond,
        env={"MAESTRO_STORE": str(store_path), "MAESTRO_RESUME": session},
    )  # fmt: skip
    assert resumed.returncode == 0, shown(resumed)
    assert all(p.exists() for p in outputs)


def test_rerun_is_refused_for_a_succeeded_step_and_allowed_for_a_failed_one(
    diamond: Path, store_path: Path
) -> None:
    config = diamond / "Maestro.toml"
    config.write_text(config.read_text().replace('fail_join = "no"', 'fail_join = "yes"'))
    failed = run_program(
        diamond / "workflow.py", cwd=diamond, env={"MAESTRO_STORE": str(store_path)}
    )
    assert failed.returncode == 1
    config.write_text(config.read_text().replace('fail_join = "yes"', 'fail_join = "no"'))
    with open_store(store_path) as store:
        session = session_of(store)
        steps = steps_by_name(store, session)
        with pytest.raises(ActionRefused, match="only failed, aborted or invalidated"):
            plan_action(store, ActionRequest("rerun", session, step_id=steps["left"].step.id))  # type: ignore[attr-defined]
        request = ActionRequest("rerun", session, step_id=steps["join"].step.id)  # type: ignore[attr-defined]
        assert [s.process for s in plan_action(store, request).steps] == ["join"]
        # A failed run may have left steps unstarted, with no record to list: the plan says so.
        assert "steps the last run never reached run too" in plan_action(store, request).summary

        plan = apply_action(store, request)

        assert plan.pid is not None
    joined = diamond / "maestro_work" / session / "join" / "joined.txt"
    wait_for(joined.exists, timeout=30, what="the detached rerun to write join's output")
    with open_store(store_path) as store:
        wait_for(
            lambda: steps_by_name(store, session)["join"].state is StepState.SUCCEEDED,  # type: ignore[attr-defined]
            timeout=30,
            what="the rerun to be recorded",
        )
        assert len(store.runs(store.get_workflow(session).id)) == 2


def test_abort_is_refused_unless_the_workflow_runs(diamond: Path, store_path: Path) -> None:
    with open_store(store_path) as store, pytest.raises(ActionRefused, match="not running"):
        plan_action(store, ActionRequest("abort", session_of(store)))


def test_abort_request_file_accumulates_names(tmp_path: Path) -> None:
    write_abort_request(tmp_path, ["b"])
    write_abort_request(tmp_path, ["a", "b"])
    assert (tmp_path / ABORT_FILE).read_text().strip() == '{"all": false, "processes": ["a", "b"]}'
    write_abort_request(tmp_path, None)
    assert '"all": true' in (tmp_path / ABORT_FILE).read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert os.access(tmp_path / ABORT_FILE, os.R_OK)


SCATTER = """
    import libmaestro as maestro

    @maestro.main
    def main():
        parts = maestro.process(
            name="split", executor="default", outputs={"parts": "parts"},
            script='mkdir "$parts"; for i in 0 1 2; do echo "$i" > "$parts/$i.txt"; done',
        ).parts
        outs = [
            maestro.process(
                name=f"w{i}", executor="default", inputs={"part": parts / f"{i}.txt"},
                outputs={"out": "out.txt"}, script='cat "$part" "$part" > "$out"',
            ).out
            for i in range(3)
        ]
        maestro.process(
            name="gather", executor="default", inputs={f"in_{i}": o for i, o in enumerate(outs)},
            outputs={"all": "all.txt"}, script='cat "$in_0" "$in_1" "$in_2" > "$all"',
        )
        maestro.process(
            name="lonely", executor="default", outputs={"out": "alone.txt"},
            script='echo alone > "$out"',
        )

    main()
"""


def test_propagation_reaches_the_readers_of_files_inside_an_output_directory(
    tmp_path: Path, file_tree: Callable[..., Path], store_path: Path
) -> None:
    # The workers read `parts/<i>.txt`, files inside the directory `split` output: they are
    # downstream of `split` as much as readers of the directory itself would be.
    root = file_tree(
        {"Maestro.toml": '[executor.default]\ntype = "Local"\n', "workflow.py": SCATTER},
        root=tmp_path / "project",
    )
    result = run_program(root / "workflow.py", cwd=root, env={"MAESTRO_STORE": str(store_path)})
    assert result.returncode == 0, shown(result)
    with open_store(store_path) as store:
        session = session_of(store)
        split = steps_by_name(store, session)["split"].step  # type: ignore[attr-defined]
        request = ActionRequest("invalidate-step", session, step_id=split.id, propagate=True)
        plan = plan_action(store, request)
        assert sorted(s.process for s in plan.steps) == ["gather", "split", "w0", "w1", "w2"]
        (parts,) = output_of(store, session, "split")
        assert parts in plan.files and parts.is_dir()
