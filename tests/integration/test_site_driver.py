"""A central panel reads a site through the `site` driver (drivers/site.py): a real Mosquitto, the fixture
brewhouse as the site (real Modbus), and a second runtime as the central panel with no device of its own.

The centre shows the site's values with the site's quality; its commands run the SITE's pipeline (a blocked
one is blocked there, and the reason is what the centre's record shows); a site that goes away is stale at
the centre, never live.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bevforge.commands.record import Command
from bevforge.config import parse_config
from bevforge.devices import site_alarm_key
from bevforge.domain import Actor, CommandStatus, Quality, Severity, utcnow
from bevforge.runtime import Runtime
from drivers import driver_factories
from tests.support.mosquitto import ACL, Mosquitto, Watcher
from tests.support.server import brewhouse_config, build_runtime, wait_for

USERS = {"bevforge": "plant-secret-1", "central": "central-secret-1"}
# the central's own tree, beside the ACL the site's tests use (it reads the site's tree and publishes
# only under <site>/cmd/central/, as every user may under their own name)
CENTRAL_ACL = ACL + "\nuser central\ntopic readwrite bevforge/central/#\n"
HLT_TEMPERATURE, HLT_SETPOINT, BK_HEATER, BK_LEVEL = 10, 12, 31, 32
OPERATOR = Actor(user="olga", role="operator", station="central-test")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto"), USERS, acl=CENTRAL_ACL)
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


def central_document(broker: Mosquitto) -> dict[str, Any]:
    """A central panel: the site's HLT and BK points on one `site` device, nothing polled itself."""
    return {
        "site": {"name": "Central panel"},
        "nodes": [{"id": "HLT", "name": "Hot liquor tank"}, {"id": "BK", "name": "Boil kettle"}],
        "devices": [{"id": "brewhouse_test", "driver": "site", "comms_timeout_s": 5.0,
                     "settings": {"site": "test", "command_timeout_s": 10}}],
        "endpoints": [
            {"id": HLT_TEMPERATURE, "name": "hlt_temperature", "node": "HLT", "device": "brewhouse_test",
             "kind": "temperature", "unit": "°C", "stale_after_s": 30, "address": {"node": "HLT"}},
            {"id": HLT_SETPOINT, "name": "hlt_setpoint", "node": "HLT", "device": "brewhouse_test",
             "kind": "setpoint", "unit": "°C", "writable": True, "range": {"min": 0, "max": 99},
             "tolerance": 0.05, "stale_after_s": 30},
            {"id": BK_HEATER, "name": "bk_heater", "node": "BK", "device": "brewhouse_test", "kind": "heater",
             "data_type": "bool", "writable": True, "safe_value": False, "stale_after_s": 30},
            {"id": BK_LEVEL, "name": "bk_level_high", "node": "BK", "device": "brewhouse_test", "kind": "level",
             "data_type": "bool", "stale_after_s": 30},
        ],
        "tiles": [{"id": "hlt", "title": "HLT", "node": "HLT", "endpoints": [HLT_TEMPERATURE, HLT_SETPOINT]}],
        "commands": {"readback_timeout_s": 5.0, "write_timeout_s": 10.0, "expiry_s": 30},
        "simulator": {"enabled": False},
        "mqtt": broker.settings(site="central", username="central", password_env="BEVFORGE_TEST_CENTRAL_PASSWORD"),
    }


@pytest.fixture
async def site(tmp_path: Path, broker: Mosquitto) -> AsyncIterator[Runtime]:
    def adjust(doc: dict[str, Any]) -> None:
        doc["mqtt"] = broker.settings(users={"central": {"role": "operator"}})

    runtime = build_runtime(brewhouse_config(adjust), tmp_path / "site.db")
    await runtime.start()
    try:
        await wait_for(lambda: all(runtime.plant.device_online.values()), timeout=15)
        await wait_for(lambda: runtime.mqtt is not None and runtime.mqtt.connected, timeout=10)
        yield runtime
    finally:
        await runtime.stop()


