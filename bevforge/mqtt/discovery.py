"""Home Assistant MQTT discovery: every endpoint announced as an entity of the right type (docs/integrations.md).

Home Assistant learns an MQTT entity from a retained JSON message on
`<discovery_prefix>/<component>/<node_id>/<object_id>/config` (its MQTT integration's documented
discovery schema). BevForge already publishes each endpoint's state, retained, on its own topic
tree; this module publishes the config messages that point Home Assistant at those topics, so a
brewer sees the brewhouse there without writing any YAML:

- **what type**: a number that only reads is a `sensor` (unit, device class from the unit, state
  class `measurement`), a true/false that only reads a `binary_sensor`; an endpoint Home Assistant
  may write is a `switch` (true/false) or a `number` (min/max from the endpoint's range, step,
  box). "May write" is the endpoint's `writable` flag **and** `permissions.may_operate` for the
  MQTT user Home Assistant connects as (`mqtt.homeassistant.user`, its role and nodes from
  `mqtt.users`): anything else is announced read-only and has no command topic. Its commands go to
  BevForge's own `<root>/cmd/<user>/<node>/<endpoint>/set` topic, so they run the command pipeline
  (interlocks, readback, audit as `mqtt:<user>`) like any MQTT command (`inbox.py`).
- **availability**: an entity is available only while BevForge's link is `online` (its birth and Last
  Will on `<root>/status`) **and** the endpoint's quality is `good`; a stale or bad value shows as
  unavailable in Home Assistant, never as a live value.
- **devices**: one Home Assistant device per BevForge node (vessel, fermenter …) under one device for
  the site, which carries a connectivity sensor on `<root>/status`.

Life on the broker: the bridge runs `serve()` as one more task of each connection. It publishes every
config once connected, then follows: a live config reload (the bus's `config` event) publishes only what
changed and an **empty retained message** for an entity that is gone; Home Assistant's birth message
(`homeassistant/status` `online`) republishes everything. A retained config of ours left on the broker
from an earlier run that the config no longer has (an endpoint removed while BevForge was stopped) is
emptied when it comes back on connect. Pure message building is in `announcements()`; no decision here
about who may do what (that is permissions.py's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from bevforge import __version__, permissions
from bevforge.bus import CONFIG
from bevforge.domain import DataType, EndpointKind
from bevforge.mqtt import topics
from bevforge.tasks import cancel_if_asked

if TYPE_CHECKING:
    import aiomqtt

    from bevforge.bus import EventBus
    from bevforge.config import Endpoint, MqttHomeAssistant, MqttSettings, Node, PlantConfig
    from bevforge.domain import Actor

log = logging.getLogger(__name__)

SENSOR, BINARY_SENSOR, SWITCH, NUMBER = "sensor", "binary_sensor", "switch", "number"
COMPONENTS = (SENSOR, BINARY_SENSOR, SWITCH, NUMBER)
MANUFACTURER = "BevForge OS"
ORIGIN = {"name": MANUFACTURER, "sw_version": __version__}

# Home Assistant refuses a device class whose unit it does not know (since its 2025.7), so the class
# comes from the unit: an endpoint whose unit is none of these has none (HA shows its unit as text).
UNIT_DEVICE_CLASS: dict[str, str] = {
    **dict.fromkeys(("°C", "°F", "K"), "temperature"),
    **dict.fromkeys(("Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"), "pressure"),
    # the content of a vessel: `volume_storage` ("volume" is for a consumption counter, no `measurement`)
    **dict.fromkeys(("L", "mL", "m³", "ft³", "gal", "fl. oz."), "volume_storage"),
    **dict.fromkeys(("m³/h", "ft³/min", "L/min", "gal/min"), "volume_flow_rate"),
    **dict.fromkeys(("W", "kW"), "power"),
    **dict.fromkeys(("ms", "s", "min", "h", "d"), "duration"),
}
# what "on" means for a read-only true/false, by what the endpoint is in the brewery
BINARY_DEVICE_CLASS: dict[EndpointKind, str] = {
    EndpointKind.HEATER: "power", EndpointKind.PUMP: "running", EndpointKind.VALVE: "opening",
}
UNBOUNDED = 1e9  # a writable number without a range: HA's box takes what BevForge would (it checks nothing more)

STATE_ON, STATE_OFF, STATE_NONE = "ON", "OFF", "None"  # "None": HA's word for an unknown state
PAYLOAD_TRUE, PAYLOAD_FALSE = "true", "false"  # what the inbox reads as a bare JSON true / false
VALUE_TEMPLATE = "{{ value_json.value }}"
ON_OFF_TEMPLATE = ("{% if value_json.value is none %}None{% elif value_json.value %}ON{% else %}OFF{% endif %}")
QUALITY_TEMPLATE = "{{ 'online' if value_json.quality == 'good' else 'offline' }}"
SITE_STATUS_TEMPLATE = "{{ value_json.status }}"
ONLINE, OFFLINE = "online", "offline"


def node_id(settings: MqttSettings) -> str:
    """The discovery topic's `<node_id>` level: one per BevForge site (`<topic_prefix>_<site>`)."""
    return f"{settings.topic_prefix}_{settings.site}"


