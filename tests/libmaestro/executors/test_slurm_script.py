"""Tests for the sbatch script of one job: directives from the configuration, the quoted command.

The rendered script is also run with plain bash (never sbatch): to bash the #SBATCH lines are
comments, so what is left is exactly what a compute node executes.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from libmaestro.config.model import (
    ExecutorConfig,
    ExecutorType,
    MailType,
    Memory,
    MemoryConfig,
    SlurmConfig,
    TimeLimit,
)
from libmaestro.errors import SubmitError
from libmaestro.executors.slurm_script import EXIT_FILE, render
from libmaestro.jobs import JobSpec
from libmaestro.process import validate_process_name

SESSION = "brave_otter"
# Directives every job has, whatever the executor says.
FIXED = ("job-name", "chdir", "output", "error", "export")


def slurm_executor(name: str = "cluster", **fields: object) -> ExecutorConfig:
    return ExecutorConfig(
        name=name,
        type=ExecutorType.SLURM,
        slurm=SlurmConfig(**fields),  # type: ignore[arg-type]  # test shorthand
    )


def job_spec(workdir: Path, argv: Sequence[str] = ("true",), process: str = "align") -> JobSpec:
    return JobSpec(
        session=SESSION,
        process=process,
        workdir=workdir,
        argv=list(argv),
        env={},
        stdout=workdir / ".maestro.out",
        stderr=workdir / ".maestro.err",
    )


def directives(script: str) -> list[tuple[str, str | None]]:
    """The `#SBATCH --option[=value]` lines of a script, in order, as sbatch reads them."""
    found: list[tuple[str, str | None]] = []
    for line in script.splitlines():
        if not line.startswith("#SBATCH"):
            continue
        words = shlex.split(line.removeprefix("#SBATCH"))
        assert len(words) == 1, f"one option per directive line: {line!r}"
        option, sep, value = words[0].removeprefix("--").partition("=")
        found.append((option, value if sep else None))
    return found


def configured(script: str) -> list[tuple[str, str | None]]:
    """The directives that come from the executor's Slurm fields."""
    return [(option, value) for option, value in directives(script) if option not in FIXED]


def write_executable(path: Path, body: str) -> Path:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)
    return path


# --- directives ----------------------------------------------------------------------------


def test_slurm_script_every_field_becomes_its_directive(tmp_path: Path) -> None:
    executor = slurm_executor(
        cpus=4,
        memory=MemoryConfig(Memory.PER_CPU, 2000),
        gpus=2,
        tasks=3,
        nodes=1,
        partition="short",
        time=TimeLimit(minutes=90),
        account="proj42",
        mail_user="me@example.org",
        mail_type=(MailType.BEGIN, MailType.END, MailType.FAIL),
        additional_options=(("qos", "high"), ("exclusive", None)),
    )
    script = render(executor, job_spec(tmp_path))
    assert sorted(configured(script), key=str) == sorted(
        [
            ("cpus-per-task", "4"),
            ("mem-per-cpu", "2000M"),
            ("gpus", "2"),
            ("ntasks", "3"),
            ("nodes", "1"),
            ("partition", "short"),
            ("time", "0-01:30:00"),
            ("account", "proj42"),
            ("mail-user", "me@example.org"),
            ("mail-type", "BEGIN,END,FAIL"),
            ("qos", "high"),
            ("exclusive", None),
        ],
        key=str,
    )
    assert "#SBATCH --exclusive\n" in script  # a bare flag has no "=" at all


def test_slurm_script_memory_per_node_is_mem(tmp_path: Path) -> None:
    script = render(slurm_executor(memory=MemoryConfig(Memory.PER_NODE, 512)), job_spec(tmp_path))
    assert configured(script) == [("mem", "512M")]


def test_slurm_script_unset_fields_are_left_to_the_cluster(tmp_path: Path) -> None:
    script = render(slurm_executor(poll_interval=30), job_spec(tmp_path))
    assert configured(script) == []
    assert "poll" not in script  # maestro's own setting is not an sbatch option


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (TimeLimit(minutes=90), "0-01:30:00"),
        (TimeLimit(seconds=59), "0-00:00:59"),
        (TimeLimit(hours=25), "1-01:00:00"),
        (TimeLimit(days=2, minutes=61, seconds=120), "2-01:03:00"),
    ],
)
def test_slurm_script_time_is_normalised(tmp_path: Path, limit: TimeLimit, expected: str) -> None:
    script = render(slurm_executor(time=limit), job_spec(tmp_path))
    assert configured(script) == [("time", expected)]


