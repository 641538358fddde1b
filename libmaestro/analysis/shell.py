"""Which external programs does a process's bash script need?

`maestro build` records the answer in procinfo.toml as the process's dependencies, so that a
workflow can say up front that it needs `samtools` and `bwa`, and a bundle or container can be
checked for them. Nothing here runs the script or touches the file system.

A command is the first word of a simple command, wherever that simple command sits: in a
pipeline or a `&&`/`||`/`;` list, a `( )` subshell or `{ }` group, an `if`/`while`/`until`/
`for`/`case`, a function body, or a `$( )`, backtick or `<( )`/`>( )` substitution (also inside
double quotes, assignments, `${x:-$(cmd)}` and unquoted here-documents). Wrappers are seen
through: `env`, `xargs`, `sudo`, `nice`, `timeout`, `nohup`, `stdbuf` and `parallel` are
reported along with the command they run; `time`, `exec` and `command` only pass it on.
`find -exec CMD ;` and `sh -c 'SCRIPT'` are analysed too. Keywords, bash builtins and the
script's own functions are not commands; `"$tool"` and `$(which python)` in command position
are `dynamic`, and commands given as paths (`./run.sh`, `/opt/x/bin/y`) are `local_scripts`.

Each script is tokenized (`_bash_words.Lexer`) and then parsed with bashlex. bashlex cannot
parse `case` (idank/bashlex#91), arithmetic (idank/bashlex#68), `[[ ]]`, `time`, arrays or
`for ((...))`, and it misreads other scripts: here-documents inside compound commands, `$` in
quoted parts of words, `<( )` inside words, `(( ))`; on some `${` it loops forever. For those
scripts the tokens do the same analysis, `ScriptDependencies.analyzed` is False and `note`
says why. bashlex parses only the first line of a `$( )`, so every substitution is analysed
from its text, as a script of its own.

Limitations: strings run by `eval`, `trap`, `su -c`, `ssh host cmd`, `Rscript -e` and the like
are not analysed; aliases are not expanded; `source`d files are not followed; a function that
shares its name with a program hides the program everywhere in the script; `((` always starts
arithmetic, where bash may read two subshells.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from libmaestro.analysis._bash_words import (
    ARITH,
    ASSIGNMENT,
    BUILTINS,
    CLOSERS,
    FIND_EXEC_ACTIONS,
    KEYWORDS,
    MAX_NESTING,
    OP,
    OPENERS,
    PATTERN_ENDS,
    REDIRECTS,
    SHELLS,
    WORD,
    WRAPPERS,
    Lexer,
    Token,
    unquote,
    wrapped_command,
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


# `sh -c "bash -c '...'"` nests; past this depth the rest is skipped.
_MAX_SCRIPT_DEPTH = 8

# bashlex fails on a quoted here-document delimiter (`<<'EOF'`). Its body is data to bashlex
# either way, so the quotes are removed before parsing (and the words mapped back after).
_QUOTED_HEREDOC = re.compile(r"(?<!<)<<(-?[ \t]*)(['\"])([^'\"\s]+)\2")
_DOUBLE_BRACKET = re.compile(r"(?<![^\s;&|(!{])\[\[\s")  # `[[ ` starting a word
# bashlex expands `$` inside a single-quoted part of a word unless the whole word is quoted
# (subst.py looks for the closing quote from the opening one): `-e's/$(x)//'` yields a command
# `x`, and `-F'${'` loops forever.
_NOTE_QUOTED_DOLLAR = "bashlex misreads '$' inside a quoted part of a word"
_NOTE_HEREDOC = "bashlex misreads a here-document inside a compound command"
_NOTE_MIDWORD_PROCSUB = "bashlex does not see '<( )' or '>( )' inside a word"
_REJECTED = {
    "case": "bashlex cannot parse 'case' (idank/bashlex#91)",
    "time": "bashlex cannot parse 'time'",
    "select": "bashlex cannot parse 'select'",
    "coproc": "bashlex cannot parse 'coproc'",
}
_NOTE_TOO_DEEP = f"nested deeper than {MAX_NESTING} levels; the innermost part was skipped"
_NOTE_ARITHMETIC_COMMAND = "bashlex cannot parse the arithmetic command '(( ))' (idank/bashlex#68)"


class _Unsupported(Exception):
    """A construct bashlex parses, but wrongly; the fallback tokenizer takes over."""


@dataclass(slots=True)
class _Found:
    """What one script and the scripts nested in it need; see `ScriptDependencies`."""

    commands: set[str] = field(default_factory=set)
    dynamic: set[str] = field(default_factory=set)
    local_scripts: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        if message and message not in self.notes:
            self.notes.append(message)

    def merge(self, other: _Found) -> None:
        self.commands |= other.commands
        self.dynamic |= other.dynamic
        self.local_scripts |= other.local_scripts
        self.functions |= other.functions
        for message in other.notes:
            self.note(message)

    def script(self, text: str, *, depth: int, line: int | None = 1) -> None:
        """Analyse a whole script: with bashlex if it can, else with the fallback tokenizer.

        `line` is the line of the enclosing script `text` starts on (None: unknown), for notes.
        """
        if depth > _MAX_SCRIPT_DEPTH or _is_blank(text):
            return
        # The tokenizer runs first: it finds the input that makes bashlex loop forever or read
        # commands out of quoted text, and its tokens are the fallback's, ready if needed.
        lexer = Lexer(text).run()
        reason = _bashlex_hazard(text, lexer, line)
        if not reason:
            # Walk into a scratch result so a walk abandoned halfway leaves nothing behind.
            attempt = _Found()
            try:
                _walk_bashlex(text, lexer, attempt, depth=depth, line=line)
            # bashlex also fails with internal errors (AttributeError, IndexError, ...) on
            # input it does not expect; any failure means "use the fallback", never "give up".
            except Exception as exc:
                reason = _failure_note(exc, text, line)
            else:
                self.merge(attempt)
                return
        self.note(reason)
        for tokens in lexer.scripts:
            _walk_tokens(tokens, self, depth)

    def fallback(self, text: str, *, depth: int) -> None:
        """Analyse `text` with the tokenizer alone (tests compare it with `script`)."""
        lexer = Lexer(text).run()
        if lexer.too_deep:
            self.note(_NOTE_TOO_DEEP)
        for tokens in lexer.scripts:
            _walk_tokens(tokens, self, depth)

    def command(self, words: Sequence[str], depth: int) -> None:
        """Record the command a simple command (its words as written, no redirections) runs."""
        i, n = 0, len(words)
        while i < n and ASSIGNMENT.match(words[i]):
            i += 1
        while i < n:
            name, dynamic = unquote(words[i])
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
            start = wrapped_command(words, i + 1, wrapper)
            if start is None:
                return
            if wrapper.until:
                end = start
                while end < n and unquote(words[end])[0] not in wrapper.until:
                    end += 1
                words, i, n = words[start:end], 0, end - start
                template = unquote(words[0])[0] if n == 1 else ""
                # `parallel 'bwa mem ref {} | samtools sort' ::: *.fq` runs the template in a
                # shell, so a one-word template with spaces is a script of its own.
                if template.strip() and any(c.isspace() for c in template):
                    self.script(template, depth=depth + 1, line=None)
                    return
            else:
                i = start

    def _shell_script(self, args: Sequence[str], depth: int) -> None:
        """`bash -c 'SCRIPT'` (also `-ec`, `-o pipefail -c`): analyse SCRIPT."""
        k, has_c = 0, False
        while k < len(args):
            word = unquote(args[k])[0]
            if word in {"-o", "+o", "-O", "+O", "--rcfile", "--init-file"}:
                k += 2
            elif len(word) > 1 and word[0] in "-+":
                has_c = has_c or (word[0] == "-" and word[1] != "-" and "c" in word)
                k += 1
            else:
                break
        if has_c and k < len(args):
            self.script(unquote(args[k])[0], depth=depth + 1, line=None)

    def _find_exec(self, args: Sequence[str], depth: int) -> None:
        """`find ... -exec CMD {} ;` (or `+`, `-execdir`, `-ok`): record CMD."""
        k = 0
        while k < len(args):
            if unquote(args[k])[0] in FIND_EXEC_ACTIONS:
                start = k = k + 1
                while k < len(args) and unquote(args[k])[0] not in {";", "+"}:
                    k += 1
                self.command(args[start:k], depth)
            k += 1


def _bashlex_hazard(text: str, lexer: Lexer, line: int | None) -> str:
    """Why bashlex must not see `text` (it would misread it, or loop forever), or ""."""
    if lexer.too_deep:
        return _NOTE_TOO_DEEP
    if lexer.quoted_dollar:
        return _NOTE_QUOTED_DOLLAR
    if lexer.midword_procsub:
        return _NOTE_MIDWORD_PROCSUB
    # Constructs bashlex always rejects: saying so up front saves a parse that would fail.
    for tokens in lexer.scripts:
        previous = (OP, "")
        for token in tokens:
            if token[0] == ARITH:
                return _NOTE_ARITHMETIC_COMMAND
            at_command = previous[0] == OP and previous[1] not in REDIRECTS
            if at_command or previous[1] in OPENERS:
                if token[1] == "[[":
                    return _double_bracket_note(text, line)
                if token[1] in _REJECTED:
                    return _REJECTED[token[1]]
            previous = token
    # bashlex's `_paramexpand` loops, eating memory, when a word holds no `}` after a `${`, as
    # in a here-document inside `<( )`. A `${` closed on its own line cannot trigger it;
    # others are rare enough to leave to the tokenizer.
    start = text.find("${")
    while start >= 0:
        end = text.find("\n", start)
        if text.find("}", start, len(text) if end < 0 else end) < 0:
            return "'${' without '}' on its line (bashlex can loop forever on it)"
        start = text.find("${", start + 2)
    return ""


def _is_blank(text: str) -> bool:
    # bashlex raises AttributeError on a script with no commands at all; such a script was
    # analysed completely all the same.
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())


# --- bashlex ---------------------------------------------------------------------------------


def _unquote_heredoc_delimiters(text: str) -> tuple[str, tuple[int, ...]]:
    """`text` with `<<'EOF'` turned into `<<EOF`, and the new positions of those `<<`."""
    if "<<" not in text:
        return text, ()
    parts: list[str] = []
    positions: list[int] = []
    length = last = 0
    for match in _QUOTED_HEREDOC.finditer(text):
        parts.append(text[last : match.start()])
        length += match.start() - last
        positions.append(length)
        replacement = f"<<{match[1]}{match[3]}"
        parts.append(replacement)
        length += len(replacement)
        last = match.end()
    parts.append(text[last:])
    return "".join(parts), tuple(positions)


def _walk_bashlex(text: str, lexer: Lexer, found: _Found, *, depth: int, line: int | None) -> None:
    """Parse `text` with bashlex and record its commands; raises whatever bashlex raises."""
    prepared, quoted = _unquote_heredoc_delimiters(text)
    # Imported here: bashlex builds its parser tables on import (~0.25 s), which every workflow
    # start and every CLI command would pay, though only `maestro build` parses scripts.
    import bashlex  # type: ignore[import-untyped]

    stack = bashlex.parse(prepared)
    while stack:  # iterative: trees can be deep
        node = stack.pop()
        kind = node.kind
        if kind == "command":
            words = [_original(text, quoted, p.pos) for p in node.parts if p.kind in _WORDS]
            found.command(words, depth)
            stack.extend(p for p in node.parts if p.kind == "redirect")
        elif kind == "function":
            found.functions.add(node.name.word)
            stack.append(node.body)
        elif kind == "compound":
            if _is_arithmetic_command(node):
                raise _Unsupported(_NOTE_ARITHMETIC_COMMAND)
            stack.extend(node.list)
            stack.extend(node.redirects)
        elif kind == "redirect" and getattr(node, "heredoc", None) is not None:
            # Inside `if`/`while`/`{ }` bashlex reads the body as commands and keeps only the
            # delimiter line: the body then does not start on the line after the operator.
            if node.heredoc.pos[0] != prepared.find("\n", node.output.pos[1]) + 1:
                raise _Unsupported(_NOTE_HEREDOC)
        else:  # list, pipeline, if, for, while, until; leaves have no parts
            stack.extend(getattr(node, "parts", ()))
    # bashlex parses only the first line of a `$( )`, not the `$( )` in `${x:-$(cmd)}` or in
    # here-documents, and its positions in multi-line ones drift; the tokenizer's
    # substitutions are analysed instead, each as a script of its own.
    for start, substitution in lexer.substitutions:
        first = None if line is None else line + text.count("\n", 0, start)
        found.script(substitution, depth=depth, line=first)


def _original(text: str, quoted: tuple[int, ...], span: tuple[int, int]) -> str:
    """The part of `text` that bashlex's `span` in the prepared text stands for."""
    start, end = (p + 2 * bisect.bisect_left(quoted, p) for p in span)
    return text[start:end]


