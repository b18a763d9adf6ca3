"""BevForge OS entry point: parse arguments, load config, start the app. No state lives here.

    python main.py [--config FILE] [--host H] [--port N] [--db URL]
    python main.py --check-config [FILE]

This is the composition root: the only place that knows the core, the drivers and the screens.
"""

from __future__ import annotations

import gc
import sys

# Start-up allocates ~180 000 long-lived objects (libraries, config, screens) and little worth
# collecting: the cyclic collector, left on, walks them again and again while the plant waits for its
# screens. The server switches it off until it serves; bevforge/app.py's `freeze_heap` then moves what
# start-up built to the permanent generation and switches it back on. (Not when NiceGUI's
# User fixture runs this file inside a test process: NiceGUI is imported there already.)
if __name__ in {"__main__", "__mp_main__"} and "nicegui" not in sys.modules:
    gc.disable()

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING

import drivers
from bevforge.auth import AuthModeRefused
from bevforge.cli import check_config, load_or_report, parse_args, port_problem, shown_db
from bevforge.clock import SystemClock, clock_for
from bevforge.runtime import Runtime

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from bevforge.api.screens_gate import ScreensGate
    from bevforge.cli import Settings

# Not imported here: the web server (uvicorn), the HTTP app (FastAPI and its routers) and the
# screens (NiceGUI), about half of start-up. `serve()` starts the plant first and imports them while
# the drivers already poll, so a restart leaves the field devices unpolled for as short a time as
# possible (their comms watchdogs are 2-3 s: docs/deployment.md has the measured gap, and
# bench/restart.py measures it); the screens it imports once the server already answers the API and
# /ws (bench/programs.py measures the restart → resume prompt on /ws).


def main(argv: list[str]) -> int:
    if {"user", "token", "db"} & set(argv[:5]):  # `python main.py [--db URL] user add …`: users, tokens, schema
        from bevforge.admin_cli import run

        return run(argv)
    if argv[:1] == ["sites"]:  # `python main.py sites central-config SITE.yaml …`: a central panel's config
        from bevforge.central import run as sites_command

        return sites_command(argv[1:], drivers.check)
    settings = parse_args(argv)
    if settings.check_config:
        return check_config(settings.config_path, drivers.check)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_or_report(settings.config_path, drivers.check)  # driver problems get file:line too
    if config is None:
        return 2
    held = drivers.startup_problems(config, str(settings.config_path))
    http = port_problem(settings.host, settings.port, "choose another with --port N (or BEVFORGE_PORT)")
    if http or held:
        for problem in ([f"web server: {http}"] if http else []) + held:
            print(f"cannot start: {problem}", file=sys.stderr)
        return 2
    # one process clock: the simulated brewhouse's physics and the controllers agree on how much time passed
    clock = clock_for(config.simulator.speedup) if config.simulator.enabled else SystemClock()
    factories, simulator = drivers.driver_factories(config, clock=clock)
    db_url, db_from = settings.database(config)
    print(f"BevForge OS: database {shown_db(db_url)} ({db_from})", file=sys.stderr)
    try:
        runtime = Runtime(config, db_url, factories, config_path=str(settings.config_path),
                          host=settings.host, clock=clock, config_check=drivers.check)
    except AuthModeRefused as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a driver refused its device settings or an endpoint address
        print(f"{settings.config_path}: {exc}", file=sys.stderr)
        return 2
    runtime.attachments["simulator"] = simulator
    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    runtime.on_first_run = lambda code: print(
        f"BevForge OS: no user exists yet. Create the first admin on this machine at "
        f"http://{shown_host}:{settings.port}/setup with the setup code {code} "
        "(or: python main.py user add NAME --role admin)", file=sys.stderr, flush=True)
    if _user_simulation():
        import ui

        # NiceGUI's User fixture serves the screens itself: start the plant with its app.
        ui.install_for_simulation(runtime)
        return 0
    stopped_by: list[int] = []  # SIGTERM/SIGINT that arrived before or while serving, raised again at the end

    def note(sig: int, _frame: FrameType | None) -> None:
        stopped_by.append(sig)

    def too_early(_sig: int, _frame: FrameType | None) -> None:
        # SIGHUP's default would end the process with the plant running (outputs not put safe); the
        # app's lifespan takes SIGHUP over (a live reload) once it serves
        logging.getLogger("bevforge").warning("SIGHUP during start-up ignored: send it again to reload the config")

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, too_early)
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        runner.run(serve(runtime, settings, stopped_by))
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    for sig in reversed(stopped_by):  # end as uvicorn.run does: by the signal (systemd sees the same status)
        signal.raise_signal(sig)
    return 0