@pytest.fixture
async def central(tmp_path: Path, broker: Mosquitto, site: Runtime,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runtime]:
    monkeypatch.setenv("BEVFORGE_TEST_CENTRAL_PASSWORD", USERS["central"])
    config = parse_config(yaml.safe_dump(central_document(broker), allow_unicode=True), "central.yaml")
    factories, _ = driver_factories(config)
    runtime = Runtime(config, f"sqlite:///{tmp_path / 'central.db'}", factories)
    await runtime.start()
    try:
        await wait_for(lambda: runtime.plant.device_online.get("brewhouse_test"), timeout=15)
        yield runtime
    finally:
        await runtime.stop()


async def test_the_centre_shows_the_site_s_values_with_the_site_s_quality(site: Runtime, central: Runtime) -> None:
    def same_as_site() -> bool:
        here, there = central.plant.states[HLT_TEMPERATURE], site.plant.states[HLT_TEMPERATURE]
        return here.quality is Quality.GOOD and here.value == there.value

    await wait_for(same_as_site, timeout=10)
    assert central.health()["drivers"][0]["site"] == "test"


async def test_a_command_from_the_centre_runs_the_site_s_pipeline_to_its_device(site: Runtime,
                                                                                  central: Runtime) -> None:
    sim = site.attachments["simulator"]
    await wait_for(lambda: central.plant.states[HLT_SETPOINT].quality is Quality.GOOD, timeout=10)
    command, _ = await central.commands.submit(HLT_SETPOINT, 66.5, actor=OPERATOR)
    done = await final(central, command.id)
    assert done.status is CommandStatus.SUCCEEDED, done.error
    assert sim.model.vessels["hlt"].setpoint_c == 66.5  # reached the site's (simulated) controller over Modbus
    at_site = [c for c in await site.commands.query(None, None, 20) if c.user == "mqtt:central"]
    assert at_site and at_site[0].status is CommandStatus.SUCCEEDED and at_site[0].requested_value == 66.5


async def test_a_command_the_site_s_interlock_blocks_is_blocked_there_with_its_reason_shown_centrally(
        site: Runtime, central: Runtime) -> None:
    sim = site.attachments["simulator"]
    await wait_for(lambda: site.plant.states[BK_LEVEL].value is False)  # the BK is empty: its heater is held off
    await wait_for(lambda: central.plant.states[BK_HEATER].quality is Quality.GOOD, timeout=10)
    command, _ = await central.commands.submit(BK_HEATER, True, actor=OPERATOR)
    done = await final(central, command.id)
    assert done.status is CommandStatus.FAILED
    assert "site test blocked it: BK heater may be ON only while BK level is HIGH" in (done.error or "")
    assert sim.model.vessels["bk"].heater_enabled is False
    blocked = [c for c in await site.commands.query(None, None, 20) if c.user == "mqtt:central"]
    assert blocked and blocked[0].status is CommandStatus.BLOCKED


async def test_a_site_that_goes_away_is_stale_at_the_centre_never_live(site: Runtime, central: Runtime) -> None:
    await wait_for(lambda: central.plant.states[HLT_TEMPERATURE].quality is Quality.GOOD, timeout=10)
    await site.stop()  # its goodbye: <root>/status offline
    await wait_for(lambda: central.plant.states[HLT_TEMPERATURE].quality is not Quality.GOOD, timeout=10)
    assert central.plant.device_online["brewhouse_test"] is False
    assert "offline" in (central.plant.states[HLT_TEMPERATURE].error or "")


def shown_alarm(central: Runtime, site_alarm_id: int) -> Any:
    point = central.alarms.points.get(site_alarm_key("brewhouse_test", site_alarm_id))
    return None if point is None else point.occurrence


