"""The technician's RELOAD CONFIG on /audit (ui/config_reload.py) and the screens redrawing themselves
after a live config reload (ui/live.py), with NiceGUI's User over main.py and the simulated plant."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from nicegui.testing import User

from bevforge.domain import Actor
from tests.ui.support import online, runtime, sign_in, text_of, until


def edit(config: Path, change: Any) -> None:
    doc = copy.deepcopy(yaml.safe_load(config.read_text(encoding="utf-8")))
    change(doc)
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def kettle(doc: dict[str, Any]) -> None:
    next(t for t in doc["tiles"] if t["id"] == "bk")["title"] = "Kettle"


async def test_reload_button_shows_the_problems_then_applies(bevforge_env: Path, user: User,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    config = bevforge_env / "config.yaml"
    good = config.read_text(encoding="utf-8")
    await user.open("/audit")
    await online()
    edit(config, lambda doc: doc["endpoints"][0].update(name="Bad Name"))
    user.find(marker="config-reload").click()
    await until(lambda: "Not applied" in text_of(user, "config-reload-status"))
    lines = [e.text for e in user.find(marker="config-reload-line").elements]
    assert any(line.startswith(f"{config}:") and ": endpoints[0].name: " in line for line in lines), lines
    assert next(t for t in runtime().config.tiles if t.id == "bk").title == "Boil kettle"
    assert any("config reload refused" in r.getMessage() for r in caplog.records)  # and in the log
    caplog.clear()  # that ERROR line is the point here, not a fault

    config.write_text(good, encoding="utf-8")
    edit(config, kettle)
    user.find(marker="config-reload").click()
    await until(lambda: "Applied" in text_of(user, "config-reload-status"))
    await until(lambda: any("tiles changed: bk" in e.text for e in user.find(marker="config-reload-line").elements))
    assert next(t for t in runtime().config.tiles if t.id == "bk").title == "Kettle"


async def test_reload_button_is_for_technicians(auth_required: Path, user: User, create_user: Any) -> None:
    sign_in(user, "olga", "operator")
    await user.open("/audit")
    await user.should_see(marker="forbidden")
    await user.should_not_see(marker="config-reload")
    tech = create_user()
    sign_in(tech, "tom", "technician")
    await tech.open("/audit")
    await tech.should_see(marker="config-reload")


async def test_the_control_panel_redraws_itself_after_a_reload(bevforge_env: Path, user: User) -> None:
    await user.open("/")
    await online()
    await user.should_not_see("Kettle")
    drawn = user.client
    edit(bevforge_env / "config.yaml", kettle)
    answer = await runtime().reloader.reload(Actor(), origin="test")
    assert answer["status"] == "applied"
    await until(lambda: user.client is not drawn)  # drawn again by the page itself, nobody reloaded it
    await user.should_see("Kettle")
