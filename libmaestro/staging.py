"""Placing a process's inputs into its working directory, by the executor's staging mode."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path

from libmaestro.config.model import StagingMode
from libmaestro.errors import StagingError

log = logging.getLogger(__name__)


def check_inputs_exist(process: str, inputs: Mapping[str, Path]) -> None:
    """Raise one StagingError naming every input that does not exist."""
    missing = [f"{var} = {path}" for var, path in inputs.items() if not path.exists()]
    if missing:
        raise StagingError(
            f"process {process!r} cannot start: {len(missing)} input"
            f"{'s do' if len(missing) > 1 else ' does'} not exist: {'; '.join(missing)}. "
            "Check the path, or that the process producing it ran first"
        )


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


def stage_inputs(
    inputs: Mapping[str, Path],
    workdir: Path,
    mode: StagingMode,
    *,
    reserved: Collection[str] = (),
) -> dict[str, Path]:
    """Place each input into `workdir` and return the path each variable should hold.

    Inputs keep their file name; when two share one (or one clashes with a declared output),
    the later gets its variable name as a prefix (`reads__sample.fq`). Hardlinks fall back to a
    copy across filesystems, where links cannot exist.

    Args:
        inputs: variable -> absolute path of an existing file or directory.
        workdir: the process's working directory.
        mode: the executor's effective staging mode.
        reserved: names in `workdir` that must not be used (the outputs' first path parts).
    """
    if mode is StagingMode.NONE:
        return {var: path.resolve() for var, path in inputs.items()}
    taken = set(reserved)
    staged: dict[str, Path] = {}
    for var, source in inputs.items():
        target = workdir / _staged_name(var, source, taken)
        source = source.resolve()
        try:
            if mode is StagingMode.SYMLINK:
                target.symlink_to(source, target_is_directory=source.is_dir())
            elif mode is StagingMode.HARDLINK:
                try:
                    _hardlink_tree(source, target)
                except OSError as exc:
                    log.info("hardlink of %s failed (%s); copying instead", source, exc)
                    if target.is_dir():
                        shutil.rmtree(target)
                    _copy(source, target)
            else:
                _copy(source, target)
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
