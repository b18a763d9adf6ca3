"""Notification routes under /api/notifications: the delivery log and a technician's test message."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, ValidationError

from bevforge.api.deps import actor_for_request, require_role, runtime_of
from bevforge.api.errors import JSONResponse
from bevforge.api.rest import body_schema, json_body
from bevforge.api.security import enforce, requires
from bevforge.errors import INVALID_REQUEST, Invalid

router = APIRouter(prefix="/api/notifications", default_response_class=JSONResponse,
                   dependencies=[Depends(enforce)], tags=["notifications"])


class TestMessageIn(BaseModel):
    recipient: str = Field(min_length=1, max_length=64, description="a name under notifications.recipients")


@router.get("/deliveries", summary="Recent notification deliveries, newest first (state, attempts, last error), "
            "and the recipients with their URLs in privacy form", openapi_extra=requires("technician"))
async def deliveries(request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    notifications = runtime_of(request).notifications
    if notifications is None:
        return {"enabled": False, "recipients": [], "queued": 0, "dropped": 0, "escalating": 0, "deliveries": []}
    return notifications.status() | {"deliveries": notifications.recent(limit, actor_for_request(request))}


@router.post("/test", summary="Send a test message to one recipient (technician; audited)",
             openapi_extra=body_schema(TestMessageIn) | requires("technician"))
async def send_test(request: Request) -> dict[str, Any]:
    from bevforge.notify import not_configured  # here: the package (and Apprise) load only for a plant that uses it

    actor = require_role(request, "technician")
    body = await json_body(request)
    if not isinstance(body, dict):
        raise Invalid("body must be a JSON object", code=INVALID_REQUEST, field="body")
    try:
        wanted = TestMessageIn.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise Invalid(f"{field}: {first['msg']}", code=INVALID_REQUEST, field=field) from None
    notifications = runtime_of(request).notifications
    if notifications is None:
        raise not_configured()
    return notifications.send_test(actor, wanted.recipient).view()
