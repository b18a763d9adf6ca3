"""config.yaml errors name file, line and field; the tests' fixture brewhouse is valid.

(The shipped sample config.yaml has its own test: tests/integration/test_shipped_sample.py.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bevforge.config import ConfigError, load_config, parse_config
from tests.support.server import PLANT_FIXTURE, ROOT

MINIMAL = """\
nodes:
  - {id: HLT, name: Hot liquor tank}
devices:
  - {id: io, driver: simulator}
endpoints:
  - id: 10
    name: hlt_temperature
    node: HLT
    device: io
    kind: temperature
    unit: "°C"
  - id: 11
    name: hlt_heater
    node: HLT
    device: io
    kind: heater
    data_type: bool
    writable: true
    safe_value: false
tiles:
  - {id: hlt, title: HLT, node: HLT, endpoints: [10, 11]}
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "plant.yaml")
    assert all(p.file == "plant.yaml" for p in info.value.problems)
    return [(p.line, p.field, p.message) for p in info.value.problems]


def test_minimal_config_is_valid() -> None:
    config = parse_config(MINIMAL)
    assert config.endpoint(11).safe_value is False
    assert config.endpoint(10).stale_after == 3.0


def test_fixture_brewhouse_is_valid() -> None:
    config = load_config(PLANT_FIXTURE)
    assert {n.id for n in config.nodes} >= {"HLT", "MLT", "BK", "FV1", "FV2"}


def test_bad_yaml_names_line() -> None:
    text = MINIMAL.replace("    kind: temperature", "    kind: [temperature")
    [(line, _field, message)] = problems(text)
    assert line is not None and 10 <= line <= 12
    assert message.startswith("YAML syntax")


def test_unknown_key_names_line_and_path() -> None:
    text = MINIMAL.replace("    unit: \"°C\"", "    unit: \"°C\"\n    colour: red")
    assert problems(text) == [(12, "endpoints[0].colour", "unknown key")]


def test_duplicate_endpoint_id() -> None:
    text = MINIMAL.replace("  - id: 11\n", "  - id: 10\n")
    assert (12, "endpoints[1].id", "duplicate id 10") in problems(text)


def test_dangling_references() -> None:
    text = MINIMAL.replace("endpoints: [10, 11]", "endpoints: [10, 99]").replace("    device: io\n    kind: heater",
                                                                               "    device: nowhere\n    kind: heater")
    found = problems(text)
    assert (15, "endpoints[1].device", "unknown device 'nowhere'") in found
    assert (21, "tiles[0].endpoints[1]", "unknown endpoint id 99") in found


def test_wrong_type_names_line() -> None:
    text = MINIMAL.replace("    writable: true", "    writable: maybe")
    [(line, field, message)] = problems(text)
    assert (line, field) == (18, "endpoints[1].writable")
    assert "boolean" in message


def test_temperature_needs_a_temperature_unit() -> None:
    text = MINIMAL.replace('    unit: "°C"', "    unit: K")
    [(line, field, message)] = problems(text)
    assert field == "endpoints[0]" and line == 6
    assert "°C or °F" in message


def test_duplicate_yaml_key_is_an_error() -> None:
    text = MINIMAL.replace("    name: hlt_heater\n", "    name: hlt_heater\n    name: other\n")
    [(line, _field, message)] = problems(text)
    assert line == 14 and "duplicate key" in message


def test_interlock_on_read_only_target() -> None:
    text = MINIMAL + ("interlocks:\n  - id: r\n    target: 10\n"
                      "    requires: [{endpoint: 11, value: true}]\n    reason: x\n")
    assert (24, "interlocks[0].target", "endpoint 10 is not writable") in problems(text)


def test_not_a_mapping() -> None:
    assert problems("- just\n- a list\n") == [(1, "", "the file must be a mapping of sections")]


