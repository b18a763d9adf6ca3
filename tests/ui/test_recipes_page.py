"""The /recipes screen in NiceGUI's User: upload a recipe for the brewhouse, review and edit its steps (a
time on the keypad, a prompt's text, a step removed, a prompt added), SAVE, START (confirmed); a bad file
names the element.

The fixture brewhouse gets the RIMS and kettle loops and a brewhouse unit whose template shows the
generator the run-off and the chill (tests/support/programs.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing import User

from bevforge.domain import Actor
from tests.support.controllers import FAST_POLL_S, KETTLE, RIMS, with_controllers
from tests.support.programs import EXAMPLES, with_brewhouse
from tests.ui.conftest import write_config
from tests.ui.support import online, open_signed_in, runtime, shows, until

ADMIN = Actor(user="test", role="admin", station="test")


def brewhouse_config(path: Path, auth: bool = False) -> None:
    def adjust(doc: dict[str, Any]) -> None:
        with_controllers([dict(RIMS), dict(KETTLE)])(doc)
        with_brewhouse(doc)
        for endpoint in doc["endpoints"]:
            if endpoint.get("poll_interval_s") == FAST_POLL_S:
                endpoint["poll_interval_s"] = 0.5
                endpoint.pop("stale_after_s", None)
        if auth:
            doc["auth"] = {"mode": "required"}
    write_config(path / "config.yaml", adjust)


@pytest.fixture
def brewhouse(bevforge_env: Path) -> Path:
    """The brewhouse unit, no sign-in (an anonymous admin)."""
    brewhouse_config(bevforge_env)
    return bevforge_env


@pytest.fixture
def brewhouse_signed(bevforge_env: Path) -> Path:
    """The brewhouse unit with sign-in required (list it before `user`)."""
    brewhouse_config(bevforge_env, auth=True)
    return bevforge_env


def tap(user: User, *keys: str) -> None:
    for key in keys:
        user.find(marker=f"keypad-{key}").click()


async def upload(user: User, name: str, text: str) -> None:
    element = next(iter(user.find(marker="recipe-upload").elements))
    await element.handle_uploads([SmallFileUpload(name=name, content_type="text/plain", _data=text.encode())])


async def test_upload_review_edit_save_and_start(brewhouse: Path, user: User) -> None:
    await user.open("/recipes")
    await online()
    await user.should_see(marker="nav-recipes")
    await shows(user, "recipe-summary", "No recipe imported yet")
    await upload(user, "step-mash-blonde.xml", (EXAMPLES / "step-mash-blonde.xml").read_text(encoding="utf-8"))
    await shows(user, "recipe-summary", "BevForge Step-Mash Blonde", "beerxml", "grain 5 kg")
    await shows(user, "message-line", "Imported BevForge Step-Mash Blonde")
    await user.should_see(marker="recipe-step-0-target_c")
    await shows(user, "recipe-step-0-target_c", "56.4 °C")
    await shows(user, "recipe-step-4-minutes", "60 min")
    await user.should_see(marker="recipe-step-8-addition-2-message")

    user.find(marker="recipe-step-4-minutes").click()  # the saccharification rest: 45 min on the keypad
    await user.should_see(marker="keypad")
    tap(user, "4", "5", "set")
    await shows(user, "recipe-step-4-minutes", "45 min")
    user.find(marker="recipe-step-1-message").clear().type("Add 5 kg grain, stir well")
    user.find(marker="recipe-step-6-remove").click()  # no mash-out rest
    user.find(marker="recipe-step-0-add-prompt").click()  # a check after the strike water
    await user.should_see(marker="recipe-step-9-add-prompt")
    user.find(marker="recipe-step-1-message").clear().type("Check the strike water volume")
    user.find(marker="recipe-save").click()
    await shows(user, "message-line", "Saved")
    draft = (await runtime().recipes.drafts(ADMIN))[0]
    steps = draft["program"]["steps"]
    assert len(steps) == 10 and steps[5]["minutes"] == 45 and steps[2]["message"] == "Add 5 kg grain, stir well"
    assert steps[1] == {"type": "prompt", "name": "Check", "message": "Check the strike water volume"}

    user.find(marker="recipe-start").click()
    await user.should_see(marker="confirm-ok")
    user.find(marker="confirm-ok").click()
    await shows(user, "message-line", "started on Brewhouse")
    run = runtime().programs.units["brewhouse"]
    await until(lambda: run.state.value == "running" and run.template is not None)
    assert run.template.id == f"recipe:{draft['id']}" and len(run.template.steps) == 10


async def test_a_bad_file_names_the_element_and_imports_nothing(brewhouse: Path, user: User) -> None:
    await user.open("/recipes")
    await online()
    broken = (EXAMPLES / "pale-ale.xml").read_text(encoding="utf-8").replace("<STEP_TEMP>66</STEP_TEMP>", "")
    await upload(user, "pale-ale.xml", broken)
    await shows(user, "recipe-error", "STEP_TEMP is missing",
                "RECIPES/RECIPE[1]/MASH/MASH_STEPS/MASH_STEP[1]/STEP_TEMP")
    assert await runtime().recipes.drafts(ADMIN) == []



async def test_a_viewer_sees_the_drafts_without_the_controls(brewhouse_signed: Path, user: User) -> None:
    text = (EXAMPLES / "pale-ale.xml").read_text(encoding="utf-8")
    await runtime().recipes.import_recipe(Actor(user="olga", role="operator", station="test"), "beerxml", text,
                                          "brewhouse")
    await open_signed_in(user, "vic", "viewer", "/recipes")
    await shows(user, "recipe-summary", "BevForge Pale Ale")
    await shows(user, "recipe-step-2-minutes", "60 min")
    for marker in ("recipe-upload", "recipe-save", "recipe-start", "recipe-step-2-remove"):
        await user.should_not_see(marker=marker)
