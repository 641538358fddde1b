"""What the UI's pages show, read from the state store: listings, one workflow, one step, logs.

Pure reads: nothing here writes to the store or touches a file the store did not record. A
log is read only from the working directory recorded for a step, an artefact only at the path
recorded for it, and both only when asked for by their ids.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlencode

from libmaestro.state import (
    ActionRecord,
    AggregatedStep,
    ArtefactRecord,
    ArtefactRole,
    Rollup,
    RunRecord,
    RunState,
    SqliteStateStore,
    StepRecord,
    StepState,
    WorkflowRecord,
    WorkflowState,
    WorkflowSummary,
    aggregate_steps,
    rollup_of,
)

PAGE_SIZE = 50
DASHBOARD_STATES = (
    WorkflowState.RUNNING,
    WorkflowState.SUCCEEDED,
    WorkflowState.FAILED,
    WorkflowState.ABORTED,
    WorkflowState.INTERRUPTED,
)
STDOUT_FILE = ".maestro.out"  # the runner's names for a step's logs inside its workdir
STDERR_FILE = ".maestro.err"
LOG_FILES = {"stdout": STDOUT_FILE, "stderr": STDERR_FILE}
LOG_LINES = 200  # the tail shown first; "show more" multiplies it
LOG_MAX_LINES = 100_000
LOG_MAX_BYTES = 4 * 1024 * 1024  # never more than this of a log in one page
_BLOCK = 64 * 1024
RERUN_START_SECONDS = 60.0  # how long a requested rerun may take to appear as a new run

# The order of a rollup bar, and which state a folded fan-out row shows (its most alarming).
BAR_ORDER = ("succeeded", "skipped", "running", "pending", "failed", "aborted", "invalidated")
SEVERITY = ("failed", "aborted", "invalidated", "running", "pending", "skipped", "succeeded")


def seconds_between(start: float | None, end: float | None, *, running: bool) -> float | None:
    """How long something took, or has taken so far when `running`."""
    if start is None:
        return None
    if end is None:
        return max(0.0, time.time() - start) if running else None
    return max(0.0, end - start)


@dataclass(frozen=True, slots=True)
class Segment:
    """One coloured part of a rollup bar; `x` and `width` in percent of the bar."""

    state: str
    count: int
    x: float
    width: float


def bar(counts: Mapping[StepState, int]) -> list[Segment]:
    """A progress bar of step counts, in `BAR_ORDER`."""
    by_name = {state.value: n for state, n in counts.items() if n}
    total = sum(by_name.values())
    segments, x = [], 0.0
    for name in BAR_ORDER:
        if name in by_name:
            width = 100.0 * by_name[name] / total
            segments.append(Segment(name, by_name[name], x, width))
            x += width
    return segments


def counts_text(counts: Mapping[StepState, int], waiting: int = 0) -> str:
    """`5 succeeded · 1 failed`, in bar order, and `· 40 waiting` to start if any."""
    by_name = {state.value: n for state, n in counts.items() if n}
    parts = [f"{by_name[name]} {name}" for name in BAR_ORDER if name in by_name]
    if waiting:
        parts.append(f"{waiting} waiting")
    return " · ".join(parts) if parts else "no steps"


# --- the main interface ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListQuery:
    """The listing's filters, as they appear in the page's address."""

    search: str = ""
    errors: bool = False
    state: WorkflowState | None = None
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ListQuery:
        state = None
        if (value := params.get("state", "")) in {s.value for s in WorkflowState}:
            state = WorkflowState(value)
        try:
            page = max(1, int(params.get("page", "1")))
        except ValueError:
            page = 1
        return cls(
            search=params.get("q", "").strip()[:200],
            errors=params.get("errors", "") in {"1", "true", "on"},
            state=state,
            page=page,
        )

    def query_string(self, **changes: object) -> str:
        """This query with `changes` (search, errors, state, page) as a URL query string."""
        values = {
            "q": self.search,
            "errors": self.errors,
            "state": self.state.value if self.state else "",
            "page": self.page,
        }
        renamed = {"search": "q"}
        for key, value in changes.items():
            values[renamed.get(key, key)] = value
        params = {
            key: ("1" if value is True else str(value))
            for key, value in values.items()
            if value not in ("", False, None) and not (key == "page" and value == 1)
        }
        return urlencode(params)

    @property
    def filtered(self) -> bool:
        return bool(self.search or self.errors or self.state)


@dataclass(frozen=True, slots=True)
class ListRow:
    """One workflow of the listing."""

    summary: WorkflowSummary
    rollup: Rollup
    started: float
    seconds: float | None
    tags: dict[str, str]
    segments: list[Segment]

    @property
    def workflow(self) -> WorkflowRecord:
        return self.summary.workflow

    @property
    def running(self) -> bool:
        return self.summary.workflow.state is WorkflowState.RUNNING

    @property
    def waiting(self) -> int:
        """What its running run has yet to start (see `RunRecord.waiting`)."""
        latest = self.summary.latest_run
        return latest.waiting if latest is not None else 0  # the store keeps 0 once it ended

    @classmethod
    def of(cls, summary: WorkflowSummary, rollup: Rollup) -> ListRow:
        wf, run = summary.workflow, summary.latest_run
        if run is None:
            started, seconds = wf.created_at, None
        else:
            running = run.state is RunState.RUNNING
            started = run.started_at
            seconds = seconds_between(run.started_at, run.ended_at, running=running)
        tags = {
            k: v for k, v in wf.metadata.items() if not (k == "project" and v == wf.project)
        }  # the project is already a column
        return cls(summary, rollup, started, seconds, tags, bar(rollup.counts))


@dataclass(frozen=True, slots=True)
class Listing:
    """One page of workflows, newest first, with the total that match."""

    query: ListQuery
    rows: list[ListRow]
    total: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def first(self) -> int:
        return (self.query.page - 1) * self.page_size + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0

    @property
    def active(self) -> bool:
        return any(row.running for row in self.rows)

    @classmethod
    def load(
        cls, store: SqliteStateStore, query: ListQuery, *, page_size: int = PAGE_SIZE
    ) -> Listing:
        search = query.search or None
        states = None if query.state is None else {query.state}
        total = store.count_workflows(search=search, errors_only=query.errors, states=states)
        summaries = store.list_workflows(
            limit=page_size,
            offset=(query.page - 1) * page_size,
            search=search,
            errors_only=query.errors,
            states=states,
        )
        # One rollup per row shown: the page keeps that bounded, whatever the store holds.
        rows = [ListRow.of(s, store.rollup(s.workflow.id)) for s in summaries]
        return cls(query, rows, total, page_size)


@dataclass(frozen=True, slots=True)
class Dashboard:
    """How many workflows are in each state, and the latest failures."""

    counts: dict[WorkflowState, int]
    total: int
    failures: list[WorkflowSummary]

    @property
    def running(self) -> int:
        return self.counts.get(WorkflowState.RUNNING, 0)

    @classmethod
    def load(cls, store: SqliteStateStore, *, failures: int = 5) -> Dashboard:
        counts = {state: store.count_workflows(states={state}) for state in DASHBOARD_STATES}
        return cls(
            counts=counts,
            total=store.count_workflows(),
            failures=store.list_workflows(limit=failures, errors_only=True),
        )


# --- one workflow ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepRow:
    """One step of the aggregated view."""

    item: AggregatedStep
    seconds: float | None

    @property
    def step(self) -> StepRecord:
        return self.item.step

    @property
    def reused_later(self) -> bool:
        """Skipped as already successful in a later run than the one it succeeded in."""
        return self.item.latest_attempt != self.item.attempt and self.item.state.is_success

    @classmethod
    def of(cls, item: AggregatedStep) -> StepRow:
        step = item.step
        running = step.state is StepState.RUNNING
        return cls(item, seconds_between(step.started_at, step.ended_at, running=running))


@dataclass(frozen=True, slots=True)
class GroupRow:
    """A fan-out: the steps of one `StepRecord.group`, shown folded with their counts."""

    name: str
    members: list[StepRow]
    counts: dict[StepState, int]
    state: str  # the most alarming member state
    attempts: str  # "1" or "1-3"
    seconds: float | None
    segments: list[Segment]

    @classmethod
    def of(cls, name: str, members: list[StepRow]) -> GroupRow:
        counts = dict(Counter(m.item.state for m in members))
        names = {state.value for state in counts}
        attempts = sorted({m.item.attempt for m in members})
        starts = [m.step.started_at for m in members if m.step.started_at is not None]
        ends = [m.step.ended_at for m in members if m.step.ended_at is not None]
        span = max(ends) - min(starts) if starts and len(ends) == len(members) else None
        return cls(
            name=name,
            members=members,
            counts=counts,
            state=next(s for s in SEVERITY if s in names),
            attempts=str(attempts[0])
            if len(attempts) == 1
            else f"{attempts[0]}\u2013{attempts[-1]}",
            seconds=span,
            segments=bar(counts),
        )


@dataclass(frozen=True, slots=True)
class WorkflowView:
    """A workflow instance: its aggregated steps (fan-outs grouped), runs and actions."""

    workflow: WorkflowRecord
    runs: list[RunRecord]
    records: list[StepRecord]  # every step record of every run
    aggregated: list[AggregatedStep]
    entries: list[StepRow | GroupRow]
    rollup: Rollup
    run_counts: dict[int, dict[StepState, int]]
    actions: list[ActionRecord]

    @property
    def active(self) -> bool:
        return bool(self.runs) and self.runs[-1].state is RunState.RUNNING

    @property
    def starting(self) -> bool:
        """A rerun was asked for moments ago and its run has not been recorded yet."""
        if self.active or not self.actions or self.actions[-1].what != "rerun":
            return False
        asked = self.actions[-1].at
        started = self.runs[-1].started_at if self.runs else 0.0
        return asked > started and time.time() - asked < RERUN_START_SECONDS

    @property
    def rollup_segments(self) -> list[Segment]:
        return bar(self.rollup.counts)

    @property
    def failed_or_invalidated(self) -> int:
        wanted = {StepState.FAILED, StepState.INVALIDATED, StepState.ABORTED}
        return sum(1 for a in self.aggregated if a.state in wanted)

    @property
    def pending(self) -> int:
        return self.rollup.count(StepState.PENDING)

    @property
    def waiting(self) -> int:
        """What the running run has yet to start: steps it has not reached have no record."""
        return self.runs[-1].waiting if self.runs else 0  # the store keeps 0 once it ended

    @classmethod
    def load(cls, store: SqliteStateStore, workflow: WorkflowRecord) -> WorkflowView:
        records = store.steps(workflow.id)
        aggregated = aggregate_steps(records)
        run_counts: dict[int, Counter[StepState]] = {}
        for record in records:
            run_counts.setdefault(record.run_id, Counter())[record.state] += 1
        return cls(
            workflow=workflow,
            runs=store.runs(workflow.id),
            records=records,
            aggregated=aggregated,
            entries=group_steps(aggregated),
            rollup=rollup_of(aggregated),
            run_counts={run: dict(counts) for run, counts in run_counts.items()},
            actions=store.actions(workflow.id),
        )


def group_steps(aggregated: Sequence[AggregatedStep]) -> list[StepRow | GroupRow]:
    """Steps in order of first appearance; each fan-out of two or more is one `GroupRow`."""
    by_group: dict[str, list[StepRow]] = {}
    for item in aggregated:
        if item.step.group:
            by_group.setdefault(item.step.group, []).append(StepRow.of(item))
    entries: list[StepRow | GroupRow] = []
    done: set[str] = set()
    for item in aggregated:
        group = item.step.group
        members = by_group.get(group, [])
        if len(members) < 2:
            entries.append(StepRow.of(item))
        elif group not in done:
            done.add(group)
            entries.append(GroupRow.of(group, members))
    return entries


# --- one step --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArtefactRow:
    """An artefact with the step that produced it (None for a file the user provided)."""

    record: ArtefactRecord
    producer: StepRecord | None
    exists: bool
    is_dir: bool

    @property
    def is_input(self) -> bool:
        return self.record.role is ArtefactRole.INPUT


@dataclass(frozen=True, slots=True)
class StepDetails:
    """What the step details panel shows."""

    workflow: WorkflowRecord
    step: StepRecord  # the record asked for
    authoritative: AggregatedStep  # its process's authoritative state across runs
    history: list[StepRecord]  # every record of this process, first run first
    inputs: list[ArtefactRow]
    outputs: list[ArtefactRow]
    log_step: StepRecord | None  # whose workdir holds the logs (a skip's: its origin's)
    running: bool  # the workflow is running

    @property
    def active(self) -> bool:
        return not self.step.state.is_terminal

    @classmethod
    def load(
        cls, store: SqliteStateStore, workflow: WorkflowRecord, step: StepRecord
    ) -> StepDetails:
        records = store.steps(workflow.id)
        by_id = {r.id: r for r in records}
        history = [r for r in records if r.process == step.process]
        (authoritative,) = aggregate_steps(history + _origins(history, by_id))
        log_step = step
        if step.reused_from is not None and step.reused_from in by_id:
            log_step = by_id[step.reused_from]
        artefacts = store.artefacts(log_step.id)
        rows = [_artefact_row(store, a, log_step, records) for a in artefacts]
        return cls(
            workflow=workflow,
            step=step,
            authoritative=authoritative,
            history=history,
            inputs=[r for r in rows if r.is_input],
            outputs=[r for r in rows if not r.is_input],
            log_step=log_step if log_step.workdir is not None else None,
            running=workflow.state is WorkflowState.RUNNING,
        )


def _origins(history: list[StepRecord], by_id: Mapping[int, StepRecord]) -> list[StepRecord]:
    """The succeeded records that skipped records of `history` reused (same process)."""
    ids = {r.id for r in history}
    wanted = {r.reused_from for r in history if r.reused_from is not None} - ids
    return [by_id[i] for i in sorted(wanted) if i in by_id]


def _artefact_row(
    store: SqliteStateStore,
    artefact: ArtefactRecord,
    step: StepRecord,
    records: Sequence[StepRecord],
) -> ArtefactRow:
    producer: StepRecord | None = step if artefact.role is ArtefactRole.OUTPUT else None
    if artefact.source_id is not None:
        producer = _producer_of(store, artefact, records)
    exists, is_dir = artefact.path.exists(), artefact.path.is_dir()
    return ArtefactRow(artefact, producer, exists, is_dir)


def _producer_of(
    store: SqliteStateStore, artefact: ArtefactRecord, records: Sequence[StepRecord]
) -> StepRecord | None:
    """The step whose output artefact `artefact.source_id` is (found among likely workdirs)."""
    candidates = [
        r for r in records if r.workdir is not None and artefact.path.is_relative_to(r.workdir)
    ]
    for record in candidates:
        if any(a.id == artefact.source_id for a in store.artefacts(record.id)):
            return record
    return candidates[0] if candidates else None


def find_artefact(store: SqliteStateStore, step: StepRecord, artefact_id: int) -> ArtefactRecord:
    """The artefact `artefact_id` recorded for `step`; KeyError if it has none with that id."""
    for artefact in store.artefacts(step.id):
        if artefact.id == artefact_id:
            return artefact
    raise KeyError(artefact_id)


# --- logs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogTail:
    """The end of a step's log file."""

    path: Path | None
    text: str = ""
    lines: int = 0  # how many lines were asked for
    truncated: bool = False  # the file holds more than `text`
    size: int = 0
    missing: str = ""  # why there is nothing to show, if so
    extra: dict[str, str] = field(default_factory=dict)


