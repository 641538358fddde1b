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

The folder is laid out beside its final place (`dist/.<name>.partial`) and renamed into place
when complete, so an earlier bundle stays whole until the new one replaces it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pkgutil
import platform
import posixpath
import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from libmaestro._fs import atomic_write_text
from libmaestro._version import __version__
from libmaestro.analysis import find_references, project_modules
from libmaestro.analysis.sites import ProcessSite, find_sites
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
# What a bundled program never runs: the web UI and the bundling code itself, and the libraries
# only they use (zstandard alone is a third of a bundle's size).
EXCLUDED_MODULES = (
    "libmaestro.ui", "libmaestro.bundle", "starlette", "uvicorn", "jinja2", "zstandard",
)  # fmt: skip


def bundled_modules() -> list[str]:
    """Every libmaestro module a bundled program may import (not the UI, not bundling)."""
    import libmaestro

    names = [
        info.name
        for info in pkgutil.walk_packages(libmaestro.__path__, prefix="libmaestro.")
        if not any(info.name == x or info.name.startswith(x + ".") for x in EXCLUDED_MODULES)
    ]
    return sorted(names)


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


def _data_paths(project: Project) -> list[tuple[Path, PurePosixPath]]:
    """(source, place in the bundle) of the data to ship: [tool.maestro] data, else data/."""
    root = project.root
    declared = project.settings.data  # validated by libmaestro.project: relative, inside root
    if declared is None:
        declared = tuple(d for d in DEFAULT_DATA_DIRS if (root / d).exists())
    missing = [d for d in declared if not (root / d).exists()]
    if missing:
        raise BundleUsageError(
            f"[tool.maestro] data lists {', '.join(missing)}, which does not exist in {root}; "
            "fix the list in pyproject.toml or create it"
        )
    return [(root / d, PurePosixPath(posixpath.normpath(d))) for d in declared]


