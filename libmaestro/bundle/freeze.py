"""`maestro bundle`: freeze a project into a native program a collaborator runs without Python.

    dist/<name>/
      <name>            the program (onedir: next to _internal/; onefile: alone)
      _internal/        Python, libmaestro and the project's modules (onedir only)
      Maestro.toml      the project's, as the template the collaborator edits
      procinfo.toml     what each process needs (from `maestro build`)
      data/             the data the project declares ([tool.maestro] data, default "data")
      README.md         how to configure and run it, generated from procinfo.toml

PyInstaller runs in the per-user build cache (see `libmaestro.bundle.cache`) and keeps its
analysis there per project, so a second bundle is much faster than the first. It cannot
cross-compile: a bundle runs on the operating system and CPU architecture it was made on.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from libmaestro._fs import atomic_write_text
from libmaestro._version import __version__
from libmaestro.analysis import find_references, project_modules
from libmaestro.analysis.sites import find_sites
from libmaestro.build import build_project
from libmaestro.bundle.archive import Compression, write_archive
from libmaestro.bundle.cache import BuildCache, BundleError, platform_tag
from libmaestro.bundle.readme import render_readme
from libmaestro.errors import EXIT_USAGE
from libmaestro.findings import BuildResult
from libmaestro.frozen import BUNDLE_DATA_DIR, BUNDLE_INFO_FILE, BundleInfo
from libmaestro.project import Project

MARKER_FILE = ".maestro-bundle.json"  # marks a dist folder as maestro's, safe to replace
DEFAULT_DATA_DIRS = ("data",)
# Machine names that mean the same architecture.
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}


class BundleUsageError(BundleError):
    exit_code = EXIT_USAGE


@dataclass(frozen=True, slots=True)
class BundleResult:
    directory: Path  # dist/<name>/
    program: Path
    archive: Path | None
    build: BuildResult
    prepared_cache: bool  # the build environment had to be made first
    seconds: float
    pyinstaller_seconds: float


def host_arch() -> str:
    machine = platform.machine().lower()
    return _ARCH_ALIASES.get(machine, machine)


def check_arch(requested: str | None) -> None:
    """Refuse any architecture but this machine's: PyInstaller cannot cross-compile."""
    if requested is None:
        return
    wanted = _ARCH_ALIASES.get(requested.lower(), requested.lower())
    if wanted != host_arch():
        raise BundleUsageError(
            f"--arch {requested}: this machine is {platform.system().lower()}-{host_arch()}, and "
            "PyInstaller cannot cross-compile; a bundle runs only on the system and architecture "
            f"it was made on. Run `maestro bundle` on a {requested} machine (or in a {requested} "
            "container or CI runner) instead"
        )


def _pyproject(root: Path) -> dict[str, object]:
    path = root / "pyproject.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BundleError(f"{path} cannot be read: {exc}") from None


def _project_table(root: Path) -> dict[str, object]:
    table = _pyproject(root).get("project", {})
    return table if isinstance(table, dict) else {}


def _data_dirs(root: Path) -> list[Path]:
    tool = _pyproject(root).get("tool", {})
    maestro = tool.get("maestro", {}) if isinstance(tool, dict) else {}
    declared = maestro.get("data") if isinstance(maestro, dict) else None
    if declared is None:
        return [root / d for d in DEFAULT_DATA_DIRS if (root / d).exists()]
    if not isinstance(declared, list) or not all(isinstance(d, str) for d in declared):
        raise BundleUsageError(
            f'{root / "pyproject.toml"}: [tool.maestro] data must be a list of paths like ["data"]'
        )
    missing = [d for d in declared if not (root / d).exists()]
    if missing:
        raise BundleUsageError(
            f"[tool.maestro] data lists {', '.join(missing)}, which does not exist in {root}"
        )
    return [root / d for d in declared]


def _replace_dist(directory: Path) -> None:
    """Remove an earlier bundle at `directory`; anything else there is refused, not deleted."""
    if not directory.exists():
        return
    if not (directory / MARKER_FILE).is_file():
        raise BundleUsageError(
            f"{directory} exists and is not a bundle made by maestro; move it away or choose "
            "another place with --out"
        )
    shutil.rmtree(directory)


