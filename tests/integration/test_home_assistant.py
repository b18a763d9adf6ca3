"""Home Assistant MQTT discovery end to end: a real Mosquitto, the fixture brewhouse on real Modbus, and an MQTT
client playing Home Assistant (its own broker user, the discovery prefix, its birth message, its command topics).

Every config message that reaches "Home Assistant" is checked against HA's discovery schema
(tests/support/hass_schema.py); the value and availability templates are evaluated on the state
messages that really arrive, so "unavailable" here is what Home Assistant would show.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import drivers
from bevforge.config import load_config
from bevforge.domain import Actor
from bevforge.runtime import Runtime
from tests.support import hass_schema
from tests.support.mosquitto import ROOT, Mosquitto, Watcher
from tests.support.postgres import test_db_url
from tests.support.server import brewhouse_document, wait_for, write_plant

PREFIX = "homeassistant"
NODE = "bevforge_test"  # <topic_prefix>_<site>
CONFIGS = f"{PREFIX}/+/{NODE}/+/config"  # what "Home Assistant" watches here (of its prefix: this site's configs)
USERS = {"bevforge": "plant-secret-1", "ha": "ha-pw"}
# Home Assistant commands the brewhouse (HLT, MLT, BK) as an operator; the cellar (FV1, FV2) only shows there
MQTT_USERS = {"ha": {"role": "operator", "nodes": ["HLT", "MLT", "BK"]}}
# docs/integrations.md "Home Assistant": BevForge writes its own configs and reads HA's birth; HA owns its prefix
ACL = f"""\
user bevforge
topic readwrite {ROOT}/#
topic read {PREFIX}/status
topic readwrite {PREFIX}/+/{NODE}/+/config

user ha
topic readwrite {PREFIX}/#

pattern read {ROOT}/#
pattern write {ROOT}/cmd/%u/#
"""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto"), USERS, acl=ACL)
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


class Site:
    """A runtime started from a config file (as main.py does), so a test can edit the file and reload."""

    def __init__(self, runtime: Runtime, path: Path, doc: dict[str, Any]) -> None:
        self.runtime = runtime
        self.path = path
        self.doc = doc

    async def reload(self, change: Any) -> dict[str, Any]:
        doc = copy.deepcopy(self.doc)
        change(doc)
        write_plant(self.path, doc)
        return await self.runtime.reloader.reload(Actor(user="tech", role="admin"))


async def start_site(tmp_path: Path, broker: Mosquitto) -> Site:
    def adjust(doc: dict[str, Any]) -> None:
        doc["mqtt"] = broker.settings(users=MQTT_USERS, homeassistant={"user": "ha"})

    doc = brewhouse_document(adjust)
    path = write_plant(tmp_path / "config.yaml", doc)
    config = load_config(path, drivers.check)
    factories, sim = drivers.driver_factories(config)
    runtime = Runtime(config, test_db_url(tmp_path / "bevforge.db"), factories, config_path=str(path),
                      config_check=drivers.check)
    runtime.attachments["simulator"] = sim
    await runtime.start()
    await wait_for(lambda: all(runtime.plant.device_online.values()), timeout=15)
    await wait_for(lambda: runtime.mqtt is not None and runtime.mqtt.connected, timeout=10)
    return Site(runtime, path, doc)


@pytest.fixture
async def site(tmp_path: Path, broker: Mosquitto) -> AsyncIterator[Site]:
    started = await start_site(tmp_path, broker)
    try:
        yield started
    finally:
        await started.runtime.stop()


def is_config(topic: str) -> bool:
    return topic.startswith(f"{PREFIX}/") and topic.endswith("/config") and f"/{NODE}/" in topic


async def configs(ha: Watcher, count: int, start: int = 0) -> dict[str, dict[str, Any]]:
    """The next config message of `count` different entities (from message `start`), each checked against
    HA's schema: {topic: payload}."""
    seen: dict[str, dict[str, Any]] = {}
    position = start
    while len(seen) < count:
        topic, body, message = await ha.wait_for(lambda t, b, m: is_config(t) and b is not None, start=position,
                                                 timeout=15)
        position = ha.position
        hass_schema.validate(PREFIX, topic, message.payload)
        seen[topic] = body
    return seen


def entity(found: dict[str, dict[str, Any]], endpoint_id: int) -> tuple[str, dict[str, Any]]:
    """(component, config) of one endpoint's entity."""
    for topic, body in found.items():
        if topic.endswith(f"/{NODE}/endpoint_{endpoint_id}/config"):
            return topic.split("/")[-4], body
    raise AssertionError(f"no entity for endpoint {endpoint_id}")