_WORDS = frozenset({"word", "assignment"})


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


def _failure_note(exc: Exception, text: str, line: int | None) -> str:
    """Say why bashlex could not analyse `text`, which starts on `line`, for the note."""
    message = str(exc)
    if isinstance(exc, _Unsupported):
        return message
    if isinstance(exc, NotImplementedError):
        if "pattern" in message or "case" in message:
            return _REJECTED["case"]
        if "arithmetic" in message:
            return "bashlex cannot parse arithmetic '$(( ))' (idank/bashlex#68)"
        for construct in ("time", "select", "coproc"):
            if f"{construct} command" in message or f"{{{construct}}}" in message:
                return _REJECTED[construct]
        return f"bashlex cannot parse this construct: {message}"
    if hasattr(exc, "position"):  # bashlex's ParsingError and MatchedPairError
        # bashlex has no `[[ ]]`, the commonest failure. Its error positions count from the
        # start of a line, not of the script, so they give no line number.
        if _DOUBLE_BRACKET.search(text):
            return _double_bracket_note(text, line)
        return f"bashlex cannot parse the script: {getattr(exc, 'message', message)}"
    return f"bashlex failed: {type(exc).__name__}: {message}"


def _double_bracket_note(text: str, line: int | None) -> str:
    """Say that bashlex cannot parse `[[ ]]`, and where the first one is."""
    test = _DOUBLE_BRACKET.search(text)
    row = text.count("\n", 0, test.start()) if test else 0
    where = "a nested script" if line is None else f"line {line + row}"
    return f"bashlex cannot parse '[[ ]]' ({where})"


