"""Records a run's process graph into `maestro_work/<session>/graph.json` as it runs.

A node per process (its fan-out group from its name), its state as it changes, and an edge
wherever a process consumes a file inside another process's working directory: the data flow
as it really happened, which `maestro dag` draws.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from libmaestro.graph import NodeState, ProcessGraph, save_graph
from libmaestro.layout import GRAPH_FILE
from libmaestro.process import fanout_group
from libmaestro.session import EventKind, ProcessEvent, Session

log = logging.getLogger(__name__)

# At most one write per interval while running (10,000 processes must not mean 10,000 writes);
# `close()` writes the final state.
SAVE_INTERVAL = 1.0

_STATES = {
    EventKind.STARTED: NodeState.RUNNING,
    EventKind.SUCCEEDED: NodeState.SUCCEEDED,
    EventKind.FAILED: NodeState.FAILED,
    EventKind.INTERRUPTED: NodeState.ABORTED,
    EventKind.SKIPPED: NodeState.SKIPPED,
}


class GraphRecorder:
    """A session listener; `close()` when the session ends."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.graph = ProcessGraph()
        self.path = session.directory / GRAPH_FILE
        self._lock = threading.Lock()
        self._last_save = 0.0

    def _producer(self, path: Path) -> str | None:
        try:
            relative = path.relative_to(self.session.directory)
        except ValueError:
            return None
        return relative.parts[0] if len(relative.parts) > 1 else None

    def __call__(self, event: ProcessEvent) -> None:
        graph = self.graph
        if event.process not in graph:
            graph.add_node(event.process, group=fanout_group(event.process))
        graph.set_state(event.process, _STATES[event.kind])
        for path in event.inputs:
            producer = self._producer(path)
            if producer is not None and producer in graph and producer != event.process:
                graph.add_edge(producer, event.process)
        now = time.monotonic()
        if now - self._last_save >= SAVE_INTERVAL:
            self._save(now)

    def _save(self, now: float) -> None:
        with self._lock:
            self._last_save = now
            try:
                save_graph(self.graph, self.path)
            except OSError as exc:  # the picture must never stop the workflow
                log.warning("cannot record the run's graph in %s: %s", self.path, exc)

    def close(self) -> None:
        self._save(time.monotonic())
