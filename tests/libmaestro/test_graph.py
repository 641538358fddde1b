"""The process graph: its model, graph.json, and the Mermaid, DOT and SVG pictures of it."""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from libmaestro import _svg
from libmaestro.errors import MaestroError, ProjectError, UnsupportedError
from libmaestro.graph import (
    GRAPH_FILE,
    NodeState,
    ProcessGraph,
    collapse_groups,
    find_run_graph,
    load_graph,
    save_graph,
    static_graph,
)
from libmaestro.graph_draw import to_dot, to_mermaid, to_svg

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script>\n--> end; %% `b` #1 \\N & [x] {y} |z|\t\x00\x1b\ud800'
HAS_DOT = shutil.which("dot") is not None
# Under CI, scripts/setup.sh installs Graphviz, so a missing `dot` fails there instead of skipping.
needs_dot = pytest.mark.skipif(
    not HAS_DOT and not os.environ.get("CI"), reason="Graphviz `dot` is not installed"
)


def diamond() -> ProcessGraph:
    graph = ProcessGraph()
    for name, state in (("a", "succeeded"), ("b", "failed"), ("c", "running"), ("d", "not_run")):
        graph.add_node(name, state=state)
    for source, target in (("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")):
        graph.add_edge(source, target)
    return graph


def fan_out(count: int, *, failed: int = 0, group: str = "align") -> ProcessGraph:
    """split -> `count` grouped processes -> merge."""
    graph = ProcessGraph()
    graph.add_node("split", state="succeeded")
    graph.add_node("merge", state="not_run" if failed else "succeeded")
    for i in range(count):
        name = f"{group}_{i}"
        graph.add_node(name, group=group, state="failed" if i < failed else "succeeded")
        graph.add_edge("split", name)
        graph.add_edge(name, "merge")
    return graph


def parse_svg(text: str) -> ET.Element:
    return ET.fromstring(text.encode("utf-8"))


def svg_texts(root: ET.Element) -> list[str]:
    """Every line of text drawn: a <text>, or each <tspan> of a multi-line one."""
    lines: list[str] = []
    for text in root.iter(f"{SVG}text"):
        spans = text.findall(f"{SVG}tspan")
        lines.extend("".join(e.itertext()) for e in (spans or [text]))
    return lines


@pytest.fixture
def no_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH on which there is no Graphviz."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def broken_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `dot` on PATH that fails the way a broken install does."""
    bin_dir = tmp_path / "broken-bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: <stdin>: syntax error' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


# ---------------------------------------------------------------------------- model


def test_graph_add_node_defaults_label_and_state() -> None:
    graph = ProcessGraph()
    node = graph.add_node("count")
    assert (node.id, node.label, node.state, node.group) == ("count", "count", "pending", None)
    assert "count" in graph and len(graph) == 1


def test_graph_rejects_duplicate_nodes_unknown_endpoints_and_self_loops() -> None:
    graph = ProcessGraph()
    graph.add_node("a")
    with pytest.raises(ValueError, match="already"):
        graph.add_node("a")
    with pytest.raises(ValueError, match="'b'"):
        graph.add_edge("a", "b")
    with pytest.raises(ValueError, match="own output"):
        graph.add_edge("a", "a")
    with pytest.raises(ValueError):
        graph.add_node("c", state="exploded")


def test_graph_counts_a_repeated_edge_once() -> None:
    graph = diamond()
    graph.add_edge("a", "b")
    assert graph.edges == [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]


def test_graph_set_state_accepts_enum_or_string() -> None:
    graph = diamond()
    graph.set_state("d", NodeState.RUNNING)
    assert graph.node("d").state is NodeState.RUNNING
    graph.set_state("d", "failed")
    assert graph.node("d").state is NodeState.FAILED
    with pytest.raises(KeyError):
        graph.set_state("zzz", "failed")


def test_graph_layers_of_a_diamond_put_a_first_and_d_last() -> None:
    assert diamond().layers() == [["a"], ["b", "c"], ["d"]]


