"""The import direction of STYLE.md §1, checked on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

import libmaestro

LIB = Path(libmaestro.__file__).parent
CLI = LIB.parent / "maestro_cli"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "_templates" not in p.parts)


def test_libmaestro_imports_no_cli_or_typer() -> None:
    offenders = {
        str(path.relative_to(LIB)): sorted(
            name
            for name in _imports(path)
            if name.split(".")[0] in {"typer", "maestro_cli", "click"}
        )
        for path in _modules(LIB)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_libmaestro_imports_rich_only_in_console() -> None:
    users = sorted(
        str(path.relative_to(LIB))
        for path in _modules(LIB)
        if any(name.split(".")[0] == "rich" for name in _imports(path))
    )
    assert users == ["console.py"]


def test_executors_and_config_do_not_import_higher_layers() -> None:
    higher = {"libmaestro.runner", "libmaestro.session", "libmaestro.api", "libmaestro._main"}
    for package in ("executors", "config", "analysis"):
        for path in _modules(LIB / package):
            assert not (_imports(path) & higher), f"{path} imports a higher layer"


def test_cli_uses_only_the_public_api() -> None:
    for path in _modules(CLI):
        for name in _imports(path):
            if name.startswith("libmaestro"):
                assert name == "libmaestro", f"{path} imports {name}; use libmaestro.__all__"
