"""`maestro ui` end to end: a real server process, real workflow runs, a real headless Chromium.

The store is produced by real runs (`python workflow.py` with MAESTRO_STORE set):

- `diamond`: a -> (b, c) -> d, plus a process whose name is an HTML tag; c fails while the
  project holds a file `bug` (the test removes it before the rerun);
- `slow`: one long step and more queued behind it (MAESTRO_JOBS=1), running while the tests
  start, so a pending step can be aborted; the long step ends when the test says so.

The tests share one server, one browser and these workflows, and run in file order: the
workflow states they expect follow from the actions the earlier tests took.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import build_file_tree
from ui_helpers import XSS_PROCESS

from libmaestro.state import RunState, SqliteStateStore, StepState

pytestmark = pytest.mark.ui

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000
# Read at import: the suite's autouse fixture clears MAESTRO_* for every test.
SCREENSHOTS_TO_DOCS = os.environ.get("MAESTRO_SCREENSHOTS") == "1"
HTML_NAME = "<img src=x onerror=alert(1)>"  # a real process name: no slash, so a directory

DIAMOND = """
import libmaestro as maestro


@maestro.main
def main():
    a = maestro.process(
        name="a", executor="default", inputs={"src": "data/x.txt"}, outputs={"out": "a.txt"},
        script='cat "$src" > "$out"\\necho "a: copied the input"',
    ).out
    b = maestro.process(
        name="b", executor="default", inputs={"src": a}, outputs={"out": "b.txt"},
        script='tr a-z A-Z < "$src" > "$out"',
    ).out
    maestro.process(
        name=HTML_NAME, executor="default", outputs={"out": "e.txt"},
        script='echo "<script>alert(2)</script>" | tee "$out"',
    )
    c = maestro.process(
        name="c", executor="default", inputs={"src": a}, outputs={"out": "c.txt"},
        script=(
            'if [ -e ../../../bug ]; then echo "c: the bug is still there" >&2; exit 3; fi\\n'
            'rev "$src" > "$out"'
        ),
    ).out
    maestro.process(
        name="d", executor="default", inputs={"b": b, "c": c}, outputs={"out": "d.txt"},
        script='cat "$b" "$c" > "$out"',
    )


if __name__ == "__main__":
    main()
""".replace("HTML_NAME", repr(HTML_NAME))

SLOW = """
import os
import threading
import time

import libmaestro as maestro

# `slow` runs until the test creates the project's file `release` (60 s at most), so the steps
# queued behind it (MAESTRO_JOBS=1) stay pending as long as the test needs. It marks that it
# holds the only slot with the file `holding`; the fan-out starts after that, so at least two
# of its steps are recorded pending (a fan-out's steps are recorded as the scheduler's workers
# reach them) and none can take the slot first.
WAIT = 'for _ in $(seq 600); do [ -e ../../../release ] && break; sleep 0.1; done'
HOLD = 'touch ../../../holding'


def step(name):
    script = HOLD + '\\n' + WAIT + '\\necho done > "$out"' if name == "slow" else 'echo ok > "$out"'
    return maestro.process(
        name=name, executor="default", outputs={"out": f"{name}.txt"}, script=script
    )


@maestro.main
def main():
    slow = threading.Thread(target=step, args=("slow",))
    slow.start()
    for _ in range(600):
        if os.path.exists("holding"):
            break
        time.sleep(0.1)
    maestro.raise_failures(maestro.parallelize(["queued_1", "queued_2", "queued_3"], step))
    slow.join()


if __name__ == "__main__":
    main()
"""


def _environment(home: Path, store: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env.update(HOME=str(home), MAESTRO_STORE=str(store), NO_COLOR="1", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[str]) -> None:
    """End a process this module started (by its own handle), politely first."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


def _read_address(process: subprocess.Popen[str], timeout: float = 20) -> str:
    """The address `maestro ui` prints on stdout once it listens."""
    stdout = process.stdout
    assert stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        line = ""
    found = re.search(r"listening on (\S+)", line)
    if found is None:
        raise AssertionError(f"maestro ui did not start: exit {process.poll()}, said {line!r}")
    return found.group(1)


