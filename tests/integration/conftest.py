"""Real backends for integration tests: the single-node Slurm and the container runtimes that
`scripts/backends/*-start.sh` bring up (scripts/test.sh runs them).

A test whose backend is not there is skipped on a developer's machine but fails under CI
(`CI=true`), where the set-up scripts must have made it available.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

IMAGE = "localhost/maestro-bash:test"
DOCKER_SOCKET = Path("/run/maestro-dockerd/docker.sock")
SLURM_COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "scontrol")


def _missing(what: str, how: str) -> None:
    message = f"{what} is not available; {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (under CI an integration test must not be skipped)")
    pytest.skip(message)


def _answers(argv: list[str], env: dict[str, str] | None = None) -> bool:
    if shutil.which(argv[0]) is None:
        return False
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=20, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


@pytest.fixture(scope="session")
def _slurm_up() -> bool:
    return _answers(["scontrol", "ping"]) and _answers(["sinfo", "-h", "-o", "%T"])


@pytest.fixture
def slurm(_slurm_up: bool) -> None:
    """A running single-node Slurm (scripts/backends/slurm-start.sh)."""
    if not _slurm_up:
        _missing("Slurm", "start it with scripts/backends/slurm-start.sh (as root)")


@pytest.fixture(scope="session")
def _docker_host() -> str | None:
    host = os.environ.get("DOCKER_HOST")
    if host is None and DOCKER_SOCKET.exists():
        host = f"unix://{DOCKER_SOCKET}"
    return host


@pytest.fixture
def podman() -> str:
    """Podman with the tiny offline test image; returns the image name."""
    if not _answers(["podman", "image", "exists", IMAGE]):
        _missing(f"podman with the image {IMAGE}", "run scripts/backends/containers-start.sh")
    return IMAGE


@pytest.fixture
def docker(_docker_host: str | None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A Docker daemon with the tiny offline test image; returns the image name."""
    env = dict(os.environ)
    if _docker_host:
        env["DOCKER_HOST"] = _docker_host
    if not _answers(["docker", "image", "inspect", IMAGE], env=env):
        _missing(f"docker with the image {IMAGE}", "run scripts/backends/containers-start.sh")
    if _docker_host:
        monkeypatch.setenv("DOCKER_HOST", _docker_host)
    return IMAGE


class CommandLog:
    """Counts the Slurm commands a workflow runs, through logging wrappers first on PATH."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log = directory / "calls.log"
        self.log.touch()

    @property
    def path(self) -> str:
        return f"{self.directory}{os.pathsep}{os.environ['PATH']}"

    def calls(self) -> list[list[str]]:
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return [line.split("\t") for line in lines]

    def counts(self) -> Counter[str]:
        return Counter(call[0] for call in self.calls())


@pytest.fixture
def slurm_commands(tmp_path: Path, slurm: None) -> Iterator[CommandLog]:
    """Wrappers that log every Slurm command (name and arguments) before running the real one."""
    directory = tmp_path / "slurm-wrappers"
    directory.mkdir()
    log = CommandLog(directory)
    for name in SLURM_COMMANDS:
        real = shutil.which(name)
        assert real is not None
        wrapper = directory / name
        wrapper.write_text(
            "#!/bin/sh\n"
            f"(IFS=\"$(printf '\\t')\"; printf '%s\\n' \"{name}\t$*\") >> '{log.log}'\n"
            f'exec {real} "$@"\n',
            encoding="utf-8",
        )
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    yield log


def squeue_state(job_id: str) -> str:
    """The state squeue reports for a job now ("" if it does not know it)."""
    done = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return done.stdout.strip()


ProjectWriter = Callable[..., Path]
