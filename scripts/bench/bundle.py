"""Benchmark: `maestro bundle` (build time, archive size, start-up) on the `maestro init` scaffold.

In one run, on a fresh scaffold project in a temporary directory, with MAESTRO_CACHE pointing at
a temporary directory of its own (so "cold" is really cold and the user's cache is never
touched), measures:

  bundle     `maestro bundle --out DIR` as a user runs it (whole command): cold (empty cache:
             the build venv with PyInstaller is prepared first), warm (the same project again),
             and --onefile with the cache ready (the first onefile bundle, then again)
  archives   `write_archive` of the onedir folder in every compression (time and bytes), the
             folder's own size, and `extract_archive` of the zstd archive
  start-up   best of --repeat, each run in a fresh copy of its folder, MAESTRO_HOME in the
             temporary directory: the scaffold workflow end to end as `python workflow.py`
             (bytecode caching as a user has it: PYTHONDONTWRITEBYTECODE removed, one warm-up
             run of every case first), the onedir program and the onefile program; and
             `--version` of both programs alone (pure start-up). Ratios are to
             `python workflow.py`.

    .venv/bin/python scripts/bench/bundle.py
    .venv/bin/python scripts/bench/bundle.py --markdown
    .venv/bin/python scripts/bench/bundle.py --keep      # keep the temporary directory
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from libmaestro.bundle.archive import ZSTD_LEVEL, Compression, extract_archive, write_archive

NAME = "demo"  # the scaffold's project name, and so the program's
COMPRESSIONS = [
    Compression.ZSTD,
    Compression.XZ,
    Compression.GZIP,
    Compression.BZIP2,
    Compression.ZIP,
]
FORMAT = {
    Compression.ZSTD: f"zstd (level {ZSTD_LEVEL}, all cores)",
    Compression.XZ: "xz (tarfile default, preset 6)",
    Compression.GZIP: "gzip (level 6)",
    Compression.BZIP2: "bzip2 (level 9)",
    # write_archive asks for level 9, but a ZipInfo passed to writestr keeps zlib's default.
    Compression.ZIP: "zip (deflate, level 9)",
}
MIB = 1024 * 1024


def clean_env(base: Path, **extra: str) -> dict[str, str]:
    """The user's environment without any MAESTRO_* setting, with a store of our own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    # Bytecode caching as installed: without .pyc files every start compiles libmaestro again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return {**env, "MAESTRO_HOME": str(base / "home"), "MAESTRO_PLAIN": "1", **extra}


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(argv)}\n{done.stdout}{done.stderr}")
    return done


