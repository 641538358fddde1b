"""Dataflow parallelism: `parallelize` for fan-outs and `Dag` for graphs of dependent steps.

The Python counterparts of the original's `parallelize` and `dagger!`. Both run on the session's
one scheduler (see `libmaestro.scheduler`), so nested fan-outs share one bounded pool of threads
and the machine's CPU budget, and an interrupt stops them all. A failed item never cancels its
siblings; a failed DAG node marks what depends on it as not run, while unrelated branches finish.

    results = maestro.parallelize(maestro.inputs("samples"), align)   # value or exception each
    maestro.raise_failures(results)                                   # one grouped error

    dag = maestro.Dag()
    prepared = dag.node("tleap", tleap, path, molecule)
    a1 = dag.node("analysis_1", analysis_1, prepared)
    a2 = dag.node("analysis_2", analysis_2, prepared)
    a3 = dag.node("analysis_3", analysis_3, a2)
    done = dag.run()          # done["analysis_3"], done.failed, done.not_run
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from libmaestro.errors import MaestroError, ProcessInterruptedError
from libmaestro.scheduler import Batch, Scheduler, StoppedError
from libmaestro.session import current_session

T = TypeVar("T")
R = TypeVar("R")


_FAILURES_SHOWN = 5  # in full; the rest are counted (each has its own log anyway)


class NotRunError(MaestroError):
    """An item or node that never ran: the session stopped, or something it needs failed."""


class FanOutError(ExceptionGroup, MaestroError):
    """Several items of a fan-out failed; `exceptions` holds each one, in item order."""

    def __new__(cls, message: str, exceptions: Sequence[Exception]) -> FanOutError:
        return super().__new__(cls, message, list(exceptions))

    def __init__(self, message: str, exceptions: Sequence[Exception]) -> None:
        super().__init__(message, list(exceptions))
        # Interrupted runs end as interrupted (130), anything else as a failure (1).
        interrupted = all(isinstance(e, ProcessInterruptedError | NotRunError) for e in exceptions)
        self.exit_code = 130 if interrupted else 1

    def derive(self, excs: Sequence[Exception]) -> FanOutError:  # type: ignore[override]
        return FanOutError(self.message, excs)

    def __str__(self) -> str:
        lines = [self.message]
        for exc in self.exceptions[:_FAILURES_SHOWN]:
            text = str(exc) or type(exc).__name__
            first, *rest = text.splitlines()
            lines.append(f"  - {first}")
            lines.extend(f"    {line}" for line in rest)
        if len(self.exceptions) > _FAILURES_SHOWN:
            lines.append(f"  ... and {len(self.exceptions) - _FAILURES_SHOWN} more")
        return "\n".join(lines)


def raise_failures(results: Iterable[T | Exception], *, what: str = "items") -> list[T]:
    """Raise one FanOutError listing every exception among `results`; else return them.

    The return value is the same results, typed as values: with `align` returning a Path,
    `raise_failures(parallelize(samples, align))` is a `list[Path]`, where `parallelize` gave
    `list[Path | Exception]`.
    """
    items = list(results)
    failures = [r for r in items if isinstance(r, Exception)]
    if failures:
        of = f" of {len(items)}" if isinstance(results, Sequence) else ""
        raise FanOutError(f"{len(failures)}{of} {what} failed", failures)
    return cast(list[T], items)


def _scheduler() -> Scheduler:
    return current_session().scheduler


def _not_started() -> NotRunError:
    return NotRunError("not started: the session is stopping")


def parallelize(
    items: Iterable[T], fn: Callable[[T], R], *, max_workers: int | None = None
) -> list[R | Exception]:
    """Run `fn` on every item concurrently; one result per item, in input order.

    Each result is `fn(item)`'s value, or the exception it raised: a failed item never cancels
    its siblings. Use `raise_failures(results)` to turn failures into one error.

    Args:
        max_workers: at most this many items of this call at once (the session's CPU budget and
            executor limits apply on top).
    """
    scheduler = _scheduler()
    values = list(items)
    results: list[R | Exception] = [_not_started() for _ in values]
    batch = scheduler.open_batch(limit=max_workers)

    def task(index: int, item: T) -> Callable[[], None]:
        def run() -> None:
            try:
                results[index] = fn(item)
            except Exception as exc:  # the caller gets it back as this item's result
                results[index] = exc

        return run

    batch.expected = len(values)
    try:
        for index, item in enumerate(values):
            scheduler.add(batch, task(index, item))
    except StoppedError:
        scheduler.cancel(batch)
    scheduler.settle(batch)
    return results


class Node:
    """A named step of a Dag; pass it as an argument to another node to depend on its result."""

    __slots__ = ("args", "dependencies", "fn", "kwargs", "name")

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        dependencies: tuple[Node, ...],
    ) -> None:
        self.name = name
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.dependencies = dependencies  # the Nodes among its arguments, each once

    def __repr__(self) -> str:
        return f"Node({self.name!r})"


def _dependencies(value: Any) -> Iterator[Node]:
    if isinstance(value, Node):
        yield value
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _dependencies(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _dependencies(item)


def _resolve(value: Any, done: Mapping[str, Any]) -> Any:
    if isinstance(value, Node):
        return done[value.name]
    if isinstance(value, list | tuple | set | frozenset):
        items = [_resolve(item, done) for item in value]
        # A NamedTuple (a sample record, say) takes its fields as separate arguments:
        # `type(value)(items)` raised TypeError for every node given one, Nodes inside or not.
        if isinstance(value, tuple) and hasattr(value, "_make"):
            return value._make(items)
        return type(value)(items)
    if isinstance(value, dict):
        return {key: _resolve(item, done) for key, item in value.items()}
    return value


@dataclass
class DagResult(Mapping[str, Any]):
    """Each node's value by name; `failed` and `not_run` say what went wrong where."""

    succeeded: dict[str, Any] = field(default_factory=dict)  # name -> value
    failed: dict[str, Exception] = field(default_factory=dict)
    not_run: dict[str, NotRunError] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        if name in self.succeeded:
            return self.succeeded[name]
        if name in self.failed:
            raise KeyError(f"node {name!r} failed: {self.failed[name]}")
        if name in self.not_run:
            raise KeyError(f"node {name!r} did not run: {self.not_run[name]}")
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.succeeded)

    def __len__(self) -> int:
        return len(self.succeeded)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_run

    def raise_failures(self) -> None:
        """Raise one FanOutError with every failed node (nodes that did not run are listed)."""
        problems: list[Exception] = [*self.failed.values(), *self.not_run.values()]
        if problems:
            raise FanOutError(
                f"{len(self.failed)} node(s) failed, {len(self.not_run)} did not run", problems
            )


