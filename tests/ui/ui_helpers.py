"""Helpers for the UI tests: a real store filled through its API, with real files.

`populate` records ten workflows of every state. Their steps have working directories under
`tmp_path/project/maestro_work/<session>/<process>` holding real `.maestro.out`/`.maestro.err`
logs and real output files, recorded as artefacts with their sizes and checksums.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from libmaestro.state import Fingerprint, RunState, SqliteStateStore, StepRecord, StepState

XSS_PROCESS = "<script>alert(1)</script>"
XSS_TAG = "<img src=x onerror=alert(2)>"
T0 = 1_700_000_000.0
BASE = "http://testserver"


@dataclass
class Recorded:
    """What the fixture recorded: the store, and ids of the interesting things in it."""

    store: SqliteStateStore
    root: Path
    sessions: list[str] = field(default_factory=list)  # creation order, oldest first
    steps: dict[tuple[str, str], StepRecord] = field(default_factory=dict)  # (session, process)

    def step(self, session: str, process: str) -> StepRecord:
        return self.store.step(self.steps[(session, process)].id)


class _Builder:
    def __init__(self, recorded: Recorded) -> None:
        self.r = recorded
        self.store = recorded.store

    def workdir(self, session: str, process: str) -> Path:
        name = "xss" if "/" in process else process  # a directory name cannot hold "/"
        path = self.r.root / "maestro_work" / session / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def workflow(self, session: str, index: int, metadata: dict[str, str] | None = None) -> int:
        project = (metadata or {}).get("project", "demo")
        wf = self.store.create_workflow(
            session=session,
            project=project,
            entry=str(self.r.root / "workflow.py"),
            args={"min_length": "10"},
            metadata=metadata or {"project": project},
            created_at=T0 + index * 60,
        )
        self.r.sessions.append(session)
        return wf.id

    def run(self, workflow_id: int, index: int, *, alive: bool = False) -> int:
        me = psutil.Process()
        run = self.store.start_run(
            workflow_id,
            pid=me.pid if alive else 999_999,
            pid_start_time=me.create_time() if alive else 1.0,
            command=["python", "workflow.py"],
            started_at=T0 + index * 60 + 1,
        )
        return run.id

    def finish(self, run_id: int, state: RunState) -> None:
        self.store.finish_run(run_id, state, ended_at=self.store.run(run_id).started_at + 42.0)

    def succeed(
        self,
        session: str,
        run_id: int,
        process: str,
        *,
        inputs: tuple[Path, ...] = (),
        out: str = "",
        err: str = "",
        group: str = "",
        at: float = T0,
    ) -> Path:
        workdir = self.workdir(session, process)
        (workdir / ".maestro.out").write_text(out or f"{process} says hello\n")
        (workdir / ".maestro.err").write_text(err)
        output = workdir / f"{workdir.name}.txt"
        output.write_text(f"result of {process}\n")
        step = self.store.start_step(
            run_id,
            process=process,
            executor="default",
            workdir=workdir,
            group=group,
            job_id="4242" if process == "a" else "",
            inputs=[Fingerprint.of_file(p, content_hash=True) for p in inputs],
            started_at=at,
        )
        step = self.store.succeed_step(
            step.id, outputs=[Fingerprint.of_file(output, content_hash=True)], ended_at=at + 2.5
        )
        self.r.steps[(session, process)] = step
        return output

    def fail(self, session: str, run_id: int, process: str, *, inputs: tuple[Path, ...]) -> None:
        workdir = self.workdir(session, process)
        (workdir / ".maestro.out").write_text("starting b\n")
        (workdir / ".maestro.err").write_text("b: reading input\nb: boom: bad line 3\n")
        step = self.store.start_step(
            run_id,
            process=process,
            executor="default",
            workdir=workdir,
            inputs=[Fingerprint.of_file(p, content_hash=True) for p in inputs],
            started_at=T0 + 5,
        )
        self.r.steps[(session, process)] = self.store.fail_step(
            step.id,
            exit_code=3,
            reason="exit code 3",
            error="process 'b' failed with exit code 3",
            ended_at=T0 + 7,
        )


def populate(store: SqliteStateStore, root: Path) -> Recorded:
    """Ten workflows: succeeded (with a fan-out), failed, running, aborted, interrupted, XSS."""
    recorded = Recorded(store, root)
    b = _Builder(recorded)
    data = root / "data" / "x.txt"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("hello\n")

    for i in range(4):  # older successes, tagged
        session = f"old-run-{i}"
        wf = b.workflow(session, i, {"project": "qc", "batch": f"b{i % 2}"})
        run = b.run(wf, i)
        b.succeed(session, run, "only", inputs=(data,))
        b.finish(run, RunState.SUCCEEDED)

    # A diamond with a fan-out: a -> align_S1..S3 -> d, all succeeded.
    session = "alpha-ok"
    wf = b.workflow(session, 4, {"project": "rnaseq", "sample": "S1", "batch": "b7"})
    run = b.run(wf, 4)
    a = b.succeed(session, run, "a", inputs=(data,), out="line\n" * 1000)
    aligned = [
        b.succeed(session, run, f"align_S{k}", inputs=(a,), group="align") for k in (1, 2, 3)
    ]
    b.succeed(session, run, "d", inputs=tuple(aligned))
    b.finish(run, RunState.SUCCEEDED)

    # a succeeded, b failed (its stderr says why), c never ran.
    session = "beta-failed"
    wf = b.workflow(session, 5, {"project": "rnaseq", "sample": "S2"})
    run = b.run(wf, 5)
    a = b.succeed(session, run, "a", inputs=(data,))
    b.fail(session, run, "b", inputs=(a,))
    b.finish(run, RunState.FAILED)

    session = "gamma-aborted"
    wf = b.workflow(session, 6)
    run = b.run(wf, 6)
    b.succeed(session, run, "a", inputs=(data,))
    b.finish(run, RunState.ABORTED)

    session = "delta-interrupted"
    wf = b.workflow(session, 7)
    run = b.run(wf, 7)
    b.succeed(session, run, "a", inputs=(data,))
    b.finish(run, RunState.INTERRUPTED)

    # Hostile names: a process and metadata that are markup.
    session = "xss-names"
    wf = b.workflow(session, 8, {"project": "demo", "note": XSS_TAG})
    run = b.run(wf, 8)
    b.succeed(session, run, XSS_PROCESS, inputs=(data,), err=f"{XSS_PROCESS}\n")
    b.finish(run, RunState.SUCCEEDED)

    # Running (this test process is its "run"): a running, b pending behind it.
    session = "omega-running"
    wf = b.workflow(session, 9, {"project": "rnaseq"})
    run = b.run(wf, 9, alive=True)
    workdir = b.workdir(session, "slow")
    (workdir / ".maestro.out").write_text("working...\n")
    recorded.steps[(session, "slow")] = store.start_step(
        run, process="slow", executor="default", workdir=workdir, started_at=time.time()
    )
    recorded.steps[(session, "later")] = store.start_step(
        run, process="later", executor="default", state=StepState.PENDING
    )
    store.record_waiting(run, 40)  # fan-out items it has not reached: no step record yet
    return recorded
