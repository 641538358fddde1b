"""How a process's script is started: its argv and its environment.

A plain local job starts the script's interpreter from its `#!` line; a containerised one runs
inside `podman`/`docker`/`apptainer`; an executor with `modules` loads them first. The script
sees maestro's variables (MAESTRO_SESSION, MAESTRO_PROCESS, MAESTRO_WORKDIR), its inputs,
outputs and args as environment variables.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path, PurePath

from libmaestro.config.model import ExecutorConfig, ExecutorType
from libmaestro.containers import container_command, container_name
from libmaestro.process import Process
from libmaestro.session import Session

# `module` is a shell function that login shells define; a job started from Python has no login
# shell, so look for the usual init scripts first. Module names arrive as arguments ("$@"), never
# as text inside this program: first their count, then the names, then the command to exec.
MODULE_LAUNCHER = r"""
count=$1; shift
modules=("${@:1:$count}"); shift "$count"
if ! type module >/dev/null 2>&1; then
  for init in "${MODULESHOME:-/nonexistent}/init/bash" /etc/profile.d/modules.sh \
              /etc/profile.d/lmod.sh /usr/share/lmod/lmod/init/bash; do
    if [ -r "$init" ]; then . "$init"; break; fi
  done
fi
if ! type module >/dev/null 2>&1; then
  echo "maestro: the executor lists modules (${modules[*]}) but this host has no 'module'" \
       "command (Environment Modules or Lmod); install one or remove 'modules' from the" \
       "executor" >&2
  exit 127
fi
module load "${modules[@]}" || { echo "maestro: 'module load ${modules[*]}' failed" >&2; exit 127; }
exec "$@"
"""


_SHEBANG_BYTES = 256  # how much of a script the kernel reads for its `#!` line (BINPRM_BUF_SIZE)


def shebang_command(text: str, script: str) -> list[str] | None:
    """The argv the kernel makes of `script` from its `#!` line, or None to let the kernel do it.

    Starting the interpreter ourselves is what exec'ing the script does anyway (same argv, same
    program), but the script is then only read, never executed. Executing a file fails with
    ETXTBSY ("Text file busy") while any process has it open for writing, and another thread's
    fork can inherit the descriptor of a script being written for an instant.
    """
    interpreter = _shebang_interpreter(text)
    return None if interpreter is None else [*interpreter, script]


@functools.lru_cache(maxsize=1024)
def _shebang_interpreter(text: str) -> tuple[str, ...] | None:
    """The interpreter and its argument from a script's `#!` line (cached: fan-outs repeat it).

    Only the common form is handled: an absolute interpreter path and at most one argument,
    parsed as Linux parses it (spaces and tabs separate; the argument is the rest of the line).
    """
    end = text.find("\n", 0, _SHEBANG_BYTES)
    if end < 0 or not text.startswith("#!"):
        return None
    line = text[2:end]
    if not line.isascii() or "\0" in line:
        return None
    line = line.strip(" \t")
    cut = min((i for i in (line.find(" "), line.find("\t")) if i >= 0), default=len(line))
    interpreter, argument = line[:cut], line[cut:].lstrip(" \t")
    if not interpreter.startswith("/"):
        return None  # relative or bare names resolve differently for the kernel and for Popen
    return (interpreter, argument) if argument else (interpreter,)


def job_command(
    script: str,
    workdir: Path,
    executor: ExecutorConfig,
    *,
    session: Session,
    process: Process,
    variables: dict[str, str],
) -> list[str]:
    """The job's argv: `script` (in `workdir`), inside its container if any, after `module load`
    if any.

    Modules are loaded outside the container: on clusters they are what provides the runtime.
    A plain local job starts the script's interpreter directly (see `shebang_command`).
    """
    if (
        executor.type is ExecutorType.LOCAL
        and executor.container is None
        and not executor.modules
        and (direct := shebang_command(process.prepared.text, script)) is not None
    ):
        return direct
    command = [script]
    if executor.container is not None:
        command = container_command(
            executor.container,
            name=container_name(session.name, process.name),
            workdir=workdir,
            command=command,
            env_names=variables,
        )
    if executor.modules:
        modules = executor.modules
        command = ["bash", "-c", MODULE_LAUNCHER, "maestro-modules", str(len(modules)),
                   *modules, *command]  # fmt: skip
    return command


def job_variables(
    session: Session,
    process: Process,
    workdir: PurePath,
    staged: Mapping[str, str],
    outputs: Mapping[str, PurePath],
) -> dict[str, str]:
    """The variables maestro injects into the script: its own, the inputs, outputs and args.

    `workdir` and `outputs` (the outputs' paths in it) are paths on the host that runs the
    script: this machine's, or an SSH host's (`PurePosixPath`).
    """
    ours: dict[str, str] = {
        "MAESTRO_SESSION": session.name,
        "MAESTRO_PROCESS": process.name,
        "MAESTRO_WORKDIR": str(workdir),
    }
    ours.update(staged)
    ours.update({var: str(path) for var, path in outputs.items()})
    ours.update(process.args)
    return ours


def _current_environment() -> dict[bytes, bytes]:
    """A copy of this program's environment as it is now, as bytes.

    CPython keeps it as a dict of bytes behind `os.environb`; copying that dict is a hundred
    times faster than `os.environb.copy()`, which checks every entry, for every process.
    """
    data = getattr(os.environb, "_data", None)
    if isinstance(data, dict):
        return dict(data)
    return os.environb.copy()


def job_environment(variables: dict[str, str]) -> dict[bytes, bytes]:
    # Bytes, not str: decoding the whole environment for every process costs more than the
    # rest of maestro's bookkeeping for it.
    env = _current_environment()
    env.update({os.fsencode(k): os.fsencode(v) for k, v in variables.items()})
    return env
