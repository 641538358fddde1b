"""`maestro invalidate`, `maestro rerun`, `maestro abort`: the UI's actions on the command line.

Each shows what it will do (steps, files and bytes deleted) and asks before doing it; `--yes`
skips the question, and without a terminal to ask on it is required.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

import libmaestro
from maestro_cli.context import CliContext
from maestro_cli.history_views import find_workflow, reading_store, unknown_step
from maestro_cli.render import json_envelope

SESSION = Annotated[str, typer.Argument(help="The session (`maestro status` lists them).")]
YES = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")]
JSON = Annotated[bool, typer.Option("--json", help="Print the plan or result as JSON.")]
DRY_RUN = Annotated[bool, typer.Option("--dry-run", help="Show what it would do; do nothing.")]
SHOWN_FILES = 20


class ConfirmationNeeded(libmaestro.MaestroError):
    exit_code = 2


def _step_id(store: libmaestro.SqliteStateStore, session: str, name: str) -> int:
    workflow = find_workflow(store, session)
    steps = {a.process: a.step.id for a in store.aggregated_steps(workflow.id)}
    if name not in steps:
        raise unknown_step(session, name, list(steps))
    return steps[name]


def _artefact_id(store: libmaestro.SqliteStateStore, session: str, file: Path) -> int:
    workflow = find_workflow(store, session)
    wanted = file.expanduser().resolve()
    for step in reversed(store.steps(workflow.id)):
        for artefact in store.artefacts(step.id):
            if artefact.path == wanted or artefact.path.resolve() == wanted:
                return artefact.id
    raise libmaestro.ActionRefused(
        f"{file} is not a file recorded for session {session} (an input or output of its steps)"
    )


def _store(session: str) -> libmaestro.SqliteStateStore:
    """The store that has `session`, or the same clear error `maestro status` gives."""
    store = reading_store()
    find_workflow(store, session)
    assert store is not None  # find_workflow raised otherwise
    return store


def _run(
    cli: CliContext,
    store: libmaestro.SqliteStateStore,
    request: libmaestro.ActionRequest,
    *,
    yes: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    plan = libmaestro.plan_action(store, request)
    if as_json and (dry_run or not yes):
        _print_json(cli, plan, applied=False)
        if not dry_run and not yes:
            raise ConfirmationNeeded("with --json, pass --yes to apply the action (or --dry-run)")
        return
    if not as_json:
        cli.errors.print(escape(plan.summary))
        for path in plan.files[:SHOWN_FILES]:
            cli.errors.print(f"  delete {escape(str(path))}")
        if len(plan.files) > SHOWN_FILES:
            cli.errors.print(f"  ... and {len(plan.files) - SHOWN_FILES} more files")
    if dry_run:
        return
    if not yes:
        if not sys.stdin.isatty():
            raise ConfirmationNeeded(
                "no terminal to confirm on; pass --yes to do it, or --dry-run to only look"
            )
        if not typer.confirm("Proceed?", default=False):
            cli.errors.print("nothing done")
            raise typer.Exit(1)
    done = libmaestro.apply_action(store, request)
    if as_json:
        _print_json(cli, done, applied=True)
    else:
        started = f"; started the rerun as pid {done.pid}" if done.pid else ""
        cli.errors.print(f"done{started}")


def _print_json(cli: CliContext, plan: libmaestro.ActionPlan, *, applied: bool) -> None:
    payload = {
        "action": plan.request.kind,
        "session": plan.request.session,
        "applied": applied,
        "summary": plan.summary,
        "steps": [s.process for s in plan.steps],
        "files": [str(f) for f in plan.files],
        "bytes": plan.bytes,
        "pid": plan.pid,
    }
    cli.console.print_json(json.dumps(json_envelope(plan.request.kind, payload)))


def invalidate(
    ctx: typer.Context,
    session: SESSION,
    step: Annotated[str | None, typer.Option("--step", help="Only this step (by name).")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Only this recorded file (an artefact).")
    ] = None,
    propagate: Annotated[
        bool, typer.Option("--propagate", help="Also invalidate everything downstream of it.")
    ] = False,
    yes: YES = False,
    dry_run: DRY_RUN = False,
    as_json: JSON = False,
) -> None:
    """Declare results stale so the next run (or --resume) makes them again.

    A whole session: every successful step is invalidated and its outputs are deleted. --step:
    that step and its outputs (with --propagate, also every step downstream of it). --file: that
    output file only; its step stays and runs again on --resume (with --propagate, what used the
    file is invalidated too). Files you provided are never deleted.

    Examples:

        maestro invalidate cheery_panther --step align --propagate

        maestro invalidate cheery_panther --file maestro_work/cheery_panther/sort/sorted.bam

        maestro invalidate cheery_panther --dry-run
    """
    cli: CliContext = ctx.obj
    if step is not None and file is not None:
        raise ConfirmationNeeded("give --step or --file, not both")
    store = _store(session)
    if step is not None:
        step_id = _step_id(store, session, step)
        request = libmaestro.ActionRequest(
            "invalidate-step", session, step_id=step_id, propagate=propagate
        )
    elif file is not None:
        artefact = _artefact_id(store, session, file)
        request = libmaestro.ActionRequest(
            "invalidate-artefact", session, artefact_id=artefact, propagate=propagate
        )
    else:
        request = libmaestro.ActionRequest("invalidate-workflow", session)
    _run(cli, store, request, yes=yes, dry_run=dry_run, as_json=as_json)


def rerun(
    ctx: typer.Context,
    session: SESSION,
    step: Annotated[
        str | None, typer.Option("--step", help="Only this failed or invalidated step.")
    ] = None,
    yes: YES = False,
    dry_run: DRY_RUN = False,
    as_json: JSON = False,
) -> None:
    """Run failed, aborted or invalidated steps again, with what is downstream of them.

    Starts a detached `--resume` of the session: steps that are up to date are skipped, the
    others run. A successful step cannot be rerun; invalidate it first.

    Examples:

        maestro rerun cheery_panther

        maestro rerun cheery_panther --step align --yes
    """
    cli: CliContext = ctx.obj
    store = _store(session)
    step_id = _step_id(store, session, step) if step is not None else None
    request = libmaestro.ActionRequest("rerun", session, step_id=step_id)
    _run(cli, store, request, yes=yes, dry_run=dry_run, as_json=as_json)


def abort(
    ctx: typer.Context,
    session: SESSION,
    step: Annotated[str | None, typer.Option("--step", help="Only this pending step.")] = None,
    yes: YES = False,
    dry_run: DRY_RUN = False,
    as_json: JSON = False,
) -> None:
    """Keep pending steps of a running session from starting; running steps finish.

    Without --step, nothing that has not started yet will start; the run then ends as
    aborted. `maestro kill` stops the running steps too.

    Examples:

        maestro abort cheery_panther --step gather

        maestro abort cheery_panther --yes
    """
    cli: CliContext = ctx.obj
    store = _store(session)
    step_id = _step_id(store, session, step) if step is not None else None
    request = libmaestro.ActionRequest("abort", session, step_id=step_id)
    _run(cli, store, request, yes=yes, dry_run=dry_run, as_json=as_json)
