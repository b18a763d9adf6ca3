"""A heat/cool pair on one setpoint: a fermenter's heating pad and glycol valve, never both at once.

One loop owns both outputs. It is in one **direction** at a time, heating or cooling, and only the
side of that direction may be demanded; the other side's demand is 0 %. The direction changes
only after the process value has left the dead band around the setpoint on the far side:

    cooling → heating  when PV < setpoint − dead_band_c / 2
    heating → cooling  when PV > setpoint + dead_band_c / 2

Inside the band the loop keeps its direction and the other side stays off, so a fermenter
drifting 0.1 °C past its setpoint does not open the glycol valve a minute after the pad was on:
heating and cooling never fight, and the energy of one is not wasted by the other.

The demands come from whatever regulates: a PID with a signed output −100..100 % (positive heats,
negative cools; `update_signed`), or two loops, one per side (`update`). A process value or a
setpoint that is not a finite number demands nothing on either side (the safe output).

The direction only gates demands: a boolean side driven through time-proportioning must still be
switched off (its off command confirmed) before the other side's first pulse — the controller
service does that with `TimeProportioning.force_off` on the side being left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bevforge.control import SAFE_OUTPUT_PCT
from bevforge.control.hysteresis import Direction


@dataclass(frozen=True)
class HeatCoolDemand:
    """What each side may do now, in %: at most one of them is above 0."""

    heat_pct: float
    cool_pct: float
    direction: Direction


class HeatCool:
    """Gates the heat and cool demands of one setpoint by direction, with a dead band (°C, full width)."""

    def __init__(self, dead_band_c: float, direction: Direction | None = None) -> None:
        if not (math.isfinite(dead_band_c) and dead_band_c >= 0):
            raise ValueError("dead_band_c must be ≥ 0 °C")
        self.dead_band_c = dead_band_c
        self._direction = direction

    @property
    def direction(self) -> Direction | None:
        """The side that may act (None until the first valid process value chooses one)."""
        return self._direction

    def update(self, pv: float, setpoint: float, heat_pct: float, cool_pct: float) -> HeatCoolDemand:
        """Gate two requests (each 0–100 %) for process value `pv` and `setpoint` (°C)."""
        direction = self._choose(pv, setpoint)
        if direction is None:
            return HeatCoolDemand(SAFE_OUTPUT_PCT, SAFE_OUTPUT_PCT, self._direction or Direction.HEAT)
        heat = _pct(heat_pct) if direction is Direction.HEAT else SAFE_OUTPUT_PCT
        cool = _pct(cool_pct) if direction is Direction.COOL else SAFE_OUTPUT_PCT
        return HeatCoolDemand(heat, cool, direction)

    def update_signed(self, pv: float, setpoint: float, demand_pct: float) -> HeatCoolDemand:
        """Gate one signed demand (−100..100 %: positive heats, negative cools)."""
        if not math.isfinite(demand_pct):
            return self.update(pv, setpoint, SAFE_OUTPUT_PCT, SAFE_OUTPUT_PCT)
        return self.update(pv, setpoint, max(0.0, demand_pct), max(0.0, -demand_pct))

    def _choose(self, pv: float, setpoint: float) -> Direction | None:
        if not (math.isfinite(pv) and math.isfinite(setpoint)):
            return None
        half = self.dead_band_c / 2.0
        if pv < setpoint - half:
            self._direction = Direction.HEAT
        elif pv > setpoint + half:
            self._direction = Direction.COOL
        elif self._direction is None:
            self._direction = Direction.HEAT if pv <= setpoint else Direction.COOL
        return self._direction


def _pct(value: float) -> float:
    return min(100.0, max(0.0, value)) if math.isfinite(value) else SAFE_OUTPUT_PCT
