"""How each field of an `[executor.NAME]` table is checked: one function per field, each
reporting every problem it finds with the key it is at (see `_schema.py`, which uses
`FIELD_CHECKS`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from libmaestro.config._locate import (
    Issues,
    Keys,
    choice,
    describe,
    non_negative,
    one_of,
    positive,
    quote,
    strings,
    text_value,
    unknown_key,
)
from libmaestro.config.model import (
    SBATCH_VALUE,
    Container,
    ContainerRuntime,
    MailType,
    Memory,
    MemoryConfig,
    SshTarget,
    StagingMode,
    TimeLimit,
)

_TIME_KEYS = ("days", "hours", "minutes", "seconds")
_MEMORY_KEYS = ("type", "amount")


def _container(value: object, keys: Keys, issues: Issues) -> Container | None:
    runtimes = [runtime.value for runtime in ContainerRuntime]
    example = '{ Podman = "ubuntu:rolling" }'
    if not isinstance(value, dict) or len(value) != 1:
        got = describe(value)
        if isinstance(value, dict) and value:
            got = f"{len(value)} runtimes ({', '.join(quote(key) for key in value)})"
        issues.add(
            keys,
            f"expected an inline table with exactly one of {one_of(runtimes)} like {example}, "
            f"got {got}",
        )
        return None
    ((runtime, image),) = value.items()
    if runtime not in runtimes:
        issues.add((*keys, runtime), unknown_key(runtime, runtimes, what="container runtime"))
        return None
    checked = text_value(image, (*keys, runtime), issues, "ubuntu:rolling")
    return None if checked is None else Container(ContainerRuntime(runtime), checked)


_SSH_KEYS = ("host", "user", "port", "identity", "jump", "remote_workdir")
_SSH_TARGET = re.compile(r"(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9._-]+(?::[0-9]{1,5})?")


def _ssh(value: object, keys: Keys, issues: Issues) -> SshTarget | None:
    example = 'ssh = "me@login.cluster.org" or ssh = { host = "login", user = "me", port = 22 }'
    if isinstance(value, str):
        if _SSH_TARGET.fullmatch(value):
            return SshTarget.parse(value)
        issues.add(
            keys, f"expected host, user@host or user@host:port like {example}, got {quote(value)}"
        )
        return None
    if not isinstance(value, dict):
        issues.add(keys, f"expected a string or a table like {example}, got {describe(value)}")
        return None
    good = True
    for key in value:
        if key not in _SSH_KEYS:
            issues.add((*keys, key), unknown_key(key, _SSH_KEYS))
            good = False
    host = None
    if "host" not in value:
        issues.add((*keys, "host"), f'missing key "host"; expected a table like {example}')
    else:
        host = text_value(value["host"], (*keys, "host"), issues, "login.cluster.org")
    fields: dict[str, Any] = {}
    for key in ("user", "jump", "remote_workdir"):
        if key in value:
            fields[key] = text_value(value[key], (*keys, key), issues, "me")
            good &= fields[key] is not None
    if "port" in value:
        fields["port"] = positive(value["port"], (*keys, "port"), issues)
        good &= fields["port"] is not None
    if "identity" in value:
        identity = text_value(value["identity"], (*keys, "identity"), issues, "~/.ssh/id_ed25519")
        fields["identity"] = Path(identity).expanduser() if identity else None
        good &= identity is not None
    if host is None or not good:
        return None
    return SshTarget(host=host, **fields)


def _staging(value: object, keys: Keys, issues: Issues) -> StagingMode | None:
    return choice(value, keys, issues, StagingMode)


def _modules(value: object, keys: Keys, issues: Issues) -> tuple[str, ...] | None:
    items = strings(value, keys, issues, '["gcc/12.2", "samtools"]')
    return None if items is None else tuple(items)


def _memory(value: object, keys: Keys, issues: Issues) -> MemoryConfig | None:
    example = '{ type = "per_cpu", amount = 8192 } (amount in megabytes)'
    if not isinstance(value, dict):
        issues.add(keys, f"expected a table like {example}, got {describe(value)}")
        return None
    issues.check_keys(value, keys, _MEMORY_KEYS)
    missing = [key for key in _MEMORY_KEYS if key not in value]
    for key in missing:
        issues.add((*keys, key), f'missing key "{key}"; expected a table like {example}')
    kind = choice(value["type"], (*keys, "type"), issues, Memory) if "type" in value else None
    amount = positive(value["amount"], (*keys, "amount"), issues) if "amount" in value else None
    if kind is None or amount is None or len(value) != len(_MEMORY_KEYS):
        return None
    return MemoryConfig(kind, amount)


def _time(value: object, keys: Keys, issues: Issues) -> TimeLimit | None:
    example = "{ hours = 2, minutes = 30 }"
    if not isinstance(value, dict):
        issues.add(keys, f"expected a table like {example}, got {describe(value)}")
        return None
    if not value:
        issues.add(keys, f"expected at least one of {', '.join(_TIME_KEYS)} like {example}")
        return None
    issues.check_keys(value, keys, _TIME_KEYS)
    parts = {
        key: non_negative(part, (*keys, key), issues)
        for key, part in value.items()
        if key in _TIME_KEYS
    }
    if len(parts) != len(value) or any(part is None for part in parts.values()):
        return None
    limit = TimeLimit(**{key: part for key, part in parts.items() if part is not None})
    if limit.total_seconds == 0:
        issues.add(keys, f"expected a time limit greater than zero like {example}, got zero")
        return None
    return limit


def _mail_type(value: object, keys: Keys, issues: Issues) -> tuple[MailType, ...] | None:
    if isinstance(value, str):
        single = choice(value, keys, issues, MailType)
        return None if single is None else (single,)
    if not isinstance(value, list):
        issues.add(keys, f'expected an array like ["END", "FAIL"], got {describe(value)}')
        return None
    checked = [
        choice(item, keys, issues, MailType, index=index) for index, item in enumerate(value)
    ]
    valid = [item for item in checked if item is not None]
    return tuple(valid) if len(valid) == len(checked) else None


def _additional_options(
    value: object, keys: Keys, issues: Issues
) -> tuple[tuple[str, str | None], ...] | None:
    example = '[["qos", "high"], ["exclusive"]]'
    options: list[tuple[str, str | None]] = []
    good = True
    if isinstance(value, dict):
        for option, setting in value.items():
            if isinstance(setting, str) or setting is True:
                good &= _option_name(option, (*keys, option), issues)
                if isinstance(setting, str):
                    good &= _sbatch_safe(setting, (*keys, option), issues)
                options.append((option, setting if isinstance(setting, str) else None))
            else:
                good = False
                issues.add(
                    (*keys, option),
                    f'expected a string value like {{ qos = "high" }} (or true for a bare flag), '
                    f"got {describe(setting)}",
                )
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (
                isinstance(item, list)
                and len(item) in (1, 2)
                and all(isinstance(part, str) for part in item)
            ):
                good &= _option_name(item[0], keys, issues, index=index)
                if len(item) == 2:
                    good &= _sbatch_safe(item[1], keys, issues, index=index)
                options.append((item[0], item[1] if len(item) == 2 else None))
            else:
                good = False
                issues.add(
                    keys,
                    f'expected ["option", "value"] or ["flag"] as in {example}, '
                    f"got {describe(item)}",
                    index=index,
                )
    else:
        issues.add(keys, f"expected an array like {example}, got {describe(value)}")
        return None
    return tuple(options) if good else None


def _sbatch_safe(value: str, keys: Keys, issues: Issues, *, index: int | None = None) -> bool:
    if SBATCH_VALUE.fullmatch(value):
        return True
    issues.add(
        keys,
        f"{quote(value)} contains spaces, quotes or shell characters, which an sbatch option "
        "cannot carry; use a value without them",
        index=index,
    )
    return False


def _sbatch_text(value: object, keys: Keys, issues: Issues, example: str) -> str | None:
    text = text_value(value, keys, issues, example)
    return text if text is not None and _sbatch_safe(text, keys, issues) else None


def _option_name(option: str, keys: Keys, issues: Issues, *, index: int | None = None) -> bool:
    if option.startswith("-"):
        bare = option.lstrip("-")
        issues.add(
            keys,
            f"write the option without leading dashes ({quote(bare)}, not {quote(option)}); "
            'maestro adds "--" itself',
            index=index,
        )
        return False
    if not option or any(char.isspace() or char == "=" for char in option):
        issues.add(
            keys,
            f'expected an sbatch long option name like "qos", got {describe(option)}',
            index=index,
        )
        return False
    return True


FIELD_CHECKS: dict[str, Callable[[Any, Keys, Issues], Any]] = {
    "container": _container,
    "ssh": _ssh,
    "staging_mode": _staging,
    "modules": _modules,
    "cpus": positive,
    "max_parallel": positive,
    "poll_interval": positive,
    "gpus": non_negative,
    "tasks": positive,
    "nodes": positive,
    "memory": _memory,
    "partition": lambda v, k, i: _sbatch_text(v, k, i, "skylake"),
    "account": lambda v, k, i: _sbatch_text(v, k, i, "my-account"),
    "mail_user": lambda v, k, i: _sbatch_text(v, k, i, "me@example.org"),
    "time": _time,
    "mail_type": _mail_type,
    "additional_options": _additional_options,
}
