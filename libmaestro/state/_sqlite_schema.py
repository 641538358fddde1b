"""The SQLite schema of the state store and its migrations (private to `state/sqlite.py`).

`PRAGMA user_version` holds the number of migrations applied. Migrations run in order, all in
one ``BEGIN IMMEDIATE`` transaction, so two processes opening a new database at once cannot
both apply them, and a failed upgrade leaves the old schema intact. Never edit a released
migration: append a new one and a changelog line.

Changelog:
    1  workflows (+ workflow_tags for search), runs, steps, artefacts, lineage, actions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from libmaestro._version import __version__
from libmaestro.state.base import SCHEMA_VERSION
from libmaestro.state.errors import StateVersionError

_V1 = """
CREATE TABLE workflows (
    id            INTEGER PRIMARY KEY,
    session       TEXT NOT NULL UNIQUE,
    project       TEXT NOT NULL,
    entry         TEXT NOT NULL,
    config        TEXT NOT NULL,
    args          TEXT NOT NULL,                -- JSON object
    inputs        TEXT NOT NULL,                -- JSON object
    user          TEXT NOT NULL,
    host          TEXT NOT NULL,
    metadata      TEXT NOT NULL,                -- JSON object; copied into workflow_tags
    created_at    REAL NOT NULL,
    state         TEXT NOT NULL,                -- derived: the latest run's state, or 'pending'
    latest_run_id INTEGER REFERENCES runs(id)
);
-- Listing newest first (with or without a state or project filter) walks one of these.
CREATE INDEX workflows_by_created ON workflows(created_at, id);
CREATE INDEX workflows_by_state ON workflows(state, created_at);
CREATE INDEX workflows_by_project ON workflows(project, created_at);

CREATE TABLE workflow_tags (
    workflow_id INTEGER NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (workflow_id, key)
) WITHOUT ROWID;

CREATE TABLE runs (
    id             INTEGER PRIMARY KEY,
    workflow_id    INTEGER NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    attempt        INTEGER NOT NULL,
    state          TEXT NOT NULL,
    started_at     REAL NOT NULL,
    ended_at       REAL,
    pid            INTEGER NOT NULL,
    pid_start_time REAL,
    host           TEXT NOT NULL,
    command        TEXT NOT NULL,               -- JSON array (argv)
    UNIQUE (workflow_id, attempt)
);
CREATE INDEX runs_running ON runs(state) WHERE state = 'running';

CREATE TABLE steps (
    id           INTEGER PRIMARY KEY,
    workflow_id  INTEGER NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,              -- copied from runs: the view orders by it
    process      TEXT NOT NULL,
    state        TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    cache_key    TEXT NOT NULL DEFAULT '',
    executor     TEXT NOT NULL DEFAULT '',
    workdir      TEXT,
    job_id       TEXT NOT NULL DEFAULT '',
    exit_code    INTEGER,
    started_at   REAL,
    ended_at     REAL,
    max_rss_kib  INTEGER,
    cpu_seconds  REAL,
    error        TEXT NOT NULL DEFAULT '',
    grp          TEXT NOT NULL DEFAULT '',
    reused_from  INTEGER REFERENCES steps(id),
    UNIQUE (run_id, process)
);
CREATE INDEX steps_by_workflow ON steps(workflow_id, attempt);
CREATE INDEX steps_by_process ON steps(workflow_id, process, attempt);

CREATE TABLE artefacts (
    id          INTEGER PRIMARY KEY,
    workflow_id INTEGER NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    step_id     INTEGER NOT NULL REFERENCES steps(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('input', 'output')),
    path        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    sha256      TEXT,
    source_id   INTEGER REFERENCES artefacts(id)
);
CREATE INDEX artefacts_by_step ON artefacts(step_id);
CREATE INDEX artefacts_by_path ON artefacts(workflow_id, path);

CREATE TABLE lineage (
    step_id     INTEGER NOT NULL REFERENCES steps(id) ON DELETE CASCADE,
    artefact_id INTEGER NOT NULL REFERENCES artefacts(id) ON DELETE CASCADE,
    PRIMARY KEY (step_id, artefact_id)
) WITHOUT ROWID;
CREATE INDEX lineage_by_artefact ON lineage(artefact_id);

CREATE TABLE actions (
    id          INTEGER PRIMARY KEY,
    workflow_id INTEGER REFERENCES workflows(id) ON DELETE CASCADE,
    at          REAL NOT NULL,
    who         TEXT NOT NULL,
    what        TEXT NOT NULL,
    details     TEXT NOT NULL                   -- JSON object
);
CREATE INDEX actions_by_workflow ON actions(workflow_id, at);
"""


def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Run `script` statement by statement inside the caller's transaction.

    `executescript` would COMMIT first, breaking the one-transaction migration.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():  # pragma: no cover - a typo in the script above
        raise ValueError(f"incomplete SQL statement in a migration: {statement!r}")


def _v1(conn: sqlite3.Connection) -> None:
    _execute_script(conn, _V1)


def _v2(conn: sqlite3.Connection) -> None:
    # How many fan-out items, DAG nodes and processes a running run has yet to start: steps
    # are recorded only as they begin, so without it a dashboard cannot show the work ahead.
    conn.execute("ALTER TABLE runs ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0")


#: Migration n+1 upgrades a database at user_version n. Append only.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2)

if len(MIGRATIONS) != SCHEMA_VERSION:  # pragma: no cover - caught by any test run
    raise RuntimeError("SCHEMA_VERSION must equal the number of migrations")


def _version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def _check_not_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise StateVersionError(
            f"the state store {path} has schema version {version}, written by a newer maestro; "
            f"maestro {__version__} understands versions up to {SCHEMA_VERSION}. Upgrade maestro, "
            "or point --store or MAESTRO_HOME at another store"
        )


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the database on `conn` to `SCHEMA_VERSION`; return the version it had before.

    `conn` must be in autocommit mode (``isolation_level=None``).

    Raises:
        StateVersionError: the database is newer than this code.
    """
    before = _version(conn)
    _check_not_newer(before, path)
    if before == SCHEMA_VERSION:
        return before
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: another process may have migrated meanwhile.
        current = _version(conn)
        _check_not_newer(current, path)
        for migration in MIGRATIONS[current:]:
            migration(conn)
        # PRAGMA takes no parameters; the value is our own integer.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    except BaseException:
        conn.rollback()
        raise
    conn.execute("COMMIT")
    return before