async def serve(runtime: Runtime, settings: Settings, stopped_by: list[int]) -> None:
    """Start the plant, then build and serve the app, then mount the screens; stop the plant after the server
    has stopped.

    The drivers start polling before the web server and the HTTP app are even imported: those imports run
    in a worker thread while the event loop polls. The server listens as soon as the HTTP app is built; the
    screens (NiceGUI and the pages) are imported in a worker thread while it already answers the API and
    `/ws`, so a restarted panel's clients get the plant's state (a program's resume prompt) without waiting
    for them. Until the screens are mounted, a request for a page waits for them (bevforge/api/screens_gate.py).
    A SIGTERM before serving ends the start-up; the plant then stops as after serving (outputs put safe first).
    """
    await runtime.start()
    try:
        app = await asyncio.to_thread(_http_app, runtime)
        import uvicorn

        from bevforge.api.screens_gate import ScreensGate

        if stopped_by:
            return
        # freeze what start-up built before the server exists (bevforge/app.py's settle_heap freezes what
        # comes after, the screens included, and switches the collector back on)
        gc.freeze()
        # the API's routes, before the screens' mount is added; a page asked for meanwhile gets the starting page
        gate = ScreensGate(app, app.router.routes, starting_page=_starting_page(runtime))
        # uvicorn's C-accelerated `websockets` protocol: /ws fan-out p99 measured lower than wsproto.
        config = uvicorn.Config(gate, host=settings.host, port=settings.port, ws="websockets-sansio",
                                log_level="warning", timeout_graceful_shutdown=3)
        server = uvicorn.Server(config)
        listening = _listening(server)
        screens = asyncio.create_task(_mount_screens(app, runtime, server, gate, listening), name="mount screens")
        try:
            # uvicorn handles SIGTERM/SIGINT while serving, then raises them again: `note` records them
            await server.serve()
        finally:
            gate.close()  # a page request still waiting for the screens is answered 503
            if not screens.done():
                screens.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await screens  # a failure to load the screens ends start-up as it did before serving
    finally:
        await runtime.stop()


async def _mount_screens(app: FastAPI, runtime: Runtime, server: uvicorn.Server, gate: ScreensGate,
                         listening: asyncio.Event) -> None:
    """Once the server listens: import the screens off the event loop, mount them on the app, start NiceGUI,
    open the gate; NiceGUI shuts down when this is cancelled (serving has ended). Screens that fail to load
    stop the server: the panel does not run without its screens."""
    try:
        await listening.wait()  # not before: the import would hold the GIL while the server binds
        ui = await asyncio.to_thread(_screens)
        ui.install(app, runtime)
        async with ui.started(server):
            gate.open()
            await asyncio.Event().wait()  # until serving ends
    except Exception:
        server.should_exit = True
        raise


def _listening(server: uvicorn.Server) -> asyncio.Event:
    """Set once the server's start-up is done (its lifespan run, its socket bound)."""
    listening = asyncio.Event()
    startup = server.startup

    async def startup_then_tell(sockets: list[socket.socket] | None = None) -> None:
        await startup(sockets)
        listening.set()

    server.startup = startup_then_tell  # type: ignore[method-assign]
    return listening


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when installed, as `uvicorn.run(loop="auto")` chooses (uvicorn itself is imported later)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.SelectorEventLoop
    return uvloop.new_event_loop


def _http_app(runtime: Runtime) -> FastAPI:
    """Import and build the HTTP app and import the web server (off the event loop: the drivers poll meanwhile)."""
    import uvicorn  # noqa: F401 - used by serve()

    from bevforge.app import create_app

    # the plant is started and stopped around the server (serve()); SIGHUP: live config reload
    return create_app(runtime, manage_runtime=False, freeze_heap=True, reload_on_sighup=True)


def _starting_page(runtime: Runtime) -> bytes:
    """The page a browser gets while the screens load: the screens' restart watch in a page of its own (read
    from its files: importing `ui` would import NiceGUI, which is what is not there yet)."""
    from bevforge.api.screens_gate import starting_page

    here = Path(__file__).resolve().parent / "ui"
    return starting_page(runtime.config.site.name, runtime.config.ui.kiosk,
                         (here / "restart_watch.js").read_text(encoding="utf-8"),
                         (here / "restart_watch.css").read_text(encoding="utf-8"))


def _screens() -> ModuleType:
    """Import the screens (NiceGUI and the pages; off the event loop: the server answers meanwhile)."""
    import ui

    return ui


def _user_simulation() -> bool:
    """NiceGUI's User fixture runs this file with NiceGUI already imported and its simulation switched on."""
    helpers = sys.modules.get("nicegui.helpers")
    return helpers is not None and helpers.is_user_simulation()


if __name__ in {"__main__", "__mp_main__"}:
    code = main(sys.argv[1:])
    if not _user_simulation():
        sys.exit(code)
