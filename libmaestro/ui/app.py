"""The web application: routes, rendering, and the actions' plan-then-confirm flow.

Pages are rendered on the server with Jinja2 (autoescape on: every process name, tag and log
line is text, never markup); htmx swaps fragments in place and polls the live ones every few
seconds while something runs. Nothing here writes to the store except `apply_action`, reached
only by a POST that passed `security.SecurityMiddleware` and carries the CSRF token.
"""

from __future__ import annotations

import getpass
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from libmaestro._version import __version__
from libmaestro.actions import ActionPlan, ActionRefused, ActionRequest, apply_action, plan_action
from libmaestro.state import (
    SqliteStateStore,
    StateError,
    StateNotFoundError,
    StepRecord,
    StepState,
    WorkflowRecord,
    run_is_alive,
)
from libmaestro.timefmt import format_duration, format_time
from libmaestro.ui import data
from libmaestro.ui.data import (
    Dashboard,
    Listing,
    ListQuery,
    StepDetails,
    WorkflowView,
    human_size,
    log_path,
    read_tail,
    seconds_between,
)
from libmaestro.ui.graphs import SvgCache, workflow_graph
from libmaestro.ui.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    Guard,
    SecurityMiddleware,
    check_csrf,
    new_secret,
)

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 16 * 1024
REFRESH_SECONDS = 2.0  # how often a live part of a page asks for news, and stale runs are checked
IDLE_REFRESH_SECONDS = 10  # the listing's poll while nothing runs (new workflows still appear)
TABS = ("inputs", "outputs", "stdout", "stderr", "action")
ACTION_KINDS = ("invalidate-workflow", "invalidate-step", "invalidate-artefact", "rerun", "abort")


@dataclass(frozen=True, slots=True)
class UiSettings:
    """How one UI server is set up.

    Args:
        store_path: the state store to show (the one the CLI writes).
        token: the access token every request must carry; None on loopback without one.
        allowed_hosts: host names the server answers to (None: any; loopback names on loopback).
        csrf_secret: the token state-changing requests must carry; fresh per server.
        page_size: workflows per page of the listing.
    """

    store_path: Path
    token: str | None = None
    allowed_hosts: Collection[str] | None = None
    csrf_secret: str = field(default_factory=new_secret)
    page_size: int = data.PAGE_SIZE


# --- rendering -------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("libmaestro.ui", "templates"),
        autoescape=True,  # every template, whatever its name: user text is never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=format_time,
        duration=format_duration,
        size=human_size,
    )
    env.globals.update(
        version=__version__,
        tabs=TABS,
        counts_text=data.counts_text,
        seconds_between=seconds_between,
    )
    return env


class _Ui:
    """The server's state: settings, templates, the store, caches. One per application."""

    def __init__(self, settings: UiSettings) -> None:
        self.settings = settings
        self.env = _environment()
        self.store = SqliteStateStore(settings.store_path)
        self.svgs = SvgCache()
        self._checked = 0.0
        self._check_lock = threading.Lock()

    def fresh_store(self) -> SqliteStateStore | None:
        """The store with dead runs marked interrupted (at most every few seconds), or None.

        None while nothing was recorded yet: looking must not create the database.
        """
        if not self.store.path.exists():
            return None
        with self._check_lock:
            due = time.monotonic() - self._checked >= REFRESH_SECONDS
            if due:
                self._checked = time.monotonic()
        if due:
            # What `maestro status` does on each look: a run whose process died (SIGKILL, power
            # loss) shows as interrupted rather than running forever.
            self.store.mark_interrupted_runs(run_is_alive)
        return self.store

    def render(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        context.setdefault("csrf", self.settings.csrf_secret)
        context.setdefault("csrf_field", CSRF_FIELD)
        context.setdefault("store_path", self.settings.store_path)
        context.setdefault("htmx", request.headers.get("hx-request") == "true")
        context.setdefault("refresh", int(REFRESH_SECONDS))
        context.setdefault("idle_refresh", IDLE_REFRESH_SECONDS)
        context["url"] = _linker(request)
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status_code)


