"""The alarm service over a real plant and SQLite file: latching, shelving, quality, floods, journal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bevforge.alarms import AlarmService
from bevforge.bus import EventBus
from bevforge.domain import Actor, Quality, Reading, utcnow
from bevforge.errors import Invalid
from bevforge.plant import Plant
from bevforge.store import AlarmJournalRow, Database, HistoryWriter, create_schema
from tests.support.server import brewhouse_config

HLT_TEMP, MLT_TEMP, MLT_VOLUME, FV1_TEMP = 10, 20, 21, 50
OPERATOR = Actor(user="olga", station="kiosk", role="operator")


class Rig:
    def __init__(self, tmp: Path, adjust: Any = None) -> None:
        self.config = brewhouse_config(adjust)
        self.db = Database(f"sqlite:///{tmp / 'alarms.db'}")
        create_schema(self.db.engine)
        self.bus = EventBus()
        self.alarms = AlarmService(self.config, self.bus, self.db)
        self.plant = Plant(self.config, self.bus, HistoryWriter(self.db), self.alarms)
        self.alarms.states = self.plant.states
        self.alarms.device_online = {d.id: True for d in self.config.devices}
        self.alarms.load()

    def feed(self, endpoint_id: int, value: Any, quality: Quality = Quality.GOOD) -> None:
        self.plant.ingest([Reading(endpoint_id, value, quality)])

    def standing(self, rule_id: str) -> list[dict[str, Any]]:
        return [a.as_dict() for a in self.alarms.standing() if a.rule_id == rule_id]

    def journal(self) -> list[tuple[str, str, str]]:
        self.db._writer.submit(lambda: None).result()  # wait for queued writes
        with self.db.session() as s:
            return [(r.rule_id, r.event, r.user) for r in s.exec(select(AlarmJournalRow).order_by(AlarmJournalRow.id))]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.db.close()


def test_raise_ack_clear_journal(rig: Rig) -> None:
    rig.feed(HLT_TEMP, 101.0)
    [alarm] = rig.standing("hlt_temperature_hihi")
    assert alarm["state"] == "unacknowledged" and alarm["priority"] == "critical"
    rig.alarms.ack(alarm["alarmId"], OPERATOR, "on it")
    rig.feed(HLT_TEMP, 90.0)
    assert rig.standing("hlt_temperature_hihi") == []
    assert rig.journal() == [("hlt_temperature_hihi", "raised", "system"), ("hlt_temperature_hihi", "acked", "olga"),
                             ("hlt_temperature_hihi", "cleared", "system")]


def test_bad_quality_never_clears_an_alarm(rig: Rig) -> None:
    rig.feed(HLT_TEMP, 101.0)
    rig.feed(HLT_TEMP, None, Quality.BAD)
    rig.feed(HLT_TEMP, 20.0, Quality.UNCERTAIN)
    [alarm] = rig.standing("hlt_temperature_hihi")
    assert alarm["active"] is True
    stale = rig.standing(f"stale:{HLT_TEMP}")
    assert stale and stale[0]["kind"] == "comms"
    rig.feed(HLT_TEMP, 50.0)
    assert rig.standing("hlt_temperature_hihi")[0]["state"] == "rtn_unacknowledged"
    assert rig.standing(f"stale:{HLT_TEMP}")[0]["active"] is False


def test_latched_alarm_survives_return_to_normal_until_reset(tmp_path: Path) -> None:
    def latch(doc: dict[str, Any]) -> None:
        doc["alarms"][0]["latching"] = True

    rig = Rig(tmp_path, latch)
    rig.feed(HLT_TEMP, 101.0)
    [alarm] = rig.standing("hlt_temperature_hihi")
    rig.alarms.ack(alarm["alarmId"], OPERATOR)
    rig.feed(HLT_TEMP, 50.0)
    [alarm] = rig.standing("hlt_temperature_hihi")
    assert alarm["state"] == "latched"
    rig.alarms.reset(alarm["alarmId"], OPERATOR, "element checked")
    assert rig.standing("hlt_temperature_hihi") == []
    assert ("hlt_temperature_hihi", "reset", "olga") in rig.journal()


def test_timed_shelf_expires_and_reannunciates(rig: Rig) -> None:
    rig.feed(HLT_TEMP, 101.0)
    [alarm] = rig.standing("hlt_temperature_hihi")
    rig.alarms.ack(alarm["alarmId"], OPERATOR)
    rig.alarms.shelve("hlt_temperature_hihi", OPERATOR, 900.0, "probe swap")
    assert rig.standing("hlt_temperature_hihi")[0]["state"] == "shelved"
    rig.alarms.tick(0.0, utcnow() + timedelta(seconds=450))
    assert rig.standing("hlt_temperature_hihi")[0]["state"] == "shelved"
    rig.alarms.tick(0.0, utcnow() + timedelta(seconds=901))
    assert rig.standing("hlt_temperature_hihi")[0]["state"] == "unacknowledged"
    events = [e for rule, e, _ in rig.journal() if rule == "hlt_temperature_hihi"]
    assert events[-3:] == ["shelved", "shelf_expired", "reannunciated"]


def test_one_shot_shelf_ends_when_the_alarm_clears(rig: Rig) -> None:
    rig.feed(HLT_TEMP, 101.0)
    rig.alarms.shelve("hlt_temperature_hihi", OPERATOR, None)
    rig.feed(HLT_TEMP, 50.0)
    assert rig.alarms.points["hlt_temperature_hihi"].state.shelf is None


def test_suppressed_by_design_while_the_mash_tun_is_empty(rig: Rig) -> None:
    rig.feed(MLT_VOLUME, 0.0)
    point = rig.alarms.points["mlt_temperature_lo"]
    assert point.state.suppressed
    rig.feed(MLT_VOLUME, 40.0)
    assert not point.state.suppressed


def test_a_suppressed_alarm_stays_silent_through_the_mash_in_until_really_abnormal_for_its_on_delay(
        tmp_path: Path) -> None:
    """The tun sits empty and cold for an hour (low temperature, suppressed by design); mash-in fills it:
    the alarm does not annunciate at the moment the suppression ends, only if the mash is still low
    for the whole on-delay (30 s) counted from then — and not at all when the mash comes up to heat."""
    def delayed(doc: dict[str, Any]) -> None:
        next(a for a in doc["alarms"] if a["id"] == "mlt_temperature_lo")["on_delay_s"] = 30

    rig = Rig(tmp_path, delayed)
    engine, point = rig.alarms.engine, rig.alarms.points["mlt_temperature_lo"]
    assert point.rule is not None and point.rule.on_delay_s == 30
    rig.feed(MLT_VOLUME, 0.0)
    rig.feed(MLT_TEMP, 20.0)
    start = time.monotonic()
    engine.tick(start + 3600, utcnow())  # an hour empty and cold: nothing evaluated, nothing pending
    assert point.state.suppressed and not point.state.active
    rig.feed(MLT_VOLUME, 40.0)  # mash-in
    rig.feed(MLT_TEMP, 20.0)  # the probe still reads the cold tun
    assert not point.state.suppressed and not point.state.active and not rig.standing("mlt_temperature_lo")
    rig.feed(MLT_TEMP, 66.0)  # the strike water arrives
    engine.tick(time.monotonic() + 60, utcnow())
    assert not rig.standing("mlt_temperature_lo"), "a mash that came up to heat never annunciated"
    rig.feed(MLT_TEMP, 40.0)  # really low now: raised only after the on-delay
    engine.tick(time.monotonic() + 10, utcnow())
    assert not rig.standing("mlt_temperature_lo")
    engine.tick(time.monotonic() + 31, utcnow())
    [alarm] = rig.standing("mlt_temperature_lo")
    assert "40.0" in alarm["message"]
    rig.db.close()


def test_eleventh_alarm_in_ten_minutes_is_a_flood_with_first_out(rig: Rig) -> None:
    first = None
    for i in range(10):
        alarm = rig.alarms.raise_alarm(f"test:{i}", "comms", rig.alarms.points["hlt_temperature_hihi"].priority,
                                       f"alarm {i}")
        first = first or alarm.id
        assert not rig.alarms.flood
    rig.alarms.raise_alarm("test:10", "comms", rig.alarms.points["hlt_temperature_hihi"].priority, "alarm 10")
    summary = rig.alarms.summary()
    assert summary["flood"] is True and summary["firstOutAlarmId"] == first
    assert rig.alarms.current[first].first_out is True


def test_chattering_is_flagged(rig: Rig) -> None:
    for _ in range(3):
        rig.feed(HLT_TEMP, 101.0)
        rig.feed(HLT_TEMP, 50.0)
    assert rig.alarms.points["hlt_temperature_hihi"].chattering
    assert ("hlt_temperature_hihi", "chattering", "system") in rig.journal()


def test_limit_change_is_persisted_and_journalled(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    tech = Actor(user="tom", role="technician")
    old, _ = rig.alarms.change_limits("hlt_temperature_hihi", {"limit": 95.0}, tech)
    assert old["limit"] == 99.0
    rig.feed(HLT_TEMP, 96.0)
    assert rig.standing("hlt_temperature_hihi")
    assert ("hlt_temperature_hihi", "limits_changed", "tom") in rig.journal()
    rig.db.close()
    again = Rig(tmp_path)
    assert again.alarms.points["hlt_temperature_hihi"].tracker.limit == 95.0
    assert again.standing("hlt_temperature_hihi")  # the open occurrence survives the restart


def test_out_of_service_alarm_is_not_annunciated(rig: Rig) -> None:
    rig.alarms.set_in_service("hlt_temperature_hihi", False, Actor(user="tom", role="technician"), "probe out")
    rig.feed(HLT_TEMP, 101.0)
    assert rig.alarms.summary()["unacknowledged"]["critical"] == 0
    rig.alarms.set_in_service("hlt_temperature_hihi", True, Actor(user="tom", role="technician"))
    assert rig.alarms.summary()["unacknowledged"]["critical"] == 1


def test_a_node_limited_actor_cannot_act_on_another_nodes_alarm(rig: Rig) -> None:
    """The service itself checks the node (the screens and REST ask it too): another node's alarm is not found."""
    from bevforge.alarms import AlarmNotFound

    mlt_only = Actor(user="max", station="kiosk", role="technician", nodes=frozenset({"MLT"}))
    rig.feed(HLT_TEMP, 101.0)
    [alarm] = rig.standing("hlt_temperature_hihi")
    for act in (lambda: rig.alarms.ack(alarm["alarmId"], mlt_only),
                lambda: rig.alarms.reset(alarm["alarmId"], mlt_only),
                lambda: rig.alarms.shelve("hlt_temperature_hihi", mlt_only, 900.0),
                lambda: rig.alarms.set_in_service("hlt_temperature_hihi", False, mlt_only),
                lambda: rig.alarms.change_limits("hlt_temperature_hihi", {"limit": 120.0}, mlt_only)):
        with pytest.raises(AlarmNotFound):
            act()
    [still] = rig.standing("hlt_temperature_hihi")
    assert still["state"] == "unacknowledged" and not still["shelved"]
    rig.alarms.ack(alarm["alarmId"], Actor(user="hanna", role="operator", nodes=frozenset({"HLT"})))
    assert rig.standing("hlt_temperature_hihi")[0]["acked"]


