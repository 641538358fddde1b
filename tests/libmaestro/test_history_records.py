"""What the run history writes: cache keys, fingerprints taken late, and one record per step.

The history does part of its work in its writer thread (content hashes, store writes) and folds
a step that ended before its start was written into one insert. These tests hold those paths to
the records a resume relies on, with a real SQLite store and real files.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

import libmaestro as maestro
from libmaestro.config.model import SshTarget
from libmaestro.fingerprints import fingerprint, fingerprint_as_taken
from libmaestro.history import (
    KEY_VERSION,
    RunHistory,
    create_workflow,
    open_store,
    step_key,
)
from libmaestro.jobs import JobResult, JobState
from libmaestro.process import Process
from libmaestro.remote.paths import RemotePath
from libmaestro.state import RunState, StepState


def _documented_key(process: Process, executor: maestro.LocalExecutor) -> str:
    """The cache key as its docstring defines it; stores hold keys in exactly this form."""
    config = executor.config
    container = config.container
    key = {
        "v": KEY_VERSION,
        "script": process.prepared.text,
        "args": dict(process.args),
        "executor": {
            "type": config.type.value,
            "container": f"{container.runtime.value}:{container.image}" if container else None,
            "modules": list(config.modules),
        },
        "inputs": {var: str(path) for var, path in process.inputs.items()},
        "outputs": {var: str(rel) for var, rel in process.outputs.items()},
    }
    return json.dumps(key, sort_keys=True)


def test_step_key_is_the_sorted_json_of_its_parts(tmp_path: Path) -> None:
    # Keys recorded by earlier runs are compared with new ones as text: the form must not drift.
    source = tmp_path / "in put.txt"
    source.write_text("x")
    process = Process(
        name="align_é",
        script='  echo "quoted" \\\n\t$x | tr a b\n',
        inputs={"reads": source},
        outputs={"bam": "out/a.bam", "log": "é.log"},
        args={"threads": 4, "label": 'say "hi"'},
    )
    for executor in (
        maestro.LocalExecutor(),
        maestro.LocalExecutor(modules=["samtools/1.17"]),
        maestro.LocalExecutor(container=maestro.Container.podman("alpine:3")),
    ):
        assert step_key(process, executor.config) == _documented_key(process, executor)


def test_a_file_rewritten_before_it_was_hashed_is_recorded_without_a_hash(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("as the step left it\n")
    seen = path.stat()
    kept = fingerprint_as_taken(path, seen)
    assert kept == fingerprint(path)
    assert kept is not None and kept.sha256 is not None

    path.write_text("rewritten by someone else, a different length\n")
    late = fingerprint_as_taken(path, seen)
    assert late is not None
    assert (late.size, late.mtime_ns, late.sha256) == (seen.st_size, seen.st_mtime_ns, None)

    path.unlink()
    gone = fingerprint_as_taken(path, seen)
    assert gone is not None and gone.sha256 is None and gone.size == seen.st_size


def _history(tmp_path: Path) -> RunHistory:
    store = open_store(tmp_path / "state.db")
    workflow = create_workflow(
        store, session="s1", project="p", entry=tmp_path / "wf.py", config_path=None
    )
    return RunHistory.start(store, workflow, resuming=False, explain=False)


@pytest.mark.parametrize("written_between", [False, True], ids=["folded", "two-writes"])
def test_a_success_is_recorded_the_same_however_the_writes_fall(
    tmp_path: Path, written_between: bool
) -> None:
    # A step shorter than the writer's commit interval ends before its start is written; it is
    # then recorded with one insert. Either way the store must hold the same step.
    history = _history(tmp_path)
    separate_successes: list[int] = []
    record_success = history.store.record_success

    def spy(step_id: int, *args: Any, **kwargs: Any) -> None:
        separate_successes.append(step_id)
        record_success(step_id, *args, **kwargs)

    history.store.record_success = spy  # type: ignore[method-assign]
    executor = maestro.LocalExecutor().config
    workdir = tmp_path / "work" / "p1"
    workdir.mkdir(parents=True)
    source = tmp_path / "in.txt"
    source.write_text("input\n")
    process = Process(name="p1", script="true", inputs={"src": source}, outputs={"out": "o.txt"})
    decision = history.decide(process, executor)
    token = history.started(process, executor, workdir, decision)
    history.running(token)
    if written_between:
        history.flush()
    output = workdir / "o.txt"
    output.write_text("result\n")
    began = time.time()
    result = JobResult(JobState.SUCCEEDED, 0, None, began, began + 0.5, 2048, 0.25, 0.5)
    history.succeeded(token, process, {"out": output}, result, stats={"out": output.stat()})
    history.flush()

    (step,) = history.store.steps(history.workflow.id)
    assert separate_successes == ([step.id] if written_between else [])
    assert step.state is StepState.SUCCEEDED
    assert (step.exit_code, step.max_rss_kib, step.cpu_seconds) == (0, 2048, 0.75)
    assert step.ended_at == pytest.approx(began + 0.5)
    assert step.started_at is not None and step.started_at <= began + 0.5
    assert step.cache_key == decision.key
    artefacts = {(a.role.value, a.path): a for a in history.store.artefacts(step.id)}
    assert set(artefacts) == {("input", source), ("output", output)}
    assert artefacts[("output", output)].sha256 == fingerprint(output).sha256  # type: ignore[union-attr]
    assert artefacts[("input", source)].sha256 == fingerprint(source).sha256  # type: ignore[union-attr]
    history.finish(RunState.SUCCEEDED)


def test_the_writer_survives_an_output_deleted_before_it_was_hashed(tmp_path: Path) -> None:
    history = _history(tmp_path)
    executor = maestro.LocalExecutor().config
    workdir = tmp_path / "p1"
    workdir.mkdir()
    process = Process(name="p1", script="true", outputs={"out": "o.txt"})
    token = history.started(process, executor, workdir, history.decide(process, executor))
    history.running(token)
    output = workdir / "o.txt"
    output.write_text("short-lived\n")
    info = output.stat()
    result = JobResult(JobState.SUCCEEDED, 0, None, 1.0, 2.0)
    history.succeeded(token, process, {"out": output}, result, stats={"out": info})
    os.unlink(output)  # before the writer thread gets to it
    history.flush()
    (step,) = history.store.steps(history.workflow.id)
    assert step.state is StepState.SUCCEEDED
    (recorded,) = history.store.artefacts(step.id)
    assert (recorded.size, recorded.sha256) == (info.st_size, None)


def test_a_step_reading_another_hosts_file_is_recorded(tmp_path: Path) -> None:
    # A step over SSH reads its inputs where they are: their host fingerprints them, not this
    # machine. The writer thread died on such an input and the run hung at its end.
    history = _history(tmp_path)
    executor = maestro.LocalExecutor().config
    numbers = RemotePath(SshTarget("node1"), PurePosixPath("/home/u/maestro_work/s/make/n.txt"))
    process = Process(name="sum", script="true", inputs={"numbers": numbers})  # type: ignore[dict-item]
    token = history.started(process, executor, tmp_path / "sum", history.decide(process, executor))
    history.running(token)
    history.flush()
    (step,) = history.store.steps(history.workflow.id)
    assert (step.process, step.state) == ("sum", StepState.RUNNING)
    assert history.store.artefacts(step.id) == []
    history.finish(RunState.SUCCEEDED)


def test_a_record_that_fails_unexpectedly_is_reported_in_one_line_and_the_rest_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history = _history(tmp_path)
    executor = maestro.LocalExecutor().config
    history.writer.submit(lambda: 1 / 0)  # stands for a bug in one record's code
    process = Process(name="p1", script="true")
    token = history.started(process, executor, tmp_path / "p1", history.decide(process, executor))
    history.running(token)
    history.flush()
    (step,) = history.store.steps(history.workflow.id)
    assert step.process == "p1"
    (report,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "ZeroDivisionError" in report.getMessage() and "--debug" in report.getMessage()
    assert report.exc_info is None  # no traceback without --debug
    history.finish(RunState.SUCCEEDED)


def test_a_file_hashed_once_is_hashed_again_after_it_changed(tmp_path: Path) -> None:
    # The writer reuses the hash it took of a producer's output for the steps that read it,
    # but only while the file keeps the size and mtime it had then.
    history = _history(tmp_path)
    executor = maestro.LocalExecutor().config
    shared = tmp_path / "shared.txt"
    shared.write_text("first\n")
    first = Process(name="a", script="true", inputs={"x": shared})
    history.started(first, executor, tmp_path, history.decide(first, executor))
    history.flush()
    shared.write_text("other\n")  # same size, new content and mtime
    os.utime(shared, ns=(shared.stat().st_atime_ns, shared.stat().st_mtime_ns + 10**9))
    second = Process(name="b", script="true", inputs={"x": shared})
    history.started(second, executor, tmp_path, history.decide(second, executor))
    history.flush()
    a, b = history.store.steps(history.workflow.id)
    (input_a,) = history.store.artefacts(a.id)
    (input_b,) = history.store.artefacts(b.id)
    assert input_a.sha256 != input_b.sha256
    assert input_b.sha256 == fingerprint(shared).sha256  # type: ignore[union-attr]


def test_a_directory_fingerprint_hashes_its_listing_in_the_recorded_form(tmp_path: Path) -> None:
    # Stores hold directory fingerprints in this form: a change of form would rerun every step
    # with a directory output on the next resume. One line per file, in `os.walk` order with
    # names sorted, "relative path NUL size NUL mtime_ns"; links are followed, broken ones and
    # linked directories are left out, and names that are not UTF-8 are kept as their bytes.
    root = tmp_path / "out"
    (root / "b" / "inner").mkdir(parents=True)
    (root / "a").mkdir()
    (root / "z.txt").write_text("zz")
    (root / "b" / "x.txt").write_text("x")
    (root / "b" / "inner" / "deep.txt").write_text("deep")
    (root / "a" / "y.txt").write_text("yyy")
    (root / "link.txt").symlink_to(root / "z.txt")
    (root / "broken").symlink_to(tmp_path / "nowhere")
    (root / "dirlink").symlink_to(root / "b", target_is_directory=True)
    odd = os.fsdecode(b"caf\xe9.txt")
    (root / odd).write_text("1")

    def line(relative: str) -> bytes:
        info = (root / relative).stat()
        text = f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\n"
        return text.encode("utf-8", "surrogateescape")

    files = [odd, "link.txt", "z.txt", "a/y.txt", "b/x.txt", "b/inner/deep.txt"]
    expected = hashlib.sha256(b"".join(line(f) for f in files)).hexdigest()
    found = fingerprint(root)
    assert found is not None
    assert found.sha256 == expected
    assert found.size == sum((root / f).stat().st_size for f in files)
    newest = max([root.stat().st_mtime_ns, *((root / f).stat().st_mtime_ns for f in files)])
    assert found.mtime_ns == newest


def test_starts_queued_together_are_recorded_by_one_store_call_and_one_refused_loses_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history = _history(tmp_path)
    executor = maestro.LocalExecutor().config
    calls: list[list[str]] = []
    add_steps = history.store.add_steps

    def spy(run_id: int, steps: Any) -> list[int]:
        calls.append([step.process for step in steps])
        return add_steps(run_id, steps)

    history.store.add_steps = spy  # type: ignore[method-assign]

    def start(name: str) -> int:
        process = Process(name=name, script="true")
        token = history.started(
            process, executor, tmp_path / name, history.decide(process, executor)
        )
        history.running(token)
        return token

    start("a")
    history.flush()
    # Hold the writer inside a commit while the next starts queue up: they are its next batch.
    release = threading.Event()
    history.writer.submit(release.wait)
    tokens = {name: start(name) for name in ("b", "a", "c")}  # "a" again: the store refuses it
    release.set()
    result = JobResult(JobState.SUCCEEDED, 0, None, 1.0, 2.0)
    history.succeeded(tokens["c"], Process(name="c", script="true"), {}, result)
    history.flush()

    assert calls[:2] == [["a"], ["b", "a", "c"]]  # the fan-out's starts in one call
    steps = {step.process: step.state for step in history.store.steps(history.workflow.id)}
    assert steps == {"a": StepState.RUNNING, "b": StepState.RUNNING, "c": StepState.SUCCEEDED}
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "step a is already recorded" in warning.getMessage()
    history.finish(RunState.SUCCEEDED)
