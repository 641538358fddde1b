"""What the state store records: frozen values, read back exactly as they were written.

Times are seconds since the epoch (floats), as in `libmaestro.jobs.JobResult`. Ids are the
store's own integers. Dict fields hold JSON-compatible values; they are left out of hashing so
the records stay hashable.
"""

from __future__ import annotations

import enum
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from libmaestro.state.states import RunState, StepState, WorkflowState

_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    """One workflow instance: one session, with everything needed to explain or restart it."""

    id: int
    session: str  # unique in the store
    project: str
    entry: str  # the workflow program (module or file) that was started
    config: str  # a snapshot of Maestro.toml's text at creation
    args: Mapping[str, Any] = field(hash=False)
    inputs: Mapping[str, Any] = field(hash=False)
    user: str
    host: str
    metadata: Mapping[str, str] = field(hash=False)  # tags; searchable by key and value
    created_at: float
    state: WorkflowState  # the latest run's state when this record was read


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One start of a workflow instance: attempt 1, then one per restart."""

    id: int
    workflow_id: int
    attempt: int
    state: RunState
    started_at: float
    ended_at: float | None
    pid: int
    pid_start_time: float | None  # the process's creation time, so a reused pid is not "alive"
    host: str
    command: tuple[str, ...]
    # While it runs: fan-out items, DAG nodes and processes it has yet to start, as its
    # program last reported them (they have no step record until they begin). 0 once ended.
    waiting: int = 0


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One process call in one run."""

    id: int
    workflow_id: int
    run_id: int
    attempt: int  # the attempt number of `run_id`
    process: str
    state: StepState
    reason: str = ""
    cache_key: str = ""
    executor: str = ""
    workdir: Path | None = None
    job_id: str = ""  # the executor's handle (JobHandle.backend_id), to poll or kill it later
    exit_code: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    max_rss_kib: int | None = None
    cpu_seconds: float | None = None
    error: str = ""
    group: str = ""  # the fan-out this call belongs to, "" if none
    reused_from: int | None = None  # for skipped steps: the succeeded step whose outputs it reuses


class ArtefactRole(enum.Enum):
    """Whether a step read a file or wrote it."""

    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the store keeps of one file: where it is, its size and mtime, maybe its content hash.

    Callers compute these (they know which files are verified outputs); the store only records.
    """

    path: Path
    size: int
    mtime_ns: int
    sha256: str | None = None  # None when the content was not hashed

    @classmethod
    def of_file(cls, path: Path, *, content_hash: bool = False) -> Fingerprint:
        """Fingerprint an existing file, reading its whole content only if `content_hash`.

        Raises:
            OSError: `path` cannot be read.
        """
        info = path.stat()
        digest = None
        if content_hash:
            sha = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(_HASH_CHUNK):
                    sha.update(chunk)
            digest = sha.hexdigest()
        return cls(path=path, size=info.st_size, mtime_ns=info.st_mtime_ns, sha256=digest)

    def same_stat(self, other: Fingerprint) -> bool:
        """True when size and mtime agree (the fast path: content very likely unchanged)."""
        return self.size == other.size and self.mtime_ns == other.mtime_ns

    def same_stat_as(self, info: os.stat_result) -> bool:
        """`same_stat` against a file's `os.stat` result."""
        return self.size == info.st_size and self.mtime_ns == info.st_mtime_ns


@dataclass(frozen=True, slots=True)
class StepSuccess:
    """How a step succeeded: what `SqliteStateStore.record_success` records (and `add_step`,
    for a step that had ended before its start was written)."""

    outputs: Sequence[Fingerprint]
    exit_code: int | None = 0
    ended_at: float | None = None
    max_rss_kib: int | None = None
    cpu_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class NewStep:
    """A step to record with `SqliteStateStore.add_steps` (the fields of `add_step`).

    With `success`, the step (started in `state` RUNNING) is recorded as having succeeded.
    """

    process: str
    state: StepState = StepState.RUNNING
    cache_key: str = ""
    executor: str = ""
    workdir: Path | None = None
    job_id: str = ""
    group: str = ""
    inputs: Sequence[Fingerprint] = ()
    started_at: float | None = None
    reason: str = ""
    success: StepSuccess | None = None


@dataclass(frozen=True, slots=True)
class ArtefactRecord:
    """A file a step consumed (role input) or produced (role output), as it was then."""

    id: int
    workflow_id: int
    step_id: int  # the step that produced (output) or consumed (input) it
    role: ArtefactRole
    path: Path
    size: int
    mtime_ns: int
    sha256: str | None
    source_id: int | None = None  # inputs: the output artefact of this instance it came from

    @property
    def fingerprint(self) -> Fingerprint:
        """The file as recorded, comparable with a fresh `Fingerprint.of_file`."""
        return Fingerprint(
            path=self.path, size=self.size, mtime_ns=self.mtime_ns, sha256=self.sha256
        )


@dataclass(frozen=True, slots=True)
class LineageRecord:
    """Step `step_id` consumed output artefact `artefact_id` of another step of the instance."""

    step_id: int
    artefact_id: int


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """Who did what, when: destructive actions (invalidate, rerun, abort, kill) leave one."""

    id: int
    workflow_id: int | None
    at: float
    who: str
    what: str
    details: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True, slots=True)
class AggregatedStep:
    """One step's authoritative state across every run of its instance (seed 003).

    `step` is the record the state comes from and `attempt` its run: for a step reused as
    "already successful" in later runs, the run where it actually succeeded.
    """

    process: str
    state: StepState
    attempt: int
    step: StepRecord
    latest_attempt: int  # the last run that has a record of this step (skipped ones included)


@dataclass(frozen=True, slots=True)
class Rollup:
    """The aggregated view summed up: how many steps are in each state, per fan-out group too."""

    counts: Mapping[StepState, int] = field(hash=False)
    total: int
    groups: Mapping[str, Mapping[StepState, int]] = field(hash=False)

    def count(self, state: StepState) -> int:
        """How many steps are authoritatively in `state`."""
        return self.counts.get(state, 0)

    @property
    def all_succeeded(self) -> bool:
        """True when there is at least one step and every one is successful."""
        return (
            self.total > 0
            and sum(n for state, n in self.counts.items() if state.is_success) == self.total
        )


@dataclass(frozen=True, slots=True)
class WorkflowSummary:
    """One row of a workflow listing: the instance with its latest run."""

    workflow: WorkflowRecord
    latest_run: RunRecord | None
    attempts: int


class LastSuccess(NamedTuple):
    """A step's reusable success: its record and the files it recorded (for resume)."""

    step: StepRecord
    outputs: list[ArtefactRecord]
    inputs: list[ArtefactRecord]
