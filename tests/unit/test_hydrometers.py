"""The hydrometer bodies, unit conversions and the `ispindel` / `tilt` drivers' settings checks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bevforge.config import ConfigError, load_config
from bevforge.errors import Invalid, Malformed
from bevforge.integrations import hydrometers as h
from drivers import check
from tests.support.server import config_document


@pytest.mark.parametrize(("sg", "plato"), [(1.000, 0.0), (1.040, 10.0), (1.048, 11.9), (1.060, 14.7),
                                           (1.080, 19.3), (1.100, 23.8)])
def test_gravity_conversions_agree_with_the_asbc_table(sg: float, plato: float) -> None:
    assert h.convert_gravity(sg, "SG", "°P") == pytest.approx(plato, abs=0.1)
    assert h.convert_gravity(plato, "°P", "SG") == pytest.approx(sg, abs=0.0006)
    assert h.convert_gravity(sg, "SG", "SG") == sg


@pytest.mark.parametrize(("value", "unit", "to", "expected"), [
    (20.0, "°C", "°F", 68.0), (68.0, "°F", "°C", 20.0), (293.15, "K", "°C", 20.0), (-40.0, "°C", "°F", -40.0),
    (18.5, "°C", "°C", 18.5)])
def test_temperature_conversions(value: float, unit: str, to: str, expected: float) -> None:
    assert h.convert_temperature(value, unit, to) == pytest.approx(expected)


def test_ispindel_body_and_its_field_errors() -> None:
    body = {"name": "iSpindel001", "ID": 1, "token": "x", "angle": 50.0, "temperature": 68.0, "temp_units": "F",
            "battery": 4.1, "gravity": 12.0, "interval": 900, "RSSI": -60}
    sample = h.parse_ispindel(body, "°P")
    assert sample.value("gravity", "SG") == pytest.approx(1.0484, abs=0.0005)
    assert sample.value("temperature", "°C") == pytest.approx(20.0)
    assert (sample.value("battery", "V"), sample.value("angle", "°"), sample.value("rssi", "dBm")) == (4.1, 50.0, -60)
    with pytest.raises(Malformed) as not_object:
        h.parse_ispindel([body], "SG")
    assert not_object.value.field == "body"
    for field, value in (("angle", None), ("battery", "full"), ("gravity", float("inf")), ("ID", "one"),
                         ("interval", True), ("name", 7), ("gravity", 1e300), ("temperature", -1e300),
                         ("angle", 720)):
        broken = {**body, field: value}
        if value is None:
            del broken[field]
        with pytest.raises(Invalid) as refused:
            h.parse_ispindel(broken, "SG")
        assert refused.value.field == field


def test_tilt_body_reads_form_text_and_checks_the_colour() -> None:
    sample = h.parse_tilt({"Color": "ORANGE:f9:15:82:6f:de:27", "SG": "1.050", "Temp": "64.4", "Timepoint": "45988.4"},
                          "ORANGE", "SG", "°F")
    assert sample.value("gravity", "°P") == pytest.approx(12.39, abs=0.05)
    assert sample.value("temperature", "°C") == pytest.approx(18.0)
    for broken, field in (({"SG": "1.050", "Temp": "64"}, "Color"),
                          ({"Color": "RED", "SG": "heavy", "Temp": "64"}, "SG"),
                          ({"Color": "RED", "SG": "1.05"}, "Temp"),
                          ({"Color": "RED", "SG": "1.05", "Temp": "64", "Timepoint": "-3"}, "Timepoint"),
                          ({"Color": "RED", "SG": "1.05", "Temp": "64", "Beer": 5}, "Beer")):
        with pytest.raises(Invalid) as refused:
            h.parse_tilt(broken, "RED", "SG", "°F")
        assert refused.value.field == field


def test_token_comparison() -> None:
    assert h.token_matches("abcdefghijklmnop", "abcdefghijklmnop")
    assert not h.token_matches("abcdefghijklmnoq", "abcdefghijklmnop")
    assert not h.token_matches("é\udcff", "abcdefghijklmnop")  # any path text, never an exception


def _with(device: dict[str, Any], *endpoints: dict[str, Any]) -> dict[str, Any]:
    doc = config_document()
    doc["devices"].append(device)
    doc["endpoints"] += list(endpoints)
    return doc


GOOD_GRAVITY = {"id": 900, "name": "fv1_gravity", "node": "FV1", "device": "hydro", "kind": "gravity", "unit": "SG",
                "poll_interval_s": 900, "address": {"reading": "gravity"}}


@pytest.mark.parametrize(("device", "endpoint", "field"), [
    ({"settings": {}}, GOOD_GRAVITY, "settings.token_env"),
    ({"settings": {"token_env": "T", "token_file": "/t"}}, GOOD_GRAVITY, "settings.token_env"),
    ({"settings": {"token_env": "T", "gravity_unit": "brix"}}, GOOD_GRAVITY, "settings.gravity_unit"),
    ({"settings": {"token_env": "T", "token": "in-the-file"}}, GOOD_GRAVITY, "settings.token"),
    ({"driver": "tilt", "settings": {"token_env": "T"}}, GOOD_GRAVITY, "settings.colour"),
    ({"settings": {"token_env": "T"}}, {**GOOD_GRAVITY, "unit": "°Bx"}, "unit"),
    ({"settings": {"token_env": "T"}}, {**GOOD_GRAVITY, "poll_interval_s": 1}, "poll_interval_s"),
    ({"settings": {"token_env": "T"}}, {**GOOD_GRAVITY, "address": {"reading": "colour"}}, "address.reading"),
    ({"driver": "tilt", "settings": {"token_env": "T", "colour": "RED"}},
     {**GOOD_GRAVITY, "kind": "status", "unit": "V", "address": {"reading": "battery"}}, "address.reading"),
])
def test_bad_hydrometer_settings_are_named_at_their_line(tmp_path: Path, device: dict[str, Any],
                                                         endpoint: dict[str, Any], field: str) -> None:
    doc = _with({"id": "hydro", "driver": "ispindel", **device}, endpoint)
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path, check)
    problems = [p for p in refused.value.problems if p.field.endswith(field)]
    assert problems and all(p.line for p in problems), refused.value


def test_a_good_hydrometer_config_passes_the_check(tmp_path: Path) -> None:
    doc = _with({"id": "hydro", "driver": "tilt", "settings": {"token_file": "/run/secrets/tilt", "colour": "red",
                                                               "temperature_unit": "°C"}}, GOOD_GRAVITY)
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    assert load_config(path, check).endpoint(900).kind == "gravity"


_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=4),
                     max_leaves=10)
_fields = st.sampled_from(["name", "ID", "token", "angle", "temperature", "temp_units", "battery", "gravity",
                           "interval", "RSSI", "Color", "SG", "Temp", "Timepoint", "Beer", "Comment"])


@settings(max_examples=300, deadline=None)
@given(body=_json | st.dictionaries(_fields, _json | st.floats() | st.sampled_from([1e300, -1e300, "1e300", 1e12])
                                    | st.text(max_size=8), max_size=10))
def test_any_body_is_read_or_refused_by_name(body: Any) -> None:
    """Whatever a device (or anyone) posts, the answer is a sample or a typed error naming a field: never a crash."""
    for parse in (lambda: h.parse_ispindel(body, "SG"), lambda: h.parse_tilt(body, "RED", "SG", "°F")):
        try:
            sample = parse()
        except (Invalid, Malformed) as exc:
            assert exc.field
        else:
            for reading in h.READINGS:
                value = sample.value(reading, {"gravity": "°P", "temperature": "°C"}.get(reading, ""))
                assert value is None or math.isfinite(value)
