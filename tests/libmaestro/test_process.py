"""Tests for libmaestro.process: declaring a process, preparing its script, reading its outputs."""

from __future__ import annotations

import copy
import pickle
import subprocess
from pathlib import Path

import pytest

from libmaestro import Process, ProcessDefinitionError, ProcessOutputs
from libmaestro.process import prepare_script


def make(**fields: object) -> Process:
    fields.setdefault("name", "p")
    fields.setdefault("script", "true")
    return Process(**fields)  # type: ignore[arg-type]  # fields are deliberately untyped here


# --- process names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a/b", "slash"),
        ("a\\b", "slash"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        (".hidden", "starts with '.'"),
        ("tab\there", "control character"),
        ("new\nline", "control character"),
        ("nul\x00byte", "control character"),
        ("x" * 201, "longer than 200"),
    ],
)
def test_process_name_invalid_is_rejected_with_reason(name: str, reason: str) -> None:
    with pytest.raises(ProcessDefinitionError) as caught:
        make(name=name)
    message = str(caught.value)
    assert reason in message
    assert repr(name) in message
    assert "for example" in message


@pytest.mark.parametrize("name", ["align_sample1", "a-b", "v1.2", "x" * 200, "Ünïcode"])
def test_process_name_valid_is_kept(name: str) -> None:
    assert make(name=name).name == name


# --- variable names ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["inputs", "outputs", "args"])
@pytest.mark.parametrize("var", ["1abc", "a-b", "a b", "", "ä"])
def test_process_variable_not_identifier_is_rejected(tmp_path: Path, role: str, var: str) -> None:
    value = str(tmp_path) if role == "inputs" else "x.txt"
    with pytest.raises(ProcessDefinitionError, match="is not a shell variable name"):
        make(**{role: {var: value}})


@pytest.mark.parametrize(
    "var", ["PATH", "IFS", "BASH_ENV", "LD_PRELOAD", "HOME", "MAESTRO_WORKDIR", "MAESTRO_x"]
)
def test_process_variable_reserved_is_rejected(var: str) -> None:
    with pytest.raises(ProcessDefinitionError, match="would override an environment variable"):
        make(args={var: "1"})


def test_process_variable_in_two_roles_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ProcessDefinitionError, match="declared as both input and output"):
        make(inputs={"data": tmp_path}, outputs={"data": "out.txt"})
    with pytest.raises(ProcessDefinitionError, match="declared as both output and arg"):
        make(outputs={"x": "out.txt"}, args={"x": "1"})


# --- outputs, inputs, args -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/abs/out.txt", "../out.txt", "a/../../b", "a/..", ".", "./"])
def test_process_output_outside_workdir_is_rejected(path: str) -> None:
    with pytest.raises(ProcessDefinitionError, match="relative to the process's working directory"):
        make(outputs={"out": path})


def test_process_output_relative_path_is_kept() -> None:
    assert make(outputs={"out": "sub/x.txt"}).outputs == {"out": Path("sub/x.txt")}


def test_process_input_list_is_rejected_with_hint(tmp_path: Path) -> None:
    with pytest.raises(ProcessDefinitionError) as caught:
        make(inputs={"reads": [tmp_path / "a", tmp_path / "b"]})
    message = str(caught.value)
    assert "'reads' must be one path" in message
    assert "one path per variable" in message


