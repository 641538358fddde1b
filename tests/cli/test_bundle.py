"""`maestro bundle` and `maestro update-cache`: what they refuse, before PyInstaller runs.

The real freezing is tested end to end in tests/integration/test_bundle.py.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from cli_helpers import shown

from libmaestro.bundle.cache import BuildCache

PYPROJECT = '[project]\nname = "p"\nversion = "0.1.0"\n\n[tool.maestro]\nentry = "workflow.py"\n'
CONFIG = '[executor.default]\ntype = "Local"\n'
WORKFLOW = """\
import libmaestro as maestro

@maestro.main
def main():
    maestro.process(name="a", executor="{executor}", script="echo hi")

main()
"""


def project(root: Path, executor: str = "default") -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "Maestro.toml").write_text(CONFIG)
    (root / "workflow.py").write_text(WORKFLOW.format(executor=executor))
    return root


def test_bundle_refuses_another_architecture_and_says_why(maestro, tmp_path: Path) -> None:
    other = "aarch64" if platform.machine().lower() in {"x86_64", "amd64"} else "x86_64"
    result = maestro("bundle", str(project(tmp_path / "p")), "--arch", other)

    assert result.exit_code == 2, shown(result)
    assert "cannot cross-compile" in result.output
    assert not BuildCache.current().directory.exists()  # refused before any work


def test_bundle_help_states_the_platform_limit(maestro) -> None:
    result = maestro("bundle", "--help")
    assert result.exit_code == 0
    assert "cannot cross-compile" in " ".join(result.output.split())


def test_bundle_refuses_a_project_with_build_errors(maestro, tmp_path: Path) -> None:
    root = project(tmp_path / "p", executor="nowhere")

    result = maestro("bundle", str(root))

    assert result.exit_code == 1, shown(result)
    assert "found 1 error(s); fix them before bundling" in result.output
    assert "executor 'nowhere' is not defined" in result.output
    assert not (root / "dist").exists()


def test_update_cache_show_and_clear_on_an_empty_cache(
    maestro, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MAESTRO_CACHE", str(tmp_path / "cache"))
    shown_cache = maestro("update-cache", "--show", "--json")
    assert shown_cache.exit_code == 0, shown(shown_cache)
    assert json.loads(shown_cache.output)["result"]["caches"] == []

    stale = tmp_path / "cache" / "bundle" / "0.0.1-py311-linux-x86_64"
    (stale / "venv").mkdir(parents=True)
    listed = maestro("update-cache", "--show")
    assert "unfinished" in listed.output
    cleared = maestro("update-cache", "--clear")
    assert cleared.exit_code == 0
    assert not stale.exists()


def test_bundle_accepts_declared_data_and_refuses_missing_data_before_any_work(
    maestro, tmp_path: Path
) -> None:
    root = project(tmp_path / "p")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(PYPROJECT + 'data = ["refs", "data/names.txt"]\n')
    (root / "refs").mkdir()

    result = maestro("bundle", str(root))

    assert result.exit_code == 2, shown(result)
    assert "unknown key" not in result.output
    assert "data lists data/names.txt, which does not exist" in " ".join(result.output.split())
    assert not BuildCache.current().directory.exists()  # refused before any work
    assert not (root / "dist").exists()


def test_bundle_refuses_a_script_outside_the_project_with_a_clear_message(
    maestro, tmp_path: Path
) -> None:
    root = project(tmp_path / "p")
    (tmp_path / "shared.sh").write_text("echo shared\n")
    (root / "workflow.py").write_text(
        WORKFLOW.format(executor="default").replace(
            'script="echo hi"', 'inline=False, script="../shared.sh"'
        )
    )

    result = maestro("bundle", str(root))

    assert result.exit_code == 1, shown(result)
    text = " ".join(result.output.split())
    assert "workflow.py:5:5: the inline=False script" in text
    assert "is outside the project" in text
    assert not BuildCache.current().directory.exists()


def test_bundle_refuses_a_folder_in_the_way_before_any_work(maestro, tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    (root / "dist" / "p").mkdir(parents=True)
    (root / "dist" / "p" / "notes.txt").write_text("mine")

    result = maestro("bundle", str(root))

    assert result.exit_code == 2, shown(result)
    assert "is not a bundle made by maestro" in " ".join(result.output.split())
    assert (root / "dist" / "p" / "notes.txt").read_text() == "mine"
    assert not BuildCache.current().directory.exists()
