"""Helpers shared by the CLI tests."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class HasOutput(Protocol):
    exit_code: int
    output: str


def shown(result: subprocess.CompletedProcess[str] | HasOutput) -> str:
    """Everything a user saw, for assertion messages."""
    if not isinstance(result, subprocess.CompletedProcess):
        return result.output
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def fasta_stats(path: Path, min_length: int) -> tuple[int, int, float]:
    """The default scaffold's statistics computed independently, in Python."""
    sequences: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            sequences.append("")
        elif sequences:
            sequences[-1] += line.strip()
    kept = [s for s in sequences if len(s) >= min_length]
    bases = sum(map(len, kept))
    gc = sum(s.upper().count("G") + s.upper().count("C") for s in kept)
    return len(kept), bases, (gc / bases if bases else 0.0)


def sessions(project: Path) -> Sequence[Path]:
    work = project / "maestro_work"
    return sorted(p for p in work.iterdir() if p.is_dir()) if work.exists() else []
