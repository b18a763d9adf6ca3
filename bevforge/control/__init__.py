"""Control maths: PID, hysteresis, time-proportioning, heat/cool pairs, relay autotune, power budget.

A pure package: no I/O, no asyncio and no clock reads. Every stateful object is handed the time
(`now`, seconds on any monotonic scale) by its caller, so the same code runs in real time in the
controller service, accelerated in the simulator and in microseconds in a unit test.

Units everywhere: temperatures in °C, outputs and demands in % (0–100, or −100..100 for a signed
heat/cool demand), power in W, times in s. Any path that cannot compute a sane output returns the
safe output: off, 0 %.

One job per module (import them directly; this package file holds only the shared safe output):
`pid` (PID loop), `hysteresis` (on/off loop), `time_proportioning` (demand % → on/off window, and
the minimum step of a numeric output), `heat_cool` (a heat/cool pair's direction and dead band),
`autotune` (relay autotune, Tyreus–Luyben gains), `power_budget` (elements sharing one supply),
`process_model` (an FOPDT vessel for tests and the bench). docs/architecture.md has the table.
"""

from __future__ import annotations

SAFE_OUTPUT_PCT = 0.0
"""What every controller answers when it cannot compute a sane output (bad input, fault, finished
autotune): the element off, the valve closed."""
