"""libmaestro's public surface is exactly its __all__, and the seed's names are in it."""

from __future__ import annotations

import libmaestro

SEED_NAMES = {
    "Process", "arg", "inputs", "executor", "main", "process", "LocalExecutor", "SlurmExecutor",
    "SlurmConfig", "Container", "Memory", "MemoryConfig", "MailType", "StagingMode",
}  # fmt: skip


def test_all_lists_every_public_name() -> None:
    public = {name for name in vars(libmaestro) if not name.startswith("_")}
    public |= set(libmaestro._LAZY)  # imported on first use (module __getattr__)
    # Submodules and `from __future__ import annotations` are attributes, not API.
    incidental = {
        name
        for name in public
        if type(getattr(libmaestro, name)).__name__ in {"module", "_Feature"}
    }
    assert sorted(public - incidental) == sorted(libmaestro.__all__)


def test_all_contains_the_seed_api() -> None:
    assert set(libmaestro.__all__) >= SEED_NAMES


def test_star_import_gives_the_seed_api() -> None:
    namespace: dict[str, object] = {}
    exec("from libmaestro import *", namespace)
    assert set(namespace) >= SEED_NAMES
