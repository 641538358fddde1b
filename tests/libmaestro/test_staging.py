"""Tests for input staging, run through LocalExecutor with real files, directories and bash."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import libmaestro
from libmaestro import Container, LocalExecutor, Process, StagingError, StagingMode
from libmaestro.config.model import ExecutorConfig, ExecutorType
from libmaestro.session import Session
from libmaestro.staging import check_inputs_exist, stage_inputs

# Writes where each input variable points and what it sees there, so the test can check both.
REPORT_SCRIPT = """
    printf '%s' "$f" > f_path.txt
    printf '%s' "$d" > d_path.txt
    cat "$f" > f_seen.txt
    ls "$d" > d_seen.txt
"""
REPORT_OUTPUTS = {
    "f_path": "f_path.txt",
    "d_path": "d_path.txt",
    "f_seen": "f_seen.txt",
    "d_seen": "d_seen.txt",
}


def staged_paths(*args: Any, **kwargs: Any) -> dict[str, Path]:
    """`stage_inputs`, with the text it returns for each variable as a Path."""
    return {var: Path(text) for var, text in stage_inputs(*args, **kwargs).items()}


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path]:
    """A file and a directory (with two files) outside the session."""
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "data.txt").write_text("file content\n")
    (src / "dir" / "one.txt").write_text("one\n")
    (src / "dir" / "two.txt").write_text("two\n")
    return src / "data.txt", src / "dir"


def run_report(mode: StagingMode, sources: tuple[Path, Path], name: str = "stage"):
    data, directory = sources
    out = LocalExecutor(staging_mode=mode).exe(
        Process(
            name=name,
            script=REPORT_SCRIPT,
            inputs={"f": data, "d": directory},
            outputs=REPORT_OUTPUTS,
        )
    )
    assert out.f_seen.read_text() == "file content\n"
    assert out.d_seen.read_text() == "one.txt\ntwo.txt\n"
    return out, Path(out.f_path.read_text()), Path(out.d_path.read_text())


def test_staging_symlink_points_into_workdir_at_source(
    session: Session, sources: tuple[Path, Path]
) -> None:
    out, staged_file, staged_dir = run_report(StagingMode.SYMLINK, sources)
    for staged, source in zip((staged_file, staged_dir), sources, strict=True):
        assert staged.parent == out.workdir
        assert staged.name == source.name
        assert staged.is_symlink()
        assert staged.resolve() == source.resolve()


def test_staging_copy_is_independent_of_source(
    session: Session, sources: tuple[Path, Path]
) -> None:
    out, staged_file, staged_dir = run_report(StagingMode.COPY, sources)
    data, directory = sources
    assert staged_file.parent == out.workdir
    assert not staged_file.is_symlink()
    assert not staged_dir.is_symlink()
    assert staged_dir.is_dir()
    assert os.stat(staged_file).st_ino != os.stat(data).st_ino
    staged_file.write_text("changed\n")
    (staged_dir / "one.txt").write_text("changed\n")
    assert data.read_text() == "file content\n"
    assert (directory / "one.txt").read_text() == "one\n"


def test_staging_hardlink_shares_inodes_for_file_and_tree(
    session: Session, sources: tuple[Path, Path]
) -> None:
    out, staged_file, staged_dir = run_report(StagingMode.HARDLINK, sources)
    data, directory = sources
    assert staged_file.parent == out.workdir
    assert not staged_file.is_symlink()
    assert os.stat(staged_file).st_ino == os.stat(data).st_ino
    assert staged_dir.is_dir()
    assert not staged_dir.is_symlink()
    for child in ("one.txt", "two.txt"):
        assert os.stat(staged_dir / child).st_ino == os.stat(directory / child).st_ino


def test_staging_none_passes_absolute_original_paths(
    session: Session, sources: tuple[Path, Path]
) -> None:
    out, staged_file, staged_dir = run_report(StagingMode.NONE, sources)
    assert staged_file == sources[0].resolve()
    assert staged_dir == sources[1].resolve()
    placed = {p.name for p in out.workdir.iterdir() if not p.name.startswith(".maestro.")}
    assert placed == set(REPORT_OUTPUTS.values())


def test_staging_basename_collision_gets_variable_prefix(session: Session, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "data.txt").write_text("from x\n")
    (tmp_path / "y" / "data.txt").write_text("from y\n")
    (tmp_path / "result.txt").write_text("input named like an output\n")
    out = LocalExecutor().exe(
        Process(
            name="collide",
            script="""
                printf '%s\\n' "$a" "$b" "$c" > paths.txt
                cat "$a" "$b" "$c" > result.txt
            """,
            inputs={
                "a": tmp_path / "x" / "data.txt",
                "b": tmp_path / "y" / "data.txt",
                "c": tmp_path / "result.txt",
            },
            outputs={"paths": "paths.txt", "result": "result.txt"},
        )
    )
    names = [Path(line).name for line in out.paths.read_text().splitlines()]
    assert names == ["data.txt", "b__data.txt", "c__result.txt"]
    assert out.result.read_text() == "from x\nfrom y\ninput named like an output\n"
    # Writing the output did not write through the symlink into the input.
    assert (tmp_path / "result.txt").read_text() == "input named like an output\n"


def test_staging_container_executor_forces_copy(tmp_path: Path, sources: tuple[Path, Path]) -> None:
    config = ExecutorConfig(
        name="boxed",
        type=ExecutorType.LOCAL,
        container=Container.docker("ubuntu:24.04"),
        staging_mode=StagingMode.SYMLINK,
    )
    assert config.effective_staging is StagingMode.COPY
    plain = ExecutorConfig(name="plain", type=ExecutorType.LOCAL, staging_mode=StagingMode.NONE)
    assert plain.effective_staging is StagingMode.NONE
    workdir = tmp_path / "wd"
    workdir.mkdir()
    staged = staged_paths({"f": sources[0], "d": sources[1]}, workdir, config.effective_staging)
    assert not staged["f"].is_symlink()
    assert not staged["d"].is_symlink()
    assert staged["f"].read_text() == "file content\n"
    assert sorted(p.name for p in staged["d"].iterdir()) == ["one.txt", "two.txt"]


def test_staging_missing_inputs_all_named_and_nothing_runs(
    session: Session, tmp_path: Path
) -> None:
    present = tmp_path / "present.txt"
    present.write_text("here\n")
    side_effect = tmp_path / "side_effect"
    proc = Process(
        name="needs_inputs",
        script='touch "$marker"',
        inputs={
            "first": tmp_path / "missing_one.txt",
            "ok": present,
            "second": tmp_path / "missing_dir",
        },
        args={"marker": str(side_effect)},
    )
    with pytest.raises(StagingError) as caught:
        LocalExecutor().exe(proc)
    message = str(caught.value)
    assert "2 inputs do not exist" in message
    assert f"first = {tmp_path / 'missing_one.txt'}" in message
    assert f"second = {tmp_path / 'missing_dir'}" in message
    assert "ok =" not in message
    assert not side_effect.exists()
    assert not (session.directory / "needs_inputs").exists()


def test_staging_missing_input_through_process_function(session: Session, tmp_path: Path) -> None:
    with pytest.raises(StagingError, match="1 input does not exist: reads = "):
        libmaestro.process(
            executor=LocalExecutor(),
            name="one_missing",
            inputs={"reads": tmp_path / "nope.fq"},
            script='touch "$MAESTRO_WORKDIR/ran"',
        )
    assert not (session.directory / "one_missing").exists()


def test_staging_hardlink_across_filesystems_falls_back_to_copy(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a filesystem other than the test's tmp_path")
    source_dir = shm / f"maestro-test-{os.getpid()}-{tmp_path.name}"
    source_dir.mkdir()
    try:
        (source_dir / "f.txt").write_text("far away\n")
        workdir = tmp_path / "wd"
        workdir.mkdir()
        staged = staged_paths(
            {"f": source_dir / "f.txt", "d": source_dir}, workdir, StagingMode.HARDLINK
        )
        assert staged["f"].read_text() == "far away\n"
        assert not staged["f"].is_symlink()
        assert (staged["d"] / "f.txt").read_text() == "far away\n"
    finally:
        for child in source_dir.iterdir():
            child.unlink()
        source_dir.rmdir()


@pytest.mark.parametrize("checked", [True, False], ids=["after-check", "unchecked"])
def test_staging_links_to_the_file_a_linked_input_leads_to(tmp_path: Path, checked: bool) -> None:
    # An input that is itself a link (a staged input of an earlier process, in a directory
    # that may move to .attempts/ on resume) is linked to where it leads, never chained.
    real = tmp_path / "data" / "reads.fq"
    real.parent.mkdir()
    real.write_text("ACGT\n")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "reads.fq").symlink_to(real)
    plain = tmp_path / "plain.txt"
    plain.write_text("plain\n")
    workdir = tmp_path / "step"
    workdir.mkdir()
    inputs = {"reads": earlier / "reads.fq", "other": plain}
    stats = check_inputs_exist("p", inputs) if checked else None
    if stats is not None:
        assert stats.links == {"reads"}
        assert stats["reads"].st_size == len("ACGT\n")  # the file's stat, not the link's
    staged = staged_paths(inputs, workdir, StagingMode.SYMLINK, stats=stats)
    assert os.readlink(staged["reads"]) == str(real)
    assert os.readlink(staged["other"]) == str(plain)
    assert staged["reads"].read_text() == "ACGT\n"
