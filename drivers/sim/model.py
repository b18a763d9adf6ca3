"""A believable brewhouse: three vessels (HLT, MLT, BK), two pumps, valves and two fermenters.

Physics kept simple but honest:
- a heater element of P watts warms m kg of water by P / (m · 4186) K/s (5.5 kW into 60 L ≈ 1.3 °C/min);
- every vessel loses heat to ambient in proportion to the temperature difference;
- water cannot go above 100 °C (it boils) and an element on an empty vessel does not heat water;
- a running pump with its valve open moves water (and its heat) from source to destination;
- a level switch reads HIGH while the vessel holds more than its switch volume;
- a fermenter warms by fermentation heat and cools while its glycol valve is open.

A temperature controller's heater output fires only while enabled and below its setpoint, as a
Delta DT or Auber PID controller in on/off mode does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WATER_HEAT_CAPACITY = 4186.0  # J/(kg·K)
LOSS_PER_S = 1.5e-5  # fraction of (T - ambient) lost per second, for a lidded 60 L kettle


@dataclass
class Vessel:
    name: str
    volume_l: float
    temperature_c: float
    capacity_l: float = 100.0
    heater_w: float = 0.0
    heater_enabled: bool = False
    setpoint_c: float = 100.0
    level_switch_l: float = 20.0

    @property
    def level_high(self) -> bool:
        return self.volume_l > self.level_switch_l

    @property
    def heater_firing(self) -> bool:
        return self.heater_enabled and self.heater_w > 0 and self.temperature_c < self.setpoint_c

    def step(self, dt: float, ambient_c: float) -> None:
        mass = max(self.volume_l, 0.0)
        if mass < 0.5:
            self.temperature_c += (ambient_c - self.temperature_c) * min(1.0, dt * 1e-3)
            return
        heat = self.heater_w * dt if self.heater_firing and mass > 2.0 else 0.0
        self.temperature_c += heat / (mass * WATER_HEAT_CAPACITY)
        self.temperature_c -= (self.temperature_c - ambient_c) * LOSS_PER_S * dt
        self.temperature_c = min(self.temperature_c, 100.0)


@dataclass
class Pump:
    name: str
    source: str
    destination: str
    valve: str
    running: bool = False
    speed_pct: float = 100.0
    max_flow_l_per_min: float = 12.0

    def flow_l_per_s(self, valve_open: bool) -> float:
        if not self.running or not valve_open:
            return 0.0
        return self.max_flow_l_per_min / 60.0 * max(0.0, min(self.speed_pct, 100.0)) / 100.0


@dataclass
class Fermenter:
    name: str
    temperature_c: float
    volume_l: float = 50.0
    glycol_open: bool = False
    fermentation_w: float = 40.0
    glycol_w: float = 600.0

    def step(self, dt: float, glycol_c: float = -2.0) -> None:
        heat = self.fermentation_w * dt
        if self.glycol_open and self.temperature_c > glycol_c:
            heat -= self.glycol_w * dt
        self.temperature_c += heat / (self.volume_l * WATER_HEAT_CAPACITY)


@dataclass
class Brewhouse:
    ambient_c: float = 20.0
    vessels: dict[str, Vessel] = field(default_factory=dict)
    pumps: dict[str, Pump] = field(default_factory=dict)
    valves: dict[str, bool] = field(default_factory=dict)
    fermenters: dict[str, Fermenter] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @classmethod
    def default(cls, ambient_c: float = 20.0) -> Brewhouse:
        """HLT filled with cold liquor, MLT and BK empty, two fermenters working."""
        return cls(
            ambient_c=ambient_c,
            vessels={
                "hlt": Vessel("hlt", volume_l=60.0, temperature_c=15.0, heater_w=5500.0, setpoint_c=75.0),
                "mlt": Vessel("mlt", volume_l=0.0, temperature_c=ambient_c),
                "bk": Vessel("bk", volume_l=0.0, temperature_c=ambient_c, heater_w=5500.0, setpoint_c=100.0),
            },
            pumps={
                "pump1": Pump("pump1", source="hlt", destination="mlt", valve="v1"),
                "pump2": Pump("pump2", source="mlt", destination="bk", valve="v2"),
            },
            valves={"v1": False, "v2": False},
            fermenters={
                "fv1": Fermenter("fv1", temperature_c=18.0),
                "fv2": Fermenter("fv2", temperature_c=12.0),
            },
        )

    def step(self, dt: float) -> None:
        """Advance the model by `dt` seconds (small steps: ≤ 1 s)."""
        for pump in self.pumps.values():
            flow = pump.flow_l_per_s(self.valves.get(pump.valve, False)) * dt
            source, dest = self.vessels[pump.source], self.vessels[pump.destination]
            flow = min(flow, source.volume_l, max(0.0, dest.capacity_l - dest.volume_l))
            if flow <= 0:
                continue
            mixed = dest.volume_l + flow
            dest.temperature_c = (dest.temperature_c * dest.volume_l + source.temperature_c * flow) / mixed
            dest.volume_l = mixed
            source.volume_l -= flow
        for vessel in self.vessels.values():
            vessel.step(dt, self.ambient_c)
        for fermenter in self.fermenters.values():
            fermenter.step(dt)
        self.elapsed_s += dt

    # -- points: the names a device map or a config `address.point` refers to ----------------

    def read(self, point: str) -> bool | float:
        thing, attr = _split(point)
        if thing in self.vessels:
            v = self.vessels[thing]
            return {
                "temperature": lambda: round(v.temperature_c, 2),
                "heater": lambda: v.heater_enabled,
                "heater_firing": lambda: v.heater_firing,
                "setpoint": lambda: v.setpoint_c,
                "level_high": lambda: v.level_high,
                "volume": lambda: round(v.volume_l, 2),
            }[attr]()
        if thing in self.pumps:
            p = self.pumps[thing]
            return {"running": lambda: p.running, "speed": lambda: p.speed_pct}[attr]()
        if thing in self.valves and attr == "open":
            return self.valves[thing]
        if thing in self.fermenters:
            f = self.fermenters[thing]
            return {"temperature": lambda: round(f.temperature_c, 2), "glycol": lambda: f.glycol_open}[attr]()
        raise KeyError(point)

    def write(self, point: str, value: bool | float) -> None:
        thing, attr = _split(point)
        if thing in self.vessels and attr in ("heater", "setpoint"):
            v = self.vessels[thing]
            if attr == "heater":
                v.heater_enabled = bool(value)
            else:
                v.setpoint_c = float(value)
        elif thing in self.pumps and attr in ("running", "speed"):
            p = self.pumps[thing]
            if attr == "running":
                p.running = bool(value)
            else:
                p.speed_pct = float(value)
        elif thing in self.valves and attr == "open":
            self.valves[thing] = bool(value)
        elif thing in self.fermenters and attr == "glycol":
            self.fermenters[thing].glycol_open = bool(value)
        else:
            raise KeyError(point)

    def points(self) -> list[str]:
        out = []
        for name in self.vessels:
            attrs = ("temperature", "heater", "heater_firing", "setpoint", "level_high", "volume")
            out += [f"{name}.{a}" for a in attrs]
        for name in self.pumps:
            out += [f"{name}.running", f"{name}.speed"]
        out += [f"{name}.open" for name in self.valves]
        for name in self.fermenters:
            out += [f"{name}.temperature", f"{name}.glycol"]
        return out

    def outputs_to_safe_state(self, things: set[str] | None = None) -> None:
        """What a drive's comms watchdog does: heaters off, pumps stop, valves close."""
        for name, v in self.vessels.items():
            if things is None or name in things:
                v.heater_enabled = False
        for name, p in self.pumps.items():
            if things is None or name in things:
                p.running = False
        for name in self.valves:
            if things is None or name in things:
                self.valves[name] = False
        for name, f in self.fermenters.items():
            if things is None or name in things:
                f.glycol_open = False


def _split(point: str) -> tuple[str, str]:
    thing, _, attr = point.partition(".")
    if not attr:
        raise KeyError(point)
    return thing, attr
