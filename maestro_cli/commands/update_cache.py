"""`maestro update-cache`: prepare, show or clear the per-user build cache of `maestro bundle`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

import libmaestro
from maestro_cli.context import CliContext
from maestro_cli.render import json_envelope


def update_cache(
    ctx: typer.Context,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every prepared cache.")] = False,
    show: Annotated[bool, typer.Option("--show", help="List the caches; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Prepare the build environment `maestro bundle` uses, so bundling is fast (and offline).

    The cache is per user ($MAESTRO_CACHE, else ~/.cache/maestro), keyed by the maestro
    version, the Python version and the platform: a venv with PyInstaller that sees this
    maestro, plus PyInstaller's analysis of each bundled project. `maestro bundle` fills it on
    first use; run this beforehand on a machine that will later be offline.

    Examples:

        maestro update-cache

        maestro update-cache --show

        maestro update-cache --clear
    """
    cli: CliContext = ctx.obj
    if clear:
        removed = libmaestro.clear_caches()
        if as_json:
            cleared = {"removed": [str(p) for p in removed]}
            cli.console.print_json(json.dumps(json_envelope("update-cache", cleared)))
        else:
            cli.errors.print(f"removed {len(removed)} build cache(s)")
        return
    if not show:
        cache = libmaestro.BuildCache.current()
        if not as_json:
            cli.errors.print(f"preparing {cache.directory} (PyInstaller, about a minute)")
        made = cache.ensure()
        if not as_json:
            cli.errors.print("prepared" if made else "already prepared; nothing to do")
    caches = libmaestro.list_caches()
    if as_json:
        payload: dict[str, object] = {
            "caches": [
                {"directory": str(path), "ready": info is not None, "info": info, "bytes": size}
                for path, info, size in caches
            ]
        }
        cli.console.print_json(json.dumps(json_envelope("update-cache", payload)))
        return
    if not caches:
        cli.console.print("no build cache yet; `maestro update-cache` prepares one")
    for path, info, size in caches:
        state = (
            f"PyInstaller {info.get('pyinstaller')}, Python {info.get('python')}"
            if info
            else "unfinished (the next bundle redoes it)"
        )
        cli.console.print(f"{path}  {size / 1e6:.0f} MB  {state}")
