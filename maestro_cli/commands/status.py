"""`maestro status`: the workflows a user ran, one workflow's aggregated view, why a step ran.

Everything comes from the state store (never from `maestro_work/`): the listing pages through it
newest first, and one session's view is the aggregated view of seed 003, where each step shows
its authoritative state across runs and the run it came from.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import RenderableType
from rich.live import Live
from rich.text import Text

import libmaestro
from maestro_cli.context import CliContext
from maestro_cli.history_views import (
    Listing,
    SessionView,
    find_workflow,
    reading_store,
)
from maestro_cli.render import json_envelope

WATCH_SECONDS = 2.0  # how often --watch redraws


def status(
    ctx: typer.Context,
    session: Annotated[
        str | None,
        typer.Argument(metavar="SESSION", help="Show this session's steps (default: list them)."),
    ] = None,
    all_: Annotated[
        bool,
        typer.Option("--all", help="List every session; with SESSION, every step of a fan-out."),
    ] = False,
    errors: Annotated[
        bool, typer.Option("--errors", help="Only failed and interrupted sessions.")
    ] = False,
    search: Annotated[
        str | None,
        typer.Option(
            "--search", "-s", help="Sessions whose name, project or tags contain these words."
        ),
    ] = None,
    why: Annotated[
        str | None,
        typer.Option("--why", metavar="STEP", help="Why STEP of SESSION ran or was skipped."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Redraw every 2 s until the run ends (Ctrl-C stops).")
    ] = False,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", min=1, help="Sessions to list; with SESSION, failed fan-out members shown."
        ),
    ] = 20,
) -> None:
    """Show the workflows you ran, or one workflow's steps across all its runs.

    Without SESSION, lists workflow sessions newest first: state, start, duration, attempts
    (runs), step counts and tags. A run whose process died without ending it (SIGKILL, power
    loss) shows as interrupted.

    With SESSION, shows each step's authoritative state across all runs (a step that succeeded
    in run 1 and was skipped as already successful in run 2 shows as succeeded in run 1), the
    runs themselves and the counts. Fan-outs of more than 10 steps are one row each, followed by
    their members that did not succeed.

    Examples:

        maestro status

        maestro status --errors --search project=rnaseq

        maestro status brave-otter --watch

        maestro status brave-otter --why align_S1

        maestro status brave-otter --json | jq '.result.steps[] | select(.state == "failed")'
    """
    cli: CliContext = ctx.obj
    if why is not None and session is None:
        raise typer.BadParameter("name the session too: maestro status SESSION --why STEP")
    if watch and as_json:
        raise typer.BadParameter("--watch redraws a table; leave out --json", param_hint="--watch")
    store = reading_store()
    terminal = cli.console.is_terminal
    if session is None:
        shown = None if all_ else limit
        listing = Listing.load(store, errors=errors, search=search, limit=shown)
        if as_json:
            _print_json(cli, listing.to_json())
        elif store is None or not listing.summaries:
            cli.errors.print(listing.empty_message(store))
        elif watch:

            def list_frame() -> tuple[RenderableType, bool]:
                store.mark_interrupted_runs(libmaestro.run_is_alive)
                fresh = Listing.load(store, errors=errors, search=search, limit=shown)
                return fresh.render(terminal=terminal), fresh.active

            _watch(cli, list_frame)
        else:
            cli.console.print(listing.render(terminal=terminal))
        return
    workflow = find_workflow(store, session)
    assert store is not None  # find_workflow raised otherwise
    if why is not None:
        view = SessionView.load(store, workflow)
        if as_json:
            _print_json(cli, view.why_json(why))
        else:
            cli.console.print(view.why_render(why, terminal=terminal))
        return
    if as_json:
        _print_json(cli, SessionView.load(store, workflow).to_json())
        return

    def session_frame() -> tuple[RenderableType, bool]:
        if watch:
            store.mark_interrupted_runs(libmaestro.run_is_alive)
        view = SessionView.load(store, store.workflow(workflow.id))
        return view.render(expand=all_, limit=limit, terminal=terminal), view.active

    if watch:
        _watch(cli, session_frame)
    else:
        cli.console.print(session_frame()[0])


# --- shared helpers -----------------------------------------------------------------------


def _print_json(cli: CliContext, result: dict[str, Any]) -> None:
    # json.dumps, not console.print_json: rich highlights the 3.6 MB view of a 10,000-step
    # session in 10 s; json.dumps takes 0.13 s.
    cli.console.file.write(json.dumps(json_envelope("status", result), indent=2) + "\n")


def _watch(cli: CliContext, frame: Callable[[], tuple[RenderableType, bool]]) -> None:
    """Draw `frame()` until it says the run is over: in place on a terminal, else once a tick."""
    try:
        renderable, active = frame()
        if cli.console.is_terminal:
            with Live(renderable, console=cli.console, auto_refresh=False) as live:
                while active:
                    time.sleep(WATCH_SECONDS)
                    renderable, active = frame()
                    live.update(renderable, refresh=True)
            return
        cli.console.print(renderable)
        while active:
            time.sleep(WATCH_SECONDS)
            renderable, active = frame()
            cli.console.print(Text(f"— {datetime.now():%H:%M:%S} —", style="dim"))
            cli.console.print(renderable)
    except KeyboardInterrupt:
        return  # Ctrl-C only stops watching; the run goes on
