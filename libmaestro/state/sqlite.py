"""`SqliteStateStore`: the state store in one SQLite database per user, in WAL mode.

Concurrency. Several processes (a run, ``maestro status``, the UI) share one file: WAL lets
readers proceed while one writer commits, and ``busy_timeout`` makes a writer wait (10 s) for
another instead of failing with "database is locked". Every write is one ``BEGIN IMMEDIATE``
transaction: taking the write lock up front means a transaction never has to upgrade a read
lock, the case in which SQLite gives up at once, whatever the timeout.

Inside one process, a store holds a single connection (``check_same_thread=False``) behind a
lock, rather than one connection per thread. SQLite admits one writer at a time anyway; a
Python lock hands the connection over the moment it is free, where competing connections of one
process would each sleep in SQLite's busy handler (up to 100 ms a retry), and worker threads of
a pool would each leave a connection open. Reads are short (a page of a listing, one instance's
steps), so serialising them costs little. A store used after ``fork`` opens a new connection.

Durability. ``synchronous=NORMAL`` in WAL mode cannot corrupt the database; a power cut may
lose the last few commits, which is the same as the run having been killed a moment earlier.

SQL, JSON encoding and row decoding stay in this module and its private helpers (`_sqlite_db`,
`_sqlite_reads`, `_sqlite_rows`, `_sqlite_schema`); nothing outside `libmaestro.state` sees them.
"""

# ruff: noqa: S608  # SQL text joins only our own column lists and names; values are bound

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from libmaestro.state._sqlite_db import BUSY_TIMEOUT_SECONDS
from libmaestro.state._sqlite_reads import SqliteReads
from libmaestro.state._sqlite_rows import (
    RUN_COLS,
    now,
    run_of,
    to_json,
)
from libmaestro.state.errors import (
    StateConflictError,
    StateTransitionError,
)
from libmaestro.state.records import (
    ActionRecord,
    Fingerprint,
    NewStep,
    RunRecord,
    StepRecord,
    StepSuccess,
    WorkflowRecord,
)
from libmaestro.state.states import (
    Reason,
    RunState,
    StepState,
    WorkflowState,
    check_transition,
)

STORE_FILE_NAME = "state.db"
__all__ = ["BUSY_TIMEOUT_SECONDS", "STORE_FILE_NAME", "SqliteStateStore", "default_store_path"]


def default_store_path(environ: Mapping[str, str] | None = None) -> Path:
    r"""Where the user's store lives: ``$MAESTRO_HOME/state.db``, else the user data directory.

    The data directory is ``$XDG_DATA_HOME/maestro`` or ``~/.local/share/maestro`` on Linux,
    ``~/Library/Application Support/maestro`` on macOS and ``%LOCALAPPDATA%\maestro`` on
    Windows. Nothing is created.
    """
    env = os.environ if environ is None else environ
    if home := env.get("MAESTRO_HOME"):
        return Path(home).expanduser() / STORE_FILE_NAME
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif sys.platform == "win32" and env.get("LOCALAPPDATA"):
        base = Path(env["LOCALAPPDATA"])
    else:
        xdg = env.get("XDG_DATA_HOME", "")
        # The XDG spec says to ignore a relative value.
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "maestro" / STORE_FILE_NAME


