"""The startup manifest: what `@maestro.main` must check, recorded by `maestro build`.

A workflow then starts without parsing its source again when nothing changed, and a bundled
program (which has no source to parse) checks the same things from the manifest it carries.
The manifest is trusted only while every module it was made from still has the same content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from libmaestro._fs import atomic_write_text

if TYPE_CHECKING:
    from libmaestro.analysis import ConfigReference, ModuleSource

MANIFEST_FILE = ".maestro/manifest.json"
MANIFEST_VERSION = 1


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def write_manifest(
    root: Path, modules: Sequence[ModuleSource], references: Sequence[ConfigReference]
) -> Path:
    """Record the modules (by content hash) and the config references found in them."""
    data = {
        "version": MANIFEST_VERSION,
        "modules": {_relative(m.path, root): _hash(m.source) for m in modules},
        "references": [
            {"kind": r.kind.value, "name": r.name, "file": _relative(r.file, root),
             "line": r.line, "col": r.col}
            for r in references
        ],
    }  # fmt: skip
    path = root / MANIFEST_FILE
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)
    return path


def manifest_references(root: Path, entry: Path) -> list[ConfigReference] | None:
    """The recorded references if the manifest is present and still describes the source.

    None means "parse the source instead": no manifest, another entry module, or any module
    changed, vanished or unreadable.
    """
    # Imported here, like in `startup`: `import libmaestro` alone should not load the analysis.
    from libmaestro.analysis import ConfigReference, ReferenceKind

    try:
        data = json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))
        if data.get("version") != MANIFEST_VERSION:
            return None
        modules: dict[str, str] = data["modules"]
        if _relative(entry, root) not in modules:
            return None
        for relative, digest in modules.items():
            if _hash((root / relative).read_text(encoding="utf-8")) != digest:
                return None
        return [
            ConfigReference(
                kind=ReferenceKind(item["kind"]), name=item["name"], file=root / item["file"],
                line=int(item["line"]), col=int(item["col"]),
            )
            for item in data["references"]
        ]  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
