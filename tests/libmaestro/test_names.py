"""Tests for libmaestro._names and session naming: readable, unique, reproducible with a seed."""

from __future__ import annotations

import random
import re
from pathlib import Path

from libmaestro._names import ADJECTIVES, ANIMALS, random_process_id, readable_name
from libmaestro.process import validate_process_name
from libmaestro.session import WORK_DIR_NAME, Session

NAME = re.compile(r"[a-z]+_[a-z]+(_[0-9]+)?\Z")


def draw(count: int, rng: random.Random | None) -> list[str]:
    taken: set[str] = set()
    names = []
    for _ in range(count):
        name = readable_name(taken.__contains__, rng=rng)
        taken.add(name)
        names.append(name)
    return names


def test_readable_name_100000_distinct_mostly_two_words() -> None:
    """100,000 names drawn against a growing taken-set should all differ, most as adj_animal."""
    names = draw(100_000, random.Random(2024))
    assert len(set(names)) == 100_000
    assert all(NAME.match(name) for name in names)
    two_word = [name for name in names if name.count("_") == 1]
    assert len(two_word) > 50_000
    assert all(
        name.split("_")[0] in ADJECTIVES and name.split("_")[1] in ANIMALS for name in two_word
    )


def test_readable_name_default_randomness_distinct() -> None:
    names = draw(5_000, None)
    assert len(set(names)) == 5_000
    assert all(NAME.match(name) for name in names)


def test_readable_name_seeded_rng_is_deterministic() -> None:
    assert draw(200, random.Random(7)) == draw(200, random.Random(7))
    assert draw(200, random.Random(7)) != draw(200, random.Random(8))


def test_readable_name_skips_taken_names() -> None:
    first = readable_name(lambda _: False, rng=random.Random(3))
    second = readable_name(lambda n: n == first, rng=random.Random(3))
    assert second != first


def test_readable_name_crowded_space_adds_number() -> None:
    name = readable_name(lambda n: n.count("_") == 1, rng=random.Random(1))
    assert re.fullmatch(r"[a-z]+_[a-z]+_[0-9]+", name)


def test_random_process_id_is_a_valid_distinct_process_name() -> None:
    ids = {random_process_id() for _ in range(1000)}
    assert len(ids) == 1000
    for pid in ids:
        assert validate_process_name(pid) == pid


def test_session_create_twice_gives_two_existing_directories(tmp_path: Path) -> None:
    first = Session.create(base=tmp_path)
    second = Session.create(base=tmp_path)
    assert first.name != second.name
    assert first.directory != second.directory
    for session in (first, second):
        assert session.directory.is_dir()
        assert session.directory == tmp_path / WORK_DIR_NAME / session.name
        assert NAME.match(session.name)
