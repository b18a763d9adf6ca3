"""The trends core (bevforge/trends.py) over a real SQLite file: vessel views, saved views, markers, pen CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from bevforge import trends
from bevforge.alarms import AlarmService
from bevforge.audit import AuditLog
from bevforge.bus import EventBus
from bevforge.domain import Actor, Quality, Reading, utcnow
from bevforge.errors import Forbidden, Invalid, NotFound, TooLarge
from bevforge.plant import Plant
from bevforge.store import CommandRow, Database, HistoryWriter, TelemetryReading, command_rows, create_schema
from bevforge.store import queries as history
from bevforge.trends import TrendViews, vessel_views
from tests.support.controllers import RIMS, with_controllers
from tests.support.server import brewhouse_config

HLT_TEMP, HLT_SETPOINT, HLT_VOLUME, MLT_TEMP, FV1_TEMP = 10, 12, 14, 20, 50
OLGA = Actor(user="olga", station="kiosk", role="operator")
VERA = Actor(user="vera", station="office", role="viewer")
CELLAR = Actor(user="carl", station="cellar", role="operator", nodes=frozenset({"FV1", "FV2"}))


def rims_with_output(doc: dict[str, Any]) -> None:
    with_controllers([{**RIMS, "output_record": {"id": 141, "name": "mlt_output"}}])(doc)


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.config = brewhouse_config(rims_with_output)
        self.db = Database(f"sqlite:///{tmp / 'trends.db'}")
        create_schema(self.db.engine)
        self.audit = AuditLog(self.db)
        self.alarms = AlarmService(self.config, EventBus(), self.db, self.audit)
        self.plant = Plant(self.config, EventBus(), HistoryWriter(self.db), self.alarms)
        self.alarms.states = self.plant.states
        self.alarms.device_online = {d.id: True for d in self.config.devices}
        self.alarms.load()
        self.trends = TrendViews(self.config, self.db, self.audit, self.alarms)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.db.close()


def test_a_vessel_view_is_its_temperatures_and_its_loops_setpoint_and_output(rig: Rig) -> None:
    views = {v.key: v for v in vessel_views(rig.config, OLGA)}
    assert views["MLT"].pens == [MLT_TEMP, 140, 141]  # PV, the RIMS setpoint, the RIMS output %
    assert views["HLT"].pens == [HLT_TEMP, HLT_SETPOINT]  # a hardware setpoint on the node counts too
    assert views["FV1"].pens == [FV1_TEMP]
    assert {v.key for v in vessel_views(rig.config, CELLAR)} == {"FV1", "FV2"}  # node-limited: theirs only


async def test_a_saved_view_is_the_user_s_own_and_a_shared_one_is_everybody_s_and_audited(rig: Rig) -> None:
    mine = await rig.trends.save(VERA, "HLT fill", [HLT_TEMP, HLT_VOLUME], 900)
    assert (mine.scope, mine.pens, mine.span_s) == ("mine", [HLT_TEMP, HLT_VOLUME], 900)
    again = await rig.trends.save(VERA, "HLT fill", [HLT_VOLUME], 1800)  # same name: replaced, not doubled
    assert again.id == mine.id and again.pens == [HLT_VOLUME]
    with pytest.raises(Forbidden):
        await rig.trends.save(VERA, "Mash", [MLT_TEMP], 3600, shared=True)  # a viewer keeps views for themselves
    shared = await rig.trends.save(OLGA, "Mash", [MLT_TEMP, 140, 141], 3600, shared=True)
    vera_sees = [(v.name, v.scope) for v in await rig.trends.views(VERA) if v.scope != "vessel"]
    assert vera_sees == [("Mash", "shared"), ("HLT fill", "mine")]
    assert [v.name for v in await rig.trends.views(OLGA) if v.scope != "vessel"] == ["Mash"]  # not Vera's own
    assert [v.name for v in await rig.trends.views(CELLAR) if v.scope != "vessel"] == []  # no pen of theirs
    with pytest.raises(NotFound):
        await rig.trends.delete(OLGA, mine.id)  # another user's own view looks missing
    await rig.trends.delete(OLGA, shared.id)
    actions = [(e["action"], e["target"], e["user"]) for e in await rig.audit.query()]
    assert sorted(actions) == [("trend.view.delete", "Mash", "olga"), ("trend.view.save", "Mash", "olga")]


async def test_a_view_refuses_pens_the_user_may_not_see_or_too_many_or_a_bad_name(rig: Rig) -> None:
    with pytest.raises(NotFound):
        await rig.trends.save(CELLAR, "sneak", [HLT_TEMP], 3600)
    with pytest.raises(NotFound):
        await rig.trends.save(OLGA, "ghost", [9999], 3600)
    with pytest.raises(Invalid):
        await rig.trends.save(OLGA, "", [HLT_TEMP], 3600)
    with pytest.raises(Invalid):
        await rig.trends.save(OLGA, "many", list(range(1, 10)), 3600)
    with pytest.raises(Invalid):
        await rig.trends.save(OLGA, "none", [], 3600)


async def test_markers_are_the_pens_commands_and_alarm_transitions_in_the_range(rig: Rig) -> None:
    now = utcnow()
    for cid, endpoint, value, status, at in (("c1", HLT_SETPOINT, 72.0, "succeeded", now - timedelta(minutes=5)),
                                             ("c2", 11, True, "succeeded", now - timedelta(minutes=4)),
                                             ("c3", HLT_SETPOINT, 75.0, "blocked", now - timedelta(hours=3))):
        await rig.db.write(command_rows.insert, rig.db, CommandRow(
            id=cid, endpoint_id=endpoint, requested_value=value, status=status, user="olga", station="kiosk",
            created_at=at, updated_at=at))
    rig.plant.ingest([Reading(HLT_TEMP, 101.0, Quality.GOOD)])  # hlt_temperature_hihi raised
    [alarm] = [a for a in rig.alarms.standing() if a.rule_id == "hlt_temperature_hihi"]
    rig.alarms.ack(alarm.id, OLGA)
    markers = await rig.trends.markers(OLGA, [HLT_TEMP, HLT_SETPOINT], now - timedelta(hours=1),
                                       utcnow() + timedelta(seconds=1))
    commands = [m for m in markers if m.kind == "command"]
    assert [m.extra["commandId"] for m in commands] == ["c1"]  # not another endpoint's, not out of range
    assert commands[0].text == "olga set HLT setpoint to 72 °C: succeeded"
    alarms = [(m.title, m.endpoint_id) for m in markers if m.kind == "alarm"]
    assert alarms == [("raised", HLT_TEMP), ("acked", HLT_TEMP)]
    assert "by olga" in markers[-1].text
    assert await rig.trends.markers(CELLAR, [HLT_TEMP, HLT_SETPOINT], now - timedelta(hours=1), utcnow()) == []


def test_pens_csv_is_every_raw_sample_of_each_pen_in_time_order(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'h.db'}")
    create_schema(db.engine)
    t0 = utcnow() - timedelta(minutes=1)
    rows = [{"endpoint_id": eid, "value": v, "quality": q, "server_ts": (t0 + timedelta(seconds=s)).timestamp(),
             "source_ts": None}
            for eid, v, q, s in ((10, 60.5, "good", 1), (14, 40.0, "good", 2), (10, None, "bad", 3),
                                 (14, 41.0, "good", 4), (20, 1.0, "good", 5))]
    with db.engine.begin() as conn:
        conn.execute(insert(TelemetryReading), rows)
    pens = [history.PenColumn(10, "hlt_temperature", "HLT temperature", "°C"),
            history.PenColumn(14, "hlt_volume", "HLT volume", "L")]
    table = list(csv.DictReader(io.StringIO(history.export_pens_csv(db.engine, pens, t0, utcnow()))))
    assert [(r["endpoint_id"], r["label"], r["value"], r["unit"], r["quality"]) for r in table] == [
        ("10", "HLT temperature", "60.5", "°C", "good"), ("14", "HLT volume", "40.0", "L", "good"),
        ("10", "HLT temperature", "", "°C", "bad"), ("14", "HLT volume", "41.0", "L", "good")]
    db.close()


def test_last_before_is_the_newest_sample_before_the_range_whatever_its_quality(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'h.db'}")
    create_schema(db.engine)
    t0 = utcnow() - timedelta(hours=2)
    rows = [{"endpoint_id": eid, "value": v, "quality": q, "server_ts": (t0 + timedelta(minutes=m)).timestamp(),
             "source_ts": None}
            for eid, v, q, m in ((140, 65.0, "good", 0), (140, 66.0, "good", 10), (141, None, "bad", 20),
                                 (140, 67.0, "good", 90))]
    with db.engine.begin() as conn:
        conn.execute(insert(TelemetryReading), rows)
    at, value, quality = history.last_before(db.engine, 140, t0 + timedelta(hours=1))
    assert (round((at - t0).total_seconds()), value, quality) == (600, 66.0, "good")
    assert history.last_before(db.engine, 141, t0 + timedelta(hours=1))[1:] == (None, "bad")
    assert history.last_before(db.engine, 140, t0) is None
    lasts = history.last_per_bucket(db.engine, 140, t0, t0 + timedelta(hours=2), buckets=4)  # 30 min buckets
    assert lasts == {0: 66.0, 3: 67.0}  # the newest good sample of each bucket that has one
    db.close()


async def test_a_user_keeps_at_most_max_views_but_may_still_replace_one(rig: Rig,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trends, "MAX_VIEWS", 2)
    await rig.trends.save(VERA, "one", [HLT_TEMP], 3600)
    await rig.trends.save(VERA, "two", [HLT_TEMP], 3600)
    with pytest.raises(TooLarge):
        await rig.trends.save(VERA, "three", [HLT_TEMP], 3600)
    replaced = await rig.trends.save(VERA, "two", [HLT_VOLUME], 3600)  # a name in use: replaced, not counted
    assert replaced.pens == [HLT_VOLUME]
    await rig.trends.save(OLGA, "olga's own", [HLT_TEMP], 3600)  # another user's count is their own
