"""Run history and resume: what the runner records in the state store, and when it may reuse.

Every process call gets a cache key made of what determines its result: the prepared script,
its args, the executor's environment (type, container, modules), the inputs' paths and the
outputs it declares; plus, for each input, a fingerprint of the file (`libmaestro.fingerprints`:
size and mtime, and a content hash). On `--resume`, a step is reused ("skipped") only when its
last success in this workflow instance had the same key, its inputs still match their recorded
fingerprints, and every output it recorded is still there, unchanged. Otherwise it runs,
and the reason is recorded on the step and, with `--explain`, shown: "input reads.fq changed:
size 1200→1310", "script changed at line 3".

Content hashes make the decision exact where mtimes lie: a file that was touched or rewritten
with the same bytes (a producer that reran and wrote the same output) does not force its
consumers to run again.
"""

from __future__ import annotations

import functools
import getpass
import itertools
import json
import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from libmaestro._proctree import own_start_time
from libmaestro.config.model import ExecutorConfig
from libmaestro.fingerprints import fingerprint, fingerprint_as_taken
from libmaestro.history_writer import Joinable, Writer
from libmaestro.jobs import JobResult
from libmaestro.process import Process, fanout_group
from libmaestro.state import (
    Fingerprint,
    LastSuccess,
    NewStep,
    Reason,
    RunRecord,
    RunState,
    SqliteStateStore,
    StateError,
    StepState,
    StepSuccess,
    WorkflowRecord,
    default_store_path,
)

log = logging.getLogger(__name__)

STORE_ENV_VAR = "MAESTRO_STORE"  # `maestro --store PATH`
RESUME_ENV_VAR = "MAESTRO_RESUME"  # `maestro run --resume [SESSION]`: a session name or "latest"
EXPLAIN_ENV_VAR = "MAESTRO_EXPLAIN"  # `maestro run --explain`
KEY_VERSION = 1


def store_path() -> Path:
    """`MAESTRO_STORE`, else `$MAESTRO_HOME/state.db`, else the user's data directory."""
    explicit = os.environ.get(STORE_ENV_VAR, "")
    return Path(explicit).expanduser() if explicit else default_store_path()


def open_store(path: Path | None = None) -> SqliteStateStore:
    """The user's state store (opened lazily, on first use)."""
    return SqliteStateStore(path or store_path())


# The same as `json.dumps(key, sort_keys=True)`, without making an encoder for every process.
_KEY_ENCODER = json.JSONEncoder(sort_keys=True)


@functools.lru_cache(maxsize=256)
def _executor_key(executor: ExecutorConfig) -> str:
    """The executor's part of a cache key, encoded (shared by every key that uses it)."""
    container = executor.container
    return _KEY_ENCODER.encode(
        {
            "type": executor.type.value,
            "container": f"{container.runtime.value}:{container.image}" if container else None,
            "modules": list(executor.modules),
        }
    )


@functools.lru_cache(maxsize=256)
def _script_key(text: str) -> str:
    """A script's part of a cache key, encoded once per script (a fan-out repeats it)."""
    return _KEY_ENCODER.encode(text)


def step_key(process: Process, executor: ExecutorConfig) -> str:
    """The cache key of a process call, as JSON so a later run can say what changed.

    The text is exactly `json.dumps(key, sort_keys=True)` of {"v", "script", "args", "executor",
    "inputs", "outputs"}, put together from its parts so the parts every call of a fan-out
    shares (the script, the executor) are encoded once.
    """
    encode = _KEY_ENCODER.encode
    inputs = {var: str(path) for var, path in process.inputs.items()}
    outputs = {var: str(rel) for var, rel in process.outputs.items()}
    return (
        f'{{"args": {encode(process.args)}, "executor": {_executor_key(executor)}, '
        f'"inputs": {encode(inputs)}, "outputs": {encode(outputs)}, '
        f'"script": {_script_key(process.prepared.text)}, "v": {KEY_VERSION}}}'
    )


def _first_difference(old: str, new: str) -> int:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    for number, (a, b) in enumerate(zip(old_lines, new_lines, strict=False), start=1):
        if a != b:
            return number
    return min(len(old_lines), len(new_lines)) + 1


