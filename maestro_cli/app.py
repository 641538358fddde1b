"""The root `maestro` command: global options, the command groups, and error -> exit code.

This module alone turns a MaestroError into one clear message and an exit code (1 when the work
failed, 2 for bad usage or configuration). A traceback is shown only with --debug.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

import libmaestro
from maestro_cli.commands import init, run
from maestro_cli.context import CliContext

app = typer.Typer(
    name="maestro",
    help="Write, check, run and share reproducible bioinformatic workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("init")(init.init)
app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
)(run.run)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"maestro {libmaestro.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks for errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Write, check, run and share reproducible bioinformatic workflows.

    Start with `maestro init demo && cd demo && maestro run`.
    """
    ctx.obj = CliContext.create(debug=debug)


def main() -> None:
    """Console entry point."""
    debug = "--debug" in sys.argv[1:]
    try:
        app(standalone_mode=True)
    except libmaestro.MaestroError as exc:
        if debug:
            raise
        CliContext.create(debug=False).errors.print(f"[red bold]error:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)
