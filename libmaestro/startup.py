"""The startup check: everything the program asks of Maestro.toml exists, before anything runs.

The original did this with link-time registration of every `process!`/`arg!` site; here the
sites are found by reading the source (libmaestro.analysis), so a request hidden in a branch
that this run never takes is still checked.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from libmaestro.config.model import ExecutorType, ProjectConfig, SshTarget
from libmaestro.containers import runtime_problem

if TYPE_CHECKING:
    # The checks import the analysis package when they run, so that `import libmaestro` (which
    # imports this module) does not load it for programs that never start a workflow.
    from libmaestro.analysis import ConfigReference

PROJECT_MARKER = "[tool.maestro]"


def project_root(entry: Path) -> Path:
    """The directory of the nearest pyproject.toml with `[tool.maestro]` above `entry`.

    Falls back to the entry module's own directory for a plain script outside any project.
    """
    for directory in entry.resolve().parents:
        candidate = directory / "pyproject.toml"
        try:
            if PROJECT_MARKER in candidate.read_text(encoding="utf-8"):
                return directory
        except OSError:
            continue
    return entry.resolve().parent


def _suggest(name: str, defined: Iterable[str]) -> str:
    import difflib  # only a failed check needs it

    names = sorted(defined)
    close = difflib.get_close_matches(name, names, n=1)
    listed = ", ".join(names) if names else "none"
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"(defined: {listed}){hint}"


@dataclass(frozen=True, slots=True)
class ReferenceProblem:
    """A request the configuration cannot satisfy, at the place that makes it."""

    file: Path | None
    line: int | None
    col: int | None
    message: str

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line, self.col) if p is not None)
        return f"{where}: {self.message}" if where else self.message


def check_references(
    config: ProjectConfig | None, references: Sequence[ConfigReference]
) -> list[ReferenceProblem]:
    """One problem per request that the configuration cannot satisfy, located at its site."""
    from libmaestro.analysis import ReferenceKind  # see the imports

    problems: list[ReferenceProblem] = []

    def add(ref: ConfigReference, message: str) -> None:
        problems.append(ReferenceProblem(ref.file, ref.line, ref.col, message))

    for ref in references:
        if config is None:
            add(
                ref,
                f"{ref.kind.value} {ref.name!r} is requested here, but there is no Maestro.toml",
            )
        elif ref.kind is ReferenceKind.EXECUTOR:
            found = config.executors.get(ref.name)
            if found is None:
                add(
                    ref,
                    f"executor {ref.name!r} is not defined in [executor] "
                    f"{_suggest(ref.name, config.executors)}",
                )
        elif ref.kind is ReferenceKind.ARG:
            if ref.name not in config.args:
                add(
                    ref,
                    f"arg {ref.name!r} is not defined in [args] {_suggest(ref.name, config.args)}",
                )
        elif ref.name not in config.inputs:
            add(
                ref,
                f"inputs {ref.name!r} is not defined in [inputs] "
                f"{_suggest(ref.name, config.inputs)}",
            )
        else:
            line = config.lines.get(("inputs", ref.name))
            problems.extend(
                ReferenceProblem(
                    config.path, line, None, f"inputs {ref.name!r}: {path} does not exist"
                )
                for path in config.inputs[ref.name]
                if not path.exists()
            )
    return list(dict.fromkeys(problems))  # an input file missing twice is said once


def check_backends(
    config: ProjectConfig | None, references: Sequence[ConfigReference]
) -> list[ReferenceProblem]:
    """What this machine lacks to run the executors the program uses: sbatch, a container
    runtime or image. Run at startup only (not by `maestro build`, which may run elsewhere).

    A Slurm executor's container runs on a compute node, so only its submission is checked here;
    the job itself reports a missing runtime there, with the same words.
    """
    if config is None:
        return []
    from libmaestro.analysis import ReferenceKind  # see the imports

    problems: list[ReferenceProblem] = []
    checked: set[str] = set()
    remote: dict[SshTarget, list[tuple[str, int | None]]] = {}
    for ref in references:
        found = config.executors.get(ref.name) if ref.kind is ReferenceKind.EXECUTOR else None
        if found is None or found.name in checked:
            continue
        checked.add(found.name)
        line = config.lines.get(("executor", found.name), found.line)
        if found.ssh is not None:
            remote.setdefault(found.ssh, []).append((found.name, line))
        elif found.type is ExecutorType.SLURM:
            if shutil.which("sbatch") is None:
                message = (
                    f'executor "{found.name}" submits to Slurm, but sbatch is not on PATH '
                    "here; run on a Slurm login node, or use a Local executor"
                )
                problems.append(ReferenceProblem(config.path, line, None, message))
        elif found.container is not None and (
            problem := runtime_problem(found.container, found.name)
        ):
            problems.append(ReferenceProblem(config.path, line, None, problem))
    if remote:
        # Every host is connected now, before anything runs (a login may ask on the terminal).
        from libmaestro.remote.connection import hosts

        for target, users in remote.items():
            failure = hosts().connect_all([target])
            if failure:
                names = ", ".join(f'"{name}"' for name, _ in users)
                message = f"executor {names}: {failure[0]}"
                problems.append(ReferenceProblem(config.path, users[0][1], None, message))
    return problems
