"""The root `maestro` command: global options, the command groups, and error -> exit code.

This module alone turns a MaestroError into one clear message and an exit code (1 when the work
failed, 2 for bad usage or configuration). A traceback is shown only with --debug.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, MutableMapping
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import libmaestro
from maestro_cli.context import CliContext

# The commands, in the order `maestro --help` lists them, as "module:function". A command's
# module is imported only when that command runs or its help is shown (LazyCommands): the
# modules import what their command needs (PyInstaller tooling, bash analysis, psutil, rich
# tables), and `maestro run` or `maestro --version` should not pay for the others.
COMMANDS = {
    "init": "maestro_cli.commands.init:init",
    "build": "maestro_cli.commands.build:build",
    "dag": "maestro_cli.commands.dag:dag",
    "status": "maestro_cli.commands.status:status",
    "logs": "maestro_cli.commands.logs:logs",
    "run": "maestro_cli.commands.run:run",
    "ps": "maestro_cli.commands.ps:ps",
    "kill": "maestro_cli.commands.kill:kill",
    "bundle": "maestro_cli.commands.bundle:bundle",
    "invalidate": "maestro_cli.commands.actions:invalidate",
    "rerun": "maestro_cli.commands.actions:rerun",
    "abort": "maestro_cli.commands.actions:abort",
    "update-cache": "maestro_cli.commands.update_cache:update_cache",
    "ui": "maestro_cli.commands.ui:ui",
}


def _command(name: str, callback: Callable[..., None]) -> Any:
    """The Click command Typer makes of `callback`, as `app.command(name)(callback)` would."""
    single = typer.Typer(add_completion=False)
    single.command(name)(callback)
    return typer.main.get_command(single)


class LazyCommands(MutableMapping[str, Any]):  # values: Click commands (typer's vendored click)
    """The group's commands by name; each is built from its COMMANDS entry on first lookup."""

    def __init__(self, paths: dict[str, str]) -> None:
        self._entries: dict[str, Any] = dict(paths)  # a "module:function" until looked up

    def __getitem__(self, name: str) -> Any:
        entry = self._entries[name]
        if isinstance(entry, str):
            module, function = entry.split(":")
            entry = self._entries[name] = _command(name, getattr(import_module(module), function))
        return entry

    def __setitem__(self, name: str, command: Any) -> None:
        self._entries[name] = command

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class MaestroGroup(TyperGroup):
    """Turns a MaestroError from any command into its message and exit code, in one place.

    Its commands are COMMANDS, each loaded on first use.
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(COMMANDS)

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]  # vendored click
        try:
            return super().invoke(ctx)
        except libmaestro.MaestroError as exc:
            cli = ctx.obj if isinstance(ctx.obj, CliContext) else CliContext.create(debug=False)
            if cli.debug:
                raise
            from rich.markup import escape  # only an error needs it (start-up time)

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
