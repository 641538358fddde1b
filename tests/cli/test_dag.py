"""`maestro dag`: pictures of a recorded run, and the static approximation before any run."""

from __future__ import annotations

import os
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from libmaestro.graph import GRAPH_FILE, ProcessGraph, save_graph
from maestro_cli import app as app_module

# What `maestro dag` needs from the package; exported by libmaestro/__init__.py.

WORKFLOW = """
import libmaestro as maestro


@maestro.main
def main():
    maestro.process(
        name="count",
        executor="default",
        inputs={"reads": "reads.fq"},
        outputs={"counts": "counts.txt"},
        script='wc -l < "$reads" > "$counts"',
    )
    maestro.process(
        name="report",
        executor="default",
        inputs={"counts": "counts.txt"},
        outputs={"report": "report.txt"},
        script='cat "$counts" > "$report"',
    )


if __name__ == "__main__":
    main()
"""


Invoke = Callable[..., Result]


@pytest.fixture
def maestro_dag(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run `maestro dag ARGS` in this process; stdout and stderr stay apart."""
    app = app_module.app

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, ["dag", *args], obj={}, catch_exceptions=False)

    return invoke


def recorded_run(root: Path, session: str = "brave-otter", *, mtime: int = 2_000) -> Path:
    graph = ProcessGraph()
    graph.add_node("split", state="succeeded")
    graph.add_node("merge", state="not_run")
    for i in range(100):
        graph.add_node(f"align_{i}", group="align", state="failed" if i < 3 else "succeeded")
        graph.add_edge("split", f"align_{i}")
        graph.add_edge(f"align_{i}", "merge")
    path = root / "maestro_work" / session / GRAPH_FILE
    path.parent.mkdir(parents=True)
    save_graph(graph, path)
    os.utime(path, (mtime, mtime))
    return root


def tiny_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "tiny"\nversion = "0.1.0"\n\n[tool.maestro]\nentry = "workflow.py"\n'
    )
    (root / "Maestro.toml").write_text('[executor.default]\ntype = "Local"\n')
    (root / "workflow.py").write_text(textwrap.dedent(WORKFLOW).lstrip())
    return root


def test_dag_prints_the_newest_run_as_mermaid(maestro_dag: Invoke, tmp_path: Path) -> None:
    root = recorded_run(tmp_path / "p")
    result = maestro_dag(str(root))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    assert any('["align \u00d7100 (97 ok, 3 failed)"]:::failed' in line for line in lines)
    assert any(line.startswith("    classDef failed fill:#ffcdd2") for line in lines)
    assert "session brave-otter: 102 processes" in result.stderr


def test_dag_prints_dot(maestro_dag: Invoke, tmp_path: Path) -> None:
    root = recorded_run(tmp_path / "p")
    result = maestro_dag(str(root), "--format", "dot")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("digraph maestro {")
    assert '"split" -> "align \u00d7";' in result.stdout


def test_dag_prints_svg(maestro_dag: Invoke, tmp_path: Path) -> None:
    root = recorded_run(tmp_path / "p")
    result = maestro_dag(str(root), "-f", "svg")
    assert result.exit_code == 0, result.output
    svg = ET.fromstring(result.stdout.encode("utf-8"))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"


def test_dag_writes_a_file_in_the_format_of_its_suffix(maestro_dag: Invoke, tmp_path: Path) -> None:
    root = recorded_run(tmp_path / "p")
    out = tmp_path / "dag.svg"
    result = maestro_dag(str(root), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote {out}" in result.stderr
    ET.fromstring(out.read_bytes())
    mermaid = tmp_path / "dag.txt"
    result = maestro_dag(str(root), "-o", str(mermaid), "-f", "mermaid")
    assert result.exit_code == 0, result.output
    assert mermaid.read_text().startswith("flowchart TD\n")


def test_dag_draws_a_named_session(maestro_dag: Invoke, tmp_path: Path) -> None:
    root = recorded_run(tmp_path / "p", "older-owl", mtime=1_000)
    newest = root / "maestro_work" / "newer-newt" / GRAPH_FILE
    newest.parent.mkdir()
    small = ProcessGraph()
    small.add_node("only")
    save_graph(small, newest)
    assert "only" in maestro_dag(str(root)).stdout
    result = maestro_dag(str(root), "--session", "older-owl")
    assert result.exit_code == 0, result.output
    assert "align" in result.stdout and '"only"' not in result.stdout


def test_dag_no_collapse_draws_every_process(maestro_dag: Invoke, tmp_path: Path) -> None:
    root = recorded_run(tmp_path / "p")
    result = maestro_dag(str(root), "--no-collapse")
    assert result.exit_code == 0, result.output
    assert result.stdout.count('["align_') == 100


def test_dag_rejects_an_unknown_session(maestro_dag: Invoke, tmp_path: Path) -> None:
    root = recorded_run(tmp_path / "p")
    result = maestro_dag(str(root), "--session", "no-such-run")
    assert result.exit_code == 2, result.output
    assert "no session 'no-such-run'" in result.stderr and "brave-otter" in result.stderr


def test_dag_rejects_an_unknown_format(maestro_dag: Invoke, tmp_path: Path) -> None:
    root = recorded_run(tmp_path / "p")
    result = maestro_dag(str(root), "--format", "png")
    assert result.exit_code == 2, result.output
    assert "--format" in result.stderr and "mermaid, dot, svg" in result.stderr


def test_dag_before_any_run_shows_the_process_sites(maestro_dag: Invoke, tmp_path: Path) -> None:
    root = tiny_project(tmp_path / "tiny")
    result = maestro_dag(str(root))
    assert result.exit_code == 0, result.output
    nodes = [line for line in result.stdout.splitlines() if ":::pending" in line]
    assert [line.split('"')[1] for line in nodes] == ["count", "report"]
    assert "-->" not in result.stdout  # data flow is only known once the workflow runs
    assert "no recorded run" in result.stderr


def test_dag_before_any_run_in_the_current_directory(
    maestro_dag: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_project(tmp_path / "tiny"))
    result = maestro_dag("-f", "dot")
    assert result.exit_code == 0, result.output
    assert 'label="count"' in result.stdout and 'label="report"' in result.stdout


def test_dag_without_a_project_or_run_is_an_error(maestro_dag: Invoke, tmp_path: Path) -> None:
    result = maestro_dag(str(tmp_path / "nowhere"))
    assert result.exit_code == 2, result.output
    assert "does not exist" in result.stderr
