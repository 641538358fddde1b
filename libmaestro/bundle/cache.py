"""The per-user build cache that makes `maestro bundle` fast: a prepared PyInstaller environment.

    $MAESTRO_CACHE or ~/.cache/maestro (XDG_CACHE_HOME)
      bundle/<maestro version>-<python tag>-<platform>/
        venv/             Python venv with PyInstaller; sees this maestro and its libraries
        work/<project>/   PyInstaller's analysis cache per project, reused by the next bundle
        deps/<digest>/    a project's own Python dependencies (pip install --target)
        ready.json        written last: what was installed, so a half-made cache is redone

The venv does not get its own copy of libmaestro: a `.pth` file adds the site-packages of the
environment maestro runs from, so the bundle freezes exactly the libmaestro that made it, with
no download and no build of it. The key changes with the maestro version, so an upgrade gets a
fresh environment; `maestro update-cache --clear` removes them all.

That link ties the environment to the maestro installation that made it: ready.json records it
(`sys.prefix` and the linked site-packages), and an environment made by another installation,
or whose linked directories are gone, is not ready: it is made again, and PyInstaller's
analyses, which name the other installation's files, are dropped.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import site
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from libmaestro._fs import atomic_write_text
from libmaestro._version import __version__
from libmaestro.errors import MaestroError

CACHE_ENV_VAR = "MAESTRO_CACHE"
PYINSTALLER_REQUIREMENT = "pyinstaller>=6.0"
READY_FILE = "ready.json"
HOST_PTH = "maestro-host.pth"


class BundleError(MaestroError):
    """Bundling could not be done: the build environment or PyInstaller failed."""


def cache_root() -> Path:
    """`$MAESTRO_CACHE`, else `$XDG_CACHE_HOME/maestro`, else `~/.cache/maestro`."""
    if explicit := os.environ.get(CACHE_ENV_VAR):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "maestro"


def platform_tag() -> str:
    """`linux-x86_64`, `darwin-arm64`: the only platform a bundle made here runs on."""
    return f"{sys.platform}-{platform.machine().lower()}"


def cache_key() -> str:
    return f"{__version__}-py{sys.version_info.major}{sys.version_info.minor}-{platform_tag()}"


@dataclass(frozen=True, slots=True)
class BuildCache:
    """One prepared build environment (see the module docstring)."""

    directory: Path

    @classmethod
    def current(cls) -> BuildCache:
        return cls(cache_root() / "bundle" / cache_key())

    @property
    def venv(self) -> Path:
        return self.directory / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def workpath(self, project_key: str) -> Path:
        return self.directory / "work" / project_key

    def deps_dir(self, digest: str) -> Path:
        return self.directory / "deps" / digest

    @property
    def recorded(self) -> dict[str, object] | None:
        """ready.json as written, whether or not it still holds (None if absent or unreadable)."""
        try:
            data = json.loads((self.directory / READY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @property
    def ready(self) -> dict[str, object] | None:
        """ready.json, if the environment is complete and made for this maestro installation."""
        data = self.recorded
        if data is None or not self.python.exists():
            return None
        host = data.get("host")
        if not isinstance(host, dict) or host.get("prefix") != sys.prefix:
            return None  # made by another installation (or before the host was recorded)
        linked, pth = host.get("site_packages"), host.get("pth")
        if not isinstance(linked, list) or not isinstance(pth, str) or not Path(pth).is_file():
            return None
        if not all(isinstance(path, str) and Path(path).is_dir() for path in linked):
            return None  # the linked environment was deleted or moved
        return data

    def ensure(self, *, log: list[str] | None = None) -> bool:
        """Prepare the environment unless it is ready; True if it had to be prepared."""
        if self.ready is not None:
            return False
        started = time.monotonic()
        if self.recorded is not None:
            # Made for another installation, or broken since: PyInstaller's analyses name the
            # files it froze then, which may be another installation's.
            (self.directory / READY_FILE).unlink(missing_ok=True)
            shutil.rmtree(self.directory / "work", ignore_errors=True)
        shutil.rmtree(self.venv, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "venv", str(self.venv)], "create the build venv", log)
        pth, linked = _link_host_packages(self.venv)
        _run(
            [str(self.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             PYINSTALLER_REQUIREMENT],
            "install PyInstaller into the build venv (is PyPI, or your pip index, reachable?)",
            log,
        )  # fmt: skip
        version = subprocess.run(
            [str(self.python), "-c", "import PyInstaller; print(PyInstaller.__version__)"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
        info = {
            "maestro": __version__,
            "python": platform.python_version(),
            "platform": platform_tag(),
            "pyinstaller": version,
            "host": {"prefix": sys.prefix, "site_packages": linked, "pth": str(pth)},
            "prepared_at": time.time(),
            "seconds": round(time.monotonic() - started, 1),
        }
        atomic_write_text(self.directory / READY_FILE, json.dumps(info, indent=1) + "\n")
        return True


def _host_site_packages() -> list[str]:
    """The site-packages directories this maestro runs from (a venv's, or the user's)."""
    found = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    found += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE:
        found.append(site.getusersitepackages())
    return [p for p in dict.fromkeys(found) if Path(p).is_dir()]


def _link_host_packages(venv: Path) -> tuple[Path, list[str]]:
    """Make the venv see this maestro's site-packages; returns the .pth file and what it adds."""
    query = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", query], capture_output=True, text=True, check=True
    ).stdout.strip()
    # `site.addsitedir` (not a bare path line) so the host's own .pth files, such as an editable
    # install's, are processed too.
    linked = _host_site_packages()
    lines = [f"import site; site.addsitedir({path!r})" for path in linked]
    pth = Path(purelib, HOST_PTH)
    pth.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return pth, linked


def _run(argv: list[str], what: str, log: list[str] | None) -> None:
    if log is not None:
        log.append(" ".join(argv))
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise BundleError(f"could not {what}: " + " / ".join(detail))


def clear_caches() -> list[Path]:
    """Remove every prepared build environment; returns what was removed."""
    base = cache_root() / "bundle"
    removed = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def list_caches() -> list[tuple[Path, dict[str, object] | None, int]]:
    """Every build environment: its directory, its ready.json (None if unfinished), its size.

    One made by another maestro installation is listed with its ready.json, though `ensure`
    would make it again for this one.
    """
    base = cache_root() / "bundle"
    found = []
    for path in sorted(base.iterdir()) if base.is_dir() else []:
        if path.is_dir():
            size = sum(
                f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()
            )
            cache = BuildCache(path)
            found.append((path, cache.recorded if cache.python.exists() else None, size))
    return found
