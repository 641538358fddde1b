"""The configuration as frozen values: what Maestro.toml (or code) says an executor is.

These types are also the programmatic API: `SlurmConfig(cpus=4, memory=MemoryConfig(...))`
builds the same value the loader builds from `[executor.x]`. Nothing here does I/O.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# What a value on a `#SBATCH` line may contain: Slurm splits those lines itself and does not
# handle every quoting form, so values that would need quoting are refused when the file loads.
SBATCH_VALUE = re.compile(r"[^\s\"'\\#`$]+")


class StagingMode(enum.Enum):
    """How inputs are placed into a process's working directory."""

    SYMLINK = "Symlink"
    COPY = "Copy"
    HARDLINK = "Hardlink"
    NONE = "None"  # absolute paths, used in place

    # The names of the original Python stub, as aliases of the same members.
    Symlink = "Symlink"
    Copy = "Copy"
    Hardlink = "Hardlink"


class ContainerRuntime(enum.Enum):
    PODMAN = "Podman"
    DOCKER = "Docker"
    APPTAINER = "Apptainer"


@dataclass(frozen=True, slots=True)
class Container:
    """A container image and the runtime that runs it."""

    runtime: ContainerRuntime
    image: str

    @classmethod
    def podman(cls, image: str) -> Container:
        return cls(ContainerRuntime.PODMAN, image)

    @classmethod
    def docker(cls, image: str) -> Container:
        return cls(ContainerRuntime.DOCKER, image)

    @classmethod
    def apptainer(cls, image: str) -> Container:
        return cls(ContainerRuntime.APPTAINER, image)

    # The original stub spelled the variants with capitals: Container.Podman("img").
    Podman = podman
    Docker = docker
    Apptainer = apptainer


class Memory(enum.Enum):
    """Whether a memory amount is per allocated CPU (`--mem-per-cpu`) or per node (`--mem`)."""

    PER_CPU = "per_cpu"
    PER_NODE = "per_node"

    PerCpu = "per_cpu"
    PerNode = "per_node"


@dataclass(frozen=True, slots=True)
class MemoryConfig:
    """An amount of memory in megabytes."""

    type: Memory
    amount: int


class MailType(enum.Enum):
    """The values Slurm accepts for `--mail-type`."""

    NONE = "NONE"
    BEGIN = "BEGIN"
    END = "END"
    FAIL = "FAIL"
    REQUEUE = "REQUEUE"
    ALL = "ALL"
    INVALID_DEPEND = "INVALID_DEPEND"
    STAGE_OUT = "STAGE_OUT"
    TIME_LIMIT = "TIME_LIMIT"
    TIME_LIMIT_90 = "TIME_LIMIT_90"
    TIME_LIMIT_80 = "TIME_LIMIT_80"
    TIME_LIMIT_50 = "TIME_LIMIT_50"
    ARRAY_TASKS = "ARRAY_TASKS"


@dataclass(frozen=True, slots=True)
class TimeLimit:
    """A wall-clock limit; at least one component is non-zero."""

    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    @property
    def total_seconds(self) -> int:
        return ((self.days * 24 + self.hours) * 60 + self.minutes) * 60 + self.seconds

    def to_slurm(self) -> str:
        """Slurm's `days-hours:minutes:seconds` form, normalised (90 minutes -> 0-01:30:00)."""
        rest = self.total_seconds
        days, rest = divmod(rest, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{days}-{hours:02d}:{minutes:02d}:{seconds:02d}"


@dataclass(frozen=True, slots=True)
class SlurmConfig:
    """Everything a Slurm executor passes to sbatch. `None` means "leave it to the cluster"."""

    cpus: int | None = None
    memory: MemoryConfig | None = None
    gpus: int | None = None
    tasks: int | None = None
    nodes: int | None = None
    partition: str | None = None
    time: TimeLimit | None = None
    account: str | None = None
    mail_user: str | None = None
    mail_type: tuple[MailType, ...] = ()
    # Each entry is (option, value) for `--option=value`, or (option, None) for a bare flag.
    additional_options: tuple[tuple[str, str | None], ...] = ()
    # maestro's own: the longest wait in seconds between two status queries (squeue) for this
    # executor's jobs; polling starts fast and backs off to this while nothing changes.
    poll_interval: int | None = None


@dataclass(frozen=True, slots=True)
class SshTarget:
    """Where an executor runs its processes over SSH: `ssh = "user@host"` or a table.

    Unset fields come from the user's ~/.ssh/config for `host` (which may be an alias there),
    then from SSH's defaults.
    """

    host: str
    user: str | None = None
    port: int | None = None
    identity: Path | None = None  # a private key file
    jump: str | None = None  # a jump host, "user@host[:port]" (ProxyJump)
    remote_workdir: str | None = None  # where sessions go on the host (default ~/maestro_work)

    @classmethod
    def parse(cls, text: str) -> SshTarget:
        """`host`, `user@host` or `user@host:port`."""
        user, _, rest = text.rpartition("@")
        host, _, port = rest.partition(":")
        return cls(host=host, user=user or None, port=int(port) if port.isdigit() else None)

    @property
    def label(self) -> str:
        """`user@host:port` as far as known, for messages."""
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.host}{port}"


class ExecutorType(enum.Enum):
    LOCAL = "Local"
    SLURM = "Slurm"


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """One `[executor.NAME]` table after inheritance was resolved."""

    name: str
    type: ExecutorType
    container: Container | None = None
    staging_mode: StagingMode = StagingMode.SYMLINK
    modules: tuple[str, ...] = ()
    cpus: int | None = None  # CPUs per process; Local ones are accounted against the machine
    max_parallel: int | None = None  # at most this many processes at once (Slurm: queued + running)
    slurm: SlurmConfig | None = None  # set exactly when type is SLURM
    ssh: SshTarget | None = None  # run on (Local) or submit from (Slurm) this host over SSH
    line: int | None = None  # where the table starts in its file, for messages

    def __hash__(self) -> int:
        # By name and type only: equal configs still hash equal, and an executor is looked up
        # (backends, cache keys) several times for every process, where hashing every field,
        # nested ones included, was a measurable share of the work.
        return hash((self.name, self.type))

    @property
    def effective_staging(self) -> StagingMode:
        """A container sees only the working directory, so it forces Copy (as the original did)."""
        return StagingMode.COPY if self.container is not None else self.staging_mode


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """A whole Maestro.toml: `[args]`, `[inputs]` and `[executor.*]`."""

    path: Path | None = None
    args: Mapping[str, str] = field(default_factory=dict)
    inputs: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    executors: Mapping[str, ExecutorConfig] = field(default_factory=dict)
    # Line of each key, for messages that point into the file: ("args", "init_msg") -> 3.
    lines: Mapping[tuple[str, str], int] = field(default_factory=dict)