def test_graph_layers_use_the_longest_path() -> None:
    """A node should sit below every producer, even one reached by a longer path."""
    graph = ProcessGraph()
    for name in "abc":
        graph.add_node(name)
    graph.add_edge("a", "c")
    graph.add_edge("a", "b")
    graph.add_edge("b", "c")
    assert graph.layers() == [["a"], ["b"], ["c"]]


def test_graph_layers_terminate_on_a_cycle() -> None:
    graph = ProcessGraph()
    for name in "xyz":
        graph.add_node(name)
    graph.add_edge("x", "y")
    graph.add_edge("y", "z")
    graph.add_edge("z", "y")
    layers = graph.layers()
    assert sorted(n for layer in layers for n in layer) == ["x", "y", "z"]
    assert layers[0] == ["x"]


# ---------------------------------------------------------------------------- graph.json


def test_graph_json_round_trip_keeps_everything() -> None:
    graph = fan_out(3, failed=1)
    graph.add_node(HOSTILE, label=HOSTILE.upper(), state="aborted")
    graph.add_edge("merge", HOSTILE)
    again = ProcessGraph.from_json(graph.to_json())
    assert again.nodes == graph.nodes
    assert again.edges == graph.edges
    assert again.to_json() == graph.to_json()


def test_save_graph_writes_atomically_and_load_graph_reads_it(tmp_path: Path) -> None:
    (tmp_path / "session").mkdir()
    path = tmp_path / "session" / GRAPH_FILE
    save_graph(diamond(), path)
    save_graph(fan_out(2), path)  # replaces the previous graph
    assert [p.name for p in path.parent.iterdir()] == [GRAPH_FILE]  # no temporary file left
    assert load_graph(path).to_dict() == fan_out(2).to_dict()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a valid process graph"),
        ('{"format": "other"}', "not a maestro graph"),
        ('{"format": "maestro-graph", "version": 99, "nodes": [], "edges": []}', "newer"),
        (
            '{"format": "maestro-graph", "version": 1, "edges": [],'
            ' "nodes": [{"id": "a", "label": "a", "state": "weird"}]}',
            "unknown state 'weird'",
        ),
        (
            '{"format": "maestro-graph", "version": 1, "nodes": [], "edges": [["a", "b"]]}',
            "'a'",
        ),
    ],
)
def test_load_graph_reports_a_bad_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / GRAPH_FILE
    path.write_text(text)
    with pytest.raises(ProjectError, match=re.escape(message)):
        load_graph(path)


def test_load_graph_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="cannot be read"):
        load_graph(tmp_path / GRAPH_FILE)


def _record(base: Path, session: str, graph: ProcessGraph, *, mtime: int) -> Path:
    path = base / "maestro_work" / session / GRAPH_FILE
    path.parent.mkdir(parents=True)
    save_graph(graph, path)
    os.utime(path, (mtime, mtime))
    return path


def test_find_run_graph_picks_the_newest_recorded_session(tmp_path: Path) -> None:
    _record(tmp_path, "zesty-zebra", diamond(), mtime=1_000)
    newest = _record(tmp_path, "able-ant", diamond(), mtime=2_000)
    (tmp_path / "maestro_work" / "no-graph-yet").mkdir()
    assert find_run_graph(tmp_path) == newest
    workflow = tmp_path / "workflow.py"
    workflow.write_text("")
    assert find_run_graph(workflow) == newest  # a workflow file stands for its directory


def test_find_run_graph_returns_none_without_a_recorded_run(tmp_path: Path) -> None:
    assert find_run_graph(tmp_path) is None
    (tmp_path / "maestro_work" / "empty").mkdir(parents=True)
    assert find_run_graph(tmp_path) is None


def test_find_run_graph_by_session_name(tmp_path: Path) -> None:
    older = _record(tmp_path, "zesty-zebra", diamond(), mtime=1_000)
    _record(tmp_path, "able-ant", diamond(), mtime=2_000)
    (tmp_path / "maestro_work" / "no-graph-yet").mkdir()
    assert find_run_graph(tmp_path, session="zesty-zebra") == older
    with pytest.raises(ProjectError, match=r"no session 'missing'.*able-ant"):
        find_run_graph(tmp_path, session="missing")
    with pytest.raises(ProjectError, match="recorded no process graph"):
        find_run_graph(tmp_path, session="no-graph-yet")
    with pytest.raises(ProjectError, match="not a session name"):
        find_run_graph(tmp_path, session="../zesty-zebra")


