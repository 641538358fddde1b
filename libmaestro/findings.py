"""What `maestro build` reports: findings with their severity and location, per-site summaries."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


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


def result_to_json(result: BuildResult) -> dict[str, Any]:
    """A JSON-ready form of `result`, read back by `result_from_json`."""
    return {
        "root": str(result.root),
        "sites": [asdict(site) for site in result.sites],
        "findings": [
            {**asdict(f), "file": str(f.file) if f.file else None, "severity": f.severity.label}
            for f in result.findings
        ],
        "scripts_checked": result.scripts_checked,
        "scripts_cached": result.scripts_cached,
        "procinfo": str(result.procinfo) if result.procinfo else None,
        "seconds": result.seconds,
    }


def result_from_json(data: dict[str, Any]) -> BuildResult:
    return BuildResult(
        root=Path(data["root"]),
        sites=tuple(
            SiteReport(s["key"], s["name"], s["executor"], tuple(s["deps"]), s["analyzed"])
            for s in data["sites"]
        ),
        findings=tuple(
            Finding(
                Path(f["file"]) if f["file"] else None,
                f["line"],
                f["col"],
                Severity[f["severity"].upper()],
                f["message"],
                f["code"],
            )
            for f in data["findings"]
        ),
        scripts_checked=int(data["scripts_checked"]),
        scripts_cached=int(data["scripts_cached"]),
        procinfo=Path(data["procinfo"]) if data["procinfo"] else None,
        seconds=float(data["seconds"]),
    )
