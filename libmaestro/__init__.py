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
from libmaestro._version import __version__ as __version__
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
from libmaestro.build import build_project
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
from libmaestro.dataflow import (
    Dag,
    DagResult,
    FanOutError,
    Node,
    NotRunError,
    parallelize,
    raise_failures,
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
from libmaestro.findings import BuildResult, Finding, Severity
from libmaestro.process import Process, ProcessOutputs
from libmaestro.project import Project, find_project, init_project, run_project
from libmaestro.templates import InitResult, list_templates

__all__ = [
    "BuildResult",
    "ConfigError",
    "Container",
    "ContainerRuntime",
    "Dag",
    "DagResult",
    "Executor",
    "FanOutError",
    "Finding",
    "GenericExecutor",
    "InitResult",
    "LocalExecutor",
    "MaestroError",
    "MailType",
    "Memory",
    "MemoryConfig",
    "Node",
    "NotRunError",
    "Process",
    "ProcessDefinitionError",
    "ProcessError",
    "ProcessInterruptedError",
    "ProcessOutputs",
    "Project",
    "Severity",
    "SlurmConfig",
    "SlurmExecutor",
    "StagingError",
    "StagingMode",
    "StartupError",
    "TimeLimit",
    "UnsupportedError",
    "arg",
    "build_project",
    "executor",
    "find_project",
    "init_project",
    "inputs",
    "list_templates",
    "main",
    "parallelize",
    "process",
    "raise_failures",
    "run_project",
]
