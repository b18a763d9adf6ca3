"""Device protocols. `driver_factories()` is what the app hands the core."""

from __future__ import annotations

from bevforge.config import PlantConfig
from bevforge.devices import DriverFactory
from drivers.sim.inprocess import SimulatedBrewhouse, SimulatorDriver


def driver_factories(config: PlantConfig) -> tuple[dict[str, DriverFactory], SimulatedBrewhouse]:
    """Factories by driver name, plus the one simulated brewhouse they share."""
    sim = SimulatedBrewhouse(ambient_c=config.simulator.ambient_c, speedup=config.simulator.speedup)
    factories: dict[str, DriverFactory] = {
        "simulator": lambda device, endpoints, link: SimulatorDriver(device, endpoints, link, sim),
    }
    return factories, sim
