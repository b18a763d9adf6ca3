"""The simulated brewhouse behind real protocols, with the comms watchdogs real drives have.

One `ProtocolSimulator` runs the model (stepped on the shared clock, `SimulatedBrewhouse.clock`: real
time, accelerated, or stepped by a test), a Modbus TCP server for
every field device, the fermenter probe on a pty and, if configured, the same Modbus devices on an
RTU line over a pty. Each device with outputs has a watchdog: when nobody has polled it for
`watchdog_s`, its outputs go to their safe state (drive stops, heater off, valves close) — Delta
VFD parameter 09-03 with 09-02 "ramp to stop", or a controller's comms-loss output mode. The
watchdogs time comms in real time whatever the clock's speed: polling is real network traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bevforge.cli import port_problem
from bevforge.clock import Clock
from bevforge.config import SimulatorSettings
from drivers.sim.claims import InUse, LinkClaim
from drivers.sim.faults import Faults
from drivers.sim.inprocess import SimulatedBrewhouse
from drivers.sim.maps import FAULT_COMMS_TIMEOUT, PROBE_DEVICE, SimDeviceMap, default_modbus_devices
from drivers.sim.modbus_server import SimModbusServer
from drivers.sim.polls import PollGaps
from drivers.sim.probe_server import SimProbe
from drivers.sim.pty import PtyBridge

log = logging.getLogger(__name__)


class ProtocolSimulator:
    def __init__(self, sim: SimulatedBrewhouse, settings: SimulatorSettings) -> None:
        self.sim = sim
        self.settings = settings
        self.vfd_faults: dict[str, int] = {}
        self.devices: list[SimDeviceMap] = default_modbus_devices(self.vfd_faults)
        self.tcp = SimModbusServer(sim.model, self.devices, sim.faults_for, self._seen)
        self.rtu: SimModbusServer | None = None
        self.bridge: PtyBridge | None = None
        self.polls = PollGaps()  # device-side gaps between polls (bench/restart.py reads them)
        self.probe = SimProbe(sim.model, settings.probe_link, lambda: sim.faults_for(PROBE_DEVICE),
                              on_request=lambda: self.polls.seen(PROBE_DEVICE))
        self.last_seen: dict[str, float] = {}
        self.watchdog_trips: list[str] = []  # device names, in the order their watchdogs fired
        self._watchdog: asyncio.Task[None] | None = None
        self._users = 0
        self._starting: asyncio.Lock | None = None
        self._claims: list[LinkClaim] = []
        self.running = False

    @property
    def clock(self) -> Clock:
        """The clock the model is stepped on (the simulated brewhouse's)."""
        return self.sim.clock

    @property
    def modbus_port(self) -> int | None:
        return self.tcp.port

    def faults_for(self, device: str) -> Faults:
        return self.sim.faults_for(device)

    async def acquire(self) -> None:
        """Start on first use (the drivers of one app share one simulator)."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            self._users += 1
            if not self.running:
                await self.start()

    async def release(self) -> None:
        self._users -= 1
        if self._users <= 0 and self.running:
            await self.stop()

    async def start(self) -> None:
        """Claim the pty links, listen, start the model. A port or link another program holds raises
        `InUse` naming it and its config key (the app checks both before it starts: `claims.problems`)."""
        self._claims = [LinkClaim(link, key) for key, link in (("simulator.probe_link", self.settings.probe_link),
                                                                ("simulator.rtu_link", self.settings.rtu_link))
                        if link]
        try:
            for claim in self._claims:
                claim.take()
            try:
                port = await self.tcp.start_tcp(self.settings.host, self.settings.modbus_port)
            except (RuntimeError, OSError):  # pymodbus says only "could not start listen"
                problem = port_problem(self.settings.host, self.settings.modbus_port, "set simulator.modbus_port")
                raise InUse(f"simulated brewhouse: Modbus TCP "
                            f"{problem or f'cannot listen on {self.settings.host}:{self.settings.modbus_port}'}"
                            ) from None
        except BaseException:
            self._release_claims()
            raise
        self.sim.start()
        await self.probe.start()
        if self.settings.rtu_link:
            self.bridge = PtyBridge(self.settings.rtu_link, self.settings.rtu_link + ".sim")
            self.bridge.open()
            self.rtu = SimModbusServer(self.sim.model, self.devices, self.sim.faults_for, self._seen)
            await self.rtu.start_rtu(str(self.bridge.b.link))
        self._watchdog = asyncio.create_task(self._watch(), name="sim-watchdog")
        self.running = True
        log.info("simulated brewhouse: Modbus TCP on %s:%d, probe on %s%s", self.settings.host, port,
                 self.probe.path, f", Modbus RTU on {self.settings.rtu_link}" if self.settings.rtu_link else "")

    async def stop(self) -> None:
        self.running = False
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self.tcp.stop()
        if self.rtu is not None:
            await self.rtu.stop()
        if self.bridge is not None:
            self.bridge.close()
        await self.probe.stop()
        await self.sim.stop()
        self._release_claims()

    def _release_claims(self) -> None:
        for claim in self._claims:
            claim.release()
        self._claims = []

    def _seen(self, device: str) -> None:
        self.last_seen[device] = now = asyncio.get_running_loop().time()
        self.polls.seen(device, now)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        by_name = {d.name: d for d in self.devices}
        while True:
            await asyncio.sleep(min(0.1, self.settings.watchdog_s / 4))
            now = loop.time()
            for name, seen in list(self.last_seen.items()):
                if now - seen < self.settings.watchdog_s:
                    continue
                del self.last_seen[name]  # disarmed until the next request
                device = by_name[name]
                self.sim.model.outputs_to_safe_state(device.things)
                self.watchdog_trips.append(name)
                for thing in device.things:
                    pump = thing.partition(".")[0]
                    if pump in self.sim.model.pumps:
                        self.vfd_faults[pump] = FAULT_COMMS_TIMEOUT
                log.warning("simulated %s: comms watchdog (%g s without polling): %s to safe state",
                            name, self.settings.watchdog_s, ", ".join(sorted(device.things)))
