"""What `maestro status` and `maestro logs` show: finding sessions and steps, and drawing them.

Shared by both commands; all data comes from the state store.
"""

from __future__ import annotations

import difflib
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

import libmaestro

COLLAPSE_AT = 10  # a fan-out group with more members than this is shown as one row
RICH_ROWS = 1000  # longer tables are drawn as plain columns even on a terminal (see _Grid)
STDOUT_FILE = ".maestro.out"  # the runner's names for a step's logs inside its workdir
STDERR_FILE = ".maestro.err"

# Step, run and workflow states share their names; styles and the order of a rollup go by name.
_STYLES = {
    "succeeded": "green",
    "skipped": "green",
    "running": "cyan",
    "pending": "dim",
    "failed": "red bold",
    "interrupted": "red",
    "aborted": "yellow",
    "invalidated": "magenta",
}
_ROLLUP_ORDER = ("succeeded", "skipped", "running", "pending", "failed", "aborted", "invalidated")
_LABELS = {"succeeded": "ok"}
# The state a collapsed fan-out row shows: its most alarming member's.
_SEVERITY = ("failed", "aborted", "invalidated", "running", "pending", "skipped", "succeeded")


class UnknownNameError(libmaestro.StateNotFoundError):
    """The user named a session or step the store does not have: bad usage, so exit code 2."""

    exit_code = 2


def reading_store() -> libmaestro.SqliteStateStore | None:
    """The user's store with crashed runs marked interrupted, or None if nothing was recorded.

    A missing store is not created: looking at the status must not leave files behind.
    """
    store = libmaestro.open_store()
    if not store.path.exists():
        return None
    store.mark_interrupted_runs(libmaestro.run_is_alive)
    return store


