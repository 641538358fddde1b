"""`maestro build`: check the workflow before it runs and write procinfo.toml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

import libmaestro
from maestro_cli.context import CliContext
from maestro_cli.render import json_envelope

_STYLES = {"error": "red", "warning": "yellow", "info": "cyan", "style": "dim"}


def build(
    ctx: typer.Context,
    project: Annotated[Path, typer.Argument(help="Project directory or workflow file.")] = Path(),
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    no_shellcheck: Annotated[
        bool, typer.Option("--no-shellcheck", help="Skip ShellCheck (faster, less safe).")
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too.")] = False,
) -> None:
    """Check every process of a workflow and write procinfo.toml.

    Finds every process(...) and Process(...) in the workflow's modules, checks each script with
    ShellCheck (findings point at the line and column inside the Python file), detects the
    programs each script needs, checks every executor/arg/input name against Maestro.toml, and
    writes procinfo.toml. Exit code 1 when there are errors (or warnings with --strict).

    Examples:

        maestro build

        maestro build ../pipeline --strict --json
    """
    cli: CliContext = ctx.obj
    found = libmaestro.find_project(project)
    result = libmaestro.build_project(found, shellcheck=not no_shellcheck)
    failed = result.failed(strict=strict)
    if as_json:
        payload = {
            "project": str(result.root),
            "ok": not failed,
            "sites": [
                {"key": s.key, "name": s.name, "executor": s.executor, "deps": list(s.deps),
                 "analyzed": s.analyzed}
                for s in result.sites
            ],
            "findings": [
                {"file": str(f.file) if f.file else None, "line": f.line, "col": f.col,
                 "severity": f.severity.label, "code": f.code, "message": f.message}
                for f in result.findings
            ],
            "procinfo": str(result.procinfo) if result.procinfo else None,
            "seconds": round(result.seconds, 3),
        }  # fmt: skip
        cli.console.print_json(json.dumps(json_envelope("build", payload)))
    else:
        for finding in result.findings:
            style = _STYLES[finding.severity.label]
            cli.console.print(f"[{style}]{escape(finding.render(result.root))}[/]")
        counts = ", ".join(
            f"{result.count(sev)} {sev.label}{'s' if result.count(sev) != 1 else ''}"
            for sev in reversed(libmaestro.Severity)
        )
        verdict = "[red]failed[/]" if failed else "[green]ok[/]"
        cli.errors.print(
            f"build {verdict}: {len(result.sites)} process sites, "
            f"{result.scripts_checked} scripts checked ({result.scripts_cached} unchanged), "
            f"{counts} in {result.seconds:.2f}s"
        )
        if result.procinfo:
            cli.errors.print(f"wrote {result.procinfo}")
    raise typer.Exit(1 if failed else 0)
