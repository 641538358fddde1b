"""The schema version (`PRAGMA user_version`) and the ordered migrations of the SQLite store."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from state_helpers import new_workflow, start_run

from libmaestro.state import (
    SCHEMA_VERSION,
    RunState,
    SqliteStateStore,
    StateError,
    StateVersionError,
    _sqlite_schema,
)

TABLES = {"workflows", "workflow_tags", "runs", "steps", "artefacts", "lineage", "actions"}


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as raw:
        return int(raw.execute("PRAGMA user_version").fetchone()[0])


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as raw:
        rows = raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row[0] for row in rows}


def test_new_store_gets_the_whole_schema(store: SqliteStateStore, store_path: Path) -> None:
    store.latest_workflow()
    assert _user_version(store_path) == SCHEMA_VERSION == len(_sqlite_schema.MIGRATIONS)
    assert _tables(store_path) == TABLES


def test_empty_database_file_is_migrated(store_path: Path) -> None:
    store_path.parent.mkdir(parents=True)
    sqlite3.connect(store_path).close()  # an empty file, user_version 0
    with SqliteStateStore(store_path) as store:
        assert new_workflow(store, "first").id == 1
    assert _user_version(store_path) == SCHEMA_VERSION


def test_newer_database_is_refused_untouched(store_path: Path) -> None:
    store_path.parent.mkdir(parents=True)
    future = SCHEMA_VERSION + 5
    with sqlite3.connect(store_path) as raw:
        raw.execute("CREATE TABLE from_the_future (x)")
        raw.execute(f"PRAGMA user_version = {future}")
    store = SqliteStateStore(store_path)
    with pytest.raises(StateVersionError) as caught:
        store.list_workflows()
    message = str(caught.value)
    assert f"schema version {future}" in message
    assert f"up to {SCHEMA_VERSION}" in message
    assert "Upgrade maestro" in message
    with pytest.raises(StateVersionError):  # every use, not just the first
        store.create_workflow(session="s", project="p", entry="e")
    assert _user_version(store_path) == future
    assert _tables(store_path) == {"from_the_future"}


def test_older_database_gets_only_the_missing_migrations(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store at version 1 should get migration 2 only, its data kept."""
    with SqliteStateStore(store_path) as store:
        new_workflow(store, "kept")
    applied: list[int] = []

    def v2(conn: sqlite3.Connection) -> None:
        applied.append(2)
        conn.execute("ALTER TABLE workflows ADD COLUMN archived INTEGER NOT NULL DEFAULT 0")

    monkeypatch.setattr(_sqlite_schema, "MIGRATIONS", (*_sqlite_schema.MIGRATIONS, v2))
    monkeypatch.setattr(_sqlite_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with SqliteStateStore(store_path) as store:
        assert store.get_workflow("kept").session == "kept"
        store.latest_workflow()  # already migrated: nothing more runs
    assert applied == [2]
    assert _user_version(store_path) == SCHEMA_VERSION + 1
    with sqlite3.connect(store_path) as raw:
        assert raw.execute("SELECT archived FROM workflows").fetchall() == [(0,)]


def test_failed_migration_leaves_the_old_schema(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SqliteStateStore(store_path) as store:
        new_workflow(store, "kept")

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE workflows ADD COLUMN half INTEGER")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(_sqlite_schema, "MIGRATIONS", (*_sqlite_schema.MIGRATIONS, broken))
    monkeypatch.setattr(_sqlite_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(RuntimeError, match="migration bug"):
        SqliteStateStore(store_path).latest_workflow()
    assert _user_version(store_path) == SCHEMA_VERSION
    with sqlite3.connect(store_path) as raw:
        columns = {row[1] for row in raw.execute("PRAGMA table_info(workflows)")}
    assert "half" not in columns


def test_a_file_that_is_not_a_database(store_path: Path) -> None:
    store_path.parent.mkdir(parents=True)
    store_path.write_bytes(b"this is not sqlite, just text " * 100)
    with pytest.raises(StateError, match="not a maestro state store"):
        SqliteStateStore(store_path).latest_workflow()


def test_a_version_1_store_gains_the_runs_waiting_count(store_path: Path) -> None:
    # A store written before runs recorded what they had yet to start: its runs read 0.
    store_path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(store_path, isolation_level=None)) as raw:
        raw.execute("BEGIN")
        _sqlite_schema.MIGRATIONS[0](raw)
        raw.execute("PRAGMA user_version = 1")
        raw.execute("COMMIT")
    with SqliteStateStore(store_path) as store:
        workflow = new_workflow(store, "old")
        run = start_run(store, workflow.id)
        assert store.run(run.id).waiting == 0
        store.record_waiting(run.id, 12)
        assert store.run(run.id).waiting == 12
        store.finish_run(run.id, RunState.SUCCEEDED)
        assert store.run(run.id).waiting == 0  # an ended run has nothing left to start
        store.record_waiting(run.id, 3)  # a late report of an ended run is ignored
        assert store.run(run.id).waiting == 0
    assert _user_version(store_path) == SCHEMA_VERSION == 2
