"""Running a process's script inside a container (Podman, Docker or Apptainer).

The working directory is bound at the same path inside the container, so every path maestro
hands the script (its inputs, which a container forces to be copied in, its outputs, the
script itself) means the same thing on both sides. The injected variables are passed by name
(`-e NAME`): their values travel in the environment, never on a command line.

Podman and Docker run the container under a client process, and killing that client leaves
the container running (its init, PID 1, ignores SIGTERM). So the command is a small bash
launcher that starts the client in the background and, on SIGTERM/SIGINT/SIGHUP (an abort,
Ctrl-C, `maestro kill`, Slurm's scancel), removes the container by name before it exits. The
same launcher reports a missing runtime with the command that fixes it.

A SIGKILL of the orchestrator (`maestro kill --force`) never reaches that trap, and the
container lives under conmon or dockerd, outside the run's process tree. So every Podman and
Docker container carries the label `maestro.session=<session>`, and `remove_session_containers`
(called by `maestro kill` once the tree is stopped) removes whatever still has it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from libmaestro.config.model import Container, ContainerRuntime

# Arguments: runtime binary, flavour (podman|docker|apptainer), container name, install hint,
# then the runtime's arguments.
LAUNCHER = r"""
runtime=$1 flavour=$2 name=$3 hint=$4; shift 4
if ! command -v "$runtime" >/dev/null 2>&1; then
  echo "maestro: the container runtime '$runtime' is not installed on $(hostname);" \
       "$hint, or remove 'container' from the executor" >&2
  exit 127
fi
if [ "$flavour" = apptainer ]; then
  exec "$runtime" "$@"
fi
remove() {
  if [ "$flavour" = podman ]; then "$runtime" rm -f -t 0 "$name"; else "$runtime" rm -f "$name"; fi
}
trap 'remove >/dev/null 2>&1; exit 143' TERM INT HUP
"$runtime" "$@" &
wait $!
"""

_BINARIES = {
    ContainerRuntime.PODMAN: ("podman",),
    ContainerRuntime.DOCKER: ("docker",),
    ContainerRuntime.APPTAINER: ("apptainer", "singularity"),
}
_INSTALL_HINTS = {
    ContainerRuntime.PODMAN: "install it (Debian/Ubuntu: apt-get install podman)",
    ContainerRuntime.DOCKER: "install it (https://docs.docker.com/engine/install/)",
    ContainerRuntime.APPTAINER: "install it (https://apptainer.org/docs/admin/main/installation.html)"
    " or load its module",
}
SESSION_LABEL = "maestro.session"  # podman/docker label: the session that started the container
_ENGINES = (("podman", ContainerRuntime.PODMAN), ("docker", ContainerRuntime.DOCKER))
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]+")
# An Apptainer image named by a URI is fetched by apptainer itself; only a file can be checked.
_URI = re.compile(r"^[a-z]+://")


def runtime_binary(runtime: ContainerRuntime) -> str:
    """The runtime's command: the first of its names found on PATH, else its usual name."""
    names = _BINARIES[runtime]
    return next((n for n in names if shutil.which(n)), names[0])


def container_name(session: str, process: str) -> str:
    """A name unique to this attempt, readable in `podman ps`: maestro-<session>-<process>-<hex>."""
    safe = _NAME_UNSAFE.sub("_", process)[:80]
    return f"maestro-{session}-{safe}-{os.urandom(3).hex()}"  # secrets.token_hex(3), see _names


def session_of_container(name: str) -> str:
    """The session in a name made by `container_name` (session names have no hyphen)."""
    return name.removeprefix("maestro-").split("-", 1)[0]


