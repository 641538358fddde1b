"""The parts of `maestro bundle` that need no PyInstaller: archives, README, cache, layout.

Real files throughout; the end-to-end bundle is in tests/integration/test_bundled_program.py.
"""

from __future__ import annotations

import gc
import io
import json
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from libmaestro.analysis import ReferenceKind
from libmaestro.bundle.archive import Compression, extract_archive, write_archive
from libmaestro.bundle.cache import HOST_PTH, READY_FILE, BuildCache, BundleError
from libmaestro.bundle.freeze import MARKER_FILE, BundleUsageError, _lay_out, _script_files
from libmaestro.bundle.readme import _processes, render_readme
from libmaestro.frozen import BundleInfo
from libmaestro.project import ProjectSettingsError, find_project, read_pyproject

# --- archives ------------------------------------------------------------------------------


@pytest.fixture
def bundle_folder(tmp_path: Path) -> Path:
    """A folder shaped like a bundle: an executable, libraries linked inside `_internal/`."""
    folder = tmp_path / "src" / "greeter"
    internal = folder / "_internal"
    (internal / "pkg" / "sub").mkdir(parents=True)
    program = folder / "greeter"
    program.write_text("#!/bin/sh\necho hi\n")
    program.chmod(0o755)
    (internal / "libfoo.so.1").write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
    (internal / "libfoo.so").symlink_to("libfoo.so.1")
    (internal / "pkg" / "sub" / "data.txt").write_text("data\n")
    (internal / "pkg" / "linked").symlink_to("sub")  # a link to a directory
    (internal / "pkg" / "up.so").symlink_to("../libfoo.so.1")
    (folder / "README.md").write_text("read me\n")
    readonly = folder / "locked"
    readonly.mkdir()
    (readonly / "inside.txt").write_text("inside\n")
    readonly.chmod(0o555)
    return folder


@pytest.mark.parametrize("compression", [c for c in Compression if c is not Compression.NONE])
def test_bundle_archive_round_trip_keeps_modes_and_links(
    bundle_folder: Path, tmp_path: Path, compression: Compression
) -> None:
    archive = write_archive(bundle_folder, tmp_path / "greeter-1.0", compression)
    assert not list(tmp_path.glob("*.partial"))

    folder = extract_archive(archive, tmp_path / "out")

    assert folder == tmp_path / "out" / "greeter"
    assert stat.S_IMODE((folder / "greeter").stat().st_mode) & 0o111 == 0o111
    internal = folder / "_internal"
    assert (internal / "libfoo.so").is_symlink()
    assert os.readlink(internal / "libfoo.so") == "libfoo.so.1"
    assert (internal / "libfoo.so").read_bytes() == (
        bundle_folder / "_internal/libfoo.so.1"
    ).read_bytes()
    assert (internal / "pkg" / "linked").is_symlink()
    assert (internal / "pkg" / "linked" / "data.txt").read_text() == "data\n"
    assert os.readlink(internal / "pkg" / "up.so") == "../libfoo.so.1"
    assert (folder / "locked" / "inside.txt").read_text() == "inside\n"
    assert (folder / "README.md").read_text() == "read me\n"


def test_bundle_archive_zip_streams_files_with_their_modes(
    bundle_folder: Path, tmp_path: Path
) -> None:
    archive = write_archive(bundle_folder, tmp_path / "greeter-1.0", Compression.ZIP)
    with zipfile.ZipFile(archive) as opened:
        infos = {info.filename: info for info in opened.infolist()}
    assert infos["greeter/greeter"].external_attr >> 16 & 0o777 == 0o755
    assert infos["greeter/_internal/libfoo.so.1"].compress_type == zipfile.ZIP_DEFLATED
    link = infos["greeter/_internal/libfoo.so"]
    assert stat.S_ISLNK(link.external_attr >> 16)
    assert next(iter(infos)) == "greeter/"  # the top folder first


