"""Actions through the UI: the plan is shown first, then applied (libmaestro.actions)."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.testclient import TestClient
from ui_helpers import BASE, Recorded

from libmaestro.state import StepState

HEADERS = {"Origin": BASE, "X-CSRF-Token": "test-csrf", "HX-Request": "true"}


def post(client: TestClient, path: str, **form: str) -> Any:
    return client.post(path, data=form, headers=HEADERS)


def test_invalidate_step_with_propagation_shows_plan_then_applies(
    client: TestClient, recorded: Recorded
) -> None:
    a = recorded.steps[("alpha-ok", "a")]
    form = {
        "kind": "invalidate-step",
        "session": "alpha-ok",
        "step_id": str(a.id),
        "propagate": "1",
    }
    outputs = [
        art.path
        for process in ("a", "align_S1", "align_S2", "align_S3", "d")
        for art in recorded.store.artefacts(recorded.steps[("alpha-ok", process)].id)
        if art.role.value == "output"
    ]

    plan = post(client, "/actions/plan", **form)

    assert plan.status_code == 200, plan.text
    listed = re.findall(r"<li>([^ ]+) <span class=\"state", plan.text)
    assert listed == ["a", "align_S1", "align_S2", "align_S3", "d"]
    for path in outputs:
        assert str(path) in plan.text
        assert path.exists(), "planning deletes nothing"
    assert 'name="propagate" value="1"' in plan.text  # the confirmation keeps the choice
    assert "This cannot be undone" in plan.text

    done = post(client, "/actions/apply", **form)

    assert done.status_code == 200, done.text
    assert done.headers["HX-Trigger"] == "maestro-changed"
    assert 'data-testid="done"' in done.text
    assert not any(path.exists() for path in outputs)
    states = {s.process: s.state for s in recorded.store.aggregated_steps(a.workflow_id)}
    assert set(states.values()) == {StepState.INVALIDATED}
    (action,) = recorded.store.actions(a.workflow_id)
    assert action.what == "invalidate-step" and "maestro ui" in action.who
    page = client.get("/w/alpha-ok").text
    assert "invalidate-step" in page and page.count('class="state invalidated"') >= 5


def test_invalidate_output_artefact_without_propagation(
    client: TestClient, recorded: Recorded
) -> None:
    a = recorded.steps[("alpha-ok", "a")]
    (output,) = [x for x in recorded.store.artefacts(a.id) if x.role.value == "output"]
    form = {
        "kind": "invalidate-artefact",
        "session": "alpha-ok",
        "step_id": str(a.id),
        "artefact_id": str(output.id),
    }

    plan = post(client, "/actions/plan", **form)
    assert plan.status_code == 200 and str(output.path) in plan.text
    post(client, "/actions/apply", **form)

    assert not output.path.exists()
    assert recorded.store.step(a.id).state is StepState.SUCCEEDED  # the step stays


def test_propagation_from_an_input_artefact_is_refused(
    client: TestClient, recorded: Recorded
) -> None:
    d = recorded.steps[("alpha-ok", "d")]
    (first_input, *_) = [x for x in recorded.store.artefacts(d.id) if x.role.value == "input"]
    form = {
        "kind": "invalidate-artefact",
        "session": "alpha-ok",
        "artefact_id": str(first_input.id),
        "propagate": "1",
    }

    for path in ("/actions/plan", "/actions/apply"):
        refused = post(client, path, **form)
        assert refused.status_code == 409, refused.text
        assert 'data-testid="refused"' in refused.text and "input artefact" in refused.text
    assert first_input.path.exists()
    assert recorded.store.actions() == []


def test_rerun_of_a_succeeded_step_is_refused_with_the_reason(
    client: TestClient, recorded: Recorded
) -> None:
    a = recorded.steps[("alpha-ok", "a")]
    refused = post(client, "/actions/plan", kind="rerun", session="alpha-ok", step_id=str(a.id))
    assert refused.status_code == 409
    assert "only failed, aborted or invalidated steps can be rerun" in refused.text


def test_abort_a_pending_step_of_a_running_workflow(client: TestClient, recorded: Recorded) -> None:
    later = recorded.steps[("omega-running", "later")]
    form = {"kind": "abort", "session": "omega-running", "step_id": str(later.id)}

    plan = post(client, "/actions/plan", **form)
    assert plan.status_code == 200, plan.text
    assert "abort pending step" in plan.text and "later" in plan.text
    done = post(client, "/actions/apply", **form)

    assert done.status_code == 200, done.text
    session_dir = recorded.root / "maestro_work" / "omega-running"
    requests = [p for p in session_dir.iterdir() if p.is_file()]
    assert requests, "the running workflow is asked not to start the step"
    assert "later" in json.dumps(json.loads(requests[0].read_text()))
    (action,) = recorded.store.actions(later.workflow_id)
    assert action.what == "abort"


def test_invalidate_workflow_from_the_list(client: TestClient, recorded: Recorded) -> None:
    html = client.get("/").text
    assert 'data-testid="invalidate-beta-failed"' in html
    assert 'data-testid="abort-omega-running"' in html
    assert 'data-testid="abort-alpha-ok"' not in html  # only while running

    plan = post(client, "/actions/plan", kind="invalidate-workflow", session="beta-failed")
    assert plan.status_code == 200 and "invalidate 1 step" in plan.text
    post(client, "/actions/apply", kind="invalidate-workflow", session="beta-failed")

    states = {
        s.process: s.state
        for s in recorded.store.aggregated_steps(recorded.store.get_workflow("beta-failed").id)
    }
    assert states == {"a": StepState.INVALIDATED, "b": StepState.FAILED}


def test_confirmation_without_javascript_redirects_to_the_workflow(
    client: TestClient, recorded: Recorded
) -> None:
    a = recorded.steps[("gamma-aborted", "a")]
    response = client.post(
        "/actions/apply",
        data={
            "kind": "invalidate-step",
            "session": "gamma-aborted",
            "step_id": str(a.id),
            "csrf_token": "test-csrf",
        },
        headers={"Origin": BASE},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/w/gamma-aborted"


def test_bad_action_forms_are_400(client: TestClient) -> None:
    assert post(client, "/actions/plan", kind="delete-everything", session="x").status_code == 400
    assert post(client, "/actions/plan", kind="rerun").status_code == 400
    assert (
        post(client, "/actions/plan", kind="rerun", session="alpha-ok", step_id="x").status_code
        == 400
    )
    unknown = post(client, "/actions/plan", kind="rerun", session="no-such-session")
    assert unknown.status_code == 409 and "no session" in unknown.text
