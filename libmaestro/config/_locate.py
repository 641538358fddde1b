"""Line numbers for keys in a TOML text, which parsed TOML values no longer carry.

`KeyLocator(text)` scans a document that has already been parsed without error and records the
first line on which each key path appears: table headers (`[executor.slurm_base]`), `key = value`
lines (also dotted keys, `time.hours = 2`) and the keys of inline tables. Because the text is
known to be valid TOML, the scanner only has to skip values correctly (strings of all four kinds,
multi-line arrays, comments); it never reports errors itself.

`Issues` collects the problems of one file with their lines, and the helpers below word them
consistently: what was found (`describe`) and what was expected (`one_of`, `unknown_key`). The
checks of single values (`choice`, `text_value`, `integer`, `strings`) and the wording of TOML
syntax errors (`syntax_issue`) live here too, so that `_schema.py` holds only the Maestro.toml
schema.
"""

from __future__ import annotations

import bisect
import datetime
import enum
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from libmaestro.errors import ConfigIssue

if TYPE_CHECKING:
    from tomlkit.exceptions import TOMLKitError

Keys = tuple[str, ...]
_E = TypeVar("_E", bound=enum.Enum)

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SIMPLE_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
_SCALAR_END = frozenset(",]}#\n\r \t")


class KeyLocator:
    """Finds the 1-based line of a key path such as `("executor", "slurm_base", "time")`."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._lines: dict[tuple[str, ...], int] = {}
        self._defined: set[tuple[str, ...]] = set()
        self.duplicates: list[int] = []  # lines that define a key or table a second time
        try:
            self._scan_document()
        except (IndexError, ValueError):
            # Only reachable for text the TOML parser accepted but this scanner does not understand;
            # the lines found so far are still right, and the rest fall back to None.
            pass

    def line(self, path: Sequence[str]) -> int | None:
        """The line of `path`, else of its nearest enclosing key or table header, else None."""
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return None

    # -- scanning ---------------------------------------------------------------------------

    def _line_of(self, pos: int) -> int:
        return bisect.bisect_right(self._line_starts, pos)

    def _record(self, path: tuple[str, ...], pos: int, *, repeatable: bool = False) -> None:
        line = self._line_of(pos)
        if path in self._defined and not repeatable:
            self.duplicates.append(line)
        self._defined.add(path)
        for end in range(1, len(path) + 1):
            self._lines.setdefault(path[:end], line)

    def _peek(self, ahead: int = 0) -> str:
        index = self._pos + ahead
        return self._text[index] if index < len(self._text) else ""

    def _skip_blank(self, *, newlines: bool) -> None:
        """Skip spaces and tabs, comments, and (if asked) line breaks."""
        while self._pos < len(self._text):
            char = self._text[self._pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self._pos += 1
            elif char == "#":
                end = self._text.find("\n", self._pos)
                self._pos = len(self._text) if end < 0 else end
            else:
                return

    def _scan_document(self) -> None:
        table: tuple[str, ...] = ()
        while True:
            self._skip_blank(newlines=True)
            if self._pos >= len(self._text):
                return
            start = self._pos
            if self._peek() == "[":
                double = self._peek(1) == "["
                self._pos += 2 if double else 1
                table = self._key()
                self._pos += 2 if double else 1
                self._record(table, start, repeatable=double)
            else:
                self._key_value(table)

    def _key_value(self, table: tuple[str, ...]) -> None:
        start = self._pos
        path = table + self._key()
        self._record(path, start)
        self._skip_blank(newlines=False)
        self._pos += 1  # "="
        self._skip_blank(newlines=False)
        self._value(path)

    def _key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            char = self._peek()
            if char in "\"'":
                parts.append(self._string())
            else:
                match = _BARE_KEY.match(self._text, self._pos)
                if match is None:
                    raise ValueError("expected a key")
                parts.append(match.group())
                self._pos = match.end()
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._pos += 1

    def _value(self, path: tuple[str, ...] | None) -> None:
        """Skip one value; record the keys of an inline table when it sits at `path`."""
        char = self._peek()
        if char in "\"'":
            self._string()
        elif char == "[":
            self._pos += 1
            while True:
                self._skip_blank(newlines=True)
                if self._peek() == "]":
                    self._pos += 1
                    return
                if self._peek() == ",":
                    self._pos += 1
                    continue
                self._value(None)
        elif char == "{":
            self._pos += 1
            while True:
                self._skip_blank(newlines=True)  # TOML 1.1 allows line breaks here
                if self._peek() == "}":
                    self._pos += 1
                    return
                if self._peek() == ",":
                    self._pos += 1
                    continue
                if path is None:
                    self._key()
                    self._skip_blank(newlines=False)
                    self._pos += 1  # "="
                    self._skip_blank(newlines=False)
                    self._value(None)
                else:
                    self._key_value(path)
        else:
            start = self._pos
            while self._pos < len(self._text) and self._text[self._pos] not in _SCALAR_END:
                self._pos += 1
            if self._pos == start:  # never loop without progress on text we do not understand
                raise ValueError("expected a value")

    def _string(self) -> str:
        """Read a basic, literal or multi-line string and return its value (for keys)."""
        quote = self._text[self._pos]
        if self._text.startswith(quote * 3, self._pos):
            end = self._text.index(quote * 3, self._pos + 3)
            if quote == '"':
                while self._text[end - 1] == "\\" and not _escaped_backslash(self._text, end - 1):
                    end = self._text.index(quote * 3, end + 1)
            # Up to two more quotes may close the string: `""""a""""` is valid TOML.
            while self._text.startswith(quote, end + 3):
                end += 1
            self._pos = end + 3
            return ""
        if quote == "'":
            end = self._text.index("'", self._pos + 1)
            value = self._text[self._pos + 1 : end]
            self._pos = end + 1
            return value
        chars: list[str] = []
        index = self._pos + 1
        while self._text[index] != '"':
            char = self._text[index]
            if char == "\\":
                code = self._text[index + 1]
                if code in "uU":
                    width = 4 if code == "u" else 8
                    chars.append(chr(int(self._text[index + 2 : index + 2 + width], 16)))
                    index += 2 + width
                    continue
                chars.append(_SIMPLE_ESCAPES.get(code, code))
                index += 2
                continue
            chars.append(char)
            index += 1
        self._pos = index + 1
        return "".join(chars)


def _escaped_backslash(text: str, index: int) -> bool:
    """Whether the backslash at `index` is itself escaped (preceded by an odd run of them)."""
    run = 0
    while index - 1 - run >= 0 and text[index - 1 - run] == "\\":
        run += 1
    return run % 2 == 1


class Issues:
    """Collects `ConfigIssue`s for one file, locating each key path in its text."""

    def __init__(self, path: Path, locator: KeyLocator) -> None:
        self.path = path
        self.locator = locator
        self.items: list[ConfigIssue] = []

    def add(self, keys: Keys, message: str, *, index: int | None = None) -> None:
        key = ".".join(key_text(part) for part in keys)
        if index is not None:
            key += f"[{index}]"
        self.items.append(ConfigIssue(self.path, self.locator.line(keys), key, message))

    def check_keys(self, table: Mapping[str, Any], keys: Keys, allowed: Sequence[str]) -> None:
        for key in table:
            if key not in allowed:
                self.add((*keys, key), unknown_key(key, allowed))


def quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def key_text(key: str) -> str:
    """A key as TOML spells it: bare when it can be, quoted otherwise."""
    return key if _BARE_KEY.fullmatch(key) else quote(key)


def one_of(allowed: Sequence[str]) -> str:
    quoted = [quote(item) for item in allowed]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    folded = [choice for choice in choices if choice.lower() == word.lower()]
    import difflib  # only for a mistake: not paid by every program's start

    close = folded or difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {quote(close[0])}?" if close else ""


def unknown_key(key: str, allowed: Sequence[str], *, what: str = "key") -> str:
    return (
        f"unknown {what} {quote(key)}{did_you_mean(key, allowed)} (allowed: {', '.join(allowed)})"
    )


def describe(value: object) -> str:
    """Name a value for "got ..." in messages, with its TOML type."""
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the float {value}"
    if isinstance(value, str):
        return "an empty string" if not value else f"the string {quote(value)}"
    if isinstance(value, list):
        count = len(value)
        return "an empty array" if not count else f"an array of {count} item{'s' * (count > 1)}"
    if isinstance(value, dict):
        return "an empty table" if not value else "a table"
    if isinstance(value, datetime.date | datetime.time):
        return f"the date/time {value.isoformat()}"
    return f"a value of type {type(value).__name__}"


# -- checks of single values: each returns the value, or None after recording an issue ----


def choice(
    value: object, keys: Keys, issues: Issues, kind: type[_E], *, index: int | None = None
) -> _E | None:
    """One of the string values of `kind`, spelled exactly (did-you-mean on a near miss)."""
    allowed = [str(member.value) for member in kind]
    if isinstance(value, str) and value in allowed:
        return kind(value)
    hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
    issues.add(keys, f"expected {one_of(allowed)}, got {describe(value)}{hint}", index=index)
    return None


def text_value(value: object, keys: Keys, issues: Issues, example: str) -> str | None:
    """A string that is not empty or blank."""
    if isinstance(value, str) and value.strip():
        return value
    form = f"{key_text(keys[-1])} = {quote(example)}"
    issues.add(keys, f"expected a non-empty string like {form}, got {describe(value)}")
    return None


def integer(value: object, keys: Keys, issues: Issues, *, minimum: int) -> int | None:
    """An integer of at least `minimum`; TOML booleans are rejected although Python's are ints."""
    if not isinstance(value, bool) and isinstance(value, int) and value >= minimum:
        return value
    kind = "a positive" if minimum == 1 else "a non-negative"
    example = f"{key_text(keys[-1])} = {max(minimum, 1) * 4}"
    hint = " (a boolean is not a number)" if isinstance(value, bool) else ""
    issues.add(keys, f"expected {kind} integer like {example}, got {describe(value)}{hint}")
    return None


