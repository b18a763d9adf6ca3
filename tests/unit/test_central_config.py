"""`python main.py sites central-config`: a central panel's config made from its sites' own files
(bevforge/central.py). Built from the tests' brewhouse twice, as two sites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bevforge.central import ID_BLOCK, CentralConfigError, central_document
from bevforge.config import ConfigError, PlantConfig, parse_config
from drivers import check
from tests.support.server import ROOT, config_document

BROKER = {"host": "127.0.0.1", "port": 1883, "site": "central", "username": "central",
          "password_env": "BEVFORGE_MQTT_PASSWORD"}


def site_document(site: str, **mqtt: Any) -> dict[str, Any]:
    doc = config_document()
    doc["site"] = {"name": site.title()}
    doc["mqtt"] = {"host": "127.0.0.1", "site": site, "users": {"central": {"role": "operator"}}, **mqtt}
    return doc


def site_config(site: str, **mqtt: Any) -> PlantConfig:
    return parse_config(yaml.safe_dump(site_document(site, **mqtt), allow_unicode=True), f"{site}.yaml")


def test_two_sites_make_one_valid_central_config_with_every_endpoint_of_each() -> None:
    brewhouse, cellar = site_config("brewhouse"), site_config("cellar")
    doc = central_document([("brewhouse.yaml", brewhouse), ("cellar.yaml", cellar)], BROKER)
    central = parse_config(yaml.safe_dump(doc, allow_unicode=True), "central.yaml", check)  # the drivers' checks too

    assert [d.id for d in central.devices] == ["site_brewhouse", "site_cellar"]
    assert {d.driver for d in central.devices} == {"site"} and central.mqtt is not None
    assert len(central.endpoints) == len(brewhouse.endpoints) + len(cellar.endpoints)
    hlt = central.endpoint(ID_BLOCK + 10)
    assert hlt.name == "brewhouse_hlt_temperature" and hlt.node == "brewhouse_HLT"
    assert hlt.address == {"endpoint": "hlt_temperature", "node": "HLT"} and hlt.device == "site_brewhouse"
    assert central.endpoint(2 * ID_BLOCK + 10).address["endpoint"] == "hlt_temperature"
    setpoint, original = central.endpoint(ID_BLOCK + 12), brewhouse.endpoint(12)
    assert (setpoint.writable, setpoint.range, setpoint.tolerance) == (True, original.range, original.tolerance)
    speed = next(e for e in brewhouse.endpoints if e.safe_value == 0 and e.safe_value is not False)
    assert central.endpoint(ID_BLOCK + speed.id).safe_value == 0  # a numeric safe value of 0 is kept
    heater = central.endpoint(ID_BLOCK + 31)
    assert heater.safe_value is False and heater.critical is brewhouse.endpoint(31).critical
    # a steady value is published again every telemetry_refresh_s (10 s): never stale between two of them
    assert all((e.stale_after_s or 0) >= 3 * brewhouse.realtime.telemetry_refresh_s for e in central.endpoints)
    assert not central.interlocks and not central.alarms and not central.controllers  # the sites run their own
    assert {t.node for t in central.tiles} <= {n.id for n in central.nodes}
    assert len(central.tiles) == len(brewhouse.tiles) + len(cellar.tiles)


def test_a_site_that_forwards_its_history_is_stored_from_what_it_forwards() -> None:
    brewhouse, cellar = site_config("brewhouse", forward={}), site_config("cellar")
    doc = central_document([("brewhouse.yaml", brewhouse), ("cellar.yaml", cellar)], BROKER)
    central = parse_config(yaml.safe_dump(doc, allow_unicode=True), "central.yaml", check)
    assert {d.id: d.history for d in central.devices} == {"site_brewhouse": "forwarded", "site_cellar": "recorded"}


def test_only_a_site_device_takes_forwarded_history() -> None:
    doc = config_document()
    doc["devices"][0]["history"] = "forwarded"
    with pytest.raises(ConfigError, match="history: forwarded is for driver: site"):
        parse_config(yaml.safe_dump(doc, allow_unicode=True), "plant.yaml")


@pytest.mark.parametrize(("sites", "says"), [
    ([("a.yaml", "brewhouse", {}), ("b.yaml", "brewhouse", {})], "also a.yaml's"),
    ([("a.yaml", "central", {})], "the centre's own"),
    ([("a.yaml", "brewhouse", {"topic_prefix": "plant"})], "differs from the centre's"),
])
def test_sites_that_cannot_be_joined_are_refused_with_the_file(sites: list[Any], says: str) -> None:
    with pytest.raises(CentralConfigError) as refused:
        central_document([(name, site_config(site, **mqtt)) for name, site, mqtt in sites], BROKER)
    assert says in str(refused.value) and sites[-1][0] in str(refused.value)


def test_a_site_without_mqtt_is_refused_by_the_command_naming_its_file(tmp_path: Path) -> None:
    good, bare = tmp_path / "brewhouse.yaml", tmp_path / "bare.yaml"
    good.write_text(yaml.safe_dump(site_document("brewhouse"), allow_unicode=True), encoding="utf-8")
    bare.write_text(yaml.safe_dump(config_document(), allow_unicode=True), encoding="utf-8")
    out = tmp_path / "central.yaml"

    made = subprocess.run([sys.executable, "main.py", "sites", "central-config", str(good), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert parse_config(out.read_text(encoding="utf-8"), str(out), check).devices[0].driver == "site"

    refused = subprocess.run([sys.executable, "main.py", "sites", "central-config", str(good), str(bare)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and refused.stdout == ""
    assert f"{bare}: the site has no mqtt: section" in refused.stderr
