"""A session's directory on an SSH host: working directories, staging, scripts, outputs.

Everything a remote process leaves behind stays on its host, in the same layout as locally:
`<remote_workdir or ~/maestro_work>/<session>/<process>/`. Each operation is one command (or
one SFTP transfer) over the host's connection, and each is safe to repeat after a reconnection.
"""

from __future__ import annotations

import logging
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from libmaestro.config.model import SshTarget, StagingMode
from libmaestro.errors import StagingError
from libmaestro.remote.backend import bash
from libmaestro.remote.connection import Host, SshError, hosts
from libmaestro.remote.paths import RemotePath

log = logging.getLogger(__name__)

ATTEMPTS_DIR = ".attempts"

# $1 workdir, $2 attempts dir, $3 stamp, $4 script name, then output subdirectories to create;
# stdin: the script. One round trip instead of three (mkdir, SFTP write, chmod).
_PREPARE = r"""
w=$1 attempts=$2 stamp=$3 script=$4; shift 4
if [ -d "$w" ] && [ -n "$(ls -A "$w")" ]; then
  mkdir -p "$attempts" && mv "$w" "$attempts/$(basename "$w").$stamp"
fi
mkdir -p "$w" || exit 1
for d in "$@"; do mkdir -p "$w/$d" || exit 1; done
cat > "$w/$script" && chmod 755 "$w/$script"
"""

# $1 workdir, $2 mode, then pairs: source, name. Exit 3 names a missing source on stderr.
_STAGE = r"""
w=$1 mode=$2; shift 2
while [ "$#" -gt 0 ]; do
  src=$1 name=$2; shift 2
  [ -e "$src" ] || { echo "$src" >&2; exit 3; }
  rm -rf "${w:?}/$name"
  case "$mode" in
    Symlink) ln -s "$src" "$w/$name" ;;
    Hardlink) ln "$src" "$w/$name" 2>/dev/null || cp -a "$src" "$w/$name" ;;
    *) cp -a "$src" "$w/$name" ;;
  esac || exit 1
done
"""

_MISSING = r"""
for f in "$@"; do [ -e "$f" ] || printf '%s\n' "$f"; done
"""


class RemoteWorkspace:
    """The directory of one session on one host."""

    def __init__(self, target: SshTarget, session: str) -> None:
        self.target = target
        self.host: Host = hosts().get(target)
        if self.host.home is None:
            self.host.connect()
        base = target.remote_workdir or "~/maestro_work"
        if base.startswith("~"):
            base = str(self.host.home) + base[1:]
        self.directory = PurePosixPath(base) / session

    def workdir(self, process: str) -> PurePosixPath:
        return self.directory / process

    def prepare(
        self, process: str, output_dirs: Sequence[str], *, script_name: str, script: str
    ) -> PurePosixPath:
        """A clean working directory with the script in it; an earlier attempt's directory
        moves to `.attempts/` (kept)."""
        workdir = self.workdir(process)
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}.{time.time_ns() % 1_000_000}"
        attempts = str(self.directory / ATTEMPTS_DIR)
        done = self.host.run(
            bash(_PREPARE, str(workdir), attempts, stamp, script_name, *output_dirs), stdin=script
        )
        if done.exit_status != 0:
            raise StagingError(
                f"cannot create the working directory {workdir} on {self.host.label}: "
                f"{done.stderr.strip() or f'exit status {done.exit_status}'}"
            )
        return workdir

    def stage(
        self,
        process: str,
        inputs: Mapping[str, Path | RemotePath],
        workdir: PurePosixPath,
        mode: StagingMode,
    ) -> dict[str, str]:
        """Place every input in the working directory; returns variable -> path on the host.

        An input already on this host is staged there by `mode`; one on this machine or
        another host is copied in (SFTP), which is always a copy whatever the mode.
        """
        staged: dict[str, str] = {}
        here: list[str] = []
        for var, value in inputs.items():
            name = value.name
            if isinstance(value, RemotePath) and value.on(self.target):
                if mode is StagingMode.NONE:
                    staged[var] = str(value.path)
                else:
                    here += [str(value.path), name]
                    staged[var] = str(workdir / name)
                continue
            local = value if isinstance(value, Path) else fetch(value, _scratch())
            log.info("%s: copying %s to %s", process, value, self.host.label)
            try:
                progress = TransferProgress(f"{value} to {self.host.label}")
                self.host.put(local, str(workdir / name), progress=progress)
            except SshError as exc:
                raise StagingError(
                    f"process {process!r}: cannot copy input {var} = {value} to "
                    f"{self.host.label}: {exc}"
                ) from None
            staged[var] = str(workdir / name)
        if here:
            done = self.host.run(bash(_STAGE, str(workdir), mode.value, *here))
            if done.exit_status == 3:
                raise StagingError(
                    f"process {process!r}: input {done.stderr.strip()} does not exist on "
                    f"{self.host.label}"
                )
            if done.exit_status != 0:
                raise StagingError(
                    f"process {process!r}: cannot stage inputs on {self.host.label}: "
                    f"{done.stderr.strip()}"
                )
        return staged

    def write(self, path: PurePosixPath, text: str, *, mode: int = 0o644) -> None:
        self.host.write_text(str(path), text, mode=mode)

    def missing(self, paths: Sequence[PurePosixPath]) -> list[PurePosixPath]:
        """The paths that do not exist on the host."""
        if not paths:
            return []
        done = self.host.run(bash(_MISSING, *(str(p) for p in paths)))
        return [PurePosixPath(line) for line in done.stdout.splitlines() if line]

    def tail(self, path: PurePosixPath, lines: int) -> list[str]:
        done = self.host.run(f"tail -n {int(lines)} {shlex.quote(str(path))} 2>/dev/null")
        return done.stdout.splitlines()


PROGRESS_FROM = 8 * 1024 * 1024  # files this large get progress lines while they are copied


class TransferProgress:
    """Progress of one copy on stderr, every tenth of a large file: plain lines, so they read
    the same in a terminal, a log file or a detached run's output."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.started = time.monotonic()
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        if total < PROGRESS_FROM:
            return
        tenth = done * 10 // total
        if tenth > self._shown:
            self._shown = tenth
            seconds = max(time.monotonic() - self.started, 1e-6)
            sys.stderr.write(
                f"maestro: copying {self.what}: {tenth * 10}% of {total / 1e6:.0f} MB "
                f"({done / seconds / 1e6:.0f} MB/s)\n"
            )


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="maestro-transfer-"))


def fetch(remote: RemotePath, destination: Path | str) -> Path:
    """Copy a remote file or directory here; returns the local path.

    `destination` is a directory to copy into, or the new path itself if it does not exist yet.
    """
    destination = Path(destination)
    target = destination / remote.name if destination.is_dir() else destination
    target.parent.mkdir(parents=True, exist_ok=True)
    progress = TransferProgress(f"{remote} here")
    hosts().get(remote.target).get(str(remote.path), target, progress=progress)
    return target


def push(local: Path | str, target: SshTarget, remote_path: str) -> RemotePath:
    """Copy a local file or directory to `remote_path` on `target`; returns where it is."""
    hosts().get(target).put(Path(local), remote_path)
    return RemotePath(target, PurePosixPath(remote_path))