@dataclass
class World:
    """Everything the tests share."""

    root: Path
    store_path: Path
    env: dict[str, str]
    diamond: Path
    slow: Path
    diamond_session: str
    slow_session: str
    base: str
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    shots: Path = Path()
    dialogs: list[str] = field(default_factory=list)

    def store(self) -> SqliteStateStore:
        return SqliteStateStore(self.store_path)

    def states(self, session: str) -> dict[str, StepState]:
        with self.store() as store:
            workflow = store.get_workflow(session)
            return {a.process: a.state for a in store.aggregated_steps(workflow.id)}

    def shot(self, page: Any, name: str, *, full_page: bool = True) -> None:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        if SCREENSHOTS_TO_DOCS:
            docs = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
            docs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, docs / f"ui-{name}.png")


def _wait(condition: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("ui-e2e")
    store_path = root / "store" / "state.db"
    env = _environment(root / "home", store_path)
    (root / "home").mkdir()
    local = '[executor.default]\ntype = "Local"\n'
    diamond = build_file_tree(
        root / "diamond",
        {"Maestro.toml": local, "data/x.txt": "hello\n", "bug": "", "workflow.py": DIAMOND},
    )
    slow = build_file_tree(root / "slow", {"Maestro.toml": local, "workflow.py": SLOW})
    processes: list[subprocess.Popen[str]] = []
    try:
        done = subprocess.run(
            [sys.executable, "workflow.py"],
            cwd=diamond,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr  # c fails: the bug is there
        running = subprocess.Popen(
            [sys.executable, "workflow.py"],
            cwd=slow,
            env={**env, "MAESTRO_JOBS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        processes.append(running)
        with SqliteStateStore(store_path) as store:
            _wait(lambda: store.count_workflows() == 2, "the slow workflow to be recorded")
            diamond_session = store.list_workflows(search="diamond")[0].workflow.session
            slow_session = store.list_workflows(search="slow")[0].workflow.session
            slow_id = store.get_workflow(slow_session).id

            def pending() -> int:
                steps = store.aggregated_steps(slow_id)
                return sum(s.state is StepState.PENDING for s in steps)

            _wait(lambda: pending() >= 2, "two steps to wait behind the slow one")
            # A process name no real run can have (it holds a slash), recorded directly.
            wf = store.create_workflow(
                session="xss-store", project="demo", entry="x.py", metadata={"note": HTML_NAME}
            )
            run = store.start_run(wf.id, pid=1, pid_start_time=None)
            step = store.start_step(run.id, process=XSS_PROCESS)
            store.fail_step(step.id, exit_code=1)
            store.finish_run(run.id, RunState.FAILED)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "maestro_cli", "ui", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        processes.append(server)
        base = _read_address(server)
        assert base == f"http://127.0.0.1:{port}/"
        shots = root / "screenshots"
        shots.mkdir()
        yield World(
            root,
            store_path,
            env,
            diamond,
            slow,
            diamond_session,
            slow_session,
            base,
            processes,
            shots,
        )
    finally:
        for process in processes:
            _stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the dev group installs it
        _unavailable(f"playwright is not installed: {exc}")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _unavailable(reason: str) -> None:
    # Under CI a missing browser is a broken machine, not a reason to pass.
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def page(browser: Any, world: World) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()

    def on_dialog(dialog: Any) -> None:  # an alert() means markup ran: record it, dismiss it
        world.dialogs.append(dialog.message)
        dialog.dismiss()

    opened.on("dialog", on_dialog)
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def _row(page: Any, session: str) -> Any:
    return page.locator(f'tr[data-session="{session}"]')


def _confirm(page: Any) -> str:
    """Read the plan in the confirmation dialog, confirm it, wait for 'done'; return the plan."""
    dialog = page.locator("dialog#confirm")
    dialog.locator('[data-testid="summary"]').wait_for()
    text = str(dialog.inner_text())
    dialog.locator('[data-testid="confirm"]').click()
    dialog.locator('[data-testid="done"]').wait_for()
    dialog.locator("button[data-close]").first.click()
    return text


def test_abort_a_pending_step_of_a_running_workflow(page: Any, world: World) -> None:
    from playwright.sync_api import expect

    page.goto(world.base + f"w/{world.slow_session}")
    # The queued steps are one fan-out, folded: expand it.
    page.locator('button[data-toggle-group="queued"]').click()
    page.locator("tr[data-step] .state.pending").first.wait_for()
    row = page.locator("tr[data-step]", has=page.locator(".state.pending")).first
    name = row.get_attribute("data-step")
    world.shot(page, "running-workflow")
    row.get_by_role("link", name="Details").click()
    details = page.locator("dialog#details")
    details.get_by_role("tab", name="Action").click()
    details.locator('[data-testid="abort-step"] button').click()
    plan = _confirm(page)

    assert f"abort pending step '{name}'" in plan
    with world.store() as store:
        (action,) = store.actions(store.get_workflow(world.slow_session).id)
    assert action.what == "abort" and action.details["steps"] == [name]
    # Once the slow step ends, the aborted one never starts; the others run.
    (world.slow / "release").touch()
    _wait(lambda: world.states(world.slow_session).get("slow") is StepState.SUCCEEDED, "slow")
    _wait(
        lambda: (
            not any(
                s.value in {"pending", "running"} for s in world.states(world.slow_session).values()
            )
        ),
        "the run to end",
    )
    states = world.states(world.slow_session)
    assert states[str(name)] is StepState.ABORTED, states
    assert sum(s is StepState.SUCCEEDED for s in states.values()) == 3, states
    page.reload()
    expect(page.locator(f'tr[data-step="{name}"] .state')).to_have_text("aborted")


def test_list_search_and_errors_only(page: Any, world: World) -> None:
    from playwright.sync_api import expect

    page.goto(world.base)
    rows = page.locator("tr[data-session]")
    expect(rows).to_have_count(3)
    world.shot(page, "dashboard")

    page.fill("#q", "diamond")
    expect(rows).to_have_count(1)
    expect(_row(page, world.diamond_session)).to_be_visible()
    assert "q=diamond" in page.url  # the search is in the address, for reload and sharing

    page.fill("#q", "")
    expect(rows).to_have_count(3)
    page.locator('label[for="errors"]').click()
    expect(rows).to_have_count(2)  # the failed diamond and the failed xss-store
    expect(_row(page, world.slow_session)).to_have_count(0)
    world.shot(page, "errors-only")


def test_failed_step_shows_its_stderr(page: Any, world: World) -> None:
    from playwright.sync_api import expect

    page.goto(world.base)
    _row(page, world.diamond_session).get_by_role("link", name=world.diamond_session).click()
    page.locator("#graph svg").wait_for()
    expect(page.locator('#graph g.node:has(title:text-is("c"))')).to_have_count(1)
    world.shot(page, "workflow")
    # A process of the graph opens its details, as its row's button does.
    page.locator('#graph g.node:has(title:text-is("c"))').click()
    details = page.locator("dialog#details")
    expect(details).to_be_visible()
    # A failed step opens on its standard error.
    expect(details.get_by_role("tab", name="stderr")).to_have_attribute("aria-selected", "true")
    expect(details.locator('[data-testid="log-text"]')).to_contain_text("c: the bug is still there")
    world.shot(page, "step-stderr", full_page=False)
    details.get_by_role("tab", name="stdout").click()
    expect(details.locator("#log-block")).to_have_attribute("data-stream", "stdout")
    details.get_by_role("tab", name="Input artefacts (1)").click()
    expect(details.locator("table.artefacts")).to_contain_text("a.txt")
    expect(details.locator("table.artefacts")).not_to_contain_text("propagate")


def test_markup_in_names_is_shown_as_text(page: Any, world: World) -> None:
    from playwright.sync_api import expect

    page.goto(world.base)
    expect(_row(page, "xss-store")).to_contain_text(f"note={HTML_NAME}")
    page.goto(world.base + "w/xss-store")
    expect(page.locator("table.steps")).to_contain_text(XSS_PROCESS)
    page.goto(world.base + f"w/{world.diamond_session}")
    html_row = page.locator("tr[data-step]", has_text=HTML_NAME)
    expect(html_row).to_have_count(1)
    page.locator("#graph svg").wait_for()
    html_row.get_by_role("link", name="Details").click()
    page.locator("dialog#details").get_by_role("tab", name="stdout").click()
    expect(page.locator('[data-testid="log-text"]')).to_have_text("<script>alert(2)</script>\n")
    page.wait_for_timeout(300)
    assert world.dialogs == [], f"markup ran: {world.dialogs}"
    assert page.locator("img[src=x]").count() == 0


def test_rerun_a_failed_step(page: Any, world: World) -> None:
    from playwright.sync_api import expect

    (world.diamond / "bug").unlink()  # the fix
    page.goto(world.base + f"w/{world.diamond_session}")
    page.locator('tr[data-step="c"]').get_by_role("link", name="Details").click()
    details = page.locator("dialog#details")
    details.get_by_role("tab", name="Action").click()
    details.locator('[data-testid="rerun-step"] button').click()
    plan = _confirm(page)

    assert "rerun 1 step of session" in plan and "(c)" in plan
    page.keyboard.press("Escape")  # the details dialog
    # The page follows the detached resume until it ends.
    expect(page.locator("h1 .state")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator('tr[data-step="d"] .state')).to_have_text("succeeded")
    expect(page.locator('tr[data-step="a"] td').nth(2)).to_have_text("1")  # a: from run 1
    expect(page.locator('tr[data-step="c"] td').nth(2)).to_have_text("2")  # c: run 2
    world.shot(page, "after-rerun")


def _diamond_succeeded(world: World) -> None:
    """Bring the diamond session to all four steps succeeded, as `test_rerun_a_failed_step`
    leaves it, so that a test needing it passes when run alone too."""
    if world.states(world.diamond_session).get("c") is StepState.SUCCEEDED:
        return
    (world.diamond / "bug").unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "workflow.py"],
        cwd=world.diamond,
        env={**world.env, "MAESTRO_RESUME": world.diamond_session},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_invalidate_with_propagation(page: Any, world: World) -> None:
    from playwright.sync_api import expect

    _diamond_succeeded(world)
    session_dir = world.diamond / "maestro_work" / world.diamond_session
    outputs = [session_dir / name / f"{name}.txt" for name in "abcd"]
    page.goto(world.base + f"w/{world.diamond_session}")
    page.locator('tr[data-step="a"]').get_by_role("link", name="Details").click()
    details = page.locator("dialog#details")
    details.get_by_role("tab", name="Action").click()
    form = details.locator('[data-testid="invalidate-step"]')
    form.get_by_label("propagate downstream").check()
    form.get_by_role("button").click()
    confirm = page.locator("dialog#confirm")
    confirm.locator('[data-testid="plan-files"]').wait_for()
    for output in outputs:
        expect(confirm.locator('[data-testid="plan-files"]')).to_contain_text(str(output))
    assert all(p.exists() for p in outputs), "nothing is deleted before the confirmation"
    world.shot(page, "confirm-invalidate", full_page=False)
    plan = _confirm(page)

    assert "invalidate 4 steps" in plan
    assert not any(p.exists() for p in outputs)
    states = world.states(world.diamond_session)
    assert {states[p] for p in "abcd"} == {StepState.INVALIDATED}
    assert states[HTML_NAME] is StepState.SUCCEEDED  # not downstream of a
    expect(details.locator(".dialog-head .state")).to_have_text("invalidated")  # refreshed
    page.keyboard.press("Escape")
    expect(page.locator('tr[data-step="d"] .state')).to_have_text("invalidated")
    expect(page.locator("table.history")).to_contain_text("invalidate-step")


def test_cross_origin_post_is_refused(page: Any, world: World) -> None:
    page.goto(world.base)
    csrf = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    form = {"kind": "invalidate-workflow", "session": world.slow_session, "csrf_token": csrf}
    # Even with the right CSRF token, a request from another origin is refused.
    forged = page.request.post(
        world.base + "actions/apply", form=form, headers={"Origin": "http://evil.example"}
    )
    assert forged.status == 403
    # A real page of another site that posts a form to the UI gets nowhere either.
    page.route(
        "http://evil.example/",
        lambda route: route.fulfill(
            content_type="text/html",
            body=(
                f'<form id="f" method="post" action="{world.base}actions/apply">'
                '<input name="kind" value="invalidate-workflow">'
                f'<input name="session" value="{world.slow_session}"></form>'
                '<script>document.getElementById("f").submit()</script>'
            ),
        ),
    )
    with page.expect_response(world.base + "actions/apply") as response:
        page.goto("http://evil.example/")
    assert response.value.status == 403
    with world.store() as store:
        whats = [a.what for a in store.actions(store.get_workflow(world.slow_session).id)]
    assert whats == ["abort"]  # only the first test's


def test_off_loopback_needs_the_token(page: Any, world: World) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "maestro_cli", "ui", "--host", "0.0.0.0", "--port", str(port)],
        cwd=world.root,
        env=world.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    world.processes.append(server)
    try:
        address = _read_address(server)
        token = address.split("?token=", 1)[1]
        assert len(token) >= 24
        refused = page.goto(f"http://127.0.0.1:{port}/")
        assert refused is not None and refused.status == 401
        page.goto(f"http://127.0.0.1:{port}/?token={token}")
        assert page.url == f"http://127.0.0.1:{port}/"  # the token left the address bar
        page.locator(f'tr[data-session="{world.diamond_session}"]').wait_for()
        page.context.clear_cookies()
        assert page.request.get(f"http://127.0.0.1:{port}/?token=nope").status == 401
    finally:
        _stop(server)
    assert world.dialogs == []
