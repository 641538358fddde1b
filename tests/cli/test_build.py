"""`maestro build` and the checks `maestro run` makes with it, on real projects and ShellCheck."""

from __future__ import annotations

import json
import os
import textwrap
import tomllib
from pathlib import Path

from cli_helpers import sessions, shown

PYPROJECT = '[project]\nname = "p"\nversion = "0.1.0"\n\n[tool.maestro]\nentry = "workflow.py"\n'
CONFIG = '[executor.default]\ntype = "Local"\n\n[executor.slurm]\ntype = "Local"\n'


def project(
    root: Path,
    workflow: str,
    *,
    files: dict[str, str] | None = None,
    pyproject: str = PYPROJECT,
    config: str = CONFIG,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(pyproject)
    (root / "Maestro.toml").write_text(config)
    (root / "workflow.py").write_text(textwrap.dedent(workflow).lstrip())
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip())
    return root


def position_of(path: Path, needle: str, offset: int = 0) -> tuple[int, int]:
    """1-based line and column of the first `needle` in a file (plus `offset` characters)."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number, line.index(needle) + 1 + offset
    raise AssertionError(f"{needle!r} not in {path}")


SYNTAX_ERROR = '''
import libmaestro as maestro


@maestro.main
def main():
    maestro.process(
        name="check",
        executor="default",
        inputs={"reads": "reads.fq"},
        outputs={"report": "report.txt"},
        script="""
            if [ -s "$reads" ]; then
                wc -l "$reads" > "$report"
            done
        """,
    )


if __name__ == "__main__":
    main()
'''


def test_build_points_a_shell_syntax_error_at_its_python_line(
    maestro, tmp_path: Path, monkeypatch
) -> None:
    root = project(tmp_path / "p", SYNTAX_ERROR)
    monkeypatch.chdir(root)
    result = maestro("build")
    assert result.exit_code == 1, shown(result)
    line, _ = position_of(root / "workflow.py", "done")
    errors = [x for x in result.output.splitlines() if ": error: " in x]
    assert errors, result.output
    assert any(x.startswith(f"workflow.py:{line}:") and "[SC" in x for x in errors), errors


def test_run_refuses_a_workflow_with_errors_before_anything_runs(
    maestro_process, tmp_path: Path
) -> None:
    root = project(tmp_path / "p", SYNTAX_ERROR)
    (root / "reads.fq").write_text("@r\nACGT\n+\nIIII\n")
    result = maestro_process("run", cwd=root)
    assert result.returncode == 2, shown(result)
    assert "error(s) found before the run" in result.stderr
    assert sessions(root) == []
    forced = maestro_process("run", "--no-check", cwd=root)
    assert forced.returncode == 1, shown(forced)  # bash itself rejects the script


def test_build_reports_a_misspelled_executor_at_its_site(maestro, tmp_path: Path) -> None:
    workflow = SYNTAX_ERROR.replace('executor="default"', 'executor="slrum"').replace(
        "done\n", "fi\n"
    )
    root = project(tmp_path / "p", workflow)
    result = maestro("build", str(root))
    assert result.exit_code == 1, shown(result)
    line, col = position_of(root / "workflow.py", '"slrum"')
    expected = f"workflow.py:{line}:{col}: error: executor 'slrum' is not defined"
    assert expected in result.output, result.output
    assert "did you mean 'slurm'?" in result.output


DOCUMENTED = '''
import libmaestro as maestro


def align(sample):
    """Align reads with bwa and sort them.

    Needs about 8 GB of memory per CPU.
    """
    return maestro.process(
        name=f"align_{sample}",
        executor="slurm",
        args={"sample": sample},
        outputs={"bam": "out.bam"},
        dependencies=["!sort", "gatk"],
        script="""
            bwa mem ref.fa "$sample.fq" | samtools sort -o "$bam" -
            sort -u list.txt > /dev/null
        """,
    )


def from_file():
    return maestro.process(
        name="report",
        executor="default",
        doc="Writes the final report.",
        inline=False,
        script="scripts/report.sh",
        outputs={"html": "report.html"},
    )


def dynamic(text):
    return maestro.process(executor="default", script=text)


@maestro.main
def main():
    align("s1")
    from_file()


if __name__ == "__main__":
    main()
'''


def test_build_writes_procinfo_with_docs_and_dependencies(maestro, tmp_path: Path) -> None:
    root = project(
        tmp_path / "p",
        DOCUMENTED,
        files={"scripts/report.sh": 'pandoc -o "$html" notes.md\n'},
    )
    result = maestro("build", str(root))
    assert result.exit_code == 0, shown(result)
    text = (root / "procinfo.toml").read_text()
    data = tomllib.loads(text)
    align_line, align_col = position_of(root / "workflow.py", "maestro.process(")
    align = data[f"workflow.py:{align_line}:{align_col}"]
    assert align == {"executor": "slurm", "deps": ["bwa", "gatk", "samtools"]}
    header = f'["workflow.py:{align_line}:{align_col}"]'
    assert "# Align reads with bwa and sort them.\n#\n# Needs about 8 GB" in text
    assert text.index("# Needs about 8 GB") < text.index(header)
    report = next(v for v in data.values() if v.get("name") == "report")
    assert report == {"name": "report", "executor": "default", "deps": ["pandoc"]}
    assert "# Writes the final report." in text
    dynamic = [v for v in data.values() if v.get("analyzed") is False]
    assert len(dynamic) == 1 and dynamic[0]["executor"] == "default"
    assert "not analysable statically" in result.output


def test_build_procinfo_is_byte_identical_when_nothing_changed(maestro, tmp_path: Path) -> None:
    root = project(
        tmp_path / "p", DOCUMENTED, files={"scripts/report.sh": 'pandoc -o "$html" x.md\n'}
    )
    assert maestro("build", str(root)).exit_code == 0
    procinfo = root / "procinfo.toml"
    before = procinfo.read_bytes()
    os.utime(procinfo, (1_000_000, 1_000_000))
    assert maestro("build", str(root)).exit_code == 0
    assert procinfo.read_bytes() == before
    assert procinfo.stat().st_mtime == 1_000_000  # not even rewritten


def test_build_reuses_unchanged_scripts(maestro, tmp_path: Path) -> None:
    root = project(
        tmp_path / "p", DOCUMENTED, files={"scripts/report.sh": 'pandoc -o "$html" x.md\n'}
    )
    first = maestro("build", str(root), "--json")
    second = maestro("build", str(root), "--json")
    assert first.exit_code == 0 and second.exit_code == 0, shown(second)
    envelope = json.loads(second.output)
    assert set(envelope) == {"maestro", "schema", "command", "result"}
    assert envelope["command"] == "build"
    assert json.loads(first.output)["result"]["sites"] == envelope["result"]["sites"]
    assert "0 scripts checked" in maestro("build", str(root), "--no-shellcheck").output
    (root / "scripts/report.sh").write_text('pandoc -o "$html" y.md\n')
    third = maestro("build", str(root))
    assert "1 scripts checked (1 unchanged)" in third.output, third.output


USAGE = '''
import libmaestro as maestro


@maestro.main
def main():
    maestro.process(
        name="count",
        executor="default",
        inputs={"reads": "r.fq", "unused_ref": "ref.fa"},
        outputs={"counts": "counts.txt", "never": "never.txt", "literal": "lit.txt"},
        script="""
            wc -l $reads > "$counts"
            echo "$sample_name" > lit.txt
        """,
    )


if __name__ == "__main__":
    main()
'''


def test_build_reports_unused_undeclared_and_unwritten_variables(maestro, tmp_path: Path) -> None:
    root = project(tmp_path / "p", USAGE)
    result = maestro("build", str(root))
    assert result.exit_code == 0, shown(result)  # warnings alone do not fail a build
    out = result.output
    assert "input 'unused_ref' is declared but the script never uses $unused_ref" in out
    assert "output 'never' is never written" in out
    assert "'literal'" not in out  # written through its literal path
    line, col = position_of(root / "workflow.py", "$sample_name")
    assert f"workflow.py:{line}:{col}: warning: " in out and "sample_name" in out
    line, col = position_of(root / "workflow.py", "$reads")
    assert f"workflow.py:{line}:{col}: info: " in out and "[SC2086]" in out
    strict = maestro("build", str(root), "--strict")
    assert strict.exit_code == 1, shown(strict)


def test_build_honours_shellcheck_settings_in_pyproject(maestro, tmp_path: Path) -> None:
    settings = PYPROJECT + 'shellcheck_exclude = ["SC2086"]\nshellcheck_severity = "warning"\n'
    root = project(tmp_path / "p", USAGE, pyproject=settings)
    result = maestro("build", str(root))
    assert result.exit_code == 0, shown(result)
    assert "SC2086" not in result.output
    assert ": info: " not in result.output and ": style: " not in result.output


def test_build_rejects_unknown_tool_settings(maestro, tmp_path: Path) -> None:
    root = project(tmp_path / "p", USAGE, pyproject=PYPROJECT + "shellcheck_level = 1\n")
    result = maestro("build", str(root))
    assert result.exit_code == 2, shown(result)
    assert "unknown key(s) shellcheck_level" in result.output


def test_startup_check_uses_the_manifest_while_the_source_is_unchanged(
    maestro, maestro_process, tmp_path: Path
) -> None:
    workflow = SYNTAX_ERROR.replace("done\n", "fi\n")
    root = project(tmp_path / "p", workflow)
    (root / "reads.fq").write_text("@r\nACGT\n+\nIIII\n")
    assert maestro("build", str(root)).exit_code == 0
    manifest = root / ".maestro" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["references"].append(
        {"kind": "executor", "name": "from_manifest", "file": "workflow.py", "line": 1, "col": 1}
    )
    manifest.write_text(json.dumps(data))
    used = maestro_process("run", "--no-check", cwd=root)
    assert used.returncode == 2, shown(used)
    assert "'from_manifest' is not defined" in used.stderr
    (root / "workflow.py").write_text(workflow.replace('name="check"', 'name="check2"'))
    reparsed = maestro_process("run", "--no-check", cwd=root)
    assert reparsed.returncode == 0, shown(reparsed)
