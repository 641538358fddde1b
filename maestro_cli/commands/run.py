"""`maestro run`: run a project's workflow (or a workflow file) in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import libmaestro
from maestro_cli.context import CliContext


def run(
    ctx: typer.Context,
    project: Annotated[
        Path, typer.Argument(help="Project directory, workflow .py file, or bundled program.")
    ] = Path(),
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Use this Maestro.toml instead of the project's (MAESTRO_CONFIG).",
        ),
    ] = None,
) -> None:
    """Run a workflow: check its configuration, then run its processes with a live view.

    Arguments after `--` go to the workflow program itself.

    Examples:

        maestro run                       # the project in the current directory

        maestro run ../pipeline --config cluster.toml

        maestro run -- --sample S1        # pass --sample S1 to the program
    """
    cli: CliContext = ctx.obj
    found = libmaestro.find_project(project)
    code = libmaestro.run_project(
        found, program_args=cli.program_args, config=config, debug=cli.debug
    )
    raise typer.Exit(code)