class SqliteStateStore(SqliteReads):
    """The state store in the SQLite file `path` (created, with its directory, on first use).

    The constructor does no I/O; the database is opened, and migrated to `SCHEMA_VERSION`,
    by the first call that needs it. Safe to share between threads.
    """

    # --- writes ---------------------------------------------------------------------------

    def create_workflow(
        self,
        *,
        session: str,
        project: str,
        entry: str,
        config: str = "",
        args: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        user: str | None = None,
        host: str | None = None,
        metadata: Mapping[str, str] | None = None,
        created_at: float | None = None,
    ) -> WorkflowRecord:
        """See `StateStore.create_workflow`."""
        tags = {str(k): str(v) for k, v in (metadata or {}).items()}
        row = (
            session,
            project,
            entry,
            config,
            to_json(args),
            to_json(inputs),
            getpass.getuser() if user is None else user,
            os.uname().nodename if host is None else host,
            to_json(tags),
            now(created_at),
            WorkflowState.PENDING.value,
        )
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM workflows WHERE session = ?", (session,)).fetchone():
                raise StateConflictError(f"a session named {session!r} is already recorded")
            cur = conn.execute(
                "INSERT INTO workflows (session, project, entry, config, args, inputs, user, "
                "host, metadata, created_at, state) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )
            workflow_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO workflow_tags (workflow_id, key, value) VALUES (?,?,?)",
                [(workflow_id, k, v) for k, v in tags.items()],
            )
            return self._get_workflow(conn, workflow_id)

    def start_run(
        self,
        workflow_id: int,
        *,
        pid: int,
        pid_start_time: float | None,
        command: Sequence[str] = (),
        host: str | None = None,
        started_at: float | None = None,
    ) -> RunRecord:
        """See `StateStore.start_run`."""
        host = os.uname().nodename if host is None else host
        self._produced.clear()  # what an earlier run made may have been invalidated since
        with self._write() as conn:
            workflow = self._get_workflow(conn, workflow_id)
            active = conn.execute(
                "SELECT attempt, pid, host FROM runs WHERE workflow_id = ? AND state = 'running'",
                (workflow_id,),
            ).fetchone()
            if active is not None:
                raise StateConflictError(
                    f"session {workflow.session} is already running (run {active[0]}, pid "
                    f"{active[1]} on {active[2]}); stop it first, or let maestro find it "
                    "interrupted if that process is gone"
                )
            (last,) = conn.execute(
                "SELECT coalesce(max(attempt), 0) FROM runs WHERE workflow_id = ?", (workflow_id,)
            ).fetchone()
            cur = conn.execute(
                "INSERT INTO runs (workflow_id, attempt, state, started_at, pid, pid_start_time, "
                "host, command) VALUES (?,?,?,?,?,?,?,?)",
                (
                    workflow_id,
                    last + 1,
                    RunState.RUNNING.value,
                    now(started_at),
                    pid,
                    pid_start_time,
                    host,
                    to_json(list(command), "[]"),
                ),
            )
            run_id = int(cur.lastrowid or 0)
            conn.execute(
                "UPDATE workflows SET state = ?, latest_run_id = ? WHERE id = ?",
                (WorkflowState.RUNNING.value, run_id, workflow_id),
            )
            return self._get_run(conn, run_id)

    def finish_run(
        self, run_id: int, state: RunState, *, ended_at: float | None = None
    ) -> RunRecord:
        """See `StateStore.finish_run`."""
        with self._write() as conn:
            run = self._get_run(conn, run_id)
            return self._end_run(conn, run, state, now(ended_at), Reason.RUN_ENDED)

    def record_waiting(self, run_id: int, waiting: int) -> None:
        """See `StateStore.record_waiting`."""
        with self._write() as conn:
            conn.execute(
                "UPDATE runs SET waiting = ? WHERE id = ? AND state = ?",
                (max(0, waiting), run_id, RunState.RUNNING.value),
            )

    def start_step(self, run_id: int, **fields: Any) -> StepRecord:
        """See `StateStore.start_step` (the fields are `add_step`'s, bar `success`); `reason`
        says why the step runs (resume explains it)."""
        return self.step(self.add_step(run_id, **fields))

    def add_step(self, run_id: int, **fields: Any) -> int:
        """`start_step` returning only the new step's id (the fields are `NewStep`'s): the run
        history records a step per process and needs nothing else back, and reading the record
        back doubled the cost."""
        return self.add_steps(run_id, [NewStep(**fields)])[0]

    def add_steps(self, run_id: int, steps: Sequence[NewStep]) -> list[int]:
        """Record new steps of one run, with their inputs, and their ids in the same order.

        A step given a `success` (started in `state` RUNNING) is recorded as having succeeded,
        with its outputs: the run history's writer gets both at once for a step shorter than
        its commit interval. All or nothing: a step already recorded in the run
        (`StateConflictError`) or an impossible state records none of them. The writer records
        a commit interval's steps with one call, one statement per table rather than five per
        step.
        """
        for step in steps:
            if step.state is StepState.SKIPPED:
                raise StateTransitionError("record skipped steps with record_skipped")
            check_transition(None, step.state, step=step.process)
            if step.success is not None:
                check_transition(step.state, StepState.SUCCEEDED, step=step.process)
        if not steps:
            return []
        with self._write() as conn:
            run = self._running_run(conn, run_id, steps[0].process)
            return self._insert_new_steps(conn, run, steps)

    def record_skipped(
        self, run_id: int, *, reused: int, group: str | None = None, reason: str = Reason.UP_TO_DATE
    ) -> StepRecord:
        """See `StateStore.record_skipped`."""
        at = now(None)
        with self._write() as conn:
            source = self._get_step(conn, reused)
            run = self._running_run(conn, run_id, source.process)
            if source.state is not StepState.SUCCEEDED or source.workflow_id != run.workflow_id:
                raise StateConflictError(
                    f"step {source.process} (id {reused}) is {source.state.value} in run "
                    f"{source.attempt}; only a succeeded step of the same session can be reused"
                )
            step_id = self._insert_step(
                conn,
                run,
                process=source.process,
                state=StepState.SKIPPED,
                reason=str(reason),
                cache_key=source.cache_key,
                executor=source.executor,
                workdir=None if source.workdir is None else str(source.workdir),
                grp=source.group if group is None else group,
                reused_from=source.id,
                started_at=at,
                ended_at=at,
            )
            return self._get_step(conn, step_id)

    def record_step_state(
        self,
        step_id: int,
        state: StepState,
        *,
        reason: str = "",
        job_id: str | None = None,
        exit_code: int | None = None,
        error: str = "",
        started_at: float | None = None,
        ended_at: float | None = None,
        max_rss_kib: int | None = None,
        cpu_seconds: float | None = None,
    ) -> StepRecord:
        """See `StateStore.record_step_state`."""
        if state is StepState.SUCCEEDED:
            raise StateTransitionError(
                "a step becomes succeeded only through succeed_step, with its outputs"
            )
        if state is StepState.INVALIDATED:
            self._produced.clear()  # its outputs are no longer anyone's source
        with self._write() as conn:
            step = self._get_step(conn, step_id)
            # Re-recording the current active state updates details (a job id) without a move.
            moving = step.state is not state or state.is_terminal
            if moving:
                check_transition(step.state, state, step=f"{step.process} (run {step.attempt})")
            updates: dict[str, Any] = {"state": state.value, "error": error}
            if reason or state in {StepState.INVALIDATED, StepState.PENDING}:
                # An empty reason keeps why the step ran (recorded at its start) for --why.
                updates["reason"] = str(reason)
            if state is StepState.RUNNING and (moving or started_at is not None):
                updates["started_at"] = now(started_at)
            if state.is_terminal:
                updates["ended_at"] = now(ended_at)
            optional = {
                "job_id": job_id,
                "exit_code": exit_code,
                "max_rss_kib": max_rss_kib,
                "cpu_seconds": cpu_seconds,
            }
            updates.update({k: v for k, v in optional.items() if v is not None})
            self._update_step(conn, step_id, updates)
            return self._get_step(conn, step_id)

    def succeed_step(
        self,
        step_id: int,
        *,
        outputs: Sequence[Fingerprint],
        inputs: Sequence[Fingerprint] = (),
        exit_code: int | None = 0,
        ended_at: float | None = None,
        max_rss_kib: int | None = None,
        cpu_seconds: float | None = None,
    ) -> StepRecord:
        """See `StateStore.succeed_step`."""
        success = StepSuccess(outputs, exit_code, ended_at, max_rss_kib, cpu_seconds)
        self.record_success(step_id, success, inputs=inputs)
        return self.step(step_id)

    def record_success(
        self, step_id: int, success: StepSuccess, *, inputs: Sequence[Fingerprint] = ()
    ) -> None:
        """`succeed_step` without reading the record back (see `add_step`)."""
        with self._write() as conn:
            step = self._get_step(conn, step_id)
            check_transition(
                step.state, StepState.SUCCEEDED, step=f"{step.process} (run {step.attempt})"
            )
            workdir = None if step.workdir is None else str(step.workdir)
            self._insert_artefacts(
                conn, step.workflow_id, step_id, inputs, success.outputs, workdir
            )
            # `reason` keeps why the step ran (resume records it at start, --why shows it).
            updates = {"state": StepState.SUCCEEDED.value, **_success_columns(success)}
            self._update_step(conn, step_id, updates)

    def fail_step(
        self,
        step_id: int,
        *,
        reason: str = "",
        exit_code: int | None = None,
        error: str = "",
        ended_at: float | None = None,
        max_rss_kib: int | None = None,
        cpu_seconds: float | None = None,
    ) -> StepRecord:
        """See `StateStore.fail_step`."""
        return self.record_step_state(
            step_id,
            StepState.FAILED,
            reason=reason,
            exit_code=exit_code,
            error=error,
            ended_at=ended_at,
            max_rss_kib=max_rss_kib,
            cpu_seconds=cpu_seconds,
        )

    def abort_step(
        self, step_id: int, *, reason: str = Reason.CANCELLED, error: str = ""
    ) -> StepRecord:
        """See `StateStore.abort_step`."""
        return self.record_step_state(step_id, StepState.ABORTED, reason=reason, error=error)

    def mark_interrupted_runs(self, is_alive: Callable[[RunRecord], bool]) -> list[RunRecord]:
        """See `StateStore.mark_interrupted_runs`."""
        with self._read() as conn:
            running = [
                run_of(row)
                for row in conn.execute(
                    f"SELECT {RUN_COLS} FROM runs r WHERE r.state = 'running' ORDER BY r.id"
                )
            ]
        dead = [run for run in running if not is_alive(run)]
        marked: list[RunRecord] = []
        for run in dead:
            with self._write() as conn:
                current = self._get_run(conn, run.id)
                if current.state is RunState.RUNNING:  # it may have ended meanwhile
                    marked.append(
                        self._end_run(
                            conn, current, RunState.INTERRUPTED, now(None), Reason.INTERRUPTED
                        )
                    )
        return marked

    def move_workdir(self, workflow_id: int, old: Path, new: Path) -> int:
        """Steps of the instance recorded in `old` are now found in `new`; returns how many.

        Used when a rerun moves an earlier attempt's working directory aside, so its record
        still points at its own logs.
        """
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE steps SET workdir = ? WHERE workflow_id = ? AND workdir = ?",
                (str(new), workflow_id, str(old)),
            )
            return cursor.rowcount

    def record_action(
        self,
        *,
        what: str,
        who: str | None = None,
        workflow_id: int | None = None,
        details: Mapping[str, Any] | None = None,
        at: float | None = None,
    ) -> ActionRecord:
        """See `StateStore.record_action`."""
        who = getpass.getuser() if who is None else who
        when = now(at)
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO actions (workflow_id, at, who, what, details) VALUES (?,?,?,?,?)",
                (workflow_id, when, who, what, to_json(details)),
            )
            action_id = int(cur.lastrowid or 0)
        return ActionRecord(
            id=action_id,
            workflow_id=workflow_id,
            at=when,
            who=who,
            what=what,
            details=details or {},
        )


def _success_columns(success: StepSuccess) -> dict[str, Any]:
    """The step columns a success sets (its outputs go to the artefacts table)."""
    return {
        "exit_code": success.exit_code,
        "ended_at": now(success.ended_at),
        "max_rss_kib": success.max_rss_kib,
        "cpu_seconds": success.cpu_seconds,
    }