def _walk_tokens(tokens: list[Token], found: _Found, depth: int) -> None:
    """Record the commands in one token list: the first word of each simple command."""
    command, args, skip, pattern, case_head, test = range(6)
    words: list[str] = []
    state, i, n = command, 0, len(tokens)
    while i < n:
        kind, text = tokens[i]
        i += 1
        if state == test:  # inside [[ ]], `<`, `(` and `&&` are not shell syntax
            state = skip if text == "]]" and kind == WORD else test
        elif kind == OP:
            if text in REDIRECTS:
                i += i < n and tokens[i][0] == WORD  # the file (or here-doc delimiter)
                continue
            if words:
                found.command(words, depth)
                words = []
            if text in PATTERN_ENDS:
                state = pattern
            elif state in (pattern, case_head):
                state = command if text == ")" and state == pattern else state
            else:
                state = skip if text == ")" else command
        elif kind == ARITH:
            state = skip if state == command else state
        elif state == args:
            words.append(text)
        elif state == command:
            if text in OPENERS:
                continue
            if text in CLOSERS or text in {"for", "select"}:
                state = skip
            elif text == "case":
                state = case_head
            elif text == "[[":
                state = test
            elif text == "function":
                if i < n and tokens[i][0] == WORD:
                    found.functions.add(unquote(tokens[i][1])[0])
                    i += 1
                if tokens[i : i + 2] == [(OP, "("), (OP, ")")]:
                    i += 2
            elif tokens[i : i + 2] == [(OP, "("), (OP, ")")]:
                found.functions.add(unquote(text)[0])
                i += 2
            else:
                words, state = [text], args
        elif state == pattern and text == "esac":
            state = skip
        elif state == case_head and text == "in":
            state = pattern
    if words:
        found.command(words, depth)
