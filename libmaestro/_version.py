"""The version of libmaestro and the maestro command (one place, read by packaging too)."""

from __future__ import annotations

__version__ = "0.1.0"
