"""The Slurm executor against the real single-node Slurm (scripts/backends/slurm-start.sh)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import CommandLog, squeue_state
from helpers import run_program, shown, wait_for

from libmaestro.history import open_store

pytestmark = pytest.mark.slurm

SLURM = """
    [executor.slurm]
    type = "Slurm"
    cpus = 1
    memory = { type = "per_cpu", amount = 64 }
    time = { minutes = 10 }
    poll_interval = 2
"""
LOCAL = """
    [executor.local]
    type = "Local"
"""
JOB_ID = re.compile(r"Slurm job (\d+)")


@pytest.fixture
def project(tmp_path: Path, file_tree: Callable[..., Path]) -> Callable[..., Path]:
    def write(program: str, config: str = SLURM, **files: str) -> Path:
        return file_tree(
            {"Maestro.toml": config, "workflow.py": program, **files}, root=tmp_path / "project"
        )

    return write


@pytest.fixture
def store_env(tmp_path: Path) -> dict[str, str]:
    return {"MAESTRO_STORE": str(tmp_path / "store.db")}


@pytest.fixture
def cancel_afterwards() -> Iterator[list[str]]:
    """Job ids a test started; whatever a failing test left queued is scancelled."""
    ids: list[str] = []
    yield ids
    if ids:
        subprocess.run(["scancel", *ids], check=False, timeout=20)


def steps_of(store_path: str) -> dict[str, object]:
    with open_store(Path(store_path)) as store:
        workflow = store.latest_workflow()
        assert workflow is not None
        return {step.process: step for step in store.steps(workflow.id)}


def test_slurm_success_and_failure_report_job_ids_reasons_and_logs(
    slurm: None, project: Callable[..., Path], store_env: dict[str, str]
) -> None:
    root = project(
        """
        import libmaestro as maestro

        @maestro.main
        def main():
            out = maestro.process(
                name="hello", executor="slurm", args={"who": "cluster"},
                outputs={"greeting": "greeting.txt"},
                script='printf "%s %s\\n" "$who" "$SLURM_JOB_ID" > "$greeting"',
            )
            print(out.greeting.read_text().strip())
            maestro.process(name="broken", executor="slurm", script="echo 'disk full' >&2; exit 3")

        main()
        """
    )
    result = run_program(root / "workflow.py", cwd=root, env=store_env, timeout=60)

    assert result.returncode == 1, shown(result)
    who, job_id = result.stdout.split()
    assert who == "cluster"  # the arg reached the job through sbatch's environment
    steps = steps_of(store_env["MAESTRO_STORE"])
    assert steps["hello"].job_id == job_id  # type: ignore[attr-defined]
    assert steps["hello"].state.value == "succeeded"  # type: ignore[attr-defined]
    broken = steps["broken"]
    assert broken.state.value == "failed"  # type: ignore[attr-defined]
    assert broken.exit_code == 3  # type: ignore[attr-defined]
    failed_id = JOB_ID.search(result.stderr)
    assert failed_id and failed_id[1] == broken.job_id, shown(result)  # type: ignore[attr-defined]
    assert "failed with exit code 3" in result.stderr
    assert "FAILED" in result.stderr
    assert "disk full" in result.stderr  # the tail of the job's stderr
    workdir = Path(broken.workdir)  # type: ignore[attr-defined]
    assert str(workdir / ".maestro.err") in result.stderr
    # The batch script is kept for debugging and reproduces the job when submitted by hand.
    sbatch = (workdir.parent / "hello" / ".maestro.sbatch").read_text()
    assert "#SBATCH --mem-per-cpu=64M" in sbatch
    assert "#SBATCH --cpus-per-task=1" in sbatch
    assert "#SBATCH --time=0-00:10:00" in sbatch
    assert f"#SBATCH --job-name=maestro.{workdir.parent.name}.hello" in sbatch


@pytest.mark.parametrize(
    ("setting", "slurm_says"),
    [
        ('partition = "no_such_partition"', "Invalid partition name specified"),
        (f"cpus = {os.cpu_count() or 1}00", "More processors requested than permitted"),
    ],
    ids=["bad-partition", "too-many-cpus"],
)
def test_slurm_rejection_at_submit_is_reported_with_sbatch_reason(
    slurm: None, project: Callable[..., Path], setting: str, slurm_says: str
) -> None:
    config = f'[executor.slurm]\ntype = "Slurm"\n{setting}\n'
    root = project(
        """
        import libmaestro as maestro

        @maestro.main
        def main():
            maestro.process(name="never", executor="slurm", script="true")

        main()
        """,
        config=config,
    )
    result = run_program(root / "workflow.py", cwd=root, timeout=60)

    assert result.returncode == 1, shown(result)
    assert "process 'never' could not be submitted (executor 'slurm')" in result.stderr
    assert slurm_says in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_slurm_timeout_is_reported_as_timeout(
    slurm: None, project: Callable[..., Path], store_env: dict[str, str]
) -> None:
    """Slurm's limits have a one-minute resolution, so this takes a minute or a little more."""
    config = SLURM.replace("time = { minutes = 10 }", "time = { minutes = 1 }")
    root = project(
        """
        import libmaestro as maestro

        @maestro.main
        def main():
            maestro.process(name="slow", executor="slurm", script="sleep 600")

        main()
        """,
        config=config,
    )
    result = run_program(root / "workflow.py", cwd=root, env=store_env, timeout=240)

    assert result.returncode == 1, shown(result)
    assert "TIMEOUT" in result.stderr, shown(result)
    step = steps_of(store_env["MAESTRO_STORE"])["slow"]
    assert step.state.value == "failed"  # type: ignore[attr-defined]
    assert "TIMEOUT" in step.reason  # type: ignore[attr-defined]


