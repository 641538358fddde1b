"""Find every process site of a workflow: each `process(...)` and `Process(...)` call.

A site is what the original's `process!` macro saw at compile time: where the process is
declared, its doc, its executor, the names of the variables it declares, its declared
dependencies and its script. Here they are read from the source with `ast`, so only what is
written literally is known; anything computed at run time is recorded as unknown (None), never
guessed, and a script that is not a constant is reported as "not analysable statically".
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from libmaestro.analysis.discovery import ModuleSource, call_argument, char_column, libmaestro_calls

__all__ = ["ProcessSite", "find_sites"]

# Process(name, script, inputs, outputs, args): the seed's positional order.
_PROCESS_POSITIONS = {"name": 0, "script": 1, "inputs": 2, "outputs": 3, "args": 4}


@dataclass(frozen=True, slots=True)
class ProcessSite:
    """One `process(...)`/`Process(...)` call, as far as the source says.

    Attributes:
        file: The module's absolute path.
        line: 1-based line of the call.
        col: 1-based character column of the call.
        function: `"process"` or `"Process"`.
        name: The literal process name, or None when it is computed.
        executor: The literal executor name; for `Process`, the executor whose `.exe()` it is
            passed to when that can be followed within the module; else None.
        doc: `doc=`, else the docstring of the enclosing function.
        inputs, outputs, args: The declared variable names, or None when the mapping is not a
            literal dict with string keys.
        output_paths: The literal relative output paths by variable, where literal.
        dependencies: The literal `dependencies=[...]` entries.
        inline: False when `inline=False` (the script is a file).
        script: The script text (the constant, or the file's content), or None.
        script_node: The string constant holding the script, for exact positions.
        script_file: The script file for `inline=False`.
        problems: Warnings about this site (not analysable statically, unreadable file, ...).
    """

    file: Path
    line: int
    col: int
    function: str
    name: str | None = None
    executor: str | None = None
    doc: str | None = None
    inputs: tuple[str, ...] | None = ()
    outputs: tuple[str, ...] | None = ()
    args: tuple[str, ...] | None = ()
    output_paths: dict[str, str] = field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    inline: bool = True
    script: str | None = None
    script_node: ast.Constant | None = None
    script_file: Path | None = None
    problems: tuple[str, ...] = ()

    def key(self, root: Path) -> str:
        """The procinfo.toml key: `path/relative/to/root.py:LINE:COL`."""
        try:
            relative = self.file.relative_to(root).as_posix()
        except ValueError:
            relative = self.file.as_posix()
        return f"{relative}:{self.line}:{self.col}"

    @property
    def declared(self) -> frozenset[str] | None:
        """Every variable injected into the script, or None if any group is unknown."""
        if self.inputs is None or self.outputs is None or self.args is None:
            return None
        return frozenset((*self.inputs, *self.outputs, *self.args))


def _string(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _dict_keys(node: ast.expr | None) -> tuple[str, ...] | None:
    """Literal string keys of a dict display; () when absent; None when not knowable."""
    if node is None or (isinstance(node, ast.Constant) and node.value is None):
        return ()
    if isinstance(node, ast.Dict):
        keys = [_string(k) if k is not None else None for k in node.keys]
        if all(k is not None for k in keys):
            return tuple(k for k in keys if k is not None)
        return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        if node.args:
            return None
        return tuple(kw.arg for kw in node.keywords if kw.arg is not None)
    return None


def _output_paths(node: ast.expr | None) -> dict[str, str]:
    if not isinstance(node, ast.Dict):
        return {}
    found: dict[str, str] = {}
    for key, value in zip(node.keys, node.values, strict=True):
        k, v = _string(key) if key is not None else None, _string(value)
        if k is not None and v is not None:
            found[k] = v
    return found


def _string_list(node: ast.expr | None) -> tuple[str, ...]:
    if isinstance(node, (ast.List, ast.Tuple)):
        return tuple(s for s in map(_string, node.elts) if s is not None)
    return ()


class _Scopes(ast.NodeVisitor):
    """Which function encloses each call, and simple `x = executor("lit")` bindings."""

    def __init__(self) -> None:
        self.enclosing: dict[int, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self._stack: list[ast.FunctionDef | ast.AsyncFunctionDef] = []

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._stack.append(node)
        self.generic_visit(node)
        self._stack.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_Call(self, node: ast.Call) -> None:
        if self._stack:
            self.enclosing[id(node)] = self._stack[-1]
        self.generic_visit(node)


def _exe_links(tree: ast.Module, executors: dict[int, str]) -> dict[str, str]:
    """Variable holding a Process -> executor literal, from `<executor>.exe(<variable>)`.

    `executors` maps id(call) of each `executor("lit")` call to its literal. Bindings are
    module-wide by name (no flow analysis): enough for the seed's straight-line style.
    """
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            literal = executors.get(id(node.value))
            if literal is not None:
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        bound[target.id] = literal
    links: dict[str, str] = {}
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "exe"
            and len(node.args) == 1
            and isinstance(node.args[0], ast.Name)
        ):
            continue
        receiver = node.func.value
        literal = None
        if isinstance(receiver, ast.Name):
            literal = bound.get(receiver.id)
        elif isinstance(receiver, ast.Call):
            literal = executors.get(id(receiver))
        if literal is not None:
            links[node.args[0].id] = literal
    return links


def _process_variables(tree: ast.Module, calls: dict[int, ast.Call]) -> dict[int, str]:
    """id(Process call) -> the variable it is assigned to."""
    names: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and id(node.value) in calls:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[id(node.value)] = target.id
    return names


def _module_constants(tree: ast.Module) -> dict[str, ast.expr]:
    """Module-level names assigned exactly once, to a literal dict, list or string."""
    assigned: dict[str, list[ast.expr]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(node.value)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and isinstance(node.target, ast.Name):
            assigned.setdefault(node.target.id, []).append(node.value or node.target)
    top_level = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    return {
        name: values[0]
        for name, values in assigned.items()
        if name in top_level
        and len(values) == 1
        and isinstance(values[0], (ast.Dict, ast.List, ast.Tuple, ast.Constant))
    }


def _read_script(module: ModuleSource, path_text: str) -> tuple[str | None, Path, str | None]:
    path = Path(path_text)
    if not path.is_absolute():
        path = module.path.parent / path
    try:
        return path.read_text(encoding="utf-8"), path, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, path, f"inline=False script file {path} cannot be read ({exc})"


def _site(
    module: ModuleSource,
    function: str,
    call: ast.Call,
    *,
    executor: str | None,
    enclosing: ast.FunctionDef | ast.AsyncFunctionDef | None,
    lines: Sequence[str],
    constants: dict[str, ast.expr],
) -> ProcessSite:
    positional = _PROCESS_POSITIONS if function == "Process" else {}

    def get(key: str) -> ast.expr | None:
        node = call_argument(call, keyword=key, position=positional.get(key))
        if isinstance(node, ast.Name) and node.id in constants:
            return constants[node.id]  # the seed's style: proc_inputs = {...}; Process(...)
        return node

    if function == "process":
        executor = _string(get("executor"))
    doc = _string(get("doc"))
    if doc is None and enclosing is not None:
        doc = ast.get_docstring(enclosing)
    inline_node = get("inline")
    inline = not (isinstance(inline_node, ast.Constant) and inline_node.value is False)
    problems: list[str] = []
    script_expr = get("script")
    script_node = script_expr if _string(script_expr) is not None else None
    script = _string(script_expr)
    script_file = None
    if script is None:
        problems.append(
            "the script is not a string constant, so it is not analysable statically "
            "(no ShellCheck, no dependency detection)"
        )
    elif not inline:
        script, script_file, problem = _read_script(module, script)
        script_node = None
        if problem:
            problems.append(problem)
    return ProcessSite(
        file=module.path,
        line=call.lineno,
        col=char_column(lines, call.lineno, call.col_offset) + 1,
        function=function,
        name=_string(get("name")),
        executor=executor,
        doc=doc,
        inputs=_dict_keys(get("inputs")),
        outputs=_dict_keys(get("outputs")),
        args=_dict_keys(get("args")),
        output_paths=_output_paths(get("outputs")),
        dependencies=_string_list(get("dependencies")),
        inline=inline,
        script=script,
        script_node=script_node if isinstance(script_node, ast.Constant) else None,
        script_file=script_file,
        problems=tuple(problems),
    )


def _module_sites(module: ModuleSource) -> Iterator[ProcessSite]:
    calls = libmaestro_calls(module.tree)
    wanted = [(f, c) for f, c in calls if f in {"process", "Process"}]
    if not wanted:
        return
    scopes = _Scopes()
    scopes.visit(module.tree)
    executors = {
        id(c): name
        for f, c in calls
        if f == "executor"
        and (name := _string(call_argument(c, keyword="name", position=0))) is not None
    }
    links = _exe_links(module.tree, executors)
    variables = _process_variables(module.tree, {id(c): c for f, c in wanted if f == "Process"})
    lines = module.source.split("\n")
    constants = _module_constants(module.tree)
    for function, call in wanted:
        variable = variables.get(id(call))
        yield _site(
            module,
            function,
            call,
            executor=links.get(variable) if variable else None,
            enclosing=scopes.enclosing.get(id(call)),
            lines=lines,
            constants=constants,
        )


def find_sites(modules: Sequence[ModuleSource]) -> list[ProcessSite]:
    """Every process site of `modules`, sorted by file, line and column."""
    sites = [site for module in modules for site in _module_sites(module)]
    sites.sort(key=lambda s: (str(s.file), s.line, s.col))
    return sites
