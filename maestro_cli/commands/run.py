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
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs", "-j", min=1, help="CPUs local processes may use at once (default: all)."
        ),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            "-r",
            metavar="[SESSION]",
            help="Resume a session (default: this project's latest): reuse the steps that are "
            "up to date, run the rest.",
        ),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Say why each process runs or is skipped.")
    ] = False,
    no_check: Annotated[
        bool,
        typer.Option("--no-check", help="Skip the build checks (ShellCheck, config references)."),
    ] = False,
    background: Annotated[
        bool,
        typer.Option(
            "--background",
            "-b",
            help="Start the workflow detached (it survives closing the terminal) and return; "
            "`maestro ps` and `maestro kill` find it.",
        ),
    ] = False,
) -> None:
    """Run a workflow: check its configuration, then run its processes with a live view.

    Arguments after `--` go to the workflow program itself.

    Examples:

        maestro run                       # the project in the current directory

        maestro run ../pipeline --config cluster.toml

        maestro run -- --sample S1        # pass --sample S1 to the program

        maestro run --resume --explain    # redo what changed in the latest session, say why

        maestro run --background          # detached; logs under maestro_work/.background/
    """
    cli: CliContext = ctx.obj
    found = libmaestro.find_project(project)
    if found.is_python and not no_check:
        # The same checks as `maestro build` (cached per script), so a shell syntax error or a
        # misspelled executor stops the run before any process starts.
        checked = libmaestro.build_project(found, write_procinfo=False)
        errors = [f for f in checked.findings if f.severity is libmaestro.Severity.ERROR]
        if errors:
            from rich.markup import escape  # only a failed check prints (start-up time)

            for finding in errors:
                cli.errors.print(f"[red]{escape(finding.render(checked.root))}[/]")
            cli.errors.print(
                f"[red bold]error:[/] {len(errors)} error(s) found before the run; fix them "
                "(see `maestro build`) or pass --no-check"
            )
            raise typer.Exit(2)
    options = libmaestro.RunOptions(
        program_args=cli.program_args,
        config=config,
        debug=cli.debug,
        jobs=jobs,
        resume=resume,
        explain=explain,
    )
    if background:
        started = libmaestro.start_background(found, options)
        _report_background(cli, started)
        return
    code = libmaestro.run_project(found, options)
    raise typer.Exit(code)


def _report_background(cli: CliContext, started: libmaestro.PidFile) -> None:
    # The session name exists once the program has checked its configuration; wait briefly.
    session = libmaestro.wait_for_session(libmaestro.open_store(), started, timeout=2.0)

    def say(text: str) -> None:
        cli.console.print(text, markup=False)

    say(f"started in the background: pid {started.pid} on {started.host}")
    say(f"session: {session or '(starting; `maestro ps` shows it)'}")
    say(f"stdout: {started.stdout}")
    say(f"stderr: {started.stderr}")
    say(f"pid file: {started.path}")
    say(f"follow it: tail -f {started.stderr}")
    say(f"stop it: maestro kill {session or started.pid}")
