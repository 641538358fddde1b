"""Execution backends, chosen from an executor's configuration."""

from __future__ import annotations

from libmaestro.config.model import ExecutorConfig, ExecutorType
from libmaestro.errors import UnsupportedError
from libmaestro.executors.base import Backend
from libmaestro.executors.local import LocalBackend

__all__ = ["Backend", "LocalBackend", "backend_for", "unsupported_reason"]


def unsupported_reason(config: ExecutorConfig) -> str | None:
    """Why this version cannot run jobs for `config`, or None if it can."""
    if config.type is ExecutorType.SLURM:
        return (
            f'executor "{config.name}" is of type "Slurm", which this version of maestro can '
            'configure but not yet submit to; use type = "Local" for now'
        )
    if config.container is not None:
        return (
            f'executor "{config.name}" runs in a {config.container.runtime.value} container, '
            "which this version cannot start yet; remove `container` to run on the host"
        )
    return None


def backend_for(config: ExecutorConfig) -> Backend:
    """The backend for an executor; the set is closed, so an explicit match, not a registry."""
    reason = unsupported_reason(config)
    if reason is not None:
        raise UnsupportedError(reason)
    match config.type:
        case ExecutorType.LOCAL:
            return LocalBackend(config.name)
        case _:  # pragma: no cover - unsupported_reason covers every other type
            raise UnsupportedError(f"unknown executor type {config.type}")
