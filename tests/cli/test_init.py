"""`maestro init`: scaffolds that run as created, and nothing of the user's overwritten."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from cli_helpers import fasta_stats, sessions, shown

import libmaestro


def test_init_creates_the_documented_layout(maestro, tmp_path: Path) -> None:
    result = maestro("init", str(tmp_path / "My Pipeline"))
    assert result.exit_code == 0, shown(result)
    project = tmp_path / "My Pipeline"
    for name in ("pyproject.toml", "Maestro.toml", "workflow.py", "README.md", ".gitignore"):
        assert (project / name).is_file(), name
    assert any((project / "data").iterdir())
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "my-pipeline"
    assert pyproject["tool"]["maestro"]["entry"] == "workflow.py"
    assert "maestro_work/" in (project / ".gitignore").read_text()
    assert "cd " in result.output and "maestro run" in result.output


@pytest.mark.parametrize("template", libmaestro.list_templates())
def test_init_scaffold_runs_unchanged(maestro, maestro_process, tmp_path: Path, template) -> None:
    assert maestro("init", str(tmp_path / "demo"), "--template", template).exit_code == 0
    result = maestro_process("run", cwd=tmp_path / "demo")
    assert result.returncode == 0, shown(result)
    assert "Traceback" not in result.stderr


def test_init_default_scaffold_computes_the_right_summary(
    maestro, maestro_process, tmp_path: Path
) -> None:
    project = tmp_path / "demo"
    assert maestro("init", str(project)).exit_code == 0
    result = maestro_process("run", cwd=project)
    assert result.returncode == 0, shown(result)
    (session,) = sessions(project)
    rows = (session / "merge" / "summary.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["sample", "sequences", "bases", "gc_fraction"]
    expected = []
    for fasta in sorted((project / "data").glob("*.fasta")):
        count, bases, gc = fasta_stats(fasta, min_length=4)
        expected.append([fasta.stem, str(count), str(bases), f"{gc:.3f}"])
    assert [row.split("\t") for row in rows[1:]] == expected
    assert str(session / "merge" / "summary.tsv") in result.stdout


def test_init_refuses_a_non_empty_directory(maestro, tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = maestro("init", str(target))
    assert result.exit_code == 2, shown(result)
    assert "not empty" in result.output and "--force" in result.output
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_init_force_keeps_existing_files(maestro, tmp_path: Path) -> None:
    (tmp_path / "Maestro.toml").write_text("# my own config\n")
    result = maestro("init", str(tmp_path), "--force")
    assert result.exit_code == 0, shown(result)
    assert (tmp_path / "Maestro.toml").read_text() == "# my own config\n"
    assert "kept existing" in result.output
    assert (tmp_path / "workflow.py").is_file()


def test_init_unknown_template_is_a_usage_error(maestro, tmp_path: Path) -> None:
    result = maestro("init", str(tmp_path / "x"), "--template", "nope")
    assert result.exit_code == 2, shown(result)
    assert "no template 'nope'" in result.output and "default" in result.output
    assert not (tmp_path / "x").exists()


def test_init_lists_templates(maestro) -> None:
    result = maestro("init", "--list-templates")
    assert result.exit_code == 0, shown(result)
    assert result.output.split() == libmaestro.list_templates()


def test_version_prints_the_library_version(maestro) -> None:
    result = maestro("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"maestro {libmaestro.__version__}"
