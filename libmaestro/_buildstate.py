"""What `maestro build` remembers between builds, in the project's `.maestro/` directory.

- `build-cache.json`: per-script results (ShellCheck findings, dependencies), keyed by a hash of
  everything that determines them, so an edit re-checks only the scripts it touched.
- `build-state.json`: the previous build's result and the size and mtime of every file it read;
  while none of those changed, a build is answered from it without reading any source.

Both are caches: a missing, corrupt or foreign file only means more work, never a wrong answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from libmaestro._fs import atomic_write_text
from libmaestro.findings import BuildResult, result_from_json, result_to_json

CACHE_FILE = ".maestro/build-cache.json"
STATE_FILE = ".maestro/build-state.json"
CACHE_VERSION = 1
STATE_VERSION = 1


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ScriptCache:
    """Per-script results from earlier builds; a corrupt or foreign file is simply ignored."""

    def __init__(self, root: Path) -> None:
        self.path = root / CACHE_FILE
        self.entries: dict[str, dict[str, Any]] = {}
        self.used: dict[str, dict[str, Any]] = {}
        data = _read_json(self.path)
        if data is not None and data.get("version") == CACHE_VERSION:
            scripts = data.get("scripts")
            self.entries = dict(scripts) if isinstance(scripts, dict) else {}

    def get(self, digest: str) -> dict[str, Any] | None:
        found = self.entries.get(digest)
        if found is not None:
            self.used[digest] = found
        return found

    def put(self, digest: str, entry: dict[str, Any]) -> None:
        self.used[digest] = entry

    def save(self, *, complete: bool) -> None:
        # After a complete build only what it used is kept, so the file does not grow with every
        # edit; a partial one (no ShellCheck) keeps the rest for the next complete build.
        kept = self.used if complete else {**self.entries, **self.used}
        text = json.dumps({"version": CACHE_VERSION, "scripts": kept}, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, text)


def file_stamps(paths: Iterable[Path]) -> dict[str, list[int] | None]:
    """Size and mtime (ns) of each file, None for one that does not exist."""
    stamps: dict[str, list[int] | None] = {}
    for path in paths:
        try:
            info = path.stat()
            stamps[str(path)] = [info.st_size, info.st_mtime_ns]
        except OSError:
            stamps[str(path)] = None
    return stamps


def load_unchanged(root: Path, *, options: dict[str, Any]) -> BuildResult | None:
    """The previous result if it was made with `options` and no file it read has changed."""
    data = _read_json(root / STATE_FILE)
    if data is None or data.get("version") != STATE_VERSION or data.get("options") != options:
        return None
    files = data.get("files")
    if not isinstance(files, dict) or file_stamps(Path(p) for p in files) != files:
        return None
    try:
        return result_from_json(data["result"])
    except (KeyError, TypeError, ValueError):
        return None


def save_state(
    root: Path, *, options: dict[str, Any], files: Iterable[Path], result: BuildResult
) -> None:
    data = {
        "version": STATE_VERSION,
        "options": options,
        "files": file_stamps(files),
        "result": result_to_json(result),
    }
    path = root / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, sort_keys=True))
