"""Running the UI: bind a socket first (so port 0 works and the address is known), then serve."""

from __future__ import annotations

import socket

import uvicorn
from starlette.applications import Starlette

from libmaestro.errors import MaestroError

#: Host names a loopback server answers to (see `security`: DNS rebinding).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0: any free port).

    Raises:
        MaestroError: the address cannot be used (in use, not this machine's, no permission).
    """
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise MaestroError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
            "(0 picks a free one) or --host"
        ) from None
    sock.set_inheritable(True)
    return sock


def server_url(sock: socket.socket, host: str) -> str:
    """The address a browser opens for a server listening on `sock` (bound to `host`)."""
    port = sock.getsockname()[1]
    shown = host.strip("[]")
    if shown in {"0.0.0.0", "::", ""}:  # noqa: S104  # naming the wildcard, not binding it
        shown = socket.gethostname()
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def serve(app: Starlette, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve `app` on `sock` until interrupted (Ctrl-C, SIGTERM)."""
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # nothing sits in front: trust no X-Forwarded-* header
        lifespan="off",
    )
    uvicorn.Server(config).run(sockets=[sock])
