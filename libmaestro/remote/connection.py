"""One persistent SSH connection per host, shared by every process and transfer of a program.

asyncssh runs on an event loop in a thread of its own; the rest of maestro is threaded, so each
call here is a plain blocking function that submits a coroutine to that loop. Commands and SFTP
transfers are channels multiplexed over the host's one connection.

Authentication follows the user's ~/.ssh/config (aliases, User, Port, IdentityFile, ProxyJump,
UserKnownHostsFile): keys, the SSH agent, then password and keyboard-interactive (2FA). Those
last two ask on the terminal, once per host: the answers are kept in memory for reconnects.
Without a terminal, a program named by $SSH_ASKPASS answers (as for OpenSSH).

A dropped connection is reconnected with backoff, and the command that failed is retried:
every command maestro sends is written to be safe to repeat (see `libmaestro.remote.backend`).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from libmaestro.config.model import SshTarget
from libmaestro.errors import MaestroError

log = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT = 20.0
# Reconnection after a drop: waits grow from 0.5 s to 10 s; give up after this long in all.
RECONNECT_FOR = 300.0
COMMAND_TIMEOUT = 120.0


class SshError(MaestroError):
    """A host cannot be reached, refuses to log us in, or a remote command could not be run."""


@dataclass(frozen=True, slots=True)
class RemoteResult:
    exit_status: int
    stdout: str
    stderr: str


class Prompter:
    """Asks the user for what a server's password or keyboard-interactive login wants."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one question on the terminal at a time

    def ask(self, host: str, prompt: str, *, echo: bool) -> str:
        with self._lock:
            askpass = os.environ.get("SSH_ASKPASS")
            if askpass and (os.environ.get("SSH_ASKPASS_REQUIRE") == "force" or not _has_tty()):
                done = subprocess.run(
                    [askpass, f"{host}: {prompt}"], capture_output=True, text=True, check=False
                )
                if done.returncode != 0:
                    raise SshError(f"{host}: {askpass} did not answer the login prompt {prompt!r}")
                return done.stdout.rstrip("\n")
            if not _has_tty():
                raise SshError(
                    f"{host} asks {prompt.strip()!r} but there is no terminal to ask on; log in "
                    "with a key or the SSH agent, or set SSH_ASKPASS to a program that answers"
                )
            question = f"[maestro] {host}: {prompt}"
            if echo:
                with open("/dev/tty", "r+", encoding="utf-8") as tty:
                    tty.write(question)
                    tty.flush()
                    return tty.readline().rstrip("\n")
            return getpass.getpass(question)


def _has_tty() -> bool:
    try:
        with open("/dev/tty", encoding="utf-8"):
            return True
    except OSError:
        return False


class _Client(asyncssh.SSHClient):
    """Answers password and keyboard-interactive logins through the Prompter, once per host."""

    def __init__(self, host: Host) -> None:
        self._host = host

    def password_auth_requested(self) -> Awaitable[str] | str | None:
        return self._host.answer("password", "Password: ", echo=False)

    def kbdint_auth_requested(self) -> str:
        return ""  # let the server choose its submethods

    def kbdint_challenge_received(
        self, name: str, instructions: str, lang: str, prompts: Sequence[tuple[str, bool]]
    ) -> Sequence[str] | None:
        del lang
        if instructions:
            log.info("%s: %s", self._host.label, instructions)
        return [self._host.answer(f"kbd:{name}:{p}", p, echo=e) for p, e in prompts]


