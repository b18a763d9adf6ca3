"""Recipe import (BeerXML 1.0 through pybeerxml, BeerJSON 1.0) and the programs a recipe makes.

Pure: the shipped examples parsed and turned into programs for the tests' own brewhouse (the fixture
plant with a `brewhouse` unit and an `fv1` fermenter unit, tests/support/programs.py); bad files give a
RecipeError naming the element. Whether the examples fit the shipped config.yaml is
tests/integration/test_shipped_sample.py's question.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bevforge.config import PlantConfig, ProgramStep
from bevforge.errors import Invalid, NotFound
from bevforge.recipes import read
from bevforge.recipes.generate import from_json, program, strike_temperature, to_json
from bevforge.recipes.model import RecipeError, UnsupportedRecipe
from tests.support.programs import example, recipe_config, with_fv1_fermenter


@pytest.fixture(scope="module")
def config() -> PlantConfig:
    return recipe_config(with_fv1_fermenter)


def unit_controllers(cfg: PlantConfig, unit: str) -> list[str]:
    return next(u.controllers for u in cfg.programs.units if u.id == unit)


def template_step(cfg: PlantConfig, unit: str, kind: str) -> ProgramStep:
    """The unit's template step of this type: what the generator copies (the run-off, the chill)."""
    return next(s for t in cfg.programs.templates if t.unit == unit for s in t.steps if s.type == kind)


def steps_of(cfg: PlantConfig, fmt: str, text: str, unit: str) -> list[dict[str, Any]]:
    return to_json(program(read(fmt, text), cfg, unit))["steps"]


# -- strike water -------------------------------------------------------------------------------------


def test_strike_temperature_matches_the_imperial_worked_example() -> None:
    # Palmer's worked example: 1.5 qt/lb, grain at 70 °F, a 154 °F rest → (0.2/1.5)(154 − 70) + 154 = 165.2 °F
    imperial_f = 0.2 / 1.5 * (154 - 70) + 154
    ratio_l_per_kg = 1.5 * 0.946352946 / 0.45359237
    metric_c = strike_temperature((154 - 32) / 1.8, (70 - 32) / 1.8, ratio_l_per_kg)
    assert imperial_f == pytest.approx(165.2)
    assert metric_c == pytest.approx((imperial_f - 32) / 1.8, abs=0.2)
    # the metric form itself: 3 L/kg, grain 20 °C, a 66 °C rest → 0.41/3 × 46 + 66 = 72.29 °C
    assert strike_temperature(66, 20, 3.0) == pytest.approx(72.2867, abs=1e-3)
    with pytest.raises(ValueError):
        strike_temperature(66, 20, 0)


# -- the examples on the tests' brewhouse ------------------------------------------------------------------


def test_the_pale_ale_makes_a_single_infusion_brew_day(config: PlantConfig) -> None:
    recipe = read("beerxml", example("pale-ale.xml"))
    assert (recipe.name, recipe.style, recipe.batch_l, recipe.grain_kg) == \
        ("BevForge Pale Ale", "American Pale Ale", 20.0, 4.8)
    mash, kettle = unit_controllers(config, "brewhouse")
    run_off, chill = template_step(config, "brewhouse", "transfer"), template_step(config, "brewhouse", "chill")
    steps = steps_of(config, "beerxml", example("pale-ale.xml"), "brewhouse")
    assert [s["type"] for s in steps] == ["heat", "prompt", "hold", "transfer", "boil", "chill"]
    assert steps[0] == {"type": "heat", "name": "Strike water (14.4 L)", "controller": mash,
                        "target_c": round(strike_temperature(66, 20, 14.4 / 4.8), 1)}
    assert steps[1]["message"] == "Add 4.80 kg grain and stir"
    assert steps[2]["target_c"] == 66 and steps[2]["minutes"] == 60 and steps[2]["controller"] == mash
    assert (steps[3]["pump"], steps[3]["valves"]) == (run_off.pump, run_off.valves)  # the template's run-off
    assert (steps[3]["pump"], steps[3]["valves"]) == (23, [22])  # Pump 1 through V1 in the fixture
    assert steps[4]["controller"] == kettle and steps[4]["minutes"] == 60
    assert steps[5]["endpoint"] == chill.endpoint and steps[5]["below_c"] == 22


