"""`maestro bundle`: freeze a project into a native program with its Maestro.toml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

import libmaestro
from maestro_cli.context import CliContext
from maestro_cli.render import json_envelope


def bundle(
    ctx: typer.Context,
    project: Annotated[Path, typer.Argument(help="Project directory.")] = Path(),
    onefile: Annotated[
        bool,
        typer.Option(
            "--onefile/--onedir",
            help="One self-unpacking file (slower to start) or a folder (default, starts fast).",
        ),
    ] = False,
    compress: Annotated[
        libmaestro.Compression,
        typer.Option(
            "--compress", "-c", help="Also pack dist/<name>/ into an archive of this kind."
        ),
    ] = libmaestro.Compression.NONE,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where dist/<name>/ goes (default: PROJECT/dist).")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Program name (default: the project name).")
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            "--arch", help="Target architecture; only this machine's own is possible (see below)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Bundle a project into a native program that runs without Python.

    Runs `maestro build` first (and stops on its errors), freezes the workflow with libmaestro
    and the project's dependencies using PyInstaller, and lays out dist/<name>/ with the
    program, Maestro.toml (for the recipient to edit), procinfo.toml, the project's data/ and
    a README. The first bundle prepares a per-user build cache (see `maestro update-cache`);
    later ones reuse it and are much faster.

    PyInstaller cannot cross-compile: a bundle runs only on the operating system and CPU
    architecture it was made on, which its archive name states (name-version-linux-x86_64).
    To bundle for another platform, run maestro bundle on that platform.

    Examples:

        maestro bundle

        maestro bundle ../pipeline --compress zstd

        maestro bundle --onefile --name align-reads --out /srv/share
    """
    cli: CliContext = ctx.obj
    found = libmaestro.find_project(project)
    if not as_json:
        cli.errors.print(
            f"bundling {found.name} ({'onefile' if onefile else 'onedir'}); the first bundle "
            "also prepares the build cache, which takes a minute"
        )
    result = libmaestro.bundle_project(
        found, onefile=onefile, compress=compress, out=out, name=name, arch=arch
    )
    if as_json:
        payload = {
            "directory": str(result.directory),
            "program": str(result.program),
            "archive": str(result.archive) if result.archive else None,
            "prepared_cache": result.prepared_cache,
            "seconds": round(result.seconds, 2),
        }
        cli.console.print_json(json.dumps(json_envelope("bundle", payload)))
        return
    cli.console.print(str(result.program))
    if result.archive is not None:
        cli.console.print(str(result.archive))
    cache = "prepared the build cache, " if result.prepared_cache else ""
    cli.errors.print(
        f"bundled in {result.seconds:.1f}s ({cache}PyInstaller {result.pyinstaller_seconds:.1f}s); "
        f"give {result.directory}"
        + (f" or {result.archive.name}" if result.archive else "")
        + " to anyone on the same platform; they edit Maestro.toml and run "
        + f"./{result.program.name}"
    )
