"""Processes over SSH against a real sshd on loopback (scripts/backends/sshd-start.sh).

The remote side is another user (`maestro-remote`) with its own home, so nothing a remote
process writes can be seen as a local file by accident.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import build_file_tree, run_program, shown, wait_for

pytestmark = pytest.mark.ssh

SSH_DIR = Path(os.environ.get("SSH_TEST_DIR", "/var/lib/maestro-sshd"))
REMOTE = "maestro-test"


@pytest.fixture
def sshd(isolated_env: Path) -> Path:
    """The test sshd, reachable as `maestro-test` (keys), `maestro-test-kbdint` (prompted)."""
    config = SSH_DIR / "ssh_config"
    if (
        not config.is_file()
        or subprocess.run(
            ["ssh", "-F", str(config), REMOTE, "true"], capture_output=True, timeout=30, check=False
        ).returncode
        != 0
    ):
        message = "the test sshd is not running; start it with scripts/backends/sshd-start.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (under CI an integration test must not be skipped)")
        pytest.skip(message)
    ssh_home = Path(os.environ["HOME"]) / ".ssh"
    ssh_home.mkdir(mode=0o700, exist_ok=True)
    (ssh_home / "config").write_text(config.read_text())
    return config


def remote(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", str(SSH_DIR / "ssh_config"), REMOTE, command],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Path]:
    def write(program: str, executors: str) -> Path:
        return build_file_tree(
            tmp_path / "project",
            {"Maestro.toml": executors, "workflow.py": program, "data/in.txt": "b\na\nc\n"},
        )

    return write


EXECUTORS = f"""
    [executor.local]
    type = "Local"

    [executor.remote]
    type = "Local"
    ssh = "{REMOTE}"
