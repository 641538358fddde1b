"""Find a workflow's own modules and the names under which they use libmaestro.

Everything here works on source text parsed with `ast`; no user module is ever imported, so
analysing a workflow cannot run any of its code. Two pieces are meant to be reused by every
static check (the startup check of `@maestro.main`, and `maestro build`):

- `project_modules` follows the import graph from the entry module and returns each module of
  the project once, parsed, plus the files it could not parse.
- `libmaestro_calls` lists the calls in a module that call a libmaestro public function,
  whatever alias the module imported it under; `libmaestro_names` and `resolve_call` are the
  two halves of it, for callers that walk the tree themselves.

Limitations, all consequences of reading source without running it:

- Only the import statements are followed. `importlib.import_module("x")`, `__import__` and
  `sys.path` manipulation are not seen.
- Module names resolve against the entry module's directory, then against `root`: the first
  is `sys.path[0]` for `python pipelines/main.py` (and `maestro run`), the second for
  `python -m pipelines.main` run from `root`. Other `sys.path` entries are not searched.
- Name binding is module-wide: an import anywhere in a module (top level, in a function, under
  `if`) binds its names for the whole module, and rebinding a name by assignment, `def` or a
  later import of something else is not tracked. `from libmaestro import executor` followed by
  `def executor(): ...` still counts `executor(...)` as libmaestro's.
- A libmaestro function re-exported through a user module (`from mylib import executor`, where
  `mylib` imported it from libmaestro) is not recognised.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "LIBMAESTRO_FUNCTIONS",
    "Discovery",
    "LibmaestroCall",
    "LibmaestroNames",
    "ModuleSource",
    "call_argument",
    "char_column",
    "libmaestro_calls",
    "libmaestro_names",
    "project_modules",
    "resolve_call",
]

_LIBMAESTRO = "libmaestro"

LIBMAESTRO_FUNCTIONS: frozenset[str] = frozenset(
    {"executor", "arg", "inputs", "process", "Process", "main"}
)
"""The libmaestro public names whose calls static analysis recognises."""


@dataclass(frozen=True, slots=True)
class ModuleSource:
    """One parsed module of the project.

    Attributes:
        path: Absolute path of the `.py` file.
        source: Its text, decoded as Python decodes source (coding cookie, universal newlines).
        tree: The parsed module. Line and column numbers refer to `source`.
    """

    path: Path
    source: str
    tree: ast.Module


@dataclass(frozen=True, slots=True)
class Discovery:
    """What `project_modules` found.

    Attributes:
        modules: Every parsed module, the entry module first, then breadth-first in the source
            order of the import statements that reach them.
        unparsable: `(path, reason)` for each reached file that could not be read, decoded or
            parsed, in the order they were reached. Their imports are unknown, so modules only
            they import are missing from `modules`.
    """

    modules: list[ModuleSource]
    unparsable: list[tuple[Path, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LibmaestroNames:
    """The local names through which one module reaches libmaestro.

    Attributes:
        modules: Names bound to the `libmaestro` package itself (`import libmaestro`,
            `import libmaestro as m`, `import libmaestro.x`).
        functions: Local name to public function name, for names bound directly to a function
            (`from libmaestro import process as p` maps `"p"` to `"process"`).
    """

    modules: frozenset[str] = frozenset()
    functions: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        """Whether the module can reach libmaestro at all (if not, no call can resolve)."""
        return bool(self.modules or self.functions)


class LibmaestroCall(NamedTuple):
    """A call of a libmaestro public function found in a module.

    Attributes:
        function: The public name called (`"executor"`, `"process"`, ...), whatever the alias.
        node: The call itself, for its arguments and position.
    """

    function: str
    node: ast.Call


def project_modules(entry: Path, *, root: Path) -> Discovery:
    """Parse the entry module and every project module it imports, transitively.

    A module is part of the project when its import resolves to a `.py` file (or a package's
    `__init__.py`) under `root`; anything else (standard library, site-packages, files outside
    `root`) is not followed. Imports anywhere in a module count, including inside functions and
    `if`/`try` blocks. Importing `a.b.c` also reaches the packages `a` and `a.b`, as it does at
    run time; `from a import b` reaches `a` and, when it exists, the submodule `a.b`. Relative
    imports resolve against the importing file's package. Each file is parsed once, so import
    cycles are harmless.

    Args:
        entry: The workflow's entry module. It is always analysed, even if outside `root`.
        root: The directory that plays the role of `sys.path[0]`, usually the project directory.

    Returns:
        The parsed modules and the files that could not be parsed. An unreadable or invalid
        entry module appears in `unparsable` and leaves `modules` empty.
    """
    root = root.resolve()
    entry = entry.resolve()
    search = [entry.parent] if entry.parent.is_relative_to(root) else []
    resolver = _Resolver(root, [*search, root] if entry.parent != root else [root])
    modules: list[ModuleSource] = []
    unparsable: list[tuple[Path, str]] = []
    seen: set[Path] = {entry}
    queue: list[Path] = [entry]
    # The queue only grows; walking it by index keeps the order breadth-first without popping.
    for path in queue:
        module, error = _parse_file(path)
        if module is None:
            unparsable.append((path, error))
            continue
        modules.append(module)
        for found in resolver.imported_files(module):
            if found not in seen:
                seen.add(found)
                queue.append(found)
    return Discovery(modules=modules, unparsable=unparsable)


def libmaestro_names(tree: ast.Module) -> LibmaestroNames:
    """Collect the names under which a module imported libmaestro and its public functions.

    Imports anywhere in the module count, for the whole module; see the module docstring for
    what that approximation misses. Only the `libmaestro` package's own names count: the
    public functions are its re-exports, so `from libmaestro.config import ...` binds none.
    """
    return _names_from_imports(_imports(tree))


def libmaestro_calls(tree: ast.Module) -> list[LibmaestroCall]:
    """List every call of a libmaestro public function in a module, in source order.

    This is `libmaestro_names` plus `resolve_call` over every call. A module that does not
    import libmaestro is not walked beyond its statements, which keeps the check that runs at
    every workflow start cheap for helper modules.
    """
    # All imports are collected before any call is resolved: an import inside a function, or
    # below the call, binds module-wide (see the module docstring).
    names = libmaestro_names(tree)
    if not names:
        return []
    found = [
        LibmaestroCall(function, node)
        for node in _calls(tree)
        if (function := resolve_call(node, names)) is not None
    ]
    # The walk's order follows node fields, not the text; callers report in source order.
    found.sort(key=lambda item: (item.node.lineno, item.node.col_offset))
    return found


def resolve_call(call: ast.Call, names: LibmaestroNames) -> str | None:
    """Return the libmaestro public function a call invokes, or None if it is not one.

    A call resolves when it is `f(...)` with `f` bound to a libmaestro function, or `m.f(...)`
    with `m` bound to the libmaestro package and `f` one of `LIBMAESTRO_FUNCTIONS`.
    """
    func = call.func
    if isinstance(func, ast.Name):
        return names.functions.get(func.id)
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id in names.modules
        and func.attr in LIBMAESTRO_FUNCTIONS
    ):
        return func.attr
    return None


def _names_from_imports(nodes: Iterable[ast.Import | ast.ImportFrom]) -> LibmaestroNames:
    """Build `LibmaestroNames` from a module's import statements."""
    modules: set[str] = set()
    functions: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == _LIBMAESTRO:
                    modules.add(alias.asname or _LIBMAESTRO)
                elif alias.name.startswith(_LIBMAESTRO + ".") and alias.asname is None:
                    # `import libmaestro.x` binds `libmaestro`; with `as y` it binds the
                    # submodule instead, which is not where the public functions live.
                    modules.add(_LIBMAESTRO)
        elif node.level == 0 and node.module == _LIBMAESTRO:
            for alias in node.names:
                if alias.name == "*":
                    functions.update((name, name) for name in LIBMAESTRO_FUNCTIONS)
                elif alias.name in LIBMAESTRO_FUNCTIONS:
                    functions[alias.asname or alias.name] = alias.name
    return LibmaestroNames(modules=frozenset(modules), functions=functions)


