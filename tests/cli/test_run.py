"""`maestro run`: a real program in the foreground, its exit codes, output and interruption."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from cli_helpers import sessions, shown

LOCAL = '[executor.default]\ntype = "Local"\n'


def write_project(root: Path, workflow: str, config: str = LOCAL) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "workflow.py").write_text(workflow)
    (root / "Maestro.toml").write_text(config)
    return root


GREETING = """
import sys
import libmaestro as maestro

@maestro.main
def main():
    out = maestro.process(
        name="greet",
        executor="default",
        args={"who": maestro.arg("who"), "extra": " ".join(sys.argv[1:])},
        outputs={"greeting": "greeting.txt"},
        script='printf "hello %s%s" "$who" "$extra" > "$greeting"',
    )
    print(out.greeting.read_text())

if __name__ == "__main__":
    main()
"""


def test_run_twice_gives_two_sessions(maestro_process, tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", GREETING, LOCAL + '[args]\nwho = "world"\n')
    for _ in range(2):
        result = maestro_process("run", cwd=project)
        assert result.returncode == 0, shown(result)
        assert result.stdout.strip() == "hello world"
    runs = sessions(project)
    assert len(runs) == 2
    assert all((run / "greet" / "greeting.txt").read_text() == "hello world" for run in runs)


def test_run_project_argument_config_option_and_program_args(
    maestro_process, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "p", GREETING, LOCAL + '[args]\nwho = "world"\n')
    other = tmp_path / "elsewhere.toml"
    other.write_text(LOCAL + '[args]\nwho = "cluster"\n')
    result = maestro_process(
        "run", str(project), "--config", str(other), "--", " and", "--sample", cwd=tmp_path
    )
    assert result.returncode == 0, shown(result)
    assert result.stdout.strip() == "hello cluster and --sample"


def test_run_plain_progress_when_piped(maestro_process, tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", GREETING, LOCAL + '[args]\nwho = "x"\n')
    result = maestro_process("run", cwd=project)
    assert result.returncode == 0, shown(result)
    (session,) = sessions(project)
    lines = result.stderr.splitlines()
    assert f"maestro: session {session.name} in {session}" in lines
    assert "maestro: started greet (default)" in lines
    assert any(line.startswith("maestro: done greet in ") for line in lines)
    assert any(f"session {session.name} succeeded: 1 succeeded" in line for line in lines)


def test_run_live_display_on_a_terminal(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", GREETING, LOCAL + '[args]\nwho = "tty"\n')
    env = {k: v for k, v in os.environ.items() if k not in {"MAESTRO_PLAIN", "NO_COLOR"}}
    env.update(TERM="xterm-256color", COLUMNS="100")
    pid, fd = pty.fork()
    if pid == 0:  # the child: become `maestro run` on a terminal
        os.chdir(project)
        os.execve(sys.executable, [sys.executable, "-m", "maestro_cli", "run"], env)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    screen = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, screen
    assert "\x1b[" in screen  # rich drew on the terminal
    assert "✓" in screen and "greet" in screen
    assert "succeeded" in screen and "hello tty" in screen
    assert "0 waiting" in screen  # what has yet to start, beside what runs


def test_run_failure_is_one_clear_message_with_exit_1(maestro_process, tmp_path: Path) -> None:
    workflow = GREETING.replace(
        '\'printf "hello %s%s" "$who" "$extra" > "$greeting"\'',
        "'echo \"reference genome not indexed\" >&2; exit 3'",
    )
    project = write_project(tmp_path / "p", workflow, LOCAL + '[args]\nwho = "x"\n')
    result = maestro_process("run", cwd=project)
    assert result.returncode == 1, shown(result)
    assert "Traceback" not in result.stderr
    assert "process 'greet' failed with exit code 3" in result.stderr
    assert "reference genome not indexed" in result.stderr
    debug = maestro_process("--debug", "run", cwd=project, traceback_expected=True)
    assert debug.returncode == 1, shown(debug)
    assert "Traceback" in debug.stderr


def test_run_missing_project_is_a_usage_error(maestro_process, tmp_path: Path) -> None:
    result = maestro_process("run", "nowhere", cwd=tmp_path)
    assert result.returncode == 2, shown(result)
    assert "nowhere does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_directory_without_workflow_explains(maestro_process, tmp_path: Path) -> None:
    result = maestro_process("run", cwd=tmp_path)
    assert result.returncode == 2, shown(result)
    assert "no workflow entry workflow.py" in result.stderr and "maestro init" in result.stderr


def test_run_config_error_exit_2_nothing_runs(maestro_process, tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p", GREETING, '[executor.default]\ntype = "Lokal"\n[args]\nwho = "x"\n'
    )
    result = maestro_process("run", cwd=project)
    assert result.returncode == 2, shown(result)
    assert "Maestro.toml:2" in result.stderr and "Local" in result.stderr
    assert sessions(project) == []


def _descendants_with(token: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if token in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def test_run_ctrl_c_stops_everything(tmp_path: Path) -> None:
    token = "317.25"  # a sleep length no other test uses, to find our processes
    workflow = f'''
import libmaestro as maestro

@maestro.main
def main():
    maestro.process(
        name="long",
        executor="default",
        script="""
            touch "$MAESTRO_WORKDIR/started"
            sleep {token} &
            bash -c 'trap "" TERM; sleep {token}' &
            wait
        """,
    )

if __name__ == "__main__":
    main()
'''
    project = write_project(tmp_path / "p", workflow)
    run = subprocess.Popen(
        [sys.executable, "-m", "maestro_cli", "run"],
        cwd=project,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal would give it
    )
    deadline = time.monotonic() + 30
    while not list(project.glob("maestro_work/*/long/started")):
        assert time.monotonic() < deadline and run.poll() is None, "the process never started"
        time.sleep(0.05)
    while len(_descendants_with(token)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C at a terminal does
    _, stderr = run.communicate(timeout=30)
    assert run.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    leftovers = _descendants_with(token)
    assert leftovers == [], [p.info for p in leftovers]
