"""Tests for the Slurm commands maestro runs, against stand-in sbatch/squeue/sacct/scancel.

The stand-ins are real executables placed first on PATH: the client runs them exactly as it
runs Slurm's, so argv, environment, exit status and output parsing are all exercised. Each one
records its arguments (NUL-separated) and prints canned output.
"""

from __future__ import annotations

import collections
import os
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from libmaestro.analysis import ConfigReference, ReferenceKind
from libmaestro.config.model import ExecutorConfig, ExecutorType, ProjectConfig, SlurmConfig
from libmaestro.errors import SubmitError
from libmaestro.executors.slurm_client import JobStatus, SlurmClient, SlurmCommandError
from libmaestro.startup import check_backends

FakeCommand = Callable[..., Path]


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory first on PATH for stand-in commands."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return directory


@pytest.fixture
def fake(fake_bin: Path) -> FakeCommand:
    """`fake("squeue", stdout="...", stderr="...", code=0)` installs a stand-in.

    It records its argv to `<bin>/<name>.args`, its working directory, $LC_ALL and $MY_JOB_VAR
    to `<bin>/<name>.env`, prints `stdout`/`stderr` and exits with `code`. Returns the path of
    the argv record.
    """

    def install(name: str, *, stdout: str = "", stderr: str = "", code: int = 0) -> Path:
        record = fake_bin / f"{name}.args"
        env_record = fake_bin / f"{name}.env"
        script = fake_bin / name
        script.write_text(
            "#!/bin/bash\n"
            f"printf '%s\\0' \"$@\" > {shlex.quote(str(record))}\n"
            f'printf \'%s\\n\' "$PWD" "${{LC_ALL-}}" "${{MY_JOB_VAR-}}" '
            f"> {shlex.quote(str(env_record))}\n"
            f"printf '%s' {shlex.quote(stdout)}\n"
            f"printf '%s' {shlex.quote(stderr)} >&2\n"
            f"exit {code}\n"
        )
        script.chmod(0o755)
        return record

    return install


def recorded(record: Path) -> list[str]:
    return record.read_text().split("\0")[:-1]


@pytest.fixture
def batch_script(tmp_path: Path) -> Path:
    workdir = tmp_path / "job dir"
    workdir.mkdir()
    script = workdir / ".maestro.sbatch"
    script.write_text("#!/bin/bash\ntrue\n")
    return script


# --- sbatch --------------------------------------------------------------------------------


@pytest.mark.parametrize("printed", ["123\n", "123;cluster\n"])
def test_slurm_client_submit_returns_the_job_id(
    fake: FakeCommand, fake_bin: Path, batch_script: Path, printed: str
) -> None:
    record = fake("sbatch", stdout=printed)
    env = {**os.environb, b"MY_JOB_VAR": b"value with spaces"}
    assert SlurmClient().submit(batch_script, env=env) == "123"
    argv = recorded(record)
    assert "--parsable" in argv
    assert argv[-1] == str(batch_script)
    cwd, _lc_all, job_var = (fake_bin / "sbatch.env").read_text().splitlines()
    assert cwd == str(batch_script.parent)  # submitted from the workdir, like by hand
    assert job_var == "value with spaces"  # the job's environment is sbatch's


def test_slurm_client_submit_reports_sbatchs_reason(fake: FakeCommand, batch_script: Path) -> None:
    fake(
        "sbatch",
        stderr="sbatch: error: Batch job submission failed: Invalid partition name specified\n",
        code=1,
    )
    with pytest.raises(SubmitError) as caught:
        SlurmClient().submit(batch_script, env=dict(os.environb))
    assert str(caught.value) == "sbatch refused the job: Invalid partition name specified"


def test_slurm_client_submit_refusal_without_words(fake: FakeCommand, batch_script: Path) -> None:
    fake("sbatch", code=1)
    with pytest.raises(SubmitError, match="sbatch refused the job"):
        SlurmClient().submit(batch_script, env=dict(os.environb))


def test_slurm_client_submit_refuses_output_that_is_no_job_id(
    fake: FakeCommand, batch_script: Path
) -> None:
    fake("sbatch", stdout="Submitted batch job 123\n")
    with pytest.raises(SubmitError, match="Submitted batch job 123"):
        SlurmClient().submit(batch_script, env=dict(os.environb))


def test_slurm_client_submit_without_sbatch_names_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_script: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(SubmitError, match="PATH"):
        SlurmClient().submit(batch_script, env=dict(os.environb))


# --- squeue --------------------------------------------------------------------------------


def test_slurm_client_queue_parses_states_and_reasons(fake_bin: Path, fake: FakeCommand) -> None:
    record = fake(
        "squeue",
        stdout="12|RUNNING|None\n13|PENDING|Priority\n 14|COMPLETED|None \nnot a job line\n",
    )
    found = SlurmClient().queue(["12", "13", "14", "15"])
    assert found == {
        "12": JobStatus("12", "RUNNING", ""),
        "13": JobStatus("13", "PENDING", "Priority"),
        "14": JobStatus("14", "COMPLETED", ""),
    }
    argv = recorded(record)
    assert "--jobs=12,13,14,15" in argv  # all jobs in one command
    assert "--states=all" in argv  # finished jobs too, while squeue still knows them
    _cwd, lc_all, _var = (fake_bin / "squeue.env").read_text().splitlines()
    assert lc_all == "C"  # states and messages are matched as text


