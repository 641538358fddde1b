"""`maestro ui`: a local web dashboard over the state store (SPEC §6, seeds 000 and 003).

A Starlette application with server-rendered Jinja2 pages and vendored htmx (no CDN). It reads
the same store the CLI writes, shows the workflows (dashboard, newest-first list, search,
errors only), each workflow's aggregated steps, runs, process graph and action history, each
step's artefacts and logs, and performs the actions of `libmaestro.actions` after showing their
plan and asking for confirmation. `libmaestro.ui.security` says how it is protected.

Nothing else in libmaestro imports this package: a workflow never pulls in the web stack.

    settings = UiSettings(store_path=open_store().path)
    sock = bind("127.0.0.1", 0)
    serve(create_app(settings), sock)
"""

from __future__ import annotations

from libmaestro.ui.app import UiSettings, create_app
from libmaestro.ui.security import is_loopback, new_secret
from libmaestro.ui.server import LOOPBACK_HOSTS, bind, serve, server_url

__all__ = [
    "LOOPBACK_HOSTS",
    "UiSettings",
    "bind",
    "create_app",
    "is_loopback",
    "new_secret",
    "serve",
    "server_url",
]
