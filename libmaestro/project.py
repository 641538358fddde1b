"""A maestro project on disk, and running its workflow program as a child process.

`maestro run` does not import the workflow: it starts it as its own program (`python
workflow.py`), exactly as a user or a bundled binary would, so the run behaves the same
whichever way it is started, and the CLI stays a thin shell around it.
"""

from __future__ import annotations

import os
import posixpath
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from libmaestro.errors import ProjectError

if TYPE_CHECKING:
    from libmaestro.templates import InitResult

DEFAULT_ENTRY = "workflow.py"
JOBS_ENV_VAR = "MAESTRO_JOBS"  # `maestro run --jobs N`: overrides [tool.maestro] max_parallel


class ProjectSettingsError(ProjectError):
    pass


@dataclass(frozen=True, slots=True)
class ProjectSettings:
    """`[tool.maestro]` of the project's pyproject.toml."""

    entry: str = DEFAULT_ENTRY
    # ShellCheck findings below this level are not shown ("style" shows everything).
    shellcheck_severity: str = "style"
    shellcheck_exclude: frozenset[int] = frozenset()
    # CPUs local processes may use at once; None means the machine's CPU count.
    max_parallel: int | None = None
    # What `maestro bundle` ships next to the program: paths relative to the project root.
    # None means not declared (then `data/`, if it exists).
    data: tuple[str, ...] | None = None


_SEVERITIES = ("style", "info", "warning", "error")


def _settings(pyproject: Path, tool: dict[str, Any]) -> ProjectSettings:
    known = {"entry", "shellcheck_severity", "shellcheck_exclude", "max_parallel", "data"}
    unknown = sorted(set(tool) - known)
    if unknown:
        raise ProjectSettingsError(
            f"{pyproject}: [tool.maestro] has unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(known))}"
        )
    entry = tool.get("entry", DEFAULT_ENTRY)
    if not isinstance(entry, str) or not entry:
        raise ProjectSettingsError(
            f'{pyproject}: [tool.maestro] entry must be a path like "workflow.py"'
        )
    severity = tool.get("shellcheck_severity", "style")
    if severity not in _SEVERITIES:
        raise ProjectSettingsError(
            f"{pyproject}: [tool.maestro] shellcheck_severity must be one of "
            f"{', '.join(_SEVERITIES)}, got {severity!r}"
        )
    exclude = tool.get("shellcheck_exclude", [])
    codes: set[int] = set()
    for item in exclude if isinstance(exclude, list) else [None]:
        text = str(item).upper().removeprefix("SC")
        if isinstance(item, bool) or not text.isdigit():
            raise ProjectSettingsError(
                f"{pyproject}: [tool.maestro] shellcheck_exclude must list codes like "
                f'[2086, "SC2034"], got {exclude!r}'
            )
        codes.add(int(text))
    max_parallel = tool.get("max_parallel")
    if max_parallel is not None and (
        isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
    ):
        raise ProjectSettingsError(
            f"{pyproject}: [tool.maestro] max_parallel must be a positive integer like 4, "
            f"got {max_parallel!r}"
        )
    return ProjectSettings(entry, severity, frozenset(codes), max_parallel, _data(pyproject, tool))


def _inside(path: str) -> bool:
    """True if the relative `path` names something below the directory it is relative to."""
    normal = posixpath.normpath(path.replace("\\", "/"))
    return not path.startswith("/") and normal != "." and normal.split("/")[0] != ".."


def _data(pyproject: Path, tool: dict[str, Any]) -> tuple[str, ...] | None:
    """`data`: a list of paths inside the project, written relative to its root."""
    declared = tool.get("data")
    if declared is None:
        return None
    problem = None
    if not isinstance(declared, list) or not all(isinstance(d, str) and d for d in declared):
        problem = f'must be a list of paths like ["data"], got {declared!r}'
    else:
        outside = [d for d in declared if not _inside(d)]
        if outside:
            problem = (
                "must list paths inside the project, relative to its directory, not "
                + ", ".join(repr(d) for d in outside)
            )
    if problem:
        raise ProjectSettingsError(f"{pyproject}: [tool.maestro] data {problem}")
    return tuple(declared)


