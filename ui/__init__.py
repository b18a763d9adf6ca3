"""NiceGUI screens. `install()` mounts them on the API app; they read the core, never drivers.

Pages: `/` Control Panel, `/mimic` the process mimic, `/alarms`, `/trends`, `/programs`, `/recipes`, `/batches`,
`/audit` (ui/pages.py), each for the signed-in user only (ui/session.py); each client's live updates come from the
core's event bus (ui/live.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from nicegui import Client, ui
from nicegui import app as nicegui_app

from bevforge.runtime import Runtime
from ui import connection, pages, session, state

if TYPE_CHECKING:
    import uvicorn

TITLE = "BevForge OS"


def install(app: FastAPI, runtime: Runtime) -> None:
    state.runtime = runtime
    connection.register_ping()
    pages.register()
    session.start_idle_sweep()
    app.state.ui_clients = live_screens  # counted by /metrics (bevforge/api/metrics_api.py)
    # No element is bound (screens update explicitly from the bus), so NiceGUI's 0.1 s binding
    # refresh loop has nothing to do: switch it off.
    ui.run_with(app, title=TITLE, favicon="🍺", storage_secret=_secret(runtime), show_welcome_message=False,
                reconnect_timeout=10.0, binding_refresh_interval=None)


@asynccontextmanager
async def started(server: uvicorn.Server) -> AsyncIterator[None]:
    """NiceGUI's own start-up and shut-down around the screens' life, for screens installed on an app that
    already serves (main.py mounts them after the API answers): what `ui.run_with`'s lifespan does when the
    screens are installed before serving, which is too late here (the app's lifespan has run)."""
    from nicegui.nicegui import _shutdown, _startup
    from nicegui.server import Server

    Server.instance = server  # NiceGUI's lifespan finds it by walking every object; here it is handed in
    await _startup()
    try:
        yield
    finally:
        await _shutdown()


def install_for_simulation(runtime: Runtime) -> None:
    """For NiceGUI's User fixture: the plant starts and stops with NiceGUI's own app."""
    state.runtime = runtime
    nicegui_app.on_startup(runtime.start)
    nicegui_app.on_shutdown(runtime.stop)
    connection.register_ping()
    pages.register()
    session.start_idle_sweep()
    ui.run(title=TITLE, storage_secret=_secret(runtime))


def live_screens() -> int:
    """Screens (browser tabs) with a live connection now; a page drawn but not yet connected, or one
    waiting out its reconnect window, does not count."""
    return sum(1 for client in Client.instances.values() if client.has_socket_connection)


def _secret(runtime: Runtime) -> str:
    import hashlib

    return hashlib.sha256(f"bevforge:{runtime.db.url}".encode()).hexdigest()
