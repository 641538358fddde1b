"""Find every executor, arg and input name a workflow asks Maestro.toml for.

`@maestro.main` checks these names against the configuration before any process runs, so that a
typo in a rarely taken branch fails at startup, with every missing name listed at once, instead
of hours into a run. `maestro build` runs the same check.

Only string literals can be checked without running the code: `executor(name)` with `name` a
variable is skipped, and found (if wrong) only when it runs. See `discovery` for how modules
and import aliases are resolved, and for what that cannot see.
"""

from __future__ import annotations

import ast
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from libmaestro.analysis.discovery import (
    ModuleSource,
    call_argument,
    char_column,
    libmaestro_calls,
    project_modules,
)

__all__ = ["ConfigReference", "ReferenceKind", "find_references", "scan_project"]

logger = logging.getLogger(__name__)

_LIBMAESTRO = "libmaestro"


class ReferenceKind(enum.Enum):
    """Which section of Maestro.toml a reference names an entry of."""

    EXECUTOR = "executor"  # [executor.NAME]
    ARG = "arg"  # [args] NAME
    INPUTS = "inputs"  # [inputs] NAME


# Public functions whose name argument (first positional or `name=`) is a config key.
_NAME_ARGUMENT_KINDS = {
    "executor": ReferenceKind.EXECUTOR,
    "arg": ReferenceKind.ARG,
    "inputs": ReferenceKind.INPUTS,
}


@dataclass(frozen=True, slots=True)
class ConfigReference:
    """One place in the code that requests a configuration entry by a literal name.

    Attributes:
        kind: The configuration section the name belongs to.
        name: The requested name, e.g. `"slurm_big"`.
        file: The module's absolute path.
        line: 1-based line of the string literal.
        col: 1-based column of the string literal's opening quote (or prefix), counted in
            characters, as editors count them.
    """

    kind: ReferenceKind
    name: str
    file: Path
    line: int
    col: int

    @property
    def location(self) -> str:
        """`file:line:col`, the form editors and terminals turn into links."""
        return f"{self.file}:{self.line}:{self.col}"


def find_references(modules: Sequence[ModuleSource]) -> list[ConfigReference]:
    """Find every literal executor, arg and input name requested in `modules`.

    Recognised calls, under any import alias of libmaestro or of the function:
    `executor("x")`, `arg("x")`, `inputs("x")` (first positional argument or `name="x"`) and
    `process(..., executor="x")`. Calls with a non-literal name are skipped.

    Returns:
        The references sorted by file, line and column. The same name requested in several
        places gives one reference per place, so every site can be reported.
    """
    references: list[ConfigReference] = []
    for module in modules:
        references += _module_references(module)
    references.sort(key=lambda ref: (ref.file, ref.line, ref.col, ref.kind.value, ref.name))
    return references


def scan_project(entry: Path, *, root: Path) -> list[ConfigReference]:
    """Discover the project's modules from `entry` and return their config references.

    Modules that cannot be parsed are logged as warnings and skipped; use `project_modules`
    and `find_references` directly to report them.
    """
    discovery = project_modules(entry, root=root)
    for path, reason in discovery.unparsable:
        logger.warning("cannot analyse %s: %s", path, reason)
    return find_references(discovery.modules)


def _module_references(module: ModuleSource) -> list[ConfigReference]:
    """The references of one module, in no particular order."""
    if _LIBMAESTRO not in module.source:
        # Any import of libmaestro spells its name (short of NFKC-equivalent Unicode look-alikes,
        # which nobody writes); a substring test is far cheaper than walking the statements of
        # every helper module to find that out.
        return []
    lines: list[str] | None = None
    references: list[ConfigReference] = []
    for function, call in libmaestro_calls(module.tree):
        literal = _requested_name(function, call)
        if literal is None:
            continue
        kind, name, node = literal
        if lines is None:
            # Only needed to turn byte offsets into characters, so only split modules that
            # have references.
            lines = module.source.split("\n")
        references.append(
            ConfigReference(
                kind=kind,
                name=name,
                file=module.path,
                line=node.lineno,
                col=char_column(lines, node.lineno, node.col_offset) + 1,
            )
        )
    return references


def _requested_name(
    function: str, call: ast.Call
) -> tuple[ReferenceKind, str, ast.Constant] | None:
    """The kind, name and literal node of the config name a call requests, if it has one."""
    node: ast.expr | None
    if function in _NAME_ARGUMENT_KINDS:
        kind = _NAME_ARGUMENT_KINDS[function]
        node = call_argument(call, position=0, keyword="name")
    elif function == "process":
        kind = ReferenceKind.EXECUTOR
        node = call_argument(call, position=None, keyword="executor")
    else:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return kind, node.value, node
    return None
