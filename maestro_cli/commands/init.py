"""`maestro init`: create a new project from a scaffold."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import libmaestro
from maestro_cli.context import CliContext


def init(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Directory to create the project in.")] = Path(),
    template: Annotated[
        str, typer.Option("--template", "-t", help="Scaffold to use (see --list-templates).")
    ] = "default",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Also add the scaffold to a non-empty directory (existing files are kept).",
        ),
    ] = False,
    list_templates: Annotated[
        bool, typer.Option("--list-templates", help="List the scaffolds and exit.")
    ] = False,
) -> None:
    """Create a maestro project that runs as created.

    Examples:

        maestro init demo && cd demo && maestro run

        maestro init . --force      # add the scaffold to the current directory
    """
    cli: CliContext = ctx.obj
    if list_templates:
        for name in libmaestro.list_templates():
            cli.console.print(name)
        return
    result = libmaestro.init_project(path, template=template, force=force)
    where = result.directory
    cli.console.print(
        f"created project [bold]{where.resolve().name}[/] in {where} "
        f"({len(result.written)} files, template {result.template})"
    )
    for skipped in result.skipped:
        cli.console.print(f"  kept existing {skipped} (not overwritten)")
    step = "" if where.resolve() == Path.cwd().resolve() else f"cd {where} && "
    cli.console.print(f"next: {step}maestro run")
