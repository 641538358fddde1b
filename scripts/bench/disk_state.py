"""Is file creation here at its usual speed? Run before a benchmark that measures it.

Creates what 1,000 maestro processes create in their working directories (a directory, three
small files and a symlink each) and prints how long that took. On this project's VM the root
disk (ext4 without a journal) answers in 40 to 60 ms normally and in 300 to 600 ms for minutes after
tens of thousands of files were deleted; tmpfs takes about 20 ms. A benchmark that creates files
measures that state as much as itself, so start it when this is at its usual figure.

The files stay (deleting them would cause the slowdown this measures); they are in a new
directory under $TMPDIR, printed with the time.

    .venv/bin/python scripts/bench/disk_state.py
    TMPDIR=/dev/shm .venv/bin/python scripts/bench/disk_state.py
"""

from __future__ import annotations

import os
import tempfile
import time

ENTRIES = ("script", "stdout", "stderr")


def main() -> None:
    base = tempfile.mkdtemp(prefix="maestro-disk-state-")
    started = time.perf_counter()
    for index in range(1000):
        workdir = f"{base}/w{index}"
        os.mkdir(workdir)  # noqa: PTH102  # what the runner does, without pathlib
        for name in ENTRIES:
            fd = os.open(f"{workdir}/{name}", os.O_CREAT | os.O_WRONLY, 0o644)
            os.write(fd, b"x")
            os.close(fd)
        os.symlink("/etc/hostname", f"{workdir}/input")  # noqa: PTH211
    elapsed = time.perf_counter() - started
    print(f"{elapsed * 1000:.0f} ms for 1,000 directories of 5 entries in {base}")


if __name__ == "__main__":
    main()
