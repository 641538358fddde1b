"""`maestro ps`: the workflows running now, on this host and others sharing the store."""

from __future__ import annotations

import json
import socket
import time
from typing import Annotated, Any

import typer

import libmaestro
from maestro_cli.context import CliContext
from maestro_cli.render import json_envelope


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _row(item: libmaestro.ActiveRun, now: float) -> dict[str, Any]:
    done, total = item.progress
    return {
        "session": item.workflow.session,
        "project": item.workflow.project,
        "pid": item.run.pid,
        "host": item.run.host,
        "local": item.is_local,
        "run": item.run.attempt,
        "started_at": item.run.started_at,
        "age_seconds": now - item.run.started_at,
        "done": done,
        "total": total,
    }


def ps(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON document.")] = False,
) -> None:
    """List the workflow runs that are running now, with PID, host, age and progress.

    Runs whose process is gone without a final state are marked interrupted, with a warning.
    """
    cli: CliContext = ctx.obj
    store = libmaestro.open_store()
    active, interrupted = libmaestro.active_runs(store) if store.path.exists() else ([], [])
    now = time.time()
    rows = [_row(item, now) for item in active]
    if as_json:
        found = [
            {"session": store.workflow(r.workflow_id).session, "pid": r.pid, "host": r.host}
            for r in interrupted
        ]
        document = json_envelope("ps", {"active": rows, "interrupted": found})
        typer.echo(json.dumps(document, indent=2))
        return
    for run in interrupted:
        cli.errors.print(
            f"warning: session {store.workflow(run.workflow_id).session} run {run.attempt} "
            f"(pid {run.pid} on {run.host}) ended without a final state; recorded interrupted",
            markup=False,
        )
    if not rows:
        cli.console.print("no active runs", markup=False)
        return
    here = socket.gethostname()
    headers = ("session", "pid", "host", "age", "progress")
    lines = [headers]
    for row in rows:
        host = row["host"] if row["host"] == here else f"{row['host']} (other host)"
        progress = f"{row['done']}/{row['total']}"
        lines.append((row["session"], str(row["pid"]), host, _age(row["age_seconds"]), progress))
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    for line in lines:
        text = "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
        cli.console.print(text.rstrip(), markup=False)
