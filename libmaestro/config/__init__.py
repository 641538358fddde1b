"""Maestro.toml: the frozen configuration model and its loader.

`find_config_file` decides which file a workflow uses, `load_config` reads and validates it into a
`ProjectConfig`, and the model types double as the programmatic API for building executors in code.
"""

from __future__ import annotations

from libmaestro.config.load import (
    CONFIG_ENV_VAR,
    CONFIG_FILE_NAME,
    find_config_file,
    load_config,
    parse_config,
)
from libmaestro.config.model import (
    Container,
    ContainerRuntime,
    ExecutorConfig,
    ExecutorType,
    MailType,
    Memory,
    MemoryConfig,
    ProjectConfig,
    SlurmConfig,
    StagingMode,
    TimeLimit,
)

__all__ = [
    "CONFIG_ENV_VAR",
    "CONFIG_FILE_NAME",
    "Container",
    "ContainerRuntime",
    "ExecutorConfig",
    "ExecutorType",
    "MailType",
    "Memory",
    "MemoryConfig",
    "ProjectConfig",
    "SlurmConfig",
    "StagingMode",
    "TimeLimit",
    "find_config_file",
    "load_config",
    "parse_config",
]
