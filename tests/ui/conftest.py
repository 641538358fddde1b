"""Fixtures for the UI: a real store filled through its API (see `ui_helpers`), the app on it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning
from ui_helpers import BASE, Recorded, populate

from libmaestro.state import SqliteStateStore
from libmaestro.ui import UiSettings, create_app

with warnings.catch_warnings():
    # Starlette 1.x prefers the `httpx2` package for its TestClient and warns once, at import,
    # when it finds only `httpx` (which the dev group installs): the client works the same.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[Recorded]:
    with SqliteStateStore(tmp_path / "store" / "state.db") as store:
        yield populate(store, tmp_path / "project")


@pytest.fixture
def make_client(recorded: Recorded) -> Iterator[Callable[..., TestClient]]:
    """`make_client(**settings)`: a TestClient over the app on `recorded`'s store."""
    clients: list[TestClient] = []

    def make(**settings: object) -> TestClient:
        app = create_app(UiSettings(store_path=recorded.store.path, **settings))  # type: ignore[arg-type]  # UiSettings fields
        client = TestClient(app, base_url=BASE)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(csrf_secret="test-csrf")
