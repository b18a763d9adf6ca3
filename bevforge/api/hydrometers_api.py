"""Floating hydrometers post here: `POST /api/hydrometers/<kind>/<device id>/<token>` (docs/protocol.md).

An iSpindel or a Tilt bridge cannot send a header or sign in, so the device's own token is a path
segment and is the only credential: a user's session or API token grants nothing here. Transport
only: the device's driver (a `PostedDriver`) checks the token in constant time and reads the body;
an unknown device and a wrong token get the same 401, so neither device ids nor tokens can be probed.
The path is outside /api/os, so the Origin guard's JSON-only rule does not apply: the Tilt app posts a
form (`application/x-www-form-urlencoded`), which is read as well as JSON. No ambient credential is
honoured on this path, so a forged cross-site post can do nothing without the token.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from bevforge.api.deps import runtime_of
from bevforge.api.errors import JSONResponse
from bevforge.api.rest import body_schema
from bevforge.api.security import PUBLIC, requires
from bevforge.devices import PostedDriver
from bevforge.errors import INVALID_JSON, UNAUTHORIZED, Malformed, Unauthorized

router = APIRouter(prefix="/api/hydrometers", default_response_class=JSONResponse)

REFUSED = "device id or token not accepted"


class ISpindelPost(BaseModel):
    """What an iSpindel's HTTP service sends (its firmware's field names)."""

    name: str
    ID: int | None = None
    token: str | None = Field(default=None, description="the portal's Token field; not checked (the URL's is)")
    angle: float
    temperature: float
    temp_units: str = Field(default="C", description="C, F or K")
    battery: float = Field(description="volts")
    gravity: float = Field(description="in the device's settings.gravity_unit (SG or °P)")
    interval: int | None = None
    RSSI: int | None = None


class TiltPost(BaseModel):
    """What the Tilt app or TiltPi posts to a cloud URL (a form or JSON; a form's values are text)."""

    Color: str = Field(description="RED, GREEN, … (a Tilt Pico adds ':<mac>'): must be the device's colour")
    SG: float | str = Field(description="in the device's settings.gravity_unit")
    Temp: float | str = Field(description="in the device's settings.temperature_unit")
    Timepoint: float | str | None = Field(default=None, description="spreadsheet date; checked, not used")
    Beer: str | None = None
    Comment: str | None = None


def _bodies() -> dict[str, Any]:
    """OpenAPI: either model as JSON, and the Tilt app's form."""
    documented = body_schema(ISpindelPost, TiltPost)
    content = documented["requestBody"]["content"]
    content["application/x-www-form-urlencoded"] = body_schema(TiltPost)["requestBody"]["content"]["application/json"]
    return documented


async def _body(request: Request) -> Any:
    raw = await request.body()
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            raise Malformed("the form body is not UTF-8 url-encoded text", code=INVALID_JSON, field="body") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Malformed("the body is not valid JSON", code=INVALID_JSON, field="body") from None


@router.post("/{kind}/{device_id}/{token}", summary="A floating hydrometer's post (iSpindel or Tilt bridge); "
             "the device's token in the path is the credential",
             openapi_extra=_bodies() | requires(PUBLIC))
async def hydrometer_post(request: Request, kind: str, device_id: str, token: str) -> dict[str, Any]:
    driver = runtime_of(request).drivers.get(device_id)
    if not isinstance(driver, PostedDriver):
        raise Unauthorized(REFUSED, code=UNAUTHORIZED, field="token")
    body = await _body(request)
    applied = driver.accept_post(kind, token, body)
    await asyncio.sleep(0)  # let the live consumers woken by the readings write their frames first
    return applied
