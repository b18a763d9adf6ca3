"""Every route declares the role it needs; one dependency enforces it for REST.

A route says `openapi_extra=requires("operator")`; the declaration is also visible in /openapi.json
as `x-required-role`, which the role × route matrix test reads. A route that forgot to declare
needs admin (fail closed).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from bevforge import permissions
from bevforge.api.deps import runtime_of, station_of
from bevforge.auth import SESSION_COOKIE
from bevforge.errors import UNAUTHORIZED, Unauthorized

PUBLIC = "public"
ROLE_KEY = "x-required-role"
QUERY_TOKEN_KEY = "x-query-token"  # EventSource cannot send headers: SSE may carry ?token=


def requires(role: str) -> dict[str, Any]:
    if role != PUBLIC and not permissions.is_role(role):
        raise ValueError(role)
    return {ROLE_KEY: role}


def bearer_token(request_headers: Any) -> str | None:
    header = request_headers.get("authorization")
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def _route_extra(request: Request) -> dict[str, Any]:
    return getattr(request.scope.get("route"), "openapi_extra", None) or {}


def required_role(request: Request) -> str:
    return _route_extra(request).get(ROLE_KEY, "admin")


async def enforce(request: Request) -> None:
    """Authenticate the request and check the route's declared role (401 / 403 as JSON)."""
    rt = runtime_of(request)
    bearer = bearer_token(request.headers)
    if bearer is None and _route_extra(request).get(QUERY_TOKEN_KEY):
        bearer = request.query_params.get("token")
    actor = await rt.auth.authenticate_async(bearer=bearer, cookie=request.cookies.get(SESSION_COOKIE),
                                             station=station_of(request))
    request.state.actor = actor
    role = required_role(request)
    if role == PUBLIC:
        return
    if actor is None:
        raise Unauthorized("sign in (session cookie) or send 'Authorization: Bearer <token>'", code=UNAUTHORIZED)
    permissions.require_role(actor, role)
