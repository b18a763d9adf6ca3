"""REST API under /api/os: the seed's paths, camelCase JSON. Transport only: rules live in the core."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from bevforge import interlocks, permissions
from bevforge.api.deps import actor_for_request, runtime_of
from bevforge.api.errors import ApiError, JSONResponse, TimeQuery
from bevforge.api.security import enforce, requires
from bevforge.commands import CommandRejected
from bevforge.config import MAX_ENDPOINT_ID, Endpoint
from bevforge.domain import CommandStatus, Quality, iso, iso_epoch, plain_value
from bevforge.ingest import MAX_BATCH
from bevforge.permissions import TECHNICIAN, has_role

router = APIRouter(prefix="/api/os", default_response_class=JSONResponse, dependencies=[Depends(enforce)])


# -- request bodies (documented in OpenAPI; parsed by hand so errors name the exact field) --------

class ReadingIn(BaseModel):
    endpointId: int
    value: bool | int | float | None
    timestamp: datetime | None = None
    quality: Literal["good", "uncertain", "bad"] = "good"


class IngestBatch(BaseModel):
    readings: list[ReadingIn] = Field(max_length=MAX_BATCH)


class CommandIn(BaseModel):
    endpointId: int
    value: bool | int | float
    commandId: str | None = Field(default=None, max_length=64)


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """Replace `$ref`s to the model's own `$defs` by their schema: the body stands on its own in OpenAPI."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def body_schema(*models: type[BaseModel], required: bool = True) -> dict[str, Any]:
    schemas = []
    for model in models:
        raw = model.model_json_schema()
        schemas.append(_inline_refs(raw, raw.pop("$defs", {})))
    schema: dict[str, Any] = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


