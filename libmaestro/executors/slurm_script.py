"""The sbatch script of one job: directives from the executor's configuration, then the command.

The script is written into the process's working directory and submitted from there, so
`sbatch .maestro.sbatch` by hand reproduces the job exactly. Every option is a `#SBATCH` line
rather than an sbatch argument, for that reason. The command itself arrives as an argv list and
is shell-quoted here; nothing a user wrote is ever pasted into shell text unquoted.
"""

from __future__ import annotations

import re
import shlex

from libmaestro.config.model import SBATCH_VALUE, ExecutorConfig, Memory, SlurmConfig
from libmaestro.errors import SubmitError
from libmaestro.jobs import JobSpec

SBATCH_FILE = ".maestro.sbatch"  # the submitted script, kept for debugging
EXIT_FILE = ".maestro.exit"  # "<exit code> <started> <ended>", written by the job itself

# Job names carry the session so `squeue --name`/`scancel --name` find a run's jobs by hand.
JOB_NAME_PREFIX = "maestro"


# Options whose values maestro makes itself (from paths and names), quoted when they must be.
_OWN_OPTIONS = frozenset({"job-name", "chdir", "output", "error"})
_QUOTABLE = re.compile(r'[^"\\\n]+')


def job_name(session: str, process: str) -> str:
    """`maestro.<session>.<process>`: readable in squeue and unique within a session."""
    return f"{JOB_NAME_PREFIX}.{session}.{process}"


def sbatch_options(slurm: SlurmConfig) -> list[tuple[str, str | None]]:
    """The executor's Slurm fields as (long option, value) pairs, in the order of the docs."""
    options: list[tuple[str, str | None]] = []
    if slurm.cpus is not None:
        options.append(("cpus-per-task", str(slurm.cpus)))
    if slurm.memory is not None:
        flag = "mem-per-cpu" if slurm.memory.type is Memory.PER_CPU else "mem"
        options.append((flag, f"{slurm.memory.amount}M"))
    if slurm.gpus is not None:
        options.append(("gpus", str(slurm.gpus)))
    if slurm.tasks is not None:
        options.append(("ntasks", str(slurm.tasks)))
    if slurm.nodes is not None:
        options.append(("nodes", str(slurm.nodes)))
    if slurm.partition is not None:
        options.append(("partition", slurm.partition))
    if slurm.time is not None:
        options.append(("time", slurm.time.to_slurm()))
    if slurm.account is not None:
        options.append(("account", slurm.account))
    if slurm.mail_user is not None:
        options.append(("mail-user", slurm.mail_user))
    if slurm.mail_type:
        options.append(("mail-type", ",".join(m.value for m in slurm.mail_type)))
    options.extend(slurm.additional_options)
    return options


def _directive(executor: str, option: str, value: str | None) -> str:
    if value is None:
        return f"#SBATCH --{option}"
    if SBATCH_VALUE.fullmatch(value):
        return f"#SBATCH --{option}={value}"
    if option in _OWN_OPTIONS and _QUOTABLE.fullmatch(value):
        # maestro's own paths and names may hold spaces ("My Project/"); Slurm reads a
        # double-quoted directive value as one word (checked against Slurm 22.05).
        return f'#SBATCH --{option}="{value}"'
    raise SubmitError(
        f'executor "{executor}": the value {value!r} of sbatch option --{option} contains '
        "spaces, quotes or shell characters, which a #SBATCH line cannot carry; use a "
        "value without them"
    )


def render(executor: ExecutorConfig, spec: JobSpec) -> str:
    """The complete batch script for `spec` under `executor`."""
    assert executor.slurm is not None
    workdir = spec.workdir
    exit_file = shlex.quote(str(workdir / EXIT_FILE))
    directives = [
        ("job-name", job_name(spec.session, spec.process)),
        ("chdir", str(workdir)),
        # Slurm expands %j, %x, ... in these two; a literal % is written %%.
        ("output", str(spec.stdout).replace("%", "%%")),
        ("error", str(spec.stderr).replace("%", "%%")),
        ("export", "ALL"),  # the injected variables travel in sbatch's environment
        *sbatch_options(executor.slurm),
    ]
    lines = [
        "#!/bin/bash",
        f"# maestro: process {spec.process!r} of session {spec.session!r}, "
        f"executor {executor.name!r}",
        *(_directive(executor.name, option, value) for option, value in directives),
        "",
        "# The exit status goes to a file as well as to Slurm: without accounting storage a",
        "# finished job's exit code is gone from the scheduler within minutes.",
        "started=$(date +%s.%N)",
        shlex.join(spec.argv),
        "code=$?",
        f'printf "%s %s %s\\n" "$code" "$started" "$(date +%s.%N)" > {exit_file}',
        'exit "$code"',
        "",
    ]
    return "\n".join(lines)
