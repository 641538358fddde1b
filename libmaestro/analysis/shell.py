"""Which external programs does a process's bash script need?

`maestro build` records the answer in procinfo.toml as the process's dependencies, so that a
workflow can say up front that it needs `samtools` and `bwa`, and a bundle or container can be
checked for them. Nothing here runs the script or touches the file system.

A command is the first word of a simple command, wherever that simple command sits: in a
pipeline or a `&&`/`||`/`;` list, a `( )` subshell or `{ }` group, an `if`/`while`/`until`/
`for`/`case`, a function body, or a `$( )`, backtick or `<( )`/`>( )` substitution (also inside
double quotes, assignments and unquoted here-documents). Wrappers are seen through: `env`,
`xargs`, `sudo`, `nice`, `timeout`, `nohup`, `stdbuf` and `parallel` are reported along with the
command they run; `time`, `exec` and `command` only pass it on. `find -exec CMD ;` and
`sh -c 'SCRIPT'` are analysed too. Keywords, bash builtins and the script's own functions are
not commands; `"$tool"` and `$(which python)` in command position are `dynamic`, and commands
given as paths (`./run.sh`, `/opt/x/bin/y`) are `local_scripts`.

bashlex parses the script first. It cannot parse `case` (idank/bashlex#91), arithmetic
(idank/bashlex#68), `[[ ]]`, `time`, arrays, `for ((...))` or quoted here-document delimiters,
among others; for those scripts a small bash tokenizer of our own does the same analysis and
`ScriptDependencies.analyzed` is False, with the reason in `note`.

Limitations: strings run by `eval`, `trap`, `su -c`, `ssh host cmd`, `Rscript -e` and the like
are not analysed; aliases are not expanded; `source`d files are not followed; a function that
shares its name with a program hides the program everywhere in the script.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import bashlex  # type: ignore[import-untyped]  # bashlex ships no type hints or stubs

from libmaestro.analysis._bash_words import (
    BUILTINS,
    FIND_EXEC_ACTIONS,
    KEYWORDS,
    SHELLS,
    WRAPPERS,
    Wrapper,
)

__all__ = ["ScriptDependencies", "apply_declared", "script_dependencies"]


@dataclass(frozen=True, slots=True)
class ScriptDependencies:
    """What a bash script runs, as far as reading it can tell.

    Attributes:
        commands: External commands named in command position, sorted and unique.
        dynamic: Command words that are expansions (`$tool`, `${aligner}`, `$(which python)`),
            as written minus enclosing double quotes; what they run is known only at run time.
        local_scripts: Commands given as paths (`./run.sh`, `bin/x`, `/opt/x/bin/y`).
        functions: Functions the script defines; they are left out of `commands`.
        analyzed: True when bashlex parsed the whole script; False when the fallback tokenizer
            did (the result is then a close approximation, not a parse).
        note: Why bashlex could not parse the script, when `analyzed` is False.
    """

    commands: tuple[str, ...]
    dynamic: tuple[str, ...]
    local_scripts: tuple[str, ...]
    functions: tuple[str, ...]
    analyzed: bool
    note: str = ""


def script_dependencies(script: str) -> ScriptDependencies:
    """Find the external programs `script` needs; never raises, whatever the input."""
    found = _Found()
    found.script(script, depth=0)
    return ScriptDependencies(
        commands=tuple(sorted(found.commands - found.functions)),
        dynamic=tuple(sorted(found.dynamic)),
        local_scripts=tuple(sorted(found.local_scripts)),
        functions=tuple(sorted(found.functions)),
        analyzed=not found.notes,
        note="; ".join(found.notes),
    )


def apply_declared(detected: Sequence[str], declared: Sequence[str]) -> tuple[str, ...]:
    """Combine auto-detected dependencies with a process's declared `dependencies`.

    `"!name"` drops `name` from the detected ones, a bare `"!"` drops all of them, and any
    other entry is added.

    Returns:
        The resulting dependencies, sorted and unique.
    """
    entries = [entry.strip() for entry in declared]
    kept: set[str] = set() if "!" in entries else set(detected)
    kept -= {entry[1:].strip() for entry in entries if entry.startswith("!")}
    kept |= {entry for entry in entries if entry and not entry.startswith("!")}
    return tuple(sorted(kept))


# `sh -c "bash -c '...'"` and `$( $( ... ) )` nest; past these depths the rest is skipped,
# so crafted input cannot exhaust the stack.
_MAX_SCRIPT_DEPTH = 8
_MAX_NESTING = 100

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?\+?=")
_QUOTING = re.compile(r"[\\'\"$`]")
_EXPANSION_START = frozenset("{(_@*#?$!-")
# bashlex fails on a quoted here-document delimiter (`<<'EOF'`). The body is data either way,
# so the quotes are removed before parsing, and the operator's position remembered so that the
# body is not scanned for substitutions.
_QUOTED_HEREDOC = re.compile(r"(?<!<)<<(-?[ \t]*)(['\"])([^'\"\s]+)\2")
# bashlex expands `$` inside a single-quoted part of a word unless the whole word is quoted
# (subst.py looks for the closing quote from the opening one): `-e's/$(x)//'` yields a command
# `x`, and `-F'${'` loops forever.
_NOTE_QUOTED_DOLLAR = "bashlex misreads '$' inside a quoted part of a word"
_NOTE_ARITHMETIC_COMMAND = "bashlex misreads the arithmetic command '(( ))' (idank/bashlex#68)"


class _Unsupported(Exception):
    """A construct bashlex parses, but wrongly; the fallback tokenizer takes over."""


class _TooDeep(Exception):
    """Nesting beyond `_MAX_NESTING`; what was found so far is kept."""


@dataclass(slots=True)
class _Found:
    """What one script and the scripts nested in it need; see `ScriptDependencies`."""

    commands: set[str] = field(default_factory=set)
    dynamic: set[str] = field(default_factory=set)
    local_scripts: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def merge(self, other: _Found) -> None:
        self.commands |= other.commands
        self.dynamic |= other.dynamic
        self.local_scripts |= other.local_scripts
        self.functions |= other.functions
        for message in other.notes:
            self.note(message)

    def script(self, text: str, *, depth: int) -> None:
        """Analyse a whole script: with bashlex if it can, else with the fallback tokenizer."""
        if depth > _MAX_SCRIPT_DEPTH or _is_blank(text):
            return
        # The tokenizer runs first: it finds the input that makes bashlex loop forever or read
        # commands out of quoted text, and its tokens are the fallback's, ready if needed.
        lexer = _Lexer(text)
        try:
            lexer.run()
        except _TooDeep:
            reason = f"nested deeper than {_MAX_NESTING} levels; the innermost part was skipped"
        else:
            reason = _NOTE_QUOTED_DOLLAR if lexer.quoted_dollar else ""
        if not reason:
            prepared, quoted_heredocs = _unquote_heredoc_delimiters(text)
            # Walk into a scratch result so a walk abandoned halfway leaves nothing behind.
            attempt = _Found()
            try:
                nodes = bashlex.parse(prepared)
                _walk_bashlex(nodes, prepared, quoted_heredocs, attempt, depth)
            # bashlex also fails with internal errors (AttributeError, IndexError, ...) on
            # input it does not expect; any failure means "use the fallback", never "give up".
            except Exception as exc:
                reason = _failure_note(exc, prepared)
            else:
                self.merge(attempt)
                return
        self.note(reason)
        for tokens in lexer.scripts:
            _walk_tokens(tokens, self, depth)

    def fallback(self, text: str, *, depth: int) -> None:
        """Analyse `text` with the tokenizer alone (what `script` does when bashlex fails)."""
        lexer = _Lexer(text)
        try:
            lexer.run()
        except _TooDeep:
            self.note(f"nested deeper than {_MAX_NESTING} levels; the innermost part was skipped")
        for tokens in lexer.scripts:
            _walk_tokens(tokens, self, depth)

    def substitutions(self, text: str, *, depth: int) -> None:
        """Analyse the `$( )` and backtick substitutions in data (a here-document body)."""
        lexer = _Lexer(text)
        try:
            lexer.scan_body(0, len(text))
        except _TooDeep:
            self.note(f"nested deeper than {_MAX_NESTING} levels; the innermost part was skipped")
        for tokens in lexer.scripts:
            _walk_tokens(tokens, self, depth)

    def command(self, words: Sequence[str], depth: int) -> None:
        """Record the command a simple command (its words as written, no redirections) runs."""
        i, n = 0, len(words)
        while i < n and _ASSIGNMENT.match(words[i]):
            i += 1
        while i < n:
            name, dynamic = _unquote(words[i])
            if dynamic:
                self.dynamic.add(name)
                return
            if not name:
                return
            base = name.rsplit("/", 1)[-1]
            if "/" in name:
                self.local_scripts.add(name)
            elif name not in KEYWORDS and name not in BUILTINS:
                self.commands.add(name)
            if base in SHELLS:
                self._shell_script(words[i + 1 :], depth)
                return
            if base == "find":
                self._find_exec(words[i + 1 :], depth)
                return
            wrapper = WRAPPERS.get(base)
            if wrapper is None:
                return
            start = _skip_options(words, i + 1, wrapper)
            if start is None:
                return
            if wrapper.until:
                end = start
                while end < n and _unquote(words[end])[0] not in wrapper.until:
                    end += 1
                words, i, n = words[start:end], 0, end - start
                template = _unquote(words[0])[0] if n == 1 else ""
                # `parallel 'bwa mem ref {} | samtools sort' ::: *.fq` runs the template in a
                # shell, so a one-word template with spaces is a script of its own.
                if template.strip() and any(c.isspace() for c in template):
                    self.script(template, depth=depth + 1)
                    return
            else:
                i = start

    def _shell_script(self, args: Sequence[str], depth: int) -> None:
        """`bash -c 'SCRIPT'` (also `-ec`, `-o pipefail -c`): analyse SCRIPT."""
        k, has_c = 0, False
        while k < len(args):
            word = _unquote(args[k])[0]
            if word in {"-o", "+o", "-O", "+O", "--rcfile", "--init-file"}:
                k += 2
            elif len(word) > 1 and word[0] in "-+":
                has_c = has_c or (word[0] == "-" and word[1] != "-" and "c" in word)
                k += 1
            else:
                break
        if has_c and k < len(args):
            self.script(_unquote(args[k])[0], depth=depth + 1)

    def _find_exec(self, args: Sequence[str], depth: int) -> None:
        """`find ... -exec CMD {} ;` (or `+`, `-execdir`, `-ok`): record CMD."""
        k = 0
        while k < len(args):
            if _unquote(args[k])[0] in FIND_EXEC_ACTIONS:
                start = k = k + 1
                while k < len(args) and _unquote(args[k])[0] not in {";", "+"}:
                    k += 1
                self.command(args[start:k], depth)
            k += 1


def _skip_options(words: Sequence[str], i: int, wrapper: Wrapper) -> int | None:
    """Index of the command a wrapper runs (`words[i:]` are its arguments), or None if none."""
    n = len(words)
    while i < n:
        word, dynamic = _unquote(words[i])
        if word in wrapper.lookups:
            return None
        if word == "--":
            i += 1
            break
        if word == "-" or (wrapper.assignments and _ASSIGNMENT.match(word)):
            i += 1
        elif word.startswith("--"):
            i += 2 if word in wrapper.long_values else 1
        elif word.startswith("-") and len(word) > 1 and not dynamic:
            i += 1
            for k in range(1, len(word)):
                if word[k] in wrapper.short_values:
                    # `-n 1` takes the next word; `-n1` carries its value.
                    i += k == len(word) - 1
                    break
        else:
            break
    i += wrapper.positionals
    return i if i < n and _unquote(words[i])[0] not in wrapper.until else None


def _unquote(word: str) -> tuple[str, bool]:
    """Quote removal: `("name", False)`, or `(word as written, True)` for an expansion."""
    if not _QUOTING.search(word):
        return word, False
    out: list[str] = []
    i, n, in_double = 0, len(word), False
    while i < n:
        c = word[i]
        nxt = word[i + 1] if i + 1 < n else ""
        if c == "\\":
            if in_double and nxt not in '$`"\\\n':
                out.append(c)
            if nxt != "\n":
                out.append(nxt)
            i += 2
        elif c == "'" and not in_double:
            end = word.find("'", i + 1)
            end = n if end < 0 else end
            out.append(word[i + 1 : end])
            i = end + 1
        elif c == '"':
            in_double = not in_double
            i += 1
        elif c == "$" and nxt == "'" and not in_double:  # $'\t' (ANSI-C quoting)
            end = _ansi_c_end(word, i + 2)
            out.append(word[i + 2 : end - 1])
            i = end
        elif c == "`" or (c == "$" and (nxt in _EXPANSION_START or nxt.isalnum())):
            if word.count('"') == 2 and word[0] == word[-1] == '"':
                return word[1:-1], True
            return word, True
        else:
            out.append(c)
            i += 1
    return "".join(out), False


def _ansi_c_end(text: str, i: int) -> int:
    """Index after the `'` closing a `$'...'` string whose contents start at `i`."""
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == "'":
            return i + 1
        else:
            i += 1
    return len(text)


def _is_blank(text: str) -> bool:
    # bashlex raises AttributeError on a script with no commands at all; such a script was
    # analysed completely all the same.
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())


# --- bashlex ---------------------------------------------------------------------------------


def _unquote_heredoc_delimiters(text: str) -> tuple[str, frozenset[int]]:
    """`text` with `<<'EOF'` turned into `<<EOF`, and the positions of those operators."""
    if "<<" not in text:
        return text, frozenset()
    parts: list[str] = []
    positions: set[int] = set()
    length = last = 0
    for match in _QUOTED_HEREDOC.finditer(text):
        parts.append(text[last : match.start()])
        length += match.start() - last
        positions.add(length)
        replacement = f"<<{match[1]}{match[3]}"
        parts.append(replacement)
        length += len(replacement)
        last = match.end()
    parts.append(text[last:])
    return "".join(parts), frozenset(positions)


def _walk_bashlex(
    nodes: list[Any], text: str, quoted_heredocs: frozenset[int], found: _Found, depth: int
) -> None:
    """Record the commands in bashlex's tree for `text` (iterative: trees can be deep)."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        kind = node.kind
        if kind == "command":
            words = [text[p.pos[0] : p.pos[1]] for p in node.parts if p.kind in _BASHLEX_WORDS]
            found.command(words, depth)
            stack.extend(node.parts)
        elif kind == "function":
            found.functions.add(node.name.word)
            stack.append(node.body)
        elif kind == "compound":
            if _is_arithmetic_command(node):
                raise _Unsupported(_NOTE_ARITHMETIC_COMMAND)
            stack.extend(node.list)
            stack.extend(node.redirects)
        elif kind == "redirect":
            if hasattr(node.output, "kind"):  # `2>&1` has an int here
                stack.append(node.output)
            heredoc = getattr(node, "heredoc", None)
            if heredoc is not None and node.pos[0] not in quoted_heredocs:
                found.substitutions(heredoc.value, depth=depth)
        elif kind in ("commandsubstitution", "processsubstitution"):
            stack.append(node.command)
        elif kind == "parameter":
            # bashlex leaves `${x:-$(hostname)}` unparsed.
            value = getattr(node, "value", "")
            if "$(" in value or "`" in value:
                found.substitutions(value, depth=depth)
        else:  # list, pipeline, if, for, while, until, word, assignment; leaves have no parts
            stack.extend(getattr(node, "parts", ()))


