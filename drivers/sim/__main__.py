"""Run the simulated brewhouse on its own: `python -m drivers.sim [--config config.yaml]`.

For a demo on another machine, or for tests that must kill the app and watch what the field
devices do (the comms watchdog): the app then runs with `simulator.enabled: false` and its devices
pointed at this process. Prints one line `READY modbus=<port> probe=<path>` when it listens, and a
line per watchdog trip (`WATCHDOG <device>`), so a supervising script can follow it. On SIGUSR1 it
prints `POLLS <json>`: per device, the longest gap between two polls since the previous SIGUSR1 and
when it began and ended (`time.monotonic()`; drivers/sim/polls.py) — what the device's watchdog saw.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys

from bevforge.config import ConfigError, load_config
from drivers.sim.inprocess import SimulatedBrewhouse
from drivers.sim.protocol import ProtocolSimulator


async def serve(args: argparse.Namespace) -> int:
    try:
        settings = load_config(args.config).simulator
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    overrides = {k: v for k, v in {"modbus_port": args.modbus_port, "probe_link": args.probe_link,
                                   "rtu_link": args.rtu_link, "watchdog_s": args.watchdog_s,
                                   "speedup": args.speedup}.items() if v is not None}
    settings = settings.model_copy(update=overrides)
    sim = SimulatedBrewhouse(ambient_c=settings.ambient_c, speedup=settings.speedup)
    protocol = ProtocolSimulator(sim, settings)
    await protocol.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1,
                            lambda: print(f"POLLS {json.dumps(protocol.polls.take())}", flush=True))
    print(f"READY modbus={protocol.modbus_port} probe={protocol.probe.path}", flush=True)  # signals handled now
    reported = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
        for name in protocol.watchdog_trips[reported:]:
            print(f"WATCHDOG {name}", flush=True)
        reported = len(protocol.watchdog_trips)
    await protocol.stop()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m drivers.sim", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml", help="read the `simulator:` section from here")
    parser.add_argument("--modbus-port", type=int, help="override simulator.modbus_port (0: any free port)")
    parser.add_argument("--probe-link", help="override simulator.probe_link")
    parser.add_argument("--rtu-link", help="also serve Modbus RTU on a pty published here")
    parser.add_argument("--watchdog-s", type=float, help="override simulator.watchdog_s")
    parser.add_argument("--speedup", type=float, help="override simulator.speedup")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
