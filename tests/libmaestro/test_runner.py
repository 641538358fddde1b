"""Tests for running one process with LocalExecutor: real bash, real files, no mocks."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

import libmaestro
from libmaestro import (
    LocalExecutor,
    Process,
    ProcessDefinitionError,
    ProcessError,
    ProcessOutputs,
    StagingMode,
)
from libmaestro.session import WORK_DIR_NAME, Session


def run(name: str, script: str, **fields: object) -> ProcessOutputs:
    return LocalExecutor().exe(Process(name=name, script=script, **fields))  # type: ignore[arg-type]  # test shorthand


# --- where things go -----------------------------------------------------------------------


def test_runner_outputs_in_session_process_directory(session: Session, isolated_env: Path) -> None:
    out = run("hello", 'echo hi > "$greeting"', outputs={"greeting": "greeting.txt"})
    workdir = isolated_env / WORK_DIR_NAME / session.name / "hello"
    assert out == [workdir / "greeting.txt", workdir]
    assert out.greeting.read_text() == "hi\n"


def test_runner_keeps_stdout_stderr_status_and_script(session: Session) -> None:
    out = run(
        "logs",
        """
        echo to-stdout
        echo to-stderr >&2
        """,
    )
    assert (out.workdir / ".maestro.out").read_text() == "to-stdout\n"
    assert (out.workdir / ".maestro.err").read_text() == "to-stderr\n"
    status = json.loads((out.workdir / ".maestro.json").read_text())
    assert status["exit_code"] == 0
    assert status["signal"] is None
    assert status["state"] == "succeeded"
    assert status["process"] == "logs"
    assert status["session"] == session.name
    assert status["duration_seconds"] > 0
    assert status["ended_at"] >= status["started_at"] > 0
    assert isinstance(status["max_rss_kib"], int)
    assert status["max_rss_kib"] > 0
    script = out.workdir / ".maestro.sh"
    assert script.read_text() == "#!/bin/bash\necho to-stdout\necho to-stderr >&2\n"
    assert os.access(script, os.X_OK)


def test_runner_creates_output_parent_directories(session: Session) -> None:
    out = run("nested", 'echo deep > "$x"', outputs={"x": "out/sub/x.txt"})
    assert out.x == out.workdir / "out" / "sub" / "x.txt"
    assert out.x.read_text() == "deep\n"


def test_runner_process_function_returns_named_outputs(session: Session) -> None:
    out = libmaestro.process(
        executor=LocalExecutor(),
        name="counted",
        args={"n": 3},
        outputs={"first": "a.txt", "second": "b.txt"},
        script="""
            seq "$n" > "$first"
            echo done > "$second"
        """,
    )
    first, second, workdir = out
    assert first.read_text() == "1\n2\n3\n"
    assert out.second == second == workdir / "b.txt"
    assert out.workdir == session.directory / "counted"


def test_runner_process_without_name_gets_random_id(session: Session) -> None:
    out = libmaestro.process(executor=LocalExecutor(), script="true")
    assert out.workdir.parent == session.directory
    assert out.workdir.name.startswith("process_")


def test_runner_without_session_creates_one_in_cwd(isolated_env: Path) -> None:
    """A plain script (no @main, no session yet) should get a session on first use."""
    out = run("first_use", 'echo ok > "$o"', outputs={"o": "o.txt"})
    sessions = list((isolated_env / WORK_DIR_NAME).iterdir())
    assert len(sessions) == 1
    assert out.workdir == sessions[0] / "first_use"
    assert out.o.read_text() == "ok\n"


def test_runner_environment_variables_visible(session: Session) -> None:
    out = run(
        "envcheck",
        'printf "%s\\n" "$MAESTRO_SESSION" "$MAESTRO_PROCESS" "$MAESTRO_WORKDIR" "$PWD" > "$o"',
        outputs={"o": "env.txt"},
    )
    lines = out.o.read_text().splitlines()
    assert lines == [session.name, "envcheck", str(out.workdir), str(out.workdir)]


# --- failures ------------------------------------------------------------------------------


def test_runner_missing_outputs_named_in_error(session: Session) -> None:
    with pytest.raises(ProcessError) as caught:
        run(
            "forgetful",
            'echo x > "$made"',
            outputs={"made": "made.txt", "lost": "lost.txt", "gone": "sub/gone.txt"},
        )
    error = caught.value
    message = str(error)
    assert "2 declared outputs" in message
    assert "lost = lost.txt" in message
    assert "gone = sub/gone.txt" in message
    assert "made =" not in message
    assert error.missing_outputs == ("lost", "gone")
    assert error.process == "forgetful"
    assert error.workdir == session.directory / "forgetful"


def test_runner_nonzero_exit_reports_code_workdir_and_stderr_tail(session: Session) -> None:
    with pytest.raises(ProcessError) as caught:
        run(
            "failing",
            """
            for i in $(seq -w 1 15); do echo "err-$i" >&2; done
            exit 3
            """,
        )
    error = caught.value
    message = str(error)
    workdir = session.directory / "failing"
    assert "'failing'" in message
    assert "exit code 3" in message
    assert str(workdir) in message
    assert "err-15" in message
    assert "err-06" in message
    assert "err-05" not in message  # only the last 10 lines
    assert error.process_exit_code == 3
    assert error.exit_code == 1  # how a program ending on it exits
    assert json.loads((workdir / ".maestro.json").read_text())["exit_code"] == 3


def test_runner_killed_by_signal_says_sigkill(session: Session) -> None:
    with pytest.raises(ProcessError) as caught:
        run("killed", "echo before >&2\nkill -9 $$\necho after")
    message = str(caught.value)
    assert "killed by SIGKILL" in message
    assert "before" in message
    status = json.loads((session.directory / "killed" / ".maestro.json").read_text())
    assert status["signal"] == 9
    assert status["exit_code"] is None


def test_runner_duplicate_name_rejected_first_run_untouched(
    session: Session, tmp_path: Path
) -> None:
    first = run("dup", 'echo first > "$o"', outputs={"o": "o.txt"})
    before = {p.name: p.read_bytes() for p in first.workdir.iterdir()}
    marker = tmp_path / "second_ran"
    with pytest.raises(ProcessDefinitionError) as caught:
        run("dup", 'echo second > "$o"; touch "$m"', outputs={"o": "o.txt"}, args={"m": marker})
    assert "'dup' already ran" in str(caught.value)
    assert {p.name: p.read_bytes() for p in first.workdir.iterdir()} == before
    assert not marker.exists()


@pytest.mark.parametrize("path", [".maestro.json", ".maestro.sh/x", ".maestro.out"])
def test_runner_output_named_like_maestro_file_rejected(session: Session, path: str) -> None:
    with pytest.raises(ProcessDefinitionError, match="keeps for its own files"):
        run("clash", 'echo mine > "$o"', outputs={"o": path})
    assert not (session.directory / "clash").exists()


def test_runner_missing_interpreter_is_a_process_error(session: Session) -> None:
    with pytest.raises(ProcessError) as caught:
        run("bad_shebang", "#!/nonexistent/interpreter\necho hi")
    message = str(caught.value)
    assert "'bad_shebang' could not be started" in message
    assert "'#!/nonexistent/interpreter'" in message
    assert caught.value.workdir == session.directory / "bad_shebang"


# --- scripts -------------------------------------------------------------------------------


def test_runner_inline_false_reads_script_next_to_calling_module(
    session: Session, tmp_path: Path, file_tree, isolated_env: Path
) -> None:
    project = file_tree(
        {
            "wf_module.py": """
                from libmaestro import LocalExecutor, process

                def run():
                    return process(
                        executor=LocalExecutor(),
                        name="from_file",
                        inline=False,
                        script="scripts/x.sh",
                        outputs={"out": "out.txt"},
                    )
            """,
            "scripts/x.sh": 'echo "from the module\'s directory" > "$out"\n',
        },
        root=tmp_path / "project",
    )
    # A script of the same relative name in the current directory must not be picked up.
    file_tree({"scripts/x.sh": 'echo "from cwd" > "$out"\n'}, root=isolated_env)
    spec = importlib.util.spec_from_file_location("wf_module_under_test", project / "wf_module.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.run()
    assert out.out.read_text() == "from the module's directory\n"
    assert (out.workdir / ".maestro.sh").read_text().startswith("#!/bin/bash\n")


def test_runner_inline_false_missing_file_is_definition_error(session: Session) -> None:
    with pytest.raises(ProcessDefinitionError, match="cannot be read"):
        libmaestro.process(executor=LocalExecutor(), inline=False, script="no/such.sh")


def test_runner_user_shebang_runs_under_python(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `env python3` should find this interpreter, whatever the machine's PATH holds.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    out = run(
        "pythonic",
        """
        #!/usr/bin/env python3
        import os, sys
        with open(os.environ["o"], "w") as handle:
            handle.write(f"python {sys.version_info.major} {2 ** 10}")
        """,
        outputs={"o": "o.txt"},
    )
    assert out.o.read_text() == "python 3 1024"
    assert (out.workdir / ".maestro.sh").read_text().startswith("#!/usr/bin/env python3\n")


# --- environment modules -------------------------------------------------------------------


def test_runner_modules_loaded_before_script(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_tree
) -> None:
    record = tmp_path / "module_calls.txt"
    modules_home = file_tree(
        {"init/bash": f"module() {{ printf '%s\\n' \"$*\" >> '{record}'; }}\n"},
        root=tmp_path / "fake_modules",
    )
    monkeypatch.setenv("MODULESHOME", str(modules_home))
    monkeypatch.delenv("BASH_FUNC_module%%", raising=False)
    out = LocalExecutor(modules=("samtools/1.17", "bwa/0.7")).exe(
        Process(name="with_modules", script='echo ran > "$o"', outputs={"o": "o.txt"})
    )
    assert record.read_text() == "load samtools/1.17 bwa/0.7\n"
    assert out.o.read_text() == "ran\n"


def test_runner_modules_without_module_system_fails_clearly(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    inits = [
        "/etc/profile.d/modules.sh",
        "/etc/profile.d/lmod.sh",
        "/usr/share/lmod/lmod/init/bash",
    ]
    if any(Path(p).exists() for p in inits):
        pytest.skip("this host has an environment module system")
    monkeypatch.delenv("MODULESHOME", raising=False)
    monkeypatch.delenv("BASH_FUNC_module%%", raising=False)
    with pytest.raises(ProcessError) as caught:
        LocalExecutor(modules=("samtools/1.17",)).exe(
            Process(name="no_modules", script='echo ran > "$o"', outputs={"o": "o.txt"})
        )
    assert caught.value.process_exit_code == 127
    message = str(caught.value)
    assert "no 'module' command" in message
    assert "samtools/1.17" in message
    assert not (session.directory / "no_modules" / "o.txt").exists()


# --- injection safety ----------------------------------------------------------------------

HOSTILE = [
    "$(touch pwned)",
    '"; touch pwned; echo "',
    "`touch pwned`",
    "it's",
    "*",
    "$HOME",
    "a b  c",
    "-n",
]


def assert_no_pwned(*roots: Path) -> None:
    for root in roots:
        assert not list(root.rglob("pwned")), f"a value was run as shell code under {root}"


@pytest.mark.parametrize("value", HOSTILE)
def test_runner_arg_value_arrives_verbatim(session: Session, tmp_path: Path, value: str) -> None:
    out = run("arg_value", 'printf \'%s\' "$v" > "$o"', args={"v": value}, outputs={"o": "o"})
    assert out.o.read_bytes() == value.encode()
    assert_no_pwned(tmp_path)


@pytest.mark.parametrize("mode", [StagingMode.SYMLINK, StagingMode.NONE])
@pytest.mark.parametrize("value", HOSTILE)
def test_runner_input_path_arrives_verbatim(
    session: Session, tmp_path: Path, value: str, mode: StagingMode
) -> None:
    source = tmp_path / "inputs" / value
    source.parent.mkdir()
    source.write_text("content\n")
    out = LocalExecutor(staging_mode=mode).exe(
        Process(
            name="input_value",
            script="""
                printf '%s' "$v" > "$o"
                cat "$v" > "$c"
            """,
            inputs={"v": source},
            outputs={"o": "o", "c": "c"},
        )
    )
    expected = source if mode is StagingMode.NONE else out.workdir / value
    assert out.o.read_bytes() == str(expected).encode()
    assert out.c.read_text() == "content\n"
    assert_no_pwned(tmp_path)


@pytest.mark.parametrize("value", HOSTILE)
def test_runner_output_name_arrives_verbatim(session: Session, tmp_path: Path, value: str) -> None:
    out = run("output_value", 'printf \'%s\' "$o" > "$o"', outputs={"o": value})
    assert out.o == out.workdir / value
    assert out.o.read_bytes() == str(out.workdir / value).encode()
    assert_no_pwned(tmp_path)


def test_runner_input_names_with_spaces_and_dollar(session: Session, tmp_path: Path) -> None:
    first = tmp_path / "my reads $1.fq"
    second = tmp_path / "dir with space" / "$sample ref.fa"
    second.parent.mkdir()
    first.write_text("@r1\nACGT\n")
    second.write_text(">ref\nTTTT\n")
    out = run(
        "spaced",
        'cat "$reads" "$ref" > "$both"',
        inputs={"reads": first, "ref": second},
        outputs={"both": "both with space.txt"},
    )
    assert out.both.read_text() == "@r1\nACGT\n>ref\nTTTT\n"
    assert (out.workdir / "my reads $1.fq").is_symlink()