def config_topic(prefix: str, component: str, node: str, object_id: str) -> str:
    return f"{prefix}/{component}/{node}/{object_id}/config"


def own_configs(prefix: str, node: str) -> str:
    """Every config topic of this site (to find leftovers of an earlier run)."""
    return f"{prefix}/+/{node}/+/config"


def device_class_of(endpoint: Endpoint) -> str | None:
    return UNIT_DEVICE_CLASS.get(endpoint.unit)


def number_step(endpoint: Endpoint) -> float:
    """1 for an integer; for a float a tenth, finer for a narrow range (a gravity in SG: 0.001)."""
    if endpoint.data_type is DataType.INT:
        return 1.0
    if endpoint.range is None or endpoint.range.max <= endpoint.range.min:
        return 0.1
    exponent = math.floor(math.log10(endpoint.range.max - endpoint.range.min)) - 2
    return max(0.001, min(0.1, 10.0 ** exponent))


def component_of(endpoint: Endpoint, writable: bool) -> str:
    boolean = endpoint.data_type is DataType.BOOL
    if writable and (boolean or endpoint.range is None or endpoint.range.min < endpoint.range.max):
        return SWITCH if boolean else NUMBER
    return BINARY_SENSOR if boolean else SENSOR


class Ids:
    """The names of one site in Home Assistant: stable across restarts and renames (endpoint ids, node ids)."""

    def __init__(self, settings: MqttSettings) -> None:
        self.root = settings.root
        self.node = node_id(settings)

    def site_device(self) -> str:
        return self.node

    def node_device(self, node: str) -> str:
        return f"{self.node}_{node}"

    def endpoint(self, endpoint: Endpoint) -> str:
        return f"{self.node}_endpoint_{endpoint.id}"


def _availability(ids: Ids, endpoint: Endpoint) -> dict[str, Any]:
    return {
        "availability": [
            {"topic": topics.status(ids.root), "value_template": SITE_STATUS_TEMPLATE,
             "payload_available": ONLINE, "payload_not_available": OFFLINE},
            {"topic": topics.state(ids.root, endpoint.node, endpoint.name), "value_template": QUALITY_TEMPLATE,
             "payload_available": ONLINE, "payload_not_available": OFFLINE},
        ],
        "availability_mode": "all",
    }


def _device(ids: Ids, node: Node | None, node_key: str) -> dict[str, Any]:
    return {"identifiers": [ids.node_device(node_key)], "name": node.name if node is not None else node_key,
            "manufacturer": MANUFACTURER, "model": f"{node.kind if node is not None else 'node'} {node_key}",
            "sw_version": __version__, "via_device": ids.site_device()}


def endpoint_config(ids: Ids, endpoint: Endpoint, node: Node | None, writable: bool, qos: int,
                    command_user: str | None) -> tuple[str, dict[str, Any]]:
    """(component, config payload) of one endpoint."""
    component = component_of(endpoint, writable)
    body: dict[str, Any] = {
        "name": endpoint.display_name, "unique_id": ids.endpoint(endpoint),
        "state_topic": topics.state(ids.root, endpoint.node, endpoint.name), "qos": qos,
        **_availability(ids, endpoint),
        "device": _device(ids, node, endpoint.node), "origin": ORIGIN,
    }
    if component in (SWITCH, NUMBER):
        assert command_user is not None
        body["command_topic"] = (f"{ids.root}/{topics.COMMANDS_IN}/{command_user}/{endpoint.node}/"
                                 f"{endpoint.name}/{topics.SET}")
        body["retain"] = False  # a command is never kept on the broker (the inbox refuses a retained one)
    if component in (SWITCH, BINARY_SENSOR):
        body["value_template"] = ON_OFF_TEMPLATE
        body["payload_on"], body["payload_off"] = (PAYLOAD_TRUE, PAYLOAD_FALSE) if component == SWITCH \
            else (STATE_ON, STATE_OFF)
        if component == SWITCH:
            body["state_on"], body["state_off"] = STATE_ON, STATE_OFF
            body["device_class"] = "switch"
        elif (binary_class := BINARY_DEVICE_CLASS.get(endpoint.kind)) is not None:
            body["device_class"] = binary_class
        return component, body
    body["value_template"] = VALUE_TEMPLATE
    if endpoint.unit:
        body["unit_of_measurement"] = endpoint.unit
    if (device_class := device_class_of(endpoint)) is not None:
        body["device_class"] = device_class
    if component == SENSOR:
        if endpoint.kind is not EndpointKind.STATUS:  # a status word or fault code is not a measurement
            body["state_class"] = "measurement"
        return component, body
    low, high = (endpoint.range.min, endpoint.range.max) if endpoint.range is not None else (-UNBOUNDED, UNBOUNDED)
    body.update({"min": low, "max": high, "step": number_step(endpoint), "mode": "box"})
    return component, body


