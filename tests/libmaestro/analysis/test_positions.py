"""Tests for libmaestro.analysis.positions: every script character back to its source position."""

from __future__ import annotations

import ast
import warnings

import pytest

from libmaestro.analysis.positions import literal_char_positions, text_positions, to_source
from libmaestro.process import prepare_script


def script_node(source: str) -> ast.expr:
    """The value of the first `script=` keyword in `source`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "script":
            return node.value
    raise AssertionError("no script= keyword in the test source")


def positions_of(source: str) -> tuple[str, list[tuple[int, int]]]:
    with warnings.catch_warnings():
        # "\d" is an invalid escape: Python warns but keeps both characters, which is tested.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        node = script_node(source)
    assert isinstance(node, ast.Constant)
    assert isinstance(node.value, str)
    positions = literal_char_positions(source, node)
    assert positions is not None
    assert len(positions) == len(node.value)
    return node.value, positions


def char_at(source: str, position: tuple[int, int]) -> str:
    line, column = position
    text = source.split("\n")[line - 1]
    return text[column - 1] if column <= len(text) else "\n"


def assert_plain_chars_match(source: str, value: str, positions: list[tuple[int, int]]) -> None:
    """Each value character that is not an escape's product sits at its own position."""
    for char, position in zip(value, positions, strict=True):
        found = char_at(source, position)
        assert found in (char, "\\"), (char, position, found)


# --- literal_char_positions: literal forms ------------------------------------------------------


def test_literal_char_positions_script_starting_after_the_opening_quote() -> None:
    source = "\n".join([
        "from libmaestro import process",
        "",
        "sort = process(",
        '    name="sort",',
        '    script="""',
        '        samtools sort "$bam" > "$out"',
        "        echo done",
        '    """,',
        ")",
    ])  # fmt: skip
    value, positions = positions_of(source)
    assert positions[0] == (5, 15)  # the newline right after the opening """
    assert positions[value.index("samtools")] == (6, 9)
    assert positions[value.index("$bam")] == (6, 24)
    assert positions[value.index("echo")] == (7, 9)
    assert positions[-1] == (8, 4)  # last indentation space before the closing """
    assert_plain_chars_match(source, value, positions)


def test_literal_char_positions_script_starting_on_the_quote_line() -> None:
    source = 'p = process(name="a", script="""cat "$x" > "$y"\n    wc -l "$y"\n""")\n'
    value, positions = positions_of(source)
    assert positions[0] == (1, 33)  # the c of cat, right after """
    assert positions[value.index("$y")] == (1, 45)
    assert positions[value.index("wc")] == (2, 5)
    assert positions[-1] == (2, 15)  # the newline ending line 2
    assert_plain_chars_match(source, value, positions)


def test_literal_char_positions_implicit_concatenation_across_lines() -> None:
    source = "\n".join([
        "p = process(",
        "    script=(",
        "        'echo $a\\n'  # it's a comment with \"quotes\"",
        '        "echo $b\\n" \\',
        "        R'''raw \\d''' u\"end\"",
        "    ),",
        ")",
    ])  # fmt: skip
    value, positions = positions_of(source)
    assert value == "echo $a\necho $b\nraw \\dend"
    assert positions[value.index("$a")] == (3, 15)
    assert positions[value.index("\n")] == (3, 17)  # the backslash of \n
    assert positions[value.index("$b")] == (4, 15)
    assert positions[value.index("raw")] == (5, 13)
    assert positions[value.index("\\d")] == (5, 17)
    assert positions[value.index("d")] == (5, 18)
    assert positions[value.index("end")] == (5, 25)
    assert_plain_chars_match(source, value, positions)


def test_literal_char_positions_escapes_that_change_length() -> None:
    body = r"a\tb\\c\'d\"e\x41\101\u00e9\U0001F600\N{BULLET}\
f\dg"
    source = f'p = process(script="{body}")\n'
    value, positions = positions_of(source)
    assert value == "a\tb\\c'd\"eAA\u00e9\U0001f600\u2022f\\dg"
    col = 21  # the a
    expected_columns = {
        "a": col,
        "\t": col + 1,
        "b": col + 3,
        "\\": col + 4,
        "c": col + 6,
        "'": col + 7,
        "d": col + 9,
        '"': col + 10,
        "e": col + 12,
    }
    for char, column in expected_columns.items():
        assert positions[value.index(char)] == (1, column), char
    assert positions[9:16] == [
        (1, 34),  # \x41
        (1, 38),  # \101
        (1, 42),  # \u00e9
        (1, 48),  # \U0001F600
        (1, 58),  # \N{BULLET}
        (2, 1),  # f: the backslash-newline produced nothing
        (2, 2),  # \d keeps its backslash...
    ]
    assert positions[16:] == [(2, 3), (2, 4)]  # ...and its d, then g


def test_literal_char_positions_raw_strings_keep_every_character() -> None:
    source = "p = process(script=r'a\\n\\'\\x41')\n"
    value, positions = positions_of(source)
    assert value == "a\\n\\'\\x41"
    assert positions == [(1, column) for column in range(22, 31)]


