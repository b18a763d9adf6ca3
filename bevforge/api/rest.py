"""REST API under /api/os: the seed's paths, camelCase JSON. Transport only: rules live in the core."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, WrapValidator

from bevforge import interlocks, permissions, trends
from bevforge.api.deps import actor_for_request, runtime_of
from bevforge.api.errors import JSONResponse, TimeQuery
from bevforge.api.security import enforce, requires
from bevforge.config import MAX_ENDPOINT_ID, Endpoint
from bevforge.domain import CommandStatus, plain_value, utcnow
from bevforge.errors import (
    BLOCKED,
    INVALID_JSON,
    INVALID_REQUEST,
    Invalid,
    Malformed,
)
from bevforge.ingest import MAX_BATCH
from bevforge.messages import endpoint_view, history_reading, history_rollup, trend_marker, trend_view
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


def _checked_by_the_core(value: Any, _handler: Any) -> Any:
    """Documented type, checked by the command pipeline: the same checks and words as /ws and the
    screens get (an endpoint's own data type decides what a good value is)."""
    return value


ByTheCore = WrapValidator(_checked_by_the_core)


class CommandIn(BaseModel):
    # POST /command's declared body: unknown fields refused here, the values checked by
    # `CommandService.submit`. (A comment, not a docstring: it would become OpenAPI text.)
    # additionalProperties stays out of the documented schema, as the hand-parsed body had it
    model_config = ConfigDict(extra="forbid", json_schema_extra=lambda schema: schema.pop("additionalProperties"))

    endpointId: Annotated[int, ByTheCore]
    value: Annotated[bool | int | float, ByTheCore]
    commandId: Annotated[str | None, ByTheCore] = Field(default=None, max_length=64)


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
        raise Invalid("request body must be a JSON object", code=INVALID_REQUEST, field="body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Malformed("request body is not valid JSON", code=INVALID_JSON, field="body") from None


# -- endpoints and tiles -------------------------------------------------------------------------

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
    readings = [(r["server_ts"], history_reading(r["endpoint_id"], r["value"], r["quality"], r["server_ts"],
                                                 r["source_ts"]))
                for r in rows]
    if len(rows) < limit:  # the range may reach back past the raw retention window: add its rollups
        rollups = await rt.history_reader.rollup_points(ids, since, until, limit - len(rows))
        readings += [(p["minute_ts"], history_rollup(p["endpoint_id"], p["minute_ts"], p["average"], p["minimum"],
                                                     p["maximum"], p["samples"]))
                     for p in rollups]
        readings.sort(key=lambda item: plain_value(item[0]) or 0.0)  # a hand-edited row never breaks the sort
    else:
        readings.reverse()
    return {"endpointId": endpointId, "count": len(readings), "readings": [r for _, r in readings]}


# -- commands ------------------------------------------------------------------------------------

async def post_command(request: Request, body: CommandIn) -> JSONResponse:
    rt = runtime_of(request)
    actor = actor_for_request(request)
    command, created = await rt.commands.submit(body.endpointId, body.value, body.commandId,
                                                actor=actor, origin="api")  # role and node: the service's to check
    payload = command.as_dict()
    if command.status is CommandStatus.BLOCKED:
        payload["error"] = BLOCKED
        payload["message"] = command.error
        return JSONResponse(payload, status_code=409)
    return JSONResponse(payload, status_code=202 if created else 200)


class _ReadAsJson(APIRoute):
    """A route whose declared body is read as JSON whatever its Content-Type.

    Which bodies may arrive at all is the OriginGuard's decision (bevforge/api/csrf.py): from a browser
    (a cookie, a station, a form) only JSON passes it, 415 otherwise; a Bearer-token script, which no
    page on another site can send, passes with any Content-Type and its JSON is read as before the
    body was declared (FastAPI's default reads only application/json)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def read_as_json(request: Request) -> Response:
            scope = dict(request.scope)
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            return await handler(Request(scope, request.receive))

        return read_as_json


# The decorator cannot say strict_content_type=False (no Content-Type: read as JSON), hence add_api_route.
router.add_api_route("/command", post_command, methods=["POST"],
                     summary="Send a command (202 queued, 409 blocked by an interlock)", status_code=202,
                     openapi_extra=requires("operator"), strict_content_type=False, route_class_override=_ReadAsJson,
                     responses={200: {"description": "The same commandId was sent before: its current state"}})


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


# -- trends: views and markers ----------------------------------------------------------------------

class TrendViewIn(BaseModel):
    # POST /trends/views: a named set of pens and a time span. Who may share, and which pens an actor
    # may name, is `TrendViews.save`'s to check. (A comment, not a docstring: it would become OpenAPI text.)
    model_config = ConfigDict(extra="forbid", json_schema_extra=lambda schema: schema.pop("additionalProperties"))

    name: str = Field(min_length=1, max_length=trends.MAX_NAME)
    pens: list[int] = Field(min_length=1, max_length=trends.MAX_PENS, description="endpoint ids, in legend order")
    spanS: float = Field(default=3600.0, ge=trends.MIN_SPAN_S, le=trends.MAX_SPAN_S)
    shared: bool = Field(default=False, description="for everybody (operator or above; audited)")


@router.get("/trends/views", summary="The trend views this user may pick: vessel defaults, shared, their own",
            openapi_extra=requires("viewer"))
async def list_trend_views(request: Request) -> list[dict[str, Any]]:
    rt = runtime_of(request)
    return [trend_view(v) for v in await rt.trends.views(actor_for_request(request))]


@router.post("/trends/views", summary="Save a trend view (own, or shared: operator and up, audited); "
             "the same name replaces it", status_code=201, openapi_extra=requires("viewer"))
async def save_trend_view(request: Request, body: TrendViewIn) -> dict[str, Any]:
    rt = runtime_of(request)
    view = await rt.trends.save(actor_for_request(request), body.name, body.pens, body.spanS, shared=body.shared)
    return trend_view(view)


@router.delete("/trends/views/{view_id}", summary="Delete one of your own trend views, or a shared one "
               "(operator and up, audited)", openapi_extra=requires("viewer"))
async def delete_trend_view(request: Request, view_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
    rt = runtime_of(request)
    await rt.trends.delete(actor_for_request(request), view_id)
    return {"id": view_id, "deleted": True}


@router.get("/trends/markers", summary="Commands and alarm journal transitions of these endpoints in a range",
            openapi_extra=requires("viewer"))
async def trend_markers(
    request: Request,
    endpointId: Annotated[list[int], Query(description="endpoint ids (repeat the parameter)",  # noqa: N803
                                           min_length=1, max_length=trends.MAX_PENS)],
    since: TimeQuery = None,
    until: TimeQuery = None,
) -> dict[str, Any]:
    """Default range: the hour before `until` (default now). At most 500 of each kind, oldest first."""
    rt = runtime_of(request)
    for eid in endpointId:
        _visible_endpoint(request, eid, "endpointId")
    until = until or utcnow()
    since = since or until - timedelta(hours=1)
    if since >= until:
        raise Invalid("since must be before until", field="since")
    markers = await rt.trends.markers(actor_for_request(request), endpointId, since, until)
    return {"count": len(markers), "markers": [trend_marker(m) for m in markers]}


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


@router.get("/health", summary="Liveness for anyone; versions, uptime, driver states and control-loop tick lateness "
            "for technicians",
            openapi_extra=requires("public"))
async def health(
    request: Request,
    ticksSince: Annotated[int | None, Query(  # noqa: N803
        ge=0, le=2**53 - 1,  # echoed back as `since`: a JSON integer every client (and orjson) can hold
        description="only the controller ticks numbered after this one (a `controllers.tickSeq` read earlier)",
    )] = None,
) -> dict[str, Any]:
    """A bare `{"status": "ok"}` is open to anyone (a load balancer's liveness probe). The detail names
    device hosts and ports, last errors and versions: with sign-in required it is for signed-in
    technicians and above only, since it maps the plant for an attacker. Its `controllers` part is the
    control loops' tick lateness (real ms), over the recent window or the ticks after `ticksSince`."""
    rt = runtime_of(request)
    if rt.auth.required and not has_role(actor_for_request(request), TECHNICIAN):
        return {"status": "ok"}
    return rt.health(ticksSince)


# -- live config reload ---------------------------------------------------------------------------

@router.post("/config/reload", summary="Apply the edited config file without a restart (technician and above)",
             openapi_extra=requires("technician"),
             responses={409: {"description": "needs a restart (a key named in `field`), a removed output that "
                                             "could not be put safe, or no config file"},
                        422: {"description": "the file fails the start-up checks: `problems` lists each as "
                                             "file:line: field: message; nothing changed"}})
async def reload_config(request: Request) -> dict[str, Any]:
    """Check the file the server was started with as start-up does and apply what changed (docs/config.md,
    "Reloading"): the answer lists the changes and the safe-value commands sent for removed outputs."""
    return await runtime_of(request).reloader.reload(actor_for_request(request), origin="api")
