"""Bash at the level of words, for `libmaestro.analysis.shell`.

Tables of keywords, builtins and command wrappers; quote removal (`unquote`); and `Lexer`, the
tokenizer that vets each script before bashlex sees it, and that `shell` falls back to when
bashlex cannot parse the script.

The builtin list is bash 5.2's "SHELL BUILTIN COMMANDS" section of `man bash` (the same names
`compgen -b` prints), which is where the dependency rundown of the original maestro took its
list from. The wrapper tables describe just enough of each program's command line to find the
command it runs: which options take a separate value, and how many positional words come before
the command.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ARITH",
    "ASSIGNMENT",
    "BUILTINS",
    "CLOSERS",
    "FIND_EXEC_ACTIONS",
    "KEYWORDS",
    "MAX_NESTING",
    "OP",
    "OPENERS",
    "PARALLEL_SEPARATORS",
    "PATTERN_ENDS",
    "REDIRECTS",
    "SHELLS",
    "WORD",
    "WRAPPERS",
    "Lexer",
    "Token",
    "Wrapper",
    "unquote",
    "wrapped_command",
]

# `NAME=value`, `NAME+=value`, `NAME[i]=value`: an assignment, when it starts a command.
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?\+?=")
QUOTING = re.compile(r"[\\'\"$`]")
_EXPANSION_START = frozenset("{(_@*#?$!-")


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# `compgen -k`: reserved words. `time` and `coproc` are here as well, so a script's `time`
# is never reported as the external /usr/bin/time.
KEYWORDS = _names("""
    ! [[ ]] { } case coproc do done elif else esac fi for function if in select then time until
    while