# ---------------------------------------------------------------------------- static


@dataclass(frozen=True)
class Site:
    key: str
    name: str | None
    executor: str | None


def test_static_graph_has_one_pending_node_per_site_and_no_edges() -> None:
    graph = static_graph(
        [Site("workflow.py:5:5", "count", "default"), Site("workflow.py:12:9", None, None)]
    )
    assert [(n.id, n.label, n.state) for n in graph.nodes] == [
        ("workflow.py:5:5", "count", "pending"),
        ("workflow.py:12:9", "workflow.py:12:9", "pending"),
    ]
    assert graph.edges == []


# ---------------------------------------------------------------------------- collapse


def test_collapse_groups_folds_a_large_group_with_its_counts() -> None:
    folded = collapse_groups(fan_out(100, failed=3))
    labels = {n.label: n for n in folded.nodes}
    node = labels["align \u00d7100 (97 ok, 3 failed)"]
    assert node.state is NodeState.FAILED and node.group == "align"
    assert [n.id for n in folded.nodes] == ["split", "merge", node.id]
    assert folded.edges == [("split", node.id), (node.id, "merge")]


def test_collapse_groups_keeps_groups_up_to_the_threshold() -> None:
    graph = fan_out(30)
    assert collapse_groups(graph) is graph
    assert len(collapse_groups(fan_out(31))) == 3
    assert len(collapse_groups(graph, threshold=10)) == 3


def test_collapse_groups_folds_each_layer_of_a_group_separately() -> None:
    graph = fan_out(40)
    for i in range(40):  # a second stage in the same group, one layer further down
        graph.add_node(f"sort_{i}", group="align", state="running")
        graph.add_edge(f"align_{i}", f"sort_{i}")
    folded = collapse_groups(graph)
    ids = [n.id for n in folded.nodes]
    assert len(ids) == len(set(ids)) == 4
    assert {n.label for n in folded.nodes} >= {
        "align \u00d740 (40 ok)",
        "align \u00d740 (40 running)",
    }
    layers = folded.layers()
    assert ids[2] in layers[1] and ids[3] in layers[2]


def test_collapse_group_id_never_clashes_with_a_process_name() -> None:
    graph = fan_out(31)
    graph.add_node("align \u00d7")
    folded = collapse_groups(graph)
    assert len({n.id for n in folded.nodes}) == len(folded) == 4


# ---------------------------------------------------------------------------- Mermaid

MERMAID_NODE = re.compile(r'^    (p_\w+)\["([^"\n]*)"\]:::(\w+)$')


def test_mermaid_draws_nodes_edges_and_state_classes() -> None:
    text = to_mermaid(diamond())
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes = [m.groups() for line in lines if (m := MERMAID_NODE.match(line))]
    assert nodes == [
        ("p_a", "a", "succeeded"),
        ("p_b", "b", "failed"),
        ("p_c", "c", "running"),
        ("p_d", "d", "not_run"),
    ]
    assert "    p_a --> p_b" in lines and "    p_c --> p_d" in lines
    classes = {line.split()[1]: line for line in lines if line.startswith("    classDef")}
    assert set(classes) == {"succeeded", "failed", "running", "not_run"}
    assert "fill:#ffcdd2" in classes["failed"]  # red
    assert "fill:#c8e6c9" in classes["succeeded"]  # green
    assert "fill:#fff3b0" in classes["running"]  # yellow
    assert "fill:#e0e0e0" in classes["not_run"]  # grey


def test_mermaid_ids_are_safe_and_unique() -> None:
    graph = ProcessGraph()
    for name in ("end", "a-b", "a b", "a_b", "1st", HOSTILE):
        graph.add_node(name)
    ids = [m.group(1) for line in to_mermaid(graph).splitlines() if (m := MERMAID_NODE.match(line))]
    assert len(ids) == len(set(ids)) == 6
    assert all(re.fullmatch(r"p_\w+", i) for i in ids)


