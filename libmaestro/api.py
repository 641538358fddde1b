"""The functions and classes a workflow calls: the seed's Python API and `process(...)`."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path

from libmaestro._names import random_process_id
from libmaestro.config.model import (
    Container,
    ExecutorConfig,
    ExecutorType,
    ProjectConfig,
    SlurmConfig,
    StagingMode,
)
from libmaestro.errors import ProcessDefinitionError, StartupError
from libmaestro.frozen import bundle_root, is_frozen
from libmaestro.process import Process, ProcessOutputs
from libmaestro.runner import run_process
from libmaestro.session import Session, current_session

PathValue = str | PathLike[str]


class Executor:
    """An execution environment; `exe(process)` runs a process there and returns its outputs.

    Built from `[executor.NAME]` by `executor("NAME")`, or in code as `LocalExecutor(...)` or
    `SlurmExecutor(...)`.
    """

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def exe(self, process: Process) -> ProcessOutputs:
        """Run `process` in the current session and wait for it; raises ProcessError on failure."""
        return run_process(process, executor=self.config, session=current_session())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, type={self.config.type.value})"


GenericExecutor = Executor  # the original stub's name for what executor() returns


class LocalExecutor(Executor):
    """Runs processes on this machine."""

    def __init__(
        self,
        container: Container | None = None,
        staging_mode: StagingMode = StagingMode.SYMLINK,
        modules: Iterable[str] = (),
        *,
        name: str = "local",
    ) -> None:
        super().__init__(
            ExecutorConfig(
                name=name,
                type=ExecutorType.LOCAL,
                container=container,
                staging_mode=StagingMode(staging_mode),
                modules=tuple(modules),
            )
        )


class SlurmExecutor(Executor):
    """Submits processes to Slurm with the sbatch options in `config`."""

    def __init__(
        self,
        config: SlurmConfig | None = None,
        container: Container | None = None,
        staging_mode: StagingMode = StagingMode.SYMLINK,
        modules: Iterable[str] = (),
        *,
        name: str = "slurm",
    ) -> None:
        super().__init__(
            ExecutorConfig(
                name=name,
                type=ExecutorType.SLURM,
                container=container,
                staging_mode=StagingMode(staging_mode),
                modules=tuple(modules),
                slurm=config or SlurmConfig(),
            )
        )


def _config(session: Session, what: str) -> ProjectConfig:
    config = session.config
    if config is None:
        raise StartupError(
            [
                f"{what} is requested, but no Maestro.toml was found in {Path.cwd()} or next to "
                "the program (set MAESTRO_CONFIG to use another file)"
            ],
            config_file=None,
        )
    return config


def _missing(kind: str, name: str, defined: Iterable[str], config: ProjectConfig) -> StartupError:
    names = sorted(defined)
    import difflib  # only for a mistake: not paid by every program's start

    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(names) if names else "none"
    return StartupError(
        [f"{kind} {name!r} is not defined (defined: {listed}){hint}"], config_file=config.path
    )


def arg(name: str) -> str:
    """The value of `name` in Maestro.toml's `[args]`."""
    config = _config(current_session(), f"arg {name!r}")
    try:
        return config.args[name]
    except KeyError:
        raise _missing("arg", name, config.args, config) from None


def inputs(name: str) -> list[Path]:
    """The paths of `name` in Maestro.toml's `[inputs]`, absolute (given relative to the file)."""
    config = _config(current_session(), f"inputs {name!r}")
    try:
        return list(config.inputs[name])
    except KeyError:
        raise _missing("inputs", name, config.inputs, config) from None


def executor(name: str) -> Executor:
    """The executor `[executor.NAME]` of Maestro.toml."""
    return _configured_executor(name)


def _configured_executor(name: str) -> Executor:
    # A separate name, because process() has a parameter called `executor`.
    config = _config(current_session(), f"executor {name!r}")
    try:
        return Executor(config.executors[name])
    except KeyError:
        raise _missing("executor", name, config.executors, config) from None


def _script_from_file(script: str, caller_file: str | None) -> str:
    base = Path(caller_file).parent if caller_file else Path.cwd()
    if is_frozen() and not base.is_absolute():
        # In a bundled program a module's file name is relative to the bundle, and
        # `maestro bundle` put the script files at the same place relative to it.
        base = bundle_root() / base
    path = Path(script)
    if not path.is_absolute():
        path = base / path
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProcessDefinitionError(
            f"inline=False names the script file {str(path)!r}, which cannot be read "
            f"({exc.strerror}); the path is relative to the module that calls process()"
        ) from None


def process(
    *,
    executor: str | Executor,
    script: str,
    name: str | None = None,
    inputs: Mapping[str, PathValue] | None = None,
    args: Mapping[str, str | int | float] | None = None,
    outputs: Mapping[str, PathValue] | None = None,
    dependencies: Iterable[str] = (),
    inline: bool = True,
    doc: str | None = None,
) -> ProcessOutputs:
    """Declare a process and run it at once: the Python form of the original's `process!` block.

    Args:
        executor: the name of an `[executor.NAME]` in Maestro.toml, or an Executor object.
        script: the bash code; with `inline=False`, a path to a script file relative to the
            module that calls `process` (so it works wherever the program is started).
        name: the process's name and directory; a random id when omitted.
        inputs: shell variable -> existing file or directory.
        args: shell variable -> value (converted with `str`).
        outputs: shell variable -> path relative to the working directory.
        dependencies: documentation for `maestro build` (`"!name"` drops an auto-detected one).
        inline: whether `script` is the code itself (default) or a file path.
        doc: a description for procinfo.toml; the enclosing function's docstring otherwise.

    Returns:
        The output paths in declared order followed by the working directory, also addressable
        by output name (`out.bam`) and as `out.workdir`.
    """
    if not inline:
        caller = sys._getframe(1).f_code.co_filename
        script = _script_from_file(script, caller)
    runner = executor if isinstance(executor, Executor) else _configured_executor(executor)
    proc = Process(
        name=name if name is not None else random_process_id(),
        script=script,
        inputs=inputs,
        outputs=outputs,
        # Process converts numbers with str() and rejects anything else with a clear message.
        args=args,
        dependencies=tuple(dependencies),
        doc=doc,
    )
    return runner.exe(proc)