def positive(value: object, keys: Keys, issues: Issues) -> int | None:
    return integer(value, keys, issues, minimum=1)


def non_negative(value: object, keys: Keys, issues: Issues) -> int | None:
    return integer(value, keys, issues, minimum=0)


def strings(value: object, keys: Keys, issues: Issues, example: str) -> list[str] | None:
    """An array of non-empty strings (`example` shows the expected form)."""
    if not isinstance(value, list):
        issues.add(keys, f"expected an array like {example}, got {describe(value)}")
        return None
    good = True
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            issues.add(
                keys,
                f"expected a non-empty string in {example}, got {describe(item)}",
                index=index,
            )
            good = False
    return value if good else None


def syntax_issue(exc: TOMLKitError, text: str, path: Path) -> ConfigIssue:
    """Turn tomlkit's error into an issue: its line, its message without the position suffix."""
    from tomlkit.exceptions import ParseError  # only a file that does not parse needs tomlkit

    if isinstance(exc, ParseError):
        line: int | None = exc.line
    else:  # tomlkit reports a key defined twice across tables without a position
        line = next(iter(KeyLocator(text).duplicates), None)
    detail = re.sub(r" at line \d+ col \d+$", "", str(exc)).replace("'\\x00'", "end of file")
    where = f" (column {exc.col})" if isinstance(exc, ParseError) else ""
    expected = (
        "define each key and table only once"
        if "already exists" in detail
        else 'expected TOML syntax such as key = "value", [args] or [executor.name]'
    )
    message = f"invalid TOML: {detail.rstrip('.')}{where}; {expected} (see https://toml.io)"
    return ConfigIssue(file=path, line=line, key="", message=message)