def test_literal_char_positions_single_and_triple_single_quotes_with_prefixes() -> None:
    source = "x = 1\np = process(script=U'''tab\there''' 'and\\tmore')\n"
    value, positions = positions_of(source)
    assert value == "tab\there" + "and\tmore"
    assert positions[value.index("\t")] == (2, 27)  # a real tab character in the source
    assert positions[value.index("and")] == (2, 37)
    assert positions[value.rindex("\t")] == (2, 40)  # the \t escape


def test_literal_char_positions_non_ascii_before_the_literal() -> None:
    # ast reports col_offset in UTF-8 bytes: "é" and "😀" are 2 and 4 bytes but one column each.
    source = 'p = process(name="é😀", script="echo $x")\n'
    node = script_node(source)
    assert isinstance(node, ast.Constant)
    assert node.col_offset == 34  # bytes, of the opening quote
    value, positions = positions_of(source)
    assert positions[0] == (1, 32)  # the e of echo, counted in characters
    assert positions[value.index("$x")] == (1, 37)
    assert_plain_chars_match(source, value, positions)


def test_literal_char_positions_tabs_in_the_literal() -> None:
    source = 'p = process(script="""\n\tif true; then\n\t\techo "$x"\n\tfi\n""")\n'
    value, positions = positions_of(source)
    assert positions[value.index("if")] == (2, 2)
    assert positions[value.index("echo")] == (3, 3)
    assert positions[value.index("$x")] == (3, 9)
    assert_plain_chars_match(source, value, positions)


def test_literal_char_positions_crlf_source() -> None:
    source = 'p = process(script="""\r\n  echo a\r\n  echo $b\r\n""")\r\n'
    value, positions = positions_of(source)
    assert value == "\n  echo a\n  echo $b\n"
    assert positions[0] == (1, 23)  # the \r of the first \r\n
    assert positions[value.index("$b")] == (3, 8)


@pytest.mark.parametrize(
    "expression",
    ['f"echo {x}"', "b'echo'", "42", '"a" + "b"', 'f"a" "b"', "name"],
)
def test_literal_char_positions_none_for_non_str_literals(expression: str) -> None:
    source = f"p = process(script={expression})\n"
    assert literal_char_positions(source, script_node(source)) is None


def test_literal_char_positions_none_for_a_node_from_another_source() -> None:
    node = script_node('p = process(script="echo a")\n')
    assert literal_char_positions('p = process(script="echo b")\n', node) is None


# --- text_positions ------------------------------------------------------------------------------


def test_text_positions_lines_and_columns_of_every_character() -> None:
    assert text_positions("ab\n\tc\r\nd") == [
        (1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3), (2, 4), (3, 1),
    ]  # fmt: skip
    assert text_positions("") == []


# --- to_source ----------------------------------------------------------------------------------


def test_to_source_maps_every_prepared_character_of_a_literal() -> None:
    source = "\n".join([
        "p = process(",
        '    script="""',
        "        if [ -f \"$bam\" ]; then",
        "",
        "        \tsamtools index \"$bam\"",
        "        fi",
        '    """,',
        ")",
    ])  # fmt: skip
    value, positions = positions_of(source)
    prepared = prepare_script(value)
    prepared_lines = prepared.text.split("\n")
    assert prepared_lines[1] == 'if [ -f "$bam" ]; then'
    for line_number, text in enumerate(prepared_lines[1:-1], start=2):
        for column, char in enumerate(text, start=1):
            position = to_source(prepared, positions, line_number, column)
            assert position is not None
            assert char_at(source, position) == char, (line_number, column)
    assert to_source(prepared, positions, 4, 2) == (5, 10)  # the s of samtools after the tab


def test_to_source_clamps_past_the_end_of_a_line_and_of_the_script() -> None:
    source = 'p = process(script="""\n    echo a\n    echo bc\n""")\n'
    value, positions = positions_of(source)
    prepared = prepare_script(value)
    assert to_source(prepared, positions, 2, 7) == (2, 10)  # the newline -> the a
    assert to_source(prepared, positions, 2, 99) == (2, 10)
    assert to_source(prepared, positions, 4, 1) == (3, 11)  # after the last line -> the c
    assert to_source(prepared, positions, 2, 0) == (2, 5)


def test_to_source_none_without_a_user_character() -> None:
    source = 'p = process(script="echo a")\n'
    value, positions = positions_of(source)
    prepared = prepare_script(value)
    assert to_source(prepared, positions, 1, 3) is None  # the added shebang
    assert to_source(prepared, None, 2, 1) is None  # an f-string: no character map
    assert to_source(prepared, positions, 0, 1) is None


def test_to_source_script_file_positions() -> None:
    raw = "\n\n  # sort the reads\n  samtools sort\t$bam\n"
    prepared = prepare_script(raw)
    assert prepared.text == "#!/bin/bash\n# sort the reads\nsamtools sort\t$bam\n"
    positions = text_positions(raw)
    assert to_source(prepared, positions, 3, 15) == (4, 17)  # $bam, after the tab
    assert to_source(prepared, positions, 2, 1) == (3, 3)
