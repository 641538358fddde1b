"""`python -m maestro_cli` is the same as `maestro`."""

from __future__ import annotations

from maestro_cli.app import main

main()