# Statement fields that hold nested statements (or handlers and match cases, which hold them),
# listed last-first because the walk below pops them from a stack.
_BLOCK_FIELDS = ("finalbody", "orelse", "handlers", "cases", "body")
# The nodes that have such fields. Checking the type first spares five getattr calls on each
# simple statement, which most statements are.
_BLOCK_NODES = (
    ast.Module,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.TryStar,
    ast.Match,
    ast.ExceptHandler,
    ast.match_case,
)
# Nodes that can contain no call: skipping them (every Name carries a Load() node, for one)
# makes the call walk about a quarter faster than ast.walk.
_CALL_FREE_NODES = (
    ast.Name,
    ast.Constant,
    ast.expr_context,
    ast.operator,
    ast.unaryop,
    ast.cmpop,
    ast.boolop,
    ast.alias,
    ast.Import,
    ast.ImportFrom,
    ast.Pass,
    ast.Break,
    ast.Continue,
    ast.Global,
    ast.Nonlocal,
)


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, nested ones included, in source order.

    Import is a statement, so only statement blocks are walked, never expressions: a tenth of
    the nodes of a full `ast.walk`, which matters because every project module is walked.
    """
    found: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, _BLOCK_NODES):
            for field_name in _BLOCK_FIELDS:
                block = getattr(node, field_name, None)
                if block:
                    stack.extend(reversed(block))
    return found


def _calls(tree: ast.Module) -> list[ast.Call]:
    """Every call in a module, in no particular order."""
    found: list[ast.Call] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Call):
            found.append(node)
        for field_name in node._fields:
            value = getattr(node, field_name, None)
            if isinstance(value, list):
                stack.extend(
                    item
                    for item in value
                    if isinstance(item, ast.AST) and not isinstance(item, _CALL_FREE_NODES)
                )
            elif isinstance(value, ast.AST) and not isinstance(value, _CALL_FREE_NODES):
                stack.append(value)
    return found


def _decode_source(data: bytes) -> str:
    """Decode source as the import system does, so `source` lines match the tree's line numbers.

    The coding cookie (or a BOM) decides the encoding, and \r\n and \r become \n. This is what
    `importlib.util.decode_source` does; importing `importlib.util` would cost every workflow
    ~1 ms at start-up, when the startup check reads its source.

    Raises:
        SyntaxError: the coding cookie names an unknown encoding, or is malformed.
        UnicodeDecodeError: the bytes are not in that encoding.
    """
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return io.IncrementalNewlineDecoder(None, translate=True).decode(data.decode(encoding))


def _parse_file(path: Path) -> tuple[ModuleSource | None, str]:
    """Read and parse one file; on failure return None and a one-line reason."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    try:
        source = _decode_source(data)
    except (UnicodeDecodeError, SyntaxError) as exc:
        return None, f"cannot decode: {exc}"
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else ""
        return None, f"{where}{exc.msg}"
    except ValueError as exc:  # Python 3.11 reports NUL bytes in source as ValueError.
        return None, str(exc)
    return ModuleSource(path=path, source=source, tree=tree), ""


