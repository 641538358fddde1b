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

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import bashlex  # type: ignore[import-untyped]  # bashlex ships no type hints or stubs

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

# bashlex fails on a quoted here-document delimiter (`<<'EOF'`). The body is data either way,
# so the quotes are removed before parsing, and the operator's position remembered so that the
# body is not scanned for substitutions.
_QUOTED_HEREDOC = re.compile(r"(?<!<)<<(-?[ \t]*)(['\"])([^'\"\s]+)\2")
# bashlex expands `$` inside a single-quoted part of a word unless the whole word is quoted
# (subst.py looks for the closing quote from the opening one): `-e's/$(x)//'` yields a command
# `x`, and `-F'${'` loops forever.
_NOTE_QUOTED_DOLLAR = "bashlex misreads '$' inside a quoted part of a word"
_NOTE_HEREDOC = "bashlex misreads a here-document inside a compound command"
_NOTE_MIDWORD_PROCSUB = "bashlex does not see '<( )' or '>( )' inside a word"
_NOTE_TOO_DEEP = f"nested deeper than {MAX_NESTING} levels; the innermost part was skipped"
_NOTEARITHMETIC_COMMAND = "bashlex misreads the arithmetic command '(( ))' (idank/bashlex#68)"


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

    def script(self, text: str, *, depth: int) -> None:
        """Analyse a whole script: with bashlex if it can, else with the fallback tokenizer."""
        if depth > _MAX_SCRIPT_DEPTH or _is_blank(text):
            return
        # The tokenizer runs first: it finds the input that makes bashlex loop forever or read
        # commands out of quoted text, and its tokens are the fallback's, ready if needed.
        lexer = Lexer(text).run()
        reason = _bashlex_hazard(text, lexer)
        if not reason:
            # Walk into a scratch result so a walk abandoned halfway leaves nothing behind.
            attempt = _Found()
            try:
                _walk_bashlex(text, attempt, depth)
            # bashlex also fails with internal errors (AttributeError, IndexError, ...) on
            # input it does not expect; any failure means "use the fallback", never "give up".
            except Exception as exc:
                reason = _failure_note(exc, text)
            else:
                self.merge(attempt)
                return
        self.note(reason)
        for tokens in lexer.scripts:
            _walk_tokens(tokens, self, depth)

    def fallback(self, text: str, *, depth: int, data: bool = False) -> None:
        """Analyse `text` with the tokenizer alone.

        Of `data` (a here-document body) only the `$( )` and backtick substitutions count.
        """
        lexer = Lexer(text).run(data=data)
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
                    self.script(template, depth=depth + 1)
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
            self.script(unquote(args[k])[0], depth=depth + 1)

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


def _bashlex_hazard(text: str, lexer: Lexer) -> str:
    """Why bashlex must not see `text` (it would misread it, or loop forever), or ""."""
    if lexer.too_deep:
        return _NOTE_TOO_DEEP
    if lexer.quoted_dollar:
        return _NOTE_QUOTED_DOLLAR
    if lexer.midword_procsub:
        return _NOTE_MIDWORD_PROCSUB
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


def _walk_bashlex(text: str, found: _Found, depth: int) -> None:
    """Parse `text` with bashlex and record its commands; raises whatever bashlex raises."""
    prepared, quoted_heredocs = _unquote_heredoc_delimiters(text)
    stack = bashlex.parse(prepared)
    while stack:  # iterative: trees can be deep
        node = stack.pop()
        kind = node.kind
        if kind == "command":
            words = [prepared[p.pos[0] : p.pos[1]] for p in node.parts if p.kind in _BASHLEXWORDS]
            found.command(words, depth)
            stack.extend(node.parts)
        elif kind == "function":
            found.functions.add(node.name.word)
            stack.append(node.body)
        elif kind == "compound":
            if _is_arithmetic_command(node):
                raise _Unsupported(_NOTEARITHMETIC_COMMAND)
            stack.extend(node.list)
            stack.extend(node.redirects)
        elif kind == "redirect":
            if hasattr(node.output, "kind"):  # `2>&1` has an int here
                stack.append(node.output)
            heredoc = getattr(node, "heredoc", None)
            if heredoc is None:
                continue
            # Inside `if`/`while`/`{ }` bashlex reads the body as commands and keeps only the
            # delimiter line: the body then does not start on the line after the operator.
            if heredoc.pos[0] != prepared.find("\n", node.output.pos[1]) + 1:
                raise _Unsupported(_NOTE_HEREDOC)
            if node.pos[0] not in quoted_heredocs:
                found.fallback(heredoc.value, depth=depth, data=True)
        elif kind in ("commandsubstitution", "processsubstitution"):
            # bashlex parses only the first line of `$( )`, so its body is analysed afresh,
            # from the original text (quoted here-document delimiters and all).
            start, end = (p + 2 * bisect.bisect_left(quoted_heredocs, p) for p in node.pos)
            found.script(_substitution_body(text, start, end), depth=depth)
        elif kind == "parameter":
            # bashlex leaves `${x:-$(hostname)}` unparsed.
            value = getattr(node, "value", "")
            if "$(" in value or "`" in value:
                found.fallback(value, depth=depth, data=True)
        else:  # list, pipeline, if, for, while, until, word, assignment; leaves have no parts
            stack.extend(getattr(node, "parts", ()))


def _substitution_body(text: str, start: int, end: int) -> str:
    """The script inside the `$( )`, `<( )`, `>( )` or backticks at `text[start:end]`."""
    if text[start : start + 1] == "`" and text[end - 1 : end] == "`" and end - start > 1:
        return re.sub(r"\\([\\`$])", r"\1", text[start + 1 : end - 1])
    if text[start : start + 2] in {"$(", "<(", ">("} and text[end - 1 : end] == ")":
        return text[start + 2 : end - 1]
    raise _Unsupported("bashlex misplaced a substitution")


_BASHLEXWORDS = frozenset({"word", "assignment"})


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
    if isinstance(exc, _Unsupported):
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
