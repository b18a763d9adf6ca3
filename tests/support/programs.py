"""The fixture brewhouse with program units, for the recipe tests (unit, integration and screens).

A recipe's brew day is generated from what the unit's templates show (docs/config.md "programs"):
the mash and kettle controllers, the run-off pump and valves, the chill endpoint. So the tests give
the fixture brewhouse (tests/fixtures/plant.yaml plus the RIMS and kettle loops of
tests/support/controllers.py) a `brewhouse` unit with one template, `BREW_DAY`, that shows them —
the run-off is Pump 1 (23) with V1 (22), the chill reads the kettle probe (30) — and, for a
fermentation profile, FV1's glycol valve as a fermenter loop in an `fv1` unit. None of this is the
shipped config.yaml: tests/integration/test_shipped_sample.py checks the examples against that.
"""

from __future__ import annotations

from typing import Any

from bevforge.config import PlantConfig
from tests.support.controllers import KETTLE, RIMS, controller_config
from tests.support.server import ROOT

EXAMPLES = ROOT / "examples" / "recipes"

BREW_DAY: dict[str, Any] = {"id": "brew_day", "name": "Brew day", "unit": "brewhouse", "steps": [
    {"type": "hold", "name": "Rest", "controller": "mlt_rims", "target_c": 66, "minutes": 60},
    {"type": "transfer", "name": "Run off", "pump": 23, "valves": [22], "message": "Confirm when the tun is empty"},
    {"type": "boil", "name": "Boil", "controller": "bk_element", "minutes": 60, "boil_c": 99},
    {"type": "chill", "name": "Chill", "endpoint": 30, "below_c": 22, "controller": "bk_element"},
]}

FERMENTER: dict[str, Any] = {  # FV1's glycol valve on a hysteresis loop: a fermenter's controller
    "id": "fv1_temperature", "name": "FV1", "node": "FV1", "kind": "hysteresis", "input": 50, "output": 51,
    "setpoint": {"id": 150, "name": "fv1_setpoint", "min": 0, "max": 30, "default": 18},
    "period_s": 60, "safety": {"over_temperature_c": None, "runaway_minutes": 120}, "resume": "auto",
}


def example(name: str) -> str:
    """One of the shipped example recipes (examples/recipes/), as its text."""
    return (EXAMPLES / name).read_text(encoding="utf-8")


def with_brewhouse(doc: dict[str, Any]) -> None:
    """A config-document adjustment: the `brewhouse` unit (the RIMS and kettle loops) and its BREW_DAY template."""
    doc["programs"] = {"units": [{"id": "brewhouse", "name": "Brewhouse", "controllers": ["mlt_rims", "bk_element"]}],
                       "templates": [BREW_DAY], "save_every_s": 10}


def with_fv1_fermenter(doc: dict[str, Any]) -> None:
    """A config-document adjustment (after `with_brewhouse`): FV1's loop and an `fv1` fermenter unit on it."""
    doc["controllers"].append(dict(FERMENTER))
    doc["programs"]["units"].append({"id": "fv1", "name": "FV1", "kind": "fermenter",
                                     "controllers": [FERMENTER["id"]]})


def with_kettle_fermenter(doc: dict[str, Any]) -> None:
    """The kettle loop as a fermenter unit (its setpoint range 20…100 °C takes a quick warm profile)."""
    doc["programs"] = {"units": [{"id": "kettle", "name": "Kettle (as a fermenter)", "kind": "fermenter",
                                  "controllers": ["bk_element"]}], "save_every_s": 10}


def recipe_config(*more: Any) -> PlantConfig:
    """The fixture brewhouse with the RIMS and kettle loops and the `brewhouse` unit, then each of `more`."""
    def adjust(doc: dict[str, Any]) -> None:
        for change in (with_brewhouse, *more):
            change(doc)
    return controller_config([dict(RIMS), dict(KETTLE)], adjust=adjust)