def test_the_step_mash_heats_and_holds_each_rest_and_times_three_hop_additions(config: PlantConfig) -> None:
    steps = steps_of(config, "beerxml", example("step-mash-blonde.xml"), "brewhouse")
    mash = [(s["type"], s.get("target_c"), s.get("minutes")) for s in steps[2:7]]
    assert mash == [("hold", 52, 15), ("heat", 66, None), ("hold", 66, 60), ("heat", 77, None), ("hold", 77, 10)]
    assert steps[0]["target_c"] == 56.4  # 0.41/3 × (52 − 20) + 52
    boil = next(s for s in steps if s["type"] == "boil")
    assert boil["additions"] == [{"at_min": 60, "message": "Add 15 g Magnum"},
                                 {"at_min": 15, "message": "Add 25 g Saaz"},
                                 {"at_min": 5, "message": "Add 30 g Hallertau Mittelfrüh"}]


def test_the_step_mash_in_beerjson_is_the_same_brew_day_as_in_beerxml(config: PlantConfig) -> None:
    xml = steps_of(config, "beerxml", example("step-mash-blonde.xml"), "brewhouse")
    js = steps_of(config, "beerjson", example("step-mash-blonde.json"), "brewhouse")
    assert js == xml  # the sparge step of the BeerJSON mash is left to the run-off


def test_the_fermentation_profile_holds_ramps_and_crashes(config: PlantConfig) -> None:
    def profile(fmt: str, name: str) -> list[tuple[str, float | None, float]]:
        return [(s["type"], s.get("target_c", s.get("to_c")), s["days"])
                for s in steps_of(config, fmt, example(name), "fv1")]

    expected = [("hold", 18, 5), ("ramp", 21, 1), ("hold", 21, 2), ("ramp", 2, 1), ("hold", 2, 3)]
    assert profile("beerjson", "step-mash-blonde.json") == expected
    assert profile("beerxml", "step-mash-blonde.xml") == expected  # BeerXML stages: a one-day ramp between
    (fermenter,) = unit_controllers(config, "fv1")
    assert all(s["controller"] == fermenter for s in steps_of(config, "beerxml", example("pale-ale.xml"), "fv1"))


def test_beerjson_units_are_converted() -> None:
    doc = json.loads(example("step-mash-blonde.json"))
    recipe_doc = doc["beerjson"]["recipes"][0]
    recipe_doc["mash"]["mash_steps"][1]["step_temperature"] = {"unit": "F", "value": 152}
    recipe_doc["mash"]["mash_steps"][1]["step_time"] = {"unit": "hr", "value": 1}
    recipe_doc["ingredients"]["fermentable_additions"][0]["amount"] = {"unit": "lb", "value": 10}
    recipe_doc["ingredients"]["hop_additions"][0]["amount"] = {"unit": "oz", "value": 1}
    recipe_doc["mash"]["mash_steps"][0]["amount"] = {"unit": "gal", "value": 4}
    recipe_doc["batch_size"] = {"unit": "gal", "value": 5}
    recipe_doc["fermentation"]["fermentation_steps"][0]["step_time"] = {"unit": "week", "value": 1}
    recipe = read("beerjson", json.dumps(doc))
    assert recipe.mash_steps[1].temperature_c == pytest.approx(66.67, abs=0.01)
    assert recipe.mash_steps[1].minutes == 60
    assert recipe.grain_kg == pytest.approx(4.536 + 0.5, abs=0.001)
    assert recipe.hops[0].amount_g == pytest.approx(28.3, abs=0.05)
    assert recipe.mash_steps[0].infuse_l == pytest.approx(15.14, abs=0.01)
    assert recipe.batch_l == pytest.approx(18.93, abs=0.01)
    assert recipe.fermentation[0].days == 7