def site_config(ids: Ids, site_name: str, qos: int) -> dict[str, Any]:
    """The site's own device and its connectivity sensor on `<root>/status` (never unavailable itself)."""
    return {
        "name": "BevForge link", "unique_id": f"{ids.node}_status", "state_topic": topics.status(ids.root),
        "qos": qos, "value_template": SITE_STATUS_TEMPLATE, "payload_on": ONLINE, "payload_off": OFFLINE,
        "device_class": "connectivity", "entity_category": "diagnostic",
        "device": {"identifiers": [ids.site_device()], "name": site_name, "manufacturer": MANUFACTURER,
                   "model": "BevForge OS site", "sw_version": __version__},
        "origin": ORIGIN,
    }


def announcements(config: PlantConfig, settings: MqttSettings, ha: MqttHomeAssistant,
                  may_write: Callable[[Endpoint], bool]) -> dict[str, bytes]:
    """Every config message this site publishes now: {topic: JSON payload}. Pure."""
    ids = Ids(settings)
    nodes = {node.id: node for node in config.nodes}
    site_name = config.site.name
    out = {config_topic(ha.discovery_prefix, BINARY_SENSOR, ids.node, "site_status"):
           orjson.dumps(site_config(ids, site_name, settings.qos))}
    for endpoint in config.endpoints:
        writable = ha.user is not None and endpoint.writable and may_write(endpoint)
        component, body = endpoint_config(ids, endpoint, nodes.get(endpoint.node), writable, settings.qos, ha.user)
        out[config_topic(ha.discovery_prefix, component, ids.node, f"endpoint_{endpoint.id}")] = orjson.dumps(body)
    return out


class Discovery:
    """Keeps Home Assistant's picture of this site right on the broker (see the module docstring)."""

    def __init__(self, settings: MqttSettings, ha: MqttHomeAssistant, config_of: Callable[[], PlantConfig],
                 actor_of: Callable[[str], Actor], bus: EventBus) -> None:
        self.settings = settings
        self.ha = ha
        self.config_of = config_of
        self.actor_of = actor_of  # the BevForge actor an MQTT user acts as (the inbox's mqtt.users look-up)
        self.bus = bus
        self.node = node_id(settings)
        self.birth_topic = ha.birth_topic
        self.mine = own_configs(ha.discovery_prefix, self.node)
        self.published = 0
        self._on_broker: dict[str, bytes] = {}  # what this connection has published (topic → payload)
        self._dirty = asyncio.Event()
        self._republish = False

    def subscriptions(self) -> list[str]:
        """What the bridge subscribes to for discovery: Home Assistant's birth, and our own configs (leftovers)."""
        return [self.birth_topic, self.mine]

    def wanted(self) -> dict[str, bytes]:
        config = self.config_of()
        actor = self.actor_of(self.ha.user) if self.ha.user is not None else None
        return announcements(config, self.settings, self.ha, lambda e: permissions.may_operate(actor, e))

    def owns(self, topic: str) -> bool:
        if topic == self.birth_topic:
            return True
        parts = topic.split("/")
        prefix = self.ha.discovery_prefix.split("/")
        return (len(parts) == len(prefix) + 4 and parts[:len(prefix)] == prefix and parts[-1] == "config"
                and parts[len(prefix) + 1] == self.node)

    def received(self, topic: str, payload: bytes, retained: bool) -> None:
        """A message on one of `subscriptions()`: HA's birth republishes everything; a retained config of ours
        the config no longer has is marked for removal."""
        if topic == self.birth_topic:
            if payload.strip() == b"online":
                log.info("mqtt: Home Assistant is online: its discovery configs are published again")
                self._republish = True
                self._dirty.set()
            return
        if retained and payload and topic not in self._on_broker:
            self._on_broker[topic] = payload  # on the broker from before: the next sync keeps, updates or empties it
            self._dirty.set()

    def connection_started(self) -> None:
        """A new connection (before its subscriptions): nothing is known to be on the broker yet."""
        self._on_broker = {}
        self._republish = False

    async def serve(self, client: aiomqtt.Client) -> None:
        """One connection's discovery: publish everything, then follow reloads and HA's births until the link
        ends (the bridge's task group cancels it)."""
        subscriber = self.bus.subscribe(lambda e: e.type == CONFIG, limit=16, name="mqtt-discovery")
        watcher = asyncio.get_running_loop().create_task(self._watch(subscriber), name="mqtt-discovery-config")
        try:
            self._dirty.set()
            while True:
                await self._dirty.wait()
                self._dirty.clear()
                await self._sync(client)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            subscriber.close("link ended")

    async def _watch(self, subscriber: Any) -> None:
        while True:
            await subscriber.get_many()
            self._dirty.set()

    async def _sync(self, client: aiomqtt.Client) -> None:
        wanted = self.wanted()
        force, self._republish = self._republish, False
        qos = self.settings.qos
        for topic in [t for t in self._on_broker if t not in wanted]:  # gone: an empty retained message removes it
            await client.publish(topic, b"", qos=qos, retain=True)
            del self._on_broker[topic]
            self.published += 1
            cancel_if_asked()
        for topic, payload in wanted.items():
            if force or self._on_broker.get(topic) != payload:
                await client.publish(topic, payload, qos=qos, retain=True)
                self._on_broker[topic] = payload
                self.published += 1
                cancel_if_asked()
