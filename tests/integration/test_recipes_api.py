"""Recipe drafts end to end: import (service and REST), review and edit, start from a draft, and the safe
resume of a recipe's program after a restart (a real SQLite file, the simulated brewhouse on a ManualClock).

The brewhouse unit here drives the RIMS and the kettle; its one template shows the generator the run-off
(pump 23, valve 22) and the chill (endpoint 30) — tests/support/programs.py builds it on the fixture brewhouse.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from bevforge.auth import ROLES
from bevforge.clock import ManualClock
from bevforge.domain import Actor
from bevforge.errors import Conflict, Forbidden, Invalid, NotFound
from bevforge.recipes.model import RecipeError
from bevforge.runtime import Runtime
from tests.support.controllers import KETTLE, RIMS, controller_config, controller_runtime, started, step, wait_online
from tests.support.live import required
from tests.support.programs import example, recipe_config, with_kettle_fermenter
from tests.support.server import LiveServer, free_port

OPERATOR = Actor(user="olga", role="operator", station="test")
VIEWER = Actor(user="vic", role="viewer", station="test")


@pytest.fixture
async def brewhouse(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await started(controller_runtime(recipe_config(), tmp_path / "bevforge.db"))
    try:
        yield runtime
    finally:
        await runtime.stop()


# -- the service ------------------------------------------------------------------------------------------


async def test_an_imported_recipe_is_a_draft_that_starts_as_the_unit_s_program(brewhouse: Runtime) -> None:
    recipes = brewhouse.recipes
    draft = await recipes.import_recipe(OPERATOR, "beerxml", example("step-mash-blonde.xml"), "brewhouse")
    assert draft["name"] == "BevForge Step-Mash Blonde" and draft["unit"] == "brewhouse" and not draft["running"]
    assert draft["recipe"]["grain_kg"] == 5.0 and draft["createdBy"] == "olga"
    steps = draft["program"]["steps"]
    assert steps[7] == {"type": "transfer", "name": "Run off", "pump": 23, "valves": [22],
                        "message": "Confirm when the tun is empty"}
    assert len(steps[8]["additions"]) == 3
    assert [d["id"] for d in await recipes.drafts(VIEWER)] == [draft["id"]]

    reviewed = {**draft["program"], "steps": [{**s, "minutes": 20} if s.get("name") == "Protein rest" else s
                                              for s in steps]}
    edited = await recipes.edit(OPERATOR, draft["id"], reviewed)
    assert edited["program"]["steps"][2]["minutes"] == 20 and edited["editedBy"] == "olga"
    with pytest.raises(Forbidden):
        await recipes.edit(VIEWER, draft["id"], reviewed)
    answer = await recipes.start(OPERATOR, draft["id"])
    frame = answer["program"]
    assert frame["state"] == "running" and frame["templateId"] == f"recipe:{draft['id']}"
    assert frame["step"]["name"] == "Strike water (15.0 L)" and answer["draft"]["running"]
    assert brewhouse.plant.states[RIMS["setpoint"]["id"]].value == pytest.approx(56.4)
    with pytest.raises(Conflict):
        await recipes.start(OPERATOR, draft["id"])  # the unit is busy
    with pytest.raises(Conflict):
        await recipes.edit(OPERATOR, draft["id"], draft["program"])  # not while it runs
    with pytest.raises(Conflict):
        await recipes.delete(OPERATOR, draft["id"])
    await brewhouse.programs.abort(OPERATOR, "brewhouse")
    await recipes.delete(OPERATOR, draft["id"])
    assert await recipes.drafts(VIEWER) == []
    await brewhouse.db.barrier()
    program_id = f"recipe:{draft['id']}"
    for action, new in (("recipe.import", "beerxml: BevForge Step-Mash Blonde"), ("recipe.edit", 10),
                        ("recipe.start", program_id),
                        ("program.start", program_id), ("recipe.delete", None)):
        audit = await brewhouse.audit.query(action=action)
        assert len(audit) == 1 and audit[0]["user"] == "olga" and audit[0]["new"] == new, (action, audit)


async def test_a_bad_file_or_unit_stores_nothing_and_a_viewer_may_not_import(brewhouse: Runtime) -> None:
    recipes = brewhouse.recipes
    broken = example("step-mash-blonde.xml").replace("<STEP_TEMP>66</STEP_TEMP>", "", 1)
    with pytest.raises(RecipeError) as caught:
        await recipes.import_recipe(OPERATOR, "beerxml", broken, "brewhouse")
    assert caught.value.field == "RECIPES/RECIPE[1]/MASH/MASH_STEPS/MASH_STEP[2]/STEP_TEMP"
    with pytest.raises(NotFound) as unit:
        await recipes.import_recipe(OPERATOR, "beerxml", example("pale-ale.xml"), "fv1")
    assert unit.value.field == "unit"
    too_hot = example("pale-ale.xml").replace("<STEP_TEMP>66</STEP_TEMP>", "<STEP_TEMP>79</STEP_TEMP>")
    with pytest.raises(Invalid) as hot:  # strike water above the MLT's 80 °C setpoint maximum
        await recipes.import_recipe(OPERATOR, "beerxml", too_hot, "brewhouse")
    assert hot.value.field == "steps.0.target_c"
    with pytest.raises(Forbidden):
        await recipes.import_recipe(VIEWER, "beerxml", example("pale-ale.xml"), "brewhouse")
    mlt_only = Actor(user="mo", role="operator", station="test", nodes=frozenset({"MLT"}))
    with pytest.raises(Forbidden) as partial:  # the brewhouse is the MLT's and the kettle's
        await recipes.import_recipe(mlt_only, "beerxml", example("pale-ale.xml"), "brewhouse")
    assert partial.value.field == "unit"
    assert await recipes.drafts(OPERATOR) == []


async def test_a_recipe_program_comes_back_paused_at_its_step_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "bevforge.db"
    clock = ManualClock()
    runtime = await started(controller_runtime(recipe_config(), db, clock))
    try:
        draft = await runtime.recipes.import_recipe(OPERATOR, "beerjson", example("step-mash-blonde.json"),
                                                    "brewhouse")
        runtime.attachments["simulator"].model.add_liquid("mlt", 30.0, 52.0)
        await step(runtime, 60)  # the probe sees the mash
        await runtime.recipes.start(OPERATOR, draft["id"])
        await runtime.programs.skip(OPERATOR, "brewhouse")  # strike water: skipped
        await runtime.programs.skip(OPERATOR, "brewhouse")  # mash in: skipped; into the protein rest
        await step(runtime, 120)
        left = runtime.programs.units["brewhouse"].step.remaining()
        assert left is not None and 0 < left < 900, left
    finally:
        await runtime.stop()
    later = ManualClock(clock.now() + timedelta(minutes=7))
    again = await started(controller_runtime(recipe_config(), db, later))
    try:
        await step(again, 3)
        frame = again.programs.frame(again.programs.units["brewhouse"])
        assert frame["state"] == "paused" and frame["templateId"] == f"recipe:{draft['id']}", frame
        assert frame["step"]["name"] == "Protein rest" and frame["step"]["index"] == 2
        assert frame["step"]["remainingS"] == pytest.approx(left, abs=1.0)
        assert "offline 7 min" in frame["message"]
        assert len(frame["steps"]) == 10  # the whole recipe program, read back from the drafts table
        assert again.controllers.loops["mlt_rims"].mode.value == "off"
        resumed = await again.programs.resume(OPERATOR, "brewhouse")
        assert resumed["state"] == "running" and resumed["step"]["name"] == "Protein rest"
    finally:
        await again.stop()


# -- REST --------------------------------------------------------------------------------------------------


@asynccontextmanager
async def recipe_server(tmp_path: Path) -> AsyncIterator[tuple[LiveServer, dict[str, str]]]:
    live = LiveServer(controller_runtime(recipe_config(required()), tmp_path / "bevforge.db"), free_port())
    await live.start()
    try:
        await wait_online(live.runtime)
        auth = live.runtime.auth
        tokens = {role: auth.create_token(f"{role}-token", role, None, "test")[1] for role in ROLES}
        yield live, tokens
    finally:
        await live.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_import_review_edit_and_start_over_rest(tmp_path: Path) -> None:
    async with recipe_server(tmp_path) as (live, tokens):
        http, operator, viewer = live.http, bearer(tokens["operator"]), bearer(tokens["viewer"])
        body = {"unit": "brewhouse", "text": example("step-mash-blonde.json"), "filename": "step-mash-blonde.json"}
        assert (await http.post("/api/os/recipes/import", json=body, headers=viewer)).status_code == 403
        imported = await http.post("/api/os/recipes/import", json=body, headers=operator)
        assert imported.status_code == 200, imported.text
        draft = imported.json()
        assert draft["format"] == "beerjson" and draft["programId"] == f"recipe:{draft['id']}"
        xml = await http.post("/api/os/recipes/import", headers=operator,
                              json={"unit": "brewhouse", "text": example("pale-ale.xml"), "format": "beerxml"})
        assert xml.status_code == 200 and xml.json()["program"]["steps"][1]["message"] == "Add 4.80 kg grain and stir"
        listed = (await http.get("/api/os/recipes", headers=viewer)).json()
        assert [d["id"] for d in listed] == [xml.json()["id"], draft["id"]]
        one = await http.get(f"/api/os/recipes/{draft['id']}", headers=viewer)
        assert one.json()["program"] == draft["program"]
        assert (await http.get("/api/os/recipes/999", headers=viewer)).json()["field"] == "id"

        edited = json.loads(json.dumps(draft["program"]))
        edited["steps"][4]["minutes"] = 45  # a shorter saccharification rest
        edited["steps"][1]["message"] = "Add 5 kg grain, stir well"
        del edited["steps"][6]  # no mash-out rest
        put = await http.put(f"/api/os/recipes/{draft['id']}", json=edited, headers=operator)
        assert put.status_code == 200, put.text
        assert put.json()["program"]["steps"][4]["minutes"] == 45 and put.json()["editedBy"] == "token:operator-token"
        bad = json.loads(json.dumps(edited))
        bad["steps"][2]["target_c"] = 120
        refused = await http.patch(f"/api/os/recipes/{draft['id']}", json=bad, headers=operator)
        assert refused.status_code == 422 and refused.json()["field"] == "steps.2.target_c", refused.text
        wrong_key = json.loads(json.dumps(edited))
        wrong_key["steps"][0]["minutes"] = 5  # a heat step takes no minutes
        assert (await http.put(f"/api/os/recipes/{draft['id']}", json=wrong_key, headers=operator)).json()[
            "field"] == "steps.0"
        kept = (await http.get(f"/api/os/recipes/{draft['id']}", headers=viewer)).json()
        assert kept["program"]["steps"][4]["minutes"] == 45 and len(kept["program"]["steps"]) == 9

        started_ = await http.post(f"/api/os/recipes/{draft['id']}/start", headers=operator)
        assert started_.status_code == 200, started_.text
        assert started_.json()["program"]["state"] == "running"
        assert len(started_.json()["program"]["steps"]) == 9
        busy = await http.post(f"/api/os/recipes/{xml.json()['id']}/start", headers=operator)
        assert busy.status_code == 409 and busy.json()["field"] == "unit"
        assert (await http.delete(f"/api/os/recipes/{draft['id']}", headers=operator)).status_code == 409
        assert (await http.delete(f"/api/os/recipes/{xml.json()['id']}", headers=operator)).json()["deleted"]


async def test_a_bad_file_over_rest_names_the_element_and_stores_nothing(tmp_path: Path) -> None:
    async with recipe_server(tmp_path) as (live, tokens):
        http, operator = live.http, bearer(tokens["operator"])
        cases = [
            ("<RECIPES><RECIPE>", "beerxml", "RECIPES", "invalid_recipe"),
            (example("step-mash-blonde.xml").replace("<VERSION>1</VERSION>", "<VERSION>2</VERSION>", 1), "beerxml",
             "RECIPES/RECIPE[1]/VERSION", "unsupported_recipe"),
            (example("step-mash-blonde.json").replace('"type": "temperature"', '"type": "decoction"', 1), "beerjson",
             "/beerjson/recipes/0/mash/mash_steps/1/type", "unsupported_recipe"),
            (example("step-mash-blonde.json").replace('"boil_time": {"unit": "min", "value": 60}', '"boil_time": {}'),
             "beerjson", "/beerjson/recipes/0/boil/boil_time/unit", "invalid_recipe"),
        ]
        for text, fmt, field, code in cases:
            answer = await http.post("/api/os/recipes/import", headers=operator,
                                     json={"unit": "brewhouse", "text": text, "format": fmt})
            assert answer.status_code == 422, answer.text
            assert (answer.json()["field"], answer.json()["error"]) == (field, code), answer.text
        unknown = await http.post("/api/os/recipes/import", headers=operator,
                                  json={"unit": "fv9", "text": example("pale-ale.xml")})
        assert unknown.status_code == 404 and unknown.json()["field"] == "unit"
        assert (await http.get("/api/os/recipes", headers=operator)).json() == []


# -- a fermenter's recipe profile ----------------------------------------------------------------------------

WARM_PROFILE = {"beerjson": {"version": 1.0, "recipes": [{
    "name": "Warm profile", "fermentation": {"fermentation_steps": [
        {"name": "Warm up", "start_temperature": {"unit": "C", "value": 40},
         "end_temperature": {"unit": "C", "value": 60}, "step_time": {"unit": "hr", "value": 1}}]}}]}}


async def test_a_fermenter_s_recipe_profile_resumes_by_itself_on_its_schedule(tmp_path: Path) -> None:
    db = tmp_path / "bevforge.db"
    clock = ManualClock()
    config = controller_config([dict(RIMS), dict(KETTLE)], adjust=with_kettle_fermenter)
    bk_setpoint = KETTLE["setpoint"]["id"]
    runtime = await started(controller_runtime(config, db, clock))
    try:
        draft = await runtime.recipes.import_recipe(OPERATOR, "beerjson", json.dumps(WARM_PROFILE), "kettle")
        assert draft["program"]["steps"] == [{"type": "ramp", "name": "Warm up", "controller": "bk_element",
                                              "days": pytest.approx(1 / 24), "from_c": 40.0, "to_c": 60.0}]
        await runtime.recipes.start(OPERATOR, draft["id"])
        await step(runtime, 600)  # 10 of 60 min: 40 → 43.3 °C
        assert runtime.plant.states[bk_setpoint].value == pytest.approx(43.33, abs=0.1)
    finally:
        await runtime.stop()
    later = ManualClock(clock.now() + timedelta(minutes=20))
    again = await started(controller_runtime(config, db, later))
    try:
        await step(again, 3)
        frame = again.programs.frame(again.programs.units["kettle"])
        assert frame["state"] == "running" and frame["templateId"] == f"recipe:{draft['id']}", frame
        assert "resumed on its schedule" in frame["message"]
        assert again.plant.states[bk_setpoint].value == pytest.approx(50.0, abs=0.1)  # 30 of 60 min
    finally:
        await again.stop()