def _tar_with(member: tarfile.TarInfo, path: Path) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        top = tarfile.TarInfo("greeter")
        top.type = tarfile.DIRTYPE
        archive.addfile(top)
        archive.addfile(member, io.BytesIO(b"") if member.isfile() else None)
    return path


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("greeter/passwd"),  # made a symlink below
        tarfile.TarInfo("../escaped.txt"),
    ],
    ids=["absolute-link", "outside"],
)
def test_bundle_archive_tar_refuses_what_lands_outside(
    tmp_path: Path, member: tarfile.TarInfo
) -> None:
    if member.name.endswith("passwd"):
        member.type = tarfile.SYMTYPE
        member.linkname = "/etc/passwd"
    archive = _tar_with(member, tmp_path / "evil.tar.gz")
    with pytest.raises(tarfile.FilterError):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "greeter" / "passwd").is_symlink()
    assert not (tmp_path / "escaped.txt").exists()


def test_bundle_archive_zip_refuses_a_link_outside(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as opened:
        info = zipfile.ZipInfo("greeter/passwd")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        info.create_system = 3
        opened.writestr(info, "../../../etc/passwd")
    with pytest.raises(ValueError, match="points outside"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "greeter" / "passwd").is_symlink()


def _as_unprivileged_user(action: Callable[[], object]) -> tuple[int, str]:
    """Run `action` in a forked child that permissions bind: as nobody if this is root.

    A fork, not a new interpreter: this one may live where nobody cannot read (~root/.pyenv).
    Returns the child's exit status and the error it reported.
    """
    # Garbage is collected here, not in the child: an unreachable multithreaded zstd
    # compressor (left by write_archive in a reference cycle) freed in the forked child, where
    # its worker threads do not exist, crashed the child with a segfault.
    gc.collect()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        gc.disable()  # nothing the child makes outlives it
        os.close(read)
        code = 0
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            action()
        except BaseException as exc:  # reported to the parent
            os.write(write, f"{type(exc).__name__}: {exc}".encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as errors:
        reported = errors.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), reported


@pytest.mark.parametrize("compression", [Compression.ZSTD, Compression.GZIP, Compression.ZIP])
def test_bundle_archive_read_only_folder_does_not_lock_out_its_files(
    bundle_folder: Path, compression: Compression
) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="maestro-archive-"))
    try:
        scratch.chmod(0o777)  # writable for nobody, unlike pytest's tmp_path
        archive = write_archive(bundle_folder, scratch / "greeter-1.0", compression)
        archive.chmod(0o644)
        out = scratch / "out"

        code, error = _as_unprivileged_user(lambda: extract_archive(archive, out))

        assert code == 0, error
        assert (out / "greeter" / "locked" / "inside.txt").read_text() == "inside\n"
        assert (out / "greeter" / "_internal" / "libfoo.so").is_symlink()
    finally:
        for path in scratch.rglob("*"):  # read-only folders must be writable to be removed
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(scratch, ignore_errors=True)


# --- README --------------------------------------------------------------------------------

PROCINFO = """\
# procinfo.toml: what each process needs, written by `maestro build`.
# Edit the executors in Maestro.toml, not here.

["workflow.py:4:5"]
executor = "default"
deps = ["wc"]

# Greets everyone.
# Twice.
["workflow.py:9:5"]
executor = "cluster"
deps = []

# A stray note, separated from the next table.

["lib/steps.py:3:1"]
executor = "default"
deps = ["sort"]

# Quoted "key".
["odd \\"name\\".py:1:1"]
executor = "default"
deps = []
"""


def test_bundle_readme_takes_only_the_comment_directly_above_a_table(tmp_path: Path) -> None:
    procinfo = tmp_path / "procinfo.toml"
    procinfo.write_text(PROCINFO)

    processes = {key: doc for key, doc, _, _ in _processes(procinfo)}

    assert processes == {
        "workflow.py:4:5": "",  # the header, followed by a blank line, describes nothing
        "workflow.py:9:5": "Greets everyone. Twice.",
        "lib/steps.py:3:1": "",
        'odd "name".py:1:1': 'Quoted "key".',
    }
    info = BundleInfo(name="g", version="1", maestro="0", platform="linux-x86_64", references=())
    readme = render_readme(info, procinfo=procinfo, onefile=False)
    assert "| `workflow.py:4:5` | default | wc | - |" in readme
    assert "| `workflow.py:9:5` | cluster | - | Greets everyone. Twice. |" in readme
    assert "procinfo.toml: what each" not in readme
    assert info.names(ReferenceKind.ARG) == []


