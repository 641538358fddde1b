"""Concurrency limits: the session's CPU budget, per-executor limits, and bounded threads.

Processes time-stamp their own start and end (`date +%s.%N`), and the tests compute how many
ran at once from those files: each bound is checked both ways, never exceeded and reached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from helpers import LOCAL_CONFIG, build_file_tree, run_program, shown, wait_for

import libmaestro as maestro
from libmaestro import Executor, LocalExecutor, ProcessOutputs
from libmaestro.config.model import ExecutorConfig, ExecutorType
from libmaestro.scheduler import Scheduler, StoppedError
from libmaestro.session import Session, activate

LOCAL = LocalExecutor()

STAMPED = """
    date +%s.%N > "$stamps/$label.start"
    sleep "$seconds"
    date +%s.%N > "$stamps/$label.end"
"""


def make_session(base: Path, max_parallel: int) -> Session:
    session = Session.create(base=base, max_parallel=max_parallel)
    activate(session)
    return session


@pytest.fixture
def stamps(tmp_path: Path) -> Path:
    path = tmp_path / "stamps"
    path.mkdir()
    return path


def spans(stamps: Path, prefix: str = "") -> list[tuple[float, float]]:
    """(start, end) of each process whose label starts with `prefix`."""
    return [
        (float(start.read_text()), float(start.with_suffix(".end").read_text()))
        for start in sorted(stamps.glob(f"{prefix}*.start"))
    ]


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end before a start at a tie)."""
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def stamped(
    label: str, stamps: Path, *, executor: Executor = LOCAL, seconds: float = 0.2
) -> ProcessOutputs:
    return maestro.process(
        executor=executor,
        name=label,
        args={"label": label, "stamps": str(stamps), "seconds": seconds},
        script=STAMPED,
    )


def test_max_overlap_counts_what_runs_at_once() -> None:
    assert max_overlap([]) == 0
    assert max_overlap([(0, 1), (1, 2), (2, 3)]) == 1  # touching is not overlapping
    assert max_overlap([(0, 3), (1, 2), (1.5, 4), (3.5, 5)]) == 3


# --- the CPU budget ------------------------------------------------------------------------


def test_nested_fan_outs_share_the_session_cpu_budget(isolated_env: Path, stamps: Path) -> None:
    """4 x 6 processes from nested parallelize calls should run 2 at a time: never more, and 2."""
    make_session(isolated_env, max_parallel=2)

    def group(g: int) -> list[ProcessOutputs | Exception]:
        return maestro.parallelize(range(6), lambda i: stamped(f"g{g}_{i}", stamps))

    results = maestro.parallelize(range(4), group)

    items: list[object] = []
    for group_results in results:
        assert isinstance(group_results, list), group_results
        items.extend(group_results)
    assert len(items) == 24
    assert all(isinstance(r, ProcessOutputs) for r in items), items
    found = spans(stamps)
    assert len(found) >= 23
    assert max_overlap(found) == 2


def test_main_program_honours_maestro_jobs(tmp_path: Path, stamps: Path) -> None:
    """A real @main program with MAESTRO_JOBS=2 should run its fan-out 2 processes at a time."""
    project = build_file_tree(
        tmp_path / "project",
        {
            "Maestro.toml": LOCAL_CONFIG,
            "workflow.py": f"""
                import os
                import libmaestro as maestro

                def step(index):
                    return maestro.process(
                        executor="default",
                        name=f"step_{{index}}",
                        args={{"label": f"step_{{index}}", "stamps": os.environ["STAMPS"], "seconds": 0.2}},
                        script={STAMPED!r},
                    )

                @maestro.main
                def main():
                    maestro.raise_failures(maestro.parallelize(range(6), step))

                main()
            """,
        },
    )
    result = run_program(
        project / "workflow.py", cwd=project, env={"MAESTRO_JOBS": "2", "STAMPS": str(stamps)}
    )
    assert result.returncode == 0, shown(result)
    found = spans(stamps)
    assert len(found) == 6
    assert max_overlap(found) == 2


@pytest.mark.parametrize(
    ("cpus", "at_once"),
    [(1, 2), (2, 1), (8, 1)],
    ids=["cpus=1 two at once", "cpus=2 alone", "cpus=8 alone not never"],
)
def test_local_executor_cpus_count_against_the_budget(
    isolated_env: Path, stamps: Path, cpus: int, at_once: int
) -> None:
    """On a budget of 2, processes that declare 2 CPUs (or more) should run one at a time."""
    make_session(isolated_env, max_parallel=2)
    heavy = Executor(ExecutorConfig(name="heavy", type=ExecutorType.LOCAL, cpus=cpus))

    results = maestro.parallelize(
        range(4), lambda i: stamped(f"p{i}", stamps, executor=heavy, seconds=0.15)
    )

    assert not [r for r in results if isinstance(r, Exception)]
    assert max_overlap(spans(stamps)) == at_once