@pytest.mark.parametrize("duration_s", [24 * 3600.0, 0.001, 600.0])
def test_shelf_durations_come_from_the_role_policy(rig: Rig, duration_s: float) -> None:
    with pytest.raises(Invalid) as refused:
        rig.alarms.shelve("hlt_temperature_hihi", OPERATOR, duration_s)
    assert refused.value.field == "durationS"
    assert rig.alarms.points["hlt_temperature_hihi"].state.shelf is None


def test_a_role_may_be_given_its_own_shelf_durations(tmp_path: Path) -> None:
    def adjust(doc: dict[str, Any]) -> None:
        doc.setdefault("auth", {})["shelve_durations_s"] = {"operator": [300], "technician": [300, 86400]}

    rig = Rig(tmp_path, adjust)
    technician = Actor(user="tom", station="desk", role="technician")
    rig.alarms.shelve("hlt_temperature_hihi", technician, 86400.0)
    assert rig.alarms.points["hlt_temperature_hihi"].state.shelf == "timed"
    with pytest.raises(Invalid):
        rig.alarms.shelve("mlt_temperature_lo", OPERATOR, 86400.0)
    admin = Actor(user="ada", station="desk", role="admin")  # not listed: the technician's list
    rig.alarms.shelve("mlt_temperature_lo", admin, 86400.0)


