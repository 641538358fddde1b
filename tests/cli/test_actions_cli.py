"""`maestro invalidate`, `rerun` and `abort` on real runs, as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import shown
from helpers import kill_leftovers, processes_with, run_program, wait_for

from libmaestro.history import open_store
from libmaestro.state import StepState

CONFIG = '[executor.default]\ntype = "Local"\n'
TWO_STEPS = """
    import libmaestro as maestro

    @maestro.main
    def main():
        first = maestro.process(
            name="first", executor="default", outputs={"out": "first.txt"},
            script='echo one > "$out"',
        )
        maestro.process(
            name="second", executor="default", inputs={"f": first.out},
            outputs={"out": "second.txt"}, script='cat "$f" > "$out"',
        )

    main()
"""


@pytest.fixture
def store_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    path = str(tmp_path / "store.db")
    monkeypatch.setenv("MAESTRO_STORE", path)
    return {"MAESTRO_STORE": path}


@pytest.fixture
def finished(
    tmp_path: Path, file_tree: Callable[..., Path], store_env: dict[str, str]
) -> tuple[Path, str]:
    root = file_tree({"Maestro.toml": CONFIG, "workflow.py": TWO_STEPS}, root=tmp_path / "p")
    result = run_program(root / "workflow.py", cwd=root, env=store_env)
    assert result.returncode == 0, shown(result)
    session = next((root / "maestro_work").iterdir()).name
    return root, session


def test_invalidate_shows_the_plan_and_needs_confirmation_without_a_terminal(
    maestro, finished: tuple[Path, str]
) -> None:
    root, session = finished
    first_out = root / "maestro_work" / session / "first" / "first.txt"

    dry = maestro("invalidate", session, "--step", "first", "--propagate", "--dry-run", "--json")
    assert dry.exit_code == 0, shown(dry)
    plan = json.loads(dry.output)["result"]
    assert (plan["applied"], plan["steps"]) == (False, ["first", "second"])
    assert str(first_out) in plan["files"]

    unconfirmed = maestro("invalidate", session, "--step", "first")
    assert unconfirmed.exit_code == 2
    assert "pass --yes" in unconfirmed.output
    assert first_out.exists()

    done = maestro("invalidate", session, "--step", "first", "--propagate", "--yes")
    assert done.exit_code == 0, shown(done)
    assert "invalidate 2 steps" in done.output and "deletes 2 files" in done.output
    assert not first_out.exists()


def test_unknown_step_and_refused_actions_are_one_clear_sentence(
    maestro, finished: tuple[Path, str]
) -> None:
    _, session = finished
    unknown = maestro("invalidate", session, "--step", "frist", "--yes")
    assert unknown.exit_code == 2
    assert "did you mean 'first'" in unknown.output

    refused = maestro("rerun", session, "--step", "first", "--yes")
    assert refused.exit_code == 1
    assert "only failed, aborted or invalidated steps can be rerun" in refused.output
    assert "Traceback" not in refused.output


def test_abort_keeps_a_pending_step_from_starting(
    tmp_path: Path, file_tree: Callable[..., Path], store_env: dict[str, str]
) -> None:
    token = f"3.{os.getpid() % 10000:04d}7"  # a unique sleep of about 3 s
    program = f"""
        import libmaestro as maestro

        def step(name):
            return maestro.process(name=name, executor="default", outputs={{"out": "o.txt"}},
                                   script='sleep {token}; echo ran > "$out"')

        @maestro.main
        def main():
            maestro.raise_failures(maestro.parallelize(["one", "two"], step))

        main()
    """
    root = file_tree({"Maestro.toml": CONFIG, "workflow.py": program}, root=tmp_path / "p")
    env = {**os.environ, **store_env, "MAESTRO_JOBS": "1", "MAESTRO_PLAIN": "1"}
    workflow = subprocess.Popen(
        [sys.executable, str(root / "workflow.py")], cwd=root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: bool(processes_with(token)), timeout=30, what="the first step")
        pending: list[str] = []

        def one_is_pending() -> bool:
            # With one CPU slot, whichever step got it runs; the other waits, pending.
            with open_store(Path(store_env["MAESTRO_STORE"])) as store:
                workflow_record = store.latest_workflow()
                if workflow_record is None:
                    return False
                steps = store.aggregated_steps(workflow_record.id)
                pending[:] = [a.process for a in steps if a.state is StepState.PENDING]
                return bool(pending)

        wait_for(one_is_pending, timeout=30, what="the second step to be recorded pending")
        waiting = pending[0]
        session = next((root / "maestro_work").iterdir()).name
        aborted = subprocess.run(
            [sys.executable, "-m", "maestro_cli", "abort", session, "--step", waiting, "--yes"],
            cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert aborted.returncode == 0, shown(aborted)
        _, stderr = workflow.communicate(timeout=60)
    finally:
        if workflow.poll() is None:
            workflow.kill()
            workflow.communicate()  # reap it and close its pipes
        kill_leftovers(token)

    assert workflow.returncode == 130, stderr
    assert "a user aborted it" in stderr
    assert not (root / "maestro_work" / session / waiting / "o.txt").exists()
    with open_store(Path(store_env["MAESTRO_STORE"])) as store:
        record = store.get_workflow(session)
        states = {a.process: a.state for a in store.aggregated_steps(record.id)}
        ran = ({"one", "two"} - {waiting}).pop()
        assert states == {ran: StepState.SUCCEEDED, waiting: StepState.ABORTED}
        assert store.actions(record.id)[-1].what == "abort"
