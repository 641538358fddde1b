"""A process: one bash script with declared inputs, args and outputs. Pure data and validation.

Values reach the script only as environment variables (never pasted into its text), so a
variable's *name* must be a shell identifier that cannot change how bash or the loader behaves.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from libmaestro.errors import ProcessDefinitionError
from libmaestro.remote.paths import RemotePath

PathValue = str | os.PathLike[str]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Names whose value changes how bash, the dynamic loader or maestro itself behaves. A process
# declaring `PATH` as an input would break every command in its script, so refuse them early.
RESERVED_VARIABLES = frozenset(
    {
        "PATH", "HOME", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "CDPATH",
        "GLOBIGNORE", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PWD", "OLDPWD", "SHELL",
        "TMPDIR", "PYTHONPATH", "PYTHONHOME",
    }
)  # fmt: skip
_RESERVED_PREFIXES = ("BASH_", "MAESTRO_", "SLURM_")

DEFAULT_SHEBANG = "#!/bin/bash"
MAX_NAME_LENGTH = 200


_LAST_PART = re.compile(r"[_\-.][^_\-.]*$")
_TRAILING_DIGITS = re.compile(r"\d+$")


@functools.lru_cache(maxsize=4096)
def fanout_group(name: str) -> str:
    """The fan-out a process name most likely belongs to: its name without the varying end.

    `align_S1` and `align_S2` are `align`; `p17` is `p`; `merge` stays `merge`. Fan-outs name
    their processes after the item (`f"align_{sample}"`), so what is left is what they share.
    Cached: the display, the graph and the run history each ask for every process.
    """
    group = _LAST_PART.sub("", name) if _LAST_PART.search(name) else _TRAILING_DIGITS.sub("", name)
    return group or name


def validate_process_name(name: str) -> str:
    """Return `name` if it is usable as a directory name inside the session, else raise."""
    problem = None
    if not isinstance(name, str) or not name.strip():
        problem = "it is empty"
    elif "/" in name or "\\" in name:
        problem = "it contains a slash"
    elif name in {".", ".."} or ".." in name:
        problem = "it contains '..'"
    elif name.startswith("."):
        problem = "it starts with '.' (hidden names are reserved for maestro's own files)"
    elif "\x00" in name or any(ch in name for ch in "\n\r\t"):
        problem = "it contains a control character"
    elif len(name) > MAX_NAME_LENGTH:
        problem = f"it is longer than {MAX_NAME_LENGTH} characters"
    if problem:
        raise ProcessDefinitionError(
            f"process name {name!r} cannot be used because {problem}; "
            "use letters, digits, '-', '_' and '.' (for example 'align_sample1')"
        )
    return name


def validate_variable(name: str, *, role: str, process: str) -> str:
    """Return `name` if it can be a shell variable injected into the script, else raise."""
    problem = _variable_problem(name) if isinstance(name, str) else "not a name"
    if problem is None:
        return name
    if problem == "reserved":
        raise ProcessDefinitionError(
            f"process {process!r}: {role} name {name!r} would override an environment variable "
            "that bash or maestro relies on; choose another name (for example "
            f"'{name.lower()}_file')"
        )
    raise ProcessDefinitionError(
        f"process {process!r}: {role} name {name!r} is not a shell variable name; "
        "use letters, digits and '_', not starting with a digit (for example 'reads_1')"
    )


@functools.lru_cache(maxsize=4096)
def _variable_problem(name: str) -> str | None:
    """What makes `name` unusable as a variable, or None. Cached: a fan-out repeats its names."""
    if not _IDENTIFIER.match(name):
        return "not a name"
    if name in RESERVED_VARIABLES or name.startswith(_RESERVED_PREFIXES):
        return "reserved"
    return None


@dataclass(frozen=True, slots=True)
class PreparedScript:
    """The script text as it runs, and where each of its lines came from in the user's text.

    `origins[i]` is the index in the user's text of the first character of prepared line `i`
    (0-based), or None for the added shebang; prepared column `c` of that line is the user's
    character `origins[i] + c`. This is what lets `maestro build` point a ShellCheck finding at
    the exact character inside a Python string.
    """

    text: str
    shebang_added: bool
    origins: tuple[int | None, ...]

    def source_index(self, line: int, column: int) -> int | None:
        """The user's-text index of prepared `line`/`column` (both 1-based), if it has one."""
        if not 1 <= line <= len(self.origins):
            return None
        origin = self.origins[line - 1]
        return None if origin is None else origin + column - 1


