"""Shared rendering helpers: the versioned JSON envelope every `--json` output uses."""

from __future__ import annotations

from typing import Any

import libmaestro

JSON_SCHEMA_VERSION = 1


def json_envelope(command: str, result: Any) -> dict[str, Any]:
    """`{"maestro": version, "schema": 1, "command": ..., "result": ...}`."""
    return {
        "maestro": libmaestro.__version__,
        "schema": JSON_SCHEMA_VERSION,
        "command": command,
        "result": result,
    }