def test_mermaid_escapes_hostile_labels() -> None:
    graph = ProcessGraph()
    graph.add_node("x", label=HOSTILE, state="failed")
    graph.add_node("y")
    graph.add_edge("x", "y")
    lines = to_mermaid(graph).splitlines()
    match = MERMAID_NODE.match(lines[1])
    assert match, lines[1]
    label = match.group(2)
    bare = re.sub(r"#\d+;", "", label.replace("<br/>", ""))  # without our entities
    assert not set(bare) & set('"<>`;%[]{}|&#\x00\x1b\t\n'), bare
    assert "#60;script#62;" in label and "#34;x#34;" in label and "--#62;" in label
    edges = [line for line in lines if "-->" in line]
    assert edges == ["    p_x --> p_y"]  # the label's arrow did not become an edge


# ---------------------------------------------------------------------------- DOT

DOT_STRING = r'"(?:[^"\\\n]|\\.)*"'


def test_dot_draws_nodes_edges_and_state_colours() -> None:
    text = to_dot(diamond())
    assert text.startswith("digraph maestro {\n") and text.endswith("}\n")
    assert '    "a" -> "b";' in text and '    "c" -> "d";' in text
    assert re.search(r'"b" \[label="b", fillcolor="#ffcdd2", color="#c62828"', text)
    assert re.search(r'"a" \[label="a", fillcolor="#c8e6c9"', text)
    assert 'style="rounded,filled,dashed"' in text  # not run


def test_dot_quotes_hostile_ids_and_labels() -> None:
    graph = ProcessGraph()
    graph.add_node(HOSTILE, label=HOSTILE, state="failed")
    graph.add_node("plain\\")  # a trailing backslash must not escape the closing quote
    graph.add_edge(HOSTILE, "plain\\")
    lines = to_dot(graph).splitlines()
    node_line = re.compile(rf"^    {DOT_STRING} \[label={DOT_STRING}, .*\];$")
    assert node_line.match(lines[4]), lines[4]
    assert node_line.match(lines[5]), lines[5]
    assert re.match(rf"^    {DOT_STRING} -> {DOT_STRING};$", lines[6]), lines[6]
    assert '\\"x\\"' in lines[4] and "\\\\N" in lines[4] and "\\n--> end" in lines[4]


@needs_dot
def test_dot_output_is_accepted_by_graphviz_with_labels_intact() -> None:
    graph = ProcessGraph()
    graph.add_node(HOSTILE, label=HOSTILE, state="failed")
    graph.add_node("b")
    graph.add_edge(HOSTILE, "b")
    root = parse_svg(to_svg(graph, use_dot=True))
    texts = svg_texts(root)
    assert '<script>alert("x")</script>' in texts
    assert any(t.startswith("--> end; %% `b` #1 \\N") for t in texts), texts


# ---------------------------------------------------------------------------- SVG


