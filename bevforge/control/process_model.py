"""A first-order-plus-dead-time (FOPDT) thermal model of a vessel, for tests and the control bench.

The vessel is one well-mixed mass of water with a heat capacity, a loss to ambient proportional to
the temperature difference, and a heating (or, negative, cooling) power. Its probe reads the
liquid temperature as it was `dead_time_s` ago: the thermowell lag and mixing delay that make a
naive loop overshoot. In transfer-function terms the probe sees

    T(s) − T_amb = K·e^(−L·s) / (τ·s + 1) · P(s)   with K = 1/UA (°C/W), τ = C/UA (s), L = dead time.

Pure and deterministic: `step(dt, power_w)` advances it; nothing reads a clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

WATER_HEAT_CAPACITY_J_PER_KG_C = 4186.0
WATER_DENSITY_KG_PER_L = 1.0  # close enough for brewing liquor between 10 and 100 °C


@dataclass(frozen=True)
class VesselModel:
    """Physical parameters of a vessel, in engineering units."""

    heat_capacity_j_per_c: float
    loss_w_per_c: float
    ambient_c: float = 20.0
    dead_time_s: float = 20.0

    @classmethod
    def water(cls, litres: float, loss_w_per_c: float = 10.0, ambient_c: float = 20.0,
              dead_time_s: float = 20.0) -> VesselModel:
        """A vessel holding `litres` of water (the vessel's own steel is neglected)."""
        mass_kg = litres * WATER_DENSITY_KG_PER_L
        return cls(mass_kg * WATER_HEAT_CAPACITY_J_PER_KG_C, loss_w_per_c, ambient_c, dead_time_s)

    @property
    def time_constant_s(self) -> float:
        """τ = C / UA: how slowly the vessel drifts back to ambient."""
        return self.heat_capacity_j_per_c / self.loss_w_per_c

    def rate_c_per_s(self, temperature_c: float, power_w: float) -> float:
        """dT/dt of the liquid at `temperature_c` with `power_w` going in."""
        return (power_w - self.loss_w_per_c * (temperature_c - self.ambient_c)) / self.heat_capacity_j_per_c


class SimulatedVessel:
    """The state of one vessel under simulation: the liquid's true temperature and its probe.

    `step` integrates exactly over the step for a constant power (the first-order solution), so
    any step length gives the same trajectory; the probe's delay line keeps the true temperature
    at each step's end and interpolates between them.
    """

    def __init__(self, model: VesselModel, initial_c: float) -> None:
        self.model = model
        self.time_s = 0.0
        self.temperature_c = initial_c
        self._history: deque[tuple[float, float]] = deque([(0.0, initial_c)])

    def step(self, dt_s: float, power_w: float) -> None:
        """Advance the liquid by `dt_s` seconds with `power_w` held over the step (negative = cooling)."""
        if dt_s <= 0:
            return
        m = self.model
        steady_c = m.ambient_c + power_w / m.loss_w_per_c
        decay = math.exp(-dt_s / m.time_constant_s)
        self.temperature_c = steady_c + (self.temperature_c - steady_c) * decay
        self.time_s += dt_s
        self._history.append((self.time_s, self.temperature_c))
        horizon = self.time_s - m.dead_time_s
        while len(self._history) > 2 and self._history[1][0] <= horizon:
            self._history.popleft()

    def add_liquid(self, litres: float, temperature_c: float) -> None:
        """Mix in `litres` of water at `temperature_c` (a cold addition); the heat capacity grows."""
        added = litres * WATER_DENSITY_KG_PER_L * WATER_HEAT_CAPACITY_J_PER_KG_C
        total = self.model.heat_capacity_j_per_c + added
        self.temperature_c = (self.temperature_c * self.model.heat_capacity_j_per_c + temperature_c * added) / total
        self.model = VesselModel(total, self.model.loss_w_per_c, self.model.ambient_c, self.model.dead_time_s)

    @property
    def probe_c(self) -> float:
        """What the probe reads now: the liquid temperature `dead_time_s` ago."""
        target = self.time_s - self.model.dead_time_s
        # step() keeps history[0] at or before the horizon and history[1] after it
        t0, c0 = self._history[0]
        if target <= t0 or len(self._history) == 1:
            return c0
        t1, c1 = self._history[1]
        if target >= t1:
            return c1
        return c0 + (c1 - c0) * (target - t0) / (t1 - t0)
