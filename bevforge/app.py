"""Wiring: the FastAPI app that serves the API, /ws and SSE over a Runtime.

The app knows nothing of NiceGUI or device protocols: the entry point (main.py) hands in driver
factories and mounts the screens on the returned app.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bevforge import __version__
from bevforge.api import (
    alarms_api,
    apidocs,
    auth_api,
    batches_api,
    controllers_api,
    hydrometers_api,
    metrics_api,
    notify_api,
    programs_api,
    recipes_api,
    rest,
    sse,
    ws,
)
from bevforge.api.body_limit import BodySizeCap
from bevforge.api.csrf import OriginGuard, guard_settings
from bevforge.api.errors import JSONResponse, install_error_handlers
from bevforge.auth import SESSION_COOKIE
from bevforge.runtime import Runtime

MAX_BODY_BYTES = 2 * 1024 * 1024


SETTLE_HEAP_AFTER_S = 5.0


def settle_heap() -> None:
    """Move everything built so far to the permanent generation and switch the collector back on
    (main.py switches it off for the start-up and freezes what it built before serving).

    No full collection first: over the start-up heap one takes ~0.2 s, an event-loop stall (a control
    tick late, a burst of sockets waiting; at a test's ×60 speed-up, 12 process seconds) for the few
    thousand objects of import-time garbage it would free (3,611 after every import, measured), which
    stay for the life of the process instead."""
    gc.freeze()
    gc.enable()


def create_app(runtime: Runtime, *, manage_runtime: bool = True, freeze_heap: bool = False,
               reload_on_sighup: bool = False) -> FastAPI:
    """Build the HTTP app. With `manage_runtime`, the app's lifespan starts and stops the runtime.

    `freeze_heap` (the production server, one app per process): a few seconds after start-up,
    everything built so far (libraries, config, screens: ~160 000 objects) moves to the collector's
    permanent generation (`settle_heap`). A full collection otherwise walks all of it and stalls every
    socket for 80-100 ms (measured with gc.callbacks under bench/fanout.py), which was the fan-out's
    worst latency.

    `reload_on_sighup` (the production server): SIGHUP applies the edited config file live
    (bevforge/reload.py), as `systemctl reload` sends it; the outcome goes to the log and the audit.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
        if reload_on_sighup:
            _reload_on_sighup(runtime)
        if freeze_heap:  # not before serving: the collection would stall the first answers (the resume prompt)
            asyncio.get_running_loop().call_later(SETTLE_HEAP_AFTER_S, settle_heap)
        try:
            yield
        finally:
            if reload_on_sighup:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            if manage_runtime:
                await runtime.stop()

    app = FastAPI(
        title="BevForge OS",
        version=__version__,
        summary="Brewhouse control panel: tiles, telemetry, commands with interlocks, alarms, live push.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        openapi_url=None, docs_url=None, redoc_url=None,  # served by api/apidocs.py, behind sign-in when required
    )
    app.state.runtime = runtime
    install_error_handlers(app)

    app.add_middleware(BodySizeCap, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(OriginGuard, **guard_settings(runtime.config, SESSION_COOKIE))  # CSRF: docs/security.md
    app.include_router(rest.router)
    app.include_router(alarms_api.router)
    app.include_router(controllers_api.router)
    app.include_router(programs_api.router)
    app.include_router(recipes_api.router)
    app.include_router(batches_api.router)
    app.include_router(hydrometers_api.router)
    app.include_router(notify_api.router)
    app.include_router(auth_api.router)
    app.include_router(sse.router)
    app.include_router(ws.router)
    app.include_router(apidocs.router)
    app.include_router(metrics_api.router)  # /metrics for Prometheus (docs/integrations.md)
    return app


def _reload_on_sighup(runtime: Runtime) -> None:
    """SIGHUP → one live reload at a time (the reloader's lock orders several signals one after another)."""
    tasks: set[asyncio.Task[None]] = set()

    def hup() -> None:
        task = asyncio.get_running_loop().create_task(runtime.reloader.reload_from_signal(), name="config-reload")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hup)