_BASHLEX_WORDS = frozenset({"word", "assignment"})


def _is_arithmetic_command(node: Any) -> bool:
    """Whether a compound node is `(( ... ))`, which bashlex reads as two nested subshells."""
    items = node.list
    if len(items) < 2 or items[0].kind != "reservedword" or items[0].word != "(":
        return False
    inner = items[1]
    return bool(
        inner.kind == "compound"
        and inner.list
        and inner.list[0].kind == "reservedword"
        and inner.list[0].word == "("
        and inner.list[0].pos[0] == items[0].pos[1]
    )


def _failure_note(exc: Exception, text: str) -> str:
    """Say why bashlex could not analyse `text`, for `ScriptDependencies.note`."""
    message = str(exc)
    if isinstance(exc, _Unsupported | _TooDeep):
        return message
    if isinstance(exc, NotImplementedError):
        if "pattern" in message or "case" in message:
            return "bashlex cannot parse 'case' (idank/bashlex#91)"
        if "arithmetic" in message:
            return "bashlex cannot parse arithmetic '$(( ))' (idank/bashlex#68)"
        for construct in ("time", "select", "coproc"):
            if f"{construct} command" in message or f"{{{construct}}}" in message:
                return f"bashlex cannot parse '{construct}'"
        return f"bashlex cannot parse this construct: {message}"
    position = getattr(exc, "position", None)
    if isinstance(position, int):  # bashlex's ParsingError and MatchedPairError
        line = text.count("\n", 0, position) + 1
        start = text.rfind("\n", 0, position) + 1
        if "[[" in text[start : position + 1]:  # bashlex has no `[[ ]]`: the commonest failure
            return f"bashlex cannot parse '[[ ]]' (line {line})"
        return f"bashlex cannot parse line {line}: {getattr(exc, 'message', message)}"
    return f"bashlex failed: {type(exc).__name__}: {message}"


