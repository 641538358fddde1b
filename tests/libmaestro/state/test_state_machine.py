"""The step, run and workflow state machines of libmaestro.state.states."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import libmaestro.state
from libmaestro.errors import MaestroError
from libmaestro.state import (
    STEP_TRANSITIONS,
    RunState,
    StateTransitionError,
    StateVersionError,
    StepState,
    WorkflowState,
    can_transition,
    check_run_transition,
    check_transition,
)

S = StepState

ALLOWED = {
    (None, S.PENDING),
    (None, S.RUNNING),
    (None, S.SKIPPED),
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.SKIPPED),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.ABORTED),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.ABORTED),
    (S.SUCCEEDED, S.INVALIDATED),
    (S.SKIPPED, S.INVALIDATED),
}
EVERY_PAIR = [(old, new) for old in [None, *StepState] for new in StepState]


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED, key=str))
def test_check_transition_allows_the_documented_moves(
    old: StepState | None, new: StepState
) -> None:
    check_transition(old, new)
    assert can_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"), [pair for pair in EVERY_PAIR if pair not in ALLOWED], ids=str
)
def test_check_transition_refuses_every_other_move(old: StepState | None, new: StepState) -> None:
    with pytest.raises(StateTransitionError) as caught:
        check_transition(old, new, step="align")
    assert "align" in str(caught.value)
    assert new.value in str(caught.value)
    assert not can_transition(old, new)


def test_transition_table_covers_every_state() -> None:
    assert set(STEP_TRANSITIONS) == {None, *StepState}
    assert {(o, n) for o, targets in STEP_TRANSITIONS.items() for n in targets} == ALLOWED


def test_step_state_terminal_and_success() -> None:
    assert {s for s in StepState if not s.is_terminal} == {S.PENDING, S.RUNNING}
    assert {s for s in StepState if s.is_success} == {S.SUCCEEDED, S.SKIPPED}


def test_refused_message_names_the_allowed_moves() -> None:
    with pytest.raises(StateTransitionError, match="it can go to: invalidated"):
        check_transition(S.SUCCEEDED, S.RUNNING)
    with pytest.raises(StateTransitionError, match="nothing"):
        check_transition(S.FAILED, S.RUNNING)


def test_run_transitions_only_from_running() -> None:
    for end in RunState:
        if end is RunState.RUNNING:
            with pytest.raises(StateTransitionError):
                check_run_transition(RunState.RUNNING, end)
        else:
            check_run_transition(RunState.RUNNING, end)
            assert end.is_terminal
            for other in RunState:
                with pytest.raises(StateTransitionError):
                    check_run_transition(end, other)


def test_workflow_state_follows_latest_run() -> None:
    assert WorkflowState.of_run(None) is WorkflowState.PENDING
    for run_state in RunState:
        assert WorkflowState.of_run(run_state).value == run_state.value
    assert {s for s in WorkflowState if s.is_error} == {
        WorkflowState.FAILED,
        WorkflowState.INTERRUPTED,
    }


def test_state_errors_are_maestro_errors() -> None:
    assert issubclass(StateTransitionError, MaestroError)
    assert issubclass(StateVersionError, MaestroError)


def test_state_package_exports_match_all() -> None:
    public = {name for name in dir(libmaestro.state) if not name.startswith("_")}
    modules = {"aggregate", "base", "errors", "liveness", "records", "sqlite", "states"}
    assert set(libmaestro.state.__all__) == public - modules - {"annotations"}


def test_state_package_imports_no_higher_layer() -> None:
    """The store should never import executors, runner, session, api or the CLI (STYLE §1)."""
    allowed = {"libmaestro.errors", "libmaestro._fs", "libmaestro._version"}
    package = Path(libmaestro.state.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.startswith("libmaestro") and not name.startswith("libmaestro.state"):
                    assert name in allowed, f"{path.name} imports {name}"
                assert not name.startswith(("maestro_cli", "typer", "rich")), path.name