async def json_body(request: Request, *, optional: bool = False) -> Any:
    raw = await request.body()
    if not raw.strip():
        if optional:
            return {}
        raise ApiError(422, "invalid_request", "request body must be a JSON object", "body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "request body is not valid JSON", "body") from None


# -- endpoints and tiles -------------------------------------------------------------------------

def endpoint_view(endpoint: Endpoint, state: Any) -> dict[str, Any]:
    return {
        "endpointId": endpoint.id,
        "name": endpoint.name,
        "label": endpoint.display_name,
        "node": endpoint.node,
        "kind": endpoint.kind.value,
        "unit": endpoint.unit,
        "dataType": endpoint.data_type.value,
        "writable": endpoint.writable,
        "critical": endpoint.critical,
        "range": {"min": endpoint.range.min, "max": endpoint.range.max} if endpoint.range else None,
        "safeValue": endpoint.safe_value,
        "feedbackEndpointId": endpoint.feedback_id,
        "pollIntervalS": endpoint.poll_interval_s,
        "staleAfterS": endpoint.stale_after,
        "value": plain_value(state.value) if state.quality is not Quality.BAD else None,
        "lastValue": plain_value(state.value),
        "quality": state.quality.value,
        "timestamp": iso(state.server_time),
        "sourceTimestamp": iso(state.source_time),
        "error": state.error,
    }


@router.get("/tiles", summary="Tiles with their endpoints' current values", openapi_extra=requires("viewer"))
async def get_tiles(request: Request) -> list[dict[str, Any]]:
    rt = runtime_of(request)
    actor = actor_for_request(request)
    nodes = {n.id: n for n in rt.config.nodes}
    out = []
    for tile in rt.config.tiles:
        if not permissions.may_see_tile(actor, tile):
            continue
        out.append({
            "id": tile.id, "title": tile.title, "node": tile.node, "nodeName": nodes[tile.node].name,
            "order": tile.order,
            "endpoints": [endpoint_view(rt.plant.endpoints[e], rt.plant.states[e]) for e in tile.endpoints],
        })
    return out


@router.get("/endpoints", summary="All endpoints with current value and quality", openapi_extra=requires("viewer"))
async def get_endpoints(request: Request) -> list[dict[str, Any]]:
    rt = runtime_of(request)
    actor = actor_for_request(request)
    return [endpoint_view(e, rt.plant.states[e.id]) for e in permissions.visible_endpoints(actor, rt.config.endpoints)]


@router.get("/endpoints/{endpoint_id}", summary="One endpoint", openapi_extra=requires("viewer"))
async def get_endpoint(request: Request, endpoint_id: int) -> dict[str, Any]:
    rt = runtime_of(request)
    endpoint = _visible_endpoint(request, endpoint_id, "endpoint_id")
    return endpoint_view(endpoint, rt.plant.states[endpoint_id])


def _visible_endpoint(request: Request, endpoint_id: int, field: str) -> Endpoint:
    rt = runtime_of(request)
    return permissions.require_endpoint(actor_for_request(request), rt.plant.endpoints.get(endpoint_id),
                                        endpoint_id, field)


# -- telemetry -----------------------------------------------------------------------------------

@router.post("/telemetry/ingest", summary="Ingest one reading or a batch {readings: [...]}",
             openapi_extra=body_schema(ReadingIn, IngestBatch) | requires("technician"))
async def ingest(request: Request) -> dict[str, Any]:
    """Transport only: owner, value, time and rate checks live in bevforge/ingest.py (shared with MQTT)."""
    rt = runtime_of(request)
    body = await json_body(request)
    accepted = rt.intake.accept(body, actor_for_request(request))
    # Let the live consumers woken by this ingest write their frames before the answer goes out:
    # the screens are what an operator waits for, the ingesting script is not (one loop turn).
    await asyncio.sleep(0)
    return {"accepted": accepted}


@router.get("/telemetry", summary="History of readings (1-minute rollups where raw samples were pruned)",
            openapi_extra=requires("viewer"))
async def get_telemetry(
    request: Request,
    endpointId: Annotated[int | None, Query(description="endpoint id", ge=1, le=MAX_ENDPOINT_ID)] = None,  # noqa: N803
    since: TimeQuery = None,
    until: TimeQuery = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> dict[str, Any]:
    rt = runtime_of(request)
    if endpointId is not None:
        _visible_endpoint(request, endpointId, "endpointId")
    visible = permissions.visible_endpoint_ids(actor_for_request(request), rt.config)
    ids = [endpointId] if endpointId is not None else visible
    rows = await rt.history_reader.recent_readings(ids, since, until, limit)
    readings = [(r["server_ts"], {"endpointId": r["endpoint_id"], "value": plain_value(r["value"]),
                                  "quality": r["quality"], "timestamp": iso_epoch(r["server_ts"]),
                                  "sourceTimestamp": iso_epoch(r["source_ts"])})
                for r in rows]
    if len(rows) < limit:  # the range may reach back past the raw retention window: add its rollups
        rollups = await rt.history_reader.rollup_points(ids, since, until, limit - len(rows))
        readings += [(p["minute_ts"], {"endpointId": p["endpoint_id"], "value": plain_value(p["average"]),
                                       "quality": "good", "timestamp": iso_epoch(p["minute_ts"]),
                                       "sourceTimestamp": None,
                                       "rollup": {"periodS": 60, "minimum": plain_value(p["minimum"]),
                                                  "maximum": plain_value(p["maximum"]),
                                                  "samples": plain_value(p["samples"])}})
                     for p in rollups]
        readings.sort(key=lambda item: plain_value(item[0]) or 0.0)  # a hand-edited row never breaks the sort
    else:
        readings.reverse()
    return {"endpointId": endpointId, "count": len(readings), "readings": [r for _, r in readings]}


# -- commands ------------------------------------------------------------------------------------

@router.post("/command", summary="Send a command (202 queued, 409 blocked by an interlock)",
             status_code=202, openapi_extra=body_schema(CommandIn) | requires("operator"),
             responses={200: {"description": "The same commandId was sent before: its current state"}})
async def post_command(request: Request) -> JSONResponse:
    rt = runtime_of(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_request", "body must be an object {endpointId, value, commandId?}", "body")
    unknown = set(body) - {"endpointId", "value", "commandId"}
    if unknown:
        key = sorted(unknown)[0]
        raise ApiError(422, "unknown_field", f"unknown field {key!r}", key)
    for key in ("endpointId", "value"):
        if key not in body:
            raise ApiError(422, "missing_field", f"{key} is required", key)
    actor = actor_for_request(request)
    try:
        command, created = await rt.commands.submit(body["endpointId"], body["value"], body.get("commandId"),
                                                    actor=actor, origin="api")
    except CommandRejected as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.field) from None
    payload = command.as_dict()
    if command.status is CommandStatus.BLOCKED:
        payload["error"] = "blocked"
        payload["message"] = command.error
        return JSONResponse(payload, status_code=409)
    return JSONResponse(payload, status_code=202 if created else 200)


@router.get("/commands/{command_id}", summary="One command with every lifecycle timestamp",
            openapi_extra=requires("viewer"))
async def get_command(request: Request, command_id: str) -> dict[str, Any]:
    rt = runtime_of(request)
    command = await rt.commands.find(command_id)
    return permissions.require_command(actor_for_request(request), rt.config, command, command_id).as_dict()


@router.get("/commands", summary="Recent commands, newest first", openapi_extra=requires("viewer"))
async def list_commands(
    request: Request,
    endpointId: Annotated[int | None, Query(ge=1, le=MAX_ENDPOINT_ID)] = None,  # noqa: N803
    status: Annotated[CommandStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    rt = runtime_of(request)
    actor = actor_for_request(request)
    commands = await rt.commands.query(endpointId, status, limit)
    return [c.as_dict() for c in commands if permissions.may_see_command(actor, rt.config, c)]


# -- interlocks and health ------------------------------------------------------------------------

@router.get("/interlocks", summary="Interlock rules with their current evaluation", openapi_extra=requires("viewer"))
async def list_interlocks(request: Request) -> list[dict[str, Any]]:
    """The rules on outputs the actor may see; a condition on another node's endpoint without its value."""
    rt = runtime_of(request)
    actor = actor_for_request(request)
    shown = permissions.value_filter(actor, rt.config)
    out = []
    for rule in rt.config.interlocks:
        if not permissions.may_see_interlock(actor, rt.config, rule):
            continue
        target = rt.plant.endpoints[rule.target]
        current = rt.plant.states[target.feedback_id].value
        verdict = interlocks.evaluate(rule, rt.plant.endpoints, rt.plant.states, current, shown=shown)
        item = verdict.as_dict()
        item["targetName"] = target.name
        item["requires"] = [interlocks.describe(c, rt.plant.endpoints, rt.plant.states.get(c.endpoint),
                                                shown=shown(c.endpoint))
                            for c in rule.requires]
        item["trip"] = rule.trip
        out.append(item)
    return out


@router.get("/health", summary="Liveness for anyone; versions, uptime and driver states for technicians",
            openapi_extra=requires("public"))
async def health(request: Request) -> dict[str, Any]:
    """A bare `{"status": "ok"}` is open to anyone (a load balancer's liveness probe). The detail names
    device hosts and ports, last errors and versions: with sign-in required it is for signed-in
    technicians and above only, since it maps the plant for an attacker."""
    rt = runtime_of(request)
    if rt.auth.required and not has_role(actor_for_request(request), TECHNICIAN):
        return {"status": "ok"}
    return rt.health()