def container_command(
    container: Container,
    *,
    name: str,
    workdir: Path,
    command: Sequence[str],
    env_names: Iterable[str],
    session: str | None = None,
) -> list[str]:
    """The argv that runs `command` inside `container` with `workdir` bound at the same path.

    `session` labels a Podman/Docker container (`maestro.session=...`) so that `maestro kill`
    finds it; by default it is taken from `name`, as `container_name` made it.
    """
    binary = runtime_binary(container.runtime)
    where = str(workdir)
    match container.runtime:
        case ContainerRuntime.APPTAINER:
            # Apptainer passes the whole host environment by default and runs as the user.
            args = ["exec", "--bind", f"{where}:{where}", "--pwd", where, container.image]
        case ContainerRuntime.PODMAN | ContainerRuntime.DOCKER:
            label = f"{SESSION_LABEL}={session or session_of_container(name)}"
            args = ["run", "--rm", "--name", name, "--label", label, "--network=host",
                    "--volume", f"{where}:{where}", "--workdir", where]  # fmt: skip
            if container.runtime is ContainerRuntime.DOCKER:
                # Docker's daemon runs as root: without this, the outputs would belong to root
                # and the user could not delete them. (Rootless Podman maps the user itself.)
                args += ["--user", f"{os.getuid()}:{os.getgid()}"]
            # With --user, Docker leaves HOME at /, which the user cannot write to; tools that
            # keep a cache or config in HOME get the working directory instead. A variable of
            # the process named HOME, passed below, still wins.
            args += ["--env", f"HOME={where}"]
            for var in env_names:
                args += ["--env", var]
            args.append(container.image)
    return [
        "bash", "-c", LAUNCHER, "maestro-container",
        binary, binary_flavour(container.runtime), name, _INSTALL_HINTS[container.runtime],
        *args, *command,
    ]  # fmt: skip


def binary_flavour(runtime: ContainerRuntime) -> str:
    return runtime.value.lower()


def runtime_problem(container: Container, executor: str) -> str | None:
    """Why `container` cannot run on this machine (runtime or image missing), or None.

    Run at startup for Local executors, so a missing image is reported before anything runs.
    """
    runtime = container.runtime
    binary = runtime_binary(runtime)
    if shutil.which(binary) is None:
        return (
            f'executor "{executor}" runs its processes in {runtime.value}, but "{binary}" is '
            f"not on PATH; {_INSTALL_HINTS[runtime]}, or remove `container` from the executor"
        )
    image = container.image
    if runtime is ContainerRuntime.APPTAINER:
        if _URI.match(image) or Path(image).expanduser().exists():
            return None
        return (
            f'executor "{executor}": the Apptainer image {image} does not exist; build or pull '
            f"it (apptainer pull {image} docker://IMAGE) or fix the path"
        )
    argv = [binary, "image", "exists", image] if runtime is ContainerRuntime.PODMAN else [
        binary, "image", "inspect", "--format", "{{.Id}}", image]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f'executor "{executor}": could not ask {binary} about image {image}: {exc}'
    if done.returncode == 0:
        return None
    detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    if runtime is ContainerRuntime.DOCKER and "No such image" not in detail:
        return f'executor "{executor}": {binary} could not be asked about image {image}: {detail}'
    return (
        f'executor "{executor}": the image {image} is not in {binary}\'s local images; fetch it '
        f"with `{binary} pull {image}` (or build it) and run again"
    )


def remove_session_containers(session: str) -> list[str]:
    """Remove every Podman and Docker container labelled with `session`; returns their ids.

    Each runtime found on PATH is asked; one that fails (no daemon, say) is passed over.
    """
    removed: list[str] = []
    for binary, runtime in _ENGINES:
        if shutil.which(binary) is None:
            continue
        listing = [binary, "ps", "-aq", "--filter", f"label={SESSION_LABEL}={session}"]
        try:
            found = subprocess.run(listing, capture_output=True, text=True, timeout=60, check=False)
            ids = found.stdout.split() if found.returncode == 0 else []
            if not ids:
                continue
            force = ["rm", "-f", "-t", "0"] if runtime is ContainerRuntime.PODMAN else ["rm", "-f"]
            subprocess.run(
                [binary, *force, *ids], capture_output=True, text=True, timeout=120, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        removed += ids
    return removed
