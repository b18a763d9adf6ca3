"""Controller routes under /api/os/controllers: list, one, mode, setpoint, manual output, tuning, reset,
autotune (start, abort, accept, discard).

Transport only: the roles (operator: mode, setpoint, output, reset; technician: tuning, autotune), the node
rule, the checks and the audit are the controller service's (`bevforge/controllers/service.py`);
each answer is the controller's frame as `messages.controller` builds it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from bevforge.api.deps import actor_for_request, runtime_of
from bevforge.api.errors import JSONResponse
from bevforge.api.security import enforce, requires

router = APIRouter(prefix="/api/os/controllers", default_response_class=JSONResponse,
                   dependencies=[Depends(enforce)], tags=["controllers"])

ControllerId = Annotated[str, Path(min_length=1, max_length=64, description="the controller's id (config.yaml)")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModeIn(_Body):
    mode: Literal["auto", "manual", "off"]


class ValueIn(_Body):
    value: float = Field(description="°C for a setpoint, % for a manual output")


class TuningIn(_Body):
    kp: float | None = Field(default=None, ge=0, description="% per °C")
    ki: float | None = Field(default=None, ge=0, description="% per °C·s")
    kd: float | None = Field(default=None, ge=0, description="%·s per °C")
    derivativeFilterS: float | None = Field(default=None, gt=0)
    outMin: float | None = Field(default=None, ge=-100, le=100)
    outMax: float | None = Field(default=None, ge=-100, le=100)
    rampCPerMin: float | None = Field(default=None, gt=0)
    boilThresholdC: float | None = None
    boilOutputPct: float | None = Field(default=None, ge=0, le=100)


class AutotuneIn(_Body):
    amplitudePct: float | None = Field(default=None, gt=0, le=100, description="relay ± this around the bias (40)")
    biasPct: float | None = Field(default=None, ge=0, le=100, description="default: the present output")
    hysteresisC: float | None = Field(default=None, ge=0, description="noise band around the setpoint (0.2)")
    bandC: float | None = Field(default=None, gt=0, description="abort when the PV leaves setpoint ± this (5)")
    maxDurationS: float | None = Field(default=None, gt=0, description="abort without a stable cycle by then (7200)")
    cycles: int | None = Field(default=None, ge=2, le=20, description="agreeing cycles needed (3)")


_AUTOTUNE_NAMES = {"amplitudePct": "amplitude_pct", "biasPct": "bias_pct", "hysteresisC": "hysteresis_c",
                   "bandC": "band_c", "maxDurationS": "max_duration_s", "cycles": "cycles"}

_TUNING_NAMES = {"kp": "kp", "ki": "ki", "kd": "kd", "derivativeFilterS": "derivative_filter_s",
                 "outMin": "out_min", "outMax": "out_max", "rampCPerMin": "ramp_c_per_min",
                 "boilThresholdC": "boil_threshold_c", "boilOutputPct": "boil_output_pct"}


@router.get("", summary="Controllers the caller may see, with mode, state, PV, SP and output",
            openapi_extra=requires("viewer"))
async def list_controllers(request: Request, node: Annotated[str | None, Query(max_length=32)] = None,
                           ) -> list[dict[str, Any]]:
    return runtime_of(request).controllers.views(actor_for_request(request), node)


@router.get("/{controller_id}", summary="One controller", openapi_extra=requires("viewer"))
async def get_controller(request: Request, controller_id: ControllerId) -> dict[str, Any]:
    service = runtime_of(request).controllers
    return service.frame(service.find(actor_for_request(request), controller_id))


@router.post("/{controller_id}/mode", summary="Auto, manual or off (any change also resets a trip)",
             openapi_extra=requires("operator"))
async def set_mode(request: Request, controller_id: ControllerId, body: ModeIn) -> dict[str, Any]:
    return await runtime_of(request).controllers.set_mode(actor_for_request(request), controller_id, body.mode)


@router.post("/{controller_id}/setpoint", summary="The setpoint (°C, within the controller's range)",
             openapi_extra=requires("operator"))
async def set_setpoint(request: Request, controller_id: ControllerId, body: ValueIn) -> dict[str, Any]:
    return await runtime_of(request).controllers.set_setpoint(actor_for_request(request), controller_id, body.value)


@router.post("/{controller_id}/output", summary="The manual output in % (manual mode only)",
             openapi_extra=requires("operator"))
async def set_output(request: Request, controller_id: ControllerId, body: ValueIn) -> dict[str, Any]:
    return await runtime_of(request).controllers.set_output(actor_for_request(request), controller_id, body.value)


@router.post("/{controller_id}/tuning", summary="PID gains and limits (only the keys sent change; bumpless)",
             openapi_extra=requires("technician"))
async def set_tuning(request: Request, controller_id: ControllerId, body: TuningIn) -> dict[str, Any]:
    values = {_TUNING_NAMES[k]: v for k, v in body.model_dump(exclude_unset=True).items()}
    return await runtime_of(request).controllers.set_tuning(actor_for_request(request), controller_id, values)


@router.post("/{controller_id}/reset", summary="Reset a trip: the controller goes off (409 when it is not tripped)",
             openapi_extra=requires("operator"))
async def reset(request: Request, controller_id: ControllerId) -> dict[str, Any]:
    return await runtime_of(request).controllers.reset(actor_for_request(request), controller_id)


@router.post("/{controller_id}/autotune", summary="Start a relay autotune around the present setpoint",
             openapi_extra=requires("technician"))
async def start_autotune(request: Request, controller_id: ControllerId, body: AutotuneIn | None = None,
                         ) -> dict[str, Any]:
    options = {} if body is None else {_AUTOTUNE_NAMES[k]: v for k, v in body.model_dump(exclude_none=True).items()}
    return await runtime_of(request).controllers.start_autotune(actor_for_request(request), controller_id, options)


@router.post("/{controller_id}/autotune/abort", summary="Abort a running autotune (the PID takes over)",
             openapi_extra=requires("technician"))
async def abort_autotune(request: Request, controller_id: ControllerId) -> dict[str, Any]:
    return await runtime_of(request).controllers.abort_autotune(actor_for_request(request), controller_id)


@router.post("/{controller_id}/autotune/accept", summary="Take the gains a finished autotune proposes",
             openapi_extra=requires("technician"))
async def accept_autotune(request: Request, controller_id: ControllerId) -> dict[str, Any]:
    return await runtime_of(request).controllers.accept_autotune(actor_for_request(request), controller_id)


@router.post("/{controller_id}/autotune/discard",
             summary="Set aside a finished autotune without taking its gains (409 when none has finished)",
             openapi_extra=requires("technician"))
async def discard_autotune(request: Request, controller_id: ControllerId) -> dict[str, Any]:
    return await runtime_of(request).controllers.discard_autotune(actor_for_request(request), controller_id)
