"""Who is at this screen: the signed-in actor of each browser tab, sign-in gating, and sign-out.

Every page resolves its actor from the request exactly as the REST API does (session cookie, or the
configured kiosk station address; with `auth.mode: none` an anonymous admin). No actor → the page
answers a redirect to the plain-HTML sign-in page, so nothing of the plant is ever drawn for a
stranger. The actor is kept per NiceGUI client, and every command and alarm action asks again
through `actor_of`, which also counts as activity for the idle timeout and notices a session that
ended in the meantime. When a session ends elsewhere (sign-out in another tab, idle timeout, user
disabled), the auth service's revocation listener sends each of its open tabs back to sign-in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app as nicegui_app
from nicegui import ui
from nicegui.client import Client

from bevforge import permissions
from bevforge.auth import CSRF_FIELD, SESSION_COOKIE, csrf_token
from bevforge.domain import Actor, station_of
from ui import state
from ui.feedback import say

log = logging.getLogger(__name__)

SIGN_IN_PATH = "/login"
SIGN_OUT_ACTION = "/api/os/auth/logout"
IDLE_SWEEP_S = 15.0


@dataclass
class Seat:
    """One browser tab's signed-in actor and what it signed in with."""

    actor: Actor
    cookie: str | None
    station: str
    path: str
    unregister: Callable[[], None] | None = None


_seats: dict[str, Seat] = {}  # NiceGUI client id → seat


def may(actor: Actor | None, role: str) -> bool:
    """Whether this actor holds at least `role` (viewer < operator < technician < admin)."""
    return permissions.has_role(actor, role)


def sign_in_url(path: str) -> str:
    return f"{SIGN_IN_PATH}?next={quote(path, safe='/')}"


def admit(request: Request, client: Client) -> Actor | None:
    """Resolve the actor behind a page request and seat it on this client; None: nobody signed in."""
    runtime = state.current()
    station = station_of(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    actor = runtime.auth.authenticate(bearer=None, cookie=cookie, station=station)
    if actor is None:
        return None
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    seat = Seat(actor, cookie, station, path)
    if actor.credential is not None:
        seat.unregister = runtime.auth.on_revoke(actor.credential, lambda _credential: _ended(client))
    _seats[client.id] = seat
    client.on_delete(lambda: _leave(client.id))
    return actor


def redirect_to_sign_in(request: Request, client: Client) -> RedirectResponse:
    """The answer to a page request without a signed-in user (the page draws nothing)."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    client.delete()
    return RedirectResponse(sign_in_url(path), status_code=303)


def seated(client: Client) -> Actor | None:
    """The actor seated on this client when its page was drawn (no re-check)."""
    seat = _seats.get(client.id)
    return seat.actor if seat is not None else None


def actor_of(client: Client) -> Actor | None:
    """The actor for an action pressed on this client, checked again now (None: signed out meanwhile).

    Asking the auth service again refreshes the session's idle clock (a press is activity) and
    notices a session that ended, a disabled user, or a changed role.
    """
    seat = _seats.get(client.id)
    if seat is None:
        _ended(client)  # the session ended under this screen: sign in again
        return None
    actor = state.current().auth.authenticate(bearer=None, cookie=seat.cookie, station=seat.station)
    if actor is None:
        _ended(client)
        return None
    seat.actor = actor
    return actor


def allowed(client: Client, role: str, what: str) -> Actor | None:
    """The actor if it may do `what` (needs `role`); otherwise tell the screen and return None."""
    actor = actor_of(client)
    if actor is None:
        return None
    if not may(actor, role):
        say(f"{what}: needs the {role} role; you are {actor.role}", "negative")
        return None
    return actor


def _ended(client: Client) -> None:
    """The session behind this tab ended: back to sign-in, then coming back to the same page."""
    seat = _seats.pop(client.id, None)
    if seat is not None and seat.unregister is not None:
        seat.unregister()
    if client.is_deleted:
        return
    target = sign_in_url(seat.path if seat is not None else client.request.url.path)
    with client:
        ui.navigate.to(target)


def _leave(client_id: str) -> None:
    seat = _seats.pop(client_id, None)
    if seat is not None and seat.unregister is not None:
        seat.unregister()


def sign_out_button(actor: Actor) -> None:
    """Name, role and SIGN OUT (a form POST, so the server clears the HttpOnly cookie itself).

    The form carries the session's CSRF token (api/csrf.py): a sign-out posted by another page
    without it is refused.
    """
    who = f"{actor.user} · {actor.role.upper()}"
    limit = permissions.node_limit(actor)
    if limit is not None:
        who += f" · {', '.join(limit)}"
    ui.label(who).classes("bf-who").mark("who").props('data-testid="who"')
    if actor.credential is not None and actor.credential.startswith("session:"):
        seat = _seats.get(ui.context.client.id)
        token = csrf_token(seat.cookie) if seat is not None and seat.cookie else ""
        ui.html(f'<form method="post" action="{SIGN_OUT_ACTION}" class="bf-signout">'
                f'<input type="hidden" name="{CSRF_FIELD}" value="{token}">'
                '<button type="submit" data-testid="sign-out" class="bf-btn">SIGN OUT</button></form>',
                sanitize=False).mark("sign-out")


def start_idle_sweep() -> None:
    """End idle sessions on time, so a screen left signed in goes back to sign-in by itself."""
    tasks: list[asyncio.Task[None]] = []

    async def sweep() -> None:
        while True:
            await asyncio.sleep(IDLE_SWEEP_S)
            try:
                state.current().auth.expire_idle_sessions()
            except Exception:
                log.exception("idle-session sweep failed")

    def begin() -> None:
        tasks.append(asyncio.get_running_loop().create_task(sweep(), name="ui idle-session sweep"))

    def end() -> None:
        for task in tasks:
            task.cancel()
        tasks.clear()

    nicegui_app.on_startup(begin)
    nicegui_app.on_shutdown(end)
