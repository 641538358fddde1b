"""The process graph of a workflow instance, coloured by its aggregated view, as inline SVG.

Edges come from the store's lineage (which step consumed which step's output, in every run) and
from the `graph.json` the latest run recorded next to its steps' working directories. Node states
always come from the store's aggregated view, so a step reused as "already successful" shows as
succeeded, as in the steps table beside it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence

from libmaestro.errors import MaestroError
from libmaestro.graph import NodeState, ProcessGraph, find_run_graph, load_graph
from libmaestro.graph_draw import to_svg
from libmaestro.layout import WORK_DIR_NAME
from libmaestro.state import (
    AggregatedStep,
    ArtefactRole,
    SqliteStateStore,
    StepRecord,
    StepState,
    WorkflowRecord,
)

log = logging.getLogger(__name__)

LINEAGE_LIMIT = 500  # above this many step records, no per-step artefact lookups for edges
_CACHE_SIZE = 32
_COMMENT = re.compile(r"<!--.*?-->\n?", re.DOTALL)

# The graph has no "invalidated": such a step will run again, which "not run" says best.
_NODE_STATES = {
    StepState.PENDING: NodeState.PENDING,
    StepState.RUNNING: NodeState.RUNNING,
    StepState.SUCCEEDED: NodeState.SUCCEEDED,
    StepState.FAILED: NodeState.FAILED,
    StepState.SKIPPED: NodeState.SKIPPED,
    StepState.ABORTED: NodeState.ABORTED,
    StepState.INVALIDATED: NodeState.NOT_RUN,
}


def _recorded_edges(
    workflow: WorkflowRecord, records: Sequence[StepRecord]
) -> list[tuple[str, str]] | None:
    """The edges of the run's graph.json, or None if it cannot be found or read."""
    for record in records:
        directory = None if record.workdir is None else record.workdir.parent
        if directory is None or directory.name != workflow.session:
            continue
        if directory.parent.name != WORK_DIR_NAME:
            continue
        try:
            path = find_run_graph(directory.parent.parent, session=workflow.session)
            if path is None:
                return None
            return load_graph(path).edges
        except MaestroError as exc:
            log.debug("no recorded graph for %s: %s", workflow.session, exc)
            return None
    return None


def _lineage_edges(
    store: SqliteStateStore, workflow: WorkflowRecord, records: Sequence[StepRecord]
) -> list[tuple[str, str]]:
    """Producer -> consumer edges from the store's lineage (one artefact query per step)."""
    if len(records) > LINEAGE_LIMIT:
        return []
    by_id = {r.id: r for r in records}
    producer_of: dict[int, str] = {}
    for record in records:
        for artefact in store.artefacts(record.id):
            if artefact.role is ArtefactRole.OUTPUT:
                producer_of[artefact.id] = record.process
    edges: dict[tuple[str, str], None] = {}
    for edge in store.lineage(workflow.id):
        source = producer_of.get(edge.artefact_id)
        consumer = by_id.get(edge.step_id)
        if source is not None and consumer is not None and source != consumer.process:
            edges[(source, consumer.process)] = None
    return list(edges)


def workflow_graph(
    store: SqliteStateStore,
    workflow: WorkflowRecord,
    records: Sequence[StepRecord],
    aggregated: Sequence[AggregatedStep],
) -> ProcessGraph:
    """The instance's process graph, one node per step, states from the aggregated view."""
    # Both sources: the store's lineage spans every run, while graph.json is the latest run's
    # picture (a step reused there as already successful may have lost its incoming edges),
    # but lineage is only read for instances of a modest size.
    edges = dict.fromkeys(_lineage_edges(store, workflow, records))
    edges.update(dict.fromkeys(_recorded_edges(workflow, records) or []))
    graph = ProcessGraph()
    for item in aggregated:
        label = item.process
        if item.state is StepState.INVALIDATED:
            label += " (invalidated)"
        graph.add_node(
            item.process,
            label=label,
            state=_NODE_STATES[item.state],
            group=item.step.group or None,
        )
    for source, target in edges:
        if source in graph and target in graph and source != target:
            graph.add_edge(source, target)
    return graph


class SvgCache:
    """Drawn graphs by content: a page polled every 2 s redraws only when a state changed."""

    def __init__(self) -> None:
        self._items: dict[str, str] = {}
        self._lock = threading.Lock()

    def svg(self, graph: ProcessGraph) -> str:
        key = graph.to_json()
        with self._lock:
            cached = self._items.get(key)
        if cached is not None:
            return cached
        drawn = inline_svg(to_svg(graph))
        with self._lock:
            if len(self._items) >= _CACHE_SIZE:
                self._items.pop(next(iter(self._items)))
            self._items[key] = drawn
        return drawn


def inline_svg(document: str) -> str:
    """An SVG document to place inside HTML: no XML declaration, doctype or comments.

    Graphviz repeats each node's name in a comment; labels are escaped already, but a comment
    is one more place where a hostile name could end up, so none are kept.
    """
    start = document.find("<svg")
    return _COMMENT.sub("", document[start:]) if start >= 0 else ""