def log_path(step: StepRecord, stream: str) -> Path | None:
    """Where the runner wrote a step's stdout or stderr, from its recorded workdir."""
    if step.workdir is None or stream not in LOG_FILES:
        return None
    return step.workdir / LOG_FILES[stream]


def read_tail(path: Path | None, lines: int) -> LogTail:
    """The last `lines` lines of `path` (at most `LOG_MAX_BYTES` of them), decoded leniently."""
    lines = max(1, min(lines, LOG_MAX_LINES))
    if path is None:
        return LogTail(None, lines=lines, missing="no working directory was recorded for it")
    try:
        with path.open("rb") as handle:
            end = handle.seek(0, os.SEEK_END)
            start = _tail_start(handle, lines, end)
            start = max(start, end - LOG_MAX_BYTES)
            handle.seek(start)
            data = handle.read(end - start)
    except FileNotFoundError:
        return LogTail(path, lines=lines, missing="the file does not exist (yet)")
    except OSError as exc:
        return LogTail(path, lines=lines, missing=f"it cannot be read: {exc.strerror or exc}")
    return LogTail(
        path,
        text=data.decode("utf-8", errors="replace"),
        lines=lines,
        truncated=start > 0,
        size=end,
    )


def _tail_start(handle: IO[bytes], count: int, end: int) -> int:
    """The offset where the last `count` lines of the open binary file begin."""
    if end == 0:
        return 0
    handle.seek(end - 1)
    wanted = count + (1 if handle.read(1) == b"\n" else 0)  # a final newline starts no line
    found, pos = 0, end
    while pos > 0 and end - pos < LOG_MAX_BYTES:
        size = min(_BLOCK, pos)
        pos -= size
        handle.seek(pos)
        block = handle.read(size)
        index = len(block)
        while (index := block.rfind(b"\n", 0, index)) != -1:
            found += 1
            if found == wanted:
                return pos + index + 1
    return pos


def human_size(size: int | None) -> str:
    """`1.2 MB`-style sizes (powers of 1000, as the action summaries use)."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
