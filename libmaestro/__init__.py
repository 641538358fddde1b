"""libmaestro: write bioinformatic workflows as Python that composes checked bash processes.

import libmaestro as maestro

@maestro.main
def main():
    reads = maestro.inputs("reads")[0]
    out = maestro.process(
        name="count",
        executor="default",
        inputs={"reads": reads},
        outputs={"counts": "counts.txt"},
        script='wc -l < "$reads" > "$counts"',
    )
    print(out.counts.read_text())
"""

from __future__ import annotations

from libmaestro._main import main
from libmaestro.build import BuildResult, Finding, Severity, build_project
from libmaestro.api import (
    Executor,
    GenericExecutor,
    LocalExecutor,
    SlurmExecutor,
    arg,
    executor,
    inputs,
    process,
)
from libmaestro.config.model import (
    Container,
    ContainerRuntime,
    MailType,
    Memory,
    MemoryConfig,
    SlurmConfig,
    StagingMode,
    TimeLimit,
)
from libmaestro.errors import (
    ConfigError,
    MaestroError,
    ProcessDefinitionError,
    ProcessError,
    ProcessInterruptedError,
    StagingError,
    StartupError,
    UnsupportedError,
)
from libmaestro.process import Process, ProcessOutputs
from libmaestro.project import Project, find_project, init_project, run_project
from libmaestro.templates import InitResult, list_templates

__version__ = "0.1.0"

__all__ = [
    "BuildResult",
    "Finding",
    "Severity",
    "build_project",
    "ConfigError",
    "Container",
    "ContainerRuntime",
    "Executor",
    "GenericExecutor",
    "InitResult",
    "LocalExecutor",
    "MaestroError",
    "MailType",
    "Memory",
    "MemoryConfig",
    "Process",
    "ProcessDefinitionError",
    "ProcessError",
    "ProcessInterruptedError",
    "ProcessOutputs",
    "Project",
    "SlurmConfig",
    "SlurmExecutor",
    "StagingError",
    "StagingMode",
    "StartupError",
    "TimeLimit",
    "UnsupportedError",
    "arg",
    "executor",
    "find_project",
    "init_project",
    "inputs",
    "list_templates",
    "main",
    "process",
    "run_project",
]