def _linker(request: Request) -> Callable[..., str]:
    """`url(name, **params)` for templates: a path on this server, its parts percent-encoded."""

    def url(name: str, **params: object) -> str:
        quoted = {key: quote(str(value), safe="") for key, value in params.items()}
        return str(request.app.url_path_for(name, **quoted))

    return url


def _ui(request: Request) -> _Ui:
    ui: _Ui = request.app.state.ui
    return ui


def _require_store(ui: _Ui) -> SqliteStateStore:
    store = ui.fresh_store()
    if store is None:
        raise HTTPException(404, "nothing is recorded in the state store yet")
    return store


def _workflow(store: SqliteStateStore, session: str) -> WorkflowRecord:
    try:
        return store.get_workflow(session)
    except StateNotFoundError:
        raise HTTPException(404, f"there is no session {session!r}") from None


def _step(store: SqliteStateStore, workflow: WorkflowRecord, step_id: int) -> StepRecord:
    try:
        step = store.step(step_id)
    except StateNotFoundError:
        step = None
    if step is None or step.workflow_id != workflow.id:
        raise HTTPException(404, f"session {workflow.session!r} has no step {step_id}")
    return step


# --- the main interface ----------------------------------------------------------------------


def index(request: Request) -> HTMLResponse:
    ui = _ui(request)
    store = ui.fresh_store()
    query = ListQuery.from_params(request.query_params)
    return ui.render(
        request,
        "index.html",
        dashboard=None if store is None else Dashboard.load(store),
        listing=None
        if store is None
        else Listing.load(store, query, page_size=ui.settings.page_size),
        query=query,
    )


def dashboard_fragment(request: Request) -> HTMLResponse:
    ui = _ui(request)
    store = ui.fresh_store()
    return ui.render(
        request, "_dashboard.html", dashboard=None if store is None else Dashboard.load(store)
    )


def list_fragment(request: Request) -> HTMLResponse:
    ui = _ui(request)
    store = ui.fresh_store()
    query = ListQuery.from_params(request.query_params)
    listing = None if store is None else Listing.load(store, query, page_size=ui.settings.page_size)
    response = ui.render(request, "_list.html", listing=listing, query=query)
    if request.headers.get("hx-request") == "true" and request.query_params.get("push") == "1":
        response.headers["HX-Push-Url"] = "/" + (
            f"?{query.query_string()}" if query.query_string() else ""
        )
    return response


# --- one workflow ----------------------------------------------------------------------------


def workflow_page(request: Request) -> HTMLResponse:
    ui = _ui(request)
    store = _require_store(ui)
    workflow = _workflow(store, request.path_params["session"])
    return ui.render(
        request,
        "workflow.html",
        view=WorkflowView.load(store, workflow),
    )


def workflow_fragment(request: Request) -> HTMLResponse:
    ui = _ui(request)
    store = _require_store(ui)
    workflow = _workflow(store, request.path_params["session"])
    return ui.render(
        request,
        "_workflow_body.html",
        view=WorkflowView.load(store, workflow),
    )


def graph_fragment(request: Request) -> HTMLResponse:
    ui = _ui(request)
    store = _require_store(ui)
    workflow = _workflow(store, request.path_params["session"])
    view = WorkflowView.load(store, workflow)
    graph = workflow_graph(store, workflow, view.records, view.aggregated)
    svg = ui.svgs.svg(graph) if len(graph) else ""
    url = _linker(request)
    step_urls = {
        item.process: url("step", session=workflow.session, step_id=item.step.id)
        for item in view.aggregated
    }
    return ui.render(request, "_graph.html", view=view, svg=svg, step_urls=step_urls)


# --- one step --------------------------------------------------------------------------------


def _details(request: Request) -> tuple[_Ui, SqliteStateStore, StepDetails]:
    ui = _ui(request)
    store = _require_store(ui)
    workflow = _workflow(store, request.path_params["session"])
    try:
        step_id = int(request.path_params["step_id"])
    except ValueError:
        raise HTTPException(404, "no such step") from None
    step = _step(store, workflow, step_id)
    return ui, store, StepDetails.load(store, workflow, step)


