"""Fixtures for the state store tests: a real SQLite store in the test's temporary directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from libmaestro.state import Fingerprint, SqliteStateStore


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Where the test's store lives (not created yet)."""
    return tmp_path / "store" / "state.db"


@pytest.fixture
def store(store_path: Path) -> Iterator[SqliteStateStore]:
    """A fresh store, closed after the test."""
    with SqliteStateStore(store_path) as opened:
        yield opened


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[[str, str], Fingerprint]:
    """Write `tmp_path/files/<name>` with `text` and return its fingerprint (content hashed)."""

    def write(name: str, text: str = "data\n") -> Fingerprint:
        path = tmp_path / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return Fingerprint.of_file(path, content_hash=True)

    return write
