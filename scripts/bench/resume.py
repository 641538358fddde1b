"""Benchmark: how fast `--resume` decides that a finished session is fully up to date.

Runs a workflow of --steps trivial processes (a fan-out; each writes one file) once, then
measures, in the same run:

  decide     in-process: one bulk read of the session's last successes from the store, then
             the up-to-date decision for every step (cache key, input and output fingerprints)
  resume     the whole `python workflow.py` with MAESTRO_RESUME=latest: interpreter start-up,
             the decisions, and recording every step as skipped

    .venv/bin/python scripts/bench/resume.py                    # 10,000 steps
    .venv/bin/python scripts/bench/resume.py --steps 1000 --markdown
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKFLOW = """
import sys
import libmaestro as maestro

STEP = maestro.LocalExecutor()


def process(i):
    return maestro.Process(
        name=f"s{i}", script='echo "$MAESTRO_PROCESS" > "$o"', outputs={"o": "o.txt"}
    )


def step(i):
    return STEP.exe(process(i))


@maestro.main
def main():
    maestro.raise_failures(maestro.parallelize(range(int(sys.argv[1])), step))


if __name__ == "__main__":
    main()
"""


def run(workflow: Path, steps: int, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(workflow), str(steps)],
        cwd=workflow.parent,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def decide_all(store_path: Path, project: Path, steps: int) -> float:
    """The decision alone, as `--resume` makes it, timed in this process."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import libmaestro
    from libmaestro.history import RunHistory

    store = libmaestro.SqliteStateStore(store_path)
    workflow = store.latest_workflow()
    assert workflow is not None
    executor = libmaestro.LocalExecutor().config
    processes = [
        libmaestro.Process(
            name=f"s{i}", script='echo "$MAESTRO_PROCESS" > "$o"', outputs={"o": "o.txt"}
        )
        for i in range(steps)
    ]
    start = time.perf_counter()
    history = RunHistory(store, workflow, run=None, previous=store.last_successes(workflow.id))  # type: ignore[arg-type]
    reused = sum(history.decide(p, executor).reuse is not None for p in processes)
    elapsed = time.perf_counter() - start
    assert reused == steps, f"only {reused} of {steps} steps were up to date"
    del project
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--markdown", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maestro-bench-resume-") as tmp:
        project = Path(tmp)
        workflow = project / "workflow.py"
        workflow.write_text(WORKFLOW)
        store = project / "state.db"
        env = {**os.environ, "MAESTRO_STORE": str(store), "MAESTRO_PLAIN": "1", "MAESTRO_JOBS": "2"}
        first = run(workflow, options.steps, env)
        decide = decide_all(store, project, options.steps)
        resume = run(workflow, options.steps, {**env, "MAESTRO_RESUME": "latest"})
    print(f"first run {first:.2f} s, decide {decide:.3f} s, resume {resume:.2f} s", file=sys.stderr)
    if options.markdown:
        today = datetime.date.today().isoformat()
        print(
            f"{today}, {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        print()
        print("| steps | first run | decide all up to date | whole `--resume` run |")
        print("|---:|---:|---:|---:|")
        print(f"| {options.steps} | {first:.1f} s | {decide:.2f} s | {resume:.2f} s |")


if __name__ == "__main__":
    main()
