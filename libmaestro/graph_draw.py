"""Pictures of a process graph: Mermaid, Graphviz DOT and SVG (`libmaestro.graph` is the graph).

Every renderer folds large fan-outs (`collapse_groups`) unless told not to. `to_svg` uses
Graphviz's `dot` when it is installed and a small built-in layout (`libmaestro._svg`) otherwise;
both are imported only when a picture is drawn: a running workflow records its graph, never
draws it.
"""

from __future__ import annotations

import logging
import re
import shutil
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from libmaestro.errors import MaestroError, UnsupportedError
from libmaestro.graph import (
    COLLAPSE_THRESHOLD,
    GraphNode,
    NodeState,
    ProcessGraph,
    collapse_groups,
)

if TYPE_CHECKING:
    from libmaestro import _svg

log = logging.getLogger(__name__)

_DOT_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class _Style:
    fill: str
    stroke: str
    dashed: bool = False
    bold: bool = False


# One palette for every renderer: failed red, succeeded green, running yellow, not run grey.
_STYLES: dict[NodeState, _Style] = {
    NodeState.PENDING: _Style("#ffffff", "#607d8b"),
    NodeState.RUNNING: _Style("#fff3b0", "#c9a400"),
    NodeState.SUCCEEDED: _Style("#c8e6c9", "#2e7d32"),
    NodeState.FAILED: _Style("#ffcdd2", "#c62828", bold=True),
    NodeState.SKIPPED: _Style("#eceff1", "#90a4ae", dashed=True),
    NodeState.ABORTED: _Style("#e0e0e0", "#616161", dashed=True),
    NodeState.NOT_RUN: _Style("#e0e0e0", "#9e9e9e", dashed=True),
}


def _prepared(graph: ProcessGraph, collapse: bool, threshold: int) -> ProcessGraph:
    return collapse_groups(graph, threshold) if collapse else graph


def _printable(text: str) -> str:
    """`text` with newlines kept, tabs as spaces, and other control characters replaced."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return "".join(
        "\ufffd" if ch != "\n" and unicodedata.category(ch) in {"Cc", "Cs"} else ch for ch in text
    )


# ---------------------------------------------------------------------------- Mermaid


_MERMAID_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,:/+=()*@!?~^$'-"
)


def _mermaid_label(text: str) -> str:
    """Text for inside `["..."]`: everything that could end or restyle it as an entity code."""
    out = []
    for ch in _printable(text):
        if ch == "\n":
            out.append("<br/>")
        elif ch in _MERMAID_SAFE or (ord(ch) > 127 and ch.isprintable()):
            out.append(ch)
        else:
            out.append(f"#{ord(ch)};")  # Mermaid's decimal entity: `"` is #34;, `<` is #60;
    return "".join(out)


def _mermaid_ids(graph: ProcessGraph) -> dict[str, str]:
    """Safe, unique Mermaid ids. The prefix keeps clear of keywords such as `end`."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for node in graph.nodes:
        base = "p_" + re.sub(r"[^A-Za-z0-9_]", "_", node.id)[:60]
        candidate, suffix = base, 1
        while candidate in used:
            suffix += 1
            candidate = f"{base}_{suffix}"
        used.add(candidate)
        ids[node.id] = candidate
    return ids


def to_mermaid(
    graph: ProcessGraph, *, collapse: bool = True, threshold: int = COLLAPSE_THRESHOLD
) -> str:
    """A Mermaid flowchart (top down), each node styled by its state."""
    graph = _prepared(graph, collapse, threshold)
    ids = _mermaid_ids(graph)
    lines = ["flowchart TD"]
    nodes = graph.nodes
    lines.extend(f'    {ids[n.id]}["{_mermaid_label(n.label)}"]:::{n.state.value}' for n in nodes)
    lines.extend(f"    {ids[s]} --> {ids[t]}" for s, t in graph.edges)
    for state in _states_in(nodes):
        style = _STYLES[state]
        extra = ",stroke-dasharray:5 3" if style.dashed else ""
        width = "3px" if style.bold else "1px"
        lines.append(
            f"    classDef {state.value} fill:{style.fill},stroke:{style.stroke},"
            f"stroke-width:{width},color:#212121{extra}"
        )
    return "\n".join(lines) + "\n"


def _states_in(nodes: Iterable[GraphNode]) -> list[NodeState]:
    present = {n.state for n in nodes}
    return [state for state in NodeState if state in present]


# ---------------------------------------------------------------------------- Graphviz


