"""Records a run's process graph into `maestro_work/<session>/graph.json` as it runs.

A node per process (its fan-out group from its name), its state as it changes, and an edge
wherever a process consumes a file inside another process's working directory: the data flow
as it really happened, which `maestro dag` draws.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from libmaestro._fs import atomic_write_text
from libmaestro.graph import NodeState, ProcessGraph, graph_data, graph_text
from libmaestro.layout import GRAPH_FILE
from libmaestro.process import fanout_group
from libmaestro.remote.paths import RemotePath
from libmaestro.session import EventKind, ProcessEvent, Session

log = logging.getLogger(__name__)

# At most one write per interval while running (10,000 processes must not mean 10,000 writes),
# and never more than a small share of the run's time however large the graph grows: after a
# write that took t seconds, the next waits at least SAVE_COST_FACTOR * t. `close()` writes the
# final state.
SAVE_INTERVAL = 1.0
SAVE_COST_FACTOR = 50

_STATES = {
    EventKind.STARTED: NodeState.RUNNING,
    EventKind.SUCCEEDED: NodeState.SUCCEEDED,
    EventKind.FAILED: NodeState.FAILED,
    EventKind.INTERRUPTED: NodeState.ABORTED,
    EventKind.SKIPPED: NodeState.SKIPPED,
}


class GraphRecorder:
    """A session listener; `close()` when the session ends.

    Events only update two dicts (a node's latest state, the edges seen): every process sends
    two events from the thread that waits for it, so this is on each process's path. The
    `ProcessGraph` is built when it is written.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.path = session.directory / GRAPH_FILE
        self._states: dict[str, NodeState] = {}  # in the order processes first appeared
        self._edges: dict[tuple[str, str], None] = {}  # an ordered set
        self._prefix = f"{session.directory}{os.sep}"
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._next_save = 0.0

    def _producer(self, path: os.PathLike[str] | RemotePath) -> str | None:
        """The process whose working directory holds `path`, if it is in this session."""
        if self.session.fetched_from and isinstance(path, Path):
            path = self.session.fetched_from.get(path, path)  # a copy stands for the original
        if isinstance(path, RemotePath):
            return _remote_producer(path, self.session.name)
        text = os.fspath(path)
        if not text.startswith(self._prefix):
            return None
        name, sep, _ = text[len(self._prefix) :].partition(os.sep)
        return name if sep else None

    def __call__(self, event: ProcessEvent) -> None:
        process = event.process
        with self._lock:
            self._states[process] = _STATES[event.kind]
            for path in event.inputs:
                producer = self._producer(path)
                if producer is not None and producer in self._states and producer != process:
                    self._edges[(producer, process)] = None
        if time.monotonic() >= self._next_save and self._save_lock.acquire(blocking=False):
            try:  # one thread saves; the others go on with their processes
                self._save()
            finally:
                self._save_lock.release()

    def graph(self) -> ProcessGraph:
        """The graph recorded so far."""
        return ProcessGraph.from_dict(self._data())

    def _data(self) -> dict[str, Any]:
        with self._lock:
            states = list(self._states.items())
            edges = list(self._edges)
        nodes = ((name, name, state, fanout_group(name)) for name, state in states)
        return graph_data(nodes, edges)

    def _save(self) -> None:
        started = time.monotonic()
        try:
            atomic_write_text(self.path, graph_text(self._data()))
        except OSError as exc:  # the picture must never stop the workflow
            log.warning("cannot record the run's graph in %s: %s", self.path, exc)
        cost = time.monotonic() - started
        self._next_save = started + max(SAVE_INTERVAL, SAVE_COST_FACTOR * cost)

    def close(self) -> None:
        with self._save_lock:
            self._save()


def _remote_producer(path: RemotePath, session: str) -> str | None:
    """The process whose working directory on its host holds `path`, if it is in `session`:
    a session's directories there are `<remote_workdir>/<session>/<process>/`."""
    parts = path.path.parts
    for at in range(len(parts) - 2, 0, -1):
        if parts[at - 1] == session:
            return parts[at]
    return None
