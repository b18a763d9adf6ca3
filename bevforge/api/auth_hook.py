"""Who is on the other end of a live connection: the one seam the security issue fills in.

The seed allows three ways to present credentials on `/ws`: a token in the query string
(`/ws?token=...`), an `{"type":"auth","token":...}` first message, or the session cookie. All three
end in `authenticate_ws()`. With `auth.mode: none` (the default when the server listens on
loopback) everyone is an anonymous admin from their own address. With `auth.mode: required` a
token is checked by the verifier installed on `app.state.token_verifier`; until the user store
exists nobody is verified, so a required-auth server refuses every live connection (fail closed).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Literal

from starlette.requests import HTTPConnection

from bevforge.api.deps import runtime_of, station_of
from bevforge.domain import Actor

TOKEN_QUERY = "token"
SESSION_COOKIE = "bevforge_session"

TokenVerifier = Callable[[HTTPConnection, str], Awaitable[Actor | None]]


def auth_mode(conn: HTTPConnection) -> Literal["none", "required"]:
    """The configured mode; unset means none on a loopback listener and required anywhere else."""
    mode = runtime_of(conn).config.auth.mode
    if mode is not None:
        return mode
    server = conn.scope.get("server")
    host = server[0] if server else None
    return "none" if host is not None and _is_loopback(host) else "required"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_allowed(conn: HTTPConnection) -> bool:
    """Cross-site WebSocket hijacking guard: a browser's Origin must be on the allow-list.

    An empty list allows every origin; a request without Origin is not from a browser page and
    cannot carry a victim's cookie on someone else's behalf, so it is judged by its credentials.
    """
    allowed = runtime_of(conn).config.auth.allowed_origins
    if not allowed:
        return True
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    wanted = origin.rstrip("/").lower()
    return any(wanted == a.rstrip("/").lower() for a in allowed)


def presented_token(conn: HTTPConnection) -> str | None:
    """A credential carried by the handshake itself: `?token=` first, then the session cookie."""
    token = conn.query_params.get(TOKEN_QUERY) or conn.cookies.get(SESSION_COOKIE)
    return token or None


async def authenticate_ws(conn: HTTPConnection, token: str | None) -> Actor | None:
    """The actor behind a live connection, or None when it must be refused."""
    if auth_mode(conn) == "none":
        return Actor(user="anonymous", station=station_of(conn), role="admin")
    verifier: TokenVerifier | None = getattr(conn.app.state, "token_verifier", None)
    if verifier is None or not token:
        return None
    return await verifier(conn, token)
