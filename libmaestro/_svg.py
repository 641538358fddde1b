"""Draw a layered graph as SVG without Graphviz: the fallback of `libmaestro.graph_draw.to_svg`.

A small Sugiyama-style layout: the caller gives the layers (longest path from the sources), a
barycenter sweep or two orders each layer to reduce edge crossings, and boxes are placed row by
row, top to bottom. A layer wider than `MAX_PER_ROW` boxes wraps onto several rows so the
picture stays readable when nothing was collapsed. Edges are cubic curves from the bottom of
their source to the top of their target; long edges are not routed around the boxes they cross.

This module knows nothing of process states: colours arrive already resolved in each `Box`.
`graphviz_svg` is the other way to draw: Graphviz's `dot`, when it is installed.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape as _html_escape

MAX_PER_ROW = 16
MAX_LINES = 4
MAX_CHARS = 40

_FONT = 12
_CHAR_WIDTH = 7.0  # a generous average for 12px sans-serif, so labels fit their boxes
_LINE = 15
_PAD_X = 12
_PAD_Y = 8
_MIN_WIDTH = 72
_GAP_X = 24
_GAP_ROW = 18  # between the wrapped rows of one layer
_GAP_LAYER = 56  # between layers: room for the edges
_MARGIN = 20
_LEGEND_HEIGHT = 34
_EDGE_COLOUR = "#546e7a"
_DUMMY_WIDTH = 8.0  # the room a long edge takes in each layer it crosses
_MAX_DUMMIES = 20_000  # beyond this many crossing points, long edges are drawn straight

# Characters XML 1.0 forbids, even escaped: C0 controls but tab/newline/CR, lone surrogates,
# U+FFFE and U+FFFF. A hostile label must not make the document unparsable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class GraphvizError(Exception):
    """`dot` could not run or failed; the caller decides whether to fall back."""


def graphviz_svg(dot: str, text: str, timeout: float) -> str:
    """The SVG that the `dot` binary at path `dot` draws from DOT `text`."""
    try:
        done = subprocess.run(
            [dot, "-Tsvg"],
            input=text,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GraphvizError(f"{dot} -Tsvg could not run: {exc}") from None
    if done.returncode != 0 or "<svg" not in done.stdout:
        detail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise GraphvizError(f"{dot} -Tsvg failed (exit {done.returncode}): {detail[0]}")
    return done.stdout


@dataclass(frozen=True, slots=True)
class Box:
    """One node to draw: its text and its colours."""

    id: str
    label: str
    fill: str
    stroke: str
    dashed: bool = False
    bold: bool = False
    title: str = ""  # the tooltip; the full label, since the drawn one may be shortened


@dataclass(frozen=True, slots=True)
class LegendEntry:
    """One swatch of the legend."""

    name: str
    fill: str
    stroke: str
    dashed: bool = False


@dataclass(slots=True)
class _Slot:
    """A box, or the point where a long edge crosses a layer (`box` None), once placed."""

    box: Box | None
    lines: list[str]
    width: float
    height: float
    x: float = 0.0
    y: float = 0.0

    @property
    def centre(self) -> float:
        return self.x + self.width / 2

    @property
    def bottom(self) -> float:
        return self.y + self.height


def xml_text(text: str) -> str:
    """`text` escaped for XML character data and attribute values (both quote kinds)."""
    cleaned = _NOT_XML.sub("\ufffd", text)
    # html.escape, not xml.sax.saxutils: the same escaping, without importing urllib and
    # http.client into every workflow that records its graph.
    return _html_escape(cleaned, quote=True)


def order_layers(
    layers: Sequence[Sequence[int]], edges: Iterable[tuple[int, int]], *, sweeps: int = 2
) -> list[list[int]]:
    """Reorder each layer by the barycenter heuristic, to reduce edge crossings.

    Each sweep orders every layer by the mean position of its neighbours in the layers above
    (going down), then below (going up). Positions are relative (0..1 within a layer), so edges
    that skip layers count too. The sort is stable: nodes without neighbours keep their place.
    """
    order = [list(layer) for layer in layers]
    pos: dict[int, float] = {}
    above: dict[int, list[int]] = {}
    below: dict[int, list[int]] = {}
    for source, target in edges:
        above.setdefault(target, []).append(source)
        below.setdefault(source, []).append(target)

    def place(layer: list[int]) -> None:
        for index, node in enumerate(layer):
            pos[node] = (index + 0.5) / len(layer)

    def by_barycenter(layer: list[int], neighbours: Mapping[int, list[int]]) -> list[int]:
        def key(node: int) -> float:
            known = [pos[n] for n in neighbours.get(node, ()) if n in pos]
            return sum(known) / len(known) if known else pos[node]

        return sorted(layer, key=key)

    for layer in order:
        place(layer)
    for _ in range(sweeps):
        for index in range(1, len(order)):
            order[index] = by_barycenter(order[index], above)
            place(order[index])
        for index in range(len(order) - 2, -1, -1):
            order[index] = by_barycenter(order[index], below)
            place(order[index])
    return order


def _lines(label: str) -> list[str]:
    lines = label.split("\n")
    shown = [line if len(line) <= MAX_CHARS else line[: MAX_CHARS - 1] + "…" for line in lines]
    if len(shown) > MAX_LINES:
        shown = shown[:MAX_LINES]
        shown[-1] = shown[-1][: MAX_CHARS - 1] + "…"
    return shown


def _slot(box: Box | None) -> _Slot:
    if box is None:
        return _Slot(None, [], _DUMMY_WIDTH, 0.0)
    lines = _lines(box.label)
    width = max(_MIN_WIDTH, max(len(line) for line in lines) * _CHAR_WIDTH + 2 * _PAD_X)
    return _Slot(box, lines, width, 2 * _PAD_Y + _LINE * len(lines))


def _row_width(row: list[_Slot]) -> float:
    return sum(p.width for p in row) + _GAP_X * (len(row) - 1)


def _chains(
    layer_of: list[int], edges: Sequence[tuple[int, int]], items: list[list[int]]
) -> list[list[int]]:
    """Each edge as the list of slots it passes: source, one point per layer it skips, target.

    The points go into `items` (the layers), so the ordering leaves a gap for the edge instead
    of drawing it through the boxes of the layers in between.
    """
    skipped = sum(max(0, layer_of[t] - layer_of[s] - 1) for s, t in edges)
    next_id = len(layer_of)
    chains = []
    for source, target in edges:
        chain = [source]
        if skipped <= _MAX_DUMMIES:
            for layer in range(layer_of[source] + 1, layer_of[target]):
                items[layer].append(next_id)
                chain.append(next_id)
                next_id += 1
        chain.append(target)
        chains.append(chain)
    return chains


def render_svg(
    layers: Sequence[Sequence[Box]],
    edges: Sequence[tuple[str, str]],
    *,
    legend: Sequence[LegendEntry] = (),
    title: str = "process graph",
) -> str:
    """An SVG document of `layers` (top to bottom) joined by `edges` (pairs of box ids)."""
    boxes = [box for layer in layers for box in layer]
    number = {box.id: i for i, box in enumerate(boxes)}
    layer_of = [i for i, layer in enumerate(layers) for _ in layer]
    links = [(number[s], number[t]) for s, t in edges if s in number and t in number and s != t]
    items = [[number[box.id] for box in layer] for layer in layers]
    chains = _chains(layer_of, links, items)
    ordered = order_layers(items, [pair for chain in chains for pair in itertools.pairwise(chain)])

    slots = [_slot(box) for box in boxes]
    slots.extend(_slot(None) for _ in range(sum(map(len, items)) - len(boxes)))
    # Rows: each layer's ordered slots, wrapped; a larger gap marks the start of a new layer.
    rows: list[tuple[bool, list[_Slot]]] = [
        (first == 0, [slots[i] for i in layer[first : first + MAX_PER_ROW]])
        for layer in ordered
        for first in range(0, len(layer), MAX_PER_ROW)
    ]
    legend_width = sum(_swatch_width(entry) for entry in legend)
    content_width = max([legend_width, 120.0, *(_row_width(row) for _, row in rows)])
    y = _MARGIN + (_LEGEND_HEIGHT if legend else 0.0)
    for index, (new_layer, row) in enumerate(rows):
        if index:
            y += _GAP_LAYER if new_layer else _GAP_ROW
        x = _MARGIN + (content_width - _row_width(row)) / 2
        height = max(item.height for item in row) or _LINE
        for item in row:
            if item.box is None:  # an edge passing through: spans the whole row
                item.height = height
            item.x, item.y = x, y + (height - item.height) / 2
            x += item.width + _GAP_X
        y += height
    width = content_width + 2 * _MARGIN
    height = y + _MARGIN

    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" '
        f'font-size="{_FONT}">',
        f"<title>{xml_text(title)}</title>",
        "<defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{_EDGE_COLOUR}"/>'
        "</marker></defs>",
        f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>',
    ]
    if legend:
        parts.extend(_legend(legend))
    parts.append(f'<g class="edges" fill="none" stroke="{_EDGE_COLOUR}" stroke-width="1.2">')
    parts.extend(_edge_paths(chains, slots))
    parts.append("</g>")
    parts.append('<g class="nodes">')
    parts.extend(_node(box, slot) for box, slot in zip(boxes, slots, strict=False))
    parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _swatch_width(entry: LegendEntry) -> float:
    return 14 + 6 + len(entry.name) * _CHAR_WIDTH + 18


def _legend(entries: Sequence[LegendEntry]) -> list[str]:
    parts = ['<g class="legend">']
    x = float(_MARGIN)
    y = float(_MARGIN)
    for entry in entries:
        dash = ' stroke-dasharray="3 2"' if entry.dashed else ""
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="14" height="14" rx="3" ry="3" '
            f'fill="{entry.fill}" stroke="{entry.stroke}"{dash}/>'
            f'<text x="{x + 20:.1f}" y="{y + 11:.1f}">{xml_text(entry.name)}</text>'
        )
        x += _swatch_width(entry)
    parts.append("</g>")
    return parts


def _ports(count: int, item: _Slot) -> list[float]:
    """Where `count` edges leave (or enter) a box: spread over the middle of its side."""
    if count == 1:
        return [item.centre]
    step = min(12.0, item.width * 0.7 / (count - 1))
    return [item.centre + (i - (count - 1) / 2) * step for i in range(count)]


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    bend = max((y2 - y1) / 2, 40.0)  # an upward (cycle) edge still leaves downwards
    return f"C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}"


def _edge_paths(chains: Sequence[list[int]], slots: Sequence[_Slot]) -> list[str]:
    outgoing: dict[int, list[int]] = {}
    incoming: dict[int, list[int]] = {}
    for index, chain in enumerate(chains):
        outgoing.setdefault(chain[0], []).append(index)
        incoming.setdefault(chain[-1], []).append(index)
    start: dict[int, float] = {}
    end: dict[int, float] = {}
    for node, indices in outgoing.items():
        indices.sort(key=lambda i: slots[chains[i][1]].centre)
        start.update(zip(indices, _ports(len(indices), slots[node]), strict=True))
    for node, indices in incoming.items():
        indices.sort(key=lambda i: slots[chains[i][-2]].centre)
        end.update(zip(indices, _ports(len(indices), slots[node]), strict=True))
    paths = []
    for index, chain in enumerate(chains):
        x, y = start[index], slots[chain[0]].bottom
        d = [f"M{x:.1f},{y:.1f}"]
        for point in chain[1:-1]:  # down to the crossing point, straight through its row
            slot = slots[point]
            d.append(_curve(x, y, slot.centre, slot.y))
            x, y = slot.centre, slot.bottom
            d.append(f"L{x:.1f},{y:.1f}")
        d.append(_curve(x, y, end[index], slots[chain[-1]].y))
        paths.append(f'<path d="{" ".join(d)}" marker-end="url(#arrow)"/>')
    return paths


def _node(box: Box, item: _Slot) -> str:
    dash = ' stroke-dasharray="5 3"' if box.dashed else ""
    weight = "2.4" if box.bold else "1.2"
    spans = "".join(
        f'<tspan x="{item.centre:.1f}" y="{item.y + _PAD_Y + 11.5 + _LINE * i:.1f}">'
        f"{xml_text(line)}</tspan>"
        for i, line in enumerate(item.lines)
    )
    return (
        f'<g class="node"><title>{xml_text(box.title or box.label)}</title>'
        f'<rect x="{item.x:.1f}" y="{item.y:.1f}" width="{item.width:.1f}" '
        f'height="{item.height:.1f}" rx="6" ry="6" fill="{box.fill}" stroke="{box.stroke}" '
        f'stroke-width="{weight}"{dash}/>'
        f'<text text-anchor="middle" fill="#212121">{spans}</text></g>'
    )
