"""The `controllers:` and `power:` sections: every mistake is named with its line and field."""

from __future__ import annotations

import pytest

from bevforge.config import ConfigError, SoftwareSetpoint, parse_config

BASE = """
nodes: [{id: MLT, name: Mash tun}, {id: FV1, name: Fermenter}]
devices: [{id: io, driver: simulator}]
endpoints:
  - {id: 20, name: mlt_temperature, node: MLT, device: io, kind: temperature, unit: "°C"}
  - {id: 21, name: mlt_volume, node: MLT, device: io, kind: volume, unit: L}
  - {id: 40, name: mlt_element, node: MLT, device: io, kind: heater, data_type: bool, writable: true, safe_value: false}
  - {id: 41, name: mlt_level, node: MLT, device: io, kind: level, data_type: bool}
  - {id: 42, name: mlt_power, node: MLT, device: io, kind: power, unit: "%", writable: true, safe_value: 0,
     range: {min: 0, max: 100}}
  - {id: 43, name: mlt_sv, node: MLT, device: io, kind: setpoint, unit: "°C", writable: true, safe_value: 20,
     range: {min: 0, max: 95}}
  - {id: 50, name: fv1_temperature, node: FV1, device: io, kind: temperature, unit: "°C"}
  - {id: 51, name: fv1_glycol, node: FV1, device: io, kind: valve, data_type: bool, writable: true, safe_value: false}
  - {id: 53, name: fv1_pad, node: FV1, device: io, kind: heater, data_type: bool, writable: true, safe_value: false}
"""

