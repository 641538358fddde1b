"""What a running workflow shows: a live rich view on a terminal, plain lines otherwise.

This is the only module of libmaestro that imports rich: a bundled workflow shows the same
display without the CLI. Output goes to stderr, so a workflow's own stdout stays clean.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from libmaestro.errors import MaestroError
from libmaestro.process import fanout_group
from libmaestro.session import EventKind, ProcessEvent, Session

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

MAX_RUNNING_SHOWN = 8


def _rich() -> Any:
    """rich, imported when a live view is first drawn: piped runs never pay its import time."""
    from rich.console import Console, Group
    from rich.live import Live
    from rich.markup import escape
    from rich.text import Text

    return SimpleNamespace(Console=Console, Group=Group, Live=Live, escape=escape, Text=Text)


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class Display(Protocol):
    def start(self, session: Session) -> None: ...
    def handle(self, event: ProcessEvent) -> None: ...
    def finish(self, *, outcome: str) -> None: ...
    def error(self, message: str) -> None: ...


@dataclass(slots=True)
class _Group:
    """The processes of one fan-out (see `fanout_group`)."""

    members: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    first_started: float = 0.0


class _Tally:
    """Counts shared by both displays; events arrive from worker threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.groups: dict[str, _Group] = {}
        self.running: dict[str, float] = {}
        self.succeeded = 0
        self.skipped = 0  # reused from an earlier run (--resume)
        self.failed = 0
        self.interrupted = 0
        self.session: Session | None = None
        self.started = time.monotonic()

    def update(self, event: ProcessEvent) -> _Group:
        """Count `event`; returns the state of the process's fan-out group after it."""
        label = fanout_group(event.process)
        with self.lock:
            group = self.groups.get(label)
            if group is None:
                group = self.groups[label] = _Group()
            if event.kind is EventKind.STARTED:
                now = self.running[event.process] = time.monotonic()
                group.members += 1
                group.running += 1
                group.first_started = group.first_started or now
                return group
            if self.running.pop(event.process, None) is not None:
                group.running -= 1
            if event.kind is EventKind.SKIPPED:
                group.members += 1
                self.skipped += 1
                group.done += 1
            elif event.kind is EventKind.SUCCEEDED:
                self.succeeded += 1
                group.done += 1
            elif event.kind is EventKind.FAILED:
                self.failed += 1
                group.failed += 1
            else:
                self.interrupted += 1
                group.failed += 1
            return group

    def summary(self) -> str:
        parts = [f"{self.succeeded} succeeded"]
        if self.skipped:
            parts.append(f"{self.skipped} skipped (up to date)")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.interrupted:
            parts.append(f"{self.interrupted} interrupted")
        if self.running:
            parts.append(f"{len(self.running)} running")
        return ", ".join(parts)


def _failure_line(event: ProcessEvent) -> str:
    result = event.result
    if event.kind is EventKind.INTERRUPTED:
        why = "interrupted"
    elif result is not None and result.exit_code not in (None, 0):
        why = f"exit code {result.exit_code}"
    elif result is not None and result.signal is not None:
        why = f"killed by signal {result.signal}"
    elif result is None:  # it never ran (runner.run_process: the script could not be started)
        why = "could not start"
    else:
        why = "missing outputs"
    log = f"; stderr: {event.stderr}" if event.stderr else ""
    return f"{event.process} failed ({why}){log}"


class PlainDisplay:
    """One line per event, for logs and pipes.

    While a run is under way, lines are written in batches, at most `FLUSH_INTERVAL` apart (a
    small thread writes what is left when no event comes): a line is a system call, and a
    1,000-process fan-out makes 2,000 of them. A failure and the session's end are written at
    once.
    """

    FLUSH_INTERVAL = 0.1

    def __init__(self, stream: TextIO, *, explain: bool = False) -> None:
        self.stream = stream
        self.explain = explain
        self.tally = _Tally()
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._last_write = 0.0
        self._running = threading.Event()  # set while the flusher thread works

    def _say(self, text: str, *, now: bool = True) -> None:
        line = f"maestro: {text}\n"
        with self._lock:
            self._pending.append(line)
            batching = not now and self._running.is_set()
            if batching and time.monotonic() - self._last_write < self.FLUSH_INTERVAL:
                return  # the next line or the flusher writes it
            self._write_pending()

    def _write_pending(self) -> None:
        """Write the lines waiting (the lock is held)."""
        if self._pending:
            self.stream.write("".join(self._pending))
            self.stream.flush()
            self._pending.clear()
        self._last_write = time.monotonic()

    def _flusher(self) -> None:
        while self._running.is_set():
            time.sleep(self.FLUSH_INTERVAL)
            with self._lock:
                if self._pending:
                    self._write_pending()

    def start(self, session: Session) -> None:
        self.tally.session = session
        self._say(f"session {session.name} in {session.directory}")
        self._running.set()
        threading.Thread(target=self._flusher, name="maestro-display", daemon=True).start()

    def handle(self, event: ProcessEvent) -> None:
        self.tally.update(event)
        if event.kind is EventKind.STARTED:
            why = f": {event.reason}" if self.explain and event.reason else ""
            self._say(f"started {event.process} ({event.executor}){why}", now=False)
        elif event.kind is EventKind.SKIPPED:
            self._say(f"skipped {event.process}: {event.reason}", now=False)
        elif event.kind is EventKind.SUCCEEDED:
            duration = event.result.duration if event.result else 0.0
            self._say(f"done {event.process} in {_seconds(duration)}", now=False)
        else:
            self._say(_failure_line(event))

    def finish(self, *, outcome: str) -> None:
        self._running.clear()
        session = self.tally.session
        elapsed = _seconds(time.monotonic() - self.tally.started)
        name = session.name if session else "-"
        self._say(f"session {name} {outcome}: {self.tally.summary()} in {elapsed}")

    def error(self, message: str) -> None:
        self._running.clear()
        with self._lock:
            self._pending.append(f"maestro: error: {message}\n")
            self._write_pending()