def step_panel(request: Request) -> HTMLResponse:
    ui, _, details = _details(request)
    tab = request.query_params.get("tab", "")
    if tab not in TABS:
        tab = "stderr" if details.authoritative.state is StepState.FAILED else "outputs"
    return ui.render(
        request, "step.html", d=details, tab=tab, tab_body=_tab_context(request, details, tab)
    )


def _tab_context(request: Request, details: StepDetails, tab: str) -> dict[str, Any]:
    if tab in data.LOG_FILES:
        try:
            lines = int(request.query_params.get("lines", data.LOG_LINES))
        except ValueError:
            lines = data.LOG_LINES
        source = details.log_step or details.step
        return {"log": read_tail(log_path(source, tab), lines), "stream": tab}
    return {}


def step_tab(request: Request) -> HTMLResponse:
    ui, _, details = _details(request)
    tab = request.path_params["tab"]
    if tab not in TABS:
        raise HTTPException(404, f"no tab {tab!r}")
    return ui.render(
        request, "_tab.html", d=details, tab=tab, tab_body=_tab_context(request, details, tab)
    )


def step_log(request: Request) -> HTMLResponse:
    ui, _, details = _details(request)
    stream = request.path_params["stream"]
    if stream not in data.LOG_FILES:
        raise HTTPException(404, f"no log {stream!r}")
    context = _tab_context(request, details, stream)
    return ui.render(request, "_log.html", d=details, log=context["log"], stream=stream)


def log_raw(request: Request) -> Response:
    _, _, details = _details(request)
    stream = request.path_params["stream"]
    if stream not in data.LOG_FILES:
        raise HTTPException(404, f"no log {stream!r}")
    path = log_path(details.log_step or details.step, stream)
    if path is None or not path.is_file():
        raise HTTPException(404, f"step {details.step.process!r} has no {stream} file")
    return FileResponse(
        path,
        media_type="text/plain; charset=utf-8",
        headers={"Content-Security-Policy": "sandbox; default-src 'none'"},
    )


def artefact_file(request: Request) -> Response:
    _, store, details = _details(request)
    try:
        artefact_id = int(request.path_params["artefact_id"])
    except ValueError:
        raise HTTPException(404, "no such artefact") from None
    step = details.log_step or details.step
    try:
        artefact = data.find_artefact(store, step, artefact_id)
    except KeyError:
        raise HTTPException(
            404, f"step {step.process!r} recorded no artefact {artefact_id}"
        ) from None
    if not artefact.path.is_file():
        raise HTTPException(404, f"{artefact.path} is not a file (any more)")
    # Always a download, never rendered: an HTML output must not run as a page of this site.
    return FileResponse(
        artefact.path,
        media_type="application/octet-stream",
        filename=artefact.path.name,
        headers={"Content-Security-Policy": "sandbox; default-src 'none'"},
    )


# --- actions ---------------------------------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form of a state-changing request, after its CSRF check (else 403)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    if not check_csrf(request.headers.get(CSRF_HEADER), form, _ui(request).settings.csrf_secret):
        raise HTTPException(
            403, "Refused: the request carries no valid CSRF token; reload the page."
        )
    return form