def _check_replaceable(directory: Path) -> None:
    """Refuse to replace `directory` unless it is absent or an earlier bundle of maestro's."""
    if (directory.exists() or directory.is_symlink()) and not (directory / MARKER_FILE).is_file():
        raise BundleUsageError(
            f"{directory} exists and is not a bundle made by maestro; move it away or choose "
            "another place with --out"
        )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _reason(exc: OSError) -> str:
    """What went wrong, in a few words: the first failure of a copy, or the OS's message."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        source, _, why = exc.args[0][0]
        return f"{source} could not be copied ({why})"
    if exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _lay_out(target: Path, fill: Callable[[Path], None]) -> None:
    """Make the bundle folder `target` with `fill`, replacing an earlier bundle only when done.

    `fill` writes into a sibling, `.<name>.partial`, which is renamed to `target` once
    complete: a failure leaves the earlier bundle (or nothing) in place, never a half-made
    folder. An earlier bundle is replaced only if it carries the marker.

    Raises:
        BundleUsageError: `target` exists and is not a bundle made by maestro.
        BundleError: the folder could not be written (disk full, unreadable data, ...).
    """
    partial = target.with_name(f".{target.name}.partial")
    old = target.with_name(f".{target.name}.old")
    try:
        _check_replaceable(target)
        for leftover in (partial, old):  # of a bundle that was interrupted
            _remove(leftover)
        partial.mkdir(parents=True)
        fill(partial)
        _check_replaceable(target)  # it may have appeared meanwhile
        if target.exists() or target.is_symlink():
            target.rename(old)
        try:
            partial.rename(target)
        except OSError:
            if old.exists():
                old.rename(target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:  # shutil.Error too
        raise BundleError(f"could not write the bundle {target}: {_reason(exc)}") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


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


def _script_place(site: ProcessSite, script: Path, *, root: Path, entry: Path) -> str:
    """The folder, inside the bundle, for the script file of an `inline=False` process.

    The bundled program reads it relative to its calling module's file name there (see
    `libmaestro.api`): PyInstaller names the entry module by its base name alone, at the top of
    the bundle, and every other module by its package path, which is relative to the project.

    Raises:
        BundleError: the script is outside the project, or where the bundle cannot hold it.
    """
    where = site.key(root)
    if not Path(os.path.normpath(script)).is_relative_to(root):
        raise BundleError(
            f"{where}: the inline=False script {script} is outside the project {root}, so it "
            "cannot be bundled; move it into the project, next to the module that uses it"
        )
    module_dir = site.file.parent
    is_entry = site.file == entry
    base = PurePosixPath() if is_entry else PurePosixPath(module_dir.relative_to(root).as_posix())
    relative = Path(os.path.relpath(script, module_dir)).as_posix()  # as written in the call
    placed = posixpath.normpath(f"{base}/{relative}")
    if placed.split("/")[0] == "..":
        raise BundleError(
            f"{where}: the inline=False script {script} is outside the entry module's "
            f"directory {module_dir}, so the bundled program could not find it; move it there"
        )
    return posixpath.dirname(placed) or "."


def _script_files(project: Project) -> list[tuple[Path, str]]:
    """(script, folder in the bundle) for each `inline=False` process's script file."""
    root = project.root
    entry = project.entry.resolve()
    modules = project_modules(project.entry, root=root).modules
    return sorted(
        {
            (site.script_file, _script_place(site, site.script_file, root=root, entry=entry))
            for site in find_sites(modules)
            if site.script_file is not None
        }
    )


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
    # Refused before anything runs: another folder in the way, declared data that is missing.
    _check_replaceable(target)
    data = _data_paths(project)

    build = build_project(project)
    if build.failed():
        errors = [f for f in build.findings if f.severity.label == "error"]
        listed = "\n".join(f"  {f}" for f in errors[:10])
        raise BundleError(
            f"`maestro build` found {len(errors)} error(s); fix them before bundling:\n{listed}"
        )
    scripts = _script_files(project)

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
        # libmaestro imports some modules lazily, by name: name all of them, but for what only
        # makes bundles or serves the UI (EXCLUDED_MODULES). Not --exclude-module: PyInstaller
        # 6 then finds its excludes changed on every build and redoes its whole analysis
        # (14 s instead of under 1 s for an unchanged project).
        *(arg for module in bundled_modules() for arg in ("--hidden-import", module)),
        "--add-data", f"{staging / BUNDLE_DATA_DIR}:{BUNDLE_DATA_DIR}",
    ]  # fmt: skip
    if deps is not None:
        argv += ["--paths", str(deps)]
    for script, folder in scripts:
        argv += ["--add-data", f"{script}:{folder}"]
    argv.append(str(project.entry))
    if log is not None:
        log.append(" ".join(argv))
    frozen_at = time.monotonic()
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=False)
    pyinstaller_seconds = time.monotonic() - frozen_at
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise BundleError(f"PyInstaller failed to freeze {project.entry}:\n{tail}")

    built = work / "dist" / name
    marker = {
        "name": name,
        "version": version,
        "maestro": __version__,
        "platform": info.platform,
        "onefile": onefile,
        "built_at": time.time(),
        "python": platform.python_version(),
    }

    def fill(folder: Path) -> None:
        if onefile:
            shutil.copy2(built, folder / name)
        else:
            shutil.copytree(built, folder, dirs_exist_ok=True, symlinks=True)
        config = root / "Maestro.toml"
        if config.is_file():
            shutil.copy2(config, folder / "Maestro.toml")
        if build.procinfo is not None and build.procinfo.is_file():
            shutil.copy2(build.procinfo, folder / "procinfo.toml")
        for source, place in data:
            destination = folder / place
            if source.is_dir():
                shutil.copytree(source, destination, symlinks=False)
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)
        readme = render_readme(info, procinfo=folder / "procinfo.toml", onefile=onefile)
        (folder / "README.md").write_text(readme, encoding="utf-8")
        (folder / MARKER_FILE).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")

    _lay_out(target, fill)

    archive = None
    if compress is not Compression.NONE:
        stem = f"{name}-{version}-{platform.system().lower()}-{host_arch()}"
        try:
            archive = write_archive(target, dist / stem, compress)
        except OSError as exc:
            raise BundleError(f"could not write the archive of {target}: {_reason(exc)}") from None
    return BundleResult(
        directory=target,
        program=target / name,
        archive=archive,
        build=build,
        prepared_cache=prepared,
        seconds=time.monotonic() - started,
        pyinstaller_seconds=pyinstaller_seconds,
    )