class LiveDisplay:
    """A live view: finished processes scroll above, the running ones and the counts below."""

    def __init__(self, stream: TextIO, *, explain: bool = False) -> None:
        self._r = _rich()
        self.console = self._r.Console(file=stream, highlight=False)
        self.explain = explain
        self.tally = _Tally()
        self.live: Live | None = None
        self._escape = self._r.escape

    def _render(self) -> RenderableType:
        tally = self.tally
        now = time.monotonic()
        r = self._r
        session = tally.session
        waiting = session.scheduler.waiting if session is not None else 0
        with tally.lock:
            running = sorted(tally.running.items(), key=lambda item: item[1])
            head = r.Text.assemble(
                ("maestro ", "bold"),
                (session.name if session else "", "cyan"),
                f"  {_seconds(now - tally.started)}  ",
                (f"{tally.succeeded} done", "green"),
                "  ",
                (f"{len(running)} running", "yellow"),
                "  ",
                (f"{waiting} waiting", "" if waiting else "dim"),
                "  ",
                (f"{tally.failed} failed", "red" if tally.failed else "dim"),
            )
            fanouts = [(label, g) for label, g in tally.groups.items() if g.members > 1]
            fanouts = [(label, replace(g)) for label, g in fanouts]  # a consistent snapshot
        lines: list[RenderableType] = [head]
        grouped = {label for label, _ in fanouts}
        # Fan-outs get one line each however large they are; single processes are listed.
        for label, group in fanouts[-MAX_RUNNING_SHOWN:]:
            line = r.Text(f"  {label} ", style="bold")
            line.append(f"{group.done}/{group.members} done", style="green")
            if group.running:
                line.append(f", {group.running} running", style="yellow")
            if group.failed:
                line.append(f", {group.failed} failed", style="red")
            lines.append(line)
        single = [(n, t) for n, t in running if fanout_group(n) not in grouped]
        for name, since in single[:MAX_RUNNING_SHOWN]:
            lines.append(r.Text(f"  ⠿ {name}  {_seconds(now - since)}", style="yellow"))
        if len(single) > MAX_RUNNING_SHOWN:
            lines.append(r.Text(f"  … and {len(single) - MAX_RUNNING_SHOWN} more running"))
        rendered: RenderableType = r.Group(*lines)
        return rendered

    def start(self, session: Session) -> None:
        self.tally.session = session
        self.console.print(
            f"[bold]maestro[/] session [cyan]{session.name}[/] in {session.directory}"
        )
        self.live = self._r.Live(
            get_renderable=self._render, console=self.console, refresh_per_second=8, transient=True
        )
        self.live.start()

    def handle(self, event: ProcessEvent) -> None:
        group = self.tally.update(event)
        if self.explain and event.reason and event.kind in {EventKind.STARTED, EventKind.SKIPPED}:
            verb = "runs" if event.kind is EventKind.STARTED else "skipped"
            self.console.print(
                f"[cyan]·[/] {self._escape(event.process)} {verb}: {self._escape(event.reason)}"
            )
        if event.kind is EventKind.SKIPPED:
            return
        if event.kind is EventKind.SUCCEEDED:
            if group.members > 1:
                return  # a fan-out's progress is its line in the live view, not 1,000 lines
            duration = event.result.duration if event.result else 0.0
            self.console.print(
                f"[green]✓[/] {self._escape(event.process)} [dim]{_seconds(duration)}[/]"
            )
        elif event.kind is not EventKind.STARTED:
            self.console.print(f"[red]✗ {self._escape(_failure_line(event))}[/]")

    def finish(self, *, outcome: str) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        elapsed = _seconds(time.monotonic() - self.tally.started)
        for label, group in self.tally.groups.items():
            if group.members > 1:
                failed = f", [red]{group.failed} failed[/]" if group.failed else ""
                self.console.print(
                    f"  {self._escape(label)}: {group.done}/{group.members} done{failed}"
                )
        style = "green" if outcome == "succeeded" else "red"
        name = self.tally.session.name if self.tally.session else "-"
        self.console.print(
            f"[{style}]session {name} {outcome}[/]: {self.tally.summary()} in {elapsed}"
        )

    def error(self, message: str) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        self.console.print(f"[red bold]error:[/] {self._escape(message)}")


def make_display(stream: TextIO | None = None, *, explain: bool = False) -> Display:
    """The live view on a terminal, plain lines otherwise (or when MAESTRO_PLAIN=1).

    Args:
        explain: also say why each process runs or is skipped (`maestro run --explain`).
    """
    stream = stream or sys.stderr
    plain = os.environ.get("MAESTRO_PLAIN") == "1" or os.environ.get("TERM") == "dumb"
    if not plain and stream.isatty():
        return LiveDisplay(stream, explain=explain)
    return PlainDisplay(stream, explain=explain)


def error_text(exc: BaseException) -> str:
    """The message of an error as a user should read it."""
    if isinstance(exc, MaestroError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
