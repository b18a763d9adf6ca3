"""Program routes under /api/os/programs: the units and their programs, the templates, and the operator's
actions (start, pause, resume, skip, back, extend or shorten, abort, confirm a prompt).

Transport only: the role (operator for every action, viewer to look), the node rule, the checks and the
audit are the program service's (`bevforge/programs/service.py`); each answer is the unit's frame as
`messages.program` builds it. Templates are read from config.yaml and are not edited here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from bevforge.api.deps import actor_for_request, runtime_of
from bevforge.api.errors import JSONResponse
from bevforge.api.security import enforce, requires

router = APIRouter(prefix="/api/os/programs", default_response_class=JSONResponse,
                   dependencies=[Depends(enforce)], tags=["programs"])

UnitId = Annotated[str, Path(min_length=1, max_length=32, description="the unit's id (config.yaml programs.units)")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartIn(_Body):
    templateId: str = Field(min_length=1, max_length=64, description="a template of this unit")


class MinutesIn(_Body):
    minutes: float = Field(description="more time for the current step (negative: less); not 0")


class ConfirmIn(_Body):
    step: int = Field(ge=0, description="the index of the prompt's step (the current step)")
    key: str = Field(min_length=1, max_length=64, description="the prompt's key, as in the frame's prompts")


@router.get("", summary="Program units the caller may see, each with its program's state",
            openapi_extra=requires("viewer"))
async def list_units(request: Request) -> list[dict[str, Any]]:
    return runtime_of(request).programs.views(actor_for_request(request))


@router.get("/templates", summary="The program templates of the units the caller may see",
            openapi_extra=requires("viewer"))
async def list_templates(request: Request) -> list[dict[str, Any]]:
    return runtime_of(request).programs.template_views(actor_for_request(request))


@router.get("/{unit}", summary="One unit's program", openapi_extra=requires("viewer"))
async def get_unit(request: Request, unit: UnitId) -> dict[str, Any]:
    service = runtime_of(request).programs
    return service.frame(service.find(actor_for_request(request), unit))


@router.post("/{unit}/start", summary="Start a template on the unit (idle, completed or aborted; 409 otherwise)",
             openapi_extra=requires("operator"))
async def start(request: Request, unit: UnitId, body: StartIn) -> dict[str, Any]:
    return await runtime_of(request).programs.start_program(actor_for_request(request), unit, body.templateId)


@router.post("/{unit}/pause", summary="Pause the running program (timers stop; a transfer's pump stops)",
             openapi_extra=requires("operator"))
async def pause(request: Request, unit: UnitId) -> dict[str, Any]:
    return await runtime_of(request).programs.pause(actor_for_request(request), unit)


@router.post("/{unit}/resume", summary="Resume a paused program (its controllers are taken back)",
             openapi_extra=requires("operator"))
async def resume(request: Request, unit: UnitId) -> dict[str, Any]:
    return await runtime_of(request).programs.resume(actor_for_request(request), unit)


@router.post("/{unit}/skip", summary="End the current step now and go to the next",
             openapi_extra=requires("operator"))
async def skip(request: Request, unit: UnitId) -> dict[str, Any]:
    return await runtime_of(request).programs.skip(actor_for_request(request), unit)


@router.post("/{unit}/back", summary="Restart the current step, or go back one step if it has not run",
             openapi_extra=requires("operator"))
async def back(request: Request, unit: UnitId) -> dict[str, Any]:
    return await runtime_of(request).programs.back(actor_for_request(request), unit)


@router.post("/{unit}/extend", summary="More (or, negative, less) time for the current timed step",
             openapi_extra=requires("operator"))
async def extend(request: Request, unit: UnitId, body: MinutesIn) -> dict[str, Any]:
    return await runtime_of(request).programs.extend(actor_for_request(request), unit, body.minutes)


@router.post("/{unit}/abort", summary="Abort the program (a brewhouse's controllers are switched off)",
             openapi_extra=requires("operator"))
async def abort(request: Request, unit: UnitId) -> dict[str, Any]:
    return await runtime_of(request).programs.abort(actor_for_request(request), unit)


@router.post("/{unit}/confirm", summary="Answer a prompt of the current step", openapi_extra=requires("operator"))
async def confirm(request: Request, unit: UnitId, body: ConfirmIn) -> dict[str, Any]:
    return await runtime_of(request).programs.confirm(actor_for_request(request), unit, body.step, body.key)