async def test_the_site_s_alarms_stand_at_the_centre_on_its_node_and_end_with_them(
        tmp_path: Path, site: Runtime, central: Runtime, broker: Mosquitto) -> None:
    raised = site.alarms.raise_alarm("test:hlt-hot", "process", Severity.HIGH, "HLT too hot", node="HLT")
    await wait_for(lambda: central.alarms.is_active(site_alarm_key("brewhouse_test", raised.id)), timeout=10)
    shown = shown_alarm(central, raised.id)
    assert (shown.severity, shown.node, shown.kind) == (Severity.HIGH, "HLT", "site")
    assert shown.message.endswith("test: HLT too hot")
    central.alarms.ack(shown.id, OPERATOR, "seen from the office")  # acknowledged at the site too, as mqtt:central
    await wait_for(lambda: site.alarms.current[raised.id].acked_by is not None, timeout=10)
    at_site = site.alarms.current[raised.id]
    assert at_site.acked_by == "mqtt:central"
    assert at_site.ack_comment == "acknowledged at the central panel by olga: seen from the office"
    site.alarms.clear("test:hlt-hot")  # back to normal at the site (unacknowledged there): normal here too
    await wait_for(lambda: not central.alarms.is_active(site_alarm_key("brewhouse_test", raised.id)), timeout=10)

    # an alarm that ends at the site while the centre is away is cleared when the centre is back
    second = site.alarms.raise_alarm("test:bk-dry", "process", Severity.MEDIUM, "BK dry")
    await wait_for(lambda: central.alarms.is_active(site_alarm_key("brewhouse_test", second.id)), timeout=10)
    await central.stop()
    async with Watcher(broker, "central", f"bevforge/test/alarms/{second.id}") as on_broker:
        site.alarms.clear("test:bk-dry")
        site.alarms.ack(second.id, OPERATOR)  # over at the site: its retained topic is emptied
        await on_broker.wait_for(lambda topic, body, message: body is None, timeout=10)
    config = central.config
    again = Runtime(config, str(central.db.url), driver_factories(config)[0])
    restarted = utcnow()
    await again.start()
    try:
        await wait_for(lambda: not again.alarms.is_active(site_alarm_key("brewhouse_test", second.id)), timeout=15)
        # it came back standing, as the centre left it, and was cleared once the site's retained alarms were read
        occurrence = shown_alarm(again, second.id)
        assert occurrence is not None and occurrence.cleared_at is not None and occurrence.cleared_at >= restarted
    finally:
        await again.stop()


TECHNICIAN = Actor(user="tom", role="technician", station="central-test")


async def test_a_shelve_from_the_centre_shelves_the_alarm_at_the_site_and_the_centre_follows_the_site(
        site: Runtime, central: Runtime, broker: Mosquitto) -> None:
    raised = site.alarms.raise_alarm("test:hlt-hot", "process", Severity.HIGH, "HLT too hot", node="HLT")
    key = site_alarm_key("brewhouse_test", raised.id)
    await wait_for(lambda: central.alarms.is_active(key), timeout=10)
    at_site, here = site.alarms.points["test:hlt-hot"], central.alarms.points[key]
    central.alarms.shelve(key, OPERATOR, 900, "lunch")
    assert here.state.shelf is None  # not shelved here by itself: the site decides, and the centre shows its answer
    await wait_for(lambda: at_site.state.shelf == "timed", timeout=10)
    await wait_for(lambda: here.state.shelf == "timed", timeout=10)
    assert here.state.display.value == "shelved" and here.state.shelved_until is not None
    assert abs(here.state.shelved_until - at_site.state.shelved_until).total_seconds() < 0.001  # ms on the wire
    journal = await site.alarms.journal(alarm_id=raised.id, event="shelved")
    assert [(e["user"], e["comment"]) for e in journal] == [
        ("mqtt:central", "shelved at the central panel by olga: lunch")]
    sent = [a for a in await central.audit.query(user="olga") if a["action"] == "alarm.shelve"]
    assert [(a["target"], a["result"]) for a in sent] == [(key, "sent")] and "site test" in sent[0]["detail"]

    # a technician at the centre takes it out of service: the site's role for the centre's user (operator) refuses,
    # on the centre's error topic, and neither side changes
    async with Watcher(broker, "central", "bevforge/test/cmd/central/error") as errors:
        central.alarms.set_in_service(key, False, TECHNICIAN, "probe out")
        _, refused, _ = await errors.wait_for(lambda topic, body, message: True)
    assert refused["code"] == "forbidden" and refused["topic"].endswith(f"/alarms/{raised.id}/out-of-service")
    assert not at_site.state.out_of_service and not here.state.out_of_service
    await wait_for(lambda: central.health()["drivers"][0]["alarmActionsRefused"] == 1, timeout=10)
    driver = central.health()["drivers"][0]  # the centre's technician can see why
    assert driver["lastRefusal"].startswith(f"alarm {raised.id} out-of-service: forbidden")

    central.alarms.unshelve(key, OPERATOR, "back")
    await wait_for(lambda: at_site.state.shelf is None and here.state.shelf is None, timeout=10)
    assert here.state.active and not here.state.acked  # still abnormal there: it annunciates again here too


