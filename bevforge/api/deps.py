"""Shared request helpers: the runtime behind the app and the actor behind a request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from bevforge import permissions
from bevforge.domain import Actor, station_of

__all__ = ["actor_for_request", "require_role", "runtime_of", "station_of"]

if TYPE_CHECKING:
    from bevforge.runtime import Runtime


def runtime_of(conn: HTTPConnection) -> Runtime:
    return conn.app.state.runtime


def actor_for_request(conn: HTTPConnection) -> Actor:
    """Who is asking, as authenticated by `security.enforce` (an anonymous viewer if nobody)."""
    actor = getattr(conn.state, "actor", None)
    if isinstance(actor, Actor):
        return actor
    return Actor(user="anonymous", station=station_of(conn), role="viewer", nodes=frozenset())


def require_role(conn: HTTPConnection, role: str) -> Actor:
    """The actor behind the request, if its role is at least `role`; Forbidden (403) otherwise."""
    return permissions.require_role(actor_for_request(conn), role)