# --- the build cache -----------------------------------------------------------------------


def _prepared(directory: Path, host: dict[str, object] | None) -> BuildCache:
    """A cache whose venv python exists and whose ready.json records `host`."""
    cache = BuildCache(directory)
    cache.python.parent.mkdir(parents=True)
    cache.python.write_text("")
    info: dict[str, object] = {"maestro": "0.1.0", "pyinstaller": "6.0"}
    if host is not None:
        info["host"] = host
    (directory / READY_FILE).write_text(json.dumps(info))
    return cache


@pytest.fixture
def host_link(tmp_path: Path) -> Callable[..., dict[str, object]]:
    def make(prefix: str = sys.prefix) -> dict[str, object]:
        site = tmp_path / "host-site-packages"
        site.mkdir(exist_ok=True)
        pth = tmp_path / HOST_PTH
        pth.write_text(f"import site; site.addsitedir({str(site)!r})\n")
        return {"prefix": prefix, "site_packages": [str(site)], "pth": str(pth)}

    return make


def test_bundle_cache_is_ready_only_for_the_installation_that_made_it(
    tmp_path: Path, host_link: Callable[..., dict[str, object]]
) -> None:
    mine = _prepared(tmp_path / "mine", host_link())
    assert mine.ready is not None

    other = _prepared(tmp_path / "other", host_link(prefix="/opt/another-maestro/.venv"))
    assert other.ready is None
    assert other.recorded is not None  # complete, only not for this installation

    unrecorded = _prepared(tmp_path / "old", None)  # made before the host was recorded
    assert unrecorded.ready is None


def test_bundle_cache_is_not_ready_once_the_linked_environment_is_gone(
    tmp_path: Path, host_link: Callable[..., dict[str, object]]
) -> None:
    host = host_link()
    cache = _prepared(tmp_path / "cache", host)
    assert cache.ready is not None
    shutil.rmtree(tmp_path / "host-site-packages")
    assert cache.ready is None

    host = host_link()
    cache = _prepared(tmp_path / "cache2", host)
    Path(str(host["pth"])).unlink()
    assert cache.ready is None


# --- laying out dist/<name>/ ---------------------------------------------------------------


def _earlier_bundle(target: Path) -> Path:
    target.mkdir(parents=True)
    (target / MARKER_FILE).write_text("{}")
    (target / "greeter").write_text("old program")
    return target


def test_bundle_layout_replaces_an_earlier_bundle_when_complete(tmp_path: Path) -> None:
    target = _earlier_bundle(tmp_path / "dist" / "greeter")
    (tmp_path / "dist" / ".greeter.partial").mkdir()  # left by an interrupted bundle

    def fill(folder: Path) -> None:
        assert folder == tmp_path / "dist" / ".greeter.partial"
        assert (target / "greeter").read_text() == "old program"  # untouched meanwhile
        (folder / "greeter").write_text("new program")
        (folder / MARKER_FILE).write_text("{}")

    _lay_out(target, fill)

    assert (target / "greeter").read_text() == "new program"
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["greeter"]


def test_bundle_layout_failure_keeps_the_earlier_bundle_and_says_why(tmp_path: Path) -> None:
    target = _earlier_bundle(tmp_path / "dist" / "greeter")
    data = tmp_path / "data"
    data.mkdir()
    (data / "ok.txt").write_text("ok")
    (data / "broken").symlink_to(tmp_path / "nowhere")

    def fill(folder: Path) -> None:
        (folder / "greeter").write_text("new program")
        shutil.copytree(data, folder / "data", symlinks=False)

    with pytest.raises(BundleError) as caught:
        _lay_out(target, fill)

    message = str(caught.value)
    assert "\n" not in message
    assert f"could not write the bundle {target}" in message
    assert "broken" in message
    assert (target / "greeter").read_text() == "old program"
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["greeter"]


