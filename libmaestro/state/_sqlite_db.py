"""The connection, transactions and low-level row helpers of `SqliteStateStore`.

See `libmaestro.state.sqlite` for why one connection behind a lock, and why ``BEGIN IMMEDIATE``.
"""

# ruff: noqa: S608  # SQL text joins only our own column lists and names; values are bound

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, NamedTuple, Self

from libmaestro.state import _sqlite_schema
from libmaestro.state._sqlite_rows import (
    ACTIVE_STATES,
    RUN_COLS,
    STEP_COLS,
    WF_COLS,
    now,
    run_of,
    step_of,
    workflow_of,
)
from libmaestro.state.errors import (
    StateBusyError,
    StateConflictError,
    StateError,
    StateNotFoundError,
)
from libmaestro.state.records import (
    Fingerprint,
    NewStep,
    RunRecord,
    StepRecord,
    WorkflowRecord,
)
from libmaestro.state.states import RunState, StepState, WorkflowState, check_run_transition

BUSY_TIMEOUT_SECONDS = 10.0


_PATHS_PER_QUERY = 500  # bound parameters per query, well under SQLite's limit (32,766)
_INSERT_STEP = (
    "INSERT INTO steps (id, workflow_id, run_id, attempt, process, state, reason, cache_key,"
    " executor, workdir, job_id, grp, started_at, exit_code, ended_at, max_rss_kib, cpu_seconds)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_ARTEFACT = (
    "INSERT INTO artefacts (id, workflow_id, step_id, role, path, size, mtime_ns, sha256,"
    " source_id) VALUES (?,?,?,?,?,?,?,?,?)"
)


class RunKey(NamedTuple):
    """What a step record copies from its run."""

    id: int
    workflow_id: int
    attempt: int


class _ArtefactRows:
    """The artefact and lineage rows of the steps being recorded, with the ids they will get."""

    __slots__ = ("lineage", "made_here", "next_id", "rows", "workflow_id")

    def __init__(self, workflow_id: int, next_id: int) -> None:
        self.workflow_id = workflow_id
        self.next_id = next_id
        self.rows: list[tuple[Any, ...]] = []
        self.lineage: list[tuple[int, int]] = []
        self.made_here: dict[str, int] = {}  # path -> id of the outputs added so far

    def add(self, step_id: int, role: str, path: str, item: Fingerprint, source: int | None) -> int:
        """Add one artefact row; returns its id."""
        artefact_id = self.next_id
        self.rows.append(
            (artefact_id, self.workflow_id, step_id, role, path, item.size, item.mtime_ns,
             item.sha256, source)
        )  # fmt: skip
        self.next_id += 1
        return artefact_id


