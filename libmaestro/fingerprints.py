"""Fingerprints of the files a step read and wrote: size, mtime and a content hash.

A file's fingerprint is its size and mtime, plus the SHA-256 of its content up to
`HASH_LIMIT`; a directory's is its total size, its newest mtime and a hash of its listing. The
run history records them with each step, and `--resume` compares them with the files as they
are (see `libmaestro.history`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from libmaestro.state import Fingerprint

__all__ = ["HASH_LIMIT", "fingerprint", "fingerprint_as_taken"]

HASH_LIMIT = 64 * 1024 * 1024  # larger files are compared by size and mtime only
_HASH_CHUNK = 1024 * 1024


def _sha256_of(path: Path, size: int) -> str:
    """The SHA-256 of a file's content; see `_sha256_and_stat`.

    Raises:
        OSError: `path` cannot be read.
    """
    return _sha256_and_stat(path, size)[0]


def _sha256_and_stat(path: Path, size: int) -> tuple[str, os.stat_result]:
    """The SHA-256 of a file's content, and the file's stat once it was read.

    Read with plain system calls (no file object). `size` is the file's size as just stat'ed:
    a small file is then read with one call (a read that returns less than was asked is the
    end of a regular file). The stat is of the open file, not of the path (`fstat`).

    Raises:
        OSError: `path` cannot be read.
    """
    sha = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        want = size + 1 if size < _HASH_CHUNK else _HASH_CHUNK
        while chunk := os.read(fd, want):
            sha.update(chunk)
            if len(chunk) < want:
                break
            want = _HASH_CHUNK
        after = os.fstat(fd)
    finally:
        os.close(fd)
    return sha.hexdigest(), after


def fingerprint(path: Path, info: os.stat_result | None = None) -> Fingerprint | None:
    """A file's fingerprint (a directory's: its tree), or None if it does not exist.

    The same as `Fingerprint.of_file` for a file. `info` is `os.stat(path)` when the caller has
    just taken it: one system call less per input and output of every process.

    Raises:
        OSError: the file exists but cannot be read for its content hash.
    """
    if not isinstance(path, Path):  # a RemotePath: its host is asked by the remote runner
        return None
    try:
        if info is None:
            info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            return _tree_fingerprint(path)
    except OSError:
        return None
    digest = _sha256_of(path, info.st_size) if info.st_size <= HASH_LIMIT else None
    return Fingerprint(path=path, size=info.st_size, mtime_ns=info.st_mtime_ns, sha256=digest)


def fingerprint_as_taken(path: Path, info: os.stat_result | None) -> Fingerprint | None:
    """`fingerprint(path, info)`, taken later than `info` was: the run history's writer thread
    fingerprints a step's files after the step's thread has moved on.

    The content hash is kept only if the file still has the size and mtime `info` saw after it
    was read: a file rewritten in between is recorded with no hash, which a later resume treats
    as changed (it reruns the step) rather than trusting content it never saw. A file replaced
    by another (renamed over) keeps the hash of the content that was read, which `info`
    describes; the next resume sees the new file's stat and compares content.
    """
    if info is None or stat.S_ISDIR(info.st_mode) or not isinstance(path, Path):
        return fingerprint(path, info)  # nothing earlier to hold it to
    as_seen = Fingerprint(path=path, size=info.st_size, mtime_ns=info.st_mtime_ns)
    if info.st_size > HASH_LIMIT:
        return as_seen
    try:
        digest, now = _sha256_and_stat(path, info.st_size)
    except OSError:  # gone or unreadable since: what was seen is all there is to record
        return as_seen
    if now.st_size != info.st_size or now.st_mtime_ns != info.st_mtime_ns:
        return as_seen
    return Fingerprint(path=path, size=info.st_size, mtime_ns=info.st_mtime_ns, sha256=digest)


def _tree_fingerprint(root: Path) -> Fingerprint:
    """A directory as one fingerprint: total size, newest mtime, a hash of its listing.

    The listing is one line per file, `relative/path\\0size\\0mtime_ns`, in `os.walk` order
    with names sorted. Paths are plain strings: a scatter step's directory of 1,000 parts cost
    12 ms with a `Path` per file, on the writer's path.
    """
    listing = hashlib.sha256()
    size = 0
    top = os.fspath(root)
    newest = root.stat().st_mtime_ns
    prefix = len(top) if top.endswith(os.sep) else len(top) + 1
    for directory, subdirs, files in os.walk(top):
        subdirs.sort()
        below = directory[prefix:]
        for name in sorted(files):
            try:
                info = os.stat(f"{directory}{os.sep}{name}")  # noqa: PTH116  # see docstring
            except OSError:
                continue
            size += info.st_size
            newest = max(newest, info.st_mtime_ns)
            relative = f"{below}{os.sep}{name}" if below else name
            entry = f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\n"
            listing.update(entry.encode("utf-8", "surrogateescape"))
    return Fingerprint(path=root, size=size, mtime_ns=newest, sha256=listing.hexdigest())
