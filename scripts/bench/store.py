"""Benchmark: the state store at the sizes issue 5 names (10,000 sessions, a 10,000-step session).

Fills a fresh store in a temporary directory through the public API only (every write its own
transaction, as a run does), then times the reads that `maestro status`, the UI and resume make:

  list          first page (50 rows) of every session, newest first
  list p100     page 100 (offset 4,950): paging cost
  search        a metadata keyword, and a name substring (first page + total count)
  errors        errors-only listing, first page
  aggregated    the aggregated view of the 10,000-step session
  rollup        its rollup
  up to date    10,000 `last_success` lookups, and one bulk `last_successes` (what resume uses)

Each read is repeated and the best time reported (the store is warm: a second `maestro status`).

    .venv/bin/python scripts/bench/store.py
    .venv/bin/python scripts/bench/store.py --workflows 2000 --steps 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from libmaestro.state import Fingerprint, RunState, SqliteStateStore

LIMIT_SECONDS = 0.5  # issue 5: listing and showing each under 0.5 s
RESUME_LIMIT_SECONDS = 1.0  # issue 5: deciding a 10,000-step session is up to date under 1 s


def _fake_file(i: int) -> Fingerprint:
    return Fingerprint(path=Path(f"/data/out/{i}.txt"), size=1000 + i, mtime_ns=i * 1_000_000)


def populate_small(store: SqliteStateStore, count: int, steps: int) -> None:
    """`count` sessions of `steps` steps each; one in 10 fails, every 7th is tagged."""
    pid = os.getpid()
    for i in range(count):
        meta = {"sample": f"S{i:05d}", "batch": f"b{i % 20}"} if i % 7 == 0 else {}
        wf = store.create_workflow(
            session=f"session-{i:05d}",
            project=f"project-{i % 5}",
            entry="main.py",
            metadata=meta,
            created_at=1_700_000_000.0 + i,
        )
        run = store.start_run(wf.id, pid=pid, pid_start_time=None, command=["maestro", "run"])
        failed = i % 10 == 3
        for j in range(steps):
            step = store.start_step(run.id, process=f"p{j}", cache_key=f"k{i}.{j}")
            if failed and j == steps - 1:
                store.fail_step(step.id, exit_code=1, reason="exit code 1")
            else:
                store.succeed_step(step.id, outputs=[_fake_file(j)])
        store.finish_run(run.id, RunState.FAILED if failed else RunState.SUCCEEDED)


def populate_big(store: SqliteStateStore, steps: int) -> int:
    """One session with `steps` steps, each with one input (the previous output) and one output."""
    wf = store.create_workflow(
        session="big-session", project="big", entry="main.py", created_at=1_800_000_000.0
    )
    run = store.start_run(wf.id, pid=os.getpid(), pid_start_time=None)
    for j in range(steps):
        step = store.start_step(
            run.id,
            process=f"step{j:05d}",
            cache_key=f"{j:064x}",  # as long as a sha256 hex digest
            executor="default",
            workdir=Path(f"/home/user/project/maestro_work/big-session/step{j:05d}"),
            group=f"shard{j % 100}",
        )
        inputs = [_fake_file(1_000_000 + j - 1)] if j else []
        store.succeed_step(step.id, outputs=[_fake_file(1_000_000 + j)], inputs=inputs)
    store.finish_run(run.id, RunState.SUCCEEDED)
    return wf.id


def best(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of `repeat` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--small-steps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="maestro-bench-store-") as tmp:
        store = SqliteStateStore(Path(tmp) / "state.db")
        start = time.perf_counter()
        populate_small(store, opts.workflows, opts.small_steps)
        fill_small = time.perf_counter() - start
        start = time.perf_counter()
        big = populate_big(store, opts.steps)
        fill_big = time.perf_counter() - start
        small_txns = opts.workflows * (3 + 2 * opts.small_steps)
        big_txns = 3 + 2 * opts.steps
        names = [f"step{j:05d}" for j in range(opts.steps)]

        def each_last_success() -> None:
            for name in names:
                assert store.last_success(big, name) is not None

        def bulk_last_successes() -> None:
            assert len(store.last_successes(big)) == opts.steps

        rows: list[tuple[str, float, float]] = [
            (
                "list, first page (50)",
                best(lambda: store.list_workflows(limit=50), opts.repeat),
                LIMIT_SECONDS,
            ),
            (
                "list, page 100 (offset 4,950)",
                best(lambda: store.list_workflows(limit=50, offset=4950), opts.repeat),
                LIMIT_SECONDS,
            ),
            (
                "search metadata `sample=S0700` + count",
                best(
                    lambda: (
                        store.list_workflows(search="sample=S0700"),
                        store.count_workflows(search="sample=S0700"),
                    ),
                    opts.repeat,
                ),
                LIMIT_SECONDS,
            ),
            (
                "search keyword `b7` (name or metadata) + count",
                best(
                    lambda: (store.list_workflows(search="b7"), store.count_workflows(search="b7")),
                    opts.repeat,
                ),
                LIMIT_SECONDS,
            ),
            (
                "errors only, first page + count",
                best(
                    lambda: (
                        store.list_workflows(errors_only=True),
                        store.count_workflows(errors_only=True),
                    ),
                    opts.repeat,
                ),
                LIMIT_SECONDS,
            ),
            (
                f"aggregated view, {opts.steps:,}-step session",
                best(lambda: store.aggregated_steps(big), opts.repeat),
                LIMIT_SECONDS,
            ),
            (
                f"rollup, {opts.steps:,}-step session",
                best(lambda: store.rollup(big), opts.repeat),
                LIMIT_SECONDS,
            ),
            (
                f"up to date: {opts.steps:,} × last_success",
                best(each_last_success, max(1, opts.repeat // 2)),
                RESUME_LIMIT_SECONDS,
            ),
            (
                "up to date: one bulk last_successes",
                best(bulk_last_successes, opts.repeat),
                RESUME_LIMIT_SECONDS,
            ),
        ]
        size = (Path(tmp) / "state.db").stat().st_size
        store.close()

    print(
        f"State store benchmark: {opts.workflows:,} sessions × {opts.small_steps} steps, plus one "
        f"{opts.steps:,}-step session; Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}, {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs. Best of {opts.repeat}.\n"
    )
    print("| operation | time | limit | ratio to limit |")
    print("|---|---:|---:|---:|")
    for name, seconds, limit in rows:
        print(
            f"| {name} | {seconds * 1000:.1f} ms | {limit * 1000:.0f} ms | {seconds / limit:.2f} |"
        )
    print()
    print("| fill (through the API, one transaction per write) | time | transactions/s |")
    print("|---|---:|---:|")
    print(
        f"| {opts.workflows:,} small sessions | {fill_small:.1f} s | {small_txns / fill_small:,.0f} |"
    )
    print(f"| the {opts.steps:,}-step session | {fill_big:.1f} s | {big_txns / fill_big:,.0f} |")
    print(f"\nDatabase size: {size / 1e6:.1f} MB")
    over = [name for name, seconds, limit in rows if seconds > limit]
    if over:
        print(f"\nOVER THE LIMIT: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