# --- fallback tokenizer ----------------------------------------------------------------------

_WORD, _OP, _ARITH = 0, 1, 2
_Token = tuple[int, str]
# Longest first, so that `;;` is not read as two `;`.
_OPERATORS = (
    *(";;&", ";;", ";&", "&&", "||", "|&", "&>>", "&>", ">>", ">&", ">|", "<<<", "<<-", "<<"),
    *("<&", "<>", "<", ">", "|", "&", ";", "(", ")"),
)
_REDIRECTS = frozenset(op for op in _OPERATORS if op[0] in "<>" or op.startswith("&>"))
_OPERATOR_CHARS = frozenset(";&|<>()")
_WORD_END = frozenset(" \t\r\n;&|()")
_FD_PREFIX = re.compile(r"\d+|\{[A-Za-z_][A-Za-z0-9_]*\}")
# Words after which a word is in command position again (`case` and `esac` only count there).
_OPENERS = frozenset({"if", "then", "elif", "else", "do", "while", "until", "!", "{", "coproc"})
_CLOSERS = frozenset({"fi", "done", "}", "esac", "in"})
_PATTERN_ENDS = frozenset({";;", ";&", ";;&"})


class _Lexer:
    """Split bash text into tokens, one token list per (sub)script, for `_walk_tokens`.

    Every `$( )`, backtick, `<( )` and unquoted here-document substitution gets its own token
    list in `scripts`: what a substitution runs does not depend on where it appears.
    """

    def __init__(self, text: str, nesting: int = 0) -> None:
        self.text = text
        self.scripts: list[list[_Token]] = []
        self._nesting = nesting
        self.quoted_dollar = False  # see _NOTE_QUOTED_DOLLAR
        self._heredocs: list[tuple[str, bool, bool]] = []  # (delimiter, quoted, strip tabs)

    def run(self) -> None:
        self._script(0, nested=False)

    def scan_body(self, i: int, stop: int) -> None:
        """Lex the substitutions in `text[i:stop]`, where quotes are plain characters."""
        text = self.text
        while i < stop:
            c = text[i]
            if c == "\\":
                i += 2
            elif c == "$":
                i = self._dollar(i)
            elif c == "`":
                i = self._backtick(i + 1)
            else:
                i += 1

    def _script(self, i: int, *, nested: bool) -> int:
        """Lex commands from `i`; when `nested`, up to and past the `)` that closes `$(`."""
        tokens: list[_Token] = []
        self.scripts.append(tokens)
        text, n = self.text, len(self.text)
        parens = cases = 0
        heredoc_strip: bool | None = None  # set after `<<`/`<<-`: the next word is a delimiter
        while i < n:
            c = text[i]
            if c in " \t\r":
                i += 1
            elif c == "\\" and text.startswith("\n", i + 1):
                i += 2
            elif c == "#":
                end = text.find("\n", i)
                i = n if end < 0 else end
            elif c == "\n":
                tokens.append((_OP, "\n"))
                i += 1
                if self._heredocs:
                    i = self._heredoc_bodies(i)
            elif c == ")" and nested and parens == 0 and cases == 0:
                return i + 1
            elif text.startswith("((", i):
                tokens.append((_ARITH, "(("))
                i = self._arithmetic(i + 2)
            elif c in _OPERATOR_CHARS and not (c in "<>" and text.startswith("(", i + 1)):
                op = next(op for op in _OPERATORS if text.startswith(op, i))
                tokens.append((_OP, op))
                i += len(op)
                if op == "(":
                    parens += 1
                elif op == ")" and parens:
                    parens -= 1
                heredoc_strip = (op == "<<-") if op in {"<<", "<<-"} else None
            else:
                start, i = i, self._word(i)
                word = text[start:i]
                if i < n and text[i] in "<>" and _FD_PREFIX.fullmatch(word):
                    continue  # the `2` of `2>&1` belongs to the redirection
                if heredoc_strip is not None:
                    self._heredocs.append(
                        (_unquote(word)[0], bool(_QUOTING.search(word)), heredoc_strip)
                    )
                    heredoc_strip = None
                at_command = not tokens or tokens[-1][0] == _OP or tokens[-1][1] in _OPENERS
                if word == "case" and at_command:
                    cases += 1
                elif word == "esac" and cases and tokens and tokens[-1][0] == _OP:
                    cases -= 1
                tokens.append((_WORD, word))
        return i

    def _word(self, i: int) -> int:
        """Index after the word starting at `i`."""
        text, n, start = self.text, len(self.text), i
        quoted_dollar = False
        while i < n:
            c = text[i]
            if c in "<>" and text.startswith("(", i + 1):  # <( ) and >( ), even mid-word
                i = self._nested(i + 2)
            elif c == "(" and i > start and _ASSIGNMENT.fullmatch(text, start, i):
                i = self._balanced(i + 1, "(", ")")  # array assignment: a=(x y)
            elif c in _WORD_END or c in "<>":
                break
            elif c == "\\":
                i += 2
            elif c == "'":
                end = text.find("'", i + 1)
                end = n if end < 0 else end
                quoted_dollar = quoted_dollar or "$" in text[i:end] or "`" in text[i:end]
                i = end + 1
            elif c == '"':
                i = self._double_quoted(i + 1)
            elif c == "`":
                i = self._backtick(i + 1)
            elif c == "$":
                i = self._dollar(i)
            else:
                i += 1
        if quoted_dollar and not (text[start] == "'" and text[i - 1 : i] == "'"):
            self.quoted_dollar = True
        return max(i, start + 1)

    def _dollar(self, i: int) -> int:
        """Index after the expansion starting with the `$` at `i`."""
        text = self.text
        if text.startswith("$((", i):
            return self._arithmetic(i + 3)
        if text.startswith("$(", i):
            return self._nested(i + 2)
        if text.startswith("${", i):
            return self._balanced(i + 2, "{", "}")
        if text.startswith("$'", i):
            return _ansi_c_end(text, i + 2)
        return i + 1

    def _nested(self, i: int) -> int:
        if self._nesting >= _MAX_NESTING:
            raise _TooDeep
        self._nesting += 1
        try:
            return self._script(i, nested=True)
        finally:
            self._nesting -= 1

    def _double_quoted(self, i: int) -> int:
        """Index after the `"` closing a string whose contents start at `i`."""
        text, n = self.text, len(self.text)
        while i < n:
            c = text[i]
            if c == "\\":
                i += 2
            elif c == '"':
                return i + 1
            elif c == "$":
                i = self._dollar(i)
            elif c == "`":
                i = self._backtick(i + 1)
            else:
                i += 1
        return n

    def _balanced(self, i: int, opening: str, closing: str) -> int:
        """Index after the `closing` that balances an `opening` just before `i`."""
        text, n, depth = self.text, len(self.text), 1
        while i < n:
            c = text[i]
            if c == "\\":
                i += 2
            elif c == "'":
                end = text.find("'", i + 1)
                i = n if end < 0 else end + 1
            elif c == '"':
                i = self._double_quoted(i + 1)
            elif c == "`":
                i = self._backtick(i + 1)
            elif c == "$":
                i = self._dollar(i)
            else:
                depth += (c == opening) - (c == closing)
                i += 1
                if depth == 0:
                    return i
        return n

    def _arithmetic(self, i: int) -> int:
        """Index after the `))` closing arithmetic that starts at `i`; only `$( )` counts."""
        return min(self._balanced(i, "(", ")") + 1, len(self.text))

    def _backtick(self, i: int) -> int:
        """Lex a backtick substitution whose contents start at `i`; index after it."""
        text, n, end = self.text, len(self.text), i
        while end < n and text[end] != "`":
            end += 2 if text[end] == "\\" else 1
        if self._nesting >= _MAX_NESTING:
            raise _TooDeep
        # Inside backticks a backslash escapes `\`, `` ` `` and `$`; the rest is a script.
        inner = _Lexer(re.sub(r"\\([\\`$])", r"\1", text[i:end]), self._nesting + 1)
        try:
            inner.run()
        finally:
            self.scripts.extend(inner.scripts)
            self.quoted_dollar = self.quoted_dollar or inner.quoted_dollar
        return end + 1

    def _heredoc_bodies(self, i: int) -> int:
        """Skip the bodies of the here-documents opened on the line just ended."""
        text, n = self.text, len(self.text)
        pending, self._heredocs = self._heredocs, []
        for delimiter, quoted, strip_tabs in pending:
            start = i
            while i < n:
                end = text.find("\n", i)
                end = n if end < 0 else end
                line = text[i:end].rstrip("\r")
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
                i = end + 1
            if not quoted:  # `$( )` in an unquoted body runs; in `<<'EOF'` it is text
                self.scan_body(start, min(i, n))
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        return i