def test_slurm_script_names_the_job_and_keeps_everything_in_the_workdir(tmp_path: Path) -> None:
    workdir = tmp_path / "align"
    spec = job_spec(workdir)
    found = dict(directives(render(slurm_executor(), spec)))
    assert found["job-name"] == f"maestro.{SESSION}.align"
    assert found["chdir"] == str(workdir)
    assert found["output"] == str(spec.stdout)
    assert found["error"] == str(spec.stderr)
    assert found["export"] == "ALL"  # the injected variables travel in sbatch's environment


def test_slurm_script_directives_come_before_the_first_command(tmp_path: Path) -> None:
    """sbatch stops reading #SBATCH lines at the first command; a directive after it is lost."""
    executor = slurm_executor(cpus=2, partition="short", additional_options=(("exclusive", None),))
    lines = render(executor, job_spec(tmp_path)).splitlines()
    assert lines[0] == "#!/bin/bash"
    first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    last_directive = max(i for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    assert last_directive < first_command


@pytest.mark.parametrize(
    ("fields", "option"),
    [
        ({"partition": "short queue"}, "--partition"),
        ({"account": "it's"}, "--account"),
        ({"mail_user": 'me"@example.org'}, "--mail-user"),
        ({"additional_options": (("comment", "$HOME"),)}, "--comment"),
        ({"additional_options": (("constraint", "a#b"),)}, "--constraint"),
        ({"additional_options": (("comment", "`id`"),)}, "--comment"),
    ],
)
def test_slurm_script_refuses_values_a_directive_cannot_carry(
    tmp_path: Path, fields: dict[str, object], option: str
) -> None:
    with pytest.raises(SubmitError) as caught:
        render(slurm_executor(name="gpu_nodes", **fields), job_spec(tmp_path))
    message = str(caught.value)
    assert option in message
    assert '"gpu_nodes"' in message


@pytest.mark.parametrize("where", ["process name", "project path"])
def test_slurm_script_accepts_names_that_local_accepts(tmp_path: Path, where: str) -> None:
    process = validate_process_name("align sample") if where == "process name" else "align"
    base = tmp_path / ("My Project" if where == "project path" else "project")
    workdir = base / "maestro_work" / SESSION / process
    script = render(slurm_executor(), job_spec(workdir, process=process))
    assert str(workdir) in script


# --- the script as it runs on a node -------------------------------------------------------


def run_script(script: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    path = workdir / ".maestro.sbatch"
    path.write_text(script)
    return subprocess.run(
        ["bash", str(path)], cwd=workdir, capture_output=True, text=True, timeout=30, check=False
    )


def test_slurm_script_runs_the_command_with_its_arguments_intact(tmp_path: Path) -> None:
    workdir = tmp_path / "job"
    workdir.mkdir()
    record = workdir / "args.bin"
    printer = write_executable(
        workdir / "print args", f"printf '%s\\0' \"$@\" > {shlex.quote(str(record))}\n"
    )
    args = [
        "two words",
        "$HOME and $(touch pwned) `touch pwned2`",
        'it\'s "quoted"',
        "*",
        "",
        "back\\slash; rm -rf /nonexistent",
        "new\nline",
    ]
    before = time.time()
    done = run_script(render(slurm_executor(), job_spec(workdir, [str(printer), *args])), workdir)
    after = time.time()
    assert done.returncode == 0, done.stderr
    assert record.read_bytes().split(b"\0")[:-1] == [a.encode() for a in args]
    assert not (workdir / "pwned").exists()
    assert not (workdir / "pwned2").exists()
    code, started, ended = (workdir / EXIT_FILE).read_text().split()
    assert code == "0"
    assert before - 1 <= float(started) <= float(ended) <= after + 1


def test_slurm_script_passes_a_failing_exit_status_through(tmp_path: Path) -> None:
    workdir = tmp_path / "job"
    workdir.mkdir()
    failing = write_executable(workdir / "fail.sh", "echo failing >&2\nexit 7\n")
    done = run_script(render(slurm_executor(), job_spec(workdir, [str(failing)])), workdir)
    assert done.returncode == 7
    assert "failing" in done.stderr
    fields = (workdir / EXIT_FILE).read_text().split()
    assert fields[0] == "7"
    assert len(fields) == 3
    assert float(fields[1]) <= float(fields[2])
