"""The `brewfather:` section: Brewfather's 15-minute minimum, one URL source, streams of the right endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bevforge.config import ConfigError, load_config
from bevforge.domain import EndpointState, Quality
from bevforge.integrations.brewfather import stream_payload
from tests.support.server import config_document

GRAVITY = {"id": 900, "name": "fv1_gravity", "node": "FV1", "source": "external", "kind": "gravity", "unit": "SG"}
BRIX = {"id": 901, "name": "fv1_brix", "node": "FV1", "source": "external", "kind": "gravity", "unit": "°Bx"}


def _load(tmp_path: Path, section: dict[str, Any]) -> Any:
    doc = config_document()
    doc["endpoints"] += [GRAVITY, BRIX]
    doc["brewfather"] = section
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return load_config(path)


@pytest.mark.parametrize(("section", "field"), [
    ({"url_env": "U", "interval_s": 600, "streams": [{"name": "FV1", "temperature": 50}]}, "brewfather.interval_s"),
    ({"streams": [{"name": "FV1", "temperature": 50}]}, "brewfather"),
    ({"url_env": "U", "url_file": "/f", "streams": [{"name": "FV1", "temperature": 50}]}, "brewfather"),
    ({"url_env": "U", "streams": [{"name": "FV1"}]}, "brewfather.streams[0]"),
    ({"url_env": "U", "streams": []}, "brewfather.streams"),
    ({"url_env": "U", "streams": [{"name": "FV1", "temperature": 900}]}, "brewfather.streams[0].temperature"),
    ({"url_env": "U", "streams": [{"name": "FV1", "gravity": 50}]}, "brewfather.streams[0].gravity"),
    ({"url_env": "U", "streams": [{"name": "FV1", "gravity": 901}]}, "brewfather.streams[0].gravity"),
    ({"url_env": "U", "url": "https://log.brewfather.net/stream?id=x", "streams": [{"name": "FV1", "temperature": 50}]},
     "brewfather.url"),
    ({"url_env": "U", "streams": [{"name": "FV1", "temperature": 50}, {"name": "FV1", "gravity": 900}]},
     "brewfather.streams[1].name"),
])
def test_bad_sections_are_named_at_their_line(tmp_path: Path, section: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, section)
    assert any(p.field == field and p.line for p in refused.value.problems), refused.value


def test_payload_sends_only_good_values_in_brewfathers_units(tmp_path: Path) -> None:
    config = _load(tmp_path, {"url_file": "/run/secrets/bf", "streams": [
        {"name": "FV1", "temperature": 50, "gravity": 900, "beer": "Stout"}]})
    stream = config.brewfather.streams[0]
    states = {50: EndpointState(50, value=18.4, quality=Quality.GOOD),
              900: EndpointState(900, value=1.012, quality=Quality.GOOD)}
    assert stream_payload(stream, config, states) == {"name": "FV1", "temp": 18.4, "temp_unit": "C",
                                                      "gravity": 1.012, "gravity_unit": "G", "beer": "Stout"}
    states[900].quality = Quality.UNCERTAIN
    assert stream_payload(stream, config, states) == {"name": "FV1", "temp": 18.4, "temp_unit": "C", "beer": "Stout"}
    states[50].quality = Quality.BAD
    assert stream_payload(stream, config, states) is None