async def command_statuses(watch: Watcher, endpoint_id: int, start: int = 0) -> list[dict[str, Any]]:
    """Every published transition of the next command on `endpoint_id`, up to its final one."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["status"] not in ("succeeded", "failed", "blocked"):
        _, body, _ = await watch.wait_for(
            lambda t, b, m: t.startswith(f"{ROOT}/commands/") and b["endpointId"] == endpoint_id
            and (not frames or b["commandId"] == frames[0]["commandId"]),
            start=watch.position if frames else start, timeout=15)
        frames.append(body)
    return frames


async def test_every_endpoint_appears_as_a_valid_entity_of_the_right_type(site: Site, broker: Mosquitto) -> None:
    config = site.runtime.config
    bridge = site.runtime.mqtt
    assert bridge is not None and bridge.discovery is not None
    await wait_for(lambda: bridge.discovery.published >= len(config.endpoints) + 1)
    async with Watcher(broker, "ha", CONFIGS) as ha:  # an HA that starts now reads them off its prefix
        found = await configs(ha, len(config.endpoints) + 1)
        assert all(m.retain for m in ha.messages if is_config(m.topic.value))  # kept by the broker
    components = {eid: entity(found, eid)[0] for eid in config.endpoints_by_id}
    assert components[10] == "sensor" and components[13] == "binary_sensor"
    assert components[11] == "switch" and components[22] == "switch" and components[12] == "number"
    assert components[51] == "binary_sensor" and components[61] == "binary_sensor"  # not HA's nodes: read-only
    site_status = found[f"{PREFIX}/binary_sensor/{NODE}/site_status/config"]
    assert site_status["device_class"] == "connectivity" and site_status["state_topic"] == f"{ROOT}/status"


async def test_a_switch_and_a_number_set_from_home_assistant_run_the_pipeline_to_the_device(
        site: Site, broker: Mosquitto) -> None:
    sim = site.runtime.attachments["simulator"]
    async with Watcher(broker, "ha", CONFIGS) as ha, Watcher(broker, "ha", f"{ROOT}/#") as tree:
        found = await configs(ha, len(site.runtime.config.endpoints) + 1)
        _, valve = entity(found, 22)  # V1 HLT → MLT
        await tree.publish(valve["command_topic"], valve["payload_on"])  # what HA publishes for "turn on"
        frames = await command_statuses(tree, 22)
        assert [f["status"] for f in frames] == ["queued", "sent", "acked", "succeeded"]
        assert frames[-1]["user"] == "mqtt:ha" and frames[-1]["origin"] == "mqtt"
        assert sim.model.valves["v1"] is True
        _, _, message = await tree.wait_for(lambda t, b, m: t == valve["state_topic"] and b["value"] is True)
        assert hass_schema.render(valve["value_template"], message.payload) == valve["state_on"]

        _, setpoint = entity(found, 12)
        start = len(tree.messages)
        await tree.publish(setpoint["command_topic"], "63.5")  # HA's number: the value as text
        frames = await command_statuses(tree, 12, start)
        assert frames[-1]["status"] == "succeeded" and frames[-1]["actualValue"] == 63.5
        assert sim.model.vessels["hlt"].setpoint_c == 63.5
    audit = await site.runtime.audit.query(user="mqtt:ha")
    assert {a["action"] for a in audit} >= {"command.request", "command.result"}


async def test_a_switch_an_interlock_holds_is_blocked_with_the_reason_published(
        site: Site, broker: Mosquitto) -> None:
    sim = site.runtime.attachments["simulator"]
    await wait_for(lambda: site.runtime.plant.states[32].value is False)  # the BK is empty
    async with Watcher(broker, "ha", CONFIGS) as ha, Watcher(broker, "ha", f"{ROOT}/commands/+") as tree:
        found = await configs(ha, len(site.runtime.config.endpoints) + 1)
        component, heater = entity(found, 31)
        assert component == "switch"
        await tree.publish(heater["command_topic"], heater["payload_on"])
        frames = await command_statuses(tree, 31)
    assert [f["status"] for f in frames] == ["blocked"]
    assert frames[0]["reasons"][0]["id"] == "bk_heater_needs_level" and frames[0]["user"] == "mqtt:ha"
    assert sim.model.vessels["bk"].heater_enabled is False  # it never reached the device


async def test_an_endpoint_the_ha_user_may_not_write_has_no_command_topic_and_its_set_topic_is_refused(
        site: Site, broker: Mosquitto) -> None:
    sim = site.runtime.attachments["simulator"]
    before = sim.model.fermenters["fv1"].glycol_open
    async with Watcher(broker, "ha", CONFIGS) as ha, Watcher(broker, "ha", f"{ROOT}/cmd/ha/error") as errors:
        found = await configs(ha, len(site.runtime.config.endpoints) + 1)
        component, glycol = entity(found, 51)
        assert component == "binary_sensor" and "command_topic" not in glycol
        await errors.publish(f"{ROOT}/cmd/ha/FV1/fv1_glycol_valve/set", "true")  # tried anyway, by hand
        _, refused, _ = await errors.wait_for(lambda t, b, m: True)
    assert refused["code"] == "unknown_endpoint" and refused["field"] == "endpointId"  # another node's: as missing
    assert sim.model.fermenters["fv1"].glycol_open is before


async def test_availability_goes_offline_when_the_value_goes_stale_and_when_the_site_goes_away(
        tmp_path: Path, broker: Mosquitto) -> None:
    site = await start_site(tmp_path, broker)
    try:
        async with Watcher(broker, "ha", CONFIGS) as ha, Watcher(broker, "ha", f"{ROOT}/#") as tree:
            found = await configs(ha, len(site.runtime.config.endpoints) + 1)
            _, temperature = entity(found, 10)
            site_item, quality_item = temperature["availability"]
            assert temperature["availability_mode"] == "all"

            _, _, message = await tree.wait_for(lambda t, b, m: t == quality_item["topic"])
            assert hass_schema.render(quality_item["value_template"], message.payload) == "online"
            _, _, message = await tree.wait_for(lambda t, b, m: t == site_item["topic"])
            assert hass_schema.render(site_item["value_template"], message.payload) == "online"

            site.runtime.attachments["simulator"].faults_for("hlt_controller").offline = True  # the probe goes quiet
            start = len(tree.messages)
            _, body, message = await tree.wait_for(
                lambda t, b, m: t == quality_item["topic"]
                and hass_schema.render(quality_item["value_template"], m.payload) == "offline", start=start, timeout=20)
            assert body["quality"] in ("uncertain", "bad")  # stale: Home Assistant shows it unavailable

            start = len(tree.messages)
            await site.runtime.stop()  # the site goes away: its goodbye on <root>/status
            _, _, message = await tree.wait_for(lambda t, b, m: t == site_item["topic"], start=start, timeout=15)
            assert hass_schema.render(site_item["value_template"], message.payload) == "offline"
    finally:
        await site.runtime.stop()


async def test_home_assistants_birth_message_republishes_every_config(site: Site, broker: Mosquitto) -> None:
    count = len(site.runtime.config.endpoints) + 1
    async with Watcher(broker, "ha", CONFIGS) as ha:
        await configs(ha, count)
        start = len(ha.messages)
        await ha.publish(f"{PREFIX}/status", "online")  # Home Assistant (re)started: its birth message
        again = await configs(ha, count, start=start)
    assert len(again) == count


async def test_a_reload_updates_a_renamed_entity_and_removes_a_removed_one(site: Site, broker: Mosquitto) -> None:
    removed = f"{PREFIX}/sensor/{NODE}/endpoint_26/config"  # pump_1_fault
    renamed = f"{PREFIX}/sensor/{NODE}/endpoint_10/config"
    async with Watcher(broker, "ha", CONFIGS) as ha:
        await configs(ha, len(site.runtime.config.endpoints) + 1)
        start = len(ha.messages)

        def change(doc: dict[str, Any]) -> None:
            doc["endpoints"] = [e for e in doc["endpoints"] if e["id"] != 26]
            next(e for e in doc["endpoints"] if e["id"] == 10)["label"] = "HLT water temperature"

        answer = await site.reload(change)
        assert answer["status"] == "applied", answer
        _, _, message = await ha.wait_for(lambda t, b, m: t == removed, start=start)
        assert message.payload == b"" and message.retain is False  # live: the broker forwarded the removal
        _, body, message = await ha.wait_for(lambda t, b, m: t == renamed, start=start)
        hass_schema.validate(PREFIX, renamed, message.payload)
        assert body["name"] == "HLT water temperature" and body["unique_id"] == f"{NODE}_endpoint_10"
    async with Watcher(broker, "ha", CONFIGS) as late:  # an HA that starts now: no trace of endpoint 26
        found = await configs(late, len(site.runtime.config.endpoints) + 1)
        assert removed not in found and len(found) == len(site.runtime.config.endpoints) + 1


async def test_a_config_left_on_the_broker_by_an_earlier_run_is_removed_when_the_site_connects(
        tmp_path: Path, broker: Mosquitto) -> None:
    leftover = f"{PREFIX}/sensor/{NODE}/endpoint_4242/config"  # an endpoint removed while the site was stopped
    async with Watcher(broker, "bevforge", leftover) as old_site:
        assert old_site.client is not None
        await old_site.client.publish(leftover, orjson.dumps({"state_topic": "x", "unique_id": "old"}), qos=1,
                                      retain=True)
        await old_site.wait_for(lambda t, b, m: b is not None)
        site = await start_site(tmp_path, broker)
        try:
            _, _, message = await old_site.wait_for(lambda t, b, m: b is None, timeout=15)
            assert message.payload == b""
        finally:
            await site.runtime.stop()