# -- bad files ----------------------------------------------------------------------------------------------


def xml_with(old: str, new: str) -> str:
    text = example("step-mash-blonde.xml")
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(("text", "field", "error"), [
    ("<RECIPES><RECIPE><NAME>x</NAME>", "RECIPES", RecipeError),
    ("<FOO/>", "RECIPES", RecipeError),
    ("<RECIPES></RECIPES>", "RECIPES/RECIPE", RecipeError),
    (xml_with("<STEP_TEMP>66</STEP_TEMP>", ""), "RECIPES/RECIPE[1]/MASH/MASH_STEPS/MASH_STEP[2]/STEP_TEMP",
     RecipeError),
    (xml_with("<STEP_TEMP>66</STEP_TEMP>", "<STEP_TEMP>warm</STEP_TEMP>"),
     "RECIPES/RECIPE[1]/MASH/MASH_STEPS/MASH_STEP[2]/STEP_TEMP", RecipeError),
    (xml_with("<TYPE>Temperature</TYPE>", "<TYPE>Decoction</TYPE>"),
     "RECIPES/RECIPE[1]/MASH/MASH_STEPS/MASH_STEP[2]/TYPE", UnsupportedRecipe),
    (xml_with("<VERSION>1</VERSION>", "<VERSION>2</VERSION>"), "RECIPES/RECIPE[1]/VERSION", UnsupportedRecipe),
    (xml_with("<BOIL_TIME>60</BOIL_TIME>", ""), "RECIPES/RECIPE[1]/BOIL_TIME", RecipeError),
    (xml_with("<AMOUNT>0.025</AMOUNT>", "<AMOUNT>lots</AMOUNT>"), "RECIPES/RECIPE[1]/HOPS/HOP[2]/AMOUNT",
     RecipeError),
    (xml_with("<TIME>15</TIME>", "<TIME>90</TIME>"), "RECIPES/RECIPE[1]/HOPS/HOP[2]/TIME", RecipeError),
])
def test_a_bad_beerxml_file_names_the_element(text: str, field: str, error: type[RecipeError]) -> None:
    with pytest.raises(error) as caught:
        read("beerxml", text)
    assert caught.value.field == field, caught.value.message
    assert caught.value.message


def json_with(change: Any) -> str:
    doc = json.loads(example("step-mash-blonde.json"))
    change(doc["beerjson"])
    return json.dumps(doc)


@pytest.mark.parametrize(("text", "field", "error"), [
    ("{not json", "/", RecipeError),
    (json_with(lambda d: d.update(version=2.0)), "/beerjson/version", UnsupportedRecipe),
    (json_with(lambda d: d["recipes"][0]["mash"]["mash_steps"][1].pop("step_temperature")),
     "/beerjson/recipes/0/mash/mash_steps/1/step_temperature", RecipeError),
    (json_with(lambda d: d["recipes"][0]["mash"]["mash_steps"][1]["step_temperature"].update(unit="K")),
     "/beerjson/recipes/0/mash/mash_steps/1/step_temperature/unit", RecipeError),
    (json_with(lambda d: d["recipes"][0]["mash"]["mash_steps"][1].update(type="decoction")),
     "/beerjson/recipes/0/mash/mash_steps/1/type", UnsupportedRecipe),
    (json_with(lambda d: d["recipes"][0]["ingredients"]["hop_additions"][2]["timing"].update(
        time={"unit": "min", "value": "soon"})),
     "/beerjson/recipes/0/ingredients/hop_additions/2/timing/time/value", RecipeError),
    (json_with(lambda d: d.update(recipes=[])), "/beerjson/recipes", RecipeError),
])
def test_a_bad_beerjson_file_names_the_value(text: str, field: str, error: type[RecipeError]) -> None:
    with pytest.raises(error) as caught:
        read("beerjson", text)
    assert caught.value.field == field, caught.value.message


