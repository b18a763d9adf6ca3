"""Report-by-exception: which samples the plant pushes to the bus, over a real bus and SQLite file.

Every sample still reaches history and alarms; only repeats of the last pushed frame are held back,
until `realtime.telemetry_refresh_s` has passed. A value that goes stale is pushed (quality changes).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bevforge.alarms import AlarmService
from bevforge.bus import TELEMETRY, EventBus
from bevforge.domain import Quality, Reading, utcnow
from bevforge.plant import Plant
from bevforge.store import Database, HistoryWriter, create_schema
from tests.support.server import brewhouse_config

HLT_TEMP, HLT_HEATER = 10, 11


class Rig:
    def __init__(self, tmp: Path, refresh_s: float) -> None:
        def adjust(doc: dict[str, Any]) -> None:
            doc.setdefault("realtime", {})["telemetry_refresh_s"] = refresh_s

        self.config = brewhouse_config(adjust)
        self.db = Database(f"sqlite:///{tmp / 'plant.db'}")
        create_schema(self.db.engine)
        self.bus = EventBus()
        self.alarms = AlarmService(self.config, self.bus, self.db)
        self.history = HistoryWriter(self.db)
        self.plant = Plant(self.config, self.bus, self.history, self.alarms)
        self.alarms.states = self.plant.states
        self.alarms.device_online = {d.id: True for d in self.config.devices}
        self.alarms.load()
        self.now = 1000.0
        self.plant.clock = lambda: self.now
        self.seen = 0

    def feed(self, endpoint_id: int, value: Any, quality: Quality = Quality.GOOD, error: str | None = None) -> None:
        self.plant.ingest([Reading(endpoint_id, value, quality, error=error)])

    def pushed(self) -> list[tuple[int, Any, str]]:
        """Telemetry published since the last call, oldest first (from the bus's ring buffer, which
        holds every event: a subscriber's queue would coalesce repeats of one endpoint)."""
        events = self.bus.since(self.seen) or []
        self.seen = self.bus.last_seq
        return [(e.payload["endpointId"], e.payload["value"], e.payload["quality"])
                for e in events if e.type == TELEMETRY]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, refresh_s=10)
    yield r
    r.db.close()


def test_a_repeated_sample_is_not_pushed_but_a_change_is(rig: Rig) -> None:
    rig.feed(HLT_TEMP, 64.0)
    rig.feed(HLT_TEMP, 64.0)
    rig.feed(HLT_TEMP, 64.0)
    assert rig.pushed() == [(HLT_TEMP, 64.0, "good")]
    rig.feed(HLT_TEMP, 64.1)
    assert rig.pushed() == [(HLT_TEMP, 64.1, "good")]
    assert rig.plant.samples_unpublished == 2


def test_every_sample_still_reaches_history_and_current_state(rig: Rig) -> None:
    for _ in range(5):
        rig.feed(HLT_TEMP, 64.0)
    assert rig.history.pending == 5
    assert rig.plant.states[HLT_TEMP].seq == 5
    assert len(rig.pushed()) == 1


def test_a_steady_value_is_pushed_again_after_the_refresh_interval(rig: Rig) -> None:
    rig.feed(HLT_TEMP, 64.0)
    rig.now += 9.9
    rig.feed(HLT_TEMP, 64.0)
    assert rig.pushed() == [(HLT_TEMP, 64.0, "good")]
    rig.now += 0.2  # 10.1 s after the last pushed frame
    rig.feed(HLT_TEMP, 64.0)
    assert rig.pushed() == [(HLT_TEMP, 64.0, "good")]


def test_quality_and_error_changes_are_pushed_even_with_the_same_value(rig: Rig) -> None:
    rig.feed(HLT_HEATER, False)
    rig.feed(HLT_HEATER, False, Quality.UNCERTAIN)
    rig.feed(HLT_HEATER, False, Quality.BAD, error="timeout")
    rig.feed(HLT_HEATER, False, Quality.BAD, error="crc error")
    rig.feed(HLT_HEATER, False, Quality.BAD, error="crc error")
    rig.feed(HLT_HEATER, False)
    assert [q for _, _, q in rig.pushed()] == ["good", "uncertain", "bad", "bad", "good"]


def test_a_value_that_stops_arriving_is_pushed_as_stale_without_a_new_sample(rig: Rig) -> None:
    rig.feed(HLT_TEMP, 64.0)
    assert rig.pushed() == [(HLT_TEMP, 64.0, "good")]
    stale_after = rig.plant.endpoints[HLT_TEMP].stale_after
    rig.plant.sweep_stale(utcnow() + timedelta(seconds=stale_after + 0.5))
    assert rig.pushed() == [(HLT_TEMP, 64.0, "uncertain")]
    rig.feed(HLT_TEMP, 64.0)  # the same value again, fresh: live once more
    assert rig.pushed() == [(HLT_TEMP, 64.0, "good")]


def test_a_bool_and_an_int_of_equal_value_are_not_the_same_frame(rig: Rig) -> None:
    rig.feed(HLT_HEATER, True)
    rig.plant.states[HLT_HEATER].value = 1  # what a mis-typed driver would hand in
    rig.plant._publish_news(rig.plant.endpoints[HLT_HEATER], rig.plant.states[HLT_HEATER], rig.now)
    assert [v for _, v, _ in rig.pushed()] == [True, 1]


def test_refresh_zero_pushes_every_sample(tmp_path: Path) -> None:
    rig = Rig(tmp_path, refresh_s=0)
    try:
        for _ in range(3):
            rig.feed(HLT_TEMP, 64.0)
        assert rig.pushed() == [(HLT_TEMP, 64.0, "good")] * 3
        assert rig.plant.samples_unpublished == 0
    finally:
        rig.db.close()
