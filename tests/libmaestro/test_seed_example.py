"""The seed document's Python API example, run verbatim (only the import line differs)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import LOCAL_CONFIG, run_program, shown

from libmaestro.session import WORK_DIR_NAME

# Copied from seeds/004, "Core API"; the seed imports `maestro`, the package is `libmaestro`.
SEED_EXAMPLE = '''from libmaestro import *

proc_inputs = {
    "test_fasta": "data/seq1.fasta",
    "test_dir": "data/",
}
proc_outputs = {
    "output_path": "out.txt"
}
proc = Process(
    name = "my_proc",
    inputs = proc_inputs,
    outputs = proc_outputs,
    args = {},
    script =
    """
    #!/bin/bash
    cat "$test_fasta"
    tree "$test_dir" > "$output_path"
    """
)

proc_executor = executor("default")
output_files = proc_executor.exe(proc)
print(output_files)
'''

FASTA = ">seq1 test sequence\nACGTACGTACGT\nGGCCAATT\n"


@pytest.fixture
def tree_command() -> str:
    found = shutil.which("tree")
    if found is None:
        message = "the seed example needs `tree`; install tree: apt-get install tree"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_seed_example_runs_verbatim(tree_command: str, tmp_path: Path) -> None:
    project = tmp_path / "seed_project"
    (project / "data").mkdir(parents=True)
    (project / "Maestro.toml").write_text(LOCAL_CONFIG)
    (project / "data" / "seq1.fasta").write_text(FASTA)
    (project / "workflow.py").write_text(SEED_EXAMPLE)

    result = run_program(project / "workflow.py", cwd=project)

    assert result.returncode == 0, shown(result)
    (session,) = (project / WORK_DIR_NAME).iterdir()
    workdir = session / "my_proc"
    printed = ast.literal_eval(result.stdout.strip())
    assert printed == [str(workdir / "out.txt"), str(workdir)]
    # `cat "$test_fasta"` went to the process's stdout file, not the program's.
    assert (workdir / ".maestro.out").read_text() == FASTA
    # out.txt is `tree` of the staged data directory: its path, then what tree shows of data/.
    tree_lines = (workdir / "out.txt").read_text().splitlines()
    assert tree_lines[0] == str(workdir / "data")
    reference = subprocess.run(
        [tree_command, str(project / "data")], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert tree_lines[1:] == reference[1:]
    assert any(line.endswith("seq1.fasta") for line in tree_lines)
