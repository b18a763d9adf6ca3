"""Who is on the other end of a live connection: the one seam the security issue fills in.

The seed allows three ways to present credentials on `/ws`: a token in the query string
(`/ws?token=...`), an `{"type":"auth","token":...}` first message, or the session cookie. All three
end in `authenticate_ws()`, which asks the core's AuthService. With `auth.mode: none` (allowed only
on loopback) everyone is an anonymous admin from their own address.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from bevforge.api import csrf
from bevforge.api.deps import runtime_of, station_of
from bevforge.auth import SESSION_COOKIE
from bevforge.domain import Actor

TOKEN_QUERY = "token"


def origin_allowed(conn: HTTPConnection) -> bool:
    """Cross-site WebSocket hijacking guard: a browser's Origin must be this server's own origin
    (the scheme and Host it was reached on) or on `auth.allowed_origins`; an empty list means
    same-origin only. A handshake without Origin is not from a browser page and cannot carry a
    victim's cookie on someone else's behalf, so it is judged by its credentials.
    """
    return csrf.origin_allowed(conn.scope, conn.headers, runtime_of(conn).config.auth.allowed_origins)


def presented_token(conn: HTTPConnection) -> str | None:
    """A credential carried by the handshake itself: `?token=` first, then the session cookie."""
    token = conn.query_params.get(TOKEN_QUERY) or conn.cookies.get(SESSION_COOKIE)
    return token or None


async def authenticate_ws(conn: HTTPConnection, token: str | None) -> Actor | None:
    """The actor behind a live connection, or None when it must be refused (or must still authenticate).

    A presented token may be an API token or a session cookie value; without one, a kiosk station
    is recognised by its address. In auth mode none everyone else is an anonymous admin.
    """
    auth = runtime_of(conn).auth
    station = station_of(conn)
    actor = None
    if token:
        await auth.refresh_if_unknown(token)  # a token the CLI created a moment ago
        actor = auth.actor_from_token(token, station) or auth.actor_from_session(token, station)
        if actor is None:
            return None
    actor = actor or auth.station_actor(station)
    if actor is None and not auth.required:
        actor = Actor(user="anonymous", station=station, role="admin")
    return actor
