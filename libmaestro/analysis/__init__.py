"""Static analysis of workflow code: read source with `ast`, never import or run it.

`scan_project` is the startup check's entry point; `project_modules`, `libmaestro_calls` and
friends are the shared pieces that `maestro build` reuses to find process sites.
"""

from __future__ import annotations

from libmaestro.analysis.discovery import (
    LIBMAESTRO_FUNCTIONS,
    Discovery,
    LibmaestroCall,
    LibmaestroNames,
    ModuleSource,
    libmaestro_calls,
    libmaestro_names,
    project_modules,
    resolve_call,
)
from libmaestro.analysis.references import (
    ConfigReference,
    ReferenceKind,
    find_references,
    scan_project,
)

__all__ = [
    "LIBMAESTRO_FUNCTIONS",
    "ConfigReference",
    "Discovery",
    "LibmaestroCall",
    "LibmaestroNames",
    "ModuleSource",
    "ReferenceKind",
    "find_references",
    "libmaestro_calls",
    "libmaestro_names",
    "project_modules",
    "resolve_call",
    "scan_project",
]