def test_svg_fallback_is_well_formed_with_a_legend(no_dot: None) -> None:
    graph = diamond()
    graph.add_node("evil", label=HOSTILE, state="aborted")
    graph.add_edge("d", "evil")
    root = parse_svg(to_svg(graph))
    assert root.tag == f"{SVG}svg"
    texts = svg_texts(root)
    assert {"succeeded", "failed", "running", "not run", "aborted"} <= set(texts)  # the legend
    assert '<script>alert("x")</script>' in texts
    nodes = [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    assert len(nodes) == 5
    edges = [p for p in root.iter(f"{SVG}path") if p.get("marker-end")]
    assert len(edges) == 5


def _box_tops(svg: str) -> dict[str, float]:
    tops = {}
    for group in parse_svg(svg).iter(f"{SVG}g"):
        if group.get("class") == "node":
            title = group.findtext(f"{SVG}title") or ""
            rect = group.find(f"{SVG}rect")
            assert rect is not None
            tops[title.split(" (")[0]] = float(rect.get("y", "nan"))
    return tops


def test_svg_fallback_draws_a_diamond_top_down() -> None:
    tops = _box_tops(to_svg(diamond(), use_dot=False))
    assert tops["a"] < tops["b"] == tops["c"] < tops["d"]


def test_svg_fallback_orders_layers_to_avoid_crossings() -> None:
    """Barycenter ordering should uncross a -> y, b -> x when x comes first."""
    ordered = _svg.order_layers([[0, 1], [3, 2]], [(0, 2), (1, 3)])
    assert ordered == [[0, 1], [2, 3]]


def test_svg_fallback_wraps_a_wide_layer(no_dot: None) -> None:
    tops = _box_tops(to_svg(fan_out(100), collapse=False))
    rows = {tops[f"align_{i}"] for i in range(100)}
    assert len(rows) == -(-100 // _svg.MAX_PER_ROW)


@needs_dot
def test_svg_uses_graphviz_when_installed() -> None:
    text = to_svg(diamond())
    assert "Generated by graphviz" in text
    root = parse_svg(text)
    assert {"a", "b", "c", "d", "not run"} <= set(svg_texts(root))


def test_svg_falls_back_when_dot_is_missing(no_dot: None) -> None:
    text = to_svg(diamond())
    assert "graphviz" not in text.lower()
    parse_svg(text)
    with pytest.raises(UnsupportedError, match="dot"):
        to_svg(diamond(), use_dot=True)


def test_svg_falls_back_when_dot_fails(broken_dot: None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="libmaestro.graph"):
        text = to_svg(diamond())
    parse_svg(text)
    assert "built-in layout" in caplog.text and "syntax error" in caplog.text
    with pytest.raises(MaestroError, match="exit 1"):
        to_svg(diamond(), use_dot=True)


def test_svg_never_calls_dot_when_told_not_to(broken_dot: None) -> None:
    parse_svg(to_svg(diamond(), use_dot=False))


def test_renderers_keep_a_large_fan_out_readable() -> None:
    graph = fan_out(100, failed=3)
    assert to_mermaid(graph).count('["') == 3
    assert to_dot(graph).count("[label=") == 3
    assert "align \u00d7100 (97 ok, 3 failed)" in svg_texts(parse_svg(to_svg(graph, use_dot=False)))
    assert to_mermaid(graph, collapse=False).count('["') == 102
    assert to_dot(graph, threshold=200).count("[label=") == 102


def test_renderers_draw_a_10000_process_fan_out_quickly() -> None:
    graph = fan_out(10_000, failed=7)
    renderers: list[Callable[[ProcessGraph], str]] = [
        to_mermaid,
        to_dot,
        functools.partial(to_svg, use_dot=False),
    ]
    if HAS_DOT:
        renderers.append(functools.partial(to_svg, use_dot=True))
    for render in renderers:
        started = time.perf_counter()
        text = render(graph)
        elapsed = time.perf_counter() - started
        assert elapsed < 2.0, f"{render} took {elapsed:.2f}s"
        assert "9993 ok, 7 failed" in text


def test_renderers_draw_an_empty_graph() -> None:
    empty = ProcessGraph()
    assert to_mermaid(empty) == "flowchart TD\n"
    assert to_dot(empty).endswith("}\n")
    parse_svg(to_svg(empty, use_dot=False))


def test_svg_fallback_keeps_10_stages_of_100_samples_readable() -> None:
    """Each stage of a per-sample chain should fold into one node: ten boxes in a column."""
    graph = ProcessGraph()
    stages = [f"stage{s}" for s in range(10)]
    for sample in range(100):
        for depth, stage in enumerate(stages):
            graph.add_node(f"{stage}_{sample}", group=stage, state="succeeded")
            if depth:
                graph.add_edge(f"{stages[depth - 1]}_{sample}", f"{stage}_{sample}")
    tops = _box_tops(to_svg(graph, use_dot=False))
    assert list(tops) == [f"{stage} \u00d7100" for stage in stages]
    assert sorted(tops.values()) == list(tops.values())
