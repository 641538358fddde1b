"""Every error libmaestro raises on purpose.

The tree::

    MaestroError                  base; `exit_code` says how the CLI ends (1 work failed, 2 usage)
    ├── ConfigError               Maestro.toml is wrong; carries every ConfigIssue at once
    ├── StartupError              the program asks for executors/args/inputs the config lacks
    ├── ProcessDefinitionError    a process is declared wrongly (bad name, bad variable, ...)
    ├── StagingError              an input is missing or cannot be staged
    ├── ProcessError              a process ran and failed (non-zero exit, missing outputs)
    │   └── ProcessInterruptedError   it was stopped by Ctrl-C, SIGTERM or an abort
    ├── SubmitError               a backend refused to start a job (sbatch rejected it, ...)
    ├── UnsupportedError          a configured feature this executor cannot run yet
    └── ProjectError              a project directory is missing, unreadable or not a project

Exceptions never print; `maestro_cli.app` and `libmaestro.main` alone turn them into output and
exit codes. Messages are one sentence saying what is wrong, then how to fix it.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def debug_requested() -> bool:
    """True if the user asked for tracebacks (`--debug`, which sets MAESTRO_DEBUG=1)."""
    return os.environ.get("MAESTRO_DEBUG", "") not in {"", "0"}


def log_unexpected(log: logging.Logger, what: str) -> None:
    """Report the exception being handled, which is a bug in maestro, where a background
    thread must go on: one line saying `what` failed and why; the traceback with --debug."""
    if debug_requested():
        log.exception(what)
        return
    exc = sys.exception()
    log.error("%s: %s: %s (a bug in maestro; --debug shows where)", what, type(exc).__name__, exc)


class MaestroError(Exception):
    """Base of every error libmaestro raises on purpose."""

    exit_code: int = EXIT_FAILURE


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a configuration file, located as precisely as the file allows."""

    file: Path
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else f"{self.file}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class ConfigError(MaestroError):
    """Maestro.toml (or another config file) is invalid; `issues` lists every problem found."""

    exit_code = EXIT_USAGE

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in the configuration"
        super().__init__(head + ":\n" + "\n".join(f"  {issue}" for issue in self.issues))


class StartupError(MaestroError):
    """The workflow requests executors, args or inputs that the configuration does not define."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[str], *, config_file: Path | None) -> None:
        self.problems = list(problems)
        self.config_file = config_file
        where = str(config_file) if config_file else "Maestro.toml (none was found)"
        count = len(self.problems)
        head = (
            f"the workflow needs {count} thing{'s' if count != 1 else ''} "
            f"that {where} does not provide; add them there and run again"
        )
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))


class ProcessDefinitionError(MaestroError):
    """A process is declared wrongly: a bad name, a bad variable name, a path of the wrong form."""

    exit_code = EXIT_USAGE


class StagingError(MaestroError):
    """An input does not exist or cannot be placed into the working directory."""


class ProcessError(MaestroError):
    """A process ran and failed: it exited non-zero, or did not write its declared outputs."""

    def __init__(
        self,
        message: str,
        *,
        process: str,
        workdir: Path,
        exit_code: int | None = None,
        missing_outputs: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.process = process
        self.workdir = workdir
        self.process_exit_code = exit_code
        self.missing_outputs = missing_outputs


class ProcessInterruptedError(ProcessError):
    """A process was stopped from outside: Ctrl-C, SIGTERM, or an abort."""

    exit_code = EXIT_INTERRUPTED


class SubmitError(MaestroError):
    """A backend refused to start a job: sbatch rejected it, or its script cannot be written.

    The message is the backend's own explanation (for Slurm, sbatch's error text).
    """


class UnsupportedError(MaestroError):
    """The configuration asks for something this version cannot run yet."""

    exit_code = EXIT_USAGE


class ProjectError(MaestroError):
    """A project directory is missing, is not a maestro project, or cannot be written."""

    exit_code = EXIT_USAGE
