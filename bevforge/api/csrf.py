"""Cross-site request forgery and cross-site socket defence: one guard in front of the whole app.

A browser attaches the session cookie (and a kiosk's address, and `auth.mode: none`'s loopback
trust) to every request it sends to this server, whichever page asked for it. SameSite=Strict does
not help against another service on the same brewery host or LAN address (same site, other
origin), so a state change is accepted only when the browser says it comes from one of our pages:

- `Origin` (or, on a state change without it, the origin of `Referer`) must be this server's own
  origin (the scheme and `Host` it was reached on) or one of `auth.allowed_origins`. A foreign one
  is refused (403 `csrf_rejected`) on the guarded paths, credentials or not (that also stops
  sign-in and first-run forgery); a read (GET, HEAD) is refused only for a foreign `Origin`.
- A state change that rides on ambient credentials (the session cookie, or a kiosk station's
  address) but has neither header is refused, unless it carries the session's CSRF token in
  `X-CSRF-Token` (`GET /api/os/auth/me` tells it).
- Bodies are JSON (`application/json`): a form-encoded, `text/plain`, multipart or untyped body is
  refused with 415 — those are the only bodies another site's page can send without asking first
  (a CORS preflight, which this server never grants). The three routes the plain-HTML pages post
  to (sign-in, sign-out, first run) also take form bodies, always with an Origin or Referer, and
  with the session's CSRF token as the `csrf` field whenever a session cookie rides along.
- A request with `Authorization: Bearer` is a script or integration, not a browser page (a page on
  another origin cannot add that header without a preflight): it is judged by its token alone.

NiceGUI's own socket (`/_nicegui_ws/`, its events over socket.io) is checked for Origin the same way,
handshake and long-polling alike. `/ws` checks its Origin in its own handler (before accept), with
the same `origin_allowed`; HTTP middleware of the usual kind would not see it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from bevforge.api.errors import error_response
from bevforge.auth import CSRF_FIELD, csrf_token, csrf_token_ok
from bevforge.errors import CSRF_REJECTED, UNSUPPORTED_MEDIA_TYPE, BevForgeError, Forbidden, UnsupportedMedia

__all__ = ["CSRF_FIELD", "OriginGuard", "csrf_token", "csrf_token_ok", "origin_allowed"]

CSRF_HEADER = "x-csrf-token"
FORM_ROUTES = frozenset({"/api/os/auth/login", "/api/os/auth/logout", "/setup"})
NICEGUI_SOCKET = "/_nicegui_ws/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(origin: str | None) -> str | None:
    """`HTTP://Brew.lan:80/` → `http://brew.lan:80`; None for anything that is not an http(s) origin."""
    if not origin:
        return None
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port or _DEFAULT_PORTS[parts.scheme]}"


def own_origin(scope: Scope, headers: Mapping[str, str]) -> str | None:
    """The origin this request reached us on: its scheme (ws → http) and its Host header."""
    host = headers.get("host")
    if not host:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
    return normalise_origin(f"{scheme}://{host}")


def claimed_origin(headers: Mapping[str, str]) -> str | None:
    """What the browser says the request came from: Origin, else Referer's origin ('' when neither).

    `Origin: null` (sandboxed frames, file pages, some redirects) is a claim of an opaque origin and
    is never ours, so it is returned as the string "null".
    """
    origin = headers.get("origin")
    if origin is not None:
        return origin.strip() or "null"
    referer = headers.get("referer")
    if referer:
        try:
            parts = urlsplit(referer.strip())
        except ValueError:
            return "null"
        return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"
    return ""


def origin_matches(claimed: str, scope: Scope, headers: Mapping[str, str], allowed: Iterable[str]) -> bool:
    wanted = normalise_origin(claimed)
    if wanted is None:
        return False
    if wanted == own_origin(scope, headers):
        return True
    return any(wanted == normalise_origin(a) for a in allowed)


def origin_allowed(scope: Scope, headers: Mapping[str, str], allowed: Iterable[str]) -> bool:
    """A browser socket's Origin must be ours or on the list (an empty list: ours only).

    A handshake without Origin is not from a browser page (every browser sends it on a WebSocket
    handshake), so it cannot carry a victim's cookie on a page's behalf: it is judged by its
    credentials alone.
    """
    origin = headers.get("origin")
    if origin is None:
        return True
    return origin_matches(origin, scope, headers, allowed)


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _has_body(headers: Mapping[str, str]) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in headers


def _cookie(headers: Mapping[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


class OriginGuard:
    """Pure ASGI middleware (it sees HTTP and NiceGUI's socket handshakes; `/ws` checks itself)."""

    def __init__(self, app: ASGIApp, *, allowed_origins: Iterable[str], stations: Iterable[str],
                 cookie_name: str) -> None:
        self.app = app
        self.allowed = tuple(allowed_origins)
        self.stations = frozenset(stations)
        self.cookie_name = cookie_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            refusal = self.check(scope)
            if refusal is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008, "reason": refusal.message[:120]})
                    return
                await error_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def check(self, scope: Scope) -> BevForgeError | None:
        """None to let the request through, else the typed refusal (answered by the one REST translator)."""
        path: str = scope.get("path", "")
        screens_socket = path.startswith(NICEGUI_SOCKET)
        if not screens_socket and (scope["type"] != "http" or not (path.startswith("/api/os/") or path in FORM_ROUTES)):
            return None  # pages, static files and /ws (which checks its own Origin before accepting)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if screens_socket:
            claimed = headers.get("origin")
            if claimed is not None and not origin_matches(claimed, scope, headers, self.allowed):
                return Forbidden(f"origin {claimed!r} may not open the screens' socket", code=CSRF_REJECTED)
            return None
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and auth[7:].strip():
            return None  # a script's token: no browser page can send this header cross-origin unasked
        # A read is refused only for a foreign Origin (a cross-origin fetch or EventSource); a link
        # followed from another site carries only a Referer and changes nothing.
        safe = scope.get("method", "GET") in SAFE_METHODS
        claimed = headers.get("origin", "") if safe else claimed_origin(headers)
        if claimed and not origin_matches(claimed, scope, headers, self.allowed):
            return Forbidden(f"request from {claimed!r}: only this server's own pages (or "
                             "auth.allowed_origins) may use its credentials", code=CSRF_REJECTED)
        if safe:
            return None
        cookie = _cookie(headers, self.cookie_name)
        client = scope.get("client")
        ambient = cookie is not None or (client is not None and client[0] in self.stations)
        media = _media_type(headers)
        form = media == "application/x-www-form-urlencoded" and path in FORM_ROUTES
        if not claimed and (ambient or form) and not csrf_token_ok(cookie, headers.get(CSRF_HEADER)):
            return Forbidden("a signed-in change needs this server's Origin or Referer header "
                             "(or the session's X-CSRF-Token)", code=CSRF_REJECTED)
        if _has_body(headers) and not form and not (media == "application/json" or media.endswith("+json")):
            return UnsupportedMedia(f"the body must be JSON (Content-Type: application/json), "
                                    f"not {media or 'untyped'}", code=UNSUPPORTED_MEDIA_TYPE)
        return None


def guard_settings(config: Any, cookie_name: str) -> dict[str, Any]:
    """The OriginGuard's keyword arguments from a PlantConfig."""
    return {"allowed_origins": config.auth.allowed_origins,
            "stations": [s.address for s in config.auth.stations], "cookie_name": cookie_name}
