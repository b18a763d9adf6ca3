"""A closed loop in simulated time for the control maths tests: PID → time-proportioned element → vessel.

Pure Python and deterministic: the control tick, the SSR window and the vessel's integration
step are all driven by one simulated clock, so an hour of brewing runs in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bevforge.control.pid import Pid
from bevforge.control.process_model import SimulatedVessel
from bevforge.control.time_proportioning import TimeProportioning, TimeProportioningSettings


@dataclass
class LoopRun:
    """What the probe saw: (time s, probe °C, output %) once per control tick."""

    samples: list[tuple[float, float, float]] = field(default_factory=list)

    def first_time_at(self, level_c: float) -> float | None:
        return next((t for t, pv, _ in self.samples if pv >= level_c), None)

    def peak_c(self) -> float:
        return max(pv for _, pv, _ in self.samples)

    def worst_deviation_after(self, start_s: float, setpoint_c: float) -> float:
        return max(abs(pv - setpoint_c) for t, pv, _ in self.samples if t >= start_s)


def run_heating_loop(vessel: SimulatedVessel, pid: Pid, setpoint_c: float, element_w: float, duration_s: float,
                     control_period_s: float = 1.0, ssr_period_s: float = 2.0, step_s: float = 0.25,
                     resolution_c: float = 0.0) -> LoopRun:
    """Regulate `vessel` at `setpoint_c` for `duration_s` with an SSR-driven element of `element_w` W.

    `resolution_c` rounds what the probe reports (a DS18B20 reads in steps of 0.0625 °C), so the
    derivative sees the staircase a real probe gives.
    """
    ssr = TimeProportioning(TimeProportioningSettings(period_s=ssr_period_s))
    run = LoopRun()
    ticks_per_control = round(control_period_s / step_s)
    output = 0.0
    for tick in range(round(duration_s / step_s)):
        now = tick * step_s
        if tick % ticks_per_control == 0:
            pv = vessel.probe_c if resolution_c <= 0 else round(vessel.probe_c / resolution_c) * resolution_c
            output = pid.update(now, pv, setpoint_c)
            run.samples.append((now, pv, output))
        vessel.step(step_s, element_w if ssr.update(now, output) else 0.0)
    return run
