"""`maestro ui`: serve the web dashboard over the state store the other commands use."""

from __future__ import annotations

import webbrowser
from typing import Annotated

import typer

import libmaestro
from maestro_cli.context import CliContext


def ui(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Anything but loopback requires an access token.",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", "-p", min=0, max=65535, help="Port; 0 picks a free one.")
    ] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="MAESTRO_UI_TOKEN",
            help="The access token to require (default: one is generated when --host is not "
            "loopback).",
        ),
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the dashboard in a web browser.")
    ] = False,
) -> None:
    """Serve a web dashboard of your workflows, live, until Ctrl-C.

    Shows what `maestro status` shows, and more: every workflow by state, newest first, with
    search (name, project or any metadata keyword) and errors only; each workflow's steps
    across its runs, its process graph and action history; each step's artefacts and logs.
    Steps, artefacts and workflows can be invalidated, rerun or aborted there, after a
    confirmation that shows what will be deleted.

    The dashboard listens on loopback (this machine only) by default. With another --host,
    every request needs an access token: --token, or a generated one; open the printed
    address, which carries it.

    Examples:

        maestro ui --open

        maestro ui --port 0

        maestro ui --host 0.0.0.0 --port 8765 --token "$(openssl rand -hex 16)"
    """
    # Imported here: the web stack (starlette, jinja2, uvicorn) only loads for this command.
    from libmaestro import ui as web

    cli: CliContext = ctx.obj
    loopback = web.is_loopback(host)
    if not loopback and not token:
        token = web.new_secret()
    settings = web.UiSettings(
        store_path=libmaestro.store_path(),
        token=token or None,
        allowed_hosts=web.LOOPBACK_HOSTS if loopback else None,
    )
    app = web.create_app(settings)
    sock = web.bind(host, port)
    url = web.server_url(sock, host)
    address = f"{url}?token={token}" if token else url
    cli.errors.print(f"maestro ui: serving {settings.store_path}", highlight=False, markup=False)
    # On stdout, alone on its line: scripts (and the tests) read the address from here.
    cli.console.print(
        f"maestro ui: listening on {address}", highlight=False, soft_wrap=True, markup=False
    )
    cli.console.file.flush()
    if not loopback:
        cli.errors.print(
            "maestro ui: not on loopback; anyone who can reach this address and has the "
            "token can act on your workflows. Press Ctrl-C to stop.",
            style="yellow",
        )
    if open_browser:
        webbrowser.open(address)
    try:
        web.serve(app, sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