# --- per-executor limits -------------------------------------------------------------------

# Each process first waits (up to 10 s) until one of the *other* executor's processes has
# started, so the two executors' processes are sure to run side by side.
RENDEZVOUS = """
    date +%s.%N > "$stamps/$label.start"
    for _ in $(seq 1000); do compgen -G "$stamps/$other*.start" > /dev/null && break; sleep 0.01; done
    compgen -G "$stamps/$other*.start" > /dev/null || exit 7
    sleep 0.2
    date +%s.%N > "$stamps/$label.end"
"""


def test_executor_max_parallel_serialises_its_processes_only(
    isolated_env: Path, stamps: Path
) -> None:
    """max_parallel=1 should run that executor's processes one by one, others alongside."""
    make_session(isolated_env, max_parallel=4)
    licensed = Executor(ExecutorConfig(name="licensed", type=ExecutorType.LOCAL, max_parallel=1))
    free = Executor(ExecutorConfig(name="free", type=ExecutorType.LOCAL))

    def step(item: tuple[Executor, str, int]) -> ProcessOutputs:
        executor, kind, index = item
        other = "free" if kind == "licensed" else "licensed"
        return maestro.process(
            executor=executor,
            name=f"{kind}_{index}",
            args={"label": f"{kind}_{index}", "other": other, "stamps": str(stamps)},
            script=RENDEZVOUS,
        )

    items = [(licensed, "licensed", i) for i in range(3)] + [(free, "free", i) for i in range(3)]
    results = maestro.parallelize(items, step)

    assert not [r for r in results if isinstance(r, Exception)]
    serial = spans(stamps, "licensed")
    alongside = spans(stamps, "free")
    assert max_overlap(serial) == 1
    assert max_overlap(alongside) >= 2
    assert any(s[0] < f[1] and f[0] < s[1] for s in serial for f in alongside)


def test_slurm_limit_counts_jobs_in_flight_not_local_cpus() -> None:
    """A Slurm executor's max_parallel should bound its jobs; they should not use local CPUs."""
    scheduler = Scheduler(cpu_budget=1)
    slurm = ExecutorConfig(name="cluster", type=ExecutorType.SLURM, max_parallel=2)
    local = ExecutorConfig(name="local", type=ExecutorType.LOCAL)
    scheduler.acquire(slurm)
    scheduler.acquire(slurm)
    scheduler.acquire(local)  # the one local CPU is still free: Slurm jobs run elsewhere

    third = threading.Thread(target=scheduler.acquire, args=(slurm,), daemon=True)
    third.start()
    third.join(0.3)  # long enough to have passed a wrongly open gate
    assert third.is_alive(), "a third Slurm job started although max_parallel is 2"
    scheduler.release(slurm)
    third.join(5)
    assert not third.is_alive(), "the third Slurm job did not start after a release"


def test_scheduler_stop_refuses_slots_to_waiting_processes() -> None:
    """stop() should make a process waiting for a slot give up (StoppedError), not start."""
    scheduler = Scheduler(cpu_budget=1)
    local = ExecutorConfig(name="local", type=ExecutorType.LOCAL)
    scheduler.acquire(local)
    outcome: list[str] = []

    def wait_for_slot() -> None:
        try:
            scheduler.acquire(local)
            outcome.append("started")
        except StoppedError:
            outcome.append("stopped")

    waiter = threading.Thread(target=wait_for_slot, daemon=True)
    waiter.start()
    scheduler.stop()
    waiter.join(5)
    assert outcome == ["stopped"]
    with pytest.raises(StoppedError):
        scheduler.acquire(local)


# --- threads -------------------------------------------------------------------------------


def test_parallelize_10000_items_uses_a_bounded_number_of_threads(isolated_env: Path) -> None:
    """10,000 items should not mean 10,000 threads: at most the scheduler's workers are added."""
    session = make_session(isolated_env, max_parallel=2)
    baseline = threading.active_count()  # earlier tests' idle workers may still be winding down
    lock = threading.Lock()
    peak = baseline

    def square(value: int) -> int:
        nonlocal peak
        count = threading.active_count()
        with lock:
            peak = max(peak, count)
        return value * value

    results = maestro.parallelize(range(10_000), square)

    assert results == [i * i for i in range(10_000)]
    assert peak <= baseline + session.scheduler.workers, (peak, baseline)


