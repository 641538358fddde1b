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

import importlib
import typing

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
from libmaestro.graph import (
    GraphNode,
    NodeState,
    ProcessGraph,
    collapse_groups,
    find_run_graph,
    load_graph,
    save_graph,
    static_graph,
)
from libmaestro.history import open_store, store_path
from libmaestro.process import Process, ProcessOutputs
from libmaestro.project import Project, RunOptions, find_project, init_project, run_project
from libmaestro.state import (
    AggregatedStep,
    Rollup,
    RunRecord,
    RunState,
    SqliteStateStore,
    StateError,
    StateNotFoundError,
    StepRecord,
    StepState,
    WorkflowRecord,
    WorkflowState,
    WorkflowSummary,
    aggregate_steps,
    rollup_of,
    run_is_alive,
)

if typing.TYPE_CHECKING:
    from libmaestro.actions import (
        ActionPlan,
        ActionRefused,
        ActionRequest,
        apply_action,
        plan_action,
    )
    from libmaestro.background import (
        ActiveRun,
        KillError,
        KillOutcome,
        KillResult,
        KillTarget,
        PidFile,
        active_runs,
        find_kill_targets,
        kill_run,
        start_background,
        wait_for_session,
    )
    from libmaestro.build import build_project
    from libmaestro.bundle import (
        BuildCache,
        BundleError,
        BundleResult,
        Compression,
        bundle_project,
        clear_caches,
        extract_archive,
        list_caches,
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
    from libmaestro.findings import BuildResult, Finding, Severity
    from libmaestro.graph_draw import to_dot, to_mermaid, to_svg
    from libmaestro.remote.paths import RemotePath
    from libmaestro.remote.workspace import fetch, push
    from libmaestro.templates import InitResult, list_templates
    from libmaestro.timefmt import format_duration, format_time

# What `maestro build`, `maestro bundle`, the background runs and the UI's actions need, a
# running workflow never does: those modules are imported on first use of one of these names,
# so `import libmaestro` in a workflow does not pay for them (build alone pulls in the whole
# ShellCheck and bash analysis). The same goes for what only some workflows use (the dataflow
# helpers) and what only the CLI and the UI use (project templates, time formatting, drawing
# the graph).
_LAZY = {
    **{
        name: "libmaestro.background"
        for name in (
            "ActiveRun", "KillError", "KillOutcome", "KillResult", "KillTarget", "PidFile",
            "active_runs", "find_kill_targets", "kill_run", "start_background",
            "wait_for_session",
        )
    },
    "build_project": "libmaestro.build",
    **{name: "libmaestro.graph_draw" for name in ("to_dot", "to_mermaid", "to_svg")},
    **{name: "libmaestro.findings" for name in ("BuildResult", "Finding", "Severity")},
    **{
        name: "libmaestro.bundle"
        for name in (
            "BuildCache", "BundleError", "BundleResult", "Compression", "bundle_project",
            "clear_caches", "extract_archive", "list_caches",
        )
    },
    "RemotePath": "libmaestro.remote.paths",
    "fetch": "libmaestro.remote.workspace",
    "push": "libmaestro.remote.workspace",
    **{
        name: "libmaestro.actions"
        for name in ("ActionPlan", "ActionRefused", "ActionRequest", "apply_action", "plan_action")
    },
    **{
        name: "libmaestro.dataflow"
        for name in (
            "Dag", "DagResult", "FanOutError", "Node", "NotRunError", "parallelize",
            "raise_failures",
        )
    },
    "InitResult": "libmaestro.templates",
    "list_templates": "libmaestro.templates",
    "format_duration": "libmaestro.timefmt",
    "format_time": "libmaestro.timefmt",
}  # fmt: skip


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'libmaestro' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ActionPlan",
    "ActionRefused",
    "ActionRequest",
    "ActiveRun",
    "AggregatedStep",
    "BuildCache",
    "BuildResult",
    "BundleError",
    "BundleResult",
    "Compression",
    "ConfigError",
    "Container",
    "ContainerRuntime",
    "Dag",
    "DagResult",
    "Executor",
    "FanOutError",
    "Finding",
    "GenericExecutor",
    "GraphNode",
    "InitResult",
    "KillError",
    "KillOutcome",
    "KillResult",
    "KillTarget",
    "LocalExecutor",
    "MaestroError",
    "MailType",
    "Memory",
    "MemoryConfig",
    "Node",
    "NodeState",
    "NotRunError",
    "PidFile",
    "Process",
    "ProcessDefinitionError",
    "ProcessError",
    "ProcessGraph",
    "ProcessInterruptedError",
    "ProcessOutputs",
    "Project",
    "RemotePath",
    "Rollup",
    "RunOptions",
    "RunRecord",
    "RunState",
    "Severity",
    "SlurmConfig",
    "SlurmExecutor",
    "SqliteStateStore",
    "StagingError",
    "StagingMode",
    "StartupError",
    "StateError",
    "StateNotFoundError",
    "StepRecord",
    "StepState",
    "TimeLimit",
    "UnsupportedError",
    "WorkflowRecord",
    "WorkflowState",
    "WorkflowSummary",
    "active_runs",
    "aggregate_steps",
    "apply_action",
    "arg",
    "build_project",
    "bundle_project",
    "clear_caches",
    "collapse_groups",
    "executor",
    "extract_archive",
    "fetch",
    "find_kill_targets",
    "find_project",
    "find_run_graph",
    "format_duration",
    "format_time",
    "init_project",
    "inputs",
    "kill_run",
    "list_caches",
    "list_templates",
    "load_graph",
    "main",
    "open_store",
    "parallelize",
    "plan_action",
    "process",
    "push",
    "raise_failures",
    "rollup_of",
    "run_is_alive",
    "run_project",
    "save_graph",
    "start_background",
    "static_graph",
    "store_path",
    "to_dot",
    "to_mermaid",
    "to_svg",
    "wait_for_session",
]
