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
"""

from __future__ import annotations

import os
import re
import secrets
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
    return f"maestro-{session}-{safe}-{secrets.token_hex(3)}"


def container_command(
    container: Container,
    *,
    name: str,
    workdir: Path,
    command: Sequence[str],
    env_names: Iterable[str],
) -> list[str]:
    """The argv that runs `command` inside `container` with `workdir` bound at the same path."""
    binary = runtime_binary(container.runtime)
    where = str(workdir)
    match container.runtime:
        case ContainerRuntime.APPTAINER:
            # Apptainer passes the whole host environment by default and runs as the user.
            args = ["exec", "--bind", f"{where}:{where}", "--pwd", where, container.image]
        case ContainerRuntime.PODMAN | ContainerRuntime.DOCKER:
            args = ["run", "--rm", "--name", name, "--network=host", "--volume", f"{where}:{where}",
                    "--workdir", where]  # fmt: skip
            if container.runtime is ContainerRuntime.DOCKER:
                # Docker's daemon runs as root: without this, the outputs would belong to root
                # and the user could not delete them. (Rootless Podman maps the user itself.)
                args += ["--user", f"{os.getuid()}:{os.getgid()}"]
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