def test_parallelize_300_processes_uses_a_bounded_number_of_threads(isolated_env: Path) -> None:
    """300 items each running a real process should all complete on at most `workers` threads."""
    session = make_session(isolated_env, max_parallel=2)
    baseline = threading.active_count()
    lock = threading.Lock()
    peak = baseline

    def write(index: int) -> ProcessOutputs:
        nonlocal peak
        with lock:
            peak = max(peak, threading.active_count())
        return maestro.process(
            executor=LOCAL,
            name=f"p{index}",
            args={"index": index},
            outputs={"out": "out.txt"},
            script='echo "$index" > "$out"',
        )

    results = maestro.parallelize(range(300), write)

    # Every process succeeds: a local script is started through its interpreter and never
    # executed, so a fork that inherits its write descriptor cannot fail it (ETXTBSY).
    failed = [r for r in results if isinstance(r, Exception)]
    assert failed == []
    for index, result in enumerate(results):
        assert isinstance(result, ProcessOutputs)
        assert result.out.read_text() == f"{index}\n"
    assert peak <= baseline + session.scheduler.workers, (peak, baseline)


def test_nested_fan_outs_cannot_deadlock_when_every_worker_is_busy(session: Session) -> None:
    """With 2 workers, 4 outer items each waiting for 4 inner items should still finish."""
    session.scheduler = Scheduler(cpu_budget=2, workers=2)
    outcome: list[object] = []

    def run() -> None:
        outer = maestro.parallelize(
            range(4), lambda g: maestro.parallelize(range(4), lambda i: g * 10 + i)
        )
        outcome.append(outer)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "nested parallelize deadlocked"
    assert outcome == [[[g * 10 + i for i in range(4)] for g in range(4)]]


def test_idle_workers_of_a_finished_fan_out_serve_the_next_one(isolated_env: Path) -> None:
    """A new fan-out should get up to `workers` threads even when idle ones are left over."""
    session = make_session(isolated_env, max_parallel=2)
    session.scheduler = Scheduler(cpu_budget=2, workers=8)  # as a Slurm configuration gets
    maestro.parallelize(range(3), lambda _: time.sleep(0.05))  # leaves idle workers behind
    target = 6
    lock = threading.Lock()
    running = 0
    peak = 0

    def item(_: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        deadline = time.monotonic() + 5
        while peak < target and time.monotonic() < deadline:
            time.sleep(0.005)
        with lock:
            running -= 1

    maestro.parallelize(range(target), item)

    assert session.scheduler.workers >= target
    assert peak == target


def test_idle_workers_exit(monkeypatch: pytest.MonkeyPatch, session: Session) -> None:
    """Workers left idle should exit, so finished sessions do not keep threads for ever."""
    monkeypatch.setattr("libmaestro.scheduler._IDLE_EXIT", 0.05)
    scheduler = session.scheduler = Scheduler(cpu_budget=2)
    seen: set[threading.Thread] = set()

    def item(_: int) -> None:
        with scheduler._cond:
            seen.update(scheduler._threads)
        time.sleep(0.01)

    maestro.parallelize(range(8), item)

    assert seen, "the fan-out ran on no worker thread"
    wait_for(lambda: not any(t.is_alive() for t in seen), timeout=5, what="idle workers to exit")
    assert session.scheduler._threads == []
    # The scheduler still works afterwards: it spawns workers again.
    assert maestro.parallelize(range(4), lambda i: i + 1) == [1, 2, 3, 4]


def test_waiting_counts_the_items_and_processes_yet_to_start(isolated_env: Path) -> None:
    # The live display shows how much work is ahead, which no event has announced: fan-out
    # items not begun, and processes waiting for a slot.
    session = make_session(isolated_env, max_parallel=1)
    started: list[int] = []

    def item(i: int) -> ProcessOutputs:
        started.append(i)
        return maestro.process(
            executor=LOCAL,
            name=f"item{i}",
            args={"gate": str(isolated_env / "open")},
            script='while [ ! -e "$gate" ]; do sleep 0.02; done',
        )

    runner = threading.Thread(target=lambda: maestro.parallelize(range(6), item), daemon=True)
    runner.start()
    # Two workers take an item each; one process gets the only slot, the other waits for it.
    wait_for(lambda: len(started) == 2, timeout=10, what="two items to begin")
    wait_for(lambda: session.scheduler.waiting == 4 + 1, timeout=10, what="4 items and 1 slot")
    (isolated_env / "open").touch()
    runner.join(30)
    assert not runner.is_alive()
    assert session.scheduler.waiting == 0
