"""Home Assistant discovery messages (bevforge/mqtt/discovery.py) against HA's documented schema.

`tests/support/hass_schema.py` holds the schema, written from HA's MQTT integration; the templates
are evaluated with Jinja2 on the state frames BevForge really publishes (messages.telemetry), so an
entity's value and availability are what Home Assistant would show. The broker end to end is in
tests/integration/test_home_assistant.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from bevforge import messages, permissions
from bevforge.config import ConfigError, Endpoint, PlantConfig
from bevforge.domain import Actor, EndpointState, Quality
from bevforge.mqtt import discovery
from tests.support import hass_schema
from tests.support.server import brewhouse_config

PREFIX = "homeassistant"
HA_NODES = ["HLT", "MLT", "BK"]  # Home Assistant's MQTT user commands the brewhouse, not the cellar


def with_ha(role: str = "operator", nodes: list[str] | None = HA_NODES, user: str | None = "ha",
            **extra: Any) -> PlantConfig:
    def adjust(doc: dict[str, Any]) -> None:
        ha: dict[str, Any] = {"user": user, **extra} if user is not None else dict(extra)
        doc["mqtt"] = {"host": "127.0.0.1", "site": "test", "users": {"ha": {"role": role, "nodes": nodes}},
                       "homeassistant": ha}
    return brewhouse_config(adjust)


def announced(config: PlantConfig) -> dict[str, bytes]:
    settings = config.mqtt
    assert settings is not None and settings.homeassistant is not None
    ha = settings.homeassistant
    user = settings.users.get(ha.user) if ha.user is not None else None
    actor = None if user is None else Actor(user=f"mqtt:{ha.user}", role=user.role,
                                            nodes=None if user.nodes is None else frozenset(user.nodes))
    return discovery.announcements(config, settings, ha, lambda e: permissions.may_operate(actor, e))


def by_endpoint(messages_: dict[str, bytes]) -> dict[int, tuple[str, dict[str, Any]]]:
    out = {}
    for topic, payload in messages_.items():
        component, _, object_id = hass_schema.parse_topic(PREFIX, topic)
        if object_id.startswith("endpoint_"):
            out[int(object_id.removeprefix("endpoint_"))] = (component, orjson.loads(payload))
    return out


def state_frame(endpoint: Endpoint, value: Any, quality: Quality) -> bytes:
    state = EndpointState(endpoint_id=endpoint.id, value=value, quality=quality,
                          server_time=datetime(2026, 11, 29, 18, 0, tzinfo=UTC),
                          error=None if quality is Quality.GOOD else "no sample for 3 s")
    return orjson.dumps(messages.telemetry(endpoint, state))


def test_every_message_is_valid_against_home_assistants_schema_for_its_entity_type() -> None:
    config = with_ha()
    out = announced(config)
    assert len(out) == len(config.endpoints) + 1  # every endpoint, and the site's link sensor
    for topic, payload in out.items():
        _, node, _ = hass_schema.parse_topic(PREFIX, topic)
        assert node == "bevforge_test"
        model = hass_schema.validate(PREFIX, topic, payload)
        assert model.origin is not None and model.origin.name == "BevForge OS"
        assert model.device is not None and model.device.manufacturer == "BevForge OS"
    unique = [orjson.loads(p)["unique_id"] for p in out.values()]
    assert len(set(unique)) == len(unique)


def test_each_endpoint_is_the_entity_type_its_kind_and_the_users_role_make_it() -> None:
    entities = by_endpoint(announced(with_ha()))
    kinds = {eid: component for eid, (component, _) in entities.items()}
    assert kinds[10] == "sensor" and kinds[14] == "sensor" and kinds[26] == "sensor"  # read-only numbers
    assert kinds[13] == "binary_sensor" and kinds[25] == "binary_sensor"  # read-only true/false
    assert kinds[11] == "switch" and kinds[23] == "switch" and kinds[31] == "switch"  # writable, HA may
    assert kinds[12] == "number" and kinds[24] == "number"
    assert kinds[51] == "binary_sensor" and kinds[61] == "binary_sensor"  # writable, but FV1/FV2 are not HA's

    _, temperature = entities[10]
    assert temperature["unit_of_measurement"] == "°C" and temperature["device_class"] == "temperature"
    assert temperature["state_class"] == "measurement"
    assert temperature["state_topic"] == "bevforge/test/HLT/hlt_temperature/state"
    _, volume = entities[14]
    assert volume["device_class"] == "volume_storage" and volume["unit_of_measurement"] == "L"
    _, fault = entities[26]
    assert "state_class" not in fault and "device_class" not in fault  # a fault code is not a measurement

    _, setpoint = entities[12]
    assert (setpoint["min"], setpoint["max"], setpoint["step"], setpoint["mode"]) == (0, 99, 0.1, "box")
    assert setpoint["command_topic"] == "bevforge/test/cmd/ha/HLT/hlt_setpoint/set" and setpoint["retain"] is False
    _, speed = entities[24]
    assert (speed["min"], speed["max"], speed["unit_of_measurement"]) == (0, 100, "%") and "device_class" not in speed
    _, heater = entities[11]
    assert heater["command_topic"] == "bevforge/test/cmd/ha/HLT/hlt_heater/set"
    assert (heater["payload_on"], heater["payload_off"]) == ("true", "false")  # what the inbox reads as JSON
    _, glycol = entities[51]
    assert "command_topic" not in glycol and glycol["device_class"] == "opening"
    _, pump_running = entities[25]
    assert "device_class" not in pump_running  # a status bit: no guess at what "on" means


@pytest.mark.parametrize(("role", "nodes", "user"), [("viewer", None, "ha"), ("operator", [], "ha"),
                                                     ("operator", None, None)])
def test_without_a_writing_role_everything_is_read_only(role: str, nodes: list[str] | None,
                                                         user: str | None) -> None:
    entities = by_endpoint(announced(with_ha(role, nodes, user)))
    assert {component for component, _ in entities.values()} == {"sensor", "binary_sensor"}
    assert all("command_topic" not in body for _, body in entities.values())


def test_the_ha_user_must_be_one_of_the_mqtt_users() -> None:
    def adjust(doc: dict[str, Any]) -> None:
        doc["mqtt"] = {"host": "127.0.0.1", "site": "test", "users": {"alice": {"role": "operator"}},
                       "homeassistant": {"user": "ha"}}
    with pytest.raises(ConfigError, match=r"homeassistant\.user 'ha' is not one of mqtt\.users"):
        brewhouse_config(adjust)


def test_devices_are_the_nodes_under_the_site() -> None:
    config = with_ha()
    out = announced(config)
    site = orjson.loads(out[f"{PREFIX}/binary_sensor/bevforge_test/site_status/config"])
    assert site["device"]["identifiers"] == ["bevforge_test"] and site["device"]["name"] == config.site.name
    assert site["device_class"] == "connectivity" and site["state_topic"] == "bevforge/test/status"
    assert "availability" not in site  # the link sensor shows offline itself, never unavailable
    entities = by_endpoint(out)
    hlt = entities[10][1]["device"]
    assert hlt == {"identifiers": ["bevforge_test_HLT"], "name": "Hot liquor tank", "manufacturer": "BevForge OS",
                   "model": "vessel HLT", "sw_version": hlt["sw_version"], "via_device": "bevforge_test"}
    assert entities[50][1]["device"]["identifiers"] == ["bevforge_test_FV1"]


def test_values_and_availability_follow_the_state_frames_quality() -> None:
    config = with_ha()
    entities = by_endpoint(announced(config))
    endpoints = config.endpoints_by_id
    site_online = orjson.dumps(messages.site_status(True, config.site.name))
    site_offline = orjson.dumps(messages.site_status(False, config.site.name, "connection lost"))

    def shown(eid: int, value: Any, quality: Quality) -> tuple[str, list[str]]:
        _, body = entities[eid]
        frame = state_frame(endpoints[eid], value, quality)
        available = [hass_schema.render(item["value_template"], site_online if item["topic"].endswith("/status")
                                        else frame) for item in body["availability"]]
        return hass_schema.render(body["value_template"], frame), available

    assert shown(10, 64.2, Quality.GOOD) == ("64.2", ["online", "online"])
    assert shown(10, 64.2, Quality.UNCERTAIN)[1] == ["online", "offline"]  # stale: unavailable in HA
    assert shown(10, None, Quality.BAD) == ("None", ["online", "offline"])  # "None": HA's unknown
    assert shown(11, True, Quality.GOOD)[0] == "ON" and shown(11, False, Quality.GOOD)[0] == "OFF"
    assert shown(13, True, Quality.GOOD)[0] == "ON"
    heater = entities[11][1]
    assert (heater["state_on"], heater["state_off"]) == ("ON", "OFF")
    assert all(body["availability_mode"] == "all" for _, body in entities.values())
    site_item = entities[10][1]["availability"][0]
    assert hass_schema.render(site_item["value_template"], site_offline) == site_item["payload_not_available"]


def test_the_schema_check_refuses_what_home_assistant_would() -> None:
    good = {"state_topic": "a/b", "name": "x", "unit_of_measurement": "°C", "device_class": "temperature"}
    hass_schema.validate(PREFIX, f"{PREFIX}/sensor/n/o/config", orjson.dumps(good))
    bad = [
        ("sensor", {**good, "unit_of_measurement": "%"}),  # a unit HA does not take for the class
        ("sensor", {**good, "state_topic": "a/#/b"}),
        ("sensor", {**good, "device_class": "hotness"}),
        ("sensor", {**good, "unit_of_mesurement": "°C"}),  # misspelt: HA would ignore it silently
        ("sensor", {"name": "no state topic"}),
        ("number", {"command_topic": "a/+/set", "state_topic": "a"}),
        ("number", {"command_topic": "a/set", "min": 5, "max": 5}),
        ("switch", {"command_topic": "a/set", "device": {"name": "no identifiers"}}),
        ("switch", {"command_topic": "a/set", "value_template": "{{ value_json.value "}),
        ("binary_sensor", {"state_topic": "a", "payload_on": True}),
    ]
    for component, body in bad:
        with pytest.raises(ValidationError):
            hass_schema.validate(PREFIX, f"{PREFIX}/{component}/n/o/config", orjson.dumps(body))
    with pytest.raises(ValueError, match="no MQTT component"):
        hass_schema.parse_topic(PREFIX, f"{PREFIX}/gauge/n/o/config")


def test_a_number_step_follows_its_type_and_range() -> None:
    config = with_ha()
    setpoint = config.endpoints_by_id[12]
    assert discovery.number_step(setpoint) == 0.1
    gravity = setpoint.model_copy(update={"range": setpoint.range.model_copy(update={"min": 1.0, "max": 1.13})})
    assert discovery.number_step(gravity) == 0.001
    assert discovery.number_step(config.endpoints_by_id[26]) == 1.0  # an integer
