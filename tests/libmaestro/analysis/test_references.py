"""Tests for libmaestro.analysis: module discovery, alias resolution and config references."""

from __future__ import annotations

import ast
import logging
import textwrap
import time
from pathlib import Path

import pytest

from libmaestro.analysis import (
    LIBMAESTRO_FUNCTIONS,
    ConfigReference,
    Discovery,
    LibmaestroNames,
    ReferenceKind,
    find_references,
    libmaestro_calls,
    libmaestro_names,
    project_modules,
    resolve_call,
    scan_project,
)

EXECUTOR = ReferenceKind.EXECUTOR
ARG = ReferenceKind.ARG
INPUTS = ReferenceKind.INPUTS


def build_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write `files` (relative path -> source, dedented) under root and return root."""
    for relpath, content in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


def discovered(discovery: Discovery, root: Path) -> list[str]:
    """The discovered modules as paths relative to root, in discovery order."""
    return [module.path.relative_to(root.resolve()).as_posix() for module in discovery.modules]


def refs(
    project: Path, entry: str = "workflow.py"
) -> list[tuple[ReferenceKind, str, str, int, int]]:
    """Scan a project and return (kind, name, relative file, line, col) tuples."""
    root = project.resolve()
    return [
        (ref.kind, ref.name, ref.file.relative_to(root).as_posix(), ref.line, ref.col)
        for ref in scan_project(project / entry, root=project)
    ]


def names_of(source: str) -> LibmaestroNames:
    return libmaestro_names(ast.parse(textwrap.dedent(source)))


# --- libmaestro_names -------------------------------------------------------------------------


def test_libmaestro_names_import_module():
    names = names_of("import libmaestro")
    assert names.modules == frozenset({"libmaestro"})
    assert dict(names.functions) == {}


def test_libmaestro_names_import_module_as_alias():
    names = names_of("import libmaestro as maestro")
    assert names.modules == frozenset({"maestro"})


def test_libmaestro_names_import_submodule_binds_package():
    names = names_of("import libmaestro.analysis\nimport libmaestro.config as cfg")
    # `import a.b` binds `a`; `import a.b as c` binds the submodule, not the package.
    assert names.modules == frozenset({"libmaestro"})


def test_libmaestro_names_from_import_functions_and_aliases():
    names = names_of("from libmaestro import executor, process as p, Process, errors, arg as a")
    assert dict(names.functions) == {
        "executor": "executor",
        "p": "process",
        "Process": "Process",
        "a": "arg",
    }
    assert names.modules == frozenset()


def test_libmaestro_names_star_import_binds_every_function():
    names = names_of("from libmaestro import *")
    assert dict(names.functions) == {name: name for name in LIBMAESTRO_FUNCTIONS}
    assert {"executor", "arg", "inputs", "process", "Process", "main"} == set(names.functions)


def test_libmaestro_names_imports_inside_functions_and_blocks_count():
    names = names_of(
        """
        def run():
            import libmaestro as m
        if True:
            from libmaestro import inputs
        try:
            pass
        finally:
            from libmaestro import arg as get_arg
        """
    )
    assert names.modules == frozenset({"m"})
    assert dict(names.functions) == {"inputs": "inputs", "get_arg": "arg"}


def test_libmaestro_names_ignores_other_modules():
    names = names_of(
        """
        import libmaestro_extra
        from mylib import executor
        from .libmaestro import arg
        from libmaestro.config import inputs
        """
    )
    assert not names
    assert names.modules == frozenset()
    assert dict(names.functions) == {}


# --- resolve_call -----------------------------------------------------------------------------


def _call(expr: str) -> ast.Call:
    node = ast.parse(expr, mode="eval").body
    assert isinstance(node, ast.Call)
    return node


def test_resolve_call_name_and_attribute():
    names = LibmaestroNames(modules=frozenset({"mo"}), functions={"ex": "executor"})
    assert resolve_call(_call("ex('a')"), names) == "executor"
    assert resolve_call(_call("mo.process(executor='a')"), names) == "process"
    assert resolve_call(_call("mo.Process('n', 's')"), names) == "Process"


def test_resolve_call_unbound_or_foreign_is_none():
    names = LibmaestroNames(modules=frozenset({"mo"}), functions={"ex": "executor"})
    assert resolve_call(_call("executor('a')"), names) is None
    assert resolve_call(_call("other.executor('a')"), names) is None
    assert resolve_call(_call("mo.not_public('a')"), names) is None
    assert resolve_call(_call("mo.sub.executor('a')"), names) is None
    assert resolve_call(_call("ex('a').exe(p)"), names) is None


# --- libmaestro_calls -------------------------------------------------------------------------


def test_libmaestro_calls_lists_every_public_call_in_source_order():
    tree = ast.parse(
        textwrap.dedent(
            """
            import libmaestro as m
            def f():
                return m.process(executor=m.arg("x"), script="true")
            p = m.Process("n", "s", {}, {}, {})
            m.executor("local").exe(p)
            print("not me")
            """
        ).lstrip()
    )
    calls = [(c.function, c.node.lineno, c.node.col_offset) for c in libmaestro_calls(tree)]
    assert calls == [
        ("process", 3, 11),
        ("arg", 3, 30),
        ("Process", 4, 4),
        ("executor", 5, 0),
    ]


def test_libmaestro_calls_without_libmaestro_import_is_empty():
    assert libmaestro_calls(ast.parse("executor('x')\nprocess(executor='y')")) == []


# --- find_references / scan_project: import styles and positions -----------------------------


@pytest.mark.parametrize(
    ("header", "call", "col"),
    [
        ("import libmaestro", "libmaestro.executor", 21),
        ("import libmaestro as maestro", "maestro.executor", 18),
        ("from libmaestro import executor", "executor", 10),
        ("from libmaestro import executor as ex", "ex", 4),
        ("from libmaestro import *", "executor", 10),
        ("import libmaestro.config", "libmaestro.executor", 21),
    ],
)
def test_scan_project_resolves_every_import_style(tmp_path, header, call, col):
    build_tree(tmp_path, {"workflow.py": f"{header}\n\n{call}('slurm')\n"})
    assert refs(tmp_path) == [(EXECUTOR, "slurm", "workflow.py", 3, col)]


def test_find_references_exact_positions_of_every_kind(tmp_path):
    build_tree(
        tmp_path,
        {
            "workflow.py": """
                import libmaestro as maestro

                @maestro.main
                def main():
                    reads = maestro.inputs("reads")
                    level = maestro.arg(name="level")
                    out = maestro.process(
                        name="align",
                        executor="slurm_big",
                        script="bwa mem $ref $reads",
                    )
                    maestro.executor("local").exe(maestro.Process("n", "s", {}, {}, {}))
            """,
        },
    )
    assert refs(tmp_path) == [
        (INPUTS, "reads", "workflow.py", 5, 28),
        (ARG, "level", "workflow.py", 6, 30),
        (EXECUTOR, "slurm_big", "workflow.py", 9, 18),
        (EXECUTOR, "local", "workflow.py", 12, 22),
    ]


def test_find_references_column_counts_characters_not_bytes(tmp_path):
    build_tree(
        tmp_path,
        {"workflow.py": "from libmaestro import arg\nx = {'é': arg('ü')}  # café\n"},
    )
    # 'é' is two bytes in UTF-8: ast's col_offset is 15, the literal is the 15th character.
    assert refs(tmp_path) == [(ARG, "ü", "workflow.py", 2, 15)]


def test_find_references_location_is_file_line_col(tmp_path):
    build_tree(tmp_path, {"workflow.py": "from libmaestro import inputs\ninputs('r')\n"})
    (ref,) = scan_project(tmp_path / "workflow.py", root=tmp_path)
    assert ref == ConfigReference(
        kind=INPUTS, name="r", file=(tmp_path / "workflow.py").resolve(), line=2, col=8
    )
    assert ref.location == f"{(tmp_path / 'workflow.py').resolve()}:2:8"


def test_find_references_process_executor_keyword_only(tmp_path):
    build_tree(
        tmp_path,
        {
            "workflow.py": """
                from libmaestro import process, Process
                process("slurm", script="x")
                process(name="a", script="x", executor="gpu")
                Process("local", "script", {}, {}, {})
            """,
        },
    )
    # process() names its executor by keyword only; Process() takes no executor at all.
    assert refs(tmp_path) == [(EXECUTOR, "gpu", "workflow.py", 3, 40)]


def test_find_references_non_literal_names_are_skipped(tmp_path):
    build_tree(
        tmp_path,
        {
            "workflow.py": """
                import libmaestro as m
                name = "slurm"
                m.executor(name)
                m.executor(f"{name}_big")
                m.executor(*["a"])
                m.arg(1)
                m.inputs()
                m.inputs(**{"name": "x"})
                m.process(executor=name)
                m.arg("ok")
            """,
        },
    )
    assert refs(tmp_path) == [(ARG, "ok", "workflow.py", 10, 7)]


def test_find_references_user_function_named_like_libmaestro_is_ignored(tmp_path):
    build_tree(
        tmp_path,
        {
            "workflow.py": """
                import libmaestro as maestro

                def executor(name):
                    return name

                def arg(name):
                    return name

                executor("mine")
                arg("mine_too")
                maestro.executor("theirs")
            """,
            "helpers.py": """
                def inputs(name):
                    return name
                inputs("not_libmaestro")
            """,
        },
    )
    assert refs(tmp_path) == [(EXECUTOR, "theirs", "workflow.py", 11, 18)]


def test_find_references_keeps_duplicates_sorted_by_file_line_col(tmp_path):
    build_tree(
        tmp_path,
        {
            "workflow.py": """
                from libmaestro import executor
                import b_mod, a_mod
                executor("x"); executor("x")
            """,
            "a_mod.py": "from libmaestro import executor\nexecutor('x')\n",
            "b_mod.py": "from libmaestro import executor\n\nexecutor('x')\n",
        },
    )
    assert refs(tmp_path) == [
        (EXECUTOR, "x", "a_mod.py", 2, 10),
        (EXECUTOR, "x", "b_mod.py", 3, 10),
        (EXECUTOR, "x", "workflow.py", 3, 10),
        (EXECUTOR, "x", "workflow.py", 3, 25),
    ]


def test_find_references_sees_calls_inside_functions_before_import(tmp_path):
    build_tree(
        tmp_path,
        {
            "workflow.py": """
                def later():
                    return m.arg("late")

                import libmaestro as m
            """,
        },
    )
    assert refs(tmp_path) == [(ARG, "late", "workflow.py", 2, 18)]


# --- project_modules: discovery -----------------------------------------------------------------


def test_project_modules_follows_packages_and_relative_imports(tmp_path):
    build_tree(
        tmp_path,
        {
            "workflow.py": """
                import json
                import pipeline.align
                from steps import qc
            """,
            "pipeline/__init__.py": "",
            "pipeline/align.py": "from . import index\nfrom .common.util import helper\n",
            "pipeline/index.py": "",
            "pipeline/common/__init__.py": "from ..index import x\n",
            "pipeline/common/util.py": "",
            "steps/__init__.py": "",
            "steps/qc.py": "from .. import toplevel\n",
            "toplevel.py": "",
            "unused.py": "",
        },
    )
    discovery = project_modules(tmp_path / "workflow.py", root=tmp_path)
    assert discovery.unparsable == []
    assert discovered(discovery, tmp_path) == [
        "workflow.py",
        "pipeline/__init__.py",
        "pipeline/align.py",
        "steps/__init__.py",
        "steps/qc.py",
        "pipeline/index.py",
        "pipeline/common/__init__.py",
        "pipeline/common/util.py",
        "toplevel.py",
    ]


def test_project_modules_follows_imports_in_functions_and_blocks(tmp_path):
    build_tree(
        tmp_path,
        {
            "workflow.py": """
                import sys
                if sys.platform == "linux":
                    import linux_only
                def main():
                    from lazy import thing
                try:
                    import optional
                except ImportError:
                    optional = None
            """,
            "linux_only.py": "",
            "lazy.py": "",
            "optional.py": "",
        },
    )
    discovery = project_modules(tmp_path / "workflow.py", root=tmp_path)
    assert discovered(discovery, tmp_path) == [
        "workflow.py",
        "linux_only.py",
        "lazy.py",
        "optional.py",
    ]


def test_project_modules_does_not_follow_modules_outside_root(tmp_path):
    project = tmp_path / "project"
    build_tree(
        tmp_path,
        {
            "project/workflow.py": """
                import json
                import os.path
                import sibling
                from .. import sibling as rel_sibling
                from libmaestro import executor
                executor("inside")
            """,
            "sibling.py": "from libmaestro import executor\nexecutor('outside')\n",
        },
    )
    discovery = project_modules(project / "workflow.py", root=project)
    assert discovered(discovery, project) == ["workflow.py"]
    assert refs(project) == [(EXECUTOR, "inside", "workflow.py", 6, 10)]


def test_project_modules_from_import_submodule_and_attribute(tmp_path):
    build_tree(
        tmp_path,
        {
            "workflow.py": "from pkg import sub, CONSTANT\nfrom pkg import *\n",
            "pkg/__init__.py": "CONSTANT = 1\n",
            "pkg/sub.py": "",
            "pkg/other.py": "",
        },
    )
    discovery = project_modules(tmp_path / "workflow.py", root=tmp_path)
    # `from pkg import *` cannot know which submodules __all__ pulls in without running it.
    assert discovered(discovery, tmp_path) == ["workflow.py", "pkg/__init__.py", "pkg/sub.py"]


def test_project_modules_namespace_package_and_module_precedence(tmp_path):
    build_tree(
        tmp_path,
        {
            "workflow.py": "import ns.mod\nimport both\n",
            "ns/mod.py": "",
            "both/__init__.py": "",
            "both.py": "",
        },
    )
    discovery = project_modules(tmp_path / "workflow.py", root=tmp_path)
    # As in importlib: a regular package wins over a same-named module file.
    assert discovered(discovery, tmp_path) == ["workflow.py", "ns/mod.py", "both/__init__.py"]


def test_project_modules_cycles_parse_each_file_once(tmp_path):
    build_tree(
        tmp_path,
        {
            "workflow.py": "import a\nimport workflow\n",
            "a.py": "import b\nfrom libmaestro import arg\narg('from_a')\n",
            "b.py": "import a\nimport workflow\n",
        },
    )
    discovery = project_modules(tmp_path / "workflow.py", root=tmp_path)
    assert discovered(discovery, tmp_path) == ["workflow.py", "a.py", "b.py"]
    assert refs(tmp_path) == [(ARG, "from_a", "a.py", 3, 5)]


def test_project_modules_syntax_error_is_skipped_and_reported(tmp_path):
    build_tree(
        tmp_path,
        {
            "workflow.py": "import broken\nimport good\n",
            "broken.py": "import hidden\ndef oops(:\n",
            "good.py": "from libmaestro import arg\narg('still_found')\n",
            "hidden.py": "",
        },
    )
    discovery = project_modules(tmp_path / "workflow.py", root=tmp_path)
    assert discovered(discovery, tmp_path) == ["workflow.py", "good.py"]
    ((path, reason),) = discovery.unparsable
    assert path == (tmp_path / "broken.py").resolve()
    assert reason.startswith("line 2: ")


def test_project_modules_undecodable_and_missing_files_are_reported(tmp_path):
    build_tree(tmp_path, {"workflow.py": "import latin\n", "latin.py": b"x = '\xe9'\n"})
    discovery = project_modules(tmp_path / "workflow.py", root=tmp_path)
    assert [(p.name, r.split(":")[0]) for p, r in discovery.unparsable] == [
        ("latin.py", "cannot decode")
    ]

    missing = project_modules(tmp_path / "nope.py", root=tmp_path)
    assert missing.modules == []
    assert [(p.name, r.split(":")[0]) for p, r in missing.unparsable] == [
        ("nope.py", "cannot read")
    ]


def test_project_modules_honours_coding_cookie_and_crlf(tmp_path):
    source = "# -*- coding: latin-1 -*-\r\nfrom libmaestro import arg\r\narg('caf\xe9')\r\n"
    build_tree(tmp_path, {"workflow.py": source.encode("latin-1")})
    assert refs(tmp_path) == [(ARG, "café", "workflow.py", 3, 5)]


def test_scan_project_logs_unparsable_modules(tmp_path, caplog):
    build_tree(tmp_path, {"workflow.py": "import broken\n", "broken.py": "def (\n"})
    with caplog.at_level(logging.WARNING, logger="libmaestro.analysis.references"):
        assert scan_project(tmp_path / "workflow.py", root=tmp_path) == []
    assert "broken.py" in caplog.text


def test_find_references_accepts_discovered_modules(tmp_path):
    build_tree(tmp_path, {"workflow.py": "import libmaestro\nlibmaestro.inputs('r')\n"})
    discovery = project_modules(tmp_path / "workflow.py", root=tmp_path)
    assert [ref.name for ref in find_references(discovery.modules)] == ["r"]


def test_scan_project_fifty_modules_is_fast(tmp_path):
    """Scanning 50 modules of 100 lines should take well under the startup budget."""
    body = "".join(
        f"def step_{i}(x):\n    return m.process(executor='e{i}', inputs=m.inputs('r{i}'))\n"
        for i in range(49)
    )
    files: dict[str, str | bytes] = {
        f"pkg/mod_{i}.py": f"import libmaestro as m\nimport json\n{body}" for i in range(48)
    }
    files["pkg/__init__.py"] = ""
    files["workflow.py"] = "".join(f"import pkg.mod_{i}\n" for i in range(48))
    build_tree(tmp_path, files)
    scan_project(tmp_path / "workflow.py", root=tmp_path)  # warm the file cache
    start = time.perf_counter()
    found = scan_project(tmp_path / "workflow.py", root=tmp_path)
    elapsed = time.perf_counter() - start
    assert len(found) == 48 * 49 * 2
    # A coarse guard against accidental quadratic behaviour, loose enough for a busy CI box;
    # the target (well under 100 ms) is measured by the benchmarks, not asserted here.
    assert elapsed < 1.0


def test_project_modules_resolve_imports_from_an_entry_in_a_subdirectory(tmp_path):
    # `maestro run` starts `python pipelines/main.py`: Python imports bare names from the
    # entry's own directory first, and `python -m pipelines.main` from the project root.
    build_tree(
        tmp_path,
        {
            "pipelines/main.py": "import helpers\nimport shared\nimport both\n",
            "pipelines/helpers.py": "from libmaestro import executor\nexecutor('beside')\n",
            "pipelines/both.py": "",
            "shared.py": "",
            "both.py": "from libmaestro import executor\nexecutor('shadowed')\n",
        },
    )
    discovery = project_modules(tmp_path / "pipelines" / "main.py", root=tmp_path)
    assert discovered(discovery, tmp_path) == [
        "pipelines/main.py",
        "pipelines/helpers.py",
        "shared.py",
        "pipelines/both.py",
    ]
