"""The UI's pages over a real store: dashboard, list, search, paging, workflow, step, logs."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from starlette.testclient import TestClient
from ui_helpers import XSS_PROCESS, XSS_TAG, Recorded

from libmaestro.state import SqliteStateStore, StepState
from libmaestro.ui import UiSettings, create_app


def sessions_in(html: str) -> list[str]:
    """The sessions of the listing, in the order shown."""
    return re.findall(r'<tr data-session="([^"]+)">', html)


def test_index_shows_dashboard_and_list_newest_first(
    client: TestClient, recorded: Recorded
) -> None:
    response = client.get("/")

    assert response.status_code == 200, response.text
    html = response.text
    assert sessions_in(html) == list(reversed(recorded.sessions))
    # The dashboard counts workflows per state (the running one's process is this test).
    counts = dict(re.findall(r'data-testid="count-(\w+)">\s*<span class="count">(\d+)', html))
    assert counts == {
        "running": "1",
        "succeeded": "6",
        "failed": "1",
        "aborted": "1",
        "interrupted": "1",
    }
    failures = html[html.index("Recent failures") : html.index("</section>")]
    assert "beta-failed" in failures and "delta-interrupted" in failures
    assert "alpha-ok" not in failures
    assert "1\u201310 of 10" in html
    # Metadata and the rollup are in the row.
    row = html[html.index('<tr data-session="alpha-ok">') :]
    row = row[: row.index("</tr>")]
    assert "batch=b7" in row and "sample=S1" in row
    assert '<rect class="succeeded"' in row and "5 succeeded" in row


def test_list_search_matches_name_project_and_metadata(client: TestClient) -> None:
    assert sessions_in(client.get("/fragments/list?q=alpha").text) == ["alpha-ok"]
    by_project = sessions_in(client.get("/fragments/list?q=rnaseq").text)
    assert by_project == ["omega-running", "beta-failed", "alpha-ok"]
    assert sessions_in(client.get("/fragments/list?q=S2").text) == ["beta-failed"]
    assert sessions_in(client.get("/fragments/list?q=batch%3Db1").text) == [
        "old-run-3",
        "old-run-1",
    ]
    empty = client.get("/fragments/list?q=no-such-thing").text
    assert sessions_in(empty) == [] and 'data-testid="no-match"' in empty


def test_list_errors_only_and_state_filter(client: TestClient) -> None:
    errors = sessions_in(client.get("/fragments/list?errors=1").text)
    assert errors == ["delta-interrupted", "beta-failed"]
    assert sessions_in(client.get("/?state=aborted").text) == ["gamma-aborted"]
    both = sessions_in(client.get("/fragments/list?errors=1&q=rnaseq").text)
    assert both == ["beta-failed"]


def test_list_pages_through_the_store(make_client: Callable[..., TestClient]) -> None:
    client = make_client(page_size=4)

    pages = [client.get(f"/fragments/list?page={n}").text for n in (1, 2, 3)]

    shown = [sessions_in(page) for page in pages]
    assert [len(rows) for rows in shown] == [4, 4, 2]
    assert len({s for rows in shown for s in rows}) == 10
    assert "1\u20134 of 10" in pages[0] and "9\u201310 of 10" in pages[2]
    assert "older →</a>" in pages[0] and "older →</span>" in pages[2]
    # Search and errors only are kept in the paging links.
    page = client.get("/fragments/list?q=o&page=1").text
    assert "/?q=o&amp;page=2" in page


def test_list_is_polled_only_fast_while_something_runs(client: TestClient) -> None:
    live = client.get("/fragments/list").text
    assert 'hx-trigger="every 2s' in live
    quiet = client.get("/fragments/list?state=succeeded").text
    assert 'hx-trigger="every 10s' in quiet


def test_empty_store_shows_how_to_start(tmp_path: Path) -> None:
    app = create_app(UiSettings(store_path=tmp_path / "none" / "state.db"))
    with TestClient(app, base_url="http://testserver") as client:
        html = client.get("/").text
    assert "Nothing is recorded yet" in html
    assert not (tmp_path / "none").exists(), "looking must not create the store"


def test_workflow_page_shows_aggregated_steps_groups_runs_and_graph(
    client: TestClient, recorded: Recorded
) -> None:
    html = client.get("/w/alpha-ok").text

    steps = re.findall(r'data-step="([^"]+)"', html)
    assert steps == ["a", "align_S1", "align_S2", "align_S3", "d"]
    assert 'data-toggle-group="align"' in html and "align \u00d73" in html
    assert html.count('data-member-of="align" hidden') == 3  # folded until expanded
    assert "4242" in html  # the job id column
    assert "Runs" in html and "999999@" in html
    assert 'hx-get="/w/alpha-ok/graph"' in html
    graph = client.get("/w/alpha-ok/graph").text
    assert "<svg" in graph and "<!--" not in graph
    for name in ("a", "align_S1", "d"):
        assert f"<title>{name}</title>" in graph or f"<title>{name} (" in graph
    urls = re.search(r"data-steps='([^']*)'", graph)
    assert urls is not None
    assert f"/w/alpha-ok/steps/{recorded.steps[('alpha-ok', 'd')].id}" in urls.group(1)


def test_workflow_page_of_running_workflow_polls_and_offers_abort(client: TestClient) -> None:
    html = client.get("/w/omega-running").text
    assert "1 running · 1 pending · 40 waiting" in html  # what the run has yet to reach
    assert "40 waiting" in client.get("/").text
    assert 'hx-trigger="every 2s, maestro-changed from:body"' in html
    assert 'data-testid="abort-workflow"' in html
    assert 'data-testid="invalidate-workflow"' not in html
    done = client.get("/w/alpha-ok").text
    assert 'hx-trigger="every 10s, maestro-changed from:body"' in done


def test_workflow_page_polls_fast_while_a_requested_rerun_starts(
    client: TestClient, recorded: Recorded
) -> None:
    workflow = recorded.store.get_workflow("beta-failed")
    recorded.store.record_action(what="rerun", workflow_id=workflow.id, details={})
    html = client.get("/w/beta-failed").text
    assert "waiting for it to start" in html
    assert 'hx-trigger="every 2s, maestro-changed from:body"' in html


def test_workflow_page_shows_action_history(client: TestClient, recorded: Recorded) -> None:
    workflow = recorded.store.get_workflow("alpha-ok")
    recorded.store.record_action(
        what="invalidate-step",
        who="tester",
        workflow_id=workflow.id,
        details={"summary": "invalidate 1 step of session alpha-ok (d)"},
    )
    html = client.get("/w/alpha-ok").text
    assert "tester" in html and "invalidate 1 step of session alpha-ok (d)" in html


def test_unknown_workflow_and_step_are_404(client: TestClient, recorded: Recorded) -> None:
    assert client.get("/w/no-such-session").status_code == 404
    other = recorded.steps[("beta-failed", "b")].id
    assert client.get(f"/w/alpha-ok/steps/{other}").status_code == 404  # not its step
    assert client.get("/w/alpha-ok/steps/999999").status_code == 404
    assert client.get("/w/alpha-ok/steps/abc").status_code == 404


def test_step_details_of_failed_step_open_on_its_stderr(
    client: TestClient, recorded: Recorded
) -> None:
    step = recorded.steps[("beta-failed", "b")]

    html = client.get(f"/w/beta-failed/steps/{step.id}", headers={"HX-Request": "true"}).text

    assert "<html" not in html  # a fragment for the dialog
    assert f'aria-selected="true" hx-get="/w/beta-failed/steps/{step.id}/tab/stderr"' in html
    assert "b: boom: bad line 3" in html
    assert "exit code 3" in html
    # Without htmx it is a whole page (a link opened in a new tab).
    assert "<html" in client.get(f"/w/beta-failed/steps/{step.id}").text


def test_step_tabs_list_artefacts_with_producer(client: TestClient, recorded: Recorded) -> None:
    d = recorded.steps[("alpha-ok", "d")]
    inputs = client.get(f"/w/alpha-ok/steps/{d.id}/tab/inputs").text
    for k in (1, 2, 3):
        assert f"align_S{k}.txt" in inputs
        producer = recorded.steps[("alpha-ok", f"align_S{k}")].id
        assert f'href="/w/alpha-ok/steps/{producer}"' in inputs
    # Inputs never offer propagation.
    assert 'name="propagate"' not in inputs
    outputs = client.get(f"/w/alpha-ok/steps/{d.id}/tab/outputs").text
    (artefact,) = [a for a in recorded.store.artefacts(d.id) if a.role.value == "output"]
    assert str(artefact.path) in outputs
    assert f"{artefact.size} B" in outputs and (artefact.sha256 or "")[:12] in outputs
    assert 'name="propagate"' in outputs  # outputs do
    # A file the user provided can be neither deleted nor propagated from.
    first = recorded.steps[("alpha-ok", "a")]
    provided = client.get(f"/w/alpha-ok/steps/{first.id}/tab/inputs").text
    assert "provided by you" in provided and "invalidate-artefact" not in provided


def test_step_action_tab_offers_what_applies(client: TestClient, recorded: Recorded) -> None:
    ok = recorded.steps[("alpha-ok", "a")]
    html = client.get(f"/w/alpha-ok/steps/{ok.id}/tab/action").text
    assert 'data-testid="invalidate-step"' in html and 'name="propagate"' in html
    assert 'data-testid="rerun-step"' not in html
    failed = recorded.steps[("beta-failed", "b")]
    html = client.get(f"/w/beta-failed/steps/{failed.id}/tab/action").text
    assert 'data-testid="rerun-step"' in html and 'data-testid="invalidate-step"' not in html
    pending = recorded.steps[("omega-running", "later")]
    html = client.get(f"/w/omega-running/steps/{pending.id}/tab/action").text
    assert 'data-testid="abort-step"' in html


def test_log_tail_and_show_more(client: TestClient, recorded: Recorded) -> None:
    step = recorded.steps[("alpha-ok", "a")]  # 1,000 lines of stdout
    base = f"/w/alpha-ok/steps/{step.id}/log/stdout"

    tail = client.get(base).text
    more = client.get(base + "?lines=1000").text

    assert tail.count("line\n") == 200 and "the last 200 lines" in tail
    assert "Show more" in tail and "?lines=1000" in tail
    assert more.count("line\n") == 1000 and "Show more" not in more
    raw = client.get(base + "/raw")
    assert raw.status_code == 200 and raw.text == "line\n" * 1000
    assert raw.headers["content-type"].startswith("text/plain")
    assert "sandbox" in raw.headers["content-security-policy"]


def test_log_of_running_step_is_followed(client: TestClient, recorded: Recorded) -> None:
    running = recorded.steps[("omega-running", "slow")]
    html = client.get(f"/w/omega-running/steps/{running.id}/log/stdout").text
    assert "working..." in html and 'hx-trigger="every 2s"' in html
    pending = recorded.steps[("omega-running", "later")]
    html = client.get(f"/w/omega-running/steps/{pending.id}/log/stderr").text
    assert "no working directory was recorded" in html


def test_files_are_served_only_as_recorded(client: TestClient, recorded: Recorded) -> None:
    step = recorded.steps[("alpha-ok", "d")]
    (output,) = [a for a in recorded.store.artefacts(step.id) if a.role.value == "output"]
    other = recorded.steps[("beta-failed", "a")]
    (foreign,) = [a for a in recorded.store.artefacts(other.id) if a.role.value == "output"]

    download = client.get(f"/w/alpha-ok/steps/{step.id}/artefacts/{output.id}")

    assert download.status_code == 200 and download.text == "result of d\n"
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment")
    # An artefact of another step, unknown streams and paths never reach the filesystem.
    assert client.get(f"/w/alpha-ok/steps/{step.id}/artefacts/{foreign.id}").status_code == 404
    for bad in (
        f"/w/alpha-ok/steps/{step.id}/log/..%2F..%2Fetc%2Fpasswd/raw",
        f"/w/alpha-ok/steps/{step.id}/log/passwd/raw",
        f"/w/alpha-ok/steps/{step.id}/tab/..%2Fsecret",
        f"/w/alpha-ok/steps/{step.id}/artefacts/..%2F..%2Fetc%2Fpasswd",
        "/static/..%2F..%2Fstate%2Fsqlite.py",
        "/w/alpha-ok/steps/1?path=/etc/passwd&tab=stdout",
    ):
        response = client.get(bad)
        assert response.status_code == 404 or "root:" not in response.text, bad
        assert "root:x:0" not in response.text


def test_user_text_is_escaped_everywhere(client: TestClient, recorded: Recorded) -> None:
    step = recorded.steps[("xss-names", XSS_PROCESS)]
    pages = {
        "list": client.get("/").text,
        "search": client.get("/fragments/list?q=onerror").text,
        "workflow": client.get("/w/xss-names").text,
        "graph": client.get("/w/xss-names/graph").text,
        "step": client.get(f"/w/xss-names/steps/{step.id}?tab=stderr").text,
        "outputs": client.get(f"/w/xss-names/steps/{step.id}/tab/outputs").text,
        "dashboard": client.get("/fragments/dashboard").text,
    }
    for name, html in pages.items():
        assert XSS_PROCESS not in html, name
        assert XSS_TAG not in html, name
        assert "<script>alert" not in html and "<img src=x" not in html, name
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["workflow"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["step"]  # its stderr line too
    assert "&lt;img src=x onerror=alert(2)&gt;" in pages["list"]
    assert sessions_in(pages["search"]) == ["xss-names"]


def test_pages_forbid_inline_scripts_and_framing(client: TestClient) -> None:
    response = client.get("/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in response.text  # only <script src=...> of our own files
    assert "cdn" not in response.text.lower() and "https://" not in response.text
    htmx = client.get("/static/htmx.min.js")
    assert htmx.status_code == 200 and htmx.text.startswith("/*! htmx.org 2.")


def test_dead_running_workflow_shows_as_interrupted(
    make_client: Callable[..., TestClient], recorded: Recorded
) -> None:
    store: SqliteStateStore = recorded.store
    wf = store.create_workflow(session="ghost", project="demo", entry="x.py")
    run = store.start_run(wf.id, pid=999_999, pid_start_time=1.0)  # no such process
    store.start_step(run.id, process="p", state=StepState.RUNNING)

    html = make_client().get("/w/ghost").text

    assert '<span class="state interrupted">interrupted</span>' in html