""")

# `compgen -b`, the same names as the "SHELL BUILTIN COMMANDS" section of `man bash` (5.2).
BUILTINS = _names("""
    . : [ alias bg bind break builtin caller cd command compgen complete compopt continue
    declare dirs disown echo enable eval exec exit export false fc fg getopts hash help history
    jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly return set
    shift shopt source suspend test times trap true type typeset ulimit umask unalias unset wait
""")


@dataclass(frozen=True, slots=True)
class Wrapper:
    """How to find the command that a wrapper program (or builtin) runs.

    Attributes:
        short_values: Short options that take a value (`-n 1` or `-n1`).
        long_values: Long options that take a value when written without `=` (`--jobs 4`).
        positionals: Words between the options and the command (`timeout`'s duration).
        assignments: Whether `NAME=value` words may come before the command (`env`, `sudo`).
        lookups: Options that make it look a command up instead of running it (`command -v`).
        until: Words that end the command (`parallel`'s `:::`); empty means "end of line".
    """

    short_values: frozenset[str] = frozenset()
    long_values: frozenset[str] = frozenset()
    positionals: int = 0
    assignments: bool = False
    lookups: frozenset[str] = frozenset()
    until: frozenset[str] = frozenset()


PARALLEL_SEPARATORS = frozenset({":::", "::::", ":::+", "::::+"})

# Keyed by the command's basename, so `/usr/bin/env` and `/usr/bin/time` unwrap too.
WRAPPERS: dict[str, Wrapper] = {
    "env": Wrapper(
        short_values=frozenset("uCSP"),
        long_values=frozenset({"--unset", "--chdir", "--split-string"}),
        assignments=True,
    ),
    "xargs": Wrapper(
        # GNU's -e/-i/-l take their optional value attached, so they are plain flags here.
        short_values=frozenset("adEILnPsJRS"),
        long_values=frozenset(
            {
                "--arg-file",
                "--delimiter",
                "--max-args",
                "--max-procs",
                "--max-chars",
                "--process-slot-var",
            }
        ),
    ),
    "sudo": Wrapper(
        short_values=frozenset("ugCDprtTUR"),
        long_values=frozenset(
            {
                "--user",
                "--group",
                "--chdir",
                "--chroot",
                "--prompt",
                "--role",
                "--type",
                "--command-timeout",
                "--other-user",
                "--close-from",
                "--host",
            }
        ),
        assignments=True,
    ),
    # The keyword only knows -p; GNU time's -f/-o are here for `/usr/bin/time -f '%M' cmd`.
    "time": Wrapper(short_values=frozenset("fo"), long_values=frozenset({"--format", "--output"})),
    "nice": Wrapper(short_values=frozenset("n"), long_values=frozenset({"--adjustment"})),
    "exec": Wrapper(short_values=frozenset("a")),
    "command": Wrapper(lookups=frozenset({"-v", "-V"})),
    "nohup": Wrapper(),
    "timeout": Wrapper(
        short_values=frozenset("sk"),
        long_values=frozenset({"--signal", "--kill-after"}),
        positionals=1,
    ),
    "stdbuf": Wrapper(
        short_values=frozenset("ioe"), long_values=frozenset({"--input", "--output", "--error"})
    ),
    "parallel": Wrapper(
        short_values=frozenset("jnNSIaEdCsLPM"),
        long_values=_names("""
            --jobs --max-args --max-replace-args --max-lines --max-chars --sshlogin --sshloginfile
            --slf --arg-file --joblog --results --res --tmpdir --delay --timeout --retries
            --colsep --delimiter --halt --halt-on-error --memfree --load --env --workdir --wd
            --basefile --bf --transfer --return --header --tagstring --replace --eof --block
            --block-size --nice --sshdelay --termseq --limit
        """),
        until=PARALLEL_SEPARATORS,
    ),
}

# `sh -c 'script'`: the shells whose `-c` argument is itself a script to analyse.
SHELLS = frozenset({"sh", "bash", "dash", "ksh", "zsh"})

# find's actions that run a command; the command ends at `;` or `+`.
FIND_EXEC_ACTIONS = frozenset({"-exec", "-execdir", "-ok", "-okdir"})


def wrapped_command(words: Sequence[str], i: int, wrapper: Wrapper) -> int | None:
    """Index of the command a wrapper runs (`words[i:]` are its arguments), or None if none."""
    n = len(words)
    while i < n:
        word, dynamic = unquote(words[i])
        if word in wrapper.lookups:
            return None
        if word == "--":
            i += 1
            break
        if word == "-" or (wrapper.assignments and ASSIGNMENT.match(word)):
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
    return i if i < n and unquote(words[i])[0] not in wrapper.until else None


def unquote(word: str) -> tuple[str, bool]:
    """Quote removal: `("name", False)`, or `(word as written, True)` for an expansion."""
    if not QUOTING.search(word):
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
            end = ansi_c_end(word, i + 2)
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


def ansi_c_end(text: str, i: int) -> int:
    """Index after the `'` closing a `$'...'` string whose contents start at `i`."""
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == "'":
            return i + 1
        else:
            i += 1
    return len(text)


# `$( $( ) )`, `${x:-${y}}` and `"$("$( )")"` nest (a `$(` counts twice: expansion and
# script); past this depth the rest is skipped, so crafted input cannot exhaust the stack.
MAX_NESTING = 100

WORD, OP, ARITH = 0, 1, 2
Token = tuple[int, str]
# Longest first, so that `;;` is not read as two `;`.
_OPERATORS = (
    *(";;&", ";;", ";&", "&&", "||", "|&", "&>>", "&>", ">>", ">&", ">|", "<<<", "<<-", "<<"),
    *("<&", "<>", "<", ">", "|", "&", ";", "(", ")"),
)
REDIRECTS = frozenset(op for op in _OPERATORS if op[0] in "<>" or op.startswith("&>"))
_OPERATOR_CHARS = frozenset(";&|<>()")
_WORD_END = frozenset(" \t\r\n;&|()")
_FD_PREFIX = re.compile(r"\d+|\{[A-Za-z_][A-Za-z0-9_]*\}")
# Words after which a word is in command position again (`case` and `esac` only count there).
OPENERS = frozenset({"if", "then", "elif", "else", "do", "while", "until", "!", "{", "coproc"})
CLOSERS = frozenset({"fi", "done", "}", "esac", "in"})
PATTERN_ENDS = frozenset({";;", ";&", ";;&"})


class Lexer:
    """Split bash text into tokens: one token list per (sub)script, in `scripts`.

    Tokens are `(WORD, text as written)`, `(OP, operator)` (newline included) and
    `(ARITH, "((")` for an arithmetic command. Every `$( )`, backtick, `<( )`/`>( )` and
    unquoted here-document substitution gets a token list of its own: what a substitution runs
    does not depend on where it appears. Comments, here-document bodies and the insides of
    arithmetic are dropped.

    Attributes:
        scripts: The token lists, the outermost first.
        substitutions: The outermost substitutions: where each starts, and its script.
        quoted_dollar: Whether a word has `$` or a backtick in a single-quoted part, without
            being one single-quoted string (`-e's/$x//'`).
        midword_procsub: Whether `<( )` or `>( )` appears inside a word (`--in=<(zcat x)`).
        too_deep: Whether nesting went past `MAX_NESTING`; what lies deeper was skipped.
    """

    def __init__(self, text: str, nesting: int = 0) -> None:
        self.text = text
        self.scripts: list[list[Token]] = []
        self.substitutions: list[tuple[int, str]] = []
        self.quoted_dollar = self.midword_procsub = self.too_deep = False
        self._nesting = nesting
        self._substituting = 0  # how many substitutions the lexer is inside
        self._heredocs: list[tuple[str, bool, bool]] = []  # (delimiter, quoted, strip tabs)

    def run(self) -> Lexer:
        """Lex the text; returns the lexer itself."""
        try:
            self._script(0, nested=False)
        except _TooDeepError:
            self.too_deep = True
        return self

    def _scan_body(self, i: int, stop: int) -> None:
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
        tokens: list[Token] = []
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
                tokens.append((OP, "\n"))
                i += 1
                if self._heredocs:
                    i = self._heredoc_bodies(i)
            elif c == ")" and nested and parens == 0 and cases == 0:
                return i + 1
            elif text.startswith("((", i):
                tokens.append((ARITH, "(("))
                i = self._arithmetic(i + 2)
            elif c in _OPERATOR_CHARS and not (c in "<>" and text.startswith("(", i + 1)):
                op = next(op for op in _OPERATORS if text.startswith(op, i))
                tokens.append((OP, op))
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
                        (unquote(word)[0], bool(QUOTING.search(word)), heredoc_strip)
                    )
                    heredoc_strip = None
                at_command = not tokens or tokens[-1][0] == OP or tokens[-1][1] in OPENERS
                if word == "case" and at_command:
                    cases += 1
                elif word == "esac" and cases and tokens and tokens[-1][0] == OP:
                    cases -= 1
                tokens.append((WORD, word))
        return i

    def _word(self, i: int) -> int:
        """Index after the word starting at `i`."""
        text, n, start = self.text, len(self.text), i
        quoted_dollar = False
        while i < n:
            c = text[i]
            if c in "<>" and text.startswith("(", i + 1):  # <( ) and >( ), even mid-word
                self.midword_procsub = self.midword_procsub or i > start
                i = self._nested(i + 2)
            elif c == "(" and i > start and ASSIGNMENT.fullmatch(text, start, i):
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

    def _dollar(self, i: int, *, in_double: bool = False) -> int:
        """Index after the expansion starting with the `$` at `i`."""
        # Every recursion of the lexer passes through here, `_nested` or `_backtick`.
        if self._nesting >= MAX_NESTING:
            raise _TooDeepError
        self._nesting += 1
        try:
            return self._expansion(i, in_double=in_double)
        finally:
            self._nesting -= 1

    def _expansion(self, i: int, *, in_double: bool) -> int:
        text = self.text
        if text.startswith("$((", i):
            return self._arithmetic(i + 3)
        if text.startswith("$(", i):
            return self._nested(i + 2)
        if text.startswith("${", i):
            return self._balanced(i + 2, "", "}")  # bash does not nest bare braces here
        if text.startswith("$'", i) and not in_double:
            return ansi_c_end(text, i + 2)
        return i + 2 if text.startswith("$$", i) else i + 1  # `$$(x)` is the PID, then `(x)`

    def _nested(self, i: int) -> int:
        """Lex the `$( )` (or `<( )`) whose script starts at `i`; index after its `)`."""
        if self._nesting >= MAX_NESTING:
            raise _TooDeepError
        self._nesting += 1
        self._substituting += 1
        try:
            end = self._script(i, nested=True)
        finally:
            self._nesting -= 1
            self._substituting -= 1
        if not self._substituting:
            self.substitutions.append((i, self.text[i : end - (self.text[end - 1 : end] == ")")]))
        return end

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
                i = self._dollar(i, in_double=True)
            elif c == "`":
                i = self._backtick(i + 1)
            else:
                i += 1
        return n

    def _balanced(self, i: int, opening: str, closing: str) -> int:
        """Index after the `closing` that balances an `opening` just before `i`.

        Quotes and expansions inside are skipped whole; an empty `opening` does not nest.
        """
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
        if self._nesting >= MAX_NESTING:
            raise _TooDeepError
        # Inside backticks a backslash escapes `\`, `` ` `` and `$`; the rest is a script.
        inner = Lexer(re.sub(r"\\([\\`$])", r"\1", text[i:end]), self._nesting + 1)
        if not self._substituting:
            self.substitutions.append((i, inner.text))
        try:
            inner._script(0, nested=False)
        finally:
            self.scripts.extend(inner.scripts)
            self.quoted_dollar = self.quoted_dollar or inner.quoted_dollar
            self.midword_procsub = self.midword_procsub or inner.midword_procsub
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
                self._scan_body(start, min(i, n))
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        return i


class _TooDeepError(Exception):
    """Nesting beyond `MAX_NESTING`."""
