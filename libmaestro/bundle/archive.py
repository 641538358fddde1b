"""Pack a bundle folder into one archive that unpacks to the same tree (`--compress`).

Permission bits and symlinks (PyInstaller links shared libraries inside `_internal/`) survive
both ways; a zip stores a symlink as Info-ZIP's `unzip` does (the link's mode and its target as
the content). Unpacking uses tarfile's "data" filter and refuses a zip member or link that
would land outside the destination.
"""

from __future__ import annotations

import enum
import importlib
import os
import stat
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

# zstd is chosen for size: level 19 makes a typical bundle about 15% smaller than level 3, at
# the price of 15-30 s on two cores for a 70 MB bundle; unpacking is fast at any level.
ZSTD_LEVEL = 19


def _zstandard() -> Any:
    # Imported by name, at use: PyInstaller follows every `import` statement it can see (even
    # in functions), and a bundled program must not carry zstandard's 20 MB for an archive
    # format it never writes.
    return importlib.import_module("zstandard")


class Compression(enum.Enum):
    ZSTD = "zstd"
    XZ = "xz"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    ZIP = "zip"
    NONE = "none"


SUFFIXES = {
    Compression.ZSTD: ".tar.zst",
    Compression.XZ: ".tar.xz",
    Compression.GZIP: ".tar.gz",
    Compression.BZIP2: ".tar.bz2",
    Compression.ZIP: ".zip",
}
_TAR_MODES = {Compression.XZ: "w:xz", Compression.GZIP: "w:gz", Compression.BZIP2: "w:bz2"}


def write_archive(folder: Path, stem: Path, compression: Compression) -> Path:
    """Write `stem` + the suffix; its single top-level entry is `folder`'s name."""
    path = stem.with_name(stem.name + SUFFIXES[compression])
    partial = path.with_name(path.name + ".partial")
    arcname = folder.name
    if compression is Compression.ZIP:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            archive.write(folder, arcname)
            for file in sorted(folder.rglob("*")):
                name = f"{arcname}/{file.relative_to(folder).as_posix()}"
                if file.is_symlink():
                    info = zipfile.ZipInfo(name, _zip_time(file))
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                    info.create_system = 3  # Unix: the mode in external_attr means what it says
                    archive.writestr(info, str(file.readlink()))
                else:
                    # Streams the file; from_file keeps its mode bits (the program stays
                    # executable when unzipped).
                    archive.write(file, name)
    elif compression is Compression.ZSTD:
        threads = os.cpu_count() or 1
        compressor = _zstandard().ZstdCompressor(level=ZSTD_LEVEL, threads=threads)
        with (
            partial.open("wb") as raw,
            compressor.stream_writer(raw) as stream,
            tarfile.open(fileobj=stream, mode="w|") as archive,
        ):
            archive.add(folder, arcname=arcname)
    else:
        # gzip at 6, not tarfile's 9: four times faster for an archive 0.4% larger.
        level = {"compresslevel": 6} if compression is Compression.GZIP else {}
        with tarfile.open(partial, _TAR_MODES[compression], **level) as archive:  # type: ignore[call-overload]
            archive.add(folder, arcname=arcname)
    partial.replace(path)
    return path


def _zip_time(path: Path) -> tuple[int, int, int, int, int, int]:
    """A zip entry's date_time for `path` itself (not what it links to); zip starts at 1980."""
    year, month, day, hour, minute, second = time.localtime(os.lstat(path).st_mtime)[:6]
    return (max(year, 1980), month, day, hour, minute, second)


def extract_archive(path: Path, destination: Path) -> Path:
    """Unpack an archive made by `write_archive` into `destination`; returns the folder.

    Raises:
        tarfile.FilterError: a tar member would land outside `destination` (or is a device).
        ValueError: a zip member or link would land outside `destination`.
    """
    destination.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".zip"):
        return destination / _extract_zip(path, destination)
    if path.name.endswith(".tar.zst"):
        with (
            path.open("rb") as raw,
            _zstandard().ZstdDecompressor().stream_reader(raw) as stream,
            tarfile.open(fileobj=stream, mode="r|") as archive,
        ):
            # extractall, not extract member by member: it sets a directory's mode only after
            # its files are in, so a read-only directory does not lock out its own files.
            first: list[str] = []
            archive.extractall(destination, members=_noting_first(archive, first), **_SAFE)  # noqa: S202  # members checked
    else:
        with tarfile.open(path) as archive:
            first = archive.getnames()[:1]
            archive.extractall(destination, members=_noting_first(archive, []), **_SAFE)  # noqa: S202  # members checked
    return destination / first[0].split("/", 1)[0] if first else destination


# tarfile's extraction filters came in Python 3.11.4 (3.12 elsewhere); Debian 12 has 3.11.2.
# Without them the members are checked by `_noting_first` alone (no absolute or ".." paths).
_SAFE: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def _noting_first(archive: tarfile.TarFile, first: list[str]) -> Iterator[tarfile.TarInfo]:
    """The archive's members as they are read (a stream cannot be listed first), noting one."""
    for member in archive:
        if not _SAFE:  # no tarfile filter on this Python: refuse what would land outside
            parts = PurePosixPath(member.name).parts
            link = PurePosixPath(member.linkname) if member.issym() or member.islnk() else None
            if (
                member.name.startswith("/")
                or ".." in parts
                or (
                    link is not None
                    and (link.is_absolute() or (".." in link.parts and member.islnk()))
                )
            ):
                raise ValueError(f"refusing archive member {member.name!r}: outside the folder")
        if not first:
            first.append(member.name)
        yield member


def _extract_zip(path: Path, destination: Path) -> str:
    """Unpack a zip with its modes and symlinks; returns its top-level name."""
    base = destination.resolve()
    directories: list[tuple[Path, int]] = []
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        for info in infos:
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                link = Path(os.path.normpath(base / info.filename))
                target = archive.read(info).decode("utf-8")
                pointed = (link.parent / target).resolve()
                if not (link.is_relative_to(base) and pointed.is_relative_to(base)):
                    raise ValueError(f"{path}: the link {info.filename} points outside the archive")
                link.parent.mkdir(parents=True, exist_ok=True)
                link.unlink(missing_ok=True)
                link.symlink_to(target)
                continue
            extracted = Path(archive.extract(info, base))  # zipfile keeps it inside `base`
            if not mode:
                continue
            if info.is_dir():
                directories.append((extracted, mode))  # after their files, as tar does
            else:
                extracted.chmod(mode & 0o777)  # no setuid, as tar's "data" filter
    for directory, mode in reversed(directories):
        directory.chmod(mode & 0o777)
    return infos[0].filename.split("/", 1)[0] if infos else ""
