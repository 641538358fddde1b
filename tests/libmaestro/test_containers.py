"""Tests for running a script in a container, and after `module load`, as the job's argv.

No container runtime is needed: stand-in `podman`, `docker` and `apptainer` executables on PATH
record the arguments they get (NUL-separated) and behave like the real ones where it matters
(Apptainer's stand-in runs the command after the image; the others exit or wait to be removed).
The argv maestro builds is run as it is, with the real bash launcher in front of it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from helpers import kill_leftovers, processes_with, wait_for

from libmaestro.analysis import ConfigReference, ReferenceKind
from libmaestro.config.model import (
    Container,
    ContainerRuntime,
    ExecutorConfig,
    ExecutorType,
    ProjectConfig,
)
from libmaestro.containers import (
    container_command,
    container_name,
    remove_session_containers,
    runtime_problem,
    session_of_container,
)
from libmaestro.launch import job_command
from libmaestro.process import Process
from libmaestro.session import Session
from libmaestro.startup import check_backends

IMAGE = "docker.io/library/bash:5"
BINARY = {
    ContainerRuntime.PODMAN: "podman",
    ContainerRuntime.DOCKER: "docker",
    ContainerRuntime.APPTAINER: "apptainer",
}

# podman/docker: `run` records its argv (and $SECRET_VAR) and exits $FAKE_CODE, or with
# $FAKE_HANG waits until the container is removed; `rm` records and "removes" it; `ps` records
# (as <binary>.ps.args) and prints $FAKE_PS_IDS; `image` records and exits $FAKE_IMAGE_CODE
# after printing $FAKE_IMAGE_STDERR.
ENGINE_STAND_IN = r"""#!/bin/bash
rec=RECORDS
case $1 in
  run)
    printf '%s\0' "$@" > "$rec/run.args"
    printf '%s' "${SECRET_VAR-unset}" > "$rec/run.env"
    if [ -n "${FAKE_HANG-}" ]; then
      while [ ! -e "$rec/removed" ]; do sleep 0.05; done
      exit 137
    fi
    exit "${FAKE_CODE:-0}";;
  rm)
    printf '%s\0' "$@" > "$rec/rm.args"
    printf '%s\0' "$@" > "$rec/${0##*/}.rm.args"
    touch "$rec/removed";;
  ps)
    printf '%s\0' "$@" > "$rec/${0##*/}.ps.args"
    printf '%s' "${FAKE_PS_IDS-}";;
  image)
    printf '%s\0' "$@" > "$rec/image.args"
    printf '%s' "${FAKE_IMAGE_STDERR-}" >&2
    exit "${FAKE_IMAGE_CODE:-0}";;
esac
"""

# apptainer: records its argv and $SECRET_VAR, honours --pwd, skips its options up to and
# including the image, then runs the rest (the command) as `apptainer exec` does.
APPTAINER_STAND_IN = r"""#!/bin/bash
rec=RECORDS
printf '%s\0' "$@" > "$rec/apptainer.args"
printf '%s' "${SECRET_VAR-unset}" > "$rec/apptainer.env"
shift  # exec
while [ $# -gt 0 ]; do
  case $1 in
    --pwd) cd "$2" || exit 255; shift 2;;
    --bind) shift 2;;
    --*) shift;;
    *) shift; break;;  # the image
  esac
done
exec "$@"
"""


@pytest.fixture
def records(tmp_path: Path) -> Path:
    directory = tmp_path / "records"
    directory.mkdir()
    return directory


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """A directory with only what the launchers themselves need (bash, hostname)."""
    directory = tmp_path / "tools"
    directory.mkdir()
    for name in ("bash", "hostname", "sleep", "touch"):
        found = shutil.which(name)
        assert found is not None, name
        (directory / name).symlink_to(found)
    return directory


@pytest.fixture
def stand_ins(tmp_path: Path, records: Path, tools: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in podman, docker and apptainer; PATH is them and `tools` only, no real runtime."""
    directory = tmp_path / "runtimes"
    directory.mkdir()
    for name, text in (
        ("podman", ENGINE_STAND_IN),
        ("docker", ENGINE_STAND_IN),
        ("apptainer", APPTAINER_STAND_IN),
    ):
        path = directory / name
        path.write_text(text.replace("RECORDS", shlex.quote(str(records))))
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{tools}")
    return directory


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A process's working directory with `.maestro.sh`, which reports where and what it saw."""
    directory = tmp_path / "session" / "step"
    directory.mkdir(parents=True)
    script = directory / ".maestro.sh"
    script.write_text(
        "#!/bin/bash\n"
        "printf '%s' \"$PWD\" > ran_in.txt\n"
        "printf '%s' \"${SECRET_VAR-unset}\" > secret_seen.txt\n"
        "exit 5\n"
    )
    script.chmod(0o755)
    return directory


