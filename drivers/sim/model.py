"""A believable brewhouse: three vessels (HLT, MLT, BK), two pumps, valves and two fermenters.

The physics is simple on purpose but honest enough that a naive control loop misbehaves the way
it would on real steel, and a tuned one does not:

- **Heat capacity.** Each vessel is one lumped heat capacity: its liquid (1 kg per litre of water,
  4186 J/(kg·K)) plus its stainless wall (`wall_kg` × 500 J/(kg·K)), at one temperature — a thin,
  wetted wall follows its liquid within seconds. 5.5 kW into 60 L in a 12 kg HLT ≈ 1.28 °C/min.
  Liquid pumped or poured in mixes with the liquid *and* the wall (a cold tun takes heat from the
  strike water).
- **Losses.** Heat leaks to ambient at `loss_w_per_k` × (T − ambient) W; a fermenter's to the cellar.
- **Elements.** A vessel has at most one element of `element_w` watts. It fires (full power,
  nothing in between: an SSR or contactor) through either path that is wired to it:
  - a **hardware controller** (the HLT's and the BK's Delta DT): RUN enabled and its own probe
    reading below its setpoint — on/off control inside the controller, as a DT in ON/OFF mode;
  - an **SSR coil** the panel drives directly (`element`), with no controller of its own: the
    mash tun's RIMS/HERMS element and the kettle element. Time-proportioning is the panel's job.
  An element with less than 2 L over it heats nothing (it would burn out; we only refuse to heat).
- **Boiling.** Liquid does not go above 100 °C: heat beyond that boils water off
  (2.257 MJ/kg), so a kettle at full power boils off ≈ 8.8 L/h. An empty vessel's wall may be hotter.
- **Probe lag.** Every temperature a probe reports lags the liquid: a dead time (`dead_time_s`:
  transport in a recirculation line, a thermowell's wall) then a first-order sensor lag
  (`time_constant_s`), configurable per vessel. The hardware controllers act on that lagged
  value too. This lag is what makes a naive on/off loop overshoot. `liquid_temperature` is the
  true value, for tests and benchmarks only — no field device can read it.
- **Fermenters.** Fermentation heat (`fermentation_w`), losses to the cellar, a glycol jacket
  whose valve, when open, moves `jacket_w_per_k` × (glycol − beer) W (the colder the glycol, the
  harder it cools; glycol warmer than the beer would warm it), and a heating pad (`heating_pad_w`,
  on or off).
- **Pumps, valves, levels.** A running pump with its valve open moves water (and its heat) from
  source to destination at its speed's share of its flow; a level switch reads HIGH while the
  vessel holds more than its switch volume.
- **Cold additions.** `add_liquid(vessel, litres, temperature_c)` is the test and benchmark hook
  for pouring liquid in (the "10 L cold addition" to the mash): it mixes at once; the probe
  sees it after its lag.

Tests may put a vessel at a temperature by assigning `temperature_c`: the liquid is placed there
*with its probe settled on it* (as if it had been there a while), so the reported value follows at
once. Physics never assigns it: heating, mixing and boiling move `liquid_c` and the probe lags.

Model time is whatever `step(dt)` is given; `drivers/sim/inprocess.py` steps it from the shared
clock (`bevforge/clock.py`). Long steps are cut into steps of at most one second.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

WATER_HEAT_CAPACITY = 4186.0  # J/(kg·K); 1 L of water or wort ≈ 1 kg
STEEL_HEAT_CAPACITY = 500.0  # J/(kg·K), stainless steel
LATENT_HEAT_J_PER_KG = 2.257e6  # boiling water off at 100 °C
BOILING_C = 100.0
ELEMENT_COVERED_L = 2.0  # an element under less liquid than this heats nothing
MIN_LIQUID_L = 0.5  # below this a vessel counts as empty: only its wall is there
MAX_STEP_S = 1.0  # the longest single integration step


@dataclass
class Probe:
    """A temperature probe: a dead time, then a first-order lag with `time_constant_s`."""

    dead_time_s: float = 0.0
    time_constant_s: float = 0.0
    reading_c: float = 20.0
    _t: float = field(default=0.0, init=False, repr=False)
    # (probe time, liquid °C) samples, oldest first; the first is at or before now − dead time
    _history: deque[tuple[float, float]] = field(default_factory=deque, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.dead_time_s < 0 or self.time_constant_s < 0:
            raise ValueError("a probe's dead time and time constant are ≥ 0 s")
        self.settle(self.reading_c)

    def settle(self, temperature_c: float) -> None:
        """The liquid has been at `temperature_c` long enough for the probe to read it."""
        self.reading_c = temperature_c
        self._history.clear()
        self._history.append((-math.inf, temperature_c))

    def step(self, dt: float, liquid_c: float) -> None:
        """Advance `dt` seconds during which the liquid was at `liquid_c` (at the step's end)."""
        self._t += dt
        self._history.append((self._t, liquid_c))
        cutoff = self._t - self.dead_time_s
        while len(self._history) > 1 and self._history[1][0] <= cutoff:
            self._history.popleft()
        seen = self._history[0][1]  # what the liquid was one dead time ago (held between samples)
        if self.time_constant_s <= 0:
            self.reading_c = seen
        else:
            self.reading_c += (seen - self.reading_c) * (1.0 - math.exp(-dt / self.time_constant_s))


@dataclass
class Vessel:
    """A kettle: liquid and its steel wall as one heat capacity, an element, a probe, a level switch."""

    name: str
    volume_l: float
    liquid_c: float
    capacity_l: float = 100.0
    element_w: float = 0.0
    has_controller: bool = False  # a hardware temperature controller (Delta DT) fires the element
    has_ssr: bool = False  # the panel fires the element directly through an SSR coil
    heater_enabled: bool = False  # the controller's RUN: its output may fire
    setpoint_c: float = 100.0  # the controller's SV
    element_on: bool = False  # the SSR coil
    level_switch_l: float = 20.0
    wall_kg: float = 15.0
    loss_w_per_k: float = 4.0
    probe: Probe = field(default_factory=Probe)
    boiled_off_l: float = 0.0

    def __post_init__(self) -> None:
        self.probe.settle(self.liquid_c)

    @property
    def temperature_c(self) -> float:
        """The liquid's temperature (the true one; the probe reports `probe.reading_c`)."""
        return self.liquid_c

    @temperature_c.setter
    def temperature_c(self, value: float) -> None:
        # a test placing the liquid at a temperature: it has been there long enough to be read
        self.liquid_c = float(value)
        self.probe.settle(self.liquid_c)

    @property
    def heat_capacity_j_per_k(self) -> float:
        return max(self.volume_l, 0.0) * WATER_HEAT_CAPACITY + self.wall_kg * STEEL_HEAT_CAPACITY

    @property
    def level_high(self) -> bool:
        return self.volume_l > self.level_switch_l

    @property
    def heater_firing(self) -> bool:
        """The hardware controller's output: RUN, and its own (lagged) probe below the setpoint."""
        return (self.has_controller and self.heater_enabled and self.element_w > 0
                and self.probe.reading_c < self.setpoint_c)

    @property
    def element_firing(self) -> bool:
        """The element is energised, by its controller or by its SSR coil."""
        return self.element_w > 0 and (self.heater_firing or (self.has_ssr and self.element_on))

    def mix_in(self, litres: float, temperature_c: float) -> None:
        """Liquid poured or pumped in: it mixes with the liquid and the wall at once."""
        if litres <= 0:
            return
        added = litres * WATER_HEAT_CAPACITY
        before = self.heat_capacity_j_per_k
        self.liquid_c = (self.liquid_c * before + temperature_c * added) / (before + added)
        self.volume_l += litres

    def step(self, dt: float, ambient_c: float) -> None:
        covered = self.volume_l >= ELEMENT_COVERED_L
        power = self.element_w if self.element_firing and covered else 0.0
        power -= self.loss_w_per_k * (self.liquid_c - ambient_c)
        self.liquid_c += power * dt / self.heat_capacity_j_per_k
        if self.volume_l >= MIN_LIQUID_L and self.liquid_c > BOILING_C:
            boiled = min(self.volume_l, (self.liquid_c - BOILING_C) * self.heat_capacity_j_per_k
                         / LATENT_HEAT_J_PER_KG)
            self.volume_l -= boiled
            self.boiled_off_l += boiled
            self.liquid_c = BOILING_C
        self.probe.step(dt, self.liquid_c)


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
    """A jacketed fermenter: beer and steel, fermentation heat, a glycol valve and a heating pad."""

    name: str
    liquid_c: float
    volume_l: float = 50.0
    capacity_l: float = 60.0
    wall_kg: float = 20.0
    glycol_open: bool = False
    jacket_w_per_k: float = 25.0  # W per K of (glycol − beer) while the glycol valve is open
    heating_pad_on: bool = False
    heating_pad_w: float = 100.0
    fermentation_w: float = 40.0
    loss_w_per_k: float = 2.0  # to the cellar
    probe: Probe = field(default_factory=Probe)

    def __post_init__(self) -> None:
        self.probe.settle(self.liquid_c)

    @property
    def temperature_c(self) -> float:
        """The beer's temperature (the true one; the probe reports `probe.reading_c`)."""
        return self.liquid_c

    @temperature_c.setter
    def temperature_c(self, value: float) -> None:
        self.liquid_c = float(value)
        self.probe.settle(self.liquid_c)

    @property
    def heat_capacity_j_per_k(self) -> float:
        return max(self.volume_l, 0.0) * WATER_HEAT_CAPACITY + self.wall_kg * STEEL_HEAT_CAPACITY

    def glycol_w(self, glycol_c: float) -> float:
        """Heat the jacket moves into the beer now (negative: cooling)."""
        return self.jacket_w_per_k * (glycol_c - self.liquid_c) if self.glycol_open else 0.0

    def mix_in(self, litres: float, temperature_c: float) -> None:
        if litres <= 0:
            return
        added = litres * WATER_HEAT_CAPACITY
        before = self.heat_capacity_j_per_k
        self.liquid_c = (self.liquid_c * before + temperature_c * added) / (before + added)
        self.volume_l += litres

    def step(self, dt: float, glycol_c: float = -2.0, cellar_c: float = 20.0) -> None:
        power = self.fermentation_w + self.loss_w_per_k * (cellar_c - self.liquid_c) + self.glycol_w(glycol_c)
        if self.heating_pad_on:
            power += self.heating_pad_w
        self.liquid_c += power * dt / self.heat_capacity_j_per_k
        self.probe.step(dt, self.liquid_c)


# Each output point and the value its comms watchdog puts it in: every output's safe state is off.
_OUTPUT_ATTRS = {"vessel": ("heater", "element"), "pump": ("running",), "valve": ("open",),
                 "fermenter": ("glycol", "heating_pad")}


@dataclass
class Brewhouse:
    ambient_c: float = 20.0
    vessels: dict[str, Vessel] = field(default_factory=dict)
    pumps: dict[str, Pump] = field(default_factory=dict)
    valves: dict[str, bool] = field(default_factory=dict)
    fermenters: dict[str, Fermenter] = field(default_factory=dict)
    elapsed_s: float = 0.0
    glycol_c: float = -2.0  # the glycol chiller's supply temperature
    cellar_c: float | None = None  # the fermenters' room; None: the brewhouse's ambient

    @classmethod
    def default(cls, ambient_c: float = 20.0) -> Brewhouse:
        """HLT filled with cold liquor, MLT and BK empty, two fermenters working.

        HLT: 5.5 kW element fired by its DT controller. MLT: an 11 kW three-phase RIMS element on an
        SSR, probe on the recirculation return (longer dead time). BK: a 5.5 kW element, fired by its
        DT controller or by the panel's SSR (wired in parallel). Fermenters: 50 L, glycol jacket,
        100 W heating pad, probe in a thermowell.
        """
        return cls(
            ambient_c=ambient_c,
            vessels={
                "hlt": Vessel("hlt", volume_l=60.0, liquid_c=15.0, element_w=5500.0, has_controller=True,
                              setpoint_c=75.0, wall_kg=12.0, loss_w_per_k=4.0,
                              probe=Probe(dead_time_s=10.0, time_constant_s=20.0)),
                "mlt": Vessel("mlt", volume_l=0.0, liquid_c=ambient_c, element_w=11000.0, has_ssr=True,
                              wall_kg=15.0, loss_w_per_k=2.5, probe=Probe(dead_time_s=15.0, time_constant_s=20.0)),
                "bk": Vessel("bk", volume_l=0.0, liquid_c=ambient_c, element_w=5500.0, has_controller=True,
                             has_ssr=True, setpoint_c=100.0, wall_kg=15.0, loss_w_per_k=5.0,
                             probe=Probe(dead_time_s=10.0, time_constant_s=20.0)),
            },
            pumps={
                "pump1": Pump("pump1", source="hlt", destination="mlt", valve="v1"),
                "pump2": Pump("pump2", source="mlt", destination="bk", valve="v2"),
            },
            valves={"v1": False, "v2": False},
            fermenters={
                "fv1": Fermenter("fv1", liquid_c=18.0, probe=Probe(dead_time_s=20.0, time_constant_s=90.0)),
                "fv2": Fermenter("fv2", liquid_c=12.0, probe=Probe(dead_time_s=20.0, time_constant_s=90.0)),
            },
        )

    def step(self, dt: float) -> None:
        """Advance the model by `dt` seconds, in steps of at most `MAX_STEP_S`."""
        while dt > 1e-12:
            step = min(dt, MAX_STEP_S)
            self._step(step)
            dt -= step

    def _step(self, dt: float) -> None:
        for pump in self.pumps.values():
            flow = pump.flow_l_per_s(self.valves.get(pump.valve, False)) * dt
            source, dest = self.vessels[pump.source], self.vessels[pump.destination]
            flow = min(flow, source.volume_l, max(0.0, dest.capacity_l - dest.volume_l))
            if flow <= 0:
                continue
            dest.mix_in(flow, source.liquid_c)
            source.volume_l -= flow
        for vessel in self.vessels.values():
            vessel.step(dt, self.ambient_c)
        cellar_c = self.ambient_c if self.cellar_c is None else self.cellar_c
        for fermenter in self.fermenters.values():
            fermenter.step(dt, self.glycol_c, cellar_c)
        self.elapsed_s += dt

    def add_liquid(self, name: str, litres: float, temperature_c: float) -> float:
        """Pour `litres` at `temperature_c` into a vessel or fermenter; returns the litres that fit.

        The test and benchmark hook for a cold addition: the contents mix at once, the probe sees
        the drop only after its dead time and lag.
        """
        if litres < 0 or not math.isfinite(litres) or not math.isfinite(temperature_c):
            raise ValueError("add a finite number of litres ≥ 0 at a finite temperature")
        target: Vessel | Fermenter
        if name in self.vessels:
            target = self.vessels[name]
        elif name in self.fermenters:
            target = self.fermenters[name]
        else:
            raise KeyError(name)
        fits = min(litres, max(0.0, target.capacity_l - target.volume_l))
        target.mix_in(fits, temperature_c)
        return fits

    # -- points: the names a device map or a config `address.point` refers to ----------------

    def read(self, point: str) -> bool | float:
        thing, attr = _split(point)
        if thing in self.vessels:
            v = self.vessels[thing]
            readers = {
                "temperature": lambda: round(v.probe.reading_c, 2),
                "liquid_temperature": lambda: round(v.liquid_c, 2),
                "heater": lambda: v.heater_enabled,
                "heater_firing": lambda: v.heater_firing,
                "element_firing": lambda: v.element_firing,
                "setpoint": lambda: v.setpoint_c,
                "level_high": lambda: v.level_high,
                "volume": lambda: round(v.volume_l, 2),
            }
            if v.has_ssr:
                readers["element"] = lambda: v.element_on
            return readers[attr]()
        if thing in self.pumps:
            p = self.pumps[thing]
            return {"running": lambda: p.running, "speed": lambda: p.speed_pct}[attr]()
        if thing in self.valves and attr == "open":
            return self.valves[thing]
        if thing in self.fermenters:
            f = self.fermenters[thing]
            return {"temperature": lambda: round(f.probe.reading_c, 2),
                    "liquid_temperature": lambda: round(f.liquid_c, 2),
                    "glycol": lambda: f.glycol_open,
                    "heating_pad": lambda: f.heating_pad_on}[attr]()
        if thing == "glycol" and attr == "temperature":
            return round(self.glycol_c, 2)
        raise KeyError(point)

    def write(self, point: str, value: bool | float) -> None:
        thing, attr = _split(point)
        if thing in self.vessels and attr in ("heater", "setpoint", "element"):
            v = self.vessels[thing]
            if attr == "heater":
                v.heater_enabled = bool(value)
            elif attr == "element" and v.has_ssr:
                v.element_on = bool(value)
            elif attr == "setpoint":
                v.setpoint_c = float(value)
            else:
                raise KeyError(point)
        elif thing in self.pumps and attr in ("running", "speed"):
            p = self.pumps[thing]
            if attr == "running":
                p.running = bool(value)
            else:
                p.speed_pct = float(value)
        elif thing in self.valves and attr == "open":
            self.valves[thing] = bool(value)
        elif thing in self.fermenters and attr in ("glycol", "heating_pad"):
            f = self.fermenters[thing]
            if attr == "glycol":
                f.glycol_open = bool(value)
            else:
                f.heating_pad_on = bool(value)
        else:
            raise KeyError(point)

    def points(self) -> list[str]:
        out = []
        for name, vessel in self.vessels.items():
            attrs = ["temperature", "liquid_temperature", "heater", "heater_firing", "element_firing", "setpoint",
                     "level_high", "volume"] + (["element"] if vessel.has_ssr else [])
            out += [f"{name}.{a}" for a in attrs]
        for name in self.pumps:
            out += [f"{name}.running", f"{name}.speed"]
        out += [f"{name}.open" for name in self.valves]
        for name in self.fermenters:
            out += [f"{name}.{a}" for a in ("temperature", "liquid_temperature", "glycol", "heating_pad")]
        out.append("glycol.temperature")
        return out

    def output_points(self) -> list[str]:
        """Every output a field device drives (each one's safe state is off)."""
        out = []
        for name, vessel in self.vessels.items():
            out += [f"{name}.{a}" for a in _OUTPUT_ATTRS["vessel"] if a != "element" or vessel.has_ssr]
        out += [f"{name}.{a}" for name in self.pumps for a in _OUTPUT_ATTRS["pump"]]
        out += [f"{name}.{a}" for name in self.valves for a in _OUTPUT_ATTRS["valve"]]
        out += [f"{name}.{a}" for name in self.fermenters for a in _OUTPUT_ATTRS["fermenter"]]
        return out

    def outputs_to_safe_state(self, things: set[str] | None = None) -> None:
        """What a device's comms watchdog does: heaters and elements off, pumps stop, valves close.

        `things` names outputs (`"mlt.element"`) or whole things (`"fv1"`: its glycol valve and
        heating pad); None is every output.
        """
        for point in self.output_points():
            if things is None or point in things or point.partition(".")[0] in things:
                self.write(point, False)


def _split(point: str) -> tuple[str, str]:
    thing, _, attr = point.partition(".")
    if not attr:
        raise KeyError(point)
    return thing, attr