async def test_a_latched_site_alarm_is_shown_latched_and_reset_from_the_centre(site: Runtime, central: Runtime) -> None:
    # a comms alarm of the brewhouse I/O latches at the site (tests/fixtures/plant.yaml: brewhouse_io_comms)
    raised = site.alarms.raise_alarm("test:io-lost", "comms", Severity.HIGH, "I/O lost", ref="brewhouse_io")
    site.alarms.clear("test:io-lost")
    key = site_alarm_key("brewhouse_test", raised.id)
    await wait_for(lambda: key in central.alarms.points and central.alarms.points[key].state.latched, timeout=10)
    shown = shown_alarm(central, raised.id)
    assert shown is not None and shown.state == "latched"
    central.alarms.reset(shown.id, OPERATOR, "I/O back")
    await wait_for(lambda: raised.id not in site.alarms.current, timeout=10)  # reset there: over
    await wait_for(lambda: not central.alarms.points[key].state.latched, timeout=10)
    assert shown.closed  # the centre's occurrence ended with the site's
    journal = await site.alarms.journal(alarm_id=raised.id, event="reset")
    assert [(e["user"], e["comment"]) for e in journal] == [
        ("mqtt:central", "reset at the central panel by olga: I/O back")]


async def test_an_action_on_a_site_alarm_while_the_site_is_away_is_refused_saying_so(
        site: Runtime, central: Runtime) -> None:
    from bevforge.errors import Unavailable

    raised = site.alarms.raise_alarm("test:bk-dry", "process", Severity.MEDIUM, "BK dry", node="BK")
    key = site_alarm_key("brewhouse_test", raised.id)
    await wait_for(lambda: central.alarms.is_active(key), timeout=10)
    await site.stop()  # its goodbye: <root>/status offline
    await wait_for(lambda: central.plant.device_online["brewhouse_test"] is False, timeout=10)
    with pytest.raises(Unavailable) as refused:
        central.alarms.shelve(key, OPERATOR, 900, "lunch")
    assert refused.value.code == "site_unreachable"
    assert "site test cannot be reached now (site test is offline)" in refused.value.message
    assert central.alarms.points[key].state.shelf is None  # nothing changed here either
    audited = [a for a in await central.audit.query(user="olga") if a["action"] == "alarm.shelve"]
    assert [(a["target"], a["result"]) for a in audited] == [(key, "refused")]


