"""Device protocols. `driver_factories()` is what the app hands the core.

Driver names in config.yaml: `modbus` (TCP, RTU, RTU over TCP), `serial` (ASCII line probes),
`site` (a remote site's BevForge over MQTT, for a central panel: drivers/site.py), `ispindel` and
`tilt` (floating hydrometers that post over HTTP: drivers/hydrometer.py) and
`simulator` (the brewhouse model in this process, for fast tests). When `simulator.enabled`, the
simulated brewhouse also answers over real protocols (drivers/sim/protocol.py) and is started by
the first `modbus`/`serial` driver to start, so `python main.py` needs nothing else running.
`check(config)` runs the drivers' own settings and address checks for `--check-config`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bevforge.clock import Clock
from bevforge.config import Device, Endpoint, PlantConfig
from bevforge.devices import DeviceLink, Driver, DriverFactory
from drivers.check import check
from drivers.hydrometer import HydrometerDriver
from drivers.modbus import LinePool, ModbusDriver
from drivers.serial_probe import SerialProbeDriver
from drivers.sim import claims as sim_claims
from drivers.sim.inprocess import SimulatedBrewhouse, SimulatorDriver

if TYPE_CHECKING:  # imported when the simulator is enabled: pymodbus's server pulls in aiohttp (~0.3 s of start-up)
    from drivers.sim.protocol import ProtocolSimulator

__all__ = ["check", "driver_factories", "startup_problems"]


def startup_problems(config: PlantConfig, config_path: str) -> list[str]:
    """What another program holds that the drivers need (the simulator's port and pty links), one line each."""
    return sim_claims.problems(config.simulator, config_path) if config.simulator.enabled else []


def driver_factories(config: PlantConfig, clock: Clock | None = None,
                     ) -> tuple[dict[str, DriverFactory], SimulatedBrewhouse]:
    """Factories by driver name, plus the one simulated brewhouse they share.

    `clock` is the process clock the simulated brewhouse steps its physics on (the one the plant
    and controllers use); without one it builds its own from `simulator.speedup`.
    `sim.protocol` is the ProtocolSimulator when the config enables it (else None).
    """
    if clock is None:
        sim = SimulatedBrewhouse(ambient_c=config.simulator.ambient_c, speedup=config.simulator.speedup)
    else:
        sim = SimulatedBrewhouse(ambient_c=config.simulator.ambient_c, clock=clock)
    protocol: ProtocolSimulator | None = None
    if config.simulator.enabled:
        from drivers.sim.protocol import ProtocolSimulator

        protocol = ProtocolSimulator(sim, config.simulator)
    sim.protocol = protocol
    pool = LinePool()

    def modbus(device: Device, endpoints: Sequence[Endpoint], link: DeviceLink) -> Driver:
        driver_cls = ModbusDriver if protocol is None else _with_simulator(ModbusDriver, protocol)
        return driver_cls(device, endpoints, link, pool)

    def serial(device: Device, endpoints: Sequence[Endpoint], link: DeviceLink) -> Driver:
        driver_cls = SerialProbeDriver if protocol is None else _with_simulator(SerialProbeDriver, protocol)
        return driver_cls(device, endpoints, link)

    def site(device: Device, endpoints: Sequence[Endpoint], link: DeviceLink) -> Driver:
        from drivers.site import SiteDriver  # here: MQTT's client library is imported only by a central panel

        return SiteDriver(device, endpoints, link, config.mqtt)

    factories: dict[str, DriverFactory] = {
        "modbus": modbus,
        "serial": serial,
        "simulator": lambda device, endpoints, link: SimulatorDriver(device, endpoints, link, sim),
        "site": site,
        "ispindel": lambda device, endpoints, link: HydrometerDriver(device, endpoints, link, "ispindel", clock),
        "tilt": lambda device, endpoints, link: HydrometerDriver(device, endpoints, link, "tilt", clock),
    }
    return factories, sim


def _with_simulator(driver_cls: type, protocol: ProtocolSimulator) -> type:
    """The driver, but holding the in-process simulator up while it runs (started before it polls)."""

    class _Simulated(driver_cls):  # type: ignore[misc, valid-type]
        async def start(self) -> None:
            await protocol.acquire()
            await super().start()

        async def stop(self) -> None:
            try:
                await super().stop()
            finally:
                await protocol.release()

    _Simulated.__name__ = driver_cls.__name__
    return _Simulated
