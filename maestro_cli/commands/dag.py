"""`maestro dag`: draw the process graph of a run, or of the workflow before it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import libmaestro
from maestro_cli.context import CliContext

FORMATS = ("mermaid", "dot", "svg")
_BY_SUFFIX = {".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot", ".svg": "svg"}


def _format(fmt: str | None, output: Path | None) -> str:
    if fmt is None:
        return _BY_SUFFIX.get(output.suffix.lower(), "mermaid") if output else "mermaid"
    chosen = fmt.lower()
    if chosen not in FORMATS:
        raise typer.BadParameter(
            f"{fmt!r} is not a format; use one of {', '.join(FORMATS)}", param_hint="--format"
        )
    return chosen


def dag(
    ctx: typer.Context,
    project: Annotated[
        Path, typer.Argument(help="Project directory (or its workflow file).")
    ] = Path(),
    session: Annotated[
        str | None,
        typer.Option("--session", help="Draw this run (a directory under maestro_work/)."),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="mermaid|dot|svg (default: from the --output suffix, else mermaid).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of to stdout.")
    ] = None,
    no_collapse: Annotated[
        bool,
        typer.Option("--no-collapse", help="Draw every process of a large fan-out on its own."),
    ] = False,
) -> None:
    """Draw the process graph as Mermaid, Graphviz DOT or SVG.

    Draws the newest run recorded under maestro_work/ (or the one named by --session), with
    failed processes in red. Before any run, draws the process sites `maestro build` finds,
    without edges: which process feeds which is only known once the workflow runs. Fan-outs of
    more than 30 processes are drawn as one node with their counts, unless --no-collapse. SVG
    uses Graphviz's `dot` when installed, else a built-in layout.

    Examples:

        maestro dag                        # Mermaid text of the newest run

        maestro dag -o dag.svg             # an SVG picture (format from the suffix)

        maestro dag ../pipeline --session brave-otter -f dot | dot -Tpng > dag.png
    """
    cli: CliContext = ctx.obj
    chosen = _format(fmt, output)
    found = libmaestro.find_run_graph(project, session=session)
    if found is not None:
        graph = libmaestro.load_graph(found)
        cli.errors.print(f"session {found.parent.name}: {len(graph)} processes")
    else:
        built = libmaestro.build_project(
            libmaestro.find_project(project), shellcheck=False, write_procinfo=False
        )
        graph = libmaestro.static_graph(built.sites)
        cli.errors.print(
            f"no recorded run: showing the {len(graph)} process sites without edges "
            "(data flow is known only once the workflow runs)"
        )
    collapse = not no_collapse
    if chosen == "svg":
        text = libmaestro.to_svg(graph, collapse=collapse)
    elif chosen == "dot":
        text = libmaestro.to_dot(graph, collapse=collapse)
    else:
        text = libmaestro.to_mermaid(graph, collapse=collapse)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        cli.errors.print(f"wrote {output}")
