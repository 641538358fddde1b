"""`@libmaestro.main` on real workflow programs, run as a user runs them: `python workflow.py`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import LOCAL_CONFIG, kill_leftovers, processes_with, run_program, shown, wait_for

from libmaestro.session import WORK_DIR_NAME

FULL_CONFIG = """
    [args]
    greeting = "hello"

    [inputs]
    reads = ["data/reads.fq"]

    [executor.default]
    type = "Local"
"""

GREET_PROGRAM = """
    import libmaestro

    @libmaestro.main
    def main():
        out = libmaestro.process(
            executor="default",
            name="greet",
            args={"greeting": libmaestro.arg("greeting")},
            inputs={"reads": libmaestro.inputs("reads")[0]},
            outputs={"message": "message.txt"},
            script='''
                printf '%s %s\\n' "$greeting" "$(wc -l < "$reads")" > "$message"
            ''',
        )
        print(out.message.read_text().strip())

    main()
"""


def sessions(project: Path) -> list[Path]:
    work = project / WORK_DIR_NAME
    return sorted(p for p in work.iterdir() if p.is_dir()) if work.exists() else []


@pytest.fixture
def project(file_tree: Callable[..., Path], tmp_path: Path) -> Path:
    return file_tree(
        {"Maestro.toml": FULL_CONFIG, "data/reads.fq": "@r1\nACGT\n+\nIIII\n"},
        root=tmp_path / "project",
    )


def test_main_success_exit_0_and_each_run_gets_a_session(project: Path, file_tree) -> None:
    file_tree({"workflow.py": GREET_PROGRAM}, root=project)
    first = run_program(project / "workflow.py", cwd=project)
    assert first.returncode == 0, shown(first)
    assert first.stdout == "hello 4\n"
    second = run_program(project / "workflow.py", cwd=project)
    assert second.returncode == 0, shown(second)
    found = sessions(project)
    assert len(found) == 2, found
    for session in found:
        assert (session / "greet" / "message.txt").read_text() == "hello 4\n"
        assert session.name in first.stderr + second.stderr


def test_main_startup_check_lists_every_missing_name_before_running(
    project: Path, file_tree
) -> None:
    """Missing names in the entry module and an imported module (even in dead code) are all
    reported at once, with their file:line, and no process runs."""
    file_tree(
        {
            "steps.py": """
                import libmaestro

                def never_called():
                    libmaestro.executor("gpu_cluster")
                    return libmaestro.arg("threshold")
            """,
            "workflow.py": """
                import libmaestro
                from libmaestro import inputs

                import steps

                @libmaestro.main
                def main():
                    libmaestro.process(executor="default", name="first", script="touch ran")
                    inputs("adapters")
                    if False:
                        libmaestro.process(executor="big_node", name="later", script="true")

                main()
            """,
        },
        root=project,
    )
    result = run_program(project / "workflow.py", cwd=project)
    assert result.returncode == 2, shown(result)
    err = result.stderr
    assert "4 things" in err
    assert re.search(r"steps\.py:4:\d+: executor 'gpu_cluster' is not defined", err), err
    assert re.search(r"steps\.py:5:\d+: arg 'threshold' is not defined", err), err
    assert re.search(r"workflow\.py:9:\d+: inputs 'adapters' is not defined", err), err
    assert re.search(r"workflow\.py:11:\d+: executor 'big_node' is not defined", err), err
    assert "Traceback" not in err
    assert sessions(project) == []
    assert not list(project.rglob("ran"))


def test_main_misspelled_executor_suggests_the_right_name(project: Path, file_tree) -> None:
    file_tree(
        {
            "workflow.py": """
                import libmaestro

                @libmaestro.main
                def main():
                    libmaestro.process(executor="defualt", name="x", script="true")

                main()
            """
        },
        root=project,
    )
    result = run_program(project / "workflow.py", cwd=project)
    assert result.returncode == 2, shown(result)
    assert "executor 'defualt' is not defined" in result.stderr
    assert "did you mean 'default'?" in result.stderr
    assert sessions(project) == []


def test_main_config_syntax_error_exit_2_with_location(project: Path, file_tree) -> None:
    file_tree(
        {
            "Maestro.toml": '[args]\ngreeting = "hello"\n[executor.default\ntype = "Local"\n',
            "workflow.py": GREET_PROGRAM,
        },
        root=project,
    )
    result = run_program(project / "workflow.py", cwd=project)
    assert result.returncode == 2, shown(result)
    assert f"{project / 'Maestro.toml'}:3" in result.stderr
    assert "Traceback" not in result.stderr
    assert sessions(project) == []


FAILING_PROGRAM = """
    import libmaestro

    @libmaestro.main
    def main():
        libmaestro.process(
            executor="default", name="boom", script="echo something broke >&2; exit 4"
        )
        print("after the failure")

    main()
"""


def test_main_process_error_exit_1_one_message_no_traceback(project: Path, file_tree) -> None:
    file_tree({"workflow.py": FAILING_PROGRAM}, root=project)
    result = run_program(project / "workflow.py", cwd=project)
    assert result.returncode == 1, shown(result)
    err = result.stderr
    assert "Traceback" not in err
    assert err.count("error:") == 1, err
    assert "process 'boom' failed with exit code 4" in err
    assert "something broke" in err
    assert "after the failure" not in result.stdout
    (session,) = sessions(project)
    assert str(session / "boom") in err


def test_main_debug_shows_traceback(project: Path, file_tree) -> None:
    file_tree({"workflow.py": FAILING_PROGRAM}, root=project)
    result = run_program(
        project / "workflow.py", cwd=project, env={"MAESTRO_DEBUG": "1"}, traceback_expected=True
    )
    assert result.returncode == 1, shown(result)
    assert "Traceback (most recent call last)" in result.stderr
    assert "ProcessError: process 'boom' failed with exit code 4" in result.stderr


def test_main_plain_script_gets_a_session_on_first_use(tmp_path: Path, file_tree) -> None:
    project = file_tree(
        {
            "Maestro.toml": LOCAL_CONFIG,
            "data/in.txt": "b\na\n",
            "plain.py": """
                from libmaestro import Process, executor

                proc = Process(
                    name="sorted",
                    inputs={"unsorted": "data/in.txt"},
                    outputs={"result": "out/sorted.txt"},
                    args={},
                    script='sort "$unsorted" > "$result"',
                )
                print(executor("default").exe(proc))
            """,
        },
        root=tmp_path / "plain",
    )
    result = run_program(project / "plain.py", cwd=project)
    assert result.returncode == 0, shown(result)
    (session,) = sessions(project)
    workdir = session / "sorted"
    assert result.stdout.strip() == repr([str(workdir / "out" / "sorted.txt"), str(workdir)])
    assert (workdir / "out" / "sorted.txt").read_text() == "a\nb\n"


def test_main_sighup_stops_the_jobs_like_sigterm(project: Path, file_tree) -> None:
    """A closed terminal or dropped SSH session (SIGHUP) must not leave jobs running."""
    token = f"4{os.getpid() % 1000}.25"
    file_tree(
        {
            "workflow.py": f"""
                import libmaestro
                @libmaestro.main
                def main():
                    libmaestro.process(executor="default", name="long", script="sleep {token}")
                main()
            """
        },
        root=project,
    )
    proc = subprocess.Popen(
        [sys.executable, str(project / "workflow.py")], cwd=project,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: bool(processes_with(token)), timeout=30, what="the job")
        proc.send_signal(signal.SIGHUP)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        kill_leftovers(token)
    assert proc.returncode == 130, stderr
    wait_for(lambda: not processes_with(token), timeout=10, what="the job to be stopped")