class _Loop:
    """The event loop thread every SSH connection of the program lives on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="maestro-ssh", daemon=True
        )
        self.thread.start()

    def call(self, coroutine: Awaitable[T], timeout: float | None) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)  # type: ignore[arg-type]
        return future.result(timeout)


class Host:
    """A host's one connection: commands, file transfers, reconnection. Thread-safe."""

    def __init__(self, target: SshTarget, loop: _Loop, prompter: Prompter) -> None:
        self.target = target
        self.label = target.label
        self._loop = loop
        self._prompter = prompter
        self._answers: dict[str, str] = {}
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._connecting: asyncio.Lock | None = None
        self.home: str | None = None
        self.connects = 0  # how many times a connection was made (1 + reconnections)

    # -- authentication answers ---------------------------------------------------------------

    def answer(self, key: str, prompt: str, *, echo: bool) -> str:
        if key not in self._answers:
            self._answers[key] = self._prompter.ask(self.label, prompt, echo=echo)
        return self._answers[key]

    # -- connection ------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        t = self.target
        options: dict[str, Any] = {
            "client_factory": lambda: _Client(self),
            "connect_timeout": CONNECT_TIMEOUT,
            "keepalive_interval": 15,
            "keepalive_count_max": 4,
        }
        if t.user:
            options["username"] = t.user
        if t.port:
            options["port"] = t.port
        if t.identity:
            options["client_keys"] = [str(t.identity)]
        if t.jump:
            options["tunnel"] = t.jump
        return options

    async def _connection(self) -> asyncssh.SSHClientConnection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            self._sftp = None
            try:
                self._conn = await asyncssh.connect(self.target.host, **self._options())
            except asyncssh.PermissionDenied as exc:
                self._answers.clear()  # wrong answers must be asked again, not replayed
                raise SshError(f"{self.label}: login refused ({exc.reason})") from None
            except asyncssh.HostKeyNotVerifiable as exc:
                raise SshError(
                    f"{self.label}: the host key is not trusted ({exc.reason}); connect once "
                    f"with `ssh {self.label}` to check and accept it"
                ) from None
            except (TimeoutError, OSError, asyncssh.Error) as exc:
                reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
                raise SshError(f"{self.label}: cannot connect ({reason})") from None
            if self.connects:
                log.warning("%s: the connection dropped; reconnected", self.label)
            self.connects += 1
            return self._conn

    def connect(self) -> None:
        """Connect now (the startup check) and learn the remote home directory."""
        self.home = self.run('printf %s "$HOME"', retry=False).stdout

    async def _run(self, command: str, stdin: str | None) -> RemoteResult:
        conn = await self._connection()
        done = await conn.run(command, input=stdin, check=False)
        status = done.exit_status if done.exit_status is not None else 255
        return RemoteResult(status, str(done.stdout or ""), str(done.stderr or ""))

    def _with_reconnect(self, make: Callable[[], Awaitable[T]], *, retry: bool, what: str) -> T:
        deadline = time.monotonic() + RECONNECT_FOR
        wait = 0.5
        while True:
            try:
                return self._loop.call(make(), COMMAND_TIMEOUT)
            except SshError:
                if not retry or time.monotonic() > deadline:
                    raise
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                if not retry or time.monotonic() > deadline:
                    raise SshError(f"{self.label}: {what} failed ({exc})") from None
                log.warning(
                    "%s: connection lost (%s); reconnecting in %.1f s", self.label, exc, wait
                )
            time.sleep(wait)
            wait = min(wait * 2, 10.0)

    def run(self, command: str, *, stdin: str | None = None, retry: bool = True) -> RemoteResult:
        """Run a shell command on the host; reconnect and repeat it if the connection drops."""
        return self._with_reconnect(
            lambda: self._run(command, stdin), retry=retry, what=command[:60]
        )

    def run_argv(self, argv: Sequence[str], **kwargs: Any) -> RemoteResult:
        return self.run(shlex.join(argv), **kwargs)

    # -- files -----------------------------------------------------------------------------------

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        conn = await self._connection()
        if self._sftp is None:
            self._sftp = await conn.start_sftp_client()
        return self._sftp

    def put(
        self, local: Path, remote: str, *, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Copy a local file or directory to `remote` (a path on the host)."""

        async def transfer() -> None:
            sftp = await self._sftp_client()
            handler = (
                None if progress is None else (lambda _s, _d, done, total: progress(done, total))
            )
            await sftp.put(str(local), remote, recurse=local.is_dir(), preserve=True,
                           progress_handler=handler)  # fmt: skip

        self._with_reconnect(transfer, retry=True, what=f"copying {local} to {self.label}")

    def get(
        self, remote: str, local: Path, *, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Copy `remote` (a file or directory on the host) to the local path `local`."""

        async def transfer() -> None:
            sftp = await self._sftp_client()
            handler = (
                None if progress is None else (lambda _s, _d, done, total: progress(done, total))
            )
            recurse = await sftp.isdir(remote)
            await sftp.get(remote, str(local), recurse=recurse, preserve=True,
                           progress_handler=handler)  # fmt: skip

        self._with_reconnect(transfer, retry=True, what=f"copying {remote} from {self.label}")

    def write_text(self, remote: str, text: str, *, mode: int = 0o644) -> None:
        async def write() -> None:
            sftp = await self._sftp_client()
            async with sftp.open(remote, "w") as handle:
                await handle.write(text)
            await sftp.chmod(remote, mode)

        self._with_reconnect(write, retry=True, what=f"writing {remote} on {self.label}")

    def close(self) -> None:
        if self._conn is not None:
            conn = self._conn
            self._conn = None
            self._loop.loop.call_soon_threadsafe(conn.close)

    def drop(self) -> None:
        """Abort the connection as a network failure would (used by tests of reconnection)."""
        if self._conn is not None:
            conn = self._conn
            self._loop.loop.call_soon_threadsafe(conn.abort)


Progress = Callable[[int, int], None]  # (bytes done, bytes in all) of the current file


def _handler(progress: Progress | None) -> Callable[[bytes, bytes, int, int], None] | None:
    if progress is None:
        return None
    return lambda _src, _dst, done, total: progress(done, total)


class Hosts:
    """The program's connections, one per host, made on first use or all at once at startup."""

    def __init__(self) -> None:
        self._loop: _Loop | None = None
        self._hosts: dict[SshTarget, Host] = {}
        self._lock = threading.Lock()
        self.prompter = Prompter()

    def get(self, target: SshTarget) -> Host:
        with self._lock:
            if self._loop is None:
                self._loop = _Loop()
            found = self._hosts.get(target)
            if found is None:
                found = self._hosts[target] = Host(target, self._loop, self.prompter)
            return found

    def connect_all(self, targets: Sequence[SshTarget]) -> list[str]:
        """Connect to every host (one after another: a login may ask on the terminal).

        Returns one problem per host that could not be reached, with the reason.
        """
        problems = []
        for target in dict.fromkeys(targets):
            try:
                self.get(target).connect()
            except SshError as exc:
                problems.append(str(exc))
        return problems


_hosts = Hosts()


def hosts() -> Hosts:
    """The program's one registry of SSH connections."""
    return _hosts