@functools.lru_cache(maxsize=1024)
def prepare_script(source: str) -> PreparedScript:
    """Dedent and strip a script, and add `#!/bin/bash` when it has no shebang.

    Cached (the result is immutable): a fan-out prepares the same text for every item, and a
    run asks for each process's prepared script more than once (cache key, file, errors).

    The first line is handled on its own because a script often starts right after the opening
    quote (`script='''cat x` ...), where it carries no indentation while the rest does. Tabs are
    kept as they are: expanding them would break `<<-` here-documents.
    """
    raw_lines = source.splitlines(keepends=True)
    starts = [0]
    for raw in raw_lines:
        starts.append(starts[-1] + len(raw))
    lines = [raw.rstrip("\r\n") for raw in raw_lines]
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    end = len(lines)
    while end > start and not lines[end - 1].strip():
        end -= 1
    body = lines[start:end]
    if not body:
        return PreparedScript(DEFAULT_SHEBANG + "\n", True, (None,))
    rest = [line for line in body[1:] if line.strip()]
    first_indent = len(body[0]) - len(body[0].lstrip())
    indent = min((len(line) - len(line.lstrip()) for line in rest), default=first_indent)
    # The first line may sit on the quote's line, with no indentation while the rest has some:
    # then it is stripped alone and the rest dedented together.
    removed = [first_indent if first_indent < indent else min(indent, first_indent)]
    removed += [min(indent, len(line)) for line in body[1:]]
    if first_indent >= indent:
        removed = [min(indent, len(line)) for line in body]
    cleaned = [line[cut:] if line.strip() else "" for line, cut in zip(body, removed, strict=True)]
    origins: list[int | None] = [starts[start + i] + cut for i, cut in enumerate(removed)]
    text = "\n".join(cleaned)
    shebang_added = not text.startswith("#!")
    if shebang_added:
        text = f"{DEFAULT_SHEBANG}\n{text}"
        origins.insert(0, None)
    return PreparedScript(text + "\n", shebang_added, tuple(origins))


def _as_path(value: object, *, role: str, var: str, process: str) -> Path:
    if isinstance(value, RemotePath) and role == "input":
        return value  # type: ignore[return-value]  # a file on another host, used as it is
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if isinstance(text, str) and text and "\x00" not in text and "\n" not in text:
            return value if type(value) is _PATH_TYPE else Path(text)
    hint = ""
    if isinstance(value, (list, tuple)):
        hint = " (one path per variable; give each file its own name, or use parallelize)"
    raise ProcessDefinitionError(
        f"process {process!r}: {role} {var!r} must be one path (a str or pathlib.Path without "
        f"newlines), got {type(value).__name__} {value!r}{hint}"
    )


_PATH_TYPE = type(Path())  # PosixPath here: a value of exactly this type is used as it is


@functools.lru_cache(maxsize=4096)
def _relative_output(text: str) -> Path | None:
    """`text` as an output path relative to the working directory, or None if it is not one.

    Cached by text: a fan-out declares the same output names for every item.
    """
    if not text or "\x00" in text or "\n" in text:
        return None
    path = Path(text)
    # `not path.parts` is "." (or "./"): the working directory itself, not an output; the
    # runner also needs a first path part to keep inputs from taking its name.
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return path


def _absolute(path: Path) -> Path:
    return path if isinstance(path, RemotePath) else path.absolute()