class _Resolver:
    """Map import statements to project files, caching each directory lookup."""

    def __init__(self, root: Path, search: Sequence[Path]) -> None:
        self._root = root
        self._search = search  # where absolute imports look, like sys.path; all under root
        # (directory, name) -> (module file, package directory). Many modules import the same
        # names, and each lookup costs up to three stat calls.
        self._cache: dict[tuple[Path, str], tuple[Path | None, Path | None]] = {}

    def imported_files(self, module: ModuleSource) -> list[Path]:
        """Files under root that `module`'s imports load, in source order of the imports."""
        files: list[Path] = []
        for node in _imports(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    files += self._resolve(self._top_level_base(parts[0]), parts)
            else:
                files += self._resolve_from(module.path, node)
        return files

    def _resolve_from(self, importer: Path, node: ast.ImportFrom) -> list[Path]:
        """Files loaded by `from X import a, b`, where a and b may be submodules of X."""
        parts = node.module.split(".") if node.module else []
        if node.level:
            base = importer.parent
            for _ in range(node.level - 1):
                base = base.parent
            if not base.is_relative_to(self._root):
                return []
        else:
            base = self._top_level_base(parts[0])
        files = self._resolve(base, parts)
        package = self._package_dir(base, parts)
        if package is None:
            return files
        if node.level and not parts:
            # `from . import x` runs the package's own __init__.py first.
            init = package / "__init__.py"
            if init.is_file():
                files.append(init)
        for alias in node.names:
            if alias.name != "*":
                files += self._resolve(package, [alias.name])
        return files

    def _top_level_base(self, name: str) -> Path:
        """The search directory a top-level module `name` is imported from.

        As Python's path finder does across `sys.path`: the first directory with a module or
        a regular package of that name, else the first with a namespace package of it.
        """
        for base in self._search:
            if self._lookup(base, name)[0] is not None:
                return base
        for base in self._search:
            if self._lookup(base, name)[1] is not None:
                return base
        return self._search[0]

    def _resolve(self, base: Path, parts: Sequence[str]) -> list[Path]:
        """Files loaded by importing the dotted name `parts` from directory `base`.

        Every package along the way is loaded too. Resolution stops at the first part that is
        not found under `base`, which is how modules outside the project are left out.
        """
        files: list[Path] = []
        directory: Path | None = base
        for part in parts:
            if directory is None:
                break
            module_file, directory = self._lookup(directory, part)
            if module_file is not None:
                files.append(module_file)
        return files

    def _package_dir(self, base: Path, parts: Sequence[str]) -> Path | None:
        """The directory of the package named by `parts` under `base`, if it is one."""
        directory: Path | None = base
        for part in parts:
            if directory is None:
                return None
            directory = self._lookup(directory, part)[1]
        return directory

    def _lookup(self, directory: Path, name: str) -> tuple[Path | None, Path | None]:
        """Find `name` in `directory` as Python's path finder would.

        Returns the file to load (None for a namespace package or nothing found) and the
        directory to look in for submodules (None for a plain module or nothing found). The
        precedence follows importlib's FileFinder: a regular package, then a module file, then
        a namespace package.
        """
        key = (directory, name)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        candidate = directory / name
        init = candidate / "__init__.py"
        module_file = directory / f"{name}.py"
        result: tuple[Path | None, Path | None]
        if init.is_file():
            result = (init, candidate)
        elif module_file.is_file():
            result = (module_file, None)
        elif candidate.is_dir():
            result = (None, candidate)
        else:
            result = (None, None)
        self._cache[key] = result
        return result


def call_argument(call: ast.Call, *, position: int | None, keyword: str) -> ast.expr | None:
    """The expression passed for a parameter, by position or keyword, if visible statically."""
    if position is not None and len(call.args) > position:
        # Anything after a `*args` has an unknown position.
        if any(isinstance(arg, ast.Starred) for arg in call.args[: position + 1]):
            return None
        return call.args[position]
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return None


def char_column(lines: Sequence[str], lineno: int, byte_offset: int) -> int:
    """Convert ast's UTF-8 byte offset within a line to a character offset."""
    line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    if line.isascii():
        return byte_offset
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", errors="replace"))