def test_process_input_relative_is_resolved_against_cwd_at_creation(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = make(inputs={"data": "data/x.txt"})
    monkeypatch.chdir(tmp_path)
    assert proc.inputs["data"] == isolated_env / "data" / "x.txt"
    assert proc.inputs["data"].is_absolute()


def test_process_args_numbers_become_strings() -> None:
    proc = make(args={"n": 3, "ratio": 0.5, "s": "text"})
    assert proc.args == {"n": "3", "ratio": "0.5", "s": "text"}


@pytest.mark.parametrize("value", [None, ["a"], ("a",), {"a": 1}])
def test_process_args_none_or_collection_is_rejected(value: object) -> None:
    with pytest.raises(ProcessDefinitionError, match="arg 'v' must be a string"):
        make(args={"v": value})


def test_process_script_not_a_string_is_rejected() -> None:
    with pytest.raises(ProcessDefinitionError, match="script must be a string"):
        make(script=["echo", "hi"])


# --- prepare_script ------------------------------------------------------------------------


def test_prepare_script_dedents_strips_and_adds_shebang() -> None:
    source = """
        echo one
          echo indented
        echo two
    """
    assert prepare_script(source).text == "#!/bin/bash\necho one\n  echo indented\necho two\n"
    assert prepare_script(source).shebang_added


def test_prepare_script_keeps_a_given_shebang() -> None:
    source = """
        #!/usr/bin/env python3
        print("hi")
    """
    prepared = prepare_script(source)
    assert prepared.text == '#!/usr/bin/env python3\nprint("hi")\n'
    assert not prepared.shebang_added


def test_prepare_script_keeps_bash_shebang_once() -> None:
    text = prepare_script("\n    #!/bin/bash\n    cat x\n").text
    assert text == "#!/bin/bash\ncat x\n"


def test_prepare_script_first_line_on_the_quote_line() -> None:
    source = """cat "$a"
            sort "$b"
              | uniq
    """
    assert prepare_script(source).text == '#!/bin/bash\ncat "$a"\nsort "$b"\n  | uniq\n'


def test_prepare_script_keeps_inner_blank_lines_and_empty_script() -> None:
    assert prepare_script("\n  a\n\n    \n  b\n\n").text == "#!/bin/bash\na\n\n\nb\n"
    assert prepare_script("   \n\n").text == "#!/bin/bash\n"


def test_prepare_script_tabs_preserved_and_heredoc_runs(tmp_path: Path) -> None:
    """A `<<-` here-document indented with tabs should still end at its tab-indented marker."""
    source = "\n    cat <<-EOF\n    \tline one\n    \t\tline two\n    \tEOF\n    echo after\n"
    text = prepare_script(source).text
    assert "\tline one\n\t\tline two\n\tEOF\n" in text
    script = tmp_path / "s.sh"
    script.write_text(text)
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "line one\nline two\nafter\n"


# --- ProcessOutputs ------------------------------------------------------------------------


@pytest.fixture
def outputs(tmp_path: Path) -> ProcessOutputs:
    return ProcessOutputs({"bam": tmp_path / "a.bam", "bai": tmp_path / "a.bai"}, tmp_path)


def test_process_outputs_order_is_outputs_then_workdir(
    outputs: ProcessOutputs, tmp_path: Path
) -> None:
    assert list(outputs) == [tmp_path / "a.bam", tmp_path / "a.bai", tmp_path]
    assert len(outputs) == 3
    assert outputs[-1] == tmp_path
    bam, bai, workdir = outputs
    assert (bam.name, bai.name, workdir) == ("a.bam", "a.bai", tmp_path)


def test_process_outputs_access_by_name(outputs: ProcessOutputs, tmp_path: Path) -> None:
    assert outputs.bam == tmp_path / "a.bam"
    assert outputs["bai"] == tmp_path / "a.bai"
    assert outputs.workdir == tmp_path
    assert outputs.outputs == (tmp_path / "a.bam", tmp_path / "a.bai")
    assert outputs.as_dict() == {"bam": tmp_path / "a.bam", "bai": tmp_path / "a.bai"}


def test_process_outputs_unknown_name_lists_declared(outputs: ProcessOutputs) -> None:
    with pytest.raises(AttributeError) as caught:
        _ = outputs.cram
    assert "'cram'" in str(caught.value)
    assert "['bam', 'bai']" in str(caught.value)
    with pytest.raises(AttributeError, match="no output named 'sam'"):
        _ = outputs["sam"]


def test_process_outputs_equal_to_list(outputs: ProcessOutputs, tmp_path: Path) -> None:
    assert outputs == [tmp_path / "a.bam", tmp_path / "a.bai", tmp_path]
    assert outputs == (tmp_path / "a.bam", tmp_path / "a.bai", tmp_path)
    assert outputs != [tmp_path / "a.bam", tmp_path]
    assert repr(outputs) == repr([str(tmp_path / "a.bam"), str(tmp_path / "a.bai"), str(tmp_path)])


@pytest.mark.parametrize(
    "clone", [copy.copy, copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))]
)
def test_process_outputs_copy_and_pickle_round_trip(clone, tmp_path: Path) -> None:
    """A result should survive copying and pickling (e.g. returned from a process pool)."""
    original = ProcessOutputs({"bam": tmp_path / "a.bam", "_meta": tmp_path / "m"}, tmp_path)
    cloned = clone(original)
    assert cloned == original
    assert cloned.bam == tmp_path / "a.bam"
    assert cloned._meta == cloned["_meta"] == tmp_path / "m"
    assert cloned.workdir == tmp_path
