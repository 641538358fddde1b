"""Where each character of a script sits in the file the user edits.

`maestro build` reports ShellCheck findings as `file:LINE:COL`, pointing at the exact character
inside the Python string literal (or the script file) that holds the script. Three steps get
there:

1. `literal_char_positions` (or `text_positions` for a script file) gives the (line, column) of
   every character of the user's raw script text;
2. `libmaestro.process.prepare_script` records, for each line of the prepared script, the index
   in that raw text where the line starts (`PreparedScript.source_index`);
3. `to_source` chains the two.

Lines and columns are 1-based everywhere, and columns count characters (code points), not bytes
and not tab stops, which is what editors' `file:line:col` links expect.

Everything here is pure: no file is read and nothing is imported from the workflow.
"""

from __future__ import annotations

import ast
import bisect
import functools
import re
import unicodedata
from collections.abc import Sequence

from libmaestro.process import PreparedScript

__all__ = ["literal_char_positions", "text_positions", "to_source"]

Position = tuple[int, int]

# Python's tokenizer (and so `ast` line numbers) ends a line at "\r\n", "\r" or "\n"; it does not
# treat form feed, "\x1c".."\x1e", U+2028 and friends as line breaks the way str.splitlines does.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PREFIX_QUOTE = re.compile(r"([A-Za-z]*)('''|\"\"\"|'|\")")
_SIMPLE_ESCAPES = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_OCT_DIGITS = frozenset("01234567")
_HEX_ESCAPE_LENGTHS = {"x": 2, "u": 4, "U": 8}


class _LiteralSyntaxError(ValueError):
    """The source text between the node's positions is not the string literal `ast` saw."""