SITE_KEY = "site:brewhouse_test:7"


def test_a_point_another_bevforge_owns_follows_its_state_and_one_hidden_there_never_annunciates_here(rig: Rig) -> None:
    from bevforge.alarms.states import PointState
    from bevforge.domain import Severity

    follow = rig.alarms.follow
    at = utcnow() + timedelta(minutes=15)
    # shelved there before it came here: raised hidden, no occurrence opens, nothing is annunciated
    follow(SITE_KEY, "site", Severity.HIGH, "test: HLT too hot", PointState(active=True, shelf="timed",
                                                                            shelved_until=at), by="site:x")
    point = rig.alarms.points[SITE_KEY]
    assert point.state.display.value == "shelved" and point.state.shelved_until == at and point.occurrence is None
    follow(SITE_KEY, "site", Severity.HIGH, "test: HLT too hot", PointState(active=True), by="site:x")  # unshelved
    assert point.state.display.value == "unacknowledged" and point.occurrence is not None
    assert point.occurrence.message == "test: HLT too hot"
    follow(SITE_KEY, "site", Severity.HIGH, "m", PointState(active=True, out_of_service=True), by="site:x")
    assert point.state.out_of_service
    follow(SITE_KEY, "site", Severity.HIGH, None, PointState(), by="site:x")  # over there: normal here
    assert point.state == PointState(acked=False) and point.occurrence.message == "test: HLT too hot"
    # latched there (it came back to normal before this panel saw it): latched here, so RESET is offered
    latched = "site:brewhouse_test:9"
    follow(latched, "site", Severity.HIGH, "test: I/O lost", PointState(latched=True), by="site:x")
    assert rig.alarms.points[latched].state.display.value == "latched"
    follow(latched, "site", Severity.HIGH, None, PointState(), by="site:x")  # reset there, over: reset here
    assert rig.alarms.points[latched].state == PointState() and rig.alarms.points[latched].occurrence is None
    assert {(e, u) for k, e, u in rig.journal() if k == SITE_KEY} >= {
        ("shelved", "site:x"), ("unshelved", "site:x"), ("out_of_service", "site:x"), ("in_service", "site:x"),
        ("cleared", "site:x")}
    assert [(e, u) for k, e, u in rig.journal() if k == latched] == [("raised", "site:x"), ("cleared", "site:x"),
                                                                    ("reset", "site:x")]
    follow("site:brewhouse_test:8", "site", Severity.HIGH, None, PointState(), by="site:x")
    assert "site:brewhouse_test:8" not in rig.alarms.points  # nothing there: nothing made here


