"""Alarm routes under /api/os/alarms: list, ack, reset, shelve, service, limits, journal, statistics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from bevforge import permissions
from bevforge.alarms import MAX_SHELF_S, STATES, Alarm, AlarmNotFound, AlarmService
from bevforge.alarms import history as alarm_history
from bevforge.api.deps import actor_for_request, require_role, runtime_of
from bevforge.api.errors import CSV_ANSWER, JSONResponse, TimeQuery
from bevforge.api.rest import body_schema, json_body
from bevforge.api.security import enforce, requires
from bevforge.domain import Actor
from bevforge.errors import (
    INVALID_REQUEST,
    NOT_ALLOWED_NOW,
    Conflict,
    Invalid,
)

SQL_INT_MAX = 2**63 - 1  # a larger id cannot be in the database; asking SQLite for it raised OverflowError (500)
AlarmId = Annotated[int, Path(ge=0, le=SQL_INT_MAX)]

router = APIRouter(prefix="/api/os/alarms", default_response_class=JSONResponse,
                   dependencies=[Depends(enforce)], tags=["alarms"])

AlarmStateFilter = Literal[("active", "all", *STATES)]  # type: ignore[valid-type]


class CommentIn(BaseModel):
    comment: str | None = Field(default=None, max_length=500)


class ShelveIn(BaseModel):
    durationS: float | None = Field(default=None, gt=0, le=MAX_SHELF_S, description="omit for a one-shot shelf")
    comment: str | None = Field(default=None, max_length=500)


class LimitsIn(BaseModel):
    limit: float | None = None
    deadband: float | None = Field(default=None, ge=0)
    onDelayS: float | None = Field(default=None, ge=0)
    offDelayS: float | None = Field(default=None, ge=0)
    priority: Literal["low", "medium", "high", "critical"] | None = None


async def _model(request: Request, model: type[BaseModel]) -> Any:
    """The body as `model`; no body counts as {} (so the routes document their body as optional)."""
    body = await json_body(request, optional=True)
    if not isinstance(body, dict):
        raise Invalid("body must be a JSON object", code=INVALID_REQUEST, field="body")
    try:
        return model.model_validate(body, strict=False)
    except Exception as exc:  # pydantic ValidationError: name the first field
        errors = getattr(exc, "errors", lambda: [])()
        first = errors[0] if errors else {"loc": ("body",), "msg": str(exc)}
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise Invalid(f"{field}: {first['msg']}", code=INVALID_REQUEST, field=field) from None


def _visible(request: Request, alarm: Alarm | None, alarm_id: int) -> Alarm:
    return permissions.require_alarm(actor_for_request(request), runtime_of(request).config, alarm, alarm_id)


def _definition(request: Request, rule_id: str) -> dict[str, Any]:
    """The definition as GET /definitions shows it, so a change answers with the state it produced."""
    return runtime_of(request).alarms.definition(rule_id)


@router.get("", summary="Alarms; state=active (default: every open alarm) | all | a display state",
            openapi_extra=requires("viewer"))
async def list_alarms(request: Request, state: Annotated[AlarmStateFilter | None, Query()] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    rt = runtime_of(request)
    return [a.as_dict() for a in await rt.alarms.query(state, limit, actor_for_request(request))]


@router.get("/summary", summary="Unacknowledged counts by priority, flood and first-out",
            openapi_extra=requires("viewer"))
async def summary(request: Request) -> dict[str, Any]:
    return runtime_of(request).alarms.summary(actor_for_request(request))


@router.get("/history", summary="The alarm journal: every transition with time and user (format=csv to export)",
            openapi_extra=requires("viewer"), responses=CSV_ANSWER)
async def history(request: Request, since: TimeQuery = None, until: TimeQuery = None,
                  ruleId: str | None = None, event: str | None = None,  # noqa: N803
                  alarmId: Annotated[int | None, Query(ge=0, le=SQL_INT_MAX)] = None,  # noqa: N803
                  limit: Annotated[int, Query(ge=1, le=100000)] = 1000,
                  format: Literal["json", "csv"] = "json",
                  site: Annotated[str | None, Query(description="a central panel: the alarm journal this forwarding "
                                                    "site sent (its mqtt.site), not this panel's own")] = None) -> Any:
    rt = runtime_of(request)
    actor = actor_for_request(request)
    # JSON and CSV alike: only the entries of alarms the actor may see (`permissions.alarm_key_filter`)
    if site is not None:
        permissions.require_forwarded_site(rt.config, site)
        entries = await rt.alarms.site_journal(actor, site, since=since, until=until, rule_id=ruleId, event=event,
                                               alarm_id=alarmId, limit=limit)
    else:
        entries = await rt.alarms.journal(actor, since=since, until=until, rule_id=ruleId, event=event,
                                          alarm_id=alarmId, limit=limit)
    if format == "csv":
        name = f"alarm-journal-{site}.csv" if site is not None else "alarm-journal.csv"
        return Response(alarm_history.to_csv(entries, site=site is not None), media_type="text/csv",
                        headers={"content-disposition": f'attachment; filename="{name}"'})
    return entries


@router.get("/stats", summary="Alarm load statistics for technicians", openapi_extra=requires("technician"))
async def stats(request: Request) -> dict[str, Any]:
    actor = require_role(request, "technician")
    rt = runtime_of(request)
    return await rt.alarms.statistics(actor)


@router.get("/definitions", summary="Alarm definitions with their runtime state and current limits",
            openapi_extra=requires("viewer"))
async def definitions(request: Request) -> list[dict[str, Any]]:
    return runtime_of(request).alarms.definitions(actor_for_request(request))


def _rule(request: Request, rule_id: str) -> str:
    rt = runtime_of(request)
    permissions.require_alarm_point(actor_for_request(request), rt.config, rt.alarms.points.get(rule_id), rule_id,
                                    rt.alarms.remote)
    return rule_id


@router.patch("/definitions/{rule_id}", summary="Change limits at runtime (technician; persisted, journalled)",
              openapi_extra=body_schema(LimitsIn, required=False) | requires("technician"))
async def change_limits(request: Request, rule_id: str) -> dict[str, Any]:
    actor = require_role(request, "technician")
    rule_id = _rule(request, rule_id)
    body: LimitsIn = await _model(request, LimitsIn)
    changes = {k: v for k, v in {"limit": body.limit, "deadband": body.deadband, "on_delay_s": body.onDelayS,
                                 "off_delay_s": body.offDelayS, "priority": body.priority}.items() if v is not None}
    if not changes:
        raise Invalid("nothing to change", code=INVALID_REQUEST, field="body")
    old, _point = runtime_of(request).alarms.change_limits(rule_id, changes, actor)
    return _definition(request, rule_id) | {"previous": old}


@router.post("/definitions/{rule_id}/shelve", summary="Shelve (timed with durationS, else one-shot)",
             openapi_extra=body_schema(ShelveIn, required=False) | requires("operator"))
async def shelve(request: Request, rule_id: str) -> dict[str, Any]:
    body: ShelveIn = await _model(request, ShelveIn)
    actor = require_role(request, "operator" if body.durationS else "technician")
    rule_id = _rule(request, rule_id)
    runtime_of(request).alarms.shelve(rule_id, actor, body.durationS, body.comment)
    return _definition(request, rule_id)


@router.post("/definitions/{rule_id}/unshelve", summary="Unshelve",
             openapi_extra=body_schema(CommentIn, required=False) | requires("operator"))
async def unshelve(request: Request, rule_id: str) -> dict[str, Any]:
    return await _commented_change(request, rule_id, "operator", AlarmService.unshelve)


@router.post("/definitions/{rule_id}/out-of-service", summary="Take out of service (technician)",
             openapi_extra=body_schema(CommentIn, required=False) | requires("technician"))
async def out_of_service(request: Request, rule_id: str) -> dict[str, Any]:
    return await _commented_change(
        request, rule_id, "technician",
        lambda alarms, rule, actor, comment: alarms.set_in_service(rule, False, actor, comment))


@router.post("/definitions/{rule_id}/in-service", summary="Return to service (technician)",
             openapi_extra=body_schema(CommentIn, required=False) | requires("technician"))
async def in_service(request: Request, rule_id: str) -> dict[str, Any]:
    return await _commented_change(
        request, rule_id, "technician",
        lambda alarms, rule, actor, comment: alarms.set_in_service(rule, True, actor, comment))


DefinitionChange = Callable[[AlarmService, str, Actor, str | None], object]


async def _commented_change(request: Request, rule_id: str, role: str, change: DefinitionChange) -> dict[str, Any]:
    """A definition change whose body is only an optional comment; answers with the changed definition.

    One place for the checks so these routes cannot drift apart: the role (403), then the
    definition (404), then the body (422), in the order the routes always used, so a bad request
    still gets the same error as before; a refused transition is a 409.
    """
    actor = require_role(request, role)
    rule_id = _rule(request, rule_id)
    body: CommentIn = await _model(request, CommentIn)
    change(runtime_of(request).alarms, rule_id, actor, body.comment)
    return _definition(request, rule_id)


@router.get("/{alarm_id}", summary="One alarm occurrence", openapi_extra=requires("viewer"))
async def get_alarm(request: Request, alarm_id: AlarmId) -> dict[str, Any]:
    return _visible(request, await runtime_of(request).alarms.get(alarm_id), alarm_id).as_dict()


@router.post("/{alarm_id}/ack", summary="Acknowledge an alarm",
             openapi_extra=body_schema(CommentIn, required=False) | requires("operator"))
async def ack_alarm(request: Request, alarm_id: AlarmId) -> dict[str, Any]:
    return await _act(request, alarm_id, "ack")


@router.post("/{alarm_id}/reset", summary="Reset a latched alarm that returned to normal",
             openapi_extra=body_schema(CommentIn, required=False) | requires("operator"))
async def reset_alarm(request: Request, alarm_id: AlarmId) -> dict[str, Any]:
    return await _act(request, alarm_id, "reset")


async def _act(request: Request, alarm_id: int, action: str) -> dict[str, Any]:
    actor = require_role(request, "operator")
    body: CommentIn = await _model(request, CommentIn)
    rt = runtime_of(request)
    alarm = _visible(request, await rt.alarms.get(alarm_id), alarm_id)
    try:
        alarm = (rt.alarms.ack if action == "ack" else rt.alarms.reset)(alarm_id, actor, body.comment)
    except AlarmNotFound:
        if action == "reset":
            raise Conflict("this alarm is closed: nothing to reset", code=NOT_ALLOWED_NOW) from None
        # already closed (normal and acknowledged): acknowledging again changes nothing
    return alarm.as_dict()
