"""Home Assistant's MQTT discovery schema, as pydantic checks, for the tests of bevforge/mqtt/discovery.py.

Written from Home Assistant's MQTT integration (home-assistant/core, homeassistant/components/mqtt:
`schemas.py` MQTT_ENTITY_COMMON_SCHEMA / MQTT_AVAILABILITY_SCHEMA / MQTT_ENTITY_DEVICE_INFO_SCHEMA /
MQTT_ORIGIN_INFO_SCHEMA, `config.py` MQTT_RO_SCHEMA / MQTT_RW_SCHEMA, and the DISCOVERY_SCHEMA of
`sensor.py`, `binary_sensor.py`, `switch.py`, `number.py`; the device classes and their units from
`components/sensor/const.py` and `components/number/const.py`; the discovery topic from
`discovery.py` TOPIC_MATCHER) and the integration's documentation (home-assistant.io/integrations/
mqtt, sensor.mqtt, binary_sensor.mqtt, switch.mqtt, number.mqtt). Home Assistant itself is not a
dependency: these models say the same things, a little stricter where that catches our mistakes:

- an unknown key is an error here (Home Assistant drops it silently: a misspelt key would do nothing);
- a value Home Assistant would coerce (a number where it wants a string) is an error here;
- a sensor's unit must be one Home Assistant knows for its device class (a warning before HA 2025.7,
  refused since), and its state class one that device class allows (a warning in HA);
- a number's `min` must be below `max` (HA up to 2024 refused equal ones).

`render()` evaluates a value or availability template the way Home Assistant's MQTT entities do
(`value` the payload text, `value_json` the payload parsed as JSON) with Jinja2.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import jinja2
import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined)


def _template(text: str) -> str:
    try:
        _JINJA.parse(text)
    except jinja2.TemplateSyntaxError as exc:  # a template Home Assistant could not compile either
        raise ValueError(f"invalid template {text!r}: {exc}") from None
    return text


def _subscribe_topic(topic: str) -> str:
    """HA `valid_subscribe_topic`: 1..65535 UTF-8 bytes, no NUL, `+` and `#` only as whole levels, `#` last."""
    if not topic or len(topic.encode()) > 65535 or "\0" in topic:
        raise ValueError(f"invalid MQTT topic {topic!r}")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "+" in level and level != "+":
            raise ValueError(f"'+' must be a whole level: {topic!r}")
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"'#' must be the whole last level: {topic!r}")
    return topic


def _publish_topic(topic: str) -> str:
    """HA `valid_publish_topic`: a valid topic without wildcards."""
    _subscribe_topic(topic)
    if "+" in topic or "#" in topic:
        raise ValueError(f"a publish topic has no wildcards: {topic!r}")
    return topic


def _icon(icon: str) -> str:
    if not re.fullmatch(r"[-\w]+:[-\w]+", icon):
        raise ValueError(f"icon is prefix:name, not {icon!r}")
    return icon


Template = Annotated[str, AfterValidator(_template)]
SubscribeTopic = Annotated[str, AfterValidator(_subscribe_topic)]
PublishTopic = Annotated[str, AfterValidator(_publish_topic)]
Icon = Annotated[str, AfterValidator(_icon)]
NonNegative = Annotated[int, Field(ge=0)]  # HA cv.positive_int accepts 0

SENSOR_DEVICE_CLASSES = Literal[
    "absolute_humidity", "apparent_power", "aqi", "area", "atmospheric_pressure", "battery",
    "blood_glucose_concentration", "carbon_dioxide", "carbon_monoxide", "conductivity", "current", "data_rate",
    "data_size", "date", "distance", "duration", "energy", "energy_distance", "energy_storage", "enum", "frequency",
    "gas", "humidity", "illuminance", "irradiance", "moisture", "monetary", "nitrogen_dioxide", "nitrogen_monoxide",
    "nitrous_oxide", "ozone", "ph", "pm1", "pm10", "pm25", "power", "power_factor", "precipitation",
    "precipitation_intensity", "pressure", "reactive_energy", "reactive_power", "signal_strength", "sound_pressure",
    "speed", "sulphur_dioxide", "temperature", "timestamp", "volatile_organic_compounds",
    "volatile_organic_compounds_parts", "voltage", "volume", "volume_flow_rate", "volume_storage", "water", "weight",
    "wind_direction", "wind_speed",
]
NUMBER_DEVICE_CLASSES = Literal[
    "absolute_humidity", "apparent_power", "aqi", "area", "atmospheric_pressure", "battery",
    "blood_glucose_concentration", "carbon_dioxide", "carbon_monoxide", "conductivity", "current", "data_rate",
    "data_size", "distance", "duration", "energy", "energy_distance", "energy_storage", "frequency", "gas",
    "humidity", "illuminance", "irradiance", "moisture", "monetary", "nitrogen_dioxide", "nitrogen_monoxide",
    "nitrous_oxide", "ozone", "ph", "pm1", "pm10", "pm25", "power", "power_factor", "precipitation",
    "precipitation_intensity", "pressure", "reactive_energy", "reactive_power", "signal_strength", "sound_pressure",
    "speed", "sulphur_dioxide", "temperature", "volatile_organic_compounds", "volatile_organic_compounds_parts",
    "voltage", "volume", "volume_flow_rate", "volume_storage", "water", "weight", "wind_direction", "wind_speed",
]
BINARY_SENSOR_DEVICE_CLASSES = Literal[
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas", "heat",
    "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power", "presence", "problem",
    "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window",
]
SWITCH_DEVICE_CLASSES = Literal["outlet", "switch"]
STATE_CLASSES = Literal["measurement", "measurement_angle", "total", "total_increasing"]

_VOLUME = {"ft³", "CCF", "MCF", "m³", "L", "mL", "gal", "fl. oz."}
# HA's DEVICE_CLASS_UNITS for the device classes a brewhouse uses (sensor/const.py, number/const.py)
DEVICE_CLASS_UNITS: dict[str, set[str]] = {
    "temperature": {"°C", "°F", "K"},
    "pressure": {"mPa", "Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "inH₂O", "psi"},
    "volume": _VOLUME,
    "volume_storage": _VOLUME,
    "volume_flow_rate": {"m³/h", "m³/min", "m³/s", "ft³/min", "L/h", "L/min", "L/s", "gal/h", "gal/min", "gal/d",
                         "mL/s"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"},
    "duration": {"μs", "ms", "s", "min", "h", "d"},
}
# HA's DEVICE_CLASS_STATE_CLASSES for the same classes (sensor/const.py)
DEVICE_CLASS_STATE_CLASSES: dict[str, set[str]] = {
    "temperature": {"measurement"}, "pressure": {"measurement"}, "volume": {"total", "total_increasing"},
    "volume_storage": {"measurement"}, "volume_flow_rate": {"measurement"}, "power": {"measurement"},
    "duration": {"measurement", "total", "total_increasing"},
}
SUPPORTED_COMPONENTS = {"alarm_control_panel", "binary_sensor", "button", "camera", "climate", "cover",
                        "device_automation", "device_tracker", "event", "fan", "humidifier", "image", "lawn_mower",
                        "light", "lock", "notify", "number", "scene", "siren", "select", "sensor", "switch", "tag",
                        "text", "update", "vacuum", "valve", "water_heater"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class AvailabilityItem(Strict):
    topic: SubscribeTopic
    payload_available: str = "online"
    payload_not_available: str = "offline"
    value_template: Template | None = None


class DeviceInfo(Strict):
    identifiers: list[str] | str = Field(default_factory=list)
    connections: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(default_factory=list)
    manufacturer: str | None = None
    model: str | None = None
    model_id: str | None = None
    name: str | None = None
    hw_version: str | None = None
    serial_number: str | None = None
    sw_version: str | None = None
    via_device: str | None = None
    suggested_area: str | None = None
    configuration_url: str | None = None

    @model_validator(mode="after")
    def _identified(self) -> DeviceInfo:
        if not self.identifiers and not self.connections:
            raise ValueError("Device must have at least one identifying value in 'identifiers' and/or 'connections'")
        return self


class OriginInfo(Strict):
    name: str
    sw_version: str | None = None
    support_url: str | None = None


class EntityCommon(Strict):
    """MQTT_ENTITY_COMMON_SCHEMA (with the availability schema) and MQTT_BASE_SCHEMA."""

    availability_topic: SubscribeTopic | None = None
    availability_template: Template | None = None
    payload_available: str | None = None
    payload_not_available: str | None = None
    availability_mode: Literal["all", "any", "latest"] = "latest"
    availability: list[AvailabilityItem] | None = None
    device: DeviceInfo | None = None
    origin: OriginInfo | None = None
    enabled_by_default: bool = True
    entity_category: Literal["config", "diagnostic"] | None = None
    icon: Icon | None = None
    json_attributes_topic: SubscribeTopic | None = None
    json_attributes_template: Template | None = None
    object_id: str | None = None
    default_entity_id: str | None = None
    unique_id: str | None = None
    qos: Literal[0, 1, 2] = 0
    encoding: str = "utf-8"
    name: str | None = None

    @model_validator(mode="after")
    def _one_availability(self) -> EntityCommon:
        if self.availability_topic is not None and self.availability is not None:
            raise ValueError("availability_topic and availability are exclusive")
        return self


class ReadOnly(EntityCommon):
    """MQTT_RO_SCHEMA: sensor-type platforms."""

    state_topic: SubscribeTopic
    value_template: Template | None = None


class ReadWrite(EntityCommon):
    """MQTT_RW_SCHEMA: switch-type platforms."""

    command_topic: PublishTopic
    optimistic: bool = False
    retain: bool = False
    state_topic: SubscribeTopic | None = None


class Sensor(ReadOnly):
    device_class: SENSOR_DEVICE_CLASSES | None = None
    expire_after: NonNegative | None = None
    force_update: bool = False
    last_reset_value_template: Template | None = None
    options: list[str] | None = None
    suggested_display_precision: NonNegative | None = None
    state_class: STATE_CLASSES | None = None
    unit_of_measurement: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Sensor:
        if self.last_reset_value_template is not None and self.state_class != "total":
            raise ValueError("last_reset_value_template needs state class total")
        if self.options is not None:
            if not self.options or self.state_class or self.unit_of_measurement or self.device_class != "enum":
                raise ValueError("options go only with device class enum, without state class or unit")
        _unit_fits(self.device_class, self.unit_of_measurement)
        allowed = DEVICE_CLASS_STATE_CLASSES.get(self.device_class or "")
        if allowed is not None and self.state_class is not None and self.state_class not in allowed:
            raise ValueError(f"state class {self.state_class} is not one device class {self.device_class} takes")
        return self


class BinarySensor(ReadOnly):
    device_class: BINARY_SENSOR_DEVICE_CLASSES | None = None
    expire_after: NonNegative | None = None
    force_update: bool = False
    off_delay: NonNegative | None = None
    payload_on: str = "ON"
    payload_off: str = "OFF"


class Switch(ReadWrite):
    command_template: Template | None = None
    payload_on: str = "ON"
    payload_off: str = "OFF"
    state_on: str | None = None
    state_off: str | None = None
    value_template: Template | None = None
    device_class: SWITCH_DEVICE_CLASSES | None = None


class Number(ReadWrite):
    command_template: Template | None = None
    device_class: NUMBER_DEVICE_CLASSES | None = None
    max: float = 100.0
    min: float = 1.0
    mode: Literal["auto", "box", "slider"] = "auto"
    payload_reset: str = "None"
    step: Annotated[float, Field(ge=1e-3)] = 1.0
    unit_of_measurement: str | None = None
    value_template: Template | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Number:
        if self.min >= self.max:
            raise ValueError("'max' must be > 'min'")
        _unit_fits(self.device_class, self.unit_of_measurement)
        return self


def _unit_fits(device_class: str | None, unit: str | None) -> None:
    units = DEVICE_CLASS_UNITS.get(device_class or "")
    if units is not None and unit not in units:
        raise ValueError(f"unit {unit!r} is not valid with device class {device_class}")


SCHEMAS: dict[str, type[EntityCommon]] = {"sensor": Sensor, "binary_sensor": BinarySensor, "switch": Switch,
                                          "number": Number}


def parse_topic(prefix: str, topic: str) -> tuple[str, str | None, str]:
    """HA's TOPIC_MATCHER on the part after the discovery prefix → (component, node_id, object_id)."""
    assert topic.startswith(prefix + "/"), topic
    match = re.fullmatch(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config",
                         topic[len(prefix) + 1:])
    if match is None:
        raise ValueError(f"not a discovery topic: {topic!r}")
    if match["component"] not in SUPPORTED_COMPONENTS:
        raise ValueError(f"Home Assistant has no MQTT component {match['component']!r}")
    return match["component"], match["node_id"], match["object_id"]


def validate(prefix: str, topic: str, payload: bytes) -> EntityCommon:
    """A discovery message as Home Assistant would take it: its topic, a JSON object, its component's schema."""
    component, _, _ = parse_topic(prefix, topic)
    body = orjson.loads(payload)
    if not isinstance(body, dict):
        raise ValueError("a discovery payload is a JSON object")
    schema = SCHEMAS.get(component)
    if schema is None:
        raise ValueError(f"no schema here for component {component!r}")
    return schema.model_validate(body)


def render(template: str, payload: bytes) -> str:
    """A value/availability template evaluated on a received payload, as HA's MqttValueTemplate does."""
    text = payload.decode()
    variables: dict[str, Any] = {"value": text}
    try:
        variables["value_json"] = orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    return jinja2.Environment().from_string(template).render(**variables)