def _install_project_deps(cache: BuildCache, project: Project) -> Path | None:
    deps = _project_table(project.root).get("dependencies", [])
    if not isinstance(deps, list) or not deps:
        return None
    # maestro itself is in the build environment already (and the scaffold lists it).
    own = re.compile(r"^\s*maestro[-_]workflows\b", re.IGNORECASE)
    requirements = sorted(str(d) for d in deps if not own.match(str(d)))
    if not requirements:
        return None
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:16]
    target = cache.deps_dir(digest)
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    done = subprocess.run(
        [str(cache.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--target", str(target), *requirements],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        detail = " / ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise BundleError(
            f"could not install the project's dependencies ({', '.join(requirements)}) for "
            f"bundling: {detail}"
        )
    (target / ".complete").touch()
    return target


def _bundle_info(project: Project, build: BuildResult, name: str, version: str) -> BundleInfo:
    root = project.root
    modules = project_modules(project.entry, root=root).modules
    references = []
    for ref in find_references(modules):
        try:
            relative = ref.file.relative_to(root)
        except ValueError:
            relative = Path(ref.file.name)
        references.append(type(ref)(ref.kind, ref.name, relative, ref.line, ref.col))
    processes = tuple(
        {"key": s.key, "name": s.name, "executor": s.executor, "deps": list(s.deps)}
        for s in build.sites
    )
    return BundleInfo(
        name=name,
        version=version,
        maestro=__version__,
        platform=platform_tag(),
        references=tuple(references),
        processes=processes,
    )


def _script_files(project: Project) -> list[Path]:
    """Scripts of `inline=False` processes: embedded at their place relative to the project."""
    modules = project_modules(project.entry, root=project.root).modules
    return sorted({s.script_file for s in find_sites(modules) if s.script_file is not None})


def bundle_project(
    project: Project,
    *,
    onefile: bool = False,
    compress: Compression = Compression.NONE,
    out: Path | None = None,
    name: str | None = None,
    arch: str | None = None,
    log: list[str] | None = None,
) -> BundleResult:
    """Build, freeze and lay out `project` as described in the module docstring.

    Raises:
        BundleUsageError: --arch is not this machine's, or the output folder is not ours.
        BundleError: `maestro build` found errors, or PyInstaller failed.
    """
    started = time.monotonic()
    check_arch(arch)
    if not project.is_python:
        raise BundleUsageError(f"{project.entry} is already a program; bundle a project instead")
    root = project.root
    name = name or project.name
    version = str(_project_table(root).get("version", "0.0.0"))
    dist = (out or root / "dist").resolve()
    target = dist / name

    build = build_project(project)
    if build.failed():
        errors = [f for f in build.findings if f.severity.label == "error"]
        listed = "\n".join(f"  {f}" for f in errors[:10])
        raise BundleError(
            f"`maestro build` found {len(errors)} error(s); fix them before bundling:\n{listed}"
        )

    cache = BuildCache.current()
    prepared = cache.ensure(log=log)
    deps = _install_project_deps(cache, project)
    key = hashlib.sha256(f"{root}|{name}|{onefile}".encode()).hexdigest()[:16]
    work = cache.workpath(key)
    staging = work / "staging"
    (staging / BUNDLE_DATA_DIR).mkdir(parents=True, exist_ok=True)
    info = _bundle_info(project, build, name, version)
    # Rewritten only when it changed: PyInstaller redoes its whole analysis (about 11 s) when
    # any data file is newer than its last build, and reuses it (under 1 s) otherwise.
    info_file = staging / BUNDLE_DATA_DIR / BUNDLE_INFO_FILE
    text = info.to_json()
    if not info_file.is_file() or info_file.read_text(encoding="utf-8") != text:
        atomic_write_text(info_file, text)

    argv = [
        str(cache.python), "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
        "--name", name, "--onefile" if onefile else "--onedir",
        "--distpath", str(work / "dist"), "--workpath", str(work / "build"),
        "--specpath", str(work),
        "--paths", str(root),
        # libmaestro imports some modules lazily, by name; take all of it, except what only
        # makes bundles (zstandard alone is a third of a bundle's size).
        "--collect-submodules", "libmaestro", "--exclude-module", "zstandard",
        "--add-data", f"{staging / BUNDLE_DATA_DIR}:{BUNDLE_DATA_DIR}",
    ]  # fmt: skip
    if deps is not None:
        argv += ["--paths", str(deps)]
    for script in _script_files(project):
        relative = script.relative_to(root).parent
        argv += ["--add-data", f"{script}:{relative.as_posix() or '.'}"]
    argv.append(str(project.entry))
    if log is not None:
        log.append(" ".join(argv))
    frozen_at = time.monotonic()
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=False)
    pyinstaller_seconds = time.monotonic() - frozen_at
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise BundleError(f"PyInstaller failed to freeze {project.entry}:\n{tail}")

    _replace_dist(target)
    target.mkdir(parents=True)
    built = work / "dist" / name
    if onefile:
        shutil.copy2(built, target / name)
    else:
        shutil.copytree(built, target, dirs_exist_ok=True, symlinks=True)
    config = root / "Maestro.toml"
    if config.is_file():
        shutil.copy2(config, target / "Maestro.toml")
    if build.procinfo is not None and build.procinfo.is_file():
        shutil.copy2(build.procinfo, target / "procinfo.toml")
    for directory in _data_dirs(root):
        destination = target / directory.relative_to(root)
        if directory.is_dir():
            shutil.copytree(directory, destination, symlinks=False)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(directory, destination)
    (target / "README.md").write_text(
        render_readme(info, procinfo=target / "procinfo.toml", onefile=onefile), encoding="utf-8"
    )
    marker = {
        "name": name,
        "version": version,
        "maestro": __version__,
        "platform": info.platform,
        "onefile": onefile,
        "built_at": time.time(),
        "python": platform.python_version(),
    }
    (target / MARKER_FILE).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")

    archive = None
    if compress is not Compression.NONE:
        stem = f"{name}-{version}-{platform.system().lower()}-{host_arch()}"
        archive = write_archive(target, dist / stem, compress)
    return BundleResult(
        directory=target,
        program=target / name,
        archive=archive,
        build=build,
        prepared_cache=prepared,
        seconds=time.monotonic() - started,
        pyinstaller_seconds=pyinstaller_seconds,
    )
