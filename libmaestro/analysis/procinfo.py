"""procinfo.toml: what each process of a workflow needs, written for the people who run it.

One table per process site, keyed `"path/to/module.py:LINE:COL"`, preceded by the process's doc
as `#` comment lines (the original's format). The file is a pure function of the analysis, so
an unchanged workflow gives a byte-identical file that can be committed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

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


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def toml_string(text: str) -> str:
    """`text` as a TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = []
    for char in text:
        if char in {'"', "\\"}:
            escaped.append("\\" + char)
        elif char == "\n":
            escaped.append("\\n")
        elif char == "\t":
            escaped.append(char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _array(items: Sequence[str]) -> str:
    return "[" + ", ".join(toml_string(item) for item in items) + "]"


def render_procinfo(entries: Sequence[ProcinfoEntry]) -> str:
    """The text of procinfo.toml for `entries`, in their order.

    Written directly rather than through tomlkit, which needs ~1 ms per table (a second for a
    1,000-process workflow); the file is a handful of strings and arrays per table, and a test
    parses the result back with tomllib.
    """
    parts = ["".join(f"# {line}\n" for line in HEADER)]
    for entry in entries:
        doc = _CONTROL.sub("?", (entry.doc or "").strip())  # comments cannot escape anything
        lines = [f"# {line.rstrip()}".rstrip() for line in doc.splitlines()]
        lines.append(f"[{toml_string(entry.key)}]")
        if entry.name is not None:
            lines.append(f"name = {toml_string(entry.name)}")
        lines.append(f"executor = {toml_string(entry.executor or '')}")
        lines.append(f"deps = {_array(sorted(set(entry.deps)))}")
        if entry.dynamic:
            lines.append(f"dynamic_deps = {_array(sorted(set(entry.dynamic)))}")
        if entry.local_scripts:
            lines.append(f"local_scripts = {_array(sorted(set(entry.local_scripts)))}")
        if not entry.analyzed:
            lines.append("analyzed = false")
            lines.append(f"analysis_note = {toml_string(entry.note)}")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