class Dag:
    """A graph of named steps: each starts as soon as the nodes it takes as arguments are done.

    Independent nodes run concurrently on the session's scheduler. A failed node marks every
    node downstream of it as not run (with the reason), while unrelated branches finish.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}

    def node(self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Node:
        """Declare node `name` computing `fn(*args, **kwargs)`; Nodes among the arguments (also
        inside lists, tuples and dicts) are replaced by their results."""
        if name in self._nodes:
            raise MaestroError(f"the DAG already has a node named {name!r}; use unique names")
        dependencies = tuple(dict.fromkeys(_dependencies((args, kwargs))))
        for dependency in dependencies:
            if self._nodes.get(dependency.name) is not dependency:
                raise MaestroError(
                    f"node {name!r} depends on {dependency.name!r}, which belongs to another Dag"
                )
        created = Node(name, fn, args, kwargs, dependencies)
        self._nodes[name] = created
        return created

    @property
    def nodes(self) -> Mapping[str, Node]:
        return dict(self._nodes)

    def edges(self) -> list[tuple[str, str]]:
        """(dependency, dependent) pairs, for pictures of the graph."""
        return [
            (dependency.name, node.name)
            for node in self._nodes.values()
            for dependency in node.dependencies
        ]

    def run(self) -> DagResult:
        """Run every node (nodes are declared in dependency order, so there are no cycles)."""
        scheduler = _scheduler()
        result = DagResult()
        needs = {name: [d.name for d in n.dependencies] for name, n in self._nodes.items()}
        dependents: dict[str, list[str]] = {name: [] for name in self._nodes}
        for name, deps in needs.items():
            for dependency in deps:
                dependents[dependency].append(name)
        waiting = {name: len(deps) for name, deps in needs.items()}
        lock = threading.Lock()
        batch: Batch = scheduler.open_batch()
        batch.expected = len(self._nodes)

        def skip_downstream(name: str, reason: str) -> int:
            skipped = 0
            stack = list(dependents[name])
            while stack:
                child = stack.pop()
                if child in result.not_run:
                    continue
                result.not_run[child] = NotRunError(f"not run: {reason}")
                skipped += 1
                stack.extend(dependents[child])
            return skipped

        def submit(name: str) -> None:
            try:
                scheduler.add(batch, lambda: run_node(name))
            except StoppedError:
                scheduler.cancel(batch)

        def run_node(name: str | None) -> None:
            while name is not None:
                name = run_one(name)

        def run_one(name: str) -> str | None:
            """Run node `name`; returns a node made ready by it, for this thread to run next."""
            node = self._nodes[name]
            try:
                with lock:
                    args = _resolve(node.args, result.succeeded)
                    kwargs = _resolve(node.kwargs, result.succeeded)
                value = node.fn(*args, **kwargs)
            except Exception as exc:
                with lock:
                    result.failed[name] = exc
                    skipped = skip_downstream(name, f"{name!r} failed")
                scheduler.forgo(batch, skipped)
                return None
            with lock:
                result.succeeded[name] = value
                ready = []
                for child in dependents[name]:
                    waiting[child] -= 1
                    if waiting[child] == 0 and child not in result.not_run:
                        ready.append(child)
            if not ready:
                return None
            # The first runs in this thread, the others in any: a chain then runs in one thread
            # instead of waking another for each step.
            for child in ready[1:]:
                submit(child)
            if scheduler.take_over(batch):
                return ready[0]
            submit(ready[0])
            return None

        for name, count in waiting.items():
            if count == 0:
                submit(name)
        scheduler.settle(batch)
        for name in self._nodes:
            if name not in result.succeeded and name not in result.failed:
                result.not_run.setdefault(name, _not_started())
        return result