def test_bundle_layout_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    target = tmp_path / "dist" / "greeter"
    target.mkdir(parents=True)
    (target / "precious.txt").write_text("keep me")
    filled: list[Path] = []

    with pytest.raises(BundleUsageError, match="is not a bundle made by maestro"):
        _lay_out(target, filled.append)

    assert filled == []
    assert (target / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["greeter"]


# --- inline=False scripts: where they go in the bundle -------------------------------------

SUBDIR_ENTRY = """\
import libmaestro as maestro
import pkg.steps

@maestro.main
def main():
    maestro.process(name="a", executor="default", inline=False, script="{script}")
    pkg.steps.count()

main()
"""
STEPS = """\
import libmaestro as maestro

def count():
    maestro.process(name="b", executor="default", inline=False, script="sh/count.sh")
"""


def _subdir_project(root: Path, script: str = "scripts/a.sh") -> Path:
    files = {
        "pyproject.toml": '[project]\nname = "p"\n\n[tool.maestro]\nentry = "pipeline/main.py"\n',
        "pipeline/main.py": SUBDIR_ENTRY.format(script=script),
        "pipeline/scripts/a.sh": "echo a\n",
        "scripts/top.sh": "echo top\n",
        "pkg/__init__.py": "",
        "pkg/steps.py": STEPS,
        "pkg/sh/count.sh": "wc -l\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_bundle_scripts_go_where_their_module_is_in_the_bundle(tmp_path: Path) -> None:
    root = _subdir_project(tmp_path / "p")
    placed = _script_files(find_project(root))
    assert placed == [
        (root / "pipeline" / "scripts" / "a.sh", "scripts"),  # the entry runs at the top
        (root / "pkg" / "sh" / "count.sh", "pkg/sh"),  # a module at its package path
    ]


def test_bundle_script_outside_the_project_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "a.sh").write_text("echo a\n")
    root = _subdir_project(tmp_path / "p", script="../../shared/a.sh")
    with pytest.raises(BundleError, match=r"pipeline/main\.py:6:5: .* is outside the project"):
        _script_files(find_project(root))


def test_bundle_script_beside_the_entry_directory_is_a_clear_error(tmp_path: Path) -> None:
    root = _subdir_project(tmp_path / "p", script="../scripts/top.sh")
    with pytest.raises(BundleError, match="outside the entry module's directory"):
        _script_files(find_project(root))


# --- [tool.maestro] data -------------------------------------------------------------------


def _settings(tmp_path: Path, data: str) -> tuple[str, ...] | None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.maestro]\n{data}\n")
    return read_pyproject(tmp_path)[0].data


def test_bundle_data_setting_is_a_list_of_paths_in_the_project(tmp_path: Path) -> None:
    assert _settings(tmp_path, "") is None
    assert _settings(tmp_path, 'data = ["data", "refs/genome.fa", "./extra"]') == (
        "data", "refs/genome.fa", "./extra"
    )  # fmt: skip
    assert _settings(tmp_path, "data = []") == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"data"', "must be a list of paths"),
        ("[1]", "must be a list of paths"),
        ('[""]', "must be a list of paths"),
        ('["/srv/data"]', "not '/srv/data'"),
        ('["../data"]', "not '../data'"),
        ('["data/../../x"]', "not 'data/../../x'"),
        ('["."]', "not '.'"),
    ],
)
def test_bundle_data_setting_rejects_what_is_not_inside(
    tmp_path: Path, value: str, message: str
) -> None:
    with pytest.raises(ProjectSettingsError, match=r"\[tool\.maestro\] data") as caught:
        _settings(tmp_path, f"data = {value}")
    assert message in str(caught.value)
