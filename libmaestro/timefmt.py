"""Times and durations as the CLI and the UI show them, in one place so both read the same."""

from __future__ import annotations

from datetime import datetime


def format_time(at: float | None) -> str:
    """`2026-11-23 14:05:09` in local time; "" for no time."""
    return "" if at is None else f"{datetime.fromtimestamp(at):%Y-%m-%d %H:%M:%S}"


def format_duration(seconds: float | None) -> str:
    """`4.2s`, `3m07s`, `2h05m`, `1d03h`; "" for no duration."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
