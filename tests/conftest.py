"""Fixtures for the whole suite: an isolated environment per test, sessions, project trees."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from helpers import build_file_tree

import libmaestro.session
from libmaestro.session import Session


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Give every test its own HOME, XDG dirs and working directory, and no MAESTRO_* settings.

    Yields the fresh working directory `tmp_path/"work"`, which is also the current directory.
    """
    home = tmp_path / "home"
    for name, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_STATE_HOME", ".local/state"),
    ):
        (home / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(home / sub))
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith("MAESTRO_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("MAESTRO_PLAIN", "1")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    try:
        yield work
    finally:
        libmaestro.session.activate(None)


@pytest.fixture
def session(isolated_env: Path) -> Session:
    """A fresh session in the test's working directory, active for the test."""
    created = Session.create(base=isolated_env)
    libmaestro.session.activate(created)
    return created


@pytest.fixture
def file_tree(tmp_path: Path) -> Callable[..., Path]:
    """Write a small project tree: `file_tree({"a/b.txt": "text"}, root=...)` (default tmp_path)."""

    def write(files: Mapping[str, str | bytes], root: Path | None = None) -> Path:
        return build_file_tree(root or tmp_path, files)

    return write