@dataclass(frozen=True, slots=True)
class Project:
    """Where a workflow lives and how to start it."""

    root: Path  # the working directory of a run; maestro_work/ is created here
    entry: Path  # the entry module (.py) or a bundled executable
    name: str
    settings: ProjectSettings = ProjectSettings()

    @property
    def is_python(self) -> bool:
        return self.entry.suffix == ".py"


def read_pyproject(root: Path) -> tuple[ProjectSettings, str | None]:
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return ProjectSettings(), None
    import tomllib  # imported here: only a directory with a pyproject.toml needs it

    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProjectError(f"{pyproject} cannot be read: {exc}; fix its TOML syntax") from None
    tool = data.get("tool", {}).get("maestro", {})
    if not isinstance(tool, dict):
        raise ProjectSettingsError(f"{pyproject}: [tool.maestro] must be a table")
    name = data.get("project", {}).get("name")
    return _settings(pyproject, tool), name if isinstance(name, str) else None


def find_project(target: Path) -> Project:
    """The project at `target`: a project directory, a workflow `.py` file, or an executable."""
    target = target.expanduser()
    if not target.exists():
        raise ProjectError(f"{target} does not exist; give a project directory or a workflow file")
    if target.is_dir():
        root = target.resolve()
        settings, name = read_pyproject(root)
        entry = root / settings.entry
        if not entry.is_file():
            raise ProjectError(
                f"{root} has no workflow entry {settings.entry}; create it, set [tool.maestro] "
                "entry in pyproject.toml, or start a project with `maestro init`"
            )
        return Project(root=root, entry=entry, name=name or root.name, settings=settings)
    entry = target.resolve()
    if entry.suffix != ".py" and not os.access(entry, os.X_OK):
        raise ProjectError(f"{target} is neither a Python workflow (.py) nor an executable")
    settings, _ = read_pyproject(entry.parent)
    return Project(root=entry.parent, entry=entry, name=entry.stem, settings=settings)


def init_project(directory: Path, *, template: str = "default", force: bool = False) -> InitResult:
    """Create a new project from a scaffold (see `libmaestro.templates`)."""
    from libmaestro.templates import render_template  # only `maestro init` needs the scaffolds

    return render_template(template, directory, force=force)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How `maestro run` starts a workflow program (foreground or detached)."""

    program_args: Sequence[str] = ()  # what followed `--`
    config: Path | None = None  # --config: another Maestro.toml
    debug: bool = False  # --debug: tracebacks
    jobs: int | None = None  # --jobs: the CPU budget
    resume: str | None = None  # --resume [SESSION]: a session name or "latest"
    explain: bool = False  # --explain: why each step runs or is skipped


def program_command(
    project: Project, options: RunOptions = RunOptions()
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that start the project's workflow program, as `maestro run` does.

    Raises:
        ProjectError: `config` does not exist.
    """
    command = [sys.executable, str(project.entry)] if project.is_python else [str(project.entry)]
    env = dict(os.environ)
    config = options.config
    if config is not None:
        if not config.is_file():
            raise ProjectError(f"--config {config} does not exist; give the path to a Maestro.toml")
        env["MAESTRO_CONFIG"] = str(config.resolve())
    if options.debug:
        env["MAESTRO_DEBUG"] = "1"
    if options.jobs is not None:
        env[JOBS_ENV_VAR] = str(options.jobs)
    if options.resume is not None:
        env["MAESTRO_RESUME"] = options.resume  # read by @main (history.RESUME_ENV_VAR)
    if options.explain:
        env["MAESTRO_EXPLAIN"] = "1"
    return [*command, *options.program_args], env


def run_project(project: Project, options: RunOptions = RunOptions()) -> int:
    """Run the project's workflow in the foreground and return its exit code.

    The child shares the terminal (and its process group), so Ctrl-C reaches the workflow
    directly and it stops its own processes; this parent ignores SIGINT and waits for that.
    SIGTERM and SIGHUP sent to this parent alone are passed on, so killing `maestro run` stops
    the workflow too. `libmaestro.start_background` starts it detached instead.
    """
    argv, env = program_command(project, options)
    child = subprocess.Popen(argv, cwd=project.root, env=env)

    def forward(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        if child.poll() is None:
            child.send_signal(signum)

    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
        signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
        signal.SIGHUP: signal.signal(signal.SIGHUP, forward),
    }
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code
