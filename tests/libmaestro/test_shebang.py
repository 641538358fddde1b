"""How a local script is started: its `#!` line read as the kernel reads it, then real runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from libmaestro.launch import shebang_command


@pytest.mark.parametrize(
    ("first_line", "argv"),
    [
        ("#!/bin/bash", ["/bin/bash", "S"]),
        ("#! /bin/bash", ["/bin/bash", "S"]),
        ("#!/bin/bash -eu", ["/bin/bash", "-eu", "S"]),
        ("#!/usr/bin/env python3", ["/usr/bin/env", "python3", "S"]),
        # Linux passes everything after the interpreter as one argument, spaces included.
        ("#!/usr/bin/env -S bash -e", ["/usr/bin/env", "-S bash -e", "S"]),
        ("#!/bin/bash\t-x ", ["/bin/bash", "-x", "S"]),
    ],
)
def test_shebang_becomes_the_argv_the_kernel_would_build(first_line: str, argv: list[str]) -> None:
    assert shebang_command(f"{first_line}\necho hi\n", "S") == argv


@pytest.mark.parametrize(
    "text",
    [
        "echo no shebang\n",
        "#!bash\necho relative\n",  # the kernel and Popen would look it up differently
        "#!/bin/bash",  # no end of line within what the kernel reads
        "#!/" + "x" * 300 + "\n",
        "#!/bin/bäsh\n",
    ],
)
def test_unusual_first_lines_are_left_to_the_kernel(text: str) -> None:
    assert shebang_command(text, "S") is None


def test_started_argv_runs_the_script_as_exec_would(tmp_path: Path) -> None:
    script = tmp_path / "s.sh"
    script.write_text('#!/bin/bash -eu\necho "$0 $1 ${-//[^eu]/}"\n')  # no execute bit needed
    argv = shebang_command(script.read_text(), str(script))
    assert argv is not None

    done = subprocess.run([*argv, "arg"], capture_output=True, text=True, check=True)

    assert done.stdout.split() == [str(script), "arg", "eu"]