def test_an_action_on_a_point_another_bevforge_owns_is_sent_there_and_changes_nothing_here(rig: Rig) -> None:
    from bevforge.alarms.states import PointState
    from bevforge.domain import Severity
    from bevforge.errors import Unavailable

    sent: list[tuple[str, str, dict[str, Any]]] = []

    def send(point: Any, event: Any, actor: Actor, fields: dict[str, Any]) -> str:
        if fields.get("comment") == "away":
            raise Unavailable("site x cannot be reached now", code="site_unreachable")
        sent.append((point.key, event.value, fields))
        return "sent to site x"

    rig.alarms.remote["site"] = send
    rig.alarms.follow(SITE_KEY, "site", Severity.HIGH, "m", PointState(active=True))
    point = rig.alarms.points[SITE_KEY]
    rig.alarms.shelve(SITE_KEY, OPERATOR, 900, "lunch")
    rig.alarms.set_in_service(SITE_KEY, False, Actor(user="tom", role="technician"), None)
    with pytest.raises(Unavailable):
        rig.alarms.unshelve(SITE_KEY, OPERATOR, "away")
    assert sent == [(SITE_KEY, "shelve", {"durationS": 900, "comment": "lunch"}),
                    (SITE_KEY, "remove_from_service", {"comment": None})]
    assert point.state.shelf is None and not point.state.out_of_service  # the site's answer decides
    with pytest.raises(Invalid):  # this panel's own role policy still applies first
        rig.alarms.shelve(SITE_KEY, OPERATOR, 1234)
    assert rig.alarms.definition(SITE_KEY)["remote"] is True
