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


_Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(slots=True)
class _Facts:
    """What one pass over a module collects for its sites (one pass: this runs on every build)."""

    enclosing: dict[int, _Function] = field(default_factory=dict)  # id(call) -> function
    assigned: dict[str, list[ast.expr]] = field(default_factory=dict)  # name -> values
    assigned_from: dict[int, list[str]] = field(default_factory=dict)  # id(value) -> names
    top_level: set[str] = field(default_factory=set)
    exe_calls: list[ast.Call] = field(default_factory=list)  # `<receiver>.exe(<name>)`


def _facts(tree: ast.Module) -> _Facts:
    facts = _Facts()
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            facts.top_level.update(t.id for t in statement.targets if isinstance(t, ast.Name))
    stack: list[tuple[ast.AST, _Function | None]] = [(tree, None)]
    while stack:
        node, function = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node
        elif isinstance(node, ast.Call):
            if function is not None:
                facts.enclosing[id(node)] = function
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "exe"
                and len(node.args) == 1
                and isinstance(node.args[0], ast.Name)
            ):
                facts.exe_calls.append(node)
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            facts.assigned_from.setdefault(id(node.value), []).extend(names)
            for name in names:
                facts.assigned.setdefault(name, []).append(node.value)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign) and isinstance(node.target, ast.Name):
            facts.assigned.setdefault(node.target.id, []).append(node.value or node.target)
        stack.extend((child, function) for child in ast.iter_child_nodes(node))
    return facts


def _exe_links(facts: _Facts, executors: dict[int, str]) -> dict[str, str]:
    """Variable holding a Process -> executor literal, from `<executor>.exe(<variable>)`.

    `executors` maps id(call) of each `executor("lit")` call to its literal. Bindings are
    module-wide by name (no flow analysis): enough for the seed's straight-line style.
    """
    bound = {
        name: literal
        for call_id, literal in executors.items()
        for name in facts.assigned_from.get(call_id, ())
    }
    links: dict[str, str] = {}
    for call in facts.exe_calls:
        receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
        literal = None
        if isinstance(receiver, ast.Name):
            literal = bound.get(receiver.id)
        elif isinstance(receiver, ast.Call):
            literal = executors.get(id(receiver))
        argument = call.args[0]
        if literal is not None and isinstance(argument, ast.Name):
            links[argument.id] = literal
    return links


def _module_constants(facts: _Facts) -> dict[str, ast.expr]:
    """Module-level names assigned exactly once, to a literal dict, list or string."""
    return {
        name: values[0]
        for name, values in facts.assigned.items()
        if name in facts.top_level
        and len(values) == 1
        and isinstance(values[0], ast.Dict | ast.List | ast.Tuple | ast.Constant)
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
    facts = _facts(module.tree)
    executors = {
        id(c): name
        for f, c in calls
        if f == "executor"
        and (name := _string(call_argument(c, keyword="name", position=0))) is not None
    }
    links = _exe_links(facts, executors)
    lines = module.source.split("\n")
    constants = _module_constants(facts)
    for function, call in wanted:
        variables = facts.assigned_from.get(id(call), []) if function == "Process" else []
        yield _site(
            module,
            function,
            call,
            executor=next((links[v] for v in variables if v in links), None),
            enclosing=facts.enclosing.get(id(call)),
            lines=lines,
            constants=constants,
        )


def find_sites(modules: Sequence[ModuleSource]) -> list[ProcessSite]:
    """Every process site of `modules`, sorted by file, line and column."""
    sites = [site for module in modules for site in _module_sites(module)]
    sites.sort(key=lambda s: (str(s.file), s.line, s.col))
    return sites
