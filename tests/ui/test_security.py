"""Who may use the UI and how cross-site requests are refused (libmaestro.ui.security)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.testclient import TestClient
from ui_helpers import BASE, Recorded

from libmaestro.ui import LOOPBACK_HOSTS, is_loopback

SAME_ORIGIN = {"Origin": BASE}


def plan_form(recorded: Recorded, **extra: str) -> dict[str, str]:
    step = recorded.steps[("alpha-ok", "d")]
    return {"kind": "invalidate-step", "session": "alpha-ok", "step_id": str(step.id), **extra}


def test_post_without_csrf_token_is_refused(client: TestClient, recorded: Recorded) -> None:
    response = client.post("/actions/plan", data=plan_form(recorded), headers=SAME_ORIGIN)
    assert response.status_code == 403, response.text
    assert "CSRF" in response.text
    wrong = client.post(
        "/actions/apply",
        data=plan_form(recorded, csrf_token="guess"),
        headers={**SAME_ORIGIN, "X-CSRF-Token": "guess"},
    )
    assert wrong.status_code == 403
    assert recorded.store.step(recorded.steps[("alpha-ok", "d")].id).state.value == "succeeded"


def test_post_with_csrf_token_in_header_or_field_is_accepted(
    client: TestClient, recorded: Recorded
) -> None:
    by_header = client.post(
        "/actions/plan",
        data=plan_form(recorded),
        headers={**SAME_ORIGIN, "X-CSRF-Token": "test-csrf", "HX-Request": "true"},
    )
    assert by_header.status_code == 200, by_header.text
    assert 'data-testid="summary"' in by_header.text
    by_field = client.post(
        "/actions/plan", data=plan_form(recorded, csrf_token="test-csrf"), headers=SAME_ORIGIN
    )
    assert by_field.status_code == 200, by_field.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://testserver:8080"},  # another port is another origin
        {"Origin": "null"},
        {"Referer": "http://evil.example/page"},
        {},  # neither Origin nor Referer: cannot tell, so no
    ],
    ids=["other-host", "other-port", "null-origin", "foreign-referer", "no-origin"],
)
def test_cross_origin_post_is_refused(
    client: TestClient, recorded: Recorded, headers: dict[str, str]
) -> None:
    response = client.post(
        "/actions/apply",
        data=plan_form(recorded, csrf_token="test-csrf"),
        headers={"X-CSRF-Token": "test-csrf", **headers},
    )
    assert response.status_code == 403, response.text
    assert recorded.store.step(recorded.steps[("alpha-ok", "d")].id).state.value == "succeeded"
    assert recorded.store.actions() == []


def test_same_origin_referer_is_enough(client: TestClient, recorded: Recorded) -> None:
    response = client.post(
        "/actions/plan",
        data=plan_form(recorded, csrf_token="test-csrf"),
        headers={"Referer": f"{BASE}/w/alpha-ok"},
    )
    assert response.status_code == 200, response.text


def test_get_never_changes_state(client: TestClient, recorded: Recorded) -> None:
    for path in ("/actions/plan", "/actions/apply"):
        assert client.get(path).status_code == 405
    assert recorded.store.actions() == []


def test_off_loopback_needs_the_token(make_client: Callable[..., TestClient]) -> None:
    client = make_client(token="s3cret-token", csrf_secret="test-csrf")

    assert client.get("/").status_code == 401
    assert client.get("/static/htmx.min.js").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/actions/plan", headers=SAME_ORIGIN).status_code == 401

    bearer = client.get("/", headers={"Authorization": "Bearer s3cret-token"})
    assert bearer.status_code == 200
    # The printed address carries it once; it becomes a cookie and leaves the address bar.
    first = client.get("/?token=s3cret-token&q=alpha", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/?q=alpha"
    cookie = first.headers["set-cookie"]
    assert "maestro_token=s3cret-token" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/").status_code == 200  # the client kept the cookie


def test_token_redirect_stays_on_this_server(make_client: Callable[..., TestClient]) -> None:
    client = make_client(token="s3cret-token")
    response = client.get(
        "http://testserver//evil.example/?token=s3cret-token", follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/evil.example/"
    assert not response.headers["location"].startswith("//")


def test_loopback_server_answers_only_to_loopback_names(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(allowed_hosts=LOOPBACK_HOSTS | {"testserver"})
    assert client.get("/").status_code == 200
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765"):
        assert client.get("/", headers={"Host": host}).status_code == 200, host
    # A page of evil.example that points its name at 127.0.0.1 (DNS rebinding) gets nothing.
    rebound = client.get("/", headers={"Host": "evil.example:8765"})
    assert rebound.status_code == 400
    assert "alpha-ok" not in rebound.text


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert is_loopback("[::1]") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.1.2.3")
    assert not is_loopback("example.org")
