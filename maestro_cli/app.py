"""The root `maestro` command: global options, the command groups, and error -> exit code.

This module alone turns a MaestroError into one clear message and an exit code (1 when the work
failed, 2 for bad usage or configuration). A traceback is shown only with --debug.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from typer.core import TyperGroup

import libmaestro
from maestro_cli.commands import (
    actions,
    build,
    bundle,
    dag,
    init,
    kill,
    logs,
    ps,
    run,
    status,
    ui,
    update_cache,
)
from maestro_cli.context import CliContext


class MaestroGroup(TyperGroup):
    """Turns a MaestroError from any command into its message and exit code, in one place."""

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]  # vendored click
        try:
            return super().invoke(ctx)
        except libmaestro.MaestroError as exc:
            cli = ctx.obj if isinstance(ctx.obj, CliContext) else CliContext.create(debug=False)
            if cli.debug:
                raise
            cli.errors.print(f"[red bold]error:[/] {escape(str(exc))}")
            ctx.exit(exc.exit_code)


app = typer.Typer(
    cls=MaestroGroup,
    name="maestro",
    help="Write, check, run and share reproducible bioinformatic workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("init")(init.init)
app.command("build")(build.build)
app.command("dag")(dag.dag)
app.command("status")(status.status)
app.command("logs")(logs.logs)
app.command("run")(run.run)
app.command("ps")(ps.ps)
app.command("kill")(kill.kill)
app.command("bundle")(bundle.bundle)
app.command("invalidate")(actions.invalidate)
app.command("rerun")(actions.rerun)
app.command("abort")(actions.abort)
app.command("update-cache")(update_cache.update_cache)
app.command("ui")(ui.ui)


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
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            envvar="MAESTRO_STORE",
            help="The run-history database to use (default: $MAESTRO_HOME/state.db, else the "
            "user data directory).",
        ),
    ] = None,
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
    if store is not None:
        # Commands and the workflows they start find the store through the environment.
        os.environ["MAESTRO_STORE"] = str(store.expanduser().resolve())
    passed = ctx.obj if isinstance(ctx.obj, dict) else {}
    ctx.obj = CliContext.create(debug=debug, program_args=passed.get("program_args", ()))


def split_program_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split `maestro run X -- A B` into maestro's own arguments and the program's (A B).

    Done before Click parses anything, because Click would give the first word after `--` to
    the optional PROJECT argument.
    """
    own, program = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :])
        if "--" in argv
        else (
            argv,
            [],
        )
    )
    return _resume_value(own), program


def _resume_value(argv: list[str]) -> list[str]:
    """Give a bare `--resume` its default value, `latest`.

    `--resume [SESSION]` takes an optional value, which Click would fill with whatever follows
    (`--resume --explain` would resume a session named "--explain").
    """
    fixed: list[str] = []
    for index, word in enumerate(argv):
        fixed.append(word)
        following = argv[index + 1] if index + 1 < len(argv) else None
        if word in {"--resume", "-r"} and (following is None or following.startswith("-")):
            fixed.append("latest")
    return fixed


def main() -> None:
    """Console entry point."""
    own, program = split_program_args(sys.argv[1:])
    app(args=own, obj={"program_args": program}, standalone_mode=True)
