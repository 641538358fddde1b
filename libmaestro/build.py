"""`maestro build`: check a whole workflow before anything runs, and write procinfo.toml.

Python has no compile step, so this is the original's compile-time checking, done by reading the
source: every process site is found (`analysis.sites`), its script checked with ShellCheck and
mapped back to the exact character in the Python file, its dependencies detected with bashlex,
every executor/arg/input name checked against Maestro.toml, and the results written to
procinfo.toml (for people) and `.maestro/manifest.json` (for the startup check).

Unchanged scripts are not analysed twice: ShellCheck findings and dependencies are cached in
`.maestro/build-cache.json`, keyed by a hash of everything that determines them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from libmaestro._buildstate import ScriptCache, load_unchanged, save_state
from libmaestro._fs import atomic_write_text
from libmaestro._version import __version__
from libmaestro.analysis import ModuleSource, find_references, project_modules
from libmaestro.analysis.positions import literal_char_positions, text_positions, to_source
from libmaestro.analysis.procinfo import ProcinfoEntry, render_procinfo
from libmaestro.analysis.shell import ScriptDependencies, apply_declared, script_dependencies
from libmaestro.analysis.shellcheck import ScriptCheck, ShellFinding, check_scripts
from libmaestro.analysis.shellcheck import variable_references as script_variables
from libmaestro.analysis.sites import ProcessSite, find_sites
from libmaestro.config import find_config_file, load_config
from libmaestro.config.model import ProjectConfig
from libmaestro.errors import ConfigError
from libmaestro.findings import BuildResult, Finding, Severity, SiteReport
from libmaestro.manifest import write_manifest
from libmaestro.process import PreparedScript, prepare_script
from libmaestro.project import Project, ProjectSettings
from libmaestro.startup import check_references

log = logging.getLogger(__name__)

PROCINFO_FILE = "procinfo.toml"
UNDECLARED = 2154  # ShellCheck: "var is referenced but not assigned"


_LEVELS = {"error": Severity.ERROR, "warning": Severity.WARNING, "info": Severity.INFO}


@dataclass(slots=True)
class _Script:
    site: ProcessSite
    prepared: PreparedScript
    source: str  # the module's text, for positions inside its string literal
    digest: str
    _positions: list[tuple[int, int]] | None = None

    @property
    def source_file(self) -> Path:
        """The file positions refer to: the script file for inline=False, else the module."""
        return self.site.script_file or self.site.file

    @property
    def positions(self) -> list[tuple[int, int]] | None:
        # Computed only for scripts that have findings to place: most have none.
        if self._positions is None:
            site = self.site
            if site.script_file is not None and site.script is not None:
                self._positions = text_positions(site.script)
            elif site.script_node is not None:
                self._positions = literal_char_positions(self.source, site.script_node)
        return self._positions


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _config_findings(error: ConfigError) -> list[Finding]:
    return [
        Finding(issue.file, issue.line, None, Severity.ERROR, f"{issue.key}: {issue.message}"
                if issue.key else issue.message, "config")
        for issue in error.issues
    ]  # fmt: skip


def _config_path(project: Project) -> Path | None:
    try:
        return find_config_file(cwd=project.root, script_dir=project.entry.parent)
    except ConfigError:
        return None  # MAESTRO_CONFIG names a missing file: reported by _load_config


def _load_config(path: Path | None) -> tuple[ProjectConfig | None, list[Finding]]:
    try:
        if path is None:
            # Either there is none, or MAESTRO_CONFIG is wrong: ask again to get its error.
            path = find_config_file(cwd=Path.cwd(), script_dir=None)
        return (load_config(path) if path is not None else None), []
    except ConfigError as exc:
        return None, _config_findings(exc)


def _prepare_scripts(
    sites: Sequence[ProcessSite], modules: Sequence[ModuleSource]
) -> list[_Script]:
    sources = {module.path: module.source for module in modules}
    scripts = []
    for site in sites:
        if site.script is None:
            continue
        prepared = prepare_script(site.script)
        declared = sorted(site.declared) if site.declared is not None else None
        scripts.append(
            _Script(site, prepared, sources[site.file], _digest(prepared.text, declared))
        )
    return scripts


def _locate(script: _Script, line: int, column: int) -> tuple[Path, int | None, int | None]:
    position = to_source(script.prepared, script.positions, line, column)
    if position is None:
        return script.site.file, script.site.line, script.site.col
    return script.source_file, position[0], position[1]


def _shell_findings(
    script: _Script, found: Iterable[ShellFinding], threshold: Severity
) -> list[Finding]:
    findings = []
    for item in found:
        file, line, col = _locate(script, item.line, item.column)
        if item.code == UNDECLARED:
            findings.append(
                Finding(file, line, col, Severity.WARNING,
                        f"{item.message.split(' is referenced')[0]} is used but not declared in "
                        "this process's inputs, args or outputs, nor set by the script", "maestro")
            )  # fmt: skip
            continue
        severity = _LEVELS.get(item.level, Severity.STYLE)
        if severity >= threshold:
            findings.append(Finding(file, line, col, severity, item.message, f"SC{item.code}"))
    return findings


def _usage_findings(script: _Script) -> list[Finding]:
    """Declared variables the script never uses, and outputs it never writes."""
    site = script.site
    used = script_variables(script.prepared.text)
    findings = []
    for role, names in (("input", site.inputs), ("arg", site.args), ("output", site.outputs)):
        for name in names or ():
            if name in used:
                continue
            literal = site.output_paths.get(name) if role == "output" else None
            if literal and literal in script.prepared.text:
                continue  # written by its literal path, e.g. `-o out.bam`
            message = (
                f"output {name!r} is never written: the script uses neither ${name} nor "
                f"{literal or 'its path'!r}"
                if role == "output"
                else f"{role} {name!r} is declared but the script never uses ${name}"
            )
            findings.append(Finding(site.file, site.line, site.col, Severity.WARNING, message,
                                    "maestro"))  # fmt: skip
    return findings


def _run_shellcheck(
    scripts: Sequence[_Script], cache: ScriptCache, settings: ProjectSettings
) -> tuple[dict[str, list[ShellFinding]], int]:
    results: dict[str, list[ShellFinding]] = {}
    todo: dict[str, _Script] = {}
    for script in scripts:
        key = _digest("shellcheck", script.digest, sorted(settings.shellcheck_exclude))
        cached = cache.get(key)
        if cached is not None:
            results[script.digest] = [ShellFinding(**f) for f in cached["findings"]]
        else:
            todo[key] = script
    if todo:
        unique = {s.digest: s for s in todo.values()}
        checks = [
            ScriptCheck(key=d, text=s.prepared.text, declared=s.site.declared)
            for d, s in unique.items()
        ]
        found = check_scripts(checks, exclude=settings.shellcheck_exclude)
        by_key: dict[str, list[ShellFinding]] = {d: [] for d in unique}
        for item in found:
            by_key[item.key].append(item)
        for key, script in todo.items():
            results[script.digest] = by_key[script.digest]
            cache.put(key, {"findings": [_finding_dict(f) for f in by_key[script.digest]]})
    return results, len(todo)


def _finding_dict(finding: ShellFinding) -> dict[str, object]:
    return {
        "key": finding.key, "line": finding.line, "column": finding.column,
        "end_line": finding.end_line, "end_column": finding.end_column, "level": finding.level,
        "code": finding.code, "message": finding.message,
    }  # fmt: skip


def _dependencies(script: _Script, cache: ScriptCache) -> ScriptDependencies:
    key = _digest("deps", script.prepared.text)
    cached = cache.get(key)
    if cached is not None:
        fields = dict(cached)
        for name in ("commands", "dynamic", "local_scripts", "functions"):
            fields[name] = tuple(fields[name])
        return ScriptDependencies(**fields)
    deps = script_dependencies(script.prepared.text)
    cache.put(key, {
        "commands": list(deps.commands), "dynamic": list(deps.dynamic),
        "local_scripts": list(deps.local_scripts), "functions": list(deps.functions),
        "analyzed": deps.analyzed, "note": deps.note,
    })  # fmt: skip
    return deps


def build_project(
    project: Project, *, shellcheck: bool = True, write_procinfo: bool = True
) -> BuildResult:
    """Check `project` and write procinfo.toml and the startup manifest.

    Never raises for problems in the workflow: they are findings in the result. Raises only when
    the analysis itself cannot run (ShellCheckError when the binary is missing).
    """
    started = time.perf_counter()
    root = project.root
    settings = project.settings
    config_path = _config_path(project)
    options = {
        "maestro": __version__,
        "entry": str(project.entry),
        "config": str(config_path),
        "shellcheck": shellcheck,
        "procinfo": write_procinfo,
    }
    previous = load_unchanged(root, options=options)
    if previous is not None:
        return replace(
            previous,
            scripts_checked=0,
            scripts_cached=previous.scripts_checked + previous.scripts_cached,
            seconds=time.perf_counter() - started,
        )
    discovery = project_modules(project.entry, root=root)
    findings: list[Finding] = [
        Finding(path, None, None, Severity.ERROR, f"cannot be analysed: {reason}", "maestro")
        for path, reason in discovery.unparsable
    ]
    config, config_findings = _load_config(config_path)
    findings += config_findings
    references = find_references(discovery.modules)
    if not config_findings:
        findings += [
            Finding(p.file, p.line, p.col, Severity.ERROR, p.message, "config")
            for p in check_references(config, references)
        ]
    sites = find_sites(discovery.modules)
    for site in sites:
        findings += [
            Finding(site.file, site.line, site.col, Severity.WARNING, problem, "maestro")
            for problem in site.problems
        ]
    scripts = _prepare_scripts(sites, discovery.modules)
    cache = ScriptCache(root)
    checked = 0
    if shellcheck and scripts:
        results, checked = _run_shellcheck(scripts, cache, settings)
        threshold = Severity[settings.shellcheck_severity.upper()]
        for script in scripts:
            findings += _shell_findings(script, results[script.digest], threshold)
    for script in scripts:
        findings += _usage_findings(script)
    entries, reports = [], []
    deps_by_site = {id(s.site): _dependencies(s, cache) for s in scripts}
    for site in sites:
        deps = deps_by_site.get(id(site))
        detected = deps.commands if deps else ()
        declared_deps = apply_declared(detected, site.dependencies)
        analyzed = deps.analyzed if deps else False
        note = deps.note if deps else "the script is not a string constant"
        key = site.key(root)
        entries.append(
            ProcinfoEntry(
                key=key, doc=site.doc, name=site.name, executor=site.executor,
                deps=declared_deps, dynamic=deps.dynamic if deps else (),
                local_scripts=deps.local_scripts if deps else (), analyzed=analyzed, note=note,
            )
        )  # fmt: skip
        reports.append(SiteReport(key, site.name, site.executor, declared_deps, analyzed))
    cache.save(complete=shellcheck)
    procinfo = None
    if write_procinfo:
        procinfo = root / PROCINFO_FILE
        text = render_procinfo(entries)
        if not procinfo.exists() or procinfo.read_text(encoding="utf-8") != text:
            atomic_write_text(procinfo, text)
    write_manifest(root, discovery.modules, references)
    findings.sort(key=lambda f: (str(f.file or ""), f.line or 0, f.col or 0, f.code))
    result = BuildResult(
        root=root,
        sites=tuple(reports),
        findings=tuple(findings),
        scripts_checked=checked,
        scripts_cached=len(scripts) - checked if shellcheck else 0,
        procinfo=procinfo,
        seconds=time.perf_counter() - started,
    )
    read = [module.path for module in discovery.modules]
    read += [path for path, _ in discovery.unparsable]
    read += [site.script_file for site in sites if site.script_file is not None]
    read += [root / "pyproject.toml", *([config_path] if config_path else [])]
    if config is not None:
        read += [path for paths in config.inputs.values() for path in paths]
    if procinfo is not None:
        read.append(procinfo)
    save_state(root, options=options, files=read, result=result)
    return result
