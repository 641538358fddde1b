"""Execution backends, chosen from an executor's configuration.

The Slurm backend (`libmaestro.executors.slurm`) is imported by `backend_for` when a Slurm
executor is first used, so that a workflow that runs only locally does not load it.
"""

from __future__ import annotations

from libmaestro.config.model import ExecutorConfig, ExecutorType
from libmaestro.executors.base import Backend
from libmaestro.executors.local import LocalBackend

__all__ = ["Backend", "LocalBackend", "backend_for"]


def backend_for(config: ExecutorConfig) -> Backend:
    """The backend for an executor; the set is closed, so an explicit match, not a registry."""
    if config.ssh is not None:
        # Imported here: asyncssh is loaded only by workflows that use SSH.
        from libmaestro.remote.backend import RemoteBackend
        from libmaestro.remote.connection import hosts

        host = hosts().get(config.ssh)
        if config.type is ExecutorType.SLURM:
            from libmaestro.executors.slurm import SlurmBackend  # see the module docstring

            return SlurmBackend(config, host=host)
        return RemoteBackend(config.name, host)
    match config.type:
        case ExecutorType.LOCAL:
            return LocalBackend(config.name)
        case ExecutorType.SLURM:
            from libmaestro.executors.slurm import SlurmBackend  # see the module docstring

            return SlurmBackend(config)
