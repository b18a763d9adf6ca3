"""Batch record routes under /api/os/batches: the list, one batch (steps planned vs actual, operator actions,
alarms), its CSV export and its printable HTML report.

Transport only: what a batch holds and who may see it are the batch recorder's (`bevforge/programs/batches.py`,
the node rule through `permissions`: a batch of a unit the caller may not see answers 404 like a missing one).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from bevforge.api.deps import actor_for_request, runtime_of
from bevforge.api.errors import JSONResponse, TimeQuery
from bevforge.api.security import enforce, requires

router = APIRouter(prefix="/api/os/batches", default_response_class=JSONResponse,
                   dependencies=[Depends(enforce)], tags=["batches"])

SQL_INT_MAX = 2**63 - 1  # a larger id cannot be in the database
BatchId = Annotated[int, Path(ge=0, le=SQL_INT_MAX, description="the batch's id")]


@router.get("", summary="Batches (program runs) of the units the caller may see, newest first",
            openapi_extra=requires("viewer"))
async def list_batches(request: Request, unit: Annotated[str | None, Query(max_length=32)] = None,
                       since: TimeQuery = None, until: TimeQuery = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[dict[str, Any]]:
    return await runtime_of(request).programs.batches.list(actor_for_request(request), unit=unit, since=since,
                                                           until=until, limit=limit)


@router.get("/{batch_id}.csv", summary="One batch as CSV: the batch, its steps, actions and alarms",
            openapi_extra=requires("viewer"), response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
async def batch_csv(request: Request, batch_id: BatchId) -> Response:
    name, text = await runtime_of(request).programs.batches.csv(actor_for_request(request), batch_id)
    return Response(text, media_type="text/csv", headers={"content-disposition": f'attachment; filename="{name}"'})


@router.get("/{batch_id}/csv", summary="One batch as CSV (the same as /{id}.csv)", openapi_extra=requires("viewer"),
            response_class=Response, responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
async def batch_csv_path(request: Request, batch_id: BatchId) -> Response:
    return await batch_csv(request, batch_id)


@router.get("/{batch_id}/report", summary="One batch as a printable HTML report (self-contained, print CSS)",
            openapi_extra=requires("viewer"), response_class=HTMLResponse)
async def batch_report(request: Request, batch_id: BatchId) -> HTMLResponse:
    return HTMLResponse(await runtime_of(request).programs.batches.report(actor_for_request(request), batch_id))


@router.get("/{batch_id}", summary="One batch: its steps planned vs actual, the operator actions and the alarms",
            openapi_extra=requires("viewer"))
async def get_batch(request: Request, batch_id: BatchId) -> dict[str, Any]:
    return await runtime_of(request).programs.batches.get(actor_for_request(request), batch_id)
