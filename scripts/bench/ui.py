"""Benchmark: the UI's server-side time over a store of 10,000 workflows.

Fills a fresh store in a temporary directory through the store's API (3 steps per workflow, one
in 10 failed, one in 7 tagged with a sample and a batch, one running), then times requests to
the application in this process (Starlette's TestClient: routing, the store's queries, the
templates; no network), each side by side with its floor, the bare store calls the page makes
(`count_workflows` + `list_workflows` + one `rollup` per row shown):

  list page       GET /: the dashboard (a count per state, recent failures) and the first
                  page of 50 workflows                               target < 300 ms
  list fragment   what the page polls every few seconds
  page 100        GET /fragments/list?page=100 (offset 4,950)
  search          a metadata keyword, and a name substring              target < 100 ms
  errors only     the failed and interrupted ones
  workflow        GET /w/SESSION: one workflow's aggregated view, runs and actions

Each request is repeated and the best time reported (a warm store: the second look).

    .venv/bin/python scripts/bench/ui.py
    .venv/bin/python scripts/bench/ui.py --workflows 2000 --repeat 3 --markdown
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from libmaestro.state import Fingerprint, RunState, SqliteStateStore, WorkflowState
from libmaestro.ui import UiSettings, create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient prefers httpx2; httpx works the same
    from starlette.testclient import TestClient

LIST_LIMIT = 0.300  # the targets
SEARCH_LIMIT = 0.100
PAGE = 50


def populate(store: SqliteStateStore, count: int, steps: int) -> None:
    """`count` workflows of `steps` steps; one in 10 fails, every 7th is tagged."""
    pid = os.getpid()
    for start in range(0, count, 500):
        with store.batch():  # 500 workflows a commit: the fill is not what is measured
            for i in range(start, min(count, start + 500)):
                meta = {"sample": f"S{i:05d}", "batch": f"b{i % 20}"} if i % 7 == 0 else {}
                wf = store.create_workflow(
                    session=f"session-{i:05d}",
                    project=f"project-{i % 5}",
                    entry="main.py",
                    metadata={"project": f"project-{i % 5}", **meta},
                    created_at=1_700_000_000.0 + i,
                )
                run = store.start_run(wf.id, pid=pid, pid_start_time=None)
                failed = i % 10 == 3
                for j in range(steps):
                    step = store.start_step(run.id, process=f"p{j}", group="p" if j else "")
                    if failed and j == steps - 1:
                        store.fail_step(step.id, exit_code=1, reason="exit code 1")
                    else:
                        out = Fingerprint(path=Path(f"/data/{i}/{j}.txt"), size=j, mtime_ns=i)
                        store.succeed_step(step.id, outputs=[out])
                if i != count - 1:  # the newest one stays running
                    store.finish_run(run.id, RunState.FAILED if failed else RunState.SUCCEEDED)


def best(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of `repeat` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def store_floor(
    store: SqliteStateStore, *, search: str | None = None, errors_only: bool = False
) -> Callable[[], object]:
    """The store calls a listing makes, without any HTTP or HTML."""

    def calls() -> object:
        store.count_workflows(search=search, errors_only=errors_only)
        rows = store.list_workflows(limit=PAGE, search=search, errors_only=errors_only)
        return [store.rollup(r.workflow.id) for r in rows]

    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    opts = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="maestro-bench-ui-") as tmp:
        store = SqliteStateStore(Path(tmp) / "state.db")
        start = time.perf_counter()
        populate(store, opts.workflows, opts.steps)
        fill = time.perf_counter() - start
        client = TestClient(
            create_app(UiSettings(store_path=store.path)), base_url="http://127.0.0.1"
        )

        def get(url: str, expect: str) -> Callable[[], object]:
            def request() -> object:
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)
                assert expect in response.text, (url, expect)
                return response

            return request

        def dashboard_floor() -> object:
            for state in (
                WorkflowState.RUNNING,
                WorkflowState.SUCCEEDED,
                WorkflowState.FAILED,
                WorkflowState.ABORTED,
                WorkflowState.INTERRUPTED,
            ):
                store.count_workflows(states={state})
            store.count_workflows()
            store.list_workflows(limit=5, errors_only=True)
            return store_floor(store)()

        newest = f"session-{opts.workflows - 1:05d}"
        sample = f"S{(opts.workflows // 2) // 7 * 7:05d}"
        rows: list[tuple[str, float, float, float | None]] = []

        def measure(
            name: str, url: str, expect: str, floor: Callable[[], object], limit: float | None
        ) -> None:
            get(url, expect)()  # warm: templates compiled, pages cached by SQLite
            rows.append(
                (name, best(get(url, expect), opts.repeat), best(floor, opts.repeat), limit)
            )

        measure("list page (dashboard + 50 rows)", "/", newest, dashboard_floor, LIST_LIMIT)
        measure("list fragment (polled)", "/fragments/list", newest, store_floor(store), None)
        measure(
            "page 100 (offset 4,950)",
            "/fragments/list?page=100",
            "4951–5000",
            lambda: (
                store.count_workflows(),
                [
                    store.rollup(r.workflow.id)
                    for r in store.list_workflows(limit=PAGE, offset=4950)
                ],
            ),
            None,
        )
        measure(
            f"search metadata `sample={sample}`",
            f"/fragments/list?q=sample%3D{sample}",
            sample,
            store_floor(store, search=f"sample={sample}"),
            SEARCH_LIMIT,
        )
        measure(
            "search keyword `b7` (name or metadata)",
            "/fragments/list?q=b7",
            "batch=b7",
            store_floor(store, search="b7"),
            SEARCH_LIMIT,
        )
        measure(
            "search name `session-0421`",
            "/fragments/list?q=session-0421",
            "session-04219",
            store_floor(store, search="session-0421"),
            SEARCH_LIMIT,
        )
        measure(
            "errors only",
            "/fragments/list?errors=1",
            "failed",
            store_floor(store, errors_only=True),
            None,
        )
        workflow_id = store.get_workflow(newest).id
        measure(
            "one workflow's page",
            f"/w/{newest}",
            "Steps",
            lambda: (store.steps(workflow_id), store.runs(workflow_id), store.actions(workflow_id)),
            None,
        )
        client.close()
        size = store.path.stat().st_size
        store.close()

    header = (
        f"UI server-side timings over {opts.workflows:,} workflows × {opts.steps} steps "
        f"(in-process TestClient; best of {opts.repeat}); Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs. Store {size / 1e6:.1f} MB, filled in {fill:.1f} s."
    )
    print(header + "\n")
    if opts.markdown:
        print("| request | UI | store calls alone (floor) | ÷ floor | target |")
        print("|---|---:|---:|---:|---:|")
        for name, ui, floor, limit in rows:
            target = f"< {limit * 1000:.0f} ms" if limit else ""
            print(
                f"| {name} | {ui * 1000:.1f} ms | {floor * 1000:.1f} ms | {ui / floor:.1f}× | {target} |"
            )
    else:
        for name, ui, floor, limit in rows:
            target = f"  (target < {limit * 1000:.0f} ms)" if limit else ""
            print(
                f"{name:42s} {ui * 1000:8.1f} ms   floor {floor * 1000:7.1f} ms"
                f"   ×{ui / floor:5.1f}{target}"
            )
    over = [name for name, ui, _, limit in rows if limit is not None and ui > limit]
    if over:
        print(f"\nOVER THE TARGET: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
