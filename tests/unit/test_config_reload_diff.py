"""`bevforge.reload.compare`: what a reload would change, and which edits need a restart (pure, no plant)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import yaml

from bevforge.config import PlantConfig, parse_config
from bevforge.reload import compare
from tests.support.controllers import MLT_ELEMENT, with_controllers
from tests.support.server import brewhouse_document

BASE = brewhouse_document(with_controllers())


def parsed(change: Callable[[dict[str, Any]], None] | None = None) -> PlantConfig:
    doc = copy.deepcopy(BASE)
    if change is not None:
        change(doc)
    return parse_config(yaml.safe_dump(doc, allow_unicode=True), "plant.yaml")


def endpoint(doc: dict[str, Any], eid: int) -> dict[str, Any]:
    return next(e for e in doc["endpoints"] if e["id"] == eid)


def test_the_same_file_changes_nothing() -> None:
    assert compare(parsed(), parsed()).empty


def test_a_tile_change_is_live_and_touches_no_device() -> None:
    diff = compare(parsed(), parsed(lambda d: d["tiles"][0].update(title="HLT")))
    assert diff.needs_restart == [] and diff.devices_changed == []
    assert diff.summary() == {"tiles": {"changed": ["hlt"]}}


def test_an_endpoint_address_change_restarts_only_its_device() -> None:
    diff = compare(parsed(), parsed(lambda d: endpoint(d, 14)["address"].update(scale=0.2)))
    assert diff.endpoints_changed == [14] and diff.devices_changed == ["brewhouse_io"]
    assert diff.needs_restart == []


def test_simulator_ports_need_a_restart_named_by_key() -> None:
    diff = compare(parsed(), parsed(lambda d: d["simulator"].update(modbus_port=d["simulator"]["modbus_port"] + 1)))
    assert "simulator.modbus_port" in diff.needs_restart


def test_a_controller_change_is_live_but_an_endpoint_a_running_loop_uses_is_not() -> None:
    diff = compare(parsed(), parsed(lambda d: d["controllers"][0]["tuning"].update(kp=50)))
    assert diff.needs_restart == [] and diff.summary() == {"controllers": {"changed": ["mlt_rims"]}}
    diff = compare(parsed(), parsed(lambda d: endpoint(d, MLT_ELEMENT).update(label="RIMS element")))
    assert diff.needs_restart == [f"endpoints[id={MLT_ELEMENT}] (used by controller mlt_rims)"]


def test_power_and_the_loops_it_budgets_need_a_restart() -> None:
    budget = {"limit_w": 5000, "elements": [{"output": MLT_ELEMENT, "watts": 3000}]}
    base = parsed(lambda d: d.update(power=budget))
    diff = compare(base, parsed(lambda d: d.update(power={**budget, "limit_w": 6000})))
    assert diff.needs_restart == ["power.limit_w"]
    diff = compare(base, parsed(lambda d: (d.update(power=budget), d["controllers"][0]["tuning"].update(kp=5))))
    assert diff.needs_restart == ["controllers[id=mlt_rims] (drives an output in power.elements)"]


def test_auth_and_realtime_need_a_restart() -> None:
    diff = compare(parsed(), parsed(lambda d: d.update(auth={"mode": "required"}, realtime={"queue_limit": 500})))
    assert diff.needs_restart == ["auth.mode", "realtime.queue_limit"]


def test_a_programs_change_needs_a_restart() -> None:
    """A running program keeps the template it started with: an edit of `programs:` is refused by name."""
    def programs(minutes: int) -> Callable[[dict[str, Any]], None]:
        def add(doc: dict[str, Any]) -> None:
            doc["programs"] = {
                "units": [{"id": "brewhouse", "name": "Brewhouse", "kind": "brewhouse", "controllers": ["mlt_rims"]}],
                "templates": [{"id": "rest", "name": "Rest", "unit": "brewhouse", "steps": [
                    {"type": "hold", "name": "Rest", "controller": "mlt_rims", "target_c": 66, "minutes": minutes}]}]}
        return add

    diff = compare(parsed(programs(60)), parsed(programs(45)))
    assert diff.needs_restart and all(key.startswith("programs") for key in diff.needs_restart), diff.needs_restart


def test_the_mqtt_section_needs_a_restart_named_by_key() -> None:
    diff = compare(parsed(), parsed(lambda d: d.update(mqtt={"host": "broker.lan", "site": "brewhouse"})))
    assert diff.needs_restart == ["mqtt"]  # added: the link is built once, at start
    with_broker = parsed(lambda d: d.update(mqtt={"host": "broker.lan", "site": "brewhouse"}))
    moved = parsed(lambda d: d.update(mqtt={"host": "broker.lan", "site": "brewhouse", "port": 8883}))
    assert compare(with_broker, moved).needs_restart == ["mqtt.port"]


def test_the_metrics_section_is_live() -> None:
    """/metrics reads `metrics:` on every scrape, so an edited allow-list or role applies without a restart."""
    diff = compare(parsed(), parsed(lambda d: d.update(metrics={"allow_from": ["10.0.0.0/24"], "role": "technician"})))
    assert diff.needs_restart == []
    assert diff.summary() == {"metrics": {"changed": ["metrics.allow_from", "metrics.role"]}}
