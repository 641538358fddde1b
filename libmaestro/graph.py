"""The process graph of a run (its pictures are drawn by `libmaestro.graph_draw`).

A run records its graph in `maestro_work/<session>/graph.json` (`save_graph`): one node per
process (its id is the process name, its group the fan-out it belongs to) whose state follows the
run, and an edge from a process to each process that consumed a file it wrote. Before any run,
`static_graph` approximates the picture from the process sites `maestro build` finds: one node
per site and no edges, because which output feeds which input is only known when the workflow
runs (paths are Python values computed at run time).

Pictures of a large fan-out stay readable because `collapse_groups` folds a group of more than
`COLLAPSE_THRESHOLD` nodes in one layer into a single node such as `align ×100 (97 ok, 3 failed)`;
every renderer does so unless told not to.
"""  # noqa: RUF002  # the multiplication sign in the example label is meant

from __future__ import annotations

import enum
import json
import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from libmaestro._fs import atomic_write_text
from libmaestro.errors import ProjectError
from libmaestro.layout import GRAPH_FILE, WORK_DIR_NAME

FORMAT_VERSION = 1
COLLAPSE_THRESHOLD = 30
_TIMES = "\u00d7"  # the multiplication sign of collapsed labels; escaped, as it looks like x


class NodeState(enum.StrEnum):
    """Where a process is in its run. Equal to its string value, as stored in graph.json."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    ABORTED = "aborted"
    NOT_RUN = "not_run"


_STATE_VALUES = frozenset(state.value for state in NodeState)

# Which state a collapsed group shows: the most alarming one among its members.
_GROUP_PRIORITY = (
    NodeState.FAILED,
    NodeState.RUNNING,
    NodeState.ABORTED,
    NodeState.PENDING,
    NodeState.NOT_RUN,
    NodeState.SKIPPED,
    NodeState.SUCCEEDED,
)
_COUNT_WORDS = {
    NodeState.SUCCEEDED: "ok",
    NodeState.FAILED: "failed",
    NodeState.RUNNING: "running",
    NodeState.PENDING: "pending",
    NodeState.ABORTED: "aborted",
    NodeState.NOT_RUN: "not run",
    NodeState.SKIPPED: "skipped",
}


@dataclass(frozen=True, slots=True)
class GraphNode:
    """One process in the graph. `group` names the fan-out it belongs to, if any."""

    id: str
    label: str
    state: NodeState = NodeState.PENDING
    group: str | None = None


class ProcessGraph:
    """Processes and the files that flow between them; nodes and edges keep insertion order.

    An edge `(source, target)` means `target` consumed a file `source` produced. The methods are
    safe to call from several threads, as a run with a fan-out does.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, GraphNode] = {}
        self._edges: dict[tuple[str, str], None] = {}  # an ordered set
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __repr__(self) -> str:
        return f"<ProcessGraph {len(self._nodes)} nodes, {len(self._edges)} edges>"

    @property
    def nodes(self) -> list[GraphNode]:
        """A snapshot of the nodes, in the order they were added."""
        with self._lock:
            return list(self._nodes.values())

    @property
    def edges(self) -> list[tuple[str, str]]:
        """A snapshot of the edges, in the order they were added."""
        with self._lock:
            return list(self._edges)

    def node(self, node_id: str) -> GraphNode:
        """The node `node_id`; KeyError if there is none."""
        return self._nodes[node_id]

    def add_node(
        self,
        node_id: str,
        *,
        label: str | None = None,
        state: NodeState | str = NodeState.PENDING,
        group: str | None = None,
    ) -> GraphNode:
        """Add a node (its label defaults to its id); ValueError if the id is taken."""
        node = GraphNode(node_id, node_id if label is None else label, NodeState(state), group)
        with self._lock:
            if node_id in self._nodes:
                raise ValueError(f"the graph already has a node {node_id!r}")
            self._nodes[node_id] = node
        return node

    def set_state(self, node_id: str, state: NodeState | str) -> GraphNode:
        """Record a node's new state; KeyError if there is no such node."""
        with self._lock:
            node = self._nodes[node_id]
            node = self._nodes[node_id] = replace(node, state=NodeState(state))
        return node

    def add_edge(self, source: str, target: str) -> None:
        """Record that `target` consumed a file `source` produced; repeated edges count once.

        Raises:
            ValueError: An endpoint is not a node, or the edge is a self-loop.
        """
        with self._lock:
            for end in (source, target):
                if end not in self._nodes:
                    raise ValueError(f"add node {end!r} before an edge that uses it")
            if source == target:
                raise ValueError(f"a process cannot consume its own output ({source!r})")
            self._edges[(source, target)] = None

    def layers(self) -> list[list[str]]:
        """Node ids by longest-path layer: sources first, every node below all its producers.

        Within a layer, nodes keep insertion order. A cycle (possible only in a hand-edited
        file) is broken at its earliest-added node, so this always terminates.
        """
        with self._lock:
            ids = list(self._nodes)
            edges = list(self._edges)
        level = _levels(ids, edges)
        result: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
        for node_id in ids:
            result[level[node_id]].append(node_id)
        return result

    def to_dict(self) -> dict[str, Any]:
        """The graph as plain JSON data (the graph.json format)."""
        with self._lock:
            nodes = list(self._nodes.values())
            edges = list(self._edges)
        return graph_data(((n.id, n.label, n.state, n.group) for n in nodes), edges)

    @classmethod
    def from_dict(cls, data: object) -> ProcessGraph:
        """The graph `to_dict` produced; ValueError says what is wrong with anything else."""
        if not isinstance(data, dict) or data.get("format") != "maestro-graph":
            raise ValueError('not a maestro graph (no "format": "maestro-graph")')
        version = data.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(f"graph format version {version!r} is newer than this maestro's")
        nodes, edges = data.get("nodes"), data.get("edges")
        if not isinstance(nodes, list) or not isinstance(edges, list):
            raise ValueError('"nodes" and "edges" must be lists')
        graph = cls()
        for index, item in enumerate(nodes):
            if not isinstance(item, dict):
                raise ValueError(f"node {index} is not an object")
            node_id, label, group = item.get("id"), item.get("label"), item.get("group")
            if not isinstance(node_id, str) or not isinstance(label, str):
                raise ValueError(f'node {index} needs string "id" and "label"')
            if group is not None and not isinstance(group, str):
                raise ValueError(f'node {index}: "group" must be a string or null')
            state = item.get("state", NodeState.PENDING.value)
            if not isinstance(state, str) or state not in _STATE_VALUES:
                known = ", ".join(s.value for s in NodeState)
                raise ValueError(f"node {index}: unknown state {state!r} (known: {known})")
            graph.add_node(node_id, label=label, state=state, group=group)
        for index, item in enumerate(edges):
            if not (
                isinstance(item, list) and len(item) == 2 and all(isinstance(e, str) for e in item)
            ):
                raise ValueError(f"edge {index} is not a [source, target] pair of node ids")
            graph.add_edge(item[0], item[1])
        return graph

    def to_json(self) -> str:
        """The graph.json text."""
        return graph_text(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> ProcessGraph:
        """Parse graph.json text; ValueError (json.JSONDecodeError included) if it is invalid."""
        return cls.from_dict(json.loads(text))


def graph_data(
    nodes: Iterable[tuple[str, str, NodeState, str | None]], edges: Iterable[tuple[str, str]]
) -> dict[str, Any]:
    """The graph.json data of `nodes` (id, label, state, group) and `edges` (source, target).

    A run's recorder writes its graph with this directly, without a `ProcessGraph`.
    """
    return {
        "format": "maestro-graph",
        "version": FORMAT_VERSION,
        "nodes": [
            {"id": node_id, "label": label, "state": state.value, "group": group}
            for node_id, label, state, group in nodes
        ],
        "edges": [[source, target] for source, target in edges],
    }


def graph_text(data: dict[str, Any]) -> str:
    """The graph.json text of `graph_data`'s result."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


def _levels(ids: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layer of each node (Kahn's order; a cycle is broken at its first node)."""
    producers: dict[str, list[str]] = {i: [] for i in ids}
    consumers: dict[str, list[str]] = {i: [] for i in ids}
    for source, target in edges:
        producers[target].append(source)
        consumers[source].append(target)
    waiting = {i: len(producers[i]) for i in ids}
    ready = deque(i for i in ids if not waiting[i])
    queued = set(ready)
    level: dict[str, int] = {}
    cursor = 0
    while len(level) < len(ids):
        if not ready:  # a cycle: force its earliest node
            while ids[cursor] in queued:
                cursor += 1
            ready.append(ids[cursor])
            queued.add(ids[cursor])
        node_id = ready.popleft()
        level[node_id] = 1 + max((level[p] for p in producers[node_id] if p in level), default=-1)
        for consumer in consumers[node_id]:
            waiting[consumer] -= 1
            if waiting[consumer] <= 0 and consumer not in queued:
                ready.append(consumer)
                queued.add(consumer)
    return level


def save_graph(graph: ProcessGraph, path: Path) -> None:
    """Write `graph` to `path` atomically: a reader sees the previous graph or this one."""
    atomic_write_text(path, graph.to_json())


def load_graph(path: Path) -> ProcessGraph:
    """Read a graph.json file.

    Raises:
        ProjectError: The file cannot be read or is not a graph maestro wrote.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProjectError(f"{path} cannot be read: {exc.strerror or exc}") from None
    try:
        return ProcessGraph.from_json(text)
    except ValueError as exc:
        raise ProjectError(
            f"{path} is not a valid process graph: {exc}; delete it, or run the workflow again"
        ) from None


def find_run_graph(base: Path, *, session: str | None = None) -> Path | None:
    """The graph.json of a run under `base/maestro_work/` (`base` may be a workflow file).

    With `session`, that session's graph; otherwise the newest recorded graph, or None when no
    run recorded one.

    Raises:
        ProjectError: `session` does not exist or recorded no graph.
    """
    work = (base.parent if base.is_file() else base) / WORK_DIR_NAME
    if session is None:
        found = []
        for path in work.glob(f"*/{GRAPH_FILE}"):
            try:
                found.append((path.stat().st_mtime_ns, path.parent.name, path))
            except OSError:  # removed since the glob saw it
                continue
        return max(found)[2] if found else None
    if not session or session in {".", ".."} or Path(session).name != session:
        raise ProjectError(f"{session!r} is not a session name; sessions are in {work}")
    if not (work / session).is_dir():
        known = sorted(p.name for p in work.iterdir() if p.is_dir()) if work.is_dir() else []
        shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
        hint = f"known sessions: {shown}" if known else "no run has been recorded"
        raise ProjectError(f"there is no session {session!r} in {work} ({hint})")
    path = work / session / GRAPH_FILE
    if not path.is_file():
        raise ProjectError(
            f"session {session!r} recorded no process graph ({path} is missing); "
            "run the workflow again with this version of maestro"
        )
    return path


class SiteLike(Protocol):
    """What `static_graph` needs of a process site (`libmaestro.BuildResult.sites`)."""

    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def executor(self) -> str | None: ...


def static_graph(sites: Iterable[SiteLike]) -> ProcessGraph:
    """The picture before a run: one pending node per process site, and no edges.

    Which process consumes which one's outputs is only known when the workflow runs (paths are
    Python values), so a static graph cannot draw edges. A site whose name is computed (inside
    a loop, say) is labelled with its source position.
    """
    graph = ProcessGraph()
    for site in sites:
        if site.key not in graph:
            graph.add_node(site.key, label=site.name or site.key)
    return graph


def collapse_groups(graph: ProcessGraph, threshold: int = COLLAPSE_THRESHOLD) -> ProcessGraph:
    """Fold each group with more than `threshold` nodes in one layer into a single node.

    The folded node is labelled like `align ×100 (97 ok, 3 failed)`, shows its most alarming
    member state (failed before running before the rest), and keeps every edge to and from
    its members once. Returns `graph` itself when no group is that large.
    """  # noqa: RUF002  # the multiplication sign in the example label is meant
    level = {node_id: i for i, layer in enumerate(graph.layers()) for node_id in layer}
    members: dict[tuple[int, str], list[GraphNode]] = {}
    for node in graph.nodes:
        if node.group is not None:
            members.setdefault((level[node.id], node.group), []).append(node)
    large = {key: nodes for key, nodes in members.items() if len(nodes) > threshold}
    if not large:
        return graph
    layers_of = Counter(group for _, group in large)
    taken = {node.id for node in graph.nodes}
    folded_id: dict[tuple[int, str], str] = {}
    for key in large:
        layer, group = key
        base = f"{group} {_TIMES}" + ("" if layers_of[group] == 1 else f"@{layer}")
        candidate, suffix = base, 1
        while candidate in taken:
            suffix += 1
            candidate = f"{base}#{suffix}"
        taken.add(candidate)
        folded_id[key] = candidate

    result = ProcessGraph()
    representative: dict[str, str] = {}
    for node in graph.nodes:
        at = (level[node.id], node.group) if node.group is not None else None
        if at is None or at not in large:
            result.add_node(node.id, label=node.label, state=node.state, group=node.group)
            representative[node.id] = node.id
            continue
        representative[node.id] = folded_id[at]
        if folded_id[at] not in result:
            group_nodes = large[at]
            counts = Counter(n.state for n in group_nodes)
            summary = ", ".join(
                f"{counts[state]} {word}" for state, word in _COUNT_WORDS.items() if counts[state]
            )
            state = next(s for s in _GROUP_PRIORITY if counts[s])
            label = f"{at[1]} {_TIMES}{len(group_nodes)} ({summary})"
            result.add_node(folded_id[at], label=label, state=state, group=at[1])
    for source, target in graph.edges:
        a, b = representative[source], representative[target]
        if a != b:
            result.add_edge(a, b)
    return result
