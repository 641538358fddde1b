"""Processes in real Podman and Docker containers (scripts/backends/containers-start.sh)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import kill_leftovers, processes_with, run_program, shown, wait_for

pytestmark = pytest.mark.container

PROGRAM = """
    import libmaestro as maestro

    @maestro.main
    def main():
        out = maestro.process(
            name="inside", executor="boxed",
            args={"greeting": "hello; $(touch pwned) \\"quoted\\""},
            inputs={"reads": "data/reads.txt"},
            outputs={"report": "report.txt"},
            script='''
                {
                  if [ -e /run/.containerenv ]; then echo podman; fi
                  if [ -e /.dockerenv ]; then echo docker; fi
                  printf '%s\\n' "$greeting"
                  cat "$reads"
                  pwd
                } > "$report"
                ''',
        )
        print(out.report)

    main()
"""
# Markers each runtime leaves inside its containers.
INSIDE = {"Podman": "podman", "Docker": "docker"}


@pytest.fixture(params=["Podman", "Docker"])
def runtime(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(runtime name as in Maestro.toml, image), for each available runtime."""
    image = request.getfixturevalue(request.param.lower())
    return request.param, image


def containers_named(binary: str, prefix: str) -> list[str]:
    done = subprocess.run(
        [binary, "ps", "-a", "--format", "{{.Names}}"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return [name for name in done.stdout.split() if name.startswith(prefix)]


def containers_labelled(binary: str, session: str) -> list[str]:
    done = subprocess.run(
        [binary, "ps", "-aq", "--filter", f"label=maestro.session={session}"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout.split()


@pytest.fixture
def project(tmp_path: Path, file_tree: Callable[..., Path]) -> Callable[..., Path]:
    def write(program: str, container: str) -> Path:
        config = f'[executor.boxed]\ntype = "Local"\ncontainer = {container}\n'
        return file_tree(
            {"Maestro.toml": config, "workflow.py": program, "data/reads.txt": "ACGT\n"},
            root=tmp_path / "project",
        )

    return write


def test_container_gets_variables_inputs_and_the_workdir_at_the_same_path(
    runtime: tuple[str, str], project: Callable[..., Path]
) -> None:
    name, image = runtime
    root = project(PROGRAM, f'{{ {name} = "{image}" }}')
    result = run_program(root / "workflow.py", cwd=root, timeout=120)

    assert result.returncode == 0, shown(result)
    report = Path(result.stdout.strip())
    inside, greeting, reads, cwd = report.read_text().splitlines()
    assert inside == INSIDE[name]  # it really ran in that runtime's container
    assert greeting == 'hello; $(touch pwned) "quoted"'  # passed as a value, never evaluated
    assert reads == "ACGT"
    assert cwd == str(report.parent)  # the working directory is bound at the same path
    assert not list(root.rglob("pwned"))
    # Staging is forced to Copy: the input is a real file inside the working directory.
    staged = report.parent / "reads.txt"
    assert staged.is_file() and not staged.is_symlink()
    session = report.parent.parent.name
    assert containers_named(name.lower(), f"maestro-{session}-") == []  # removed afterwards


def test_container_exit_status_passes_through(
    runtime: tuple[str, str], project: Callable[..., Path]
) -> None:
    name, image = runtime
    program = """
        import libmaestro as maestro

        @maestro.main
        def main():
            maestro.process(name="fails", executor="boxed", script="echo 'bad input' >&2; exit 7")

        main()
    """
    root = project(program, f'{{ {name} = "{image}" }}')
    result = run_program(root / "workflow.py", cwd=root, timeout=120)

    assert result.returncode == 1, shown(result)
    assert "failed with exit code 7" in result.stderr
    assert "bad input" in result.stderr


def test_stopping_a_run_kills_and_removes_its_container(
    runtime: tuple[str, str], project: Callable[..., Path]
) -> None:
    name, image = runtime
    token = f"4{os.getpid()}.5"
    program = f"""
        import libmaestro as maestro

        @maestro.main
        def main():
            maestro.process(name="long", executor="boxed", script="sleep {token}")

        main()
    """
    root = project(program, f'{{ {name} = "{image}" }}')
    binary = name.lower()
    proc = subprocess.Popen(
        [sys.executable, str(root / "workflow.py")],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(
            lambda: bool(containers_named(binary, "maestro-")) and bool(processes_with(token)),
            timeout=60,
            what="the container to run",
        )
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # reap it and close its pipes
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    wait_for(lambda: not processes_with(token), timeout=20, what="the container's processes")
    session = next((root / "maestro_work").iterdir()).name
    assert containers_named(binary, f"maestro-{session}-") == []


def test_kill_force_removes_the_sessions_container(
    runtime: tuple[str, str], project: Callable[..., Path]
) -> None:
    """SIGKILL never reaches the launcher's trap, and the container lives outside the tree."""
    name, image = runtime
    token = f"5{os.getpid()}.75"
    program = f"""
        import libmaestro as maestro

        @maestro.main
        def main():
            maestro.process(name="long", executor="boxed", script="sleep {token}")

        main()
    """
    root = project(program, f'{{ {name} = "{image}" }}')
    binary = name.lower()
    maestro = [sys.executable, "-m", "maestro_cli"]
    started = subprocess.run(
        [*maestro, "run", "--background"],
        cwd=root, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 0, shown(started)
    found = re.search(r"^session: (\w+)$", started.stdout, re.MULTILINE)
    assert found, shown(started)
    session = found[1]
    try:
        wait_for(
            lambda: bool(containers_labelled(binary, session)) and bool(processes_with(token)),
            timeout=60,
            what="the container to run",
        )
        killed = subprocess.run(
            [*maestro, "kill", "--force", session],
            cwd=root, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert killed.returncode == 0, shown(killed)
        assert "killed" in killed.stdout
        assert containers_labelled(binary, session) == []
        assert containers_named(binary, f"maestro-{session}-") == []
        wait_for(lambda: not processes_with(token), timeout=20, what="the container's processes")
    finally:
        leftovers = containers_labelled(binary, session)
        if leftovers:
            subprocess.run([binary, "rm", "-f", *leftovers], capture_output=True, check=False)
        kill_leftovers(token)


def test_container_home_is_the_writable_working_directory(
    runtime: tuple[str, str], project: Callable[..., Path]
) -> None:
    """Docker's --user leaves HOME at /, which that user cannot write to."""
    name, image = runtime
    program = """
        import libmaestro as maestro

        @maestro.main
        def main():
            out = maestro.process(
                name="home", executor="boxed", outputs={"seen": "seen.txt"},
                script='mkdir -p "$HOME/.cache" && echo ok > "$HOME/.cache/probe" && printf %s "$HOME" > "$seen"',
            )
            print(out.seen)

        main()
    """
    root = project(program, f'{{ {name} = "{image}" }}')
    result = run_program(root / "workflow.py", cwd=root, timeout=120)

    assert result.returncode == 0, shown(result)
    seen = Path(result.stdout.strip())
    assert seen.read_text() == str(seen.parent)
    assert (seen.parent / ".cache" / "probe").read_text() == "ok\n"


def test_missing_image_is_reported_before_anything_runs(
    runtime: tuple[str, str], project: Callable[..., Path]
) -> None:
    name, _ = runtime
    root = project(PROGRAM, f'{{ {name} = "localhost/no-such-image:1" }}')
    result = run_program(root / "workflow.py", cwd=root, timeout=120)

    assert result.returncode == 2, shown(result)
    assert f"{name.lower()} pull localhost/no-such-image:1" in result.stderr
    assert "Maestro.toml" in result.stderr
    assert not (root / "maestro_work").exists() or not any(
        (root / "maestro_work").rglob("report.txt")
    )


@pytest.mark.slurm
def test_slurm_job_runs_its_script_in_podman(
    slurm: None, podman: str, project: Callable[..., Path]
) -> None:
    program = PROGRAM.replace('executor="boxed"', 'executor="cluster"')
    root = project(program, f'{{ Podman = "{podman}" }}')
    config = root / "Maestro.toml"
    config.write_text(
        config.read_text()
        + f'\n[executor.cluster]\ntype = "Slurm"\ncpus = 1\ncontainer = {{ Podman = "{podman}" }}\n'
        'memory = { type = "per_node", amount = 256 }\n'
    )
    result = run_program(root / "workflow.py", cwd=root, timeout=120)

    assert result.returncode == 0, shown(result)
    report = Path(result.stdout.strip())
    inside, greeting, reads, cwd = report.read_text().splitlines()
    assert (inside, reads, cwd) == ("podman", "ACGT", str(report.parent))
    assert greeting == 'hello; $(touch pwned) "quoted"'
    sbatch = (report.parent / ".maestro.sbatch").read_text()
    assert "podman run --rm" not in sbatch  # the launcher, not a shell string, runs podman
    assert "maestro-container podman podman" in sbatch
    assert containers_named("podman", f"maestro-{report.parent.parent.name}-") == []
