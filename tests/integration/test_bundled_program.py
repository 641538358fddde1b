"""`maestro bundle` end to end: a real PyInstaller build, run where there is no Python project.

Each project is bundled once per test session, all sharing one build cache (the first bundle
prepares it, about a minute; MAESTRO_TEST_BUNDLE_CACHE names a warm one to reuse); each test
unpacks or copies the result into a fresh directory of its own and runs the program there with
a PATH that has no virtual environment on it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import build_file_tree, processes_with, shown, wait_for

from libmaestro.bundle import extract_archive
from libmaestro.bundle.cache import BuildCache, cache_key

pytestmark = [pytest.mark.bundle, pytest.mark.slow]

PYPROJECT = """
    [project]
    name = "greeter"
    version = "1.2.0"
    dependencies = []

    [tool.maestro]
    entry = "workflow.py"
"""
CONFIG = """
    [args]
    greeting = "hello"
    pause = "0"
    fail = "no"

    [inputs]
    names = ["data/names.txt"]

    [executor.default]
    type = "Local"
"""
WORKFLOW = '''
    import libmaestro as maestro

    @maestro.main
    def main():
        """Greet everyone in the names file, then count the greetings."""
        greeted = maestro.process(
            name="greet", executor="default",
            args={"greeting": maestro.arg("greeting"), "pause": maestro.arg("pause")},
            inputs={"names": maestro.inputs("names")[0]},
            outputs={"greetings": "greetings.txt"},
            script="""
                sleep "$pause"
                while read -r name; do printf '%s %s\\\\n' "$greeting" "$name"; done < "$names" > "$greetings"
            """,
        )
        counted = maestro.process(
            name="count", executor="default", inline=False, script="scripts/count.sh",
            args={"fail": maestro.arg("fail")},
            inputs={"greetings": greeted.greetings}, outputs={"total": "total.txt"},
        )
        print(counted.total.read_text().strip())

    if __name__ == "__main__":
        main()
'''
COUNT_SCRIPT = """
    #!/usr/bin/env bash
    # Counts the greetings; fails on purpose when fail = "yes".
    if [ "$fail" = yes ]; then echo "asked to fail" >&2; exit 4; fi
    wc -l < "$greetings" | tr -d ' ' > "$total"
"""
ARCHIVE = re.compile(r"greeter-1\.2\.0-linux-[a-z0-9_]+\.tar\.zst$")


@pytest.fixture(scope="session")
def bundle_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The build cache every bundle of the session shares."""
    cache = os.environ.get("MAESTRO_TEST_BUNDLE_CACHE")
    return cache or str(tmp_path_factory.mktemp("bundle-cache"))


