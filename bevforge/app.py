"""Wiring: the FastAPI app that serves the API, /ws and SSE over a Runtime.

The app knows nothing of NiceGUI or device protocols: the entry point (main.py) hands in driver
factories and mounts the screens on the returned app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from bevforge import __version__
from bevforge.api import alarms_api, auth_api, rest, sse, ws
from bevforge.api.errors import JSONResponse, error_body, install_error_handlers
from bevforge.runtime import Runtime

MAX_BODY_BYTES = 2 * 1024 * 1024


def create_app(runtime: Runtime, *, manage_runtime: bool = True) -> FastAPI:
    """Build the HTTP app. With `manage_runtime`, the app's lifespan starts and stops the runtime."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
        try:
            yield
        finally:
            if manage_runtime:
                await runtime.stop()

    app = FastAPI(
        title="BevForge OS",
        version=__version__,
        summary="Brewhouse control panel: tiles, telemetry, commands with interlocks, alarms, live push.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
    )
    app.state.runtime = runtime
    install_error_handlers(app)

    @app.middleware("http")
    async def _cap_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse(error_body("too_large", f"request body over {MAX_BODY_BYTES} bytes", "body"),
                                  status_code=413)
        return await call_next(request)

    app.include_router(rest.router)
    app.include_router(alarms_api.router)
    app.include_router(auth_api.router)
    app.include_router(sse.router)
    app.include_router(ws.router)
    return app
