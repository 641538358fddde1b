"""What a bundled workflow program (`maestro bundle`) knows about itself while it runs.

PyInstaller freezes the workflow's entry module as the program; `maestro bundle` adds
`maestro_bundle/bundle.json` with the startup manifest (every executor, arg and input the code
requests, found by `maestro build`), so the program checks its Maestro.toml without any source
to parse. The program also answers a few options of its own, which a plain `python workflow.py`
takes from `maestro run` through the environment instead:

    NAME [--config FILE] [--resume [SESSION]] [--explain] [--jobs N] [--debug] [ARGS...]
    NAME --help | --version
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Imported where used: only a bundled program reads its references from here, and importing
    # the analysis package costs a plain `import libmaestro` ~3 ms.
    from libmaestro.analysis.references import ConfigReference, ReferenceKind

BUNDLE_DATA_DIR = "maestro_bundle"
BUNDLE_INFO_FILE = "bundle.json"
BUNDLE_INFO_VERSION = 1


def is_frozen() -> bool:
    """True inside a program made by `maestro bundle` (PyInstaller sets `sys.frozen`)."""
    return bool(getattr(sys, "frozen", False)) and hasattr(sys, "_MEIPASS")


def bundle_root() -> Path:
    """Where the bundled files are: `_internal/` next to the program, or the onefile unpack dir."""
    return Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent))


def program_path() -> Path:
    """The bundled program itself (sys.argv[0] may be a bare name found on PATH)."""
    return Path(sys.executable).resolve()


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """bundle.json: what the program is and what it needs from Maestro.toml."""

    name: str
    version: str
    maestro: str
    platform: str
    references: tuple[ConfigReference, ...]
    processes: tuple[dict[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {
            "format": BUNDLE_INFO_VERSION,
            "name": self.name,
            "version": self.version,
            "maestro": self.maestro,
            "platform": self.platform,
            "references": [
                {"kind": r.kind.value, "name": r.name, "file": r.file.as_posix(),
                 "line": r.line, "col": r.col}
                for r in self.references
            ],
            "processes": list(self.processes),
            **self.extra,
        }  # fmt: skip
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BundleInfo:
        from libmaestro.analysis.references import ConfigReference, ReferenceKind

        data = json.loads(text)
        return cls(
            name=data["name"],
            version=data["version"],
            maestro=data["maestro"],
            platform=data["platform"],
            references=tuple(
                ConfigReference(
                    kind=ReferenceKind(item["kind"]),
                    name=item["name"],
                    file=Path(item["file"]),
                    line=int(item["line"]),
                    col=int(item["col"]),
                )
                for item in data["references"]
            ),
            processes=tuple(data.get("processes", ())),
        )

    def names(self, kind: ReferenceKind) -> list[str]:
        return sorted({r.name for r in self.references if r.kind is kind})


def bundle_info() -> BundleInfo:
    """The running program's bundle.json (only meaningful when `is_frozen()`)."""
    path = bundle_root() / BUNDLE_DATA_DIR / BUNDLE_INFO_FILE
    return BundleInfo.from_json(path.read_text(encoding="utf-8"))


def help_text(info: BundleInfo) -> str:
    from libmaestro.analysis.references import ReferenceKind

    args = ", ".join(info.names(ReferenceKind.ARG)) or "none"
    inputs = ", ".join(info.names(ReferenceKind.INPUTS)) or "none"
    executors = ", ".join(info.names(ReferenceKind.EXECUTOR)) or "none"
    made = f"bundled with maestro {info.maestro} for {info.platform}"
    return f"""{info.name} {info.version}: a maestro workflow ({made})

Usage: {info.name} [OPTIONS] [-- PROGRAM ARGS]

Reads Maestro.toml from the current directory, else from the program's directory (or --config,
or MAESTRO_CONFIG), checks that it defines everything below, and runs the workflow. Each run
gets a session in ./maestro_work/<session>/.

It needs in Maestro.toml:
  [args]       {args}
  [inputs]     {inputs}
  [executor.*] {executors}

Options:
  --config FILE       use this Maestro.toml
  --resume [SESSION]  resume a session (default: the latest), skipping steps that are up to date
  --explain           say why each step runs or is skipped
  --jobs N            run at most N CPUs' worth of local processes at once
  --debug             show tracebacks
  --version           print the version and exit
  --help              print this help and exit

Also: `maestro run {info.name} --background`, `maestro status`, `maestro kill SESSION`.
"""


class UsageError(Exception):
    """A bundled program's own option is used wrongly."""


def take_options(argv: list[str]) -> tuple[dict[str, str], list[str], str | None]:
    """Split the program's own options from the workflow's arguments.

    Returns (environment settings, remaining argv, "help"/"version" or None). Everything after
    `--` and every unknown argument is left for the workflow, in order.
    """
    env: dict[str, str] = {}
    rest: list[str] = [argv[0]] if argv else []
    args = argv[1:]
    index = 0
    while index < len(args):
        arg = args[index]
        nxt = args[index + 1] if index + 1 < len(args) else None
        if arg == "--":
            rest.extend(args[index + 1 :])
            break
        if arg in {"--help", "-h"}:
            return env, rest, "help"
        if arg == "--version":
            return env, rest, "version"
        if arg == "--config" or arg.startswith("--config="):
            value = arg.partition("=")[2] if "=" in arg else nxt
            if not value:
                raise UsageError("--config needs a file: --config Maestro.toml")
            env["MAESTRO_CONFIG"] = str(Path(value).resolve())
            index += 1 if "=" in arg else 2
            continue
        if arg == "--jobs" or arg.startswith("--jobs="):
            value = arg.partition("=")[2] if "=" in arg else nxt
            if not value or not value.isdigit() or int(value) < 1:
                raise UsageError("--jobs needs a positive number: --jobs 4")
            env["MAESTRO_JOBS"] = value
            index += 1 if "=" in arg else 2
            continue
        if arg == "--resume" or arg.startswith("--resume="):
            if "=" in arg:
                env["MAESTRO_RESUME"] = arg.partition("=")[2] or "latest"
                index += 1
            elif nxt is not None and not nxt.startswith("-"):
                env["MAESTRO_RESUME"] = nxt
                index += 2
            else:
                env["MAESTRO_RESUME"] = "latest"
                index += 1
            continue
        if arg == "--explain":
            env["MAESTRO_EXPLAIN"] = "1"
        elif arg == "--debug":
            env["MAESTRO_DEBUG"] = "1"
        else:
            rest.append(arg)
        index += 1
    return env, rest, None


def handle_command_line() -> None:
    """Apply the bundled program's own options, or answer --help/--version and exit."""
    try:
        env, rest, action = take_options(sys.argv)
    except UsageError as exc:
        sys.stderr.write(f"{Path(sys.argv[0]).name}: {exc}\n")
        raise SystemExit(2) from None
    if action is not None:
        info = bundle_info()
        sys.stdout.write(help_text(info) if action == "help" else f"{info.name} {info.version}\n")
        raise SystemExit(0)
    os.environ.update(env)
    sys.argv[:] = rest