@pytest.mark.parametrize("force", [False, True], ids=["sigterm", "force"])
def test_maestro_kill_cancels_the_runs_slurm_jobs(
    slurm: None,
    project: Callable[..., Path],
    store_env: dict[str, str],
    cancel_afterwards: list[str],
    force: bool,
) -> None:
    """SIGTERM: the orchestrator scancels its jobs. --force (SIGKILL): `maestro kill` scancels
    the job ids the run recorded. Either way no job outlives its run."""
    root = project(
        """
        import libmaestro as maestro

        @maestro.main
        def main():
            maestro.process(name="long", executor="slurm", script="sleep 600")

        main()
        """
    )
    env = {**os.environ, **store_env}
    started = subprocess.run(
        [sys.executable, "-m", "maestro_cli", "run", "--background"],
        cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 0, shown(started)
    session = re.search(r"^session: (\w+)$", started.stdout, re.MULTILINE)
    assert session, shown(started)

    def job_running() -> bool:
        found = steps_of(store_env["MAESTRO_STORE"]).get("long")
        job_id = getattr(found, "job_id", "")
        if job_id and job_id not in cancel_afterwards:
            cancel_afterwards.append(job_id)
        return bool(job_id) and squeue_state(job_id) == "RUNNING"

    wait_for(job_running, timeout=30, what="the Slurm job to run")
    job_id = cancel_afterwards[0]
    kill = subprocess.run(
        [sys.executable, "-m", "maestro_cli", "kill", session[1], *(["--force"] if force else [])],
        cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert kill.returncode == 0, shown(kill)
    wait_for(lambda: squeue_state(job_id) in {"CANCELLED", ""}, timeout=15, what="scancel")
    with open_store(Path(store_env["MAESTRO_STORE"])) as store:
        workflow = store.get_workflow(session[1])
        run = store.runs(workflow.id)[-1]
        assert run.state.value in {"aborted", "interrupted"}
        step = store.steps(workflow.id)[0]
        assert step.state.value == "aborted"
        assert step.reason == "CANCELLED" if not force else "INTERRUPTED"


def test_fifty_jobs_are_tracked_with_batched_polling(
    slurm_commands: CommandLog, project: Callable[..., Path]
) -> None:
    root = project(
        """
        import time
        import libmaestro as maestro

        def one(i):
            return maestro.process(
                name=f"sample_{i}", executor="slurm", args={"i": str(i)},
                outputs={"out": "out.txt"}, script='echo "$i" > "$out"',
            )

        @maestro.main
        def main():
            started = time.monotonic()
            results = maestro.raise_failures(maestro.parallelize(range(50), one))
            total = sum(int(r.out.read_text()) for r in results)
            print(total, round(time.monotonic() - started, 1))

        main()
        """
    )
    result = run_program(
        root / "workflow.py", cwd=root, env={"PATH": slurm_commands.path}, timeout=240
    )

    assert result.returncode == 0, shown(result)
    total, seconds = result.stdout.split()
    assert int(total) == sum(range(50))
    counts = slurm_commands.counts()
    assert counts["sbatch"] == 50
    # One squeue per poll for all jobs, never one per job: at the fastest interval (0.5 s) a
    # run of this length allows at most this many polls.
    assert 0 < counts["squeue"] <= float(seconds) / 0.5 + 2, (counts, seconds)
    widest = max(
        len(arg.removeprefix("--jobs=").split(","))
        for call in slurm_commands.calls()
        for arg in call
        if call[0] == "squeue" and arg.startswith("--jobs=")
    )
    assert widest >= 25, "squeue was not asked about many jobs at once"
    assert counts["scontrol"] == 0


def test_molecular_dynamics_mixes_local_and_slurm_steps(
    slurm: None, project: Callable[..., Path], store_env: dict[str, str]
) -> None:
    """The seed's example: tleap and parmed run locally, gromacs on Slurm (stand-in scripts)."""
    structures = {f"data/{n}.pdb": f"ATOM {n}\n" for n in ("1v9e_ph4", "1v9e_ph10", "BtCAII_ph4")}
    root = project(
        """
        import libmaestro as maestro

        def simulate(pdb):
            tleap = maestro.process(
                name=f"tleap_{pdb.stem}", executor="local", inputs={"pdb": pdb},
                outputs={"prmtop": "system.prmtop"},
                script='echo "prmtop of $(cat "$pdb") on ${SLURM_JOB_ID:-host}" > "$prmtop"',
            )
            parmed = maestro.process(
                name=f"parmed_{pdb.stem}", executor="local", inputs={"prmtop": tleap.prmtop},
                outputs={"top": "system.top"},
                script='{ cat "$prmtop"; echo "converted to gromacs"; } > "$top"',
            )
            gromacs = maestro.process(
                name=f"gromacs_{pdb.stem}", executor="slurm", inputs={"top": parmed.top},
                outputs={"traj": "traj.txt"},
                script='{ cat "$top"; echo "md run in job $SLURM_JOB_ID"; } > "$traj"',
            )
            return gromacs.traj

        @maestro.main
        def main():
            trajectories = maestro.raise_failures(
                maestro.parallelize(maestro.inputs("structures"), simulate)
            )
            for traj in trajectories:
                print(traj)

        main()
        """,
        config=SLURM
        + LOCAL
        + '\n[inputs]\nstructures = ["data/1v9e_ph4.pdb", "data/1v9e_ph10.pdb", '
        '"data/BtCAII_ph4.pdb"]\n',
        **structures,
    )
    result = run_program(root / "workflow.py", cwd=root, env=store_env, timeout=120)

    assert result.returncode == 0, shown(result)
    trajectories = [Path(line) for line in result.stdout.splitlines()]
    assert len(trajectories) == 3
    for traj in trajectories:
        lines = traj.read_text().splitlines()
        name = traj.parent.name.removeprefix("gromacs_")
        assert lines[0] == f"prmtop of ATOM {name} on host"  # tleap ran locally
        assert lines[1] == "converted to gromacs"
        assert re.fullmatch(r"md run in job \d+", lines[2])  # gromacs ran as a Slurm job
    steps = steps_of(store_env["MAESTRO_STORE"])
    assert {s.executor for s in steps.values()} == {"local", "slurm"}  # type: ignore[attr-defined]
    assert all(
        s.job_id.isdigit() == (s.executor == "slurm")  # type: ignore[attr-defined]
        for s in steps.values()
    )
    assert json.dumps(sorted(steps))  # every step recorded