def recorded(path: Path) -> list[str]:
    return path.read_text().split("\0")[:-1]


def values_after(args: Sequence[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == flag]


def run(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


VARIABLES = {
    "SECRET_VAR": "hunter2 value",
    "MAESTRO_PROCESS": "value-of-process",
    "reads": "/data/value-of-reads.fq",
}


# --- the container's arguments -------------------------------------------------------------


@pytest.mark.parametrize("runtime", [ContainerRuntime.PODMAN, ContainerRuntime.DOCKER])
def test_containers_podman_and_docker_get_workdir_names_and_image(
    stand_ins: Path, records: Path, workdir: Path, runtime: ContainerRuntime
) -> None:
    script = str(workdir / ".maestro.sh")
    name = container_name("brave_otter", "step")
    argv = container_command(
        Container(runtime, IMAGE), name=name, workdir=workdir, command=[script],
        env_names=VARIABLES,
    )  # fmt: skip
    done = run(argv, cwd=workdir, env={**VARIABLES, "FAKE_CODE": "5"})
    assert done.returncode == 5, done.stderr  # the container's exit status passes through
    args = recorded(records / "run.args")
    assert args[0] == "run"
    assert "--rm" in args
    assert values_after(args, "--name") == [name]
    assert values_after(args, "--volume") == [f"{workdir}:{workdir}"]  # bound at the same path
    assert values_after(args, "--workdir") == [str(workdir)]
    # Labelled with the session, so `maestro kill` finds it after a SIGKILL of the launcher.
    assert values_after(args, "--label") == ["maestro.session=brave_otter"]
    # HOME is the working directory: with Docker's --user it would be / otherwise, not writable.
    envs = values_after(args, "--env")
    assert envs[0] == f"HOME={workdir}"
    assert sorted(envs[1:]) == sorted(VARIABLES)  # the variables by name ...
    for value in VARIABLES.values():  # ... never by value, on any command line
        assert not any(value in arg for arg in argv)
    assert (records / "run.env").read_text() == "hunter2 value"  # it travels in the environment
    if runtime is ContainerRuntime.DOCKER:
        assert values_after(args, "--user") == [f"{os.getuid()}:{os.getgid()}"]
    else:
        assert "--user" not in args  # rootless Podman maps the user itself
    assert args[-2:] == [IMAGE, script]


def test_containers_apptainer_runs_the_script_in_the_workdir(
    stand_ins: Path, records: Path, workdir: Path, tmp_path: Path
) -> None:
    script = str(workdir / ".maestro.sh")
    image = str(tmp_path / "bash.sif")
    argv = container_command(
        Container.apptainer(image), name=container_name("brave_otter", "step"),
        workdir=workdir, command=[script], env_names=VARIABLES,
    )  # fmt: skip
    done = run(argv, cwd=tmp_path, env=VARIABLES)
    assert done.returncode == 5, done.stderr
    assert (workdir / "ran_in.txt").read_text() == str(workdir)
    assert (workdir / "secret_seen.txt").read_text() == "hunter2 value"
    args = recorded(records / "apptainer.args")
    assert args[0] == "exec"
    assert values_after(args, "--bind") == [f"{workdir}:{workdir}"]
    assert values_after(args, "--pwd") == [str(workdir)]
    assert args[-2:] == [image, script]
    for flag in ("--env", "--rm", "--name", "--user"):
        assert flag not in args
    assert not any("hunter2" in arg for arg in argv)


@pytest.mark.parametrize(
    ("runtime", "removal"),
    [(ContainerRuntime.PODMAN, ["rm", "-f", "-t", "0"]), (ContainerRuntime.DOCKER, ["rm", "-f"])],
)
def test_containers_sigterm_removes_the_container(
    stand_ins: Path,
    records: Path,
    workdir: Path,
    runtime: ContainerRuntime,
    removal: list[str],
) -> None:
    """Killing the client leaves a container running: an abort must remove it by name."""
    name = container_name("brave_otter", "step")
    argv = container_command(
        Container(runtime, IMAGE), name=name, workdir=workdir,
        command=[str(workdir / ".maestro.sh")], env_names=(),
    )  # fmt: skip
    launcher = subprocess.Popen(
        argv, cwd=workdir, env={**os.environ, "FAKE_HANG": "1"}, stdout=subprocess.DEVNULL
    )
    try:
        wait_for((records / "run.args").exists, timeout=20, what="the container to start")
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=20) == 143
        assert recorded(records / "rm.args") == [*removal, name]
        wait_for(lambda: not processes_with(name), timeout=20, what="the client to end")
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        kill_leftovers(name)


def test_containers_label_names_the_session_given_or_from_the_name(
    stand_ins: Path, records: Path, workdir: Path
) -> None:
    for session in ("brave_otter", "calm_heron_1234"):
        name = container_name(session, "align-sample 1")
        assert session_of_container(name) == session
    argv = container_command(
        Container.podman(IMAGE), name="maestro-other_name-step-abcdef", workdir=workdir,
        command=[str(workdir / ".maestro.sh")], env_names=(), session="brave_otter",
    )  # fmt: skip
    assert run(argv, cwd=workdir).returncode == 0
    args = recorded(records / "run.args")
    assert values_after(args, "--label") == ["maestro.session=brave_otter"]


def test_containers_remove_session_containers_asks_each_runtime(
    stand_ins: Path, records: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PS_IDS", "abc123\ndef456\n")
    assert remove_session_containers("brave_otter") == ["abc123", "def456"] * 2
    for binary in ("podman", "docker"):
        listing = recorded(records / f"{binary}.ps.args")
        assert listing == ["ps", "-aq", "--filter", "label=maestro.session=brave_otter"]
    assert recorded(records / "podman.rm.args") == ["rm", "-f", "-t", "0", "abc123", "def456"]
    assert recorded(records / "docker.rm.args") == ["rm", "-f", "abc123", "def456"]


def test_containers_remove_session_containers_without_any(
    stand_ins: Path, records: Path, tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert remove_session_containers("brave_otter") == []  # none labelled: nothing removed
    assert not (records / "rm.args").exists()
    monkeypatch.setenv("PATH", str(tools))  # no runtime at all
    assert remove_session_containers("brave_otter") == []


@pytest.mark.parametrize("runtime", list(ContainerRuntime))
def test_containers_missing_runtime_says_how_to_fix(
    tools: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch, runtime: ContainerRuntime
) -> None:
    monkeypatch.setenv("PATH", str(tools))
    argv = container_command(
        Container(runtime, IMAGE), name=container_name("brave_otter", "step"), workdir=workdir,
        command=[str(workdir / ".maestro.sh")], env_names=(),
    )  # fmt: skip
    done = run(argv, cwd=workdir)
    assert done.returncode == 127
    assert f"container runtime '{BINARY[runtime]}' is not installed" in done.stderr
    assert "install it" in done.stderr
    assert "remove 'container' from the executor" in done.stderr
    assert not (workdir / "ran_in.txt").exists()


# --- container names -----------------------------------------------------------------------

# Docker's rule for container names (podman's is the same).
DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


@pytest.mark.parametrize(
    "process", ["step", "align sample 1", "a:b@c/d", "naïve", "it's $HOME", "x" * 200]
)
def test_containers_name_is_a_valid_container_name(session: Session, process: str) -> None:
    name = container_name(session.name, process)
    assert DOCKER_NAME.fullmatch(name), name
    assert session.name in name  # readable in `podman ps`
    assert len(name) < 128


def test_containers_name_is_unique_per_attempt(session: Session) -> None:
    names = {container_name(session.name, "step") for _ in range(20)}
    assert len(names) == 20


# --- runtime_problem: checked at startup ---------------------------------------------------


@pytest.mark.parametrize("runtime", list(ContainerRuntime))
def test_containers_problem_missing_runtime(
    tools: Path, monkeypatch: pytest.MonkeyPatch, runtime: ContainerRuntime
) -> None:
    monkeypatch.setenv("PATH", str(tools))
    problem = runtime_problem(Container(runtime, IMAGE), "boxed")
    assert problem is not None
    assert f'"{BINARY[runtime]}" is not on PATH' in problem
    assert '"boxed"' in problem
    assert "install it" in problem


def test_containers_problem_apptainer_image_file(stand_ins: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.sif"
    problem = runtime_problem(Container.apptainer(str(missing)), "boxed")
    assert problem is not None
    assert str(missing) in problem
    assert "does not exist" in problem
    assert "apptainer pull" in problem
    present = tmp_path / "present.sif"
    present.write_bytes(b"SIF")
    assert runtime_problem(Container.apptainer(str(present)), "boxed") is None
    (Path.home() / "home.sif").write_bytes(b"SIF")
    assert runtime_problem(Container.apptainer("~/home.sif"), "boxed") is None
    # An image named by a URI is fetched by apptainer itself.
    assert runtime_problem(Container.apptainer("docker://alpine:3"), "boxed") is None


@pytest.mark.parametrize("runtime", [ContainerRuntime.PODMAN, ContainerRuntime.DOCKER])
def test_containers_problem_image_present(
    stand_ins: Path, records: Path, runtime: ContainerRuntime
) -> None:
    assert runtime_problem(Container(runtime, IMAGE), "boxed") is None
    args = recorded(records / "image.args")
    assert args[0] == "image"
    assert args[-1] == IMAGE


@pytest.mark.parametrize(
    ("runtime", "stderr"),
    [
        (ContainerRuntime.PODMAN, ""),
        (ContainerRuntime.DOCKER, f"Error response from daemon: No such image: {IMAGE}\n"),
    ],
)
def test_containers_problem_image_missing_says_how_to_pull(
    stand_ins: Path, monkeypatch: pytest.MonkeyPatch, runtime: ContainerRuntime, stderr: str
) -> None:
    monkeypatch.setenv("FAKE_IMAGE_CODE", "1")
    monkeypatch.setenv("FAKE_IMAGE_STDERR", stderr)
    problem = runtime_problem(Container(runtime, IMAGE), "boxed")
    assert problem is not None
    assert f"{BINARY[runtime]} pull {IMAGE}" in problem
    assert '"boxed"' in problem


def test_containers_problem_docker_daemon_down_is_not_a_missing_image(
    stand_ins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    detail = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."
    monkeypatch.setenv("FAKE_IMAGE_CODE", "1")
    monkeypatch.setenv("FAKE_IMAGE_STDERR", detail + "\n")
    problem = runtime_problem(Container.docker(IMAGE), "boxed")
    assert problem is not None
    assert detail in problem
    assert "pull" not in problem


def test_containers_startup_reports_a_missing_image_at_the_executor(
    stand_ins: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FAKE_IMAGE_CODE", "1")
    toml = tmp_path / "Maestro.toml"
    config = ProjectConfig(
        path=toml,
        executors={
            "boxed": ExecutorConfig(
                name="boxed", type=ExecutorType.LOCAL, container=Container.podman(IMAGE), line=4
            ),
            "plain": ExecutorConfig(name="plain", type=ExecutorType.LOCAL, line=1),
        },
    )
    references = [
        ConfigReference(ReferenceKind.EXECUTOR, name, tmp_path / "flow.py", line, 5)
        for name, line in (("boxed", 10), ("plain", 11), ("boxed", 12))
    ]
    problems = check_backends(config, references)
    assert len(problems) == 1  # once per executor, however often it is used
    assert (problems[0].file, problems[0].line) == (toml, 4)
    assert f"podman pull {IMAGE}" in problems[0].message


# --- modules (launch.job_command) -------------------------------------------------------------

# A module system of our own: `module load` records its arguments and puts the module's bin
# directory (which provides `from-module`, and an `apptainer`) on PATH; `FAIL_LOAD` fails it.
MODULE_INIT = r"""
module() {
  if [ "$1" = load ]; then
    printf '%s\0' "$@" > RECORDS/module.args
    [ -z "${FAIL_LOAD-}" ] || return 1
    export PATH="$MODULESHOME/bin:$PATH"
  fi
}
"""
SYSTEM_MODULE_INITS = (
    "/etc/profile.d/modules.sh",
    "/etc/profile.d/lmod.sh",
    "/usr/share/lmod/lmod/init/bash",
)


@pytest.fixture
def moduleshome(tmp_path: Path, records: Path, tools: Path) -> Path:
    home = tmp_path / "modules"
    (home / "init").mkdir(parents=True)
    (home / "init" / "bash").write_text(MODULE_INIT.replace("RECORDS", shlex.quote(str(records))))
    (home / "bin").mkdir()
    tool = home / "bin" / "from-module"
    tool.write_text("#!/bin/bash\necho provided by the module\n")
    tool.chmod(0o755)
    apptainer = home / "bin" / "apptainer"
    apptainer.write_text(APPTAINER_STAND_IN.replace("RECORDS", shlex.quote(str(records))))
    apptainer.chmod(0o755)
    return home


@pytest.fixture
def module_script(session: Session) -> Callable[[str], Path]:
    def write(body: str) -> Path:
        directory = session.directory / "step"
        directory.mkdir(exist_ok=True)
        script = directory / ".maestro.sh"
        script.write_text("#!/bin/bash\n" + body)
        script.chmod(0o755)
        return script

    return write


def module_command(
    session: Session, script: Path, modules: Sequence[str], container: Container | None = None
) -> list[str]:
    executor = ExecutorConfig(
        name="cluster", type=ExecutorType.LOCAL, modules=tuple(modules), container=container
    )
    process = Process(name="step", script="true")
    return job_command(
        str(script), script.parent, executor, session=session, process=process, variables=VARIABLES
    )


@pytest.fixture
def no_module_system(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MODULESHOME", raising=False)
    monkeypatch.delenv("BASH_ENV", raising=False)
    if any(Path(p).exists() for p in SYSTEM_MODULE_INITS):
        pytest.skip("this host has a module system; the test needs one without")
    yield


def test_containers_modules_are_loaded_before_the_script_runs(
    session: Session,
    moduleshome: Path,
    records: Path,
    module_script: Callable[[str], Path],
    no_module_system: None,
) -> None:
    script = module_script("from-module > seen.txt\nexit 6\n")
    modules = ["gcc/12.2", "with space", "$(touch pwned)", "`touch pwned2`", "$HOME;x"]
    argv = module_command(session, script, modules)
    done = run(argv, cwd=script.parent, env={"MODULESHOME": str(moduleshome)})
    assert done.returncode == 6, done.stderr  # the script's own status
    assert (script.parent / "seen.txt").read_text() == "provided by the module\n"
    assert recorded(records / "module.args") == ["load", *modules]  # verbatim, not evaluated
    assert not (script.parent / "pwned").exists()
    assert not (script.parent / "pwned2").exists()


def test_containers_modules_without_a_module_system_say_so(
    session: Session, module_script: Callable[[str], Path], no_module_system: None
) -> None:
    script = module_script("touch ran.txt\n")
    argv = module_command(session, script, ["gcc/12.2", "$(touch pwned)"])
    done = run(argv, cwd=script.parent)
    assert done.returncode == 127
    assert "no 'module' command" in done.stderr
    assert "gcc/12.2 $(touch pwned)" in done.stderr  # named, and still not evaluated
    assert "remove 'modules'" in done.stderr
    assert not (script.parent / "ran.txt").exists()
    assert not (script.parent / "pwned").exists()


def test_containers_failing_module_load_stops_the_job(
    session: Session,
    moduleshome: Path,
    module_script: Callable[[str], Path],
    no_module_system: None,
) -> None:
    script = module_script("touch ran.txt\n")
    argv = module_command(session, script, ["nosuch/1.0"])
    done = run(argv, cwd=script.parent, env={"MODULESHOME": str(moduleshome), "FAIL_LOAD": "1"})
    assert done.returncode == 127
    assert "'module load nosuch/1.0' failed" in done.stderr
    assert not (script.parent / "ran.txt").exists()


def test_containers_modules_provide_the_container_runtime(
    session: Session,
    moduleshome: Path,
    records: Path,
    tools: Path,
    module_script: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    no_module_system: None,
) -> None:
    """On clusters `module load apptainer` is what puts the runtime on PATH."""
    monkeypatch.setenv("PATH", str(tools))  # no runtime until the module is loaded
    script = module_script("printf '%s' \"$SECRET_VAR\" > secret_seen.txt\nexit 4\n")
    argv = module_command(
        session, script, ["apptainer/1.3"], container=Container.apptainer("docker://bash:5")
    )
    done = run(argv, cwd=script.parent, env={**VARIABLES, "MODULESHOME": str(moduleshome)})
    assert done.returncode == 4, done.stderr
    assert (script.parent / "secret_seen.txt").read_text() == "hunter2 value"
    assert recorded(records / "module.args") == ["load", "apptainer/1.3"]
    assert recorded(records / "apptainer.args")[-2:] == ["docker://bash:5", str(script)]
