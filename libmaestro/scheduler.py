"""One scheduler per session: bounded worker threads, and slots that bound running processes.

Two separate limits, because they bound different things:

- **Process slots.** Every process acquires a slot before it starts. Local processes draw on the
  machine's CPU budget (`max_parallel`, default: the CPU count), each weighing its executor's
  `cpus` (default 1), so two 2-CPU jobs never share a 2-core machine. Any executor may also set
  `max_parallel`: at most that many of its processes at once (for Slurm, queued + running).
- **Worker threads.** `parallelize` and the DAG helper run user functions on a pool shared by
  the whole session, so nested fan-outs do not multiply threads; 10,000 items use at most
  `workers` threads. A thread that waits for its own fan-out runs that fan-out's items itself
  meanwhile, so nested fan-outs cannot deadlock even when every worker is busy.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from libmaestro.config.model import ExecutorConfig, ExecutorType

Task = Callable[[], None]

# Waits are sliced so that Ctrl-C reaches a main thread blocked here promptly.
_WAIT_SLICE = 0.25
# An idle worker exits after this long: a finished session (or a program that runs many
# sessions, like a test suite or a notebook) must not keep `workers` threads alive for ever.
_IDLE_EXIT = 5.0


MAX_WORKERS = 256  # threads a session's scheduler may have, whatever is asked


class StoppedError(Exception):
    """The scheduler is stopping: the caller must not start anything."""


@dataclass(slots=True)
class Batch:
    """A group of tasks (one `parallelize` call or one DAG) that may grow while it runs."""

    limit: int | None = None  # at most this many of its tasks at once (parallelize max_workers)
    queue: deque[Task] = field(default_factory=deque)
    expected: int = 0  # tasks that will have run when the batch is complete
    finished: int = 0
    running: int = 0
    cancelled: bool = False

    def claimable(self) -> bool:
        return (
            bool(self.queue)
            and not self.cancelled
            and (self.limit is None or self.running < self.limit)
        )

    @property
    def complete(self) -> bool:
        return self.finished >= self.expected

    @property
    def unstarted(self) -> int:
        """Its tasks not begun: queued, or (DAG nodes) not even queued yet."""
        return max(0, self.expected - self.finished - self.running)


class Scheduler:
    """See the module docstring. All state is guarded by one condition variable."""

    def __init__(self, *, cpu_budget: int | None = None, workers: int | None = None) -> None:
        self.cpu_budget = max(1, cpu_budget or os.cpu_count() or 1)
        # Local processes need no more threads than CPUs: measured, a third thread for two CPUs
        # (to stage the next process while two run) made a fan-out 30% slower, every thread
        # taking its turn at the GIL. Remote executors (Slurm) ask for more, through `workers`.
        self.workers = max(2, workers or self.cpu_budget)
        self._mutex = threading.RLock()
        self._cond = threading.Condition(self._mutex)  # task queues changed, batches finished
        # What a caller waiting for its batch without running tasks waits for: a batch ended.
        self._settled = threading.Condition(self._mutex)
        self._batches: list[Batch] = []
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._cpus_in_use = 0
        self._per_executor: dict[str, int] = {}
        self._stopping = False
        self.never_started = 0  # tasks dropped by stop(): fan-out items and DAG nodes
        # Executor name -> the threads waiting for a slot, in the order they asked.
        self._waiting: dict[str, deque[threading.Condition]] = {}

    # ----------------------------------------------------------------------------- slots
    def _weight(self, executor: ExecutorConfig) -> int:
        if executor.type is not ExecutorType.LOCAL:
            return 0
        # A process asking for more CPUs than the machine has runs alone rather than never.
        return min(max(1, executor.cpus or 1), self.cpu_budget)

    def acquire(self, executor: ExecutorConfig) -> None:
        """Block until a process of `executor` may start; StoppedError if the session stops.

        Processes of one executor start in the order they asked (first come, first served), so
        a fan-out's items start in order and none waits for ever behind later ones; processes
        of different executors never wait for each other's turn.
        """
        weight = self._weight(executor)
        name = executor.name
        with self._cond:
            if self._stopping:
                raise StoppedError
            if not self._waiting.get(name) and self._fits(executor, weight):
                self._take(name, weight)  # nobody ahead and room now: the common case
                return
            # Each waiter has its own condition (on the shared lock), so a slot that frees
            # wakes the one thread first in line, not every thread waiting for a slot.
            waiter = threading.Condition(self._mutex)
            queue = self._waiting.setdefault(name, deque())
            queue.append(waiter)
            try:
                while True:
                    if self._stopping:
                        raise StoppedError
                    if queue[0] is waiter and self._fits(executor, weight):
                        self._take(name, weight)
                        return
                    waiter.wait(_WAIT_SLICE)
            finally:
                queue.remove(waiter)
                if queue:
                    queue[0].notify()  # the next in line may go now

    def _fits(self, executor: ExecutorConfig, weight: int) -> bool:
        """Whether a process of `executor` weighing `weight` CPUs may start now (lock held)."""
        if self._cpus_in_use + weight > self.cpu_budget:
            return False
        limit = executor.max_parallel
        return limit is None or self._per_executor.get(executor.name, 0) < limit

    def _take(self, name: str, weight: int) -> None:
        self._cpus_in_use += weight
        self._per_executor[name] = self._per_executor.get(name, 0) + 1

    def release(self, executor: ExecutorConfig) -> None:
        with self._cond:
            self._cpus_in_use -= self._weight(executor)
            self._per_executor[executor.name] -= 1
            # The CPU budget is shared: the first in line of every executor may fit now.
            for queue in self._waiting.values():
                if queue:
                    queue[0].notify()

    # ----------------------------------------------------------------------------- tasks
    def open_batch(self, *, limit: int | None = None) -> Batch:
        batch = Batch(limit=limit)
        with self._cond:
            self._batches.append(batch)
        return batch

    def add(self, batch: Batch, task: Task) -> None:
        """Queue `task` in `batch`; the caller has already counted it in `batch.expected`."""
        with self._cond:
            if self._stopping or batch.cancelled:
                raise StoppedError
            batch.queue.append(task)
            # Spawn unless an idle worker is left for this task. `_idle` counts workers until
            # they wake and take the lock, so comparing it with 0 let a burst of adds behind
            # one idle worker spawn nothing: a new fan-out then ran on the threads left over
            # from the previous one (idle + the caller), far below `workers`.
            # A call's own `max_workers` may ask for more threads than the default pool has
            # (items that mostly wait, like SSH transfers): it gets them.
            cap = self.workers if batch.limit is None else max(self.workers, batch.limit)
            queued = sum(len(b.queue) for b in self._batches if not b.cancelled)
            if self._idle < queued and len(self._threads) < min(cap, MAX_WORKERS):
                thread = threading.Thread(
                    target=self._work, name=f"maestro-worker-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._cond.notify_all()

    def _claim(self, only: Batch | None = None) -> tuple[Batch, Task] | None:
        batches = [only] if only is not None else self._batches
        for batch in batches:
            if batch.claimable():
                batch.running += 1
                return batch, batch.queue.popleft()
        return None

    def _run(self, batch: Batch, task: Task) -> None:
        try:
            task()  # tasks record their own outcome and never raise
        finally:
            with self._cond:
                batch.running -= 1
                batch.finished += 1
                # Wake the waiters only when one may go on: the batch is done (its caller),
                # or a task of a limited batch became claimable. Waking every thread at each
                # task's end cost a thread switch per process in a large fan-out.
                if batch.complete or batch.cancelled or (batch.limit is not None and batch.queue):
                    self._cond.notify_all()
                if batch.complete or batch.cancelled:
                    self._settled.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                claimed = self._claim()
                while claimed is None:
                    self._idle += 1
                    notified = self._cond.wait(_IDLE_EXIT)
                    self._idle -= 1
                    claimed = self._claim()
                    if claimed is None and not notified:
                        self._threads.remove(threading.current_thread())
                        return
            self._run(*claimed)

    def settle(self, batch: Batch) -> None:
        """Run `batch`'s tasks in this thread too, until every task it expects has finished.

        A cancelled batch settles once its running tasks have returned; the tasks it never
        started are dropped (their callers pre-recorded them as not started).
        """
        try:
            while True:
                with self._cond:
                    if batch.complete:
                        return
                    if batch.cancelled and batch.running == 0:
                        batch.queue.clear()
                        batch.finished = batch.expected
                        return
                    helping = self._should_help()
                    claimed = self._claim(batch) if helping else None
                    if claimed is None:
                        # A caller that leaves the tasks to the workers is woken only when a
                        # batch ends, not by every task added or finished.
                        (self._cond if helping else self._settled).wait(_WAIT_SLICE)
                        continue
                self._run(*claimed)
        finally:
            with self._cond:
                if batch.complete and batch in self._batches:
                    self._batches.remove(batch)

    def _should_help(self) -> bool:
        """Whether a thread settling a batch runs its tasks too (the lock is held).

        A worker thread must (its fan-out may wait for workers that are all busy waiting like
        it); a thread from outside (the program's main thread) leaves them to the workers, one
        thread fewer taking turns at the GIL, unless no worker is there.
        """
        return not self._threads or threading.current_thread() in self._threads

    def take_over(self, batch: Batch) -> bool:
        """The calling task of `batch` runs one more of the tasks the batch expects itself,
        instead of adding it: a chain handed each step to another thread, a thread wake-up
        per step. False if the batch or the session is stopping (add it, to be refused)."""
        with self._cond:
            if self._stopping or batch.cancelled:
                return False
            batch.expected -= 1  # never below what has finished: the caller's task runs on
            return True

    def forgo(self, batch: Batch, count: int) -> None:
        """`count` tasks that `batch` expected will never be added (their input failed)."""
        with self._cond:
            batch.expected -= count
            self._cond.notify_all()
            self._settled.notify_all()

    def cancel(self, batch: Batch) -> None:
        with self._cond:
            batch.cancelled = True
            self._cond.notify_all()
            self._settled.notify_all()

    def stop(self) -> None:
        """Start nothing new: refuse slots, drop every queued task."""
        with self._cond:
            if not self._stopping:
                # Queued tasks, and DAG nodes not even queued yet, will never run.
                self.never_started = sum(b.unstarted for b in self._batches)
            self._stopping = True
            for batch in self._batches:
                batch.cancelled = True
            self._cond.notify_all()
            self._settled.notify_all()
            for queue in self._waiting.values():
                for waiter in queue:
                    waiter.notify()

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def waiting(self) -> int:
        """How many tasks and processes have yet to start: fan-out items and DAG nodes not
        begun (ready or not), and processes waiting for a slot. What the live display shows
        of the work ahead, which no event has announced yet."""
        with self._cond:
            unstarted = sum(b.unstarted for b in self._batches if not b.cancelled)
            return unstarted + sum(len(queue) for queue in self._waiting.values())
