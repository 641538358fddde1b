"""Small filesystem helpers shared by the library."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _current_umask() -> int:
    # Reading the umask means setting it; done once, at import, before any thread exists.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_UMASK = _current_umask()


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write `text` to `path` so readers see the old content or the new one, never half of it.

    The temporary file lives in the same directory, so the final `os.replace` is a rename on one
    filesystem (atomic on POSIX). Without `mode` the file gets the permissions a new file gets
    (0666 less the umask), not mkstemp's private 0600: procinfo.toml and the like are shared.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_new_file(path: str | os.PathLike[str], text: str, *, mode: int = 0o644) -> None:
    """Write a file in a directory that only this process writes to (a process's workdir).

    No temporary file and rename as in `atomic_write_text`: nobody else reads these files while
    they are written, and on a busy run the extra file creation is a measurable cost. Written
    with plain system calls: a buffered file object costs more than the write itself.
    """
    data = text.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def tail_lines(path: Path, count: int, *, max_bytes: int = 64 * 1024) -> list[str]:
    """The last `count` lines of a text file, reading at most `max_bytes` from its end."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:] if count else []
