"""procinfo.toml: what each process of a workflow needs, written for the people who run it.

One table per process site, keyed `"path/to/module.py:LINE:COL"`, preceded by the process's doc
as `#` comment lines (the original's format). The file is a pure function of the analysis, so
an unchanged workflow gives a byte-identical file that can be committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tomlkit

__all__ = ["ProcinfoEntry", "render_procinfo"]

HEADER = (
    "procinfo.toml: the processes of this workflow, written by `maestro build`; do not edit.",
    "Each table is one process site (file:line:column), with the executor it runs on",
    "(configured in Maestro.toml) and the programs it needs on that executor.",
)


@dataclass(frozen=True, slots=True)
class ProcinfoEntry:
    key: str
    doc: str | None
    name: str | None
    executor: str | None
    deps: tuple[str, ...]
    dynamic: tuple[str, ...] = ()
    local_scripts: tuple[str, ...] = ()
    analyzed: bool = True
    note: str = ""


def render_procinfo(entries: Sequence[ProcinfoEntry]) -> str:
    """The text of procinfo.toml for `entries`, in their order.

    Each table is rendered by tomlkit on its own (so keys and strings are quoted correctly) and
    its doc comment put directly above its header, where tomlkit would leave a blank line.
    """
    parts = ["".join(f"# {line}\n" for line in HEADER)]
    for entry in entries:
        table = tomlkit.table()
        if entry.name is not None:
            table.add("name", entry.name)
        table.add("executor", entry.executor if entry.executor is not None else "")
        table.add("deps", sorted(set(entry.deps)))
        if entry.dynamic:
            table.add("dynamic_deps", sorted(set(entry.dynamic)))
        if entry.local_scripts:
            table.add("local_scripts", sorted(set(entry.local_scripts)))
        if not entry.analyzed:
            table.add("analyzed", False)
            table.add("analysis_note", entry.note)
        document = tomlkit.document()
        document.add(entry.key, table)
        doc_lines = (entry.doc or "").strip().splitlines()
        comments = "".join(f"# {line.rstrip()}\n".replace("# \n", "#\n") for line in doc_lines)
        parts.append(comments + tomlkit.dumps(document).lstrip("\n"))
    return "\n".join(parts)
