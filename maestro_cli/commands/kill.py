"""`maestro kill`: stop a running workflow and every process it started."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import libmaestro
from maestro_cli.context import CliContext

_DONE = {
    libmaestro.KillOutcome.STOPPED: "stopped",
    libmaestro.KillOutcome.KILLED: "killed (SIGKILL of its remaining processes)",
}


def _this_project() -> tuple[Path, str | None]:
    """The project in the current directory (its root and name), if it is one."""
    try:
        found = libmaestro.find_project(Path())
    except libmaestro.MaestroError:
        return Path.cwd(), None
    return found.root, found.name


def _describe(result: libmaestro.KillResult) -> str:
    what = f"session {result.session} (pid {result.pid})" if result.session else f"pid {result.pid}"
    outcome = result.outcome
    if outcome is libmaestro.KillOutcome.STALE:
        return (
            f"pid {result.pid}: stale PID file {result.pid_file} (the process is gone or its pid "
            "now belongs to another process); nothing signalled, file removed"
        )
    if outcome is libmaestro.KillOutcome.ALREADY_ENDED:
        return f"{what} had already ended ({result.state}); nothing to kill"
    recorded = f"; recorded {result.state}" if result.state else ""
    return f"{what}: {_DONE[outcome]}{recorded}"


def kill(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="[SESSION|PID]", help="The session or PID (default: this project's only run)."
        ),
    ] = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Stop every active run on this host.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="SIGKILL at once instead of asking it to stop.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0, help="Seconds to wait after SIGTERM before SIGKILL."),
    ] = 10.0,
) -> None:
    """Stop a running workflow: SIGTERM, then SIGKILL of whatever is left after --timeout.

    The run and its unfinished steps are recorded aborted, so `maestro run --resume` reruns only
    those. A PID is signalled only while it still belongs to the recorded run.

    Examples:

        maestro kill                      # the only active run of this project

        maestro kill brave_otter --timeout 30

        maestro kill --all --force
    """
    cli: CliContext = ctx.obj
    if all_runs and target is not None:
        raise typer.BadParameter("give a SESSION/PID or --all, not both")
    root, project = _this_project()
    store = libmaestro.open_store()
    targets = libmaestro.find_kill_targets(
        store, name=target, all_runs=all_runs, root=root, project=project
    )
    if not targets:
        scope = "on this host" if all_runs or project is None else f"of {project}"
        cli.console.print(f"no active run {scope}; nothing to kill", markup=False)
        return
    for item in targets:
        result = libmaestro.kill_run(store, item, force=force, timeout=timeout)
        cli.console.print(_describe(result), markup=False)
