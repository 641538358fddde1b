"""`maestro logs`: a step's standard output or error, from the workdir the store recorded."""

from __future__ import annotations

import codecs
import os
import time
from collections.abc import Callable
from typing import IO, Annotated

import typer

import libmaestro
from maestro_cli.context import CliContext
from maestro_cli.history_views import (
    STDERR_FILE,
    STDOUT_FILE,
    find_workflow,
    reading_store,
    unknown_step,
)

POLL_SECONDS = 0.5  # how often --follow looks for new lines and asks whether the step ended
_BLOCK = 64 * 1024


def logs(
    ctx: typer.Context,
    session: Annotated[
        str, typer.Argument(metavar="SESSION", help="The session (see `maestro status`).")
    ],
    step: Annotated[str, typer.Argument(metavar="STEP", help="The step: its process name.")],
    stderr: Annotated[
        bool, typer.Option("--stderr", help="Show standard error instead of output.")
    ] = False,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new lines until the step ends."),
    ] = False,
    lines: Annotated[
        int | None,
        typer.Option("--tail", "-n", min=0, metavar="N", help="Only the last N lines."),
    ] = None,
) -> None:
    """Print what a step wrote to its standard output (or, with --stderr, its standard error).

    Shows the step's latest attempt, from the working directory recorded in the state store
    (a step skipped as already successful shows the run whose success it reused). With
    --follow, keeps printing as the step writes and stops once it has ended.

    Examples:

        maestro logs brave-otter align_S1

        maestro logs brave-otter align_S1 --stderr --tail 50

        maestro logs brave-otter align_S1 -f
    """
    cli: CliContext = ctx.obj
    store = reading_store()
    workflow = find_workflow(store, session)
    assert store is not None  # find_workflow raised otherwise
    records = store.steps(workflow.id)
    history = [r for r in records if r.process == step]
    if not history:
        raise unknown_step(session, step, list(dict.fromkeys(r.process for r in records)))
    latest = history[-1]
    where = f"step {step} (run {latest.attempt}, {latest.state.value})"
    if latest.workdir is None:
        pending = latest.state is libmaestro.StepState.PENDING
        raise libmaestro.MaestroError(
            f"{where} has no logs: "
            + (
                "it has not started yet; try again once `maestro status` shows it running"
                if pending
                else "the state store recorded no working directory for it"
            )
        )
    path = latest.workdir / (STDERR_FILE if stderr else STDOUT_FILE)

    def active() -> bool:
        # A run that died without ending its steps must not make --follow wait forever.
        store.mark_interrupted_runs(libmaestro.run_is_alive)
        return not store.step(latest.id).state.is_terminal

    while follow and not path.exists() and active():
        time.sleep(POLL_SECONDS)
    if not path.exists():
        raise libmaestro.MaestroError(
            f"{path} does not exist: {where} may not have started yet (or its working "
            "directory was removed)"
        )
    if latest.reused_from is not None:
        origin = store.step(latest.reused_from)
        cli.errors.print(
            f"{step} was skipped in run {latest.attempt} as already successful; showing the log "
            f"of run {origin.attempt}",
            style="dim",
        )
    with path.open("rb") as handle:
        handle.seek(0 if lines is None else _tail_start(handle, lines))
        _copy(handle, follow=active if follow else None)


def _copy(handle: IO[bytes], *, follow: Callable[[], bool] | None) -> None:
    """Print from `handle` to its end; with `follow` (is the step active?), go on until not."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        chunk = handle.read(_BLOCK)
        if chunk:
            typer.echo(decoder.decode(chunk), nl=False)
            continue
        if follow is None or not follow():
            # The step has ended: what it wrote before that is all there is; print it.
            rest = handle.read()
            typer.echo(decoder.decode(rest, final=True), nl=False)
            return
        time.sleep(POLL_SECONDS)


def _tail_start(handle: IO[bytes], count: int) -> int:
    """The offset where the last `count` lines of the file begin (reading from its end)."""
    end = handle.seek(0, os.SEEK_END)
    if count == 0 or end == 0:
        return end
    handle.seek(end - 1)
    # A final newline ends the last line; it does not start another one.
    wanted = count + (1 if handle.read(1) == b"\n" else 0)
    found, pos = 0, end
    while pos > 0:
        size = min(_BLOCK, pos)
        pos -= size
        handle.seek(pos)
        block = handle.read(size)
        index = len(block)
        while (index := block.rfind(b"\n", 0, index)) != -1:
            found += 1
            if found == wanted:
                return pos + index + 1
    return 0