"""


def test_remote_chain_keeps_data_remote_until_a_local_step_needs_it(
    sshd: Path, project: Callable[..., Path]
) -> None:
    root = project(
        """
        import libmaestro as maestro

        @maestro.main
        def main():
            made = maestro.process(
                name="make", executor="remote", outputs={"out": "numbers.txt"},
                script='seq 1 5 > "$out"; whoami > who.txt',
            )
            summed = maestro.process(
                name="sum", executor="remote", inputs={"numbers": made.out},
                outputs={"total": "total.txt"},
                script='awk "{s += \\\\$1} END {print s}" "$numbers" > "$total"',
            )
            print("remote:", summed.total)
            shown = maestro.process(
                name="show", executor="local", inputs={"total": summed.total},
                outputs={"line": "line.txt"}, script='echo "total $(cat "$total")" > "$line"',
            )
            print(shown.line.read_text().strip())

        main()
        """,
        EXECUTORS,
    )
    result = run_program(root / "workflow.py", cwd=root, timeout=60)

    assert result.returncode == 0, shown(result)
    assert result.stdout.splitlines()[-1] == "total 15"
    remote_total = re.search(r"remote: (\S+)", result.stdout)
    assert remote_total and remote_total[1].startswith("maestro-test:/home/maestro-remote/")
    session = next((root / "maestro_work").iterdir())
    # The remote steps left nothing here: only the local step has a directory, and the one
    # remote file it needed was copied into the session's .transfers/ for it.
    assert sorted(p.name for p in session.iterdir() if p.is_dir()) == [".transfers", "show"]
    copied = [p for p in (session / ".transfers").rglob("*") if p.is_file()]
    assert [(p.name, p.read_text()) for p in copied] == [("total.txt", "15\n")]
    remote_dir = f"~/maestro_work/{session.name}"
    listing = remote(f"cat {remote_dir}/make/who.txt; readlink {remote_dir}/sum/numbers.txt")
    who, link = listing.stdout.split()
    assert who == "maestro-remote"
    assert link.endswith("/make/numbers.txt")  # consumed in place on the host, not copied
    # The graph has the data's path across hosts: remote to remote, and remote to a local copy.
    graph = json.loads((session / "graph.json").read_text())
    assert sorted(map(tuple, graph["edges"])) == [("make", "sum"), ("sum", "show")]


def test_local_to_remote_to_local(sshd: Path, project: Callable[..., Path]) -> None:
    root = project(
        """
        import libmaestro as maestro

        @maestro.main
        def main():
            prepared = maestro.process(
                name="prepare", executor="local", inputs={"data": "data/in.txt"},
                outputs={"sorted": "sorted.txt"}, script='sort "$data" > "$sorted"',
            )
            upper = maestro.process(
                name="upper", executor="remote", inputs={"words": prepared.sorted},
                args={"suffix": "; $(touch pwned)"}, outputs={"out": "upper.txt"},
                script='tr a-z A-Z < "$words" | sed "s/\\\\$/$suffix/" > "$out"',
            )
            back = maestro.process(
                name="back", executor="local", inputs={"upper": upper.out},
                outputs={"copy": "copy.txt"}, script='cp "$upper" "$copy"',
            )
            print(back.copy.read_text(), end="")

        main()
        """,
        EXECUTORS,
    )
    result = run_program(root / "workflow.py", cwd=root, timeout=60)

    assert result.returncode == 0, shown(result)
    assert result.stdout.splitlines() == [
        "A; $(touch pwned)",
        "B; $(touch pwned)",
        "C; $(touch pwned)",
    ]
    assert "pwned" not in remote("ls ~").stdout


def test_keyboard_interactive_login_is_asked_once_on_the_terminal(
    sshd: Path, project: Callable[..., Path]
) -> None:
    password = (SSH_DIR / "password").read_text().strip()
    root = project(
        """
        import libmaestro as maestro

        @maestro.main
        def main():
            for i in range(3):
                maestro.process(name=f"hello_{i}", executor="prompted",
                                script="echo hello from $(whoami)")
            print("all done")

        main()
        """,
        '[executor.prompted]\ntype = "Local"\nssh = "maestro-test-kbdint"\n',
    )
    pid, fd = pty.fork()
    if pid == 0:  # the child: the workflow, with the pty as its terminal
        os.chdir(root)
        os.execv(sys.executable, [sys.executable, str(root / "workflow.py")])
    output = b""
    prompts = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if output.count(b"Password:") > prompts:
                prompts += 1
                os.write(fd, password.encode() + b"\n")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert prompts == 1, text  # once per host, not once per process
    assert "all done" in text


def test_dropped_connection_is_reattached_and_nothing_runs_twice(
    sshd: Path, project: Callable[..., Path]
) -> None:
    marker = f"runs-{os.getpid()}.txt"
    root = project(
        f"""
        import threading, time
        import libmaestro as maestro
        from libmaestro.config.model import SshTarget
        from libmaestro.remote.connection import hosts

        def cut_the_line():
            time.sleep(1.5)
            hosts().get(SshTarget(host="{REMOTE}")).drop()   # as a network failure would

        @maestro.main
        def main():
            threading.Thread(target=cut_the_line, daemon=True).start()
            out = maestro.process(
                name="slow", executor="remote", outputs={{"out": "done.txt"}},
                script='echo run >> ~/{marker}; sleep 4; echo finished > "$out"',
            )
            print(out.out)

        main()
        """,
        EXECUTORS,
    )
    result = run_program(root / "workflow.py", cwd=root, timeout=90)

    assert result.returncode == 0, shown(result)
    assert "reconnected" in result.stderr, shown(result)
    assert remote(f"cat ~/{marker}; rm -f ~/{marker}").stdout == "run\n"


def test_killed_sshd_child_mid_process_does_not_lose_the_step(
    sshd: Path, project: Callable[..., Path]
) -> None:
    """The sshd process serving our connection is killed, as when a network drops for good."""
    marker = f"sshd-kill-{os.getpid()}.txt"
    root = project(
        f"""
        import libmaestro as maestro

        @maestro.main
        def main():
            out = maestro.process(
                name="slow", executor="remote", outputs={{"out": "done.txt"}},
                script='echo run >> ~/{marker}; sleep 4; echo finished > "$out"',
            )
            print(out.out)

        main()
        """,
        EXECUTORS,
    )
    workflow = subprocess.Popen(
        [sys.executable, str(root / "workflow.py")], cwd=root,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: remote(f"test -s ~/{marker}").returncode == 0, timeout=30, what="the step")
        children = subprocess.run(
            ["pgrep", "-f", "maestro-sshd: maestro-remote"], capture_output=True, text=True,
            check=False,
        ).stdout.split()  # fmt: skip
        for pid in children:
            subprocess.run(["kill", "-9", pid], check=False)
        stdout, stderr = workflow.communicate(timeout=90)
    finally:
        if workflow.poll() is None:
            workflow.kill()
            workflow.communicate()  # reap it and close its pipes
    assert workflow.returncode == 0, stderr
    assert stdout.strip().endswith("/slow/done.txt")
    assert remote(f"cat ~/{marker}; rm -f ~/{marker}").stdout == "run\n"


def test_kill_leaves_no_remote_process(sshd: Path, project: Callable[..., Path]) -> None:
    token = f"7{os.getpid() % 1000}.75"
    root = project(
        f"""
        import libmaestro as maestro

        @maestro.main
        def main():
            maestro.process(name="long", executor="remote", script="sleep {token}")

        main()
        """,
        EXECUTORS,
    )
    started = subprocess.run(
        [sys.executable, "-m", "maestro_cli", "run", "--background"],
        cwd=root, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 0, shown(started)
    session = re.search(r"^session: (\w+)$", started.stdout, re.MULTILINE)
    assert session
    wait_for(lambda: remote(f"pgrep -f '[s]leep {token}'").returncode == 0, timeout=30,
             what="the remote step to start")  # fmt: skip

    killed = subprocess.run(
        [sys.executable, "-m", "maestro_cli", "kill", session[1]],
        cwd=root, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert killed.returncode == 0, shown(killed)
    wait_for(lambda: remote(f"pgrep -f '[s]leep {token}'").returncode == 1, timeout=20,
             what="the remote process to be gone")  # fmt: skip


@pytest.mark.slurm
def test_slurm_over_ssh_submits_on_the_remote_login_node(
    sshd: Path, slurm: None, project: Callable[..., Path]
) -> None:
    root = project(
        """
        import libmaestro as maestro

        @maestro.main
        def main():
            out = maestro.process(
                name="job", executor="cluster", args={"greeting": "hi"},
                outputs={"out": "out.txt"},
                script='echo "$greeting $(whoami) $SLURM_JOB_ID" > "$out"',
            )
            back = maestro.process(
                name="fetch", executor="local", inputs={"job": out.out},
                outputs={"copy": "copy.txt"}, script='cp "$job" "$copy"',
            )
            print(back.copy.read_text().strip())

        main()
        """,
        EXECUTORS + f'\n[executor.cluster]\ntype = "Slurm"\ncpus = 1\nssh = "{REMOTE}"\n'
        'memory = { type = "per_cpu", amount = 64 }\npoll_interval = 2\n',
    )
    result = run_program(root / "workflow.py", cwd=root, timeout=120)

    assert result.returncode == 0, shown(result)
    greeting, user, job_id = result.stdout.split()[-3:]
    assert (greeting, user) == ("hi", "maestro-remote") and job_id.isdigit()


def test_unreachable_host_is_reported_before_anything_runs(
    sshd: Path, project: Callable[..., Path]
) -> None:
    root = project(
        """
        import libmaestro as maestro

        @maestro.main
        def main():
            maestro.process(name="never", executor="nowhere", script="true")

        main()
        """,
        '[executor.nowhere]\ntype = "Local"\nssh = "maestro-remote@127.0.0.1:1"\n',
    )
    result = run_program(root / "workflow.py", cwd=root, timeout=60)

    assert result.returncode == 2, shown(result)
    assert 'executor "nowhere": maestro-remote@127.0.0.1:1: cannot connect' in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "maestro_work").exists() or not any((root / "maestro_work").iterdir())


def test_large_remote_output_copied_here_shows_progress(
    sshd: Path, project: Callable[..., Path]
) -> None:
    root = project(
        """
        import libmaestro as maestro

        @maestro.main
        def main():
            big = maestro.process(
                name="big", executor="remote", outputs={"out": "big.bin"},
                script='head -c 20000000 /dev/urandom > "$out"; sha256sum < "$out" > sum.txt',
            )
            local = maestro.process(
                name="check", executor="local", inputs={"big": big.out},
                outputs={"sum": "sum.txt"}, script='sha256sum < "$big" > "$sum"',
            )
            print(local.sum.read_text().split()[0])

        main()
        """,
        EXECUTORS,
    )
    result = run_program(root / "workflow.py", cwd=root, timeout=120)

    assert result.returncode == 0, shown(result)
    session = next((root / "maestro_work").iterdir()).name
    remote_sum = remote(f"cat ~/maestro_work/{session}/big/sum.txt").stdout.split()[0]
    assert result.stdout.strip() == remote_sum  # the copy is byte for byte the remote file
    assert "100% of 20 MB" in result.stderr, shown(result)
