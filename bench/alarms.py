"""Alarm evaluation cost per reading with 500 alarm definitions (100 endpoints × 5 definitions).

    .venv/bin/python bench/alarms.py
Measures `Plant.ingest` with alarms (minus the same ingest with no definitions), so the figure is
what the alarm engine adds to each reading. Target: ≤ 20 µs per reading.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, table
from bevforge.alarms import AlarmService
from bevforge.bus import EventBus
from bevforge.config import PlantConfig
from bevforge.domain import Quality, Reading
from bevforge.plant import Plant
from bevforge.store import Database, HistoryWriter, create_schema

ENDPOINTS = 100
READINGS = 100_000


def config(with_alarms: bool) -> PlantConfig:
    endpoints = [{"id": i + 1, "name": f"probe_{i}", "node": "N", "device": "d", "kind": "temperature",
                  "unit": "°C", "range": {"min": -50, "max": 150}} for i in range(ENDPOINTS)]
    alarms = []
    if with_alarms:
        for i in range(ENDPOINTS):
            eid = i + 1
            alarms += [
                {"id": f"hihi_{i}", "kind": "HIHI", "endpoint": eid, "limit": 95, "deadband": 1,
                 "priority": "critical"},
                {"id": f"hi_{i}", "kind": "HI", "endpoint": eid, "limit": 80, "deadband": 1, "on_delay_s": 5},
                {"id": f"lo_{i}", "kind": "LO", "endpoint": eid, "limit": 5, "deadband": 1, "off_delay_s": 5},
                {"id": f"lolo_{i}", "kind": "LOLO", "endpoint": eid, "limit": 1, "deadband": 1},
                {"id": f"rate_{i}", "kind": "rate", "endpoint": eid, "limit": 5, "rate_window_s": 60},
            ]
    return PlantConfig.model_validate({"nodes": [{"id": "N", "name": "n"}], "devices": [{"id": "d", "driver": "x"}],
                                       "endpoints": endpoints, "alarms": alarms})


def cost_per_reading(with_alarms: bool) -> tuple[float, int]:
    cfg = config(with_alarms)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'b.db'}")
        create_schema(db.engine)
        bus = EventBus()
        alarms = AlarmService(cfg, bus, db)
        history = HistoryWriter(db, flush_rows=10**9)
        plant = Plant(cfg, bus, history, alarms)
        alarms.states = plant.states
        batches = [[Reading(e + 1, 20.0 + ((k + e) % 50) * 0.5, Quality.GOOD) for e in range(ENDPOINTS)]
                   for k in range(READINGS // ENDPOINTS)]
        started = time.perf_counter()
        for batch in batches:
            plant.ingest(batch)
            history._rows.clear()
        elapsed = time.perf_counter() - started
        db.close()
        return elapsed / READINGS * 1e6, len(alarms.points)


def rows() -> list[Row]:
    base, _ = cost_per_reading(False)
    with_alarms, definitions = cost_per_reading(True)
    added = with_alarms - base
    command = "python bench/alarms.py"
    return [
        Row("ingest per reading, no alarm definitions", f"{base:.1f} µs", "", None, command),
        Row(f"ingest per reading, {definitions} definitions", f"{with_alarms:.1f} µs", "", None, command),
        Row("alarm evaluation added per reading", f"{added:.1f} µs", "≤ 20 µs", added <= 20, command),
    ]


def main() -> None:
    print(table(["measure", "result", "target"], [[r.measure, r.result, r.target or "—"] for r in rows()]))


if __name__ == "__main__":
    main()