def _walk_tokens(tokens: list[_Token], found: _Found, depth: int) -> None:
    """Record the commands in one token list: the first word of each simple command."""
    command, args, skip, pattern, case_head, test = range(6)
    words: list[str] = []
    state, i, n = command, 0, len(tokens)
    while i < n:
        kind, text = tokens[i]
        i += 1
        if state == test:  # inside [[ ]], `<`, `(` and `&&` are not shell syntax
            state = skip if text == "]]" and kind == _WORD else test
        elif kind == _OP:
            if text in _REDIRECTS:
                i += i < n and tokens[i][0] == _WORD  # the file (or here-doc delimiter)
                continue
            if words:
                found.command(words, depth)
                words = []
            if text in _PATTERN_ENDS:
                state = pattern
            elif state in (pattern, case_head):
                state = command if text == ")" and state == pattern else state
            else:
                state = skip if text == ")" else command
        elif kind == _ARITH:
            state = skip if state == command else state
        elif state == args:
            words.append(text)
        elif state == command:
            if text in _OPENERS:
                continue
            if text in _CLOSERS or text in {"for", "select"}:
                state = skip
            elif text == "case":
                state = case_head
            elif text == "[[":
                state = test
            elif text == "function":
                if i < n and tokens[i][0] == _WORD:
                    found.functions.add(_unquote(tokens[i][1])[0])
                    i += 1
                if tokens[i : i + 2] == [(_OP, "("), (_OP, ")")]:
                    i += 2
            elif tokens[i : i + 2] == [(_OP, "("), (_OP, ")")]:
                found.functions.add(_unquote(text)[0])
                i += 2
            else:
                words, state = [text], args
        elif state == pattern and text == "esac":
            state = skip
        elif state == case_head and text == "in":
            state = pattern
    if words:
        found.command(words, depth)