def folder_bytes(folder: Path) -> int:
    return sum(f.lstat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def bundle_times(base: Path, project: Path) -> tuple[dict[str, tuple[float, float | None]], dict]:
    """Wall time and PyInstaller's share (from maestro's own summary line) of each bundle."""
    maestro = str(Path(sys.executable).parent / "maestro")
    cache = base / "cache"
    env = clean_env(base, MAESTRO_CACHE=str(cache))
    times: dict[str, tuple[float, float | None]] = {}
    for label, out, flag in [
        ("cold", "dist-onedir", "--onedir"),
        ("warm", "dist-onedir", "--onedir"),
        ("onefile", "dist-onefile", "--onefile"),
        ("onefile-again", "dist-onefile", "--onefile"),
    ]:
        argv = [maestro, "bundle", str(project), flag, "--out", str(base / out)]
        started = time.perf_counter()
        done = run(argv, base, env)
        elapsed = time.perf_counter() - started
        found = re.search(r"PyInstaller ([\d.]+)s", done.stderr)
        times[label] = (elapsed, float(found[1]) if found else None)
        print(f"bundle {label}: {elapsed:.1f} s", file=sys.stderr)
    ready_files = list((cache / "bundle").glob("*/ready.json"))
    ready = json.loads(ready_files[0].read_text()) if ready_files else {}
    return times, ready


def archive_figures(base: Path, folder: Path) -> tuple[dict[Compression, tuple[float, int]], float]:
    archives = base / "archives"
    archives.mkdir()
    figures = {}
    for compression in COMPRESSIONS:
        started = time.perf_counter()
        path = write_archive(folder, archives / NAME, compression)
        figures[compression] = (time.perf_counter() - started, path.stat().st_size)
        print(f"archive {compression.value}: {figures[compression][0]:.1f} s", file=sys.stderr)
    zstd = archives / f"{NAME}.tar.zst"
    started = time.perf_counter()
    unpacked = extract_archive(zstd, base / "unpacked")
    extract = time.perf_counter() - started
    if not (unpacked / NAME).is_file():
        sys.exit(f"the zstd archive did not unpack to {unpacked / NAME}")
    return figures, extract


def startup_times(base: Path, project: Path, repeat: int) -> dict[str, float]:
    env = clean_env(base)
    runs = base / "runs"
    runs.mkdir()
    sources = {
        "workflow": project,
        "onedir": base / "dist-onedir" / NAME,
        "onefile": base / "dist-onefile" / NAME,
    }
    cases: dict[str, tuple[str, Callable[[Path], list[str]]]] = {
        "python workflow.py": ("workflow", lambda d: [sys.executable, str(d / "workflow.py")]),
        "onedir program": ("onedir", lambda d: [str(d / NAME)]),
        "onefile program": ("onefile", lambda d: [str(d / NAME)]),
        "onedir --version": ("onedir", lambda d: [str(d / NAME), "--version"]),
        "onefile --version": ("onefile", lambda d: [str(d / NAME), "--version"]),
        "python -c 'import libmaestro'": (
            "workflow",
            lambda _: [sys.executable, "-c", "import libmaestro"],
        ),
    }
    ignore = shutil.ignore_patterns("maestro_work", "dist")

    def once(name: str) -> tuple[float, str]:
        source, argv = cases[name]
        where = runs / re.sub(r"\W+", "-", name)
        shutil.rmtree(where, ignore_errors=True)
        shutil.copytree(sources[source], where, symlinks=True, ignore=ignore)
        command = argv(where)
        started = time.perf_counter()
        done = run(command, where, env)
        return time.perf_counter() - started, done.stdout

    for name in cases:  # warm-up: .pyc files written, disk cache warm; and check the results
        _, stdout = once(name)
        if "program" in name or name == "python workflow.py":
            if "gc_fraction" not in stdout:
                sys.exit(f"{name}: the workflow did not print its summary:\n{stdout}")
        elif "--version" in name and NAME not in stdout:
            sys.exit(f"{name}: unexpected output {stdout!r}")
    best: dict[str, float] = {}
    for _ in range(repeat):
        for name in cases:  # interleaved, so drift hits every case alike
            best[name] = min(best.get(name, float("inf")), once(name)[0])
    for name, seconds in best.items():
        print(f"start-up {name}: {seconds:.3f} s", file=sys.stderr)
    return best


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5, help="start-up runs; best is kept")
    parser.add_argument(
        "--markdown", action="store_true", help="print tables for docs/benchmarks.md"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    options = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="maestro-bench-bundle-"))
    try:
        project = base / NAME
        maestro = str(Path(sys.executable).parent / "maestro")
        run([maestro, "init", str(project)], base, clean_env(base))
        bundles, ready = bundle_times(base, project)
        onedir = base / "dist-onedir" / NAME
        folder_size = folder_bytes(onedir)
        onefile_size = (base / "dist-onefile" / NAME / NAME).stat().st_size
        archives, extract = archive_figures(base, onedir)
        startup = startup_times(base, project, options.repeat)
    finally:
        if options.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)

    venv_seconds = float(ready.get("seconds", 0.0))
    pyinstaller = ready.get("pyinstaller", "?")
    cold = bundles["cold"][0]
    bundle_rows = [
        ("cold: empty cache, onedir", "cold"),
        ("warm: the same project again, onedir", "warm"),
        ("--onefile, cache ready (first onefile bundle)", "onefile"),
        ("--onefile again", "onefile-again"),
    ]
    floor = startup["python workflow.py"]
    startup_rows = [
        ("`python workflow.py` (scaffold workflow, end to end)", "python workflow.py"),
        ("onedir program (end to end)", "onedir program"),
        ("onefile program (end to end)", "onefile program"),
        ("onedir `--version` (start-up only)", "onedir --version"),
        ("onefile `--version` (start-up only)", "onefile --version"),
        ("reference: `python -c 'import libmaestro'`", "python -c 'import libmaestro'"),
    ]

    if options.markdown:
        today = datetime.date.today().isoformat()
        print(
            f"{today}, {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, "
            f"Python {platform.python_version()}, PyInstaller {pyinstaller}; the `maestro init` "
            f"scaffold; start-up best of {options.repeat}."
        )
        print()
        print("| bundle | whole `maestro bundle` | of which PyInstaller | ÷ cold |")
        print("|---|---:|---:|---:|")
        for label, key in bundle_rows:
            total, frozen = bundles[key]
            frozen_text = seconds(frozen) if frozen is not None else "?"
            if key == "cold":
                frozen_text += f" (+ {seconds(venv_seconds)} preparing the build venv)"
            print(f"| {label} | {seconds(total)} | {frozen_text} | {total / cold:.2f}× |")
        print()
        print("| archive of the onedir folder | size | ÷ folder | time to write |")
        print("|---|---:|---:|---:|")
        print(f"| the folder itself (uncompressed) | {folder_size / MIB:.1f} MiB | 100% | – |")
        for compression in COMPRESSIONS:
            took, size = archives[compression]
            print(
                f"| {FORMAT[compression]} | {size / MIB:.1f} MiB | {size / folder_size:.0%} | "
                f"{seconds(took)} |"
            )
        print(
            f"| for comparison: the `--onefile` program | {onefile_size / MIB:.1f} MiB | "
            f"{onefile_size / folder_size:.0%} | – |"
        )
        print()
        print(f"Unpacking the zstd archive (`extract_archive`): {seconds(extract)}.")
        print()
        print("| run | best time | ÷ `python workflow.py` |")
        print("|---|---:|---:|")
        for label, key in startup_rows:
            print(f"| {label} | {seconds(startup[key])} | {startup[key] / floor:.2f}× |")
        print()
        print(
            "How measured: one run of `scripts/bench/bundle.py` creates a project with "
            "`maestro init` in a temporary directory and points MAESTRO_CACHE at an empty "
            "directory of its own, so the cold bundle includes creating the build venv and "
            "installing PyInstaller into it (and the scaffold's declared dependencies); "
            "bundle times are the whole `maestro bundle --out DIR` command, and PyInstaller's "
            "share is the figure maestro prints. Archives are written by "
            "`libmaestro.bundle.archive.write_archive` from the warm onedir bundle, once each. "
            "Every start-up run gets a fresh copy of its folder (the project, or the bundle "
            "folder) and a MAESTRO_HOME in the temporary directory; `python workflow.py` uses "
            "the venv's Python with bytecode caching on, every case runs once as a warm-up, "
            f"then the cases run interleaved {options.repeat} times and the best is kept. The "
            "workflow itself (four awk/cat steps on three small FASTA files) takes about "
            "0.1 s of each end-to-end run."
        )
        return

    print(f"bundle (PyInstaller {pyinstaller}):")
    for label, key in bundle_rows:
        total, frozen = bundles[key]
        frozen_text = f"PyInstaller {frozen:.1f} s" if frozen is not None else ""
        if key == "cold":
            frozen_text += f", build venv {venv_seconds:.1f} s"
        print(f"  {label:<48} {total:6.1f} s  ({frozen_text}; {total / cold:.2f}x cold)")
    print(f"archives (onedir folder {folder_size / MIB:.1f} MiB):")
    for compression in COMPRESSIONS:
        took, size = archives[compression]
        print(
            f"  {FORMAT[compression]:<32} {size / MIB:6.1f} MiB ({size / folder_size:4.0%})"
            f"  {took:5.1f} s"
        )
    print(f"  onefile program                  {onefile_size / MIB:6.1f} MiB")
    print(f"  unpack zstd                      {extract:5.2f} s")
    print(f"start-up (best of {options.repeat}):")
    for label, key in startup_rows:
        print(f"  {label:<56} {startup[key]:6.3f} s  {startup[key] / floor:5.2f}x")


if __name__ == "__main__":
    main()