def did_you_mean(word: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(names), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def find_workflow(
    store: libmaestro.SqliteStateStore | None, session: str
) -> libmaestro.WorkflowRecord:
    """The workflow instance of `session`, or an error that suggests the recorded names."""
    if store is None:
        raise UnknownNameError(
            f"no session {session!r}: nothing is recorded yet in {libmaestro.store_path()}; "
            "start a workflow with `maestro run`"
        )
    try:
        return store.get_workflow(session)
    except libmaestro.StateNotFoundError:
        recent = [s.workflow.session for s in store.list_workflows(limit=500)]
        raise UnknownNameError(
            f"no session {session!r} in {store.path}{did_you_mean(session, recent)} "
            "(`maestro status` lists the sessions)"
        ) from None


def unknown_step(session: str, step: str, names: Collection[str]) -> UnknownNameError:
    shown = ", ".join(list(names)[:10]) + (f" … ({len(names)} in all)" if len(names) > 10 else "")
    return UnknownNameError(
        f"session {session} has no step {step!r}{did_you_mean(step, names)}; its steps: {shown}"
    )


def _seconds(start: float | None, end: float | None, *, running: bool = False) -> float | None:
    if start is None:
        return None
    if end is None:
        return time.time() - start if running else None
    return max(0.0, end - start)


def _state(name: str) -> Text:
    return Text(name, style=_STYLES.get(name, ""))


def _counts_text(counts: Mapping[Any, int], *, waiting: int = 0) -> str:
    """`5 ok · 1 failed · 2 skipped` from counts keyed by a state enum, and what a running run
    has yet to start (`· 40 waiting`)."""
    by_name = {state.value: n for state, n in counts.items() if n}
    parts = [
        f"{by_name[name]} {_LABELS.get(name, name)}" for name in _ROLLUP_ORDER if name in by_name
    ]
    if waiting:
        parts.append(f"{waiting} waiting")
    return " · ".join(parts) if parts else "no steps"


class _Grid:
    """Rows drawn as a rich table on a terminal, as plain aligned columns when piped.

    Long tables get plain columns on a terminal too: rich measures and wraps every cell and lays
    out about 1,500 rows a second, so `status --all` over 10,000 sessions would take seconds.
    """

    def __init__(self, *headers: str, terminal: bool, title: str | None = None) -> None:
        self.headers = headers
        self.terminal = terminal
        self.title = title
        self.rows: list[tuple[Text, ...]] = []

    def add_row(self, *cells: str | Text) -> None:
        texts = tuple(c if isinstance(c, Text) else Text(c) for c in cells)
        self.rows.append(texts + (Text(),) * (len(self.headers) - len(texts)))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.terminal and len(self.rows) <= RICH_ROWS:
            yield self._table()
            return
        if self.title:
            yield Segment(self.title)
            yield Segment.line()
        header = tuple(Text(h, style="bold") for h in self.headers)
        widths = [
            max(cell.cell_len for cell in column) for column in zip(header, *self.rows, strict=True)
        ]
        styled = console.color_system is not None
        for row in (header, *self.rows):
            used = [i for i, cell in enumerate(row) if cell.plain]
            parts: list[Segment] = []
            for i in range(used[-1] + 1 if used else 0):
                cell = row[i]
                text = cell.plain.replace("\n", " ")
                pad = " " * (widths[i] - cell.cell_len + 2) if i < used[-1] else ""
                style = console.get_style(cell.style) if styled and cell.style else None
                parts += [Segment(text, style), Segment(pad)]
            if styled:
                yield from parts
            else:  # one segment a line: no styles to keep, and far less work for rich
                yield Segment("".join(part.text for part in parts))
            yield Segment.line()

    def _table(self) -> Table:
        table = Table(
            *self.headers,
            title=self.title,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            show_edge=False,
        )
        for column in table.columns:
            column.no_wrap = column.header not in {"reason", "tags", "steps"}
        for row in self.rows:
            table.add_row(*row)
        return table


def _step_json(step: libmaestro.StepRecord) -> dict[str, Any]:
    return {
        "run": step.attempt,
        "state": step.state.value,
        "reason": step.reason,
        "error": step.error,
        "executor": step.executor,
        "exit_code": step.exit_code,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "duration_seconds": _seconds(step.started_at, step.ended_at),
        "workdir": None if step.workdir is None else str(step.workdir),
        "job_id": step.job_id,
        "max_rss_kib": step.max_rss_kib,
        "cpu_seconds": step.cpu_seconds,
    }


def _reason(step: libmaestro.StepRecord) -> str:
    text = "up to date" if step.reason == "UP_TO_DATE" else step.reason
    first_error = step.error.strip().splitlines()[0] if step.error.strip() else ""
    return "; ".join(part for part in (text, first_error) if part)


# --- the listing ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    summaries: list[libmaestro.WorkflowSummary]
    rollups: dict[int, libmaestro.Rollup]
    total: int
    filtered: bool

    @classmethod
    def load(
        cls,
        store: libmaestro.SqliteStateStore | None,
        *,
        errors: bool,
        search: str | None,
        limit: int | None,
    ) -> Listing:
        if store is None:
            return cls([], {}, 0, filtered=bool(errors or search))
        total = store.count_workflows(search=search, errors_only=errors)
        summaries = store.list_workflows(
            limit=total if limit is None else limit, search=search, errors_only=errors
        )
        # One rollup per row shown; the page keeps that bounded.
        rollups = {s.workflow.id: store.rollup(s.workflow.id) for s in summaries}
        return cls(summaries, rollups, total, filtered=bool(errors or search))

    @property
    def active(self) -> bool:
        return any(s.workflow.state is libmaestro.WorkflowState.RUNNING for s in self.summaries)

    def empty_message(self, store: libmaestro.SqliteStateStore | None) -> str:
        if self.filtered:
            return "no session matches; `maestro status` lists them all"
        where = libmaestro.store_path() if store is None else store.path
        return (
            f"no workflow recorded yet (in {where}); start one with `maestro run` in a project "
            "directory, or create a project with `maestro init demo`"
        )

    @staticmethod
    def _times(s: libmaestro.WorkflowSummary) -> tuple[float, float | None]:
        run = s.latest_run
        if run is None:
            return s.workflow.created_at, None
        running = run.state is libmaestro.RunState.RUNNING
        return run.started_at, _seconds(run.started_at, run.ended_at, running=running)

    @staticmethod
    def _tags(workflow: libmaestro.WorkflowRecord) -> dict[str, str]:
        return {
            k: v
            for k, v in workflow.metadata.items()
            if not (k == "project" and v == workflow.project)  # already a column
        }

    def to_json(self) -> dict[str, Any]:
        rows = []
        for s in self.summaries:
            wf, rollup = s.workflow, self.rollups[s.workflow.id]
            started, seconds = self._times(s)
            rows.append(
                {
                    "session": wf.session,
                    "project": wf.project,
                    "entry": wf.entry,
                    "state": wf.state.value,
                    "user": wf.user,
                    "host": wf.host,
                    "created_at": wf.created_at,
                    "started_at": started,
                    "ended_at": None if s.latest_run is None else s.latest_run.ended_at,
                    "duration_seconds": seconds,
                    "attempts": s.attempts,
                    "steps": {k.value: n for k, n in rollup.counts.items()},
                    "total_steps": rollup.total,
                    "waiting": s.latest_run.waiting if s.latest_run else 0,
                    "metadata": dict(wf.metadata),
                }
            )
        return {"workflows": rows, "total": self.total, "shown": len(rows)}

    def render(self, *, terminal: bool) -> RenderableType:
        table = _Grid(
            "session", "project", "state", "started", "duration", "runs", "steps", "tags",
            terminal=terminal,
        )  # fmt: skip
        for s in self.summaries:
            wf = s.workflow
            started, seconds = self._times(s)
            tags = " ".join(f"{k}={v}" for k, v in self._tags(wf).items())
            waiting = s.latest_run.waiting if s.latest_run else 0  # 0 once the run ended
            table.add_row(
                Text(wf.session, style="bold"),
                Text(wf.project),
                _state(wf.state.value),
                libmaestro.format_time(started),
                libmaestro.format_duration(seconds),
                str(s.attempts),
                _counts_text(self.rollups[wf.id].counts, waiting=waiting),
                Text(tags),
            )
        if self.total <= len(self.summaries):
            return table
        more = f"{len(self.summaries)} of {self.total} sessions shown; --all or --limit N for more"
        return Group(table, Text(more, style="dim"))


# --- one session ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionView:
    workflow: libmaestro.WorkflowRecord
    runs: list[libmaestro.RunRecord]
    records: list[libmaestro.StepRecord]  # every step record of every run
    steps: list[libmaestro.AggregatedStep]
    rollup: libmaestro.Rollup

    @classmethod
    def load(
        cls, store: libmaestro.SqliteStateStore, workflow: libmaestro.WorkflowRecord
    ) -> SessionView:
        records = store.steps(workflow.id)
        steps = libmaestro.aggregate_steps(records)
        return cls(workflow, store.runs(workflow.id), records, steps, libmaestro.rollup_of(steps))

    @property
    def active(self) -> bool:
        return bool(self.runs) and self.runs[-1].state is libmaestro.RunState.RUNNING

    def _run_counts(self) -> dict[int, Counter[Any]]:
        counts: dict[int, Counter[Any]] = {}
        for record in self.records:
            counts.setdefault(record.run_id, Counter())[record.state] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        wf = self.workflow
        run_counts = self._run_counts()
        return {
            "workflow": {
                "session": wf.session,
                "project": wf.project,
                "entry": wf.entry,
                "state": wf.state.value,
                "user": wf.user,
                "host": wf.host,
                "created_at": wf.created_at,
                "args": dict(wf.args),
                "inputs": dict(wf.inputs),
                "metadata": dict(wf.metadata),
            },
            "runs": [
                {
                    "run": run.attempt,
                    "state": run.state.value,
                    "started_at": run.started_at,
                    "ended_at": run.ended_at,
                    "duration_seconds": _seconds(run.started_at, run.ended_at),
                    "pid": run.pid,
                    "host": run.host,
                    "steps": {k.value: n for k, n in run_counts.get(run.id, Counter()).items()},
                    "waiting": run.waiting,
                }
                for run in self.runs
            ],
            "steps": [
                {
                    "process": item.process,
                    "group": item.step.group,
                    "latest_run": item.latest_attempt,
                    **_step_json(item.step),
                }
                for item in self.steps
            ],
            "rollup": {
                "total": self.rollup.total,
                "counts": {k.value: n for k, n in self.rollup.counts.items()},
                "groups": {
                    name: {k.value: n for k, n in counts.items()}
                    for name, counts in self.rollup.groups.items()
                },
            },
        }

    def _header(self) -> Text:
        wf = self.workflow
        text = Text.assemble(
            ("session ", "dim"), (wf.session, "bold"), ("  project ", "dim"), wf.project,
            "  ", _state(wf.state.value), ("  by ", "dim"), f"{wf.user}@{wf.host}",
            ("  created ", "dim"), libmaestro.format_time(wf.created_at),
        )  # fmt: skip
        if wf.metadata:
            text.append("  tags ", "dim")
            text.append(" ".join(f"{k}={v}" for k, v in wf.metadata.items()))
        return text

    def _step_row(self, table: _Grid, item: libmaestro.AggregatedStep, indent: str = "") -> None:
        step = item.step
        running = step.state is libmaestro.StepState.RUNNING
        reason = _reason(step)
        if item.latest_attempt != item.attempt and step.state.is_success:
            reason = f"up to date in run {item.latest_attempt}"
        table.add_row(
            Text(indent + item.process),
            _state(step.state.value),
            str(item.attempt),
            libmaestro.format_duration(_seconds(step.started_at, step.ended_at, running=running)),
            step.executor,
            "" if step.exit_code is None else str(step.exit_code),
            Text(reason),
        )

    def _group_row(self, table: _Grid, name: str, members: list[libmaestro.AggregatedStep]) -> None:
        names = {m.state.value for m in members}
        worst = next(s for s in _SEVERITY if s in names)
        attempts = sorted({m.attempt for m in members})
        starts = [m.step.started_at for m in members if m.step.started_at is not None]
        ends = [m.step.ended_at for m in members if m.step.ended_at is not None]
        span = max(ends) - min(starts) if starts and ends and len(ends) == len(members) else None
        counts = Counter(m.state for m in members)
        table.add_row(
            Text(f"{name} \u00d7{len(members)}", style="bold"),
            _state(worst),
            str(attempts[0]) if len(attempts) == 1 else f"{attempts[0]}\u2013{attempts[-1]}",
            libmaestro.format_duration(span),
            ", ".join(sorted({m.step.executor for m in members if m.step.executor})),
            "",
            Text(_counts_text(counts)),
        )

    def render(self, *, expand: bool, limit: int, terminal: bool) -> RenderableType:
        by_group: dict[str, list[libmaestro.AggregatedStep]] = {}
        for item in self.steps:
            if item.step.group:
                by_group.setdefault(item.step.group, []).append(item)
        steps = _Grid(
            "step", "state", "run", "duration", "executor", "exit", "reason",
            terminal=terminal, title="steps (authoritative state, and the run it came from)",
        )  # fmt: skip
        done: set[str] = set()
        for item in self.steps:
            group = item.step.group
            members = by_group.get(group, [])
            if expand or len(members) <= COLLAPSE_AT:
                self._step_row(steps, item)
                continue
            if group in done:
                continue
            done.add(group)
            self._group_row(steps, group, members)
            bad = [m for m in members if not m.state.is_success]
            for member in bad[:limit]:
                self._step_row(steps, member, indent="  ")
            if len(bad) > limit:
                steps.add_row(Text(f"  … {len(bad) - limit} more not ok (--all lists them)"))
        runs = _Grid(
            "run", "state", "started", "ended", "duration", "pid", "steps",
            terminal=terminal, title="runs",
        )  # fmt: skip
        run_counts = self._run_counts()
        for run in self.runs:
            running = run.state is libmaestro.RunState.RUNNING
            runs.add_row(
                str(run.attempt),
                _state(run.state.value),
                libmaestro.format_time(run.started_at),
                libmaestro.format_time(run.ended_at),
                libmaestro.format_duration(_seconds(run.started_at, run.ended_at, running=running)),
                f"{run.pid}@{run.host}",
                _counts_text(run_counts.get(run.id, Counter()), waiting=run.waiting),
            )
        total = self.rollup.total
        waiting = self.runs[-1].waiting if self.runs else 0  # 0 once the run ended
        counts = _counts_text(self.rollup.counts, waiting=waiting)
        summary = f"{total} step{'s' if total != 1 else ''}: {counts}"
        return Group(self._header(), steps, runs, Text(summary, style="bold"))

    # --- --why STEP ------------------------------------------------------------------------

    def _history(self, process: str) -> list[libmaestro.StepRecord]:
        history = [r for r in self.records if r.process == process]
        if not history:
            names = list(dict.fromkeys(r.process for r in self.records))
            raise unknown_step(self.workflow.session, process, names)
        return history

    def _origin(self, record: libmaestro.StepRecord) -> libmaestro.StepRecord | None:
        if record.reused_from is None:
            return None
        return next((r for r in self.records if r.id == record.reused_from), None)

    def why_json(self, process: str) -> dict[str, Any]:
        history = self._history(process)
        chosen = next(item for item in self.steps if item.process == process)
        entries = []
        for record in history:
            origin = self._origin(record)
            entry = _step_json(record) | {"reused_run": origin.attempt if origin else None}
            entry |= {"stdout": None, "stderr": None}
            if record.workdir is not None:
                entry["stdout"] = str(record.workdir / STDOUT_FILE)
                entry["stderr"] = str(record.workdir / STDERR_FILE)
            entries.append(entry)
        return {
            "session": self.workflow.session,
            "process": process,
            "state": chosen.state.value,
            "run": chosen.attempt,
            "history": entries,
        }

    def why_render(self, process: str, *, terminal: bool) -> RenderableType:
        history = self._history(process)
        chosen = next(item for item in self.steps if item.process == process)
        head = Text.assemble(
            (process, "bold"), " in session ", self.workflow.session, ": ",
            _state(chosen.state.value), f" (run {chosen.attempt})",
        )  # fmt: skip
        table = _Grid("run", "state", "reason", "started", "duration", "exit", terminal=terminal)
        for record in history:
            origin = self._origin(record)
            reason = _reason(record) or (
                "ran" if record.state is not libmaestro.StepState.PENDING else ""
            )
            if origin is not None:
                reason += f"; reused the success of run {origin.attempt}"
            table.add_row(
                str(record.attempt),
                _state(record.state.value),
                Text(reason),
                libmaestro.format_time(record.started_at),
                libmaestro.format_duration(_seconds(record.started_at, record.ended_at)),
                "" if record.exit_code is None else str(record.exit_code),
            )
        files = Text()
        for workdir in dict.fromkeys(r.workdir for r in history if r.workdir is not None):
            runs = ", ".join(str(r.attempt) for r in history if r.workdir == workdir)
            files.append(f"workdir (run {runs}): {workdir}\n")
            for label, name in (("stdout", STDOUT_FILE), ("stderr", STDERR_FILE)):
                path: Path = workdir / name
                gone = "" if path.exists() else "  (missing)"
                files.append(f"  {label}: {path}{gone}\n", style="dim" if gone else "")
        files.rstrip()
        hint = f"maestro logs {self.workflow.session} {process} [--stderr]"
        return Group(head, table, files, Text(hint, style="dim"))