def _dot_quote(text: str) -> str:
    """A DOT quoted string. Backslashes are doubled so labels show them (not `\\N`, `\\l`)."""
    escaped = _printable(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _dot_lines(graph: ProcessGraph, *, legend: bool) -> Iterator[str]:
    nodes = graph.nodes
    yield "digraph maestro {"
    yield '    graph [rankdir=TB, fontname="Helvetica", nodesep=0.3, ranksep=0.5];'
    yield (
        '    node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, '
        'color="#607d8b", fillcolor="#ffffff", fontcolor="#212121"];'
    )
    yield '    edge [color="#546e7a", arrowsize=0.7];'
    for node in nodes:
        yield f"    {_dot_quote(node.id)} [{_dot_attributes(node.label, node.state)}];"
    for source, target in graph.edges:
        yield f"    {_dot_quote(source)} -> {_dot_quote(target)};"
    if legend and nodes:
        # Legend node ids must not clash with process names: lengthen the prefix until unique.
        prefix = "legend:"
        while any(n.id.startswith(prefix) for n in nodes):
            prefix = "_" + prefix
        yield "    subgraph cluster_legend {"
        yield '        label="states"; fontsize=10; color="#b0bec5"; style="rounded";'
        names = [_dot_quote(prefix + state.value) for state in _states_in(nodes)]
        for name, state in zip(names, _states_in(nodes), strict=True):
            yield f"        {name} [{_dot_attributes(state.value.replace('_', ' '), state)}];"
        if len(names) > 1:  # invisible edges keep the swatches in one row, in palette order
            yield f"        {{rank=same; {' -> '.join(names)} [style=invis];}}"
        yield "    }"
    yield "}"


def _dot_attributes(label: str, state: NodeState) -> str:
    style = _STYLES[state]
    attributes = [
        f"label={_dot_quote(label)}",
        f'fillcolor="{style.fill}"',
        f'color="{style.stroke}"',
    ]
    if style.dashed:
        attributes.append('style="rounded,filled,dashed"')
    if style.bold:
        attributes.append("penwidth=2.4")
    return ", ".join(attributes)


def to_dot(
    graph: ProcessGraph, *, collapse: bool = True, threshold: int = COLLAPSE_THRESHOLD
) -> str:
    """A Graphviz DOT digraph, each node filled with its state's colour."""
    graph = _prepared(graph, collapse, threshold)
    return "\n".join(_dot_lines(graph, legend=False)) + "\n"


# ---------------------------------------------------------------------------- SVG


def to_svg(
    graph: ProcessGraph,
    *,
    collapse: bool = True,
    threshold: int = COLLAPSE_THRESHOLD,
    use_dot: bool | None = None,
    timeout: float = _DOT_TIMEOUT,
) -> str:
    """An SVG picture with a legend of the states, drawn by Graphviz or by maestro itself.

    Args:
        graph: The graph to draw.
        collapse: Fold large fan-out groups first (see `collapse_groups`).
        threshold: The group size above which a group is folded.
        use_dot: None uses Graphviz's `dot` when it is on PATH and falls back to the built-in
            layout if it is missing or fails; True requires `dot`; False never uses it.
        timeout: Seconds `dot` may take.

    Raises:
        UnsupportedError: `use_dot=True` and `dot` is not installed.
        MaestroError: `use_dot=True` and `dot` failed.
    """
    graph = _prepared(graph, collapse, threshold)
    if use_dot is not False:
        dot = shutil.which("dot")
        if dot is None and use_dot:
            raise UnsupportedError(
                "Graphviz's `dot` is not on PATH; install graphviz, or use the built-in layout"
            )
        if dot is not None:
            from libmaestro import _svg

            try:
                return _svg.graphviz_svg(dot, "\n".join(_dot_lines(graph, legend=True)), timeout)
            except _svg.GraphvizError as exc:
                if use_dot:
                    raise MaestroError(str(exc)) from None
                log.warning("%s; drawing the graph with the built-in layout instead", exc)
    return _draw(graph)


def _draw(graph: ProcessGraph) -> str:
    from libmaestro import _svg

    nodes = {n.id: n for n in graph.nodes}
    layers = [[_box(nodes[node_id]) for node_id in layer] for layer in graph.layers()]
    legend = [
        _svg.LegendEntry(state.value.replace("_", " "), s.fill, s.stroke, s.dashed)
        for state in _states_in(nodes.values())
        for s in [_STYLES[state]]
    ]
    return _svg.render_svg(layers, graph.edges, legend=legend, title="maestro process graph")


def _box(node: GraphNode) -> _svg.Box:
    from libmaestro import _svg

    style = _STYLES[node.state]
    label = _printable(node.label)
    return _svg.Box(
        id=node.id,
        label=label,
        fill=style.fill,
        stroke=style.stroke,
        dashed=style.dashed,
        bold=style.bold,
        title=f"{label} ({node.state.value.replace('_', ' ')})",
    )