GOOD = BASE + """
controllers:
  - id: mlt_rims
    name: Mash
    node: MLT
    input: 20
    output: 40
    setpoint: {id: 140, name: mlt_setpoint, min: 20, max: 80, default: 66}
    tuning: {kp: 12, ki: 0.05}
  - id: mlt_numeric
    name: Mash (numeric)
    node: MLT
    input: 21
    output: 42
    setpoint: 43
    tuning: {kp: 1}
  - id: fv1
    name: FV1
    node: FV1
    input: 50
    output: 53
    cool_output: 51
    setpoint: {id: 150, name: fv1_setpoint, min: 0, max: 30, default: 18}
    tuning: {kp: 40, ki: 0.02, out_min: -100}
power:
  limit_w: 11040
  elements: [{output: 40, watts: 11000}]
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "plant.yaml")
    return [(p.line, p.field, p.message) for p in info.value.problems]


def test_a_good_controllers_section_is_read() -> None:
    config = parse_config(GOOD)
    assert [c.id for c in config.controllers] == ["mlt_rims", "mlt_numeric", "fv1"]
    assert isinstance(config.controllers[0].setpoint, SoftwareSetpoint)
    assert config.controllers[1].setpoint_id == 43
    assert config.controllers[2].outputs == (53, 51)
    assert config.power is not None and config.power.elements[0].watts == 11000


@pytest.mark.parametrize(("old", "new", "field", "words"), [
    ("    input: 20\n", "    input: 99\n", "controllers[0].input", "unknown endpoint id 99"),
    ("    input: 20\n", "    input: 41\n", "controllers[0].input", "not numeric"),
    ("    output: 40\n", "    output: 41\n", "controllers[0].output", "not writable"),
    ("    output: 40\n", "    output: 43\n", "controllers[0].output", "range covering 0–100"),
    ("    output: 42\n", "    output: 40\n", "controllers[1].output", "already driven by controller 'mlt_rims'"),
    ("    setpoint: 43\n", "    setpoint: 20\n", "controllers[1].setpoint", "not writable"),
    ("    cool_output: 51\n", "    cool_output: 53\n", "controllers[2].cool_output", "must differ"),
    ("out_min: -100}", "out_min: 0}", "controllers[2].tuning.out_min", "negative out_min"),
    ("{id: 140, name: mlt_setpoint", "{id: 21, name: mlt_setpoint", "controllers[0].setpoint.id", "already in use"),
    ("    node: MLT\n    input: 20", "    node: BK\n    input: 20", "controllers[0].node", "unknown node"),
    ("[{output: 40, watts: 11000}]", "[{output: 41, watts: 500}]", "power.elements[0].output", "not a controller's"),
    ("[{output: 40, watts: 11000}]", "[{output: 40, watts: 12000}]", "power.elements[0].watts", "can never fit"),
])
def test_a_broken_reference_names_the_field_and_line(old: str, new: str, field: str, words: str) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    found = problems(text)
    match = [p for p in found if p[1] == field and words in p[2]]
    assert match, found
    assert match[0][0] is not None and match[0][0] > 10


@pytest.mark.parametrize(("old", "new", "field", "words"), [
    ("    tuning: {kp: 12, ki: 0.05}\n", "", "controllers[0]", "needs tuning"),
    ("    tuning: {kp: 12, ki: 0.05}\n", "    kind: hysteresis\n    tuning: {kp: 12}\n", "controllers[0]",
     "tuning belongs to a pid"),
    ("default: 66}", "default: 90}", "controllers[0].setpoint", "outside min..max"),
    ("{kp: 12, ki: 0.05}", "{kp: 12, kq: 1}", "controllers[0].tuning.kq", "unknown key"),
    ("{kp: 12, ki: 0.05}", "{kp: -1}", "controllers[0].tuning.kp", "greater than or equal"),
])
def test_pid_and_hysteresis_settings_are_checked(old: str, new: str, field: str, words: str) -> None:
    found = problems(GOOD.replace(old, new, 1))
    assert any(p[1].startswith(field) and words in p[2] for p in found), found



def test_a_software_setpoint_becomes_an_endpoint_on_the_controller_s_node() -> None:
    config = parse_config(GOOD)
    endpoint = config.endpoint(140)
    assert endpoint.source == "software" and endpoint.node == "MLT" and endpoint.writable
    assert endpoint.range is not None and (endpoint.range.min, endpoint.range.max) == (20, 80)
    assert config.endpoint(43).source == "device"  # a device setpoint stays what it was


def test_software_endpoints_are_not_written_by_hand_and_their_names_are_unique() -> None:
    by_hand = GOOD.replace("  - {id: 50, name: fv1_temperature", "  - {id: 99, name: loose, node: MLT, "
                           "source: software, kind: setpoint, unit: \"°C\"}\n  - {id: 50, name: fv1_temperature", 1)
    assert any(p[1].endswith(".source") and "made by a controller" in p[2] for p in problems(by_hand))
    clash = GOOD.replace("name: mlt_setpoint", "name: mlt_volume", 1)
    assert any(p[1] == "controllers[0].setpoint.name" and "already in use" in p[2] for p in problems(clash))


RECORDED = GOOD.replace("    setpoint: {id: 150, name: fv1_setpoint, min: 0, max: 30, default: 18}\n",
                        "    setpoint: {id: 150, name: fv1_setpoint, min: 0, max: 30, default: 18}\n"
                        "    output_record: {id: 151, name: fv1_output}\n", 1)


def test_an_output_record_becomes_a_read_only_endpoint_in_the_loop_s_output_range() -> None:
    assert RECORDED != GOOD
    endpoint = parse_config(RECORDED).endpoint(151)
    assert endpoint.source == "software" and endpoint.node == "FV1" and not endpoint.writable
    assert endpoint.unit == "%" and endpoint.range is not None
    assert (endpoint.range.min, endpoint.range.max) == (-100, 100)
    assert endpoint.stale_after_s is not None  # refreshed by the loop, so stale if the loop stops


@pytest.mark.parametrize(("old", "new", "field"), [
    ("{id: 151, name: fv1_output}", "{id: 150, name: fv1_output}", "controllers[2].output_record.id"),
    ("{id: 151, name: fv1_output}", "{id: 20, name: fv1_output}", "controllers[2].output_record.id"),
    ("{id: 151, name: fv1_output}", "{id: 151, name: mlt_setpoint}", "controllers[2].output_record.name"),
])
def test_an_output_record_s_id_and_name_must_be_free(old: str, new: str, field: str) -> None:
    found = problems(RECORDED.replace(old, new, 1))
    assert any(p[1] == field and "already in use" in p[2] for p in found), found
