"""Placing a process's inputs into its working directory, by the executor's staging mode."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from collections.abc import Collection, Mapping
from pathlib import Path

from libmaestro.config.model import StagingMode
from libmaestro.errors import StagingError

log = logging.getLogger(__name__)


# What `Path.exists()` counts as "does not exist" rather than as an error to raise.
_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


class InputStats(dict[str, os.stat_result]):
    """Each input's `os.stat` (following symlinks) by variable, and which inputs are links.

    `links` names the inputs whose own path is a symlink (a staged input of another process):
    staging links to where they lead. Knowing it here saves staging a system call per input.
    """

    links: frozenset[str] = frozenset()


def check_inputs_exist(process: str, inputs: Mapping[str, Path]) -> InputStats:
    """Raise one StagingError naming every input that does not exist.

    Returns:
        Each input's `os.stat`, for staging and the run history to reuse.
    """
    found = InputStats()
    links: list[str] = []
    missing: list[str] = []
    for var, path in inputs.items():
        try:
            # lstat first: most inputs are not links, and then it is their stat too.
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                links.append(var)
                info = os.stat(path)  # noqa: PTH116  # a quarter of Path.stat's cost
            found[var] = info
        except OSError as exc:
            if exc.errno not in _ABSENT:
                raise
            missing.append(f"{var} = {path}")
        except ValueError:  # not representable as a path (like Path.exists)
            missing.append(f"{var} = {path}")
    if missing:
        raise StagingError(
            f"process {process!r} cannot start: {len(missing)} input"
            f"{'s do' if len(missing) > 1 else ' does'} not exist: {'; '.join(missing)}. "
            "Check the path, or that the process producing it ran first"
        )
    found.links = frozenset(links)
    return found


def _staged_name(var: str, path: Path, taken: set[str]) -> str:
    name = path.name or var
    if name in taken:
        name = f"{var}__{name}"
    taken.add(name)
    return name


def _hardlink_tree(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, copy_function=os.link, symlinks=True)
    else:
        os.link(source, target)


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target)


def _without_links(source: Path, is_link: bool | None = None) -> Path:
    """`source`, or where it leads if it is a symlink (a staged input of another process).

    Staging links to the file itself, never to another link: a chain breaks when a directory
    along it moves (an earlier attempt goes to `.attempts/` on resume). Only the file itself is
    checked (`is_link`, or one `lstat`): resolving every directory above it cost a system call
    per path component, for each input of every process.
    """
    if is_link is None:
        is_link = stat.S_ISLNK(os.lstat(source).st_mode)
    return source.resolve() if is_link else source


def stage_inputs(
    inputs: Mapping[str, Path],
    workdir: Path,
    mode: StagingMode,
    *,
    reserved: Collection[str] = (),
    stats: Mapping[str, os.stat_result] | None = None,
) -> dict[str, str]:
    """Place each input into `workdir` and return the path each variable should hold.

    The paths are text, as the script's variables hold them: a `Path` per input cost more than
    its symlink, and a gather step stages a thousand.

    Inputs keep their file name; when two share one (or one clashes with a declared output),
    the later gets its variable name as a prefix (`reads__sample.fq`). Hardlinks fall back to a
    copy across filesystems, where links cannot exist.

    Args:
        inputs: variable -> absolute path of an existing file or directory.
        workdir: the process's working directory.
        mode: the executor's effective staging mode.
        reserved: names in `workdir` that must not be used (the outputs' first path parts).
        stats: each input's `os.stat` when the caller has it (`check_inputs_exist`).
    """
    if mode is StagingMode.NONE:
        return {var: str(path.resolve()) for var, path in inputs.items()}
    taken = set(reserved)
    staged: dict[str, str] = {}
    here = os.fspath(workdir)
    for var, source in inputs.items():
        target = f"{here}{os.sep}{_staged_name(var, source, taken)}"
        try:
            known_links = stats.links if isinstance(stats, InputStats) and var in stats else None
            source = _without_links(source, None if known_links is None else var in known_links)
            if mode is StagingMode.SYMLINK:
                known = stats.get(var) if stats is not None else None
                is_dir = stat.S_ISDIR(known.st_mode) if known is not None else source.is_dir()
                os.symlink(source, target, target_is_directory=is_dir)  # noqa: PTH211  # text
            elif mode is StagingMode.HARDLINK:
                try:
                    _hardlink_tree(source, Path(target))
                except OSError as exc:
                    log.info("hardlink of %s failed (%s); copying instead", source, exc)
                    if Path(target).is_dir():
                        shutil.rmtree(target)
                    _copy(source, Path(target))
            else:
                _copy(source, Path(target))
        except FileExistsError:
            raise StagingError(
                f"cannot stage input {var!r}: {target} already exists in the working directory"
            ) from None
        except OSError as exc:
            raise StagingError(
                f"cannot stage input {var!r} ({source}) into {workdir} by {mode.value}: "
                f"{exc.strerror or exc}"
            ) from exc
        staged[var] = target
    return staged
