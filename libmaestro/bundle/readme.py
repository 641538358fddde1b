"""The README.md that goes with a bundle: how to configure and run it, and what it needs."""

from __future__ import annotations

import tomllib
from pathlib import Path

from libmaestro.analysis import ReferenceKind
from libmaestro.frozen import BundleInfo


def _processes(procinfo: Path) -> list[tuple[str, str, str, list[str]]]:
    """(site, doc, executor, deps) per process in procinfo.toml, docs taken from its comments.

    A process's description is the comment block directly above its table; a block followed
    by a blank line (the file's header, say) describes nothing.
    """
    try:
        text = procinfo.read_text(encoding="utf-8")
        tables = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError):
        return []
    docs: dict[str, str] = {}
    comment: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        if stripped.startswith("[") and (key := _table_key(stripped)) is not None:
            docs[key] = " ".join(c for c in comment if c)
        comment = []  # a blank line or anything else ends the block
    return [
        (key, docs.get(key, ""), str(table.get("executor", "?")), list(table.get("deps", [])))
        for key, table in tables.items()
        if isinstance(table, dict)
    ]


def _table_key(header: str) -> str | None:
    """The key of a `[table]` header line, as TOML reads it (quotes and escapes undone)."""
    try:
        parsed = tomllib.loads(header)
    except tomllib.TOMLDecodeError:
        return None
    return next(iter(parsed), None) if len(parsed) == 1 else None


def render_readme(info: BundleInfo, *, procinfo: Path, onefile: bool) -> str:
    name = info.name
    args = info.names(ReferenceKind.ARG)
    inputs = info.names(ReferenceKind.INPUTS)
    executors = info.names(ReferenceKind.EXECUTOR)
    processes = _processes(procinfo)
    tools = sorted({dep for _, _, _, deps in processes for dep in deps})
    lines = [
        f"# {name} {info.version}",
        "",
        f"A workflow made with maestro {info.maestro}, bundled for **{info.platform}**. It runs",
        "without Python; it does not run on another operating system or CPU architecture.",
        "",
        "## Run it",
        "",
        "```",
        f"./{name} --help                # what it needs and its options",
        f"./{name}                       # run it (reads ./Maestro.toml or the one next to it)",
        f"./{name} --resume              # after a failure: rerun only what did not succeed",
        f"maestro run ./{name} --background   # detached; then `maestro ps`, `maestro kill`",
        "```",
        "",
        "Each run gets a session directory `maestro_work/<session>/` in the current directory,",
        "with one folder per process holding its script, logs and outputs.",
        "",
        "## Configure it",
        "",
        "Edit `Maestro.toml` (next to the program) before the first run:",
        "",
        f"- `[args]`: {', '.join(f'`{a}`' for a in args) or 'none needed'}",
        f"- `[inputs]` (paths relative to Maestro.toml): "
        f"{', '.join(f'`{i}`' for i in inputs) or 'none needed'}",
        f"- `[executor.*]`: {', '.join(f'`{e}`' for e in executors) or 'none needed'}; set",
        '  `type = "Slurm"` and its fields to run a step on a cluster, or a `container`.',
        "",
        "The program checks all of this before it starts anything and names what is missing.",
        "",
        "## What it needs installed",
        "",
    ]
    if tools:
        lines.append("Commands the processes call (from procinfo.toml):")
        lines.append("")
        lines += [f"- `{tool}`" for tool in tools]
    else:
        lines.append("No external commands were detected.")
    lines += ["", "## Processes", ""]
    if processes:
        lines += ["| process site | executor | needs | what it does |", "|---|---|---|---|"]
        for key, doc, executor, deps in processes:
            needed = ", ".join(deps) or "-"
            lines.append(f"| `{key}` | {executor} | {needed} | {doc or '-'} |")
    else:
        lines.append("See procinfo.toml.")
    layout = "the program" if onefile else "the program and `_internal/` (keep them together)"
    lines += ["", f"This folder holds {layout}, Maestro.toml, procinfo.toml and this README.", ""]
    return "\n".join(lines)
