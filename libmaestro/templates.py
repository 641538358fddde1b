"""Project scaffolds for `maestro init`, shipped inside the package and found with importlib."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from libmaestro.errors import ProjectError

# Files whose real name would be awkward inside a Python package (hidden, or read by tools).
_RENAMED = {"_gitignore": ".gitignore"}
# Only these files carry placeholders; workflow code is copied byte for byte ($vars are bash's).
_RENDERED = {"pyproject.toml", "README.md"}
_PLACEHOLDER = "{{project_name}}"


def _root() -> Traversable:
    return resources.files("libmaestro") / "_templates"


def list_templates() -> list[str]:
    """The names of the scaffolds `maestro init --template` accepts."""
    return sorted(item.name for item in _root().iterdir() if item.is_dir())


def project_name_for(directory: Path) -> str:
    """A valid distribution name from a directory name (`My Pipeline` -> `my-pipeline`)."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", directory.resolve().name).strip("-").lower()
    return name or "workflow"


@dataclass(frozen=True, slots=True)
class InitResult:
    directory: Path
    template: str
    written: tuple[Path, ...]
    skipped: tuple[Path, ...]  # existing files left untouched


def _files(node: Traversable, prefix: Path = Path()) -> list[tuple[Path, Traversable]]:
    found: list[tuple[Path, Traversable]] = []
    for item in sorted(node.iterdir(), key=lambda t: t.name):
        if item.name == "__pycache__":
            continue
        if item.is_dir():
            found.extend(_files(item, prefix / item.name))
        else:
            found.append((prefix / _RENAMED.get(item.name, item.name), item))
    return found


def render_template(template: str, directory: Path, *, force: bool = False) -> InitResult:
    """Write scaffold `template` into `directory`.

    A non-empty directory is refused unless `force`; even then no existing file is overwritten:
    it is listed in `skipped` instead.
    """
    if template not in list_templates():
        raise ProjectError(
            f"there is no template {template!r}; choose one of: {', '.join(list_templates())}"
        )
    if directory.exists() and not directory.is_dir():
        raise ProjectError(f"{directory} exists and is not a directory; choose another path")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise ProjectError(
            f"{directory} is not empty; choose an empty or new directory, or pass --force to add "
            "the scaffold's files next to what is there (existing files are never overwritten)"
        )
    name = project_name_for(directory)
    written: list[Path] = []
    skipped: list[Path] = []
    for relative, source in _files(_root() / template):
        target = directory / relative
        if target.exists():
            skipped.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative.name in _RENDERED:
            target.write_text(source.read_text("utf-8").replace(_PLACEHOLDER, name), "utf-8")
        else:
            target.write_bytes(source.read_bytes())
        written.append(target)
    return InitResult(directory, template, tuple(written), tuple(skipped))