def test_check_config_cli(tmp_path: Path) -> None:
    good = subprocess.run([sys.executable, "main.py", "--check-config", str(PLANT_FIXTURE)], cwd=ROOT,
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert "OK" in good.stdout
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(MINIMAL.replace("    writable: true", "    writable: maybe"), encoding="utf-8")
    bad = subprocess.run([sys.executable, "main.py", "--check-config", str(bad_file)], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert f"{bad_file}:18: endpoints[1].writable" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yaml")
    assert "cannot read" in str(info.value)


DRIVER_PROBLEMS = """\
nodes:
  - {id: HLT, name: Hot liquor tank}
devices:
  - {id: io, driver: simulator}
  - id: vfd
    driver: modbus
    settings: {host: 127.0.0.1, device_id: 300}
  - id: meter
    driver: modbus
    settings:
      host: 127.0.0.1
      baud_rate: 9600
endpoints:
  - {id: 10, name: hlt_temperature, node: HLT, device: io, kind: temperature, unit: "°C",
     address: {point: hlt.temperature}}
  - id: 20
    name: flow
    node: HLT
    device: meter
    kind: flow
    address: {table: input, address: 0, type: float32, byte_order: BADX}
  - id: 21
    name: hlt_setpoint
    node: HLT
    device: io
    kind: setpoint
    address:
      pointt: hlt.setpoint
"""


def _check_config(path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """`python main.py --check-config` on `text` written to `path`, as a technician runs it."""
    path.write_text(text, encoding="utf-8")
    return subprocess.run([sys.executable, "main.py", "--check-config", str(path)], cwd=ROOT,
                          capture_output=True, text=True)


def test_check_config_runs_the_drivers_own_checks(tmp_path: Path) -> None:
    """Device settings and endpoint addresses are the drivers' to check; --check-config runs them
    too, with file:line: field like the schema's errors, every problem in one run, exit code 2."""
    bad_file = tmp_path / "drivers.yaml"
    bad = _check_config(bad_file, DRIVER_PROBLEMS)
    assert bad.returncode == 2, bad.stderr
    assert f"{bad_file}:7: devices[1].settings.device_id: Input should be less than or equal to 247" \
        in bad.stderr
    assert f"{bad_file}:12: devices[2].settings.baud_rate: unknown key" in bad.stderr
    assert f"{bad_file}:27: endpoints[2].address.point: the simulator needs" in bad.stderr
    assert "Traceback" not in bad.stderr and "OK" not in bad.stdout


def test_check_config_reports_a_bad_address_at_its_line(tmp_path: Path) -> None:
    fixed = DRIVER_PROBLEMS.replace("device_id: 300", "device_id: 3").replace("      baud_rate: 9600\n", "")
    bad_file = tmp_path / "address.yaml"
    bad = _check_config(bad_file, fixed)
    assert bad.returncode == 2, bad.stderr
    assert f"{bad_file}:20: endpoints[1].address.byte_order: Input should be 'ABCD', 'CDAB', 'BADC' or 'DCBA'" \
        in bad.stderr
    assert f"{bad_file}:26: endpoints[2].address.point: the simulator needs" in bad.stderr
    assert "devices[" not in bad.stderr
    good = _check_config(tmp_path / "good.yaml", fixed.replace("BADX", "BADC").replace("pointt:", "point:"))
    assert good.returncode == 0, good.stderr
    assert "OK" in good.stdout


# -- reading owners and ingest limits (docs/config.md "Who feeds a reading") -----------------------

EXTERNAL = MINIMAL.replace("tiles:", """\
  - id: 12
    name: hlt_gravity
    node: HLT
    source: external
    kind: status
tiles:""")


def test_an_external_endpoint_has_no_device_and_is_the_only_ingestable_kind() -> None:
    config = parse_config(EXTERNAL)
    assert config.endpoint(12).ingestable and config.endpoint(12).device is None
    assert not config.endpoint(10).ingestable and config.endpoint(10).source == "device"


def test_every_reading_has_exactly_one_owner() -> None:
    no_owner = EXTERNAL.replace("    source: external\n", "")
    assert problems(no_owner) == [(20, "endpoints[2].device", "a polled endpoint names its device "
                                   "(or says source: external when a client feeds it)")]
    two_owners = EXTERNAL.replace("    source: external\n", "    source: external\n    device: io\n")
    assert problems(two_owners) == [(24, "endpoints[2].device", "an external endpoint has no device: one owner "
                                     "per reading (remove device, or source: external)")]
    writable = EXTERNAL.replace("    source: external\n", "    source: external\n    writable: true\n")
    assert problems(writable) == [(24, "endpoints[2].writable", "an external endpoint has no device to write to")]
    [(line, field, _message)] = problems(EXTERNAL.replace("source: external", "source: mqtt"))
    assert (line, field) == (23, "endpoints[2].source")


def test_ingest_limits_are_checked_with_their_line() -> None:
    text = MINIMAL + "ingest:\n  max_age_s: 0\n  rate_per_s: 50\n  burst: 0\n  colour: red\n"
    found = {field: line for line, field, _message in problems(text)}
    assert found == {"ingest.max_age_s": 23, "ingest.burst": 25, "ingest.colour": 26}
    config = parse_config(MINIMAL + "ingest: {max_age_s: 3600, max_ahead_s: 60, rate_per_s: 50, burst: 100}\n")
    assert (config.ingest.max_age_s, config.ingest.rate_per_s, config.ingest.burst) == (3600, 50, 100)


def test_shelve_durations_name_known_roles() -> None:
    config = parse_config(MINIMAL + "auth:\n  shelve_durations_s: {technician: [900, 86400]}\n")
    assert config.auth.shelve_durations_s == {"technician": [900.0, 86400.0]}
    assert parse_config(MINIMAL).auth.shelve_durations_s == {"operator": [900.0, 3600.0, 28800.0]}
    [(_line, field, message)] = problems(MINIMAL + "auth:\n  shelve_durations_s: {brewer: [900]}\n")
    assert field.startswith("auth.shelve_durations_s") and "unknown role 'brewer'" in message
    [(_line, field, _message)] = problems(MINIMAL + "auth:\n  shelve_durations_s: {operator: [0]}\n")
    assert field.startswith("auth.shelve_durations_s")


def test_libyaml_and_python_loaders_agree_on_values_and_lines() -> None:
    """The config is parsed with libyaml for speed; every line a problem names must be the one the
    pure Python loader finds (a technician's file:line depends on it)."""
    import yaml

    from bevforge import config as config_module

    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml: only the Python loader runs")
    text = PLANT_FIXTURE.read_text(encoding="utf-8") + "\nextra: [1, {a: 2}, [3]]\n"
    fast = config_module._FastLineLoader(text)
    fast.line_index = {}
    slow = config_module._LineLoader(text)
    slow.line_index = {}
    fast_doc, slow_doc = fast.get_single_data(), slow.get_single_data()
    assert fast_doc == slow_doc
    assert type(fast).__mro__[1] is yaml.CSafeLoader
    # ids differ between the two documents: compare the line index by walking both documents alike
    fast_lines = config_module._LineMap(fast_doc, fast.line_index)
    slow_lines = config_module._LineMap(slow_doc, slow.line_index)
    paths = [("extra", 1, "a"), ("extra", 2, 0)] + [("endpoints", i, "name") for i in range(len(slow_doc["endpoints"]))]
    assert [fast_lines.line_of(p) for p in paths] == [slow_lines.line_of(p) for p in paths]
    assert slow_lines.line_of(("extra", 1, "a")) == text.count("\n")


def test_a_problem_libyaml_finds_is_reported_with_the_python_loaders_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(MINIMAL + "tiles:\n  - {id: x}\n", "plant.yaml")  # a duplicate key, found at construction
    problem = caught.value.problems[0]
    assert problem.line == MINIMAL.count("\n") + 1 and "duplicate key 'tiles'" in problem.message
