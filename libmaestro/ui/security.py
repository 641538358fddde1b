"""Who may use the UI, and how a page on another site is kept from acting through a browser.

- **Host check.** On loopback the server answers only to loopback host names, so a site that
  points its own name at 127.0.0.1 (DNS rebinding) cannot read pages through the browser.
- **Access token.** Bound to any other address, every request must carry the token: in the
  address once (`?token=...`, then kept in an HttpOnly, SameSite=Strict cookie), as a cookie,
  or as `Authorization: Bearer ...`. Otherwise 401.
- **Same origin.** A request that changes state (anything but GET, HEAD, OPTIONS) must say it
  comes from this server: its Origin header, or failing that its Referer, must name the
  host:port the request was sent to. Otherwise 403.
- **CSRF token.** Such a request must also carry the server's CSRF secret, in the
  `X-CSRF-Token` header (htmx sends it from the page) or the `csrf_token` form field (checked by
  `check_csrf`). A page of another origin cannot read it. Otherwise 403.
- **Headers.** Every response forbids framing, MIME sniffing and any script but the server's
  own files (Content-Security-Policy), so escaped text stays text.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_COOKIE = "maestro_token"  # noqa: S105  # the cookie's name, not a secret
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)


def new_secret() -> str:
    """A fresh random token (for the access token or the CSRF secret)."""
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server to this machine."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented token with the real one."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True, slots=True)
class Guard:
    """The server's security settings.

    Args:
        csrf_secret: the per-server CSRF token pages embed.
        token: the access token every request must carry, or None (loopback, no token asked).
        allowed_hosts: host names the Host header may name (without port), or None for any.
    """

    csrf_secret: str
    token: str | None = None
    allowed_hosts: Collection[str] | None = None


def _headers(scope: Scope) -> dict[str, str]:
    return {
        key.decode("latin-1"): value.decode("latin-1") for key, value in scope.get("headers", [])
    }


def _host_name(host: str) -> str:
    """The name part of a Host header (`[::1]:8000` -> `[::1]`, `a:80` -> `a`)."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if ":" in host else host


def same_origin(headers: dict[str, str], scheme: str) -> bool:
    """Whether Origin (or, without it, Referer) names the host:port this request was sent to."""
    host = headers.get("host", "")
    if not host:
        return False
    origin = headers.get("origin")
    if origin and origin != "null":
        return origin == f"{scheme}://{host}"
    referer = headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return parts.scheme == scheme and parts.netloc == host
    return False


class SecurityMiddleware:
    """Applies `Guard` to every HTTP request (see the module docstring), and adds the headers."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        guard = self.guard
        if guard.allowed_hosts is not None:
            name = _host_name(headers.get("host", "")).lower()
            if name not in guard.allowed_hosts:
                await _plain(send, 400, "This server answers to its own address only.")
                return
        set_cookie: str | None = None
        if guard.token is not None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            cookie = SimpleCookie(headers.get("cookie", ""))
            presented = [
                query.get("token"),
                cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else None,
                headers.get("authorization", "").removeprefix("Bearer ").strip() or None,
            ]
            if not any(same_secret(p, guard.token) for p in presented):
                await _plain(
                    send,
                    401,
                    "An access token is required: open the address `maestro ui` printed "
                    "(it ends in ?token=...).",
                )
                return
            if same_secret(query.get("token"), guard.token):
                set_cookie = f"{TOKEN_COOKIE}={guard.token}; Path=/; HttpOnly; SameSite=Strict"
                if scope["method"] == "GET":  # take the token out of the address bar
                    rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
                    # One leading slash: "//host/..." would send the browser to another site.
                    path = "/" + str(scope.get("path", "/")).lstrip("/")
                    await _redirect(send, path + (f"?{rest}" if rest else ""), set_cookie)
                    return
        if scope["method"] not in SAFE_METHODS and not same_origin(
            headers, scope.get("scheme", "http")
        ):
            await _plain(
                send, 403, "Refused: this request did not come from a page of this server."
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                if set_cookie is not None:
                    extra.append((b"set-cookie", set_cookie.encode()))
                present = {key.lower() for key, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (key, value)
                    for key, value in extra
                    if key not in present or key == b"set-cookie"
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str, cookie: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", quote(location, safe="/?=&%:@-._~+!$'()*,;").encode()),
                (b"set-cookie", cookie.encode()),
                (b"content-length", b"0"),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def check_csrf(header: str | None, form: dict[str, str], secret: str) -> bool:
    """Whether a state-changing request carries the CSRF secret (header or form field)."""
    return same_secret(header, secret) or same_secret(form.get(CSRF_FIELD), secret)
