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

import enum
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from libmaestro._fs import atomic_write_text
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
from libmaestro.manifest import write_manifest
from libmaestro.process import PreparedScript, prepare_script
from libmaestro.project import Project, ProjectSettings
from libmaestro.startup import check_references

log = logging.getLogger(__name__)

PROCINFO_FILE = "procinfo.toml"
CACHE_FILE = ".maestro/build-cache.json"
CACHE_VERSION = 1
UNDECLARED = 2154  # ShellCheck: "var is referenced but not assigned"


class Severity(enum.IntEnum):
    STYLE = 0
    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem, in the `file:line:col: severity: message [code]` form editors link to."""

    file: Path | None
    line: int | None
    col: int | None
    severity: Severity
    message: str
    code: str  # "SC2086" for ShellCheck, "maestro" for our own checks, "config" for Maestro.toml

    def render(self, root: Path) -> str:
        where = ""
        if self.file is not None:
            try:
                where = self.file.relative_to(root).as_posix()
            except ValueError:
                where = str(self.file)
            where += "".join(f":{p}" for p in (self.line, self.col) if p is not None)
            where += ": "
        return f"{where}{self.severity.label}: {self.message} [{self.code}]"


@dataclass(frozen=True, slots=True)
class SiteReport:
    key: str
    name: str | None
    executor: str | None
    deps: tuple[str, ...]
    analyzed: bool


@dataclass(frozen=True, slots=True)
class BuildResult:
    root: Path
    sites: tuple[SiteReport, ...]
    findings: tuple[Finding, ...]
    scripts_checked: int  # scripts ShellCheck ran on in this build
    scripts_cached: int  # scripts whose results came from the cache
    procinfo: Path | None
    seconds: float

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    def failed(self, *, strict: bool = False) -> bool:
        """Errors fail a build; with `strict`, warnings do too."""
        worst = max((f.severity for f in self.findings), default=Severity.STYLE)
        return worst >= (Severity.WARNING if strict else Severity.ERROR)


_LEVELS = {"error": Severity.ERROR, "warning": Severity.WARNING, "info": Severity.INFO}


@dataclass(slots=True)
class _Script:
    site: ProcessSite
    prepared: PreparedScript
    positions: list[tuple[int, int]] | None
    source_file: Path  # the file the positions refer to
    digest: str


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class _Cache:
    """Per-script results from earlier builds; a corrupt or foreign file is simply ignored."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, object]] = {}
        self.used: dict[str, dict[str, object]] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") == CACHE_VERSION:
                self.entries = dict(data["scripts"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass

    def get(self, digest: str) -> dict[str, object] | None:
        found = self.entries.get(digest)
        if found is not None:
            self.used[digest] = found
        return found

    def put(self, digest: str, entry: dict[str, object]) -> None:
        self.used[digest] = entry

    def save(self, *, complete: bool) -> None:
        # After a complete build only what it used is kept, so the file does not grow with every
        # edit; a partial one (no ShellCheck) keeps the rest for the next complete build.
        kept = self.used if complete else {**self.entries, **self.used}
        text = json.dumps({"version": CACHE_VERSION, "scripts": kept}, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, text)


def _config_findings(error: ConfigError) -> list[Finding]:
    return [
        Finding(issue.file, issue.line, None, Severity.ERROR, f"{issue.key}: {issue.message}"
                if issue.key else issue.message, "config")
        for issue in error.issues
    ]  # fmt: skip


def _load_config(project: Project) -> tuple[ProjectConfig | None, list[Finding]]:
    try:
        path = find_config_file(cwd=project.root, script_dir=project.entry.parent)
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
        if site.script_file is not None:
            positions: list[tuple[int, int]] | None = text_positions(site.script)
            source_file = site.script_file
        else:
            node = site.script_node
            positions = literal_char_positions(sources[site.file], node) if node else None
            source_file = site.file
        declared = sorted(site.declared) if site.declared is not None else None
        scripts.append(
            _Script(site, prepared, positions, source_file, _digest(prepared.text, declared))
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
    scripts: Sequence[_Script], cache: _Cache, settings: ProjectSettings
) -> tuple[dict[str, list[ShellFinding]], int]:
    results: dict[str, list[ShellFinding]] = {}
    todo: dict[str, _Script] = {}
    for script in scripts:
        key = _digest("shellcheck", script.digest, sorted(settings.shellcheck_exclude))
        cached = cache.get(key)
        if cached is not None:
            results[script.digest] = [ShellFinding(**f) for f in cached["findings"]]  # type: ignore[arg-type, attr-defined]  # json
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


def _dependencies(script: _Script, cache: _Cache) -> ScriptDependencies:
    key = _digest("deps", script.prepared.text)
    cached = cache.get(key)
    if cached is not None:
        fields = dict(cached)
        for name in ("commands", "dynamic", "local_scripts", "functions"):
            fields[name] = tuple(fields[name])  # type: ignore[arg-type]  # json lists
        return ScriptDependencies(**fields)  # type: ignore[arg-type]  # json
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
    discovery = project_modules(project.entry, root=root)
    findings: list[Finding] = [
        Finding(path, None, None, Severity.ERROR, f"cannot be analysed: {reason}", "maestro")
        for path, reason in discovery.unparsable
    ]
    config, config_findings = _load_config(project)
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
    cache = _Cache(root / CACHE_FILE)
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
    return BuildResult(
        root=root,
        sites=tuple(reports),
        findings=tuple(findings),
        scripts_checked=checked,
        scripts_cached=len(scripts) - checked if shellcheck else 0,
        procinfo=procinfo,
        seconds=time.perf_counter() - started,
    )