def test_a_unit_that_lacks_what_a_step_needs_is_a_clear_error(config: PlantConfig) -> None:
    recipe = read("beerxml", example("pale-ale.xml"))
    with pytest.raises(NotFound) as unknown:
        program(recipe, config, "fv9")
    assert unknown.value.field == "unit"
    bare = config.model_copy(update={"programs": config.programs.model_copy(update={"templates": []})})
    with pytest.raises(Invalid, match="mash controller") as lacking:
        program(recipe, bare, "brewhouse")
    assert lacking.value.field == "unit"


# -- the reviewed program: the same rules as a config.yaml template --------------------------------------


def test_an_edited_program_is_checked_like_a_config_template(config: PlantConfig) -> None:
    reviewed = to_json(program(read("beerxml", example("pale-ale.xml")), config, "brewhouse"))
    reviewed["steps"][2]["minutes"] = 45
    reviewed["steps"][1]["message"] = "Add 4.8 kg grain, stir well"
    assert from_json(reviewed, config, "brewhouse").steps[2].minutes == 45

    too_hot = json.loads(json.dumps(reviewed))
    too_hot["steps"][0]["target_c"] = 95  # the MLT setpoint range is 20…80
    with pytest.raises(Invalid, match="setpoint range") as caught:
        from_json(too_hot, config, "brewhouse")
    assert caught.value.field == "steps.0.target_c"

    no_time = json.loads(json.dumps(reviewed))
    no_time["steps"][2].pop("minutes")
    with pytest.raises(Invalid, match="minutes or days") as missing:
        from_json(no_time, config, "brewhouse")
    assert missing.value.field == "steps.2"

    wrong_unit = json.loads(json.dumps(reviewed))
    wrong_unit["steps"][2]["controller"] = unit_controllers(config, "fv1")[0]  # the fermenter's loop
    with pytest.raises(Invalid, match="does not belong") as foreign:
        from_json(wrong_unit, config, "brewhouse")
    assert foreign.value.field == "steps.2.controller"

    with pytest.raises(Invalid) as empty:
        from_json({"name": "x", "steps": []}, config, "brewhouse")
    assert empty.value.field == "steps"


def test_an_entity_bomb_or_an_external_entity_is_refused_not_expanded() -> None:
    levels = "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE R [<!ENTITY l0 "lol">{levels}]><RECIPES><RECIPE><NAME>&l9;</NAME>' \
           "<VERSION>1</VERSION></RECIPE></RECIPES>"
    with pytest.raises(RecipeError) as caught:
        read("beerxml", bomb)
    assert caught.value.field == "RECIPES"
    external = '<?xml version="1.0"?><!DOCTYPE R [<!ENTITY e SYSTEM "file:///etc/hostname">]>' \
               "<RECIPES><RECIPE><NAME>&e;</NAME><VERSION>1</VERSION></RECIPE></RECIPES>"
    with pytest.raises(RecipeError):
        read("beerxml", external)


def test_a_later_infusion_asks_for_its_water_before_heating_to_its_rest(config: PlantConfig) -> None:
    text = example("step-mash-blonde.xml").replace(
        "<TYPE>Temperature</TYPE>\n          <STEP_TEMP>66</STEP_TEMP>",
        "<TYPE>Infusion</TYPE>\n          <INFUSE_AMOUNT>4.0</INFUSE_AMOUNT>\n          <STEP_TEMP>66</STEP_TEMP>", 1)
    steps = steps_of(config, "beerxml", text, "brewhouse")
    assert [(s["type"], s.get("message")) for s in steps[3:5]] == [
        ("prompt", "Add 4.0 L of hot water and stir"), ("heat", None)]
    assert steps[3]["name"] == "Infusion for Saccharification"