class _Lines:
    """Converts absolute character offsets in a text to 1-based (line, column) pairs."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [match.end() for match in _LINE_BREAK.finditer(text)]

    def position(self, offset: int) -> Position:
        index = bisect.bisect_right(self.starts, offset) - 1
        return index + 1, offset - self.starts[index] + 1

    def offset(self, line: int, char_column: int) -> int:
        return self.starts[line - 1] + char_column


@functools.lru_cache(maxsize=8)
def _lines_of(source: str) -> _Lines:
    """The line table of a module, kept because a build asks for every literal of one module."""
    return _Lines(source)


def text_positions(text: str) -> list[Position]:
    """The (line, column) of every character of `text`, for scripts read from their own file.

    A "\\r\\n" pair counts as one line break: both characters get positions on the line they
    end, as an editor shows them.
    """
    lines = _Lines(text)
    return [lines.position(offset) for offset in range(len(text))]


def literal_char_positions(source: str, node: ast.expr) -> list[Position] | None:
    """The (line, column) in `source` of every character of a string literal's value.

    `node` must come from `ast.parse(source)`. Implicit concatenation (`"a" "b"`, across lines
    and comments), every r/u prefix, both quote kinds and triple quotes are handled; escapes are
    decoded here, so each value character is placed at the source character it comes from (an
    escape sequence such as `\\n` or `\\x41` at its backslash; a backslash-newline produces no
    character; an unknown escape such as `\\d` keeps both characters, as Python does).

    Returns:
        A list with exactly `len(node.value)` positions, or None when `node` is not a plain
        `str` constant (an f-string, bytes, a number) or its source text does not decode to
        `node.value` (a node not parsed from `source`).
    """
    if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
        return None
    if node.end_lineno is None or node.end_col_offset is None:
        return None
    lines = _lines_of(source)
    try:
        start = lines.offset(node.lineno, _char_column(source, lines, node.lineno, node.col_offset))
        end = lines.offset(
            node.end_lineno, _char_column(source, lines, node.end_lineno, node.end_col_offset)
        )
        chars, offsets = _decode_concatenation(source, start, end)
    except (_LiteralSyntaxError, IndexError, UnicodeDecodeError):
        return None
    if "".join(chars) != node.value:
        return None
    return [lines.position(offset) for offset in offsets]


def to_source(
    prepared: PreparedScript,
    char_positions: Sequence[Position] | None,
    line: int,
    column: int,
) -> Position | None:
    """Map a position in the prepared script to the (line, column) the user should look at.

    `char_positions` holds the position of every character of the raw script text the script was
    prepared from: `literal_char_positions(...)` for a script written as a Python literal,
    `text_positions(raw_text)` for a script read from a file.

    ShellCheck sometimes points just past the end of a line (a missing token at the newline) or
    at the line after the last one (an unterminated `if` at end of file); such positions clamp
    to the last character of that line, or of the script.

    Returns:
        The position, or None when there is no user character to point at: `char_positions` is
        None or empty (an f-string, whose text is only known at run time), or the position is
        on the `#!/bin/bash` line that `prepare_script` added.
    """
    if not char_positions or line < 1:
        return None
    lines = prepared.text.split("\n")
    if line > len(prepared.origins):
        line = len(prepared.origins)
        column = len(lines[line - 1])
    # An empty line has no character of its own: column 1 then maps to the raw character the
    # line starts at (its newline), which is where an editor puts the cursor on that line.
    column = max(1, min(column, len(lines[line - 1])))
    index = prepared.source_index(line, column)
    if index is None:
        return None
    return char_positions[max(0, min(index, len(char_positions) - 1))]


def _char_column(source: str, lines: _Lines, line: int, byte_column: int) -> int:
    """Convert an `ast` column (UTF-8 bytes from the line start) to a character count."""
    start = lines.starts[line - 1]
    end = lines.starts[line] if line < len(lines.starts) else len(source)
    encoded = source[start:end].encode("utf-8", errors="surrogatepass")
    return len(encoded[:byte_column].decode("utf-8", errors="surrogatepass"))


def _decode_concatenation(source: str, start: int, end: int) -> tuple[list[str], list[int]]:
    """Decode every string token between `start` and `end`, skipping what separates them.

    Inside an implicitly concatenated literal only whitespace, comments and backslash
    continuations can sit between two string tokens, so a scanner this small is exact and
    avoids re-tokenizing the whole module for each literal.
    """
    chars: list[str] = []
    offsets: list[int] = []
    pos = start
    while pos < end:
        char = source[pos]
        if char in " \t\f\r\n":
            pos += 1
        elif char == "#":
            match = _LINE_BREAK.search(source, pos)
            pos = match.start() if match else len(source)
        elif char == "\\" and _LINE_BREAK.match(source, pos + 1):
            pos += 1
        else:
            pos = _decode_token(source, pos, chars, offsets)
    return chars, offsets


def _decode_token(source: str, pos: int, chars: list[str], offsets: list[int]) -> int:
    """Decode one string token starting at `pos`, appending its characters; return its end."""
    match = _PREFIX_QUOTE.match(source, pos)
    if match is None or not set(match.group(1).lower()) <= {"r", "u"}:
        raise _LiteralSyntaxError(f"no str literal at offset {pos}")
    raw = "r" in match.group(1).lower()
    quote = match.group(2)
    pos = match.end()
    while not source.startswith(quote, pos):
        if pos >= len(source):
            raise _LiteralSyntaxError("unterminated string literal")
        char = source[pos]
        newline = _LINE_BREAK.match(source, pos)
        if newline:
            # The tokenizer turns "\r\n" and "\r" into "\n" before a literal is decoded.
            chars.append("\n")
            offsets.append(pos)
            pos = newline.end()
        elif char != "\\":
            chars.append(char)
            offsets.append(pos)
            pos += 1
        elif raw:
            # A raw string keeps the backslash and the character after it, even a quote.
            chars.append("\\")
            offsets.append(pos)
            pos += 1
            if pos < len(source) and not _LINE_BREAK.match(source, pos):
                chars.append(source[pos])
                offsets.append(pos)
                pos += 1
        else:
            value, after = _escape(source, pos)
            chars.extend(value)
            offsets.extend([pos] * len(value))
            pos = after
    return pos + len(quote)


def _escape(source: str, pos: int) -> tuple[str, int]:
    """Decode the escape sequence whose backslash is at `pos`: its value and where it ends."""
    nxt = pos + 1
    if nxt >= len(source):
        raise _LiteralSyntaxError("backslash at end of source")
    newline = _LINE_BREAK.match(source, nxt)
    if newline:
        return "", newline.end()
    char = source[nxt]
    if char in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[char], nxt + 1
    if char in _OCT_DIGITS:
        end = nxt
        while end < len(source) and end < nxt + 3 and source[end] in _OCT_DIGITS:
            end += 1
        return chr(int(source[nxt:end], 8)), end
    if char in _HEX_ESCAPE_LENGTHS:
        end = nxt + 1 + _HEX_ESCAPE_LENGTHS[char]
        digits = source[nxt + 1 : end]
        if len(digits) != _HEX_ESCAPE_LENGTHS[char] or not set(digits) <= _HEX_DIGITS:
            raise _LiteralSyntaxError(f"truncated \\{char} escape")
        return chr(int(digits, 16)), end
    if char == "N" and source.startswith("{", nxt + 1):
        close = source.find("}", nxt + 2)
        if close < 0:
            raise _LiteralSyntaxError("unterminated \\N{...} escape")
        try:
            return unicodedata.lookup(source[nxt + 2 : close]), close + 1
        except KeyError:
            raise _LiteralSyntaxError("unknown \\N{...} name") from None
    # An unknown escape (`\d`, `\$`) is kept as both characters; the caller places the
    # backslash here and the next loop iteration places the character after it.
    return "\\", nxt
