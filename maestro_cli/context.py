"""What every command gets from the root callback."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True)
class CliContext:
    debug: bool
    program_args: tuple[str, ...] = ()  # what followed `--` on the command line

    # The consoles (and rich) are made on first use: a successful `maestro run` and
    # `maestro CMD --help` print nothing through them, and importing rich takes a while.
    @cached_property
    def console(self) -> Console:
        """Results, to stdout."""
        from rich.console import Console

        return Console(highlight=False, soft_wrap=True)

    @cached_property
    def errors(self) -> Console:
        """Messages and errors, to stderr."""
        from rich.console import Console

        return Console(file=sys.stderr, highlight=False, soft_wrap=True)

    @classmethod
    def create(cls, *, debug: bool, program_args: Sequence[str] = ()) -> CliContext:
        return cls(debug=debug, program_args=tuple(program_args))
