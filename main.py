"""BevForge OS entry point: parse arguments, load config, start the app. No state lives here.

    python main.py [--config FILE] [--host H] [--port N] [--db URL]
    python main.py --check-config [FILE]

This is the composition root: the only place that knows the core, the drivers and the screens.
"""

from __future__ import annotations

import logging
import sys

import uvicorn
from nicegui import helpers

import drivers
import ui
from bevforge.app import create_app
from bevforge.auth import AuthModeRefused
from bevforge.cli import check_config, load_or_report, parse_args, port_problem, shown_db
from bevforge.clock import SystemClock, clock_for
from bevforge.runtime import Runtime


def main(argv: list[str]) -> int:
    if {"user", "token"} & set(argv[:5]):  # `python main.py [--db URL] user add …`: manage users and tokens
        from bevforge.admin_cli import run

        return run(argv)
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
    if helpers.is_user_simulation():
        # NiceGUI's User fixture serves the screens itself: start the plant with its app.
        ui.install_for_simulation(runtime)
        return 0
    app = create_app(runtime, freeze_heap=True, reload_on_sighup=True)  # SIGHUP: live config reload
    ui.install(app, runtime)
    # uvicorn's C-accelerated `websockets` protocol: /ws fan-out p99 measured lower than wsproto.
    uvicorn.run(app, host=settings.host, port=settings.port, ws="websockets-sansio",
                log_level="warning", timeout_graceful_shutdown=3)
    return 0


if __name__ in {"__main__", "__mp_main__"}:
    code = main(sys.argv[1:])
    if not helpers.is_user_simulation():
        sys.exit(code)
