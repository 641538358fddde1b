"""The contract every execution backend fulfils; the runner alone drives it."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from libmaestro.jobs import JobHandle, JobResult, JobSpec


class Backend(abc.ABC):
    """Starts prepared jobs, waits for them and cancels them. Knows nothing of sessions or state.

    Implementations must be safe to call from several threads at once, and `cancel` must be
    idempotent: cancelling a finished or unknown job does nothing.
    """

    @abc.abstractmethod
    def start(self, spec: JobSpec) -> JobHandle:
        """Start the job and return at once; never wait for it to finish."""

    @abc.abstractmethod
    def wait(self, handle: JobHandle) -> JobResult:
        """Block until the job ends and report how it ended."""

    @abc.abstractmethod
    def cancel(self, handles: Sequence[JobHandle], *, grace: float = 3.0) -> None:
        """Stop these jobs and everything they started; best effort, never raises for gone jobs."""
