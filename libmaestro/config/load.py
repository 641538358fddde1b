"""Reading Maestro.toml: find the file, read it, parse it; `_schema` validates what it says.

The pipeline is TOML parse to plain Python -> per-table validation -> inheritance resolution ->
frozen `ProjectConfig` (the last three in `_schema.py`). Every problem found on the way is
collected as a `ConfigIssue` (file, line, dotted key, what is wrong and what was expected) and
raised together in one `ConfigError`; a partially valid configuration is never returned. Values
are pure data here: nothing in this module runs them or passes them to a shell.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from libmaestro.errors import ConfigError, ConfigIssue

if TYPE_CHECKING:
    from libmaestro.config.model import ProjectConfig

CONFIG_FILE_NAME = "Maestro.toml"
CONFIG_ENV_VAR = "MAESTRO_CONFIG"


def find_config_file(
    *, cwd: Path, script_dir: Path | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """Find the configuration file a workflow should use.

    The order is: the file named by `$MAESTRO_CONFIG` (relative to `cwd`), then
    `cwd/Maestro.toml`, then `script_dir/Maestro.toml`.

    Returns:
        The path of the file, or None when there is none.

    Raises:
        ConfigError: `$MAESTRO_CONFIG` is set but names no existing file.
    """
    environ = os.environ if env is None else env
    named = environ.get(CONFIG_ENV_VAR, "")
    if named:
        candidate = Path(named).expanduser()
        if not candidate.is_absolute():
            candidate = cwd / candidate
        if not candidate.is_file():
            problem = "a directory" if candidate.is_dir() else "a missing file"
            raise ConfigError(
                [
                    ConfigIssue(
                        file=candidate,
                        line=None,
                        key="",
                        message=f"{CONFIG_ENV_VAR} points to {problem}; set it to the path of "
                        f"an existing {CONFIG_FILE_NAME}, or unset it to use ./{CONFIG_FILE_NAME}",
                    )
                ]
            )
        return candidate
    for directory in (cwd, script_dir):
        if directory is not None and (directory / CONFIG_FILE_NAME).is_file():
            return directory / CONFIG_FILE_NAME
    return None


def load_config(path: Path) -> ProjectConfig:
    """Read and validate a Maestro.toml file.

    Raises:
        ConfigError: the file cannot be read, or has one or more problems (all are listed).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        message = f"the file is not UTF-8 text ({exc.reason}); save it as UTF-8"
        raise ConfigError([ConfigIssue(file=path, line=None, key="", message=message)]) from exc
    except OSError as exc:
        message = f"cannot read the file ({exc.strerror or exc}); check the path and permissions"
        raise ConfigError([ConfigIssue(file=path, line=None, key="", message=message)]) from exc
    return parse_config(text, path=path)


def parse_config(text: str, *, path: Path) -> ProjectConfig:
    """Validate the text of a Maestro.toml; `path` names it in messages and anchors `[inputs]`.

    Raises:
        ConfigError: the text has one or more problems (all are listed, ordered by line).
    """
    # Imported here: a workflow without a Maestro.toml never parses one, nor checks its tables.
    import tomllib

    from libmaestro.config._schema import validate

    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        data = _parse_invalid(text, path=path)
    return validate(data, text, path=path)


def _parse_invalid(text: str, *, path: Path) -> dict[str, Any]:
    """Parse, with tomlkit, text that tomllib rejected: its errors carry the line and column.

    tomllib reads valid files several times faster, and importing tomlkit alone costs a workflow
    ~6 ms at start-up, so tomlkit only explains syntax errors (the messages are its own). Should
    it accept what tomllib rejected, its reading of the text is used, as it always was.

    Raises:
        ConfigError: the text is not valid TOML.
    """
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    from libmaestro.config._locate import syntax_issue

    try:
        data: dict[str, Any] = tomlkit.parse(text).unwrap()
    except TOMLKitError as exc:
        raise ConfigError([syntax_issue(exc, text, path)]) from exc
    return data