def _key_changes(old_text: str, new_text: str) -> list[str]:
    try:
        old: dict[str, Any] = json.loads(old_text)
        new: dict[str, Any] = json.loads(new_text)
    except ValueError:
        return ["recorded by another version of maestro"]
    if old.get("v") != new.get("v"):
        return ["recorded by another version of maestro"]
    changes = []
    if old["script"] != new["script"]:
        changes.append(f"script changed at line {_first_difference(old['script'], new['script'])}")
    for name in sorted(old["args"].keys() | new["args"].keys()):
        before, after = old["args"].get(name), new["args"].get(name)
        if before != after:
            changes.append(f"arg {name} changed: {before!r} → {after!r}")
    if old["executor"] != new["executor"]:
        changes.append(f"executor changed: {old['executor']} → {new['executor']}")
    for role in ("inputs", "outputs"):
        for name in sorted(old[role].keys() | new[role].keys()):
            before, after = old[role].get(name), new[role].get(name)
            if before != after:
                changes.append(f"{role[:-1]} {name} changed: {before} → {after}")
    return changes


def _file_change(role: str, recorded: Fingerprint) -> str | None:
    """Why `recorded` no longer describes the file at its path, or None if it still does."""
    # The parent too: a merge step's inputs are often several `stats.tsv` of different steps.
    name = f"{recorded.path.parent.name}/{recorded.path.name}"
    current = fingerprint(recorded.path)
    if current is None:
        return f"{role} {name} is missing"
    if current.same_stat(recorded):
        return None
    if current.size != recorded.size:
        return f"{role} {name} changed: size {recorded.size}→{current.size}"
    if recorded.sha256 is not None and current.sha256 == recorded.sha256:
        return None  # touched or rewritten with the same content
    return f"{role} {name} changed: content modified"


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a process call may reuse its last success, and why (not)."""

    reuse: LastSuccess | None
    reasons: tuple[str, ...]
    key: str

    @property
    def text(self) -> str:
        return "; ".join(self.reasons) if self.reasons else str(Reason.UP_TO_DATE)


class _StepStart(Joinable):
    """A step that started, to be recorded (`RunHistory.started`); a fan-out's are recorded
    together (`RunHistory._write_starts`)."""

    __slots__ = ("decision", "executor", "history", "inputs", "process", "token", "workdir")

    def __init__(  # what a step record is made of
        self,
        history: RunHistory,
        token: int,
        process: Process,
        executor: ExecutorConfig,
        workdir: Path,
        decision: Decision,
        inputs: list[tuple[Path, os.stat_result | None]],
    ) -> None:
        self.history = history
        self.token = token
        self.process = process
        self.executor = executor
        self.workdir = workdir
        self.decision = decision
        self.inputs = inputs

    def write_together(self, writes: Sequence[_StepStart]) -> None:
        self.history._write_starts(writes)  # its own history's records


@dataclass
class RunHistory:
    """One run of a workflow instance in the store; the runner reports every step to it.

    Step records are written in the background (see `Writer`); `started` returns a token that
    stands for the step until its record exists.
    """

    store: SqliteStateStore
    workflow: WorkflowRecord
    run: RunRecord
    explain: bool = False
    previous: dict[str, LastSuccess] = field(default_factory=dict)
    _writer: Writer | None = None
    _ids: dict[int, int] = field(default_factory=dict)  # token -> step id
    _tokens: itertools.count[int] = field(default_factory=itertools.count)
    _writer_lock: threading.Lock = field(default_factory=threading.Lock)
    # token -> None while its step waits for a slot, or when it started running; removed once
    # the step's first record is written.
    _not_yet_written: dict[int, float | None] = field(default_factory=dict)
    # token -> its success, for a step that ended before its first record was written.
    _ended_unwritten: dict[int, Callable[[], StepSuccess]] = field(default_factory=dict)
    _hashed: dict[str, Fingerprint] = field(default_factory=dict)  # path -> as last hashed
    _pending_lock: threading.Lock = field(default_factory=threading.Lock)
    # What the run has yet to start (the session's `Scheduler.waiting`), written with each
    # commit when it changed, for `maestro status` and the dashboard.
    waiting: Callable[[], int] | None = None
    _waiting_written: int = 0

    @property
    def writer(self) -> Writer:
        # Under a lock: the first processes of a fan-out call this from several threads at once,
        # and two writers (two queues, two threads) broke the order of a step's records (its
        # success ran before its start and was dropped, so the step ended aborted RUN_ENDED in
        # a run that succeeded) and `finish` flushed only the last one.
        with self._writer_lock:
            if self._writer is None:
                self._writer = Writer(self.store, on_commit=self._write_waiting)
            return self._writer

    def _write_waiting(self) -> None:
        """Record what the run has yet to start, if it changed (called by the writer)."""
        if self.waiting is None:
            return
        now = self.waiting()
        if now != self._waiting_written:
            self.store.record_waiting(self.run.id, now)
            self._waiting_written = now

    @classmethod
    def start(
        cls,
        store: SqliteStateStore,
        workflow: WorkflowRecord,
        *,
        resuming: bool,
        explain: bool,
    ) -> RunHistory:
        run = store.start_run(
            workflow.id, pid=os.getpid(), pid_start_time=own_start_time(), command=tuple(sys.argv)
        )
        # One bulk query instead of one per process: deciding that a 10,000-step instance is
        # up to date must take well under a second.
        previous = store.last_successes(workflow.id) if resuming else {}
        return cls(store, workflow, run, explain=explain, previous=previous)

    def decide(self, process: Process, executor: ExecutorConfig) -> Decision:
        key = step_key(process, executor)
        last = self.previous.get(process.name)
        if last is None:
            first = "first run" if not self.previous else "no earlier success in this session"
            return Decision(None, (first,), key)
        reasons = _key_changes(last.step.cache_key, key)
        if not reasons:
            for recorded in last.inputs:
                if (change := _file_change("input", recorded.fingerprint)) is not None:
                    reasons.append(change)
            for recorded in last.outputs:
                if (change := _file_change("output", recorded.fingerprint)) is not None:
                    reasons.append(change)
        return Decision(None if reasons else last, tuple(reasons), key)

    def moved(self, old: Path, new: Path) -> None:
        """An earlier attempt's working directory was moved from `old` to `new`."""
        self.writer.submit(lambda: self.store.move_workdir(self.workflow.id, old, new))

    def skipped(self, decision: Decision) -> None:
        assert decision.reuse is not None
        step = decision.reuse.step
        self.writer.submit(
            lambda: self.store.record_skipped(self.run.id, reused=step.id, group=step.group or None)
        )

    def started(
        self,
        process: Process,
        executor: ExecutorConfig,
        workdir: Path,
        decision: Decision,
        *,
        input_stats: Mapping[str, os.stat_result] | None = None,
    ) -> int:
        """The step is about to wait for a slot: recorded pending until `running` is called.

        Most steps get their slot at once; then `running` comes before the record is written
        and the step is written as running directly, so pending costs no extra write.
        `input_stats` are the inputs' `os.stat` (by variable) if the caller has just taken them.
        """
        token = next(self._tokens)
        with self._pending_lock:
            self._not_yet_written[token] = None
        # The inputs as the step is about to read them: their stat now, their content hash in the
        # writer thread, kept only if the file still has that stat (`fingerprint_as_taken`).
        # Fingerprinted at its end instead, an input edited while the step ran was recorded as
        # the one it used, and the next resume reused the output made from the old content.
        known = input_stats or {}
        inputs = [(path, known.get(var)) for var, path in process.inputs.items()]
        self.writer.submit(_StepStart(self, token, process, executor, workdir, decision, inputs))
        return token

    def _write_starts(self, starts: Sequence[_StepStart]) -> None:
        """Record steps that started: a commit interval's starts in one call to the store."""
        new: list[tuple[int, bool, NewStep]] = []  # token, still open, the record
        for start in starts:
            process, decision = start.process, start.decision
            recorded = [fp for path, info in start.inputs if (fp := self._fingerprint(path, info))]
            with self._pending_lock:
                running_since = self._not_yet_written.pop(start.token, None)
                ended = self._ended_unwritten.pop(start.token, None)
            step = NewStep(
                process=process.name,
                state=StepState.PENDING if running_since is None else StepState.RUNNING,
                cache_key=decision.key,
                executor=start.executor.name,
                workdir=start.workdir,
                group=fanout_group(process.name),
                inputs=recorded,
                reason=decision.text,
                started_at=running_since,
                success=None if ended is None else ended(),
            )
            new.append((start.token, ended is None, step))
        try:
            ids: list[int | None] = list(self.store.add_steps(self.run.id, [n[2] for n in new]))
        except StateError:
            if len(new) == 1:
                raise
            ids = [self._add_alone(step) for _, _, step in new]  # one refused loses only itself
        for (token, still_open, _), step_id in zip(new, ids, strict=True):
            if still_open and step_id is not None:
                self._ids[token] = step_id

    def _add_alone(self, step: NewStep) -> int | None:
        try:
            return self.store.add_steps(self.run.id, [step])[0]
        except StateError as exc:
            log.warning("run history: %s", exc)
            return None

    def _fingerprint(self, path: Path, info: os.stat_result | None) -> Fingerprint | None:
        """`fingerprint_as_taken`, reusing the content hash this run already took of the file
        when its size and mtime are unchanged: a producer's output is hashed once, not again for
        every step that reads it. Called by the writer thread only."""
        if not isinstance(path, Path):  # a RemotePath: its host is asked by the remote runner
            return None
        key = os.fspath(path)
        regular = info is not None and stat.S_ISREG(info.st_mode)
        known = self._hashed.get(key) if regular else None
        if info is not None and known is not None and known.same_stat_as(info):
            return Fingerprint(path, info.st_size, info.st_mtime_ns, known.sha256)
        found = fingerprint_as_taken(path, info)
        if regular and found is not None and found.sha256 is not None:
            self._hashed[key] = found
        return found

    def running(self, token: int) -> None:
        """The step got its slot and starts now."""
        now = time.time()
        with self._pending_lock:
            if token in self._not_yet_written:
                self._not_yet_written[token] = now
                return
        self.writer.submit(lambda: self._move(token, StepState.RUNNING, started_at=now))

    def _move(self, token: int, state: StepState, **details: Any) -> None:
        step_id = self._ids.get(token)
        if step_id is not None:
            self.store.record_step_state(step_id, state, **details)

    def submitted(self, token: int, job_id: str) -> None:
        """The backend accepted the step's job under `job_id` (a Slurm job id)."""
        self.writer.submit(lambda: self._move(token, StepState.RUNNING, job_id=job_id))

    def _on_step(self, token: int, operation: Callable[[int], object]) -> None:
        def write() -> None:
            step_id = self._ids.pop(token, None)
            if step_id is not None:  # None: its start could not be recorded (logged)
                operation(step_id)

        self.writer.submit(write)

    def succeeded(
        self,
        token: int,
        process: Process,  # noqa: ARG002  # its inputs were fingerprinted by `started`
        outputs: Mapping[str, Path],
        result: JobResult,
        *,
        stats: Mapping[str, os.stat_result] | None = None,
    ) -> None:
        """The step succeeded; `stats` are the outputs' `os.stat` (by name) taken by the check.

        Fingerprints are of the outputs as verified (their stat then; the content hash is taken
        by the writer thread, off the step's path, see `fingerprint_as_taken`) and written in
        the same transaction as the success: a crash in between leaves a step that did not
        succeed, never the reverse.
        """
        known = stats or {}
        taken = [(path, known.get(var)) for var, path in outputs.items()]

        def success() -> StepSuccess:
            return StepSuccess(
                outputs=[fp for path, info in taken if (fp := self._fingerprint(path, info))],
                exit_code=result.exit_code,
                ended_at=result.ended_at,
                max_rss_kib=result.max_rss_kib,
                cpu_seconds=(result.user_seconds or 0.0) + (result.system_seconds or 0.0),
            )

        with self._pending_lock:
            if token in self._not_yet_written:  # it ended before its start was written:
                self._ended_unwritten[token] = success  # one insert records both
                return
        self._on_step(token, lambda step_id: self.store.record_success(step_id, success()))

    def failed(self, token: int, result: JobResult | None, error: str) -> None:
        self._on_step(
            token,
            lambda step_id: self.store.fail_step(
                step_id,
                reason=result.reason if result and result.reason else "",
                exit_code=result.exit_code if result else None,
                error=error,
                ended_at=result.ended_at if result else None,
                max_rss_kib=result.max_rss_kib if result else None,
            ),
        )

    def aborted(self, token: int, error: str) -> None:
        self._on_step(token, lambda step_id: self.store.abort_step(step_id, error=error))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def finish(self, state: RunState) -> None:
        """Write everything still queued, then end the run with `state`."""
        if self._writer is not None:
            self._writer.close()
        self.store.finish_run(self.run.id, state)


def create_workflow(
    store: SqliteStateStore,
    *,
    session: str,
    project: str,
    entry: Path,
    config_path: Path | None,
) -> WorkflowRecord:
    """Record a new workflow instance (one per session)."""
    config_text = ""
    if config_path is not None:
        try:
            config_text = config_path.read_text(encoding="utf-8")
        except OSError:
            config_text = ""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return store.create_workflow(
        session=session,
        project=project,
        entry=str(entry),
        config=config_text,
        user=user,
        host=os.uname().nodename,
        # The config file's path lets a rerun started from elsewhere (the UI) use it again.
        metadata={"project": project, **({"config": str(config_path)} if config_path else {})},
    )
