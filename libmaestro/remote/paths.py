"""Paths that know which host they live on.

A process that runs over SSH leaves its outputs on that host. Its outputs are `RemotePath`s: a
process on the same host uses them in place, a process elsewhere gets them copied in (and the
copy is recorded), and `maestro.fetch` brings one here explicitly. Nothing is copied back just
because a remote step finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from libmaestro.config.model import SshTarget


@dataclass(frozen=True, slots=True)
class RemotePath:
    """A file or directory on `target` at absolute path `path`."""

    target: SshTarget
    path: PurePosixPath

    def __str__(self) -> str:
        return f"{self.target.label}:{self.path}"

    def __truediv__(self, other: str) -> RemotePath:
        return RemotePath(self.target, self.path / other)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def parent(self) -> RemotePath:
        return RemotePath(self.target, self.path.parent)

    def on(self, target: SshTarget | None) -> bool:
        """True if this path is on `target` (None: this machine)."""
        return target is not None and _same_host(self.target, target)


def _same_host(a: SshTarget, b: SshTarget) -> bool:
    # The same login on the same machine; the working directory may differ.
    return (a.host, a.user, a.port, a.jump) == (b.host, b.user, b.port, b.jump)