def test_slurm_client_queue_single_forgotten_job_is_no_error(fake: FakeCommand) -> None:
    fake("squeue", stderr="slurm_load_jobs error: Invalid job id specified\n", code=1)
    assert SlurmClient().queue(["99"]) == {}


@pytest.mark.parametrize(
    ("stderr", "ids"),
    [
        ("slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n", ["1"]),
        # Only a single id makes squeue fail for an unknown job; with several, it is a real error.
        ("slurm_load_jobs error: Invalid job id specified\n", ["1", "2"]),
    ],
)
def test_slurm_client_queue_failure_raises(fake: FakeCommand, stderr: str, ids: list[str]) -> None:
    fake("squeue", stderr=stderr, code=1)
    with pytest.raises(SlurmCommandError) as caught:
        SlurmClient().queue(ids)
    assert str(caught.value) == stderr.strip()


def test_slurm_client_queue_without_squeue_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SlurmCommandError, match="squeue is not on PATH"):
        SlurmClient().queue(["1"])


# --- sacct ---------------------------------------------------------------------------------


def test_slurm_client_accounting_reads_jobs_and_skips_steps(fake: FakeCommand) -> None:
    record = fake(
        "sacct",
        stdout=(
            "12|CANCELLED by 0|0:15\n"
            "12.batch|CANCELLED|0:15\n"
            "12.extern|COMPLETED|0:0\n"
            "13|COMPLETED|0:0\n"
            "13.batch|COMPLETED|0:0\n"
            "14|FAILED|3:0\n"
            "99|COMPLETED|0:0\n"  # not asked about
        ),
    )
    found = SlurmClient().accounting(["12", "13", "14"])
    assert set(found) == {"12", "13", "14"}
    assert found["12"].state == "CANCELLED"
    assert found["13"] == JobStatus("13", "COMPLETED", exit_code=0)
    assert found["14"] == JobStatus("14", "FAILED", exit_code=3)
    argv = recorded(record)
    assert "-c" in argv  # the job completion log
    assert "--jobs=12,13,14" in argv


def test_slurm_client_accounting_failure_raises(fake: FakeCommand) -> None:
    fake("sacct", stderr="sacct: error: Problem talking to the database\n", code=1)
    with pytest.raises(SlurmCommandError, match="Problem talking to the database"):
        SlurmClient().accounting(["1"])


def test_slurm_client_accounting_job_killed_by_a_signal_has_no_exit_code_zero(
    fake: FakeCommand,
) -> None:
    fake("sacct", stdout="12|CANCELLED by 0|0:15\n")
    assert SlurmClient().accounting(["12"])["12"].exit_code != 0


# --- scancel and counting ------------------------------------------------------------------


def test_slurm_client_cancel_uses_one_command_for_all_jobs(fake: FakeCommand) -> None:
    record = fake("scancel")
    client = SlurmClient()
    client.cancel(["5", "6", "7"])
    assert recorded(record) == ["5", "6", "7"]
    client.cancel([])
    assert client.calls == collections.Counter({"scancel": 1})


def test_slurm_client_cancel_of_ended_jobs_is_no_error(fake: FakeCommand) -> None:
    fake("scancel", stderr="scancel: error: Kill job error on job id 5: Invalid job id\n", code=1)
    SlurmClient().cancel(["5"])


def test_slurm_client_cancel_without_scancel_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    SlurmClient().cancel(["5"])


def test_slurm_client_counts_every_command(fake: FakeCommand, batch_script: Path) -> None:
    fake("sbatch", stdout="7\n")
    fake("squeue", stdout="7|RUNNING|None\n")
    fake("sacct", stdout="7|COMPLETED|0:0\n")
    fake("scancel")
    client = SlurmClient()
    client.submit(batch_script, env=dict(os.environb))
    client.queue(["7"])
    client.queue(["7", "8"])
    client.accounting(["7"])
    client.cancel(["7"])
    assert client.calls == collections.Counter({"sbatch": 1, "squeue": 2, "sacct": 1, "scancel": 1})


# --- checked at startup --------------------------------------------------------------------


def test_slurm_client_startup_reports_missing_sbatch_at_the_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeCommand
) -> None:
    toml = tmp_path / "Maestro.toml"
    config = ProjectConfig(
        path=toml,
        executors={
            "cluster": ExecutorConfig(
                name="cluster", type=ExecutorType.SLURM, slurm=SlurmConfig(), line=7
            )
        },
    )
    references = [ConfigReference(ReferenceKind.EXECUTOR, "cluster", tmp_path / "flow.py", 3, 1)]
    fake("sbatch", stdout="1\n")
    assert check_backends(config, references) == []
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    problems = check_backends(config, references)
    assert len(problems) == 1
    assert (problems[0].file, problems[0].line) == (toml, 7)
    assert "sbatch is not on PATH" in problems[0].message
    assert '"cluster"' in problems[0].message
