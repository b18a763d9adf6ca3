"""`GET /metrics`: the Prometheus text exposition (bevforge/metrics), for a scraper.

Who may scrape (config `metrics:`, docs/config.md): a request from an address on `metrics.allow_from`
(by default this machine's own) without credentials; any other with a session or API token of at least
`metrics.role` and no node limit. The route is declared public to the generic role check, which only
authenticates here, because the address rule is not a role; the decision is
`permissions.scrape_address_allowed` / `permissions.require_metrics_reader`. A refusal is 401 (no or
unknown credentials) or 403 (too low a role, a node-limited credential) in the one error format;
`metrics.enabled: false` answers 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from bevforge import permissions
from bevforge.api.deps import runtime_of, station_of
from bevforge.api.security import PUBLIC, enforce, requires
from bevforge.api.stream_limits import stream_caps_of
from bevforge.api.ws import hub_of
from bevforge.errors import UNAUTHORIZED, NotFound, Unauthorized
from bevforge.metrics import CONTENT_TYPE, PlantMetrics

router = APIRouter(dependencies=[Depends(enforce)], tags=["metrics"])

UI_CLIENTS = "ui_clients"  # app.state attribute: the screens (ui/) hand in how to count their live clients


def metrics_of(app: FastAPI) -> PlantMetrics:
    """The app's registry, built on first scrape (the clients it counts belong to this app)."""
    found = getattr(app.state, "plant_metrics", None)
    if found is None:
        def clients() -> dict[str, int]:
            ui_clients = getattr(app.state, UI_CLIENTS, None)
            return {"ws": len(hub_of(app).connections), "sse": stream_caps_of(app).total,
                    "ui": ui_clients() if ui_clients is not None else 0}

        found = app.state.plant_metrics = PlantMetrics(app.state.runtime, clients)
    return found


@router.get(
    "/metrics",
    openapi_extra=requires(PUBLIC),
    summary="Prometheus metrics (text format 0.0.4)",
    description="Poll durations and errors and comms state per device, command latency by result, live clients "
                "(/ws, SSE, screens), alarm points by state and priority, the history writer's queue and flush "
                "time, and the process. Without credentials only from `metrics.allow_from` (default: this machine); "
                "otherwise a session or `Authorization: Bearer <API token>` of at least `metrics.role` (default "
                "viewer) that is not limited to some nodes. 404 when `metrics.enabled` is false.",
    response_class=Response,
    # refusals (401 off the allow-list without a known credential, 403 below the role or node-limited,
    # 404 switched off) are the API's one error format, documented for every route as 4XX
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                     "description": "The Prometheus text exposition"}},
)
async def metrics(request: Request) -> Response:
    settings = runtime_of(request).config.metrics
    if not settings.enabled:
        raise NotFound("metrics are switched off on this server (metrics.enabled: false)")
    if not permissions.scrape_address_allowed(station_of(request), settings.allow_from):
        actor = getattr(request.state, "actor", None)
        if actor is None:
            raise Unauthorized(f"scraping /metrics from {station_of(request)} needs 'Authorization: Bearer <token>' "
                               f"of at least the {settings.role} role (or an address on metrics.allow_from)",
                               code=UNAUTHORIZED)
        permissions.require_metrics_reader(actor, settings.role)
    return Response(await metrics_of(request.app).scrape(), media_type=CONTENT_TYPE)