class SqliteDatabase:
    """One SQLite file, opened on first use, with short transactions; no I/O in the constructor."""

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._batch: sqlite3.Connection | None = None  # the open transaction of `batch()`
        # Runs found running in the open batch: no other process can end one while the batch
        # holds the write lock, so each is read once per batch instead of once per step.
        self._running_in_batch: dict[int, RunKey] = {}
        # (workflow id, path) -> artefact id of the outputs of succeeded steps this object wrote,
        # once committed: an input made earlier in the same run finds its producer here rather
        # than by a query (`_producers`). Outputs written in the open transaction wait in
        # `_produced_pending` until it commits; a rollback drops them.
        self._produced: dict[tuple[int, str], int] = {}
        self._produced_pending: dict[tuple[int, str], int] = {}
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the store reopens on next use)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # --- connection and transactions -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        # After fork the parent's connection must not be used, nor closed, by the child.
        self._conn = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000):d}")
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            _sqlite_schema.migrate(conn, self.path)
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new database to WAL needs an exclusive lock, and SQLite does not wait for
        # it through busy_timeout: two runs creating the store at once would see "locked".
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _error(self, exc: sqlite3.Error) -> StateError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StateBusyError(
                f"the state store {self.path} stayed locked by another process for more than "
                f"{self.busy_timeout:g} s; try again, or check for a stuck maestro process"
            )
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
            return StateError(f"{self.path} is not a maestro state store ({text})")
        return StateError(f"the state store {self.path} failed: {text}")

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Run several writes of this thread in one transaction (one commit, not one each).

        Each write inside keeps its own all-or-nothing behaviour through a savepoint, so one
        refused write (a conflict) does not undo the others. Other threads wait for the batch.
        """
        with self._lock:
            if self._batch is not None:  # already batching: just join it
                yield
                return
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            self._batch = conn
            self._running_in_batch.clear()
            try:
                yield
            except BaseException:
                conn.rollback()
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    conn.rollback()
                    raise self._error(exc) from exc
                self._produced.update(self._produced_pending)
            finally:
                self._batch = None
                self._running_in_batch.clear()
                self._produced_pending.clear()

    @contextlib.contextmanager
    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        conn.execute("SAVEPOINT maestro_op")
        try:
            yield conn
        except BaseException as exc:
            conn.execute("ROLLBACK TO maestro_op")
            conn.execute("RELEASE maestro_op")
            self._produced_pending.clear()  # some may be gone now: the query finds the rest
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            raise
        conn.execute("RELEASE maestro_op")

    @contextlib.contextmanager
    def _transaction(self, mode: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._batch is not None:
                with self._savepoint(self._batch) as conn:
                    yield conn
                return
            try:
                conn = self._connect()
                conn.execute(f"BEGIN {mode}")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            try:
                try:
                    yield conn
                except BaseException as exc:
                    conn.rollback()
                    if isinstance(exc, sqlite3.Error):
                        raise self._error(exc) from exc
                    raise
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    conn.rollback()
                    raise self._error(exc) from exc
                self._produced.update(self._produced_pending)
            finally:
                self._produced_pending.clear()  # committed above, or rolled back

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One short write transaction, taking the write lock at once."""
        return self._transaction("IMMEDIATE")

    def _read(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One read transaction: a consistent snapshot across its queries."""
        return self._transaction("DEFERRED")

    # --- lookups used inside transactions ---------------------------------------------------

    def _one(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any], what: str) -> Any:
        row = conn.execute(sql, params).fetchone()
        if row is None:
            raise StateNotFoundError(f"no {what} in the state store {self.path}")
        return row

    def _get_run(self, conn: sqlite3.Connection, run_id: int) -> RunRecord:
        sql = f"SELECT {RUN_COLS} FROM runs r WHERE r.id = ?"
        return run_of(self._one(conn, sql, (run_id,), f"run with id {run_id}"))

    def _get_step(self, conn: sqlite3.Connection, step_id: int) -> StepRecord:
        sql = f"SELECT {STEP_COLS} FROM steps s WHERE s.id = ?"
        return step_of(self._one(conn, sql, (step_id,), f"step with id {step_id}"))

    def _get_workflow(self, conn: sqlite3.Connection, workflow_id: int) -> WorkflowRecord:
        sql = f"SELECT {WF_COLS} FROM workflows w WHERE w.id = ?"
        return workflow_of(self._one(conn, sql, (workflow_id,), f"workflow with id {workflow_id}"))

    def _running_run(self, conn: sqlite3.Connection, run_id: int, process: str) -> RunKey:
        """The run a step of `process` is being recorded in, which must still be running.

        Only the columns a step record copies are read: this is on every step's path.
        """
        batched = conn is self._batch
        if batched and (known := self._running_in_batch.get(run_id)) is not None:
            return known
        state, workflow_id, attempt = self._one(
            conn,
            "SELECT state, workflow_id, attempt FROM runs WHERE id = ?",
            (run_id,),
            f"run with id {run_id}",
        )
        if state != RunState.RUNNING.value:
            raise StateConflictError(
                f"cannot record step {process}: run {attempt} has ended ({state}); start a new run"
            )
        key = RunKey(run_id, workflow_id, attempt)
        if batched:
            self._running_in_batch[run_id] = key
        return key

    def _end_run(
        self, conn: sqlite3.Connection, run: RunRecord, state: RunState, at: float, reason: str
    ) -> RunRecord:
        check_run_transition(run.state, state, run=str(run.attempt))
        self._running_in_batch.pop(run.id, None)
        conn.execute(
            "UPDATE runs SET state = ?, ended_at = ?, waiting = 0 WHERE id = ?",
            (state.value, at, run.id),
        )
        conn.execute(
            "UPDATE steps SET state = ?, reason = ?, ended_at = ? WHERE run_id = ? "
            "AND state IN (?, ?)",
            (StepState.ABORTED.value, reason, at, run.id, *ACTIVE_STATES),
        )
        conn.execute(
            "UPDATE workflows SET state = ? WHERE id = ? AND latest_run_id = ?",
            (WorkflowState.of_run(state).value, run.workflow_id, run.id),
        )
        return self._get_run(conn, run.id)

    def _insert_step(
        self,
        conn: sqlite3.Connection,
        run: RunKey,
        *,
        process: str,
        state: StepState,
        **cols: Any,
    ) -> int:
        names = ["workflow_id", "run_id", "attempt", "process", "state", *cols]
        values = [run.workflow_id, run.id, run.attempt, process, state.value, *cols.values()]
        sql = f"INSERT INTO steps ({', '.join(names)}) VALUES ({','.join('?' * len(names))})"
        try:
            return int(conn.execute(sql, values).lastrowid or 0)
        except sqlite3.IntegrityError:  # UNIQUE (run_id, process)
            if conn.execute(
                "SELECT 1 FROM steps WHERE run_id = ? AND process = ?", (run.id, process)
            ).fetchone():
                raise StateConflictError(
                    f"step {process} is already recorded in run {run.attempt}"
                ) from None
            raise

    @staticmethod
    def _update_step(conn: sqlite3.Connection, step_id: int, updates: Mapping[str, Any]) -> None:
        assignments = ", ".join(f"{name} = ?" for name in updates)  # our own column names
        conn.execute(f"UPDATE steps SET {assignments} WHERE id = ?", (*updates.values(), step_id))

    def _insert_new_steps(
        self, conn: sqlite3.Connection, run: RunKey, steps: Sequence[NewStep]
    ) -> list[int]:
        """Insert `steps` of `run` with their inputs and outputs (see `add_steps`): one
        statement per table, with ids chosen here (the transaction holds the write lock, so
        the next free ids stay free) so that the rows that refer to each other can be built
        before any is inserted."""
        first_step = _next_id(conn, "steps")
        artefacts = _ArtefactRows(run.workflow_id, _next_id(conn, "artefacts"))
        step_rows: list[tuple[Any, ...]] = []
        for step_id, step in enumerate(steps, start=first_step):
            workdir = None if step.workdir is None else str(step.workdir)
            began = now(step.started_at) if step.state is StepState.RUNNING else step.started_at
            state = step.state
            ended: tuple[Any, ...] = (None, None, None, None)  # exit_code ... cpu_seconds
            if (success := step.success) is not None:
                state = StepState.SUCCEEDED
                ended = (
                    success.exit_code,
                    now(success.ended_at),
                    success.max_rss_kib,
                    success.cpu_seconds,
                )
            step_rows.append(
                (step_id, run.workflow_id, run.id, run.attempt, step.process, state.value,
                 step.reason, step.cache_key, step.executor, workdir, step.job_id, step.group,
                 began, *ended)
            )  # fmt: skip
            outputs = success.outputs if success is not None else ()
            self._add_artefact_rows(conn, artefacts, step_id, step.inputs, outputs, workdir)
        try:
            conn.executemany(_INSERT_STEP, step_rows)
        except sqlite3.IntegrityError:  # UNIQUE (run_id, process)
            raise _already_recorded(conn, run, [step.process for step in steps]) from None
        self._insert_artefact_rows(conn, artefacts)
        return list(range(first_step, first_step + len(steps)))

    def _insert_artefacts(
        self,
        conn: sqlite3.Connection,
        workflow_id: int,
        step_id: int,
        inputs: Sequence[Fingerprint],
        outputs: Sequence[Fingerprint],
        workdir: str | None,
    ) -> None:
        """Record a step's inputs (each with the output artefact it came from, if any) and its
        outputs (only a success has outputs to record)."""
        artefacts = _ArtefactRows(workflow_id, _next_id(conn, "artefacts"))
        self._add_artefact_rows(conn, artefacts, step_id, inputs, outputs, workdir)
        self._insert_artefact_rows(conn, artefacts)

    def _add_artefact_rows(
        self,
        conn: sqlite3.Connection,
        artefacts: _ArtefactRows,
        step_id: int,
        inputs: Sequence[Fingerprint],
        outputs: Sequence[Fingerprint],
        workdir: str | None,
    ) -> None:
        """Add one step's input and output rows, and its lineage, to `artefacts`.

        `workdir` is the step's working directory: the instance's outputs lie in the working
        directories beside it, which bounds where an input's producer may be (`_producers`).
        """
        workflow_id = artefacts.workflow_id
        if inputs:
            paths = [str(item.path) for item in inputs]
            root = None if workdir is None else workdir.rpartition(os.sep)[0]
            producers = self._producers(
                conn, workflow_id, step_id, paths, root, artefacts.made_here
            )
            for path, item in zip(paths, inputs, strict=True):
                artefacts.add(step_id, "input", path, item, producers.get(path))
            artefacts.lineage.extend(
                (step_id, source) for source in dict.fromkeys(producers.values())
            )
        for item in outputs:
            path = str(item.path)
            artefacts.made_here[path] = artefacts.add(step_id, "output", path, item, None)

    def _insert_artefact_rows(self, conn: sqlite3.Connection, artefacts: _ArtefactRows) -> None:
        if artefacts.rows:
            conn.executemany(_INSERT_ARTEFACT, artefacts.rows)
        if artefacts.lineage:
            conn.executemany(
                "INSERT OR IGNORE INTO lineage (step_id, artefact_id) VALUES (?, ?)",
                artefacts.lineage,
            )
        workflow_id = artefacts.workflow_id
        self._produced_pending.update(
            ((workflow_id, path), id_) for path, id_ in artefacts.made_here.items()
        )

    def _producers(
        self,
        conn: sqlite3.Connection,
        workflow_id: int,
        step_id: int,
        paths: Sequence[str],
        root: str | None,
        made_here: Mapping[str, int] | None = None,
    ) -> dict[str, int]:
        """Path -> the output artefact of the newest succeeded producer of it in the instance.

        A path inside a step's output directory (`parts/7.txt` of a scatter step's output
        `parts`) comes from that directory: the nearest recorded ancestor is its producer.
        Ancestors are looked up only below `root`'s working directories (all, if it is None).
        One query per `_PATHS_PER_QUERY` candidates: a gather step with 1,000 inputs made
        1,000 queries, on its path to the end of the run.

        An output this object recorded is the newest of its path (the step that made it ran in
        this run, in a fresh working directory): such paths need no query. Nor do the outputs
        of the steps inserted before it by the same call, `made_here` (path -> artefact id),
        which are not in the table yet.
        """
        # Each path with the directories that may hold it, nearest first.
        chains = {path: [path, *_output_directories(path, root)] for path in paths}
        found: dict[str, int] = {}
        if self._produced or made_here:
            here = made_here or {}
            produced = self._produced
            found = _nearest(
                chains,
                lambda candidate: here.get(candidate, produced.get((workflow_id, candidate))),
            )
            chains = {path: chain for path, chain in chains.items() if path not in found}
            if not chains:
                return found
        unique = list(dict.fromkeys(c for chain in chains.values() for c in chain))
        outputs: dict[str, int] = {}
        for start in range(0, len(unique), _PATHS_PER_QUERY):
            chunk = unique[start : start + _PATHS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                "SELECT a.path, MAX(a.id) FROM artefacts a JOIN steps s ON s.id = a.step_id "
                f"WHERE a.workflow_id = ? AND a.path IN ({marks}) AND a.role = 'output' "
                "AND s.state = 'succeeded' AND a.step_id != ? GROUP BY a.path",
                (workflow_id, *chunk, step_id),
            )
            outputs.update((path, artefact_id) for path, artefact_id in rows)
        if outputs:
            found.update(_nearest(chains, outputs.get))
        return found


def _next_id(conn: sqlite3.Connection, table: str) -> int:
    """The id SQLite would give the next row of `table` (one of ours) without one."""
    return int(conn.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}").fetchone()[0])


def _already_recorded(conn: sqlite3.Connection, run: RunKey, processes: list[str]) -> Exception:
    """The error for inserting steps of `processes` when one of them is already in `run`."""
    twice = [process for process, count in Counter(processes).items() if count > 1]
    marks = ",".join("?" * len(processes))
    rows = conn.execute(
        f"SELECT process FROM steps WHERE run_id = ? AND process IN ({marks})",
        (run.id, *processes),
    ).fetchall()
    clash = rows[0][0] if rows else twice[0] if twice else None
    if clash is None:  # another constraint: let the caller's handler describe it
        return StateError("a step could not be recorded: a database constraint refused it")
    return StateConflictError(f"step {clash} is already recorded in run {run.attempt}")


def _nearest(
    chains: Mapping[str, Sequence[str]], producer_of: Callable[[str], int | None]
) -> dict[str, int]:
    """Path -> the producer of the first of its candidates (nearest first) that has one."""
    found: dict[str, int] = {}
    for path, chain in chains.items():
        for candidate in chain:
            if (artefact_id := producer_of(candidate)) is not None:
                found[path] = artefact_id
                break
    return found


def _output_directories(path: str, root: str | None) -> list[str]:
    """The directories above `path` that may be a step's output directory, nearest first.

    Outputs are inside working directories (`<root>/<process>/...`): a directory above the
    working directory can never be one, nor the working directory itself. Without a `root`,
    every ancestor may be.
    """
    if root is None:
        return [str(parent) for parent in PurePath(path).parents]
    prefix = root if root.endswith(os.sep) else root + os.sep
    if not path.startswith(prefix):
        return []
    found = []
    workdir_end = path.find(os.sep, len(prefix))  # the separator after `<root>/<process>`
    end = path.rfind(os.sep)
    while end > workdir_end >= 0:
        found.append(path[:end])
        end = path.rfind(os.sep, 0, end)
    return found
