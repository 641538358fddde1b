"""The run history's writer: one background thread that writes to the state store in batches.

Process threads only queue what happened and go on; the writer gathers what arrives during
`Writer.INTERVAL` into one transaction. Consecutive writes of one kind that can be written
together (`Joinable`, such as the starts of a fan-out's steps) are handed over together, so the
store writes them with one statement per table.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from libmaestro.errors import log_unexpected
from libmaestro.state import SqliteStateStore, StateError

log = logging.getLogger("libmaestro.history")


class Joinable:
    """A queued write that is done together with the writes of its own type queued right
    after it: the writer calls `write_together` on the first with all of them, in order."""

    __slots__ = ()

    def write_together(self, writes: Sequence[Any]) -> None:
        raise NotImplementedError

    def __call__(self) -> None:
        self.write_together([self])


def _runs(operations: list[Callable[[], object]]) -> Iterator[list[Callable[[], object]]]:
    """The operations in order, consecutive `Joinable`s of one type in one list."""
    run: list[Callable[[], object]] = []
    for operation in operations:
        if run and isinstance(operation, Joinable) and type(operation) is type(run[0]):
            run.append(operation)
            continue
        if run:
            yield run
        run = [operation]
    if run:
        yield run


class Writer:
    """Writes to the store from one background thread, many records per transaction.

    Process threads only queue what happened and go on: a 1,000-process fan-out then costs a
    few dozen commits instead of thousands, each waited for by a process. Order is kept (one
    queue, one thread). A crash loses at most the last `INTERVAL` of records, which only makes
    a later `--resume` run those steps again: a success is never recorded without its verified
    outputs, because both are written by one operation.
    """

    INTERVAL = 0.1  # seconds to gather writes before a commit

    def __init__(
        self, store: SqliteStateStore, on_commit: Callable[[], object] | None = None
    ) -> None:
        self.store = store
        self._on_commit = on_commit  # one more write for each commit, after the queued ones
        self._queue: list[Callable[[], object]] = []
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._hurry = threading.Event()  # set by flush: the gathering interval ends at once
        self._thread = threading.Thread(target=self._loop, name="maestro-history", daemon=True)
        self._thread.start()

    def submit(self, operation: Callable[[], object]) -> None:
        with self._cond:
            self._queue.append(operation)
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
            # Let more writes arrive, for one commit; unless someone waits for them (`flush`).
            # An Event, not the condition: every `submit` notifies that, and would wake this
            # thread for each write.
            self._hurry.wait(self.INTERVAL)
            with self._cond:
                self._hurry.clear()
                operations, self._queue = self._queue, []
                self._busy = True
            try:
                with self.store.batch():
                    if self._on_commit is not None:
                        operations.append(self._on_commit)
                    for run in _runs(operations):
                        try:
                            first = run[0]
                            if len(run) > 1 and isinstance(first, Joinable):
                                first.write_together(run)
                            else:
                                first()
                        except StateError as exc:  # one refused record must not lose the rest
                            log.warning("run history: %s", exc)
                        except Exception:  # a bug: say so, and keep the thread for the rest
                            # A dead writer left `flush` waiting for ever at the end of the run.
                            log_unexpected(log, "run history: a record could not be written")
            except StateError as exc:
                log.warning("run history: %d records not written: %s", len(operations), exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self) -> None:
        """Return once everything queued so far is committed."""
        with self._cond:
            while (self._queue or self._busy) and self._thread.is_alive():
                self._hurry.set()  # commit now instead of at the end of the interval
                self._cond.wait(0.5)

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._hurry.set()
        self._thread.join(timeout=5)
