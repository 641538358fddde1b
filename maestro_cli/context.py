"""What every command gets from the root callback."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console


@dataclass(frozen=True, slots=True)
class CliContext:
    console: Console  # results, to stdout
    errors: Console  # messages and errors, to stderr
    debug: bool
    program_args: tuple[str, ...] = ()  # what followed `--` on the command line

    @classmethod
    def create(cls, *, debug: bool, program_args: Sequence[str] = ()) -> CliContext:
        return cls(
            console=Console(highlight=False, soft_wrap=True),
            errors=Console(file=sys.stderr, highlight=False, soft_wrap=True),
            debug=debug,
            program_args=tuple(program_args),
        )