async def test_the_centre_s_rest_routes_send_a_site_alarm_s_shelve_to_the_site_and_answer_503_when_it_is_away(
        site: Runtime, central: Runtime) -> None:
    from tests.support.server import LiveServer, free_port

    raised = site.alarms.raise_alarm("test:mlt-cold", "process", Severity.HIGH, "MLT too cold", node="HLT")
    key = site_alarm_key("brewhouse_test", raised.id)
    await wait_for(lambda: central.alarms.is_active(key), timeout=10)
    live = LiveServer(central, free_port(), manage_runtime=False)
    await live.start()
    try:
        answer = await live.http.post(f"/api/os/alarms/definitions/{key}/shelve", json={"durationS": 900})
        assert answer.status_code == 200, answer.text
        assert answer.json()["remote"] is True and answer.json()["ruleId"] == key
        await wait_for(lambda: site.alarms.points["test:mlt-cold"].state.shelf == "timed", timeout=10)
        await wait_for(lambda: central.alarms.points[key].state.shelf == "timed", timeout=10)
        await site.stop()
        await wait_for(lambda: central.plant.device_online["brewhouse_test"] is False, timeout=10)
        answer = await live.http.post(f"/api/os/alarms/definitions/{key}/unshelve", json={"comment": "back"})
        assert answer.status_code == 503 and answer.json()["error"] == "site_unreachable"
        assert "cannot be reached now" in answer.json()["message"]
        assert central.alarms.points[key].state.shelf == "timed"  # as the site left it
    finally:
        await live.stop()


async def final(runtime: Runtime, command_id: str, timeout: float = 20.0) -> Command:
    """The command once its record is final (the site answers over the broker)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        command = await runtime.commands.find(command_id)
        if command is not None and command.status.is_final:
            return command
        assert loop.time() < deadline, f"command {command_id} not final within {timeout:g} s: {command}"
        await asyncio.sleep(0.05)



@pytest.mark.parametrize(("change", "where", "says"), [
    (lambda d: d.pop("mqtt"), "devices[0].driver", "needs an mqtt: section"),
    (lambda d: d["devices"][0]["settings"].update(site="central"), "devices[0].settings.site", "own mqtt.site"),
    (lambda d: d["devices"][0]["settings"].update(site="a/b"), "devices[0].settings.site", "one MQTT topic level"),
    (lambda d: d["devices"][0]["settings"].update(port=1), "devices[0].settings.port", "unknown setting"),
    (lambda d: d["endpoints"][0].update(address={"endpoint": "hlt_setpoint"}), "endpoints[1].address.endpoint",
     "read by another endpoint"),
])
def test_a_central_config_with_a_bad_site_device_is_refused_at_its_line(broker: Mosquitto, change: Any, where: str,
                                                                        says: str) -> None:
    from bevforge.config import ConfigError
    from drivers import check

    doc = central_document(broker)
    change(doc)
    with pytest.raises(ConfigError) as refused:
        parse_config(yaml.safe_dump(doc, allow_unicode=True), "central.yaml", check)
    problem = refused.value.problems[0]
    assert problem.field == where and says in problem.message and problem.line is not None


async def test_a_central_config_made_from_the_site_s_own_file_shows_its_values(
        tmp_path: Path, broker: Mosquitto, site: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python main.py sites central-config` (bevforge/central.py) on the site's config, run as a centre."""
    from bevforge.central import ID_BLOCK, central_document
    from drivers import check

    monkeypatch.setenv("BEVFORGE_TEST_CENTRAL_PASSWORD", USERS["central"])
    mqtt = broker.settings(site="central", username="central", password_env="BEVFORGE_TEST_CENTRAL_PASSWORD")
    doc = central_document([("site.yaml", site.config)], mqtt)
    config = parse_config(yaml.safe_dump(doc, allow_unicode=True), "central.yaml", check)
    factories, _ = driver_factories(config)
    centre = Runtime(config, f"sqlite:///{tmp_path / 'made.db'}", factories)
    await centre.start()
    try:
        here = ID_BLOCK + HLT_TEMPERATURE
        await wait_for(lambda: centre.plant.states[here].quality is Quality.GOOD
                       and centre.plant.states[here].value == site.plant.states[HLT_TEMPERATURE].value, timeout=10)
        assert len(config.endpoints) == len(site.config.endpoints)
    finally:
        await centre.stop()
