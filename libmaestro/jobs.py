"""Values shared by the runner and the executor backends: what to run and what happened."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class JobState(enum.Enum):
    """Where a job is in its life, as the backend sees it."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"  # the backend no longer knows the job

    @property
    def is_terminal(self) -> bool:
        return self in {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST}


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything a backend needs to start one prepared process."""

    session: str
    process: str
    workdir: Path
    argv: Sequence[str]  # the command, already wrapped (modules, container) by the runner
    env: Mapping[bytes, bytes]  # the complete environment of the job
    stdout: str | os.PathLike[str]
    stderr: str | os.PathLike[str]
    # Only the variables maestro injects (inputs, outputs, args, MAESTRO_*): what a job on
    # another host gets, where this machine's environment means nothing.
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobHandle:
    """Enough to wait for or cancel a job, even from another process after a restart."""

    executor: str
    backend_id: str  # Local: "pid:create_time"


@dataclass(frozen=True, slots=True)
class JobResult:
    """How a job ended, with the resource use the backend could measure."""

    state: JobState
    exit_code: int | None  # the script's exit status; None if it was killed by a signal
    signal: int | None = None
    started_at: float = 0.0  # seconds since the epoch
    ended_at: float = 0.0
    max_rss_kib: int | None = None
    user_seconds: float | None = None
    system_seconds: float | None = None
    reason: str = ""  # the backend's own word for a failure (e.g. Slurm's OUT_OF_MEMORY)

    @property
    def duration(self) -> float:
        return max(0.0, self.ended_at - self.started_at)


@dataclass(frozen=True, slots=True)
class ExitRecord:
    """What a job's wrapper writes to its exit file as it ends: "<code> <started> <ended>".

    Slurm jobs and SSH jobs write one (`.maestro.exit`), so how they ended is known even when
    their scheduler or connection forgot them.
    """

    code: int
    started_at: float
    ended_at: float

    @classmethod
    def parse(cls, text: str | None) -> ExitRecord | None:
        try:
            fields = (text or "").split()
            return cls(int(fields[0]), float(fields[1]), float(fields[2]))
        except (ValueError, IndexError):
            return None