@dataclass(frozen=True, slots=True, init=False)
class Process:
    """A process as the seed's Python API declares it.

    `inputs` are paths to existing files or directories (relative paths are resolved against the
    current directory when the Process is made); `outputs` are paths relative to the process's
    working directory; `args` are strings. Each key becomes a shell variable in the script.
    """

    name: str
    script: str
    inputs: Mapping[str, Path]  # absolute
    outputs: Mapping[str, Path]  # relative to the working directory
    args: Mapping[str, str]
    dependencies: tuple[str, ...]
    doc: str | None

    def __init__(
        self,
        name: str,
        script: str,
        inputs: Mapping[str, PathValue] | None = None,
        outputs: Mapping[str, PathValue] | None = None,
        args: Mapping[str, str | int | float] | None = None,
        dependencies: Iterable[str] = (),
        doc: str | None = None,
    ) -> None:
        name = validate_process_name(name)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "script", script)
        object.__setattr__(self, "doc", doc)
        if not isinstance(script, str):
            raise ProcessDefinitionError(
                f"process {name!r}: script must be a string with the bash code to run"
            )
        checked_inputs = {
            validate_variable(k, role="input", process=name): _absolute(
                _as_path(v, role="input", var=k, process=name)
            )
            for k, v in dict(inputs or {}).items()
        }
        checked_outputs: dict[str, Path] = {}
        for key, value in dict(outputs or {}).items():
            validate_variable(key, role="output", process=name)
            relative = _relative_output(value) if type(value) is str else None
            if relative is None:  # not a plain relative str: check it the long way
                path = _as_path(value, role="output", var=key, process=name)
                relative = _relative_output(os.fspath(path))
            if relative is None:
                raise ProcessDefinitionError(
                    f"process {name!r}: output {key!r} = {str(path)!r} must be a path relative to "
                    "the process's working directory, without '..' and naming a file or "
                    "directory in it (for example 'out/result.txt')"
                )
            checked_outputs[key] = relative
        checked_args: dict[str, str] = {}
        for key, raw in dict(args or {}).items():
            validate_variable(key, role="arg", process=name)
            if isinstance(raw, (list, tuple, dict, set)) or raw is None:
                raise ProcessDefinitionError(
                    f"process {name!r}: arg {key!r} must be a string (or a number), "
                    f"got {type(raw).__name__}"
                )
            text = str(raw)
            if "\x00" in text:
                raise ProcessDefinitionError(f"process {name!r}: arg {key!r} contains a NUL byte")
            checked_args[key] = text
        seen: dict[str, str] = {}
        roles = (("input", checked_inputs), ("output", checked_outputs), ("arg", checked_args))
        for role, keys in roles:
            for key in keys:
                if key in seen:
                    raise ProcessDefinitionError(
                        f"process {name!r}: variable {key!r} is declared as both {seen[key]} and "
                        f"{role}; every variable needs its own name"
                    )
                seen[key] = role
        object.__setattr__(self, "inputs", checked_inputs)
        object.__setattr__(self, "outputs", checked_outputs)
        object.__setattr__(self, "args", checked_args)
        object.__setattr__(self, "dependencies", tuple(dependencies))

    @property
    def has_remote_inputs(self) -> bool:
        """True if an input is a file on another host (an SSH process's output)."""
        return any(isinstance(p, RemotePath) for p in self.inputs.values())

    @property
    def prepared(self) -> PreparedScript:
        return prepare_script(self.script)


class ProcessOutputs(Sequence[Path]):
    """What running a process returns: its output paths in declared order, then its workdir.

    Unpack it like the original's vector (`bam, bai, workdir = out`), or address outputs by
    name (`out.bam`, `out["bam"]`) and the directory as `out.workdir`.
    """

    __slots__ = ("_names", "_paths", "workdir")

    def __init__(self, outputs: Mapping[str, Path], workdir: Path) -> None:
        self._names = tuple(outputs)
        self._paths = (*outputs.values(), workdir)
        self.workdir = workdir

    @property
    def outputs(self) -> tuple[Path, ...]:
        """The output paths alone, without the working directory."""
        return self._paths[:-1]

    def as_dict(self) -> dict[str, Path]:
        return dict(zip(self._names, self._paths, strict=False))

    def _output(self, name: str) -> Path:
        try:
            return self._paths[self._names.index(name)]
        except ValueError:
            raise AttributeError(
                f"no output named {name!r}; this process declared {list(self._names)}"
            ) from None

    def __getattr__(self, name: str) -> Path:
        # copy and pickle look up special methods (`__setstate__`, `__deepcopy__`) on an
        # instance whose slots are not set yet; answering through `self._names` there recursed
        # until RecursionError, so a result could not be copied or sent to another process.
        if name in ProcessOutputs.__slots__ or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)
        return self._output(name)

    def __reduce__(self) -> tuple[type[ProcessOutputs], tuple[dict[str, Path], Path]]:
        return (ProcessOutputs, (self.as_dict(), self.workdir))

    @overload
    def __getitem__(self, index: int) -> Path: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Path]: ...
    @overload
    def __getitem__(self, index: str) -> Path: ...
    def __getitem__(self, index: int | slice | str) -> Path | Sequence[Path]:
        if isinstance(index, str):
            return self._output(index)
        return self._paths[index]

    def __len__(self) -> int:
        return len(self._paths)

    def __iter__(self) -> Iterator[Path]:
        return iter(self._paths)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ProcessOutputs):
            return self._paths == other._paths
        if isinstance(other, (list, tuple)):
            return list(self._paths) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._paths)

    def __repr__(self) -> str:
        return repr([str(p) for p in self._paths])
