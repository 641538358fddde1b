"""What the tables of Maestro.toml mean: parsed TOML in, a frozen `ProjectConfig` out.

`load.py` finds, reads and parses the file; this module checks every table, resolves `inherit`
and builds the configuration. Every problem found on the way is collected as a `ConfigIssue`
(file, line, dotted key, what is wrong and what was expected) and raised together in one
`ConfigError`; a partially valid configuration is never returned. `parse_config` imports this
module only when there is a file to check, so a workflow without a Maestro.toml does not load it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from libmaestro.config._fields import FIELD_CHECKS
from libmaestro.config._locate import (
    Issues,
    KeyLocator,
    Keys,
    choice,
    describe,
    did_you_mean,
    key_text,
    quote,
    text_value,
    unknown_key,
)
from libmaestro.config.model import (
    ExecutorConfig,
    ExecutorType,
    ProjectConfig,
    SlurmConfig,
    StagingMode,
)
from libmaestro.errors import ConfigError

_TOP_LEVEL_KEYS = ("args", "inputs", "executor")
_COMMON_FIELDS = (
    "type", "inherit", "container", "staging_mode", "modules", "max_parallel", "ssh",
)  # fmt: skip
_SLURM_FIELDS = (
    "cpus",
    "memory",
    "gpus",
    "tasks",
    "nodes",
    "partition",
    "time",
    "account",
    "mail_user",
    "mail_type",
    "additional_options",
    "poll_interval",
)
_EXECUTOR_FIELDS = _COMMON_FIELDS + _SLURM_FIELDS
# `cpus` is also what a Local executor's processes use (they are accounted against the machine).
_SLURM_ONLY_FIELDS = frozenset(_SLURM_FIELDS) - {"cpus"}
# On inheritance these are concatenated (parent's first); every other field is replaced.
_APPENDED_FIELDS = frozenset({"modules", "additional_options"})
# Keys users may know from the roadmap; naming them plainly beats "unknown key".
_LATER_FIELDS: dict[str, str] = {}


def validate(data: dict[str, Any], text: str, *, path: Path) -> ProjectConfig:
    """Check parsed Maestro.toml `data`; `text` is what it was parsed from, for line numbers.

    Raises:
        ConfigError: the configuration has one or more problems (all are listed, ordered by line).
    """
    issues = Issues(path, KeyLocator(text))
    config = _Loader(issues, path).load(data)
    if issues.items:
        raise ConfigError(sorted(issues.items, key=lambda i: (i.line is None, i.line or 0)))
    return config


@dataclass
class _RawExecutor:
    """One `[executor.NAME]` table after per-table validation, before `inherit` is resolved."""

    name: str
    type: ExecutorType | None  # None when absent or invalid
    has_type: bool
    inherit: str | None
    has_inherit: bool
    values: dict[str, Any] = field(default_factory=dict)  # every other valid field


@dataclass
class _Resolved:
    type: ExecutorType | None
    values: dict[str, Any]


class _Loader:
    def __init__(self, issues: Issues, path: Path) -> None:
        self.issues = issues
        self.path = path

    def load(self, data: dict[str, Any]) -> ProjectConfig:
        self.issues.check_keys(data, (), _TOP_LEVEL_KEYS)
        args = self._args(data.get("args", {}))
        inputs = self._inputs(data.get("inputs", {}))
        raw = data.get("executor", {})
        executors: dict[str, ExecutorConfig] = {}
        if not isinstance(raw, dict):
            self.issues.add(
                ("executor",),
                f'expected tables like [executor.default] with type = "Local", got {describe(raw)}',
            )
        else:
            executors = self._executors(raw)
        locate = self.issues.locator.line
        lines = {
            (table, key): line
            for table, names in (("args", args), ("inputs", inputs), ("executor", executors))
            for key in names
            if (line := locate((table, key))) is not None
        }
        return ProjectConfig(
            path=self.path, args=args, inputs=inputs, executors=executors, lines=lines
        )

    # -- [args] and [inputs] ----------------------------------------------------------------

    def _args(self, table: object) -> dict[str, str]:
        if not isinstance(table, dict):
            self._not_a_table(("args",), 'init_msg = "Hello"', table)
            return {}
        args: dict[str, str] = {}
        for key, value in table.items():
            keys = ("args", key)
            if not key:
                self.issues.add(keys, 'an argument name cannot be empty; expected name = "value"')
            elif isinstance(value, bool):
                args[key] = "true" if value else "false"
            elif isinstance(value, int | float | str):
                args[key] = str(value)
            else:
                hint = (
                    "; write it in quotes"
                    if isinstance(value, datetime.date | datetime.time)
                    else ""
                )
                self.issues.add(
                    keys,
                    f'expected a string like {key_text(key)} = "value" (a number or boolean '
                    f"is also accepted), got {describe(value)}{hint}",
                )
        return args

    def _inputs(self, table: object) -> dict[str, tuple[Path, ...]]:
        if not isinstance(table, dict):
            self._not_a_table(("inputs",), 'reads = ["data/a.fq"]', table)
            return {}
        base = self.path.parent.resolve()
        inputs: dict[str, tuple[Path, ...]] = {}
        for key, value in table.items():
            keys = ("inputs", key)
            example = f'{key_text(key or "reads")} = ["data/a.fq", "data/b.fq"]'
            if not key:
                self.issues.add(keys, f"an input name cannot be empty; expected {example}")
                continue
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list):
                self.issues.add(
                    keys, f"expected an array of paths like {example}, got {describe(value)}"
                )
                continue
            paths: list[Path] = []
            for index, item in enumerate(items):
                where = None if isinstance(value, str) else index
                if not isinstance(item, str) or not item:
                    self.issues.add(
                        keys,
                        f"expected a non-empty path string like {example}, got {describe(item)}",
                        index=where,
                    )
                    continue
                try:
                    path = Path(item).expanduser()
                except RuntimeError:
                    self.issues.add(
                        keys, f"cannot expand the home directory in {quote(item)}", index=where
                    )
                    continue
                paths.append(path if path.is_absolute() else base / path)
            inputs[key] = tuple(paths)
        return inputs

    # -- [executor.NAME] --------------------------------------------------------------------

    def _executors(self, tables: dict[str, Any]) -> dict[str, ExecutorConfig]:
        raws: dict[str, _RawExecutor] = {}
        for name, table in tables.items():
            keys = ("executor", name)
            if not name:
                self.issues.add(keys, "an executor name cannot be empty; expected [executor.NAME]")
            elif not isinstance(table, dict):
                self._not_a_table(keys, 'type = "Local"', table)
            else:
                raws[name] = self._executor_table(name, table)
        resolved = _Resolver(raws, self.issues).resolve()
        executors: dict[str, ExecutorConfig] = {}
        for name, result in resolved.items():
            if result is None or result.type is None:
                continue  # an issue was already recorded for it
            values = result.values
            slurm = None
            if result.type is ExecutorType.SLURM:
                slurm = SlurmConfig(**{k: v for k, v in values.items() if k in _SLURM_FIELDS})
            executors[name] = ExecutorConfig(
                name=name,
                type=result.type,
                container=values.get("container"),
                staging_mode=values.get("staging_mode", StagingMode.SYMLINK),
                modules=values.get("modules", ()),
                cpus=values.get("cpus"),
                max_parallel=values.get("max_parallel"),
                slurm=slurm,
                ssh=values.get("ssh"),
                line=self.issues.locator.line(("executor", name)),
            )
        return executors

    def _executor_table(self, name: str, table: dict[str, Any]) -> _RawExecutor:
        keys = ("executor", name)
        raw = _RawExecutor(
            name=name,
            type=None,
            has_type="type" in table,
            inherit=None,
            has_inherit="inherit" in table,
        )
        if raw.has_type:
            raw.type = choice(table["type"], (*keys, "type"), self.issues, ExecutorType)
        elif not raw.has_inherit:
            self.issues.add(
                (*keys, "type"),
                'missing key "type"; expected type = "Local" or type = "Slurm" '
                '(or inherit = "<another executor>")',
            )
        if raw.has_inherit:
            raw.inherit = text_value(
                table["inherit"], (*keys, "inherit"), self.issues, "slurm_base"
            )
        for key, value in table.items():
            if key in ("type", "inherit"):
                continue
            if key in _LATER_FIELDS:
                self.issues.add(
                    (*keys, key),
                    f'"{key}" ({_LATER_FIELDS[key]}) is not supported yet; remove it',
                )
            elif key not in _EXECUTOR_FIELDS:
                self.issues.add((*keys, key), unknown_key(key, _EXECUTOR_FIELDS))
            elif raw.type is ExecutorType.LOCAL and key in _SLURM_ONLY_FIELDS:
                self.issues.add((*keys, key), _slurm_only(key, 'this executor has type = "Local"'))
            else:
                checked = FIELD_CHECKS[key](value, (*keys, key), self.issues)
                if checked is not None:
                    raw.values[key] = checked
        return raw

    def _not_a_table(self, keys: Keys, example: str, value: object) -> None:
        header = ".".join(key_text(part) for part in keys)
        self.issues.add(keys, f"expected a table like [{header}] {example}, got {describe(value)}")


class _Resolver:
    """Resolves `inherit` chains field-wise, reporting unknown parents, cycles and type clashes."""

    def __init__(self, raws: dict[str, _RawExecutor], issues: Issues) -> None:
        self.raws = raws
        self.issues = issues
        self.done: dict[str, _Resolved | None] = {}

    def resolve(self) -> dict[str, _Resolved | None]:
        broken = self._check_parents() | self._check_cycles()
        for name in broken:
            self.done[name] = None
        for name in self.raws:
            chain = [name]  # walk up to the first resolved ancestor or a root, then come down
            while chain[-1] not in self.done and (parent := self.raws[chain[-1]].inherit):
                chain.append(parent)
            for link in reversed(chain):
                if link not in self.done:
                    self.done[link] = self._resolve_one(self.raws[link])
        return {name: self.done[name] for name in self.raws}

    def _check_parents(self) -> set[str]:
        broken: set[str] = set()
        for raw in self.raws.values():
            if raw.inherit is not None and raw.inherit not in self.raws:
                defined = ", ".join(quote(n) for n in self.raws) or "none"
                self.issues.add(
                    ("executor", raw.name, "inherit"),
                    f"inherits from {quote(raw.inherit)}, which is not defined"
                    f"{did_you_mean(raw.inherit, list(self.raws))} (defined executors: {defined})",
                )
                broken.add(raw.name)
        return broken

    def _check_cycles(self) -> set[str]:
        in_cycle: set[str] = set()
        visited: set[str] = set()  # each executor is walked once, so this stays linear
        order = {name: index for index, name in enumerate(self.raws)}
        for start in self.raws:
            path: dict[str, int] = {}  # the current walk, in order
            name: str | None = start
            while name is not None and name in self.raws and name not in visited:
                path[name] = len(path)
                visited.add(name)
                name = self.raws[name].inherit
            if name is None or name not in path:
                continue  # reached a root, an unknown parent, or an earlier walk
            cycle = list(path)[path[name] :]
            # Name the cycle from the member defined first, where a reader starts.
            at = cycle.index(min(cycle, key=order.__getitem__))
            ordered = [*cycle[at:], *cycle[:at], cycle[at]]
            self.issues.add(
                ("executor", cycle[at], "inherit"),
                f"inherit cycle: {' -> '.join(ordered)}; expected a chain that ends "
                "in an executor without inherit",
            )
            in_cycle.update(cycle)
        return in_cycle

    def _resolve_one(self, raw: _RawExecutor) -> _Resolved | None:
        if raw.inherit is None:
            return _Resolved(raw.type, dict(raw.values))
        parent = self.done.get(raw.inherit)
        if parent is None:
            return None  # the parent is broken and has its own issue
        keys = ("executor", raw.name)
        if raw.has_type:
            if raw.type is not None and parent.type is not None and raw.type != parent.type:
                self.issues.add(
                    (*keys, "type"),
                    f'type "{raw.type.value}" differs from type "{parent.type.value}" of the '
                    f"inherited executor {quote(raw.inherit)}; inheriting across executor types "
                    f'is not allowed: inherit from a "{raw.type.value}" executor or remove type',
                )
                return None
            kind = raw.type
        else:
            kind = parent.type
            if kind is ExecutorType.LOCAL:
                for key in raw.values.keys() & _SLURM_ONLY_FIELDS:
                    reason = f'this executor inherits type "Local" from {quote(raw.inherit)}'
                    self.issues.add((*keys, key), _slurm_only(key, reason))
        values = dict(parent.values)
        for key, value in raw.values.items():
            values[key] = values.get(key, ()) + value if key in _APPENDED_FIELDS else value
        return _Resolved(kind, values)


# -- field validators: each returns the validated value, or None after recording an issue ------


def _slurm_only(key: str, reason: str) -> str:
    return (
        f'"{key}" is only valid for type = "Slurm", but {reason}; remove it or use a Slurm executor'
    )