def bundle(project: Path, cache: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maestro_cli", "bundle", str(project), *args],
        env={**os.environ, "MAESTRO_CACHE": cache}, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip


@pytest.fixture(scope="session")
def bundle_archive(tmp_path_factory: pytest.TempPathFactory, bundle_cache: str) -> Path:
    """`maestro bundle --compress zstd` of the project above, made once."""
    base = tmp_path_factory.mktemp("bundle")
    project = build_file_tree(
        base / "greeter",
        {
            "pyproject.toml": PYPROJECT,
            "Maestro.toml": CONFIG,
            "workflow.py": WORKFLOW,
            "scripts/count.sh": COUNT_SCRIPT,
            "data/names.txt": "ada\ngrace\nbarbara\n",
        },
    )
    result = bundle(project, bundle_cache, "--compress", "zstd")
    assert result.returncode == 0, shown(result)
    program, archive = (Path(line) for line in result.stdout.split())
    assert program == project / "dist" / "greeter" / "greeter"
    assert ARCHIVE.search(archive.name), archive
    return archive


@pytest.fixture
def unpacked(bundle_archive: Path, tmp_path: Path) -> Path:
    """The archive unpacked far from the project: the folder with the program in it."""
    folder = extract_archive(bundle_archive, tmp_path / "elsewhere")
    assert folder.name == "greeter"
    return folder


@pytest.fixture
def run_bundled(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the program with an environment that has no Python project or venv in it."""
    home = tmp_path / "collaborator"
    home.mkdir()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "MAESTRO_PLAIN": "1",
           "MAESTRO_HOME": str(home / "maestro")}  # fmt: skip

    def run(
        folder: Path, *args: str, cwd: Path | None = None, program: str = "greeter"
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(folder / program), *args], cwd=cwd or folder, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        # None without --debug; one from a background thread is a bug even in a success.
        assert "Traceback" not in result.stderr, result.stderr
        return result

    run.env = env  # type: ignore[attr-defined]
    return run


def edit(config: Path, key: str, value: str) -> None:
    text = config.read_text()
    config.write_text(re.sub(rf"^{key} = .*$", f'{key} = "{value}"', text, flags=re.MULTILINE))


def test_bundle_runs_elsewhere_with_an_edited_config(unpacked: Path, run_bundled) -> None:
    assert {p.name for p in unpacked.iterdir()} >= {
        "greeter", "_internal", "Maestro.toml", "procinfo.toml", "data", "README.md"
    }  # fmt: skip
    readme = (unpacked / "README.md").read_text()
    assert "linux" in readme and "`greeting`" in readme and "`names`" in readme
    edit(unpacked / "Maestro.toml", "greeting", "bonjour")

    result = run_bundled(unpacked)

    assert result.returncode == 0, shown(result)
    assert result.stdout.strip() == "3"
    session = next((unpacked / "maestro_work").iterdir())
    assert (session / "greet" / "greetings.txt").read_text().splitlines() == [
        "bonjour ada", "bonjour grace", "bonjour barbara"
    ]  # fmt: skip
    # The inline=False script was embedded: it ran although scripts/ was not shipped.
    assert not (unpacked / "scripts").exists()
    assert "asked to fail" in (session / "count" / ".maestro.sh").read_text()


def test_bundled_program_answers_help_and_version(unpacked: Path, run_bundled) -> None:
    helped = run_bundled(unpacked, "--help")
    assert helped.returncode == 0, shown(helped)
    assert "[args]       fail, greeting, pause" in helped.stdout
    assert "[inputs]     names" in helped.stdout
    assert "--resume" in helped.stdout
    version = run_bundled(unpacked, "--version")
    assert version.stdout.strip() == "greeter 1.2.0"


def test_bundled_program_checks_its_config_from_the_embedded_manifest(
    unpacked: Path, run_bundled
) -> None:
    config = unpacked / "Maestro.toml"
    config.write_text(config.read_text().replace('greeting = "hello"\n', ""))

    result = run_bundled(unpacked)

    assert result.returncode == 2, shown(result)
    assert re.search(
        r"workflow\.py:\d+:\d+: arg 'greeting' is not defined in \[args\]", result.stderr
    )
    assert not (unpacked / "maestro_work").exists() or not any(
        (unpacked / "maestro_work").rglob("greetings.txt")
    )


def test_bundled_program_resumes_after_a_failure(unpacked: Path, run_bundled) -> None:
    config = unpacked / "Maestro.toml"
    edit(config, "fail", "yes")
    failed = run_bundled(unpacked)
    assert failed.returncode == 1, shown(failed)
    assert "asked to fail" in failed.stderr

    edit(config, "fail", "no")
    resumed = run_bundled(unpacked, "--resume", "--explain")

    assert resumed.returncode == 0, shown(resumed)
    assert resumed.stdout.strip() == "3"
    assert re.search(r"greet.*up to date", resumed.stderr), shown(resumed)
    assert len(list((unpacked / "maestro_work").iterdir())) == 1  # the same session


def test_maestro_runs_and_kills_a_bundled_program_in_the_background(
    unpacked: Path, run_bundled, tmp_path: Path
) -> None:
    pause = f"7{os.getpid() % 1000}.25"
    edit(unpacked / "Maestro.toml", "pause", pause)
    env = {**os.environ, "MAESTRO_HOME": run_bundled.env["MAESTRO_HOME"], "MAESTRO_PLAIN": "1"}
    maestro = [sys.executable, "-m", "maestro_cli"]
    started = subprocess.run(
        [*maestro, "run", str(unpacked / "greeter"), "--background"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 0, shown(started)
    session = re.search(r"^session: (\w+)$", started.stdout, re.MULTILINE)
    assert session, shown(started)
    wait_for(lambda: bool(processes_with(pause)), timeout=30, what="the bundled step to start")

    killed = subprocess.run(
        [*maestro, "kill", session[1]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert killed.returncode == 0, shown(killed)
    wait_for(lambda: not processes_with(pause), timeout=20, what="the step to be stopped")
    status = subprocess.run(
        [*maestro, "status", session[1], "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert '"aborted"' in status.stdout, shown(status)
    time.sleep(0.1)


# A project whose entry module is in a subdirectory, with scripts next to the entry and next to
# a package module, and data declared in pyproject.toml. (The bundle puts the project root on
# the module path, so the entry imports `pkg` from it.)
RELAY = {
    "pyproject.toml": """
        [project]
        name = "relay"
        version = "0.3.0"

        [tool.maestro]
        entry = "pipeline/main.py"
        data = ["refs"]
    """,
    "Maestro.toml": """
        [inputs]
        genome = ["refs/genome.txt"]

        [executor.default]
        type = "Local"
    """,
    "pipeline/main.py": """
        import libmaestro as maestro
        from pkg import steps

        @maestro.main
        def main():
            prepared = maestro.process(
                name="prepare", executor="default", inline=False, script="scripts/prepare.sh",
                inputs={"genome": maestro.inputs("genome")[0]}, outputs={"upper": "upper.txt"},
            )
            print(steps.count(prepared.upper).read_text().strip())

        if __name__ == "__main__":
            main()
    """,
    "pipeline/scripts/prepare.sh": """
        #!/usr/bin/env bash
        tr a-z A-Z < "$genome" > "$upper"
    """,
    "pkg/__init__.py": "",
    "pkg/steps.py": """
        import libmaestro as maestro

        def count(upper):
            counted = maestro.process(
                name="count", executor="default", inline=False, script="sh/count.sh",
                inputs={"upper": upper}, outputs={"total": "total.txt"},
            )
            return counted.total
    """,
    "pkg/sh/count.sh": """
        #!/usr/bin/env bash
        grep -o A "$upper" | wc -l | tr -d ' ' > "$total"
    """,
    "refs/genome.txt": "acgtaaca\n",
}


@pytest.fixture(scope="session")
def relay_project(tmp_path_factory: pytest.TempPathFactory, bundle_cache: str) -> Path:
    """The project above, bundled once (onedir, no archive)."""
    project = build_file_tree(tmp_path_factory.mktemp("relay") / "relay", RELAY)
    result = bundle(project, bundle_cache)
    assert result.returncode == 0, shown(result)
    return project


def frozen_modules(program: Path, cache: str) -> list[str]:
    """The Python modules frozen into a onedir program, as PyInstaller lists them."""
    python = BuildCache(Path(cache) / "bundle" / cache_key()).python
    code = (
        "import sys; from PyInstaller.archive.readers import CArchiveReader as C\n"
        "c = C(sys.argv[1]); pyz = next(n for n in c.toc if n.endswith('.pyz'))\n"
        "print('\\n'.join(c.open_embedded_archive(pyz).toc))"
    )
    done = subprocess.run(
        [str(python), "-c", code, str(program)], capture_output=True, text=True, timeout=120,
        check=True,
    )  # fmt: skip
    return done.stdout.split()


def test_bundle_with_the_entry_in_a_subdirectory_finds_every_script(
    relay_project: Path, bundle_cache: str, run_bundled, tmp_path: Path
) -> None:
    built = relay_project / "dist" / "relay"
    modules = frozen_modules(built / "relay", bundle_cache)
    assert "libmaestro.runner" in modules and "pkg.steps" in modules
    # The web UI and the heavy libraries of the UI and of bundling never run in a bundle.
    for excluded in ("libmaestro.ui", "starlette", "uvicorn", "jinja2", "zstandard"):
        assert not [m for m in modules if m == excluded or m.startswith(f"{excluded}.")]
    folder = tmp_path / "relay"
    shutil.copytree(built, folder, symlinks=True)
    assert (folder / "refs" / "genome.txt").is_file()  # [tool.maestro] data

    result = run_bundled(folder, program="relay")

    assert result.returncode == 0, shown(result)
    assert result.stdout.strip() == "4"
    session = next((folder / "maestro_work").iterdir())
    assert "tr a-z A-Z" in (session / "prepare" / ".maestro.sh").read_text()
    assert not (folder / "pipeline").exists() and not (folder / "pkg").exists()


def test_bundle_that_fails_to_lay_out_keeps_the_earlier_one(
    relay_project: Path, bundle_cache: str
) -> None:
    built = relay_project / "dist" / "relay"
    before = {p.relative_to(built): p.stat().st_mtime_ns for p in built.rglob("*")}
    broken = relay_project / "refs" / "broken"
    broken.symlink_to(relay_project / "nowhere")  # cannot be copied into the bundle
    try:
        result = bundle(relay_project, bundle_cache)
    finally:
        broken.unlink()

    assert result.returncode == 1, shown(result)
    assert "Traceback" not in result.stderr
    assert "could not write the bundle" in result.stderr and "broken" in result.stderr
    after = {p.relative_to(built): p.stat().st_mtime_ns for p in built.rglob("*")}
    assert after == before  # the earlier bundle, untouched
    assert sorted(p.name for p in built.parent.iterdir()) == ["relay"]  # no partial folder


def test_the_init_scaffold_bundles_and_runs_elsewhere(
    tmp_path: Path, bundle_cache: str, run_bundled
) -> None:
    """The issue's path as a user walks it: maestro init, maestro bundle, copy the folder away."""
    made = subprocess.run(
        [sys.executable, "-m", "maestro_cli", "init", str(tmp_path / "scaffold")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, shown(made)
    result = bundle(tmp_path / "scaffold", bundle_cache)
    assert result.returncode == 0, shown(result)
    program = Path(result.stdout.split()[0])
    copied = tmp_path / "elsewhere" / "scaffold"
    shutil.copytree(program.parent, copied, symlinks=True)

    ran = subprocess.run(
        [str(copied / program.name)], cwd=copied, env=run_bundled.env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert ran.returncode == 0, shown(ran)
    assert "summary written to" in ran.stdout
    summary = next((copied / "maestro_work").rglob("summary.tsv"))
    assert summary.read_text().splitlines()[0].split("\t")[0] == "sample"