def _optional_int(form: Mapping[str, str], key: str) -> int | None:
    value = form.get(key, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise HTTPException(400, f"{key} must be a number") from None


def _request_of(form: Mapping[str, str]) -> ActionRequest:
    kind = form.get("kind", "")
    if kind not in ACTION_KINDS:
        raise HTTPException(400, f"unknown action {kind!r}")
    session = form.get("session", "")
    if not session:
        raise HTTPException(400, "which session?")
    return ActionRequest(
        kind=kind,
        session=session,
        step_id=_optional_int(form, "step_id"),
        artefact_id=_optional_int(form, "artefact_id"),
        propagate=form.get("propagate", "") in {"1", "on", "true"},
    )


def _plan_context(plan: ActionPlan) -> dict[str, Any]:
    """The plan, with each file's size (None for a directory) for the confirmation."""
    files = []
    for path in plan.files:
        try:
            size = path.lstat().st_size if not path.is_dir() else None
        except OSError:
            size = None
        files.append((path, size))
    return {"plan": plan, "files": files}


async def action_plan(request: Request) -> HTMLResponse:
    ui = _ui(request)
    form = await _form(request)
    action = _request_of(form)
    store = _require_store(ui)
    try:
        plan = await run_in_threadpool(plan_action, store, action)
    except ActionRefused as exc:
        return ui.render(request, "plan.html", status_code=409, refused=str(exc), action=action)
    return ui.render(request, "plan.html", refused=None, action=action, **_plan_context(plan))


def _who(request: Request) -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    client = request.client.host if request.client else "unknown"
    return f"{user} (maestro ui, from {client})"


async def action_apply(request: Request) -> Response:
    ui = _ui(request)
    form = await _form(request)
    action = _request_of(form)
    store = _require_store(ui)
    try:
        plan = await run_in_threadpool(lambda: apply_action(store, action, who=_who(request)))
    except ActionRefused as exc:
        return ui.render(request, "plan.html", status_code=409, refused=str(exc), action=action)
    log.info("ui action %s on %s: %s", action.kind, action.session, plan.summary)
    if request.headers.get("hx-request") != "true":
        # A browser without JavaScript posted the confirmation form: back to the workflow.
        location = _linker(request)("workflow", session=action.session)
        return Response(status_code=303, headers={"Location": location})
    response = ui.render(request, "done.html", plan=plan, action=action)
    response.headers["HX-Trigger"] = "maestro-changed"
    return response


# --- errors ----------------------------------------------------------------------------------


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in {401, 403, 413} or request.url.path.startswith("/static/"):
        return PlainTextResponse(exc.detail, status_code=exc.status_code)
    return _ui(request).render(
        request, "error.html", status_code=exc.status_code, message=exc.detail
    )


async def _state_error(request: Request, exc: Exception) -> Response:
    # A busy or newer database: say so instead of a traceback; the page can simply be reloaded.
    return _ui(request).render(request, "error.html", status_code=503, message=str(exc))


def create_app(settings: UiSettings) -> Starlette:
    """The UI as an ASGI application (serve it with `libmaestro.ui.serve` or any ASGI server)."""
    ui = _Ui(settings)
    guard = Guard(
        csrf_secret=settings.csrf_secret,
        token=settings.token,
        allowed_hosts=None
        if settings.allowed_hosts is None
        else frozenset(h.lower() for h in settings.allowed_hosts),
    )
    step = "/w/{session}/steps/{step_id}"
    routes = [
        Route("/", index, name="index"),
        Route("/fragments/dashboard", dashboard_fragment, name="dashboard"),
        Route("/fragments/list", list_fragment, name="list"),
        Route("/w/{session}", workflow_page, name="workflow"),
        Route("/w/{session}/body", workflow_fragment, name="workflow_body"),
        Route("/w/{session}/graph", graph_fragment, name="graph"),
        Route(step, step_panel, name="step"),
        Route(step + "/tab/{tab}", step_tab, name="step_tab"),
        Route(step + "/log/{stream}", step_log, name="step_log"),
        Route(step + "/log/{stream}/raw", log_raw, name="log_raw"),
        Route(step + "/artefacts/{artefact_id}", artefact_file, name="artefact"),
        Route("/actions/plan", action_plan, methods=["POST"], name="plan"),
        Route("/actions/apply", action_apply, methods=["POST"], name="apply"),
        Mount("/static", StaticFiles(packages=[("libmaestro.ui", "static")]), name="static"),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Any]] = {
        HTTPException: _http_error,
        StateError: _state_error,
    }
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, guard=guard)],
        exception_handlers=handlers,
        max_body_size=MAX_FORM_BYTES,  # forms are small; never read a huge body into memory
    )
    app.state.ui = ui
    return app
