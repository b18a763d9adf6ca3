"""The process mimic (/mimic) in NiceGUI's simulated browser: symbols with live values, pipes that flow,
and a tap that opens a symbol's dialog whose commands go through the same pipeline as the tiles."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from nicegui.testing import User

from bevforge.domain import Actor, CommandStatus, Quality, utcnow
from tests.ui.conftest import write_config
from tests.ui.support import online, runtime, shows, sign_in, until


def _element(user: User, marker: str) -> Any:
    elements = list(user.find(marker=marker).elements)
    assert len(elements) == 1, f"{len(elements)} elements marked {marker}"
    return elements[0]


async def drawn(user: User, marker: str, *texts: str, absent: tuple[str, ...] = ()) -> str:
    """Wait until the SVG text marked `marker` holds `texts` (and none of `absent`)."""
    def check() -> str | None:
        text = str(_element(user, marker).text)
        return text if all(t in text for t in texts) and not any(t in text for t in absent) else None

    try:
        return await until(check, 6.0)
    except AssertionError:
        raise AssertionError(f"{marker}: expected {texts} (not {absent}), drawn "
                             f"{_element(user, marker).text!r}") from None


async def has_class(user: User, marker: str, css: str, present: bool = True) -> None:
    await until(lambda: (css in _element(user, marker).classes) == present, 6.0)


async def tap(user: User, symbol: str) -> None:
    user.find(marker=f"mimic-{symbol}").click()
    await user.should_see(marker=f"mimic-dialog-{symbol}")


async def test_the_mimic_draws_each_symbol_with_its_live_values(user: User) -> None:
    await user.open("/mimic")
    await online()
    await drawn(user, "mimic-hlt-temperature", "°C", absent=("?",))
    await drawn(user, "mimic-hlt-setpoint", "SP 75.0 °C")
    await drawn(user, "mimic-hlt-volume", "60.0 L")
    await drawn(user, "mimic-hlt-level", "LEVEL HIGH")
    await drawn(user, "mimic-v1-state", "CLOSED")
    await drawn(user, "mimic-pump_1-state", "STOPPED")
    await drawn(user, "mimic-hlt_heater-state", "OFF")
    for pipe in ("hlt_to_mlt", "mlt_to_bk", "glycol_to_fv1", "glycol_to_fv2"):
        await has_class(user, f"mimic-pipe-{pipe}", "bf-pipe-still")
    await user.should_see(marker="nav-mimic")


async def test_a_pipe_flows_when_its_valve_is_open_and_its_pump_runs_commanded_from_the_mimic(user: User) -> None:
    await user.open("/mimic")
    await online()
    await tap(user, "v1")
    user.find(marker="on-22").click()  # OPEN V1 in the valve's dialog: the tile row, the Commander
    await drawn(user, "mimic-v1-state", "OPEN", absent=("?",))
    await has_class(user, "mimic-pipe-hlt_to_mlt", "bf-pipe-still")  # open, but no pump: no flow
    user.find(marker="mimic-dialog-close").click()
    await user.should_not_see(marker="mimic-dialog-v1")
    await tap(user, "pump_1")
    user.find(marker="on-23").click()  # START Pump 1
    await drawn(user, "mimic-pump_1-state", "RUNNING")
    await has_class(user, "mimic-pipe-hlt_to_mlt", "bf-pipe-flow")
    await has_class(user, "mimic-pipe-mlt_to_bk", "bf-pipe-still")
    commands = await runtime().commands.query(23, None, 10)
    assert [c.status for c in commands] == [CommandStatus.SUCCEEDED]
    assert commands[0].origin == "ui"  # the same pipeline as a tile's button
    user.find(marker="off-23").click()  # STOP: the pipe stops flowing
    await drawn(user, "mimic-pump_1-state", "STOPPED")
    await has_class(user, "mimic-pipe-hlt_to_mlt", "bf-pipe-still")


async def test_a_refused_command_from_the_mimic_shows_its_interlock_reason(user: User) -> None:
    await user.open("/mimic")
    await online()
    await tap(user, "pump_2")
    user.find(marker="on-35").click()  # START Pump 2 with V2 closed
    text = await shows(user, "command-35", "BLOCKED")
    assert "Pump 2 may run only with V2 open (no dead-heading)" in text
    assert "mlt_out_valve == true (is false)" in text
    await shows(user, "message-line", "BLOCKED")  # the header's message line, as for a tile
    await drawn(user, "mimic-pump_2-state", "STOPPED")
    commands = await runtime().commands.query(35, None, 10)
    assert [c.status for c in commands] == [CommandStatus.BLOCKED]


async def test_a_critical_heater_tapped_on_the_mimic_asks_before_anything_is_sent(user: User) -> None:
    await user.open("/mimic")
    await online()
    await tap(user, "hlt_heater")
    user.find(marker="on-11").click()
    assert await shows(user, "confirm-change", "OFF → ON") == "OFF → ON"
    user.find(marker="confirm-cancel").click()
    await user.should_not_see(marker="confirm-change")
    assert await runtime().commands.query(11, None, 10) == []
    user.find(marker="on-11").click()
    await shows(user, "confirm-change", "OFF → ON")
    user.find(marker="confirm-ok").click()
    await drawn(user, "mimic-hlt_heater-state", "ON", absent=("OFF",))
    await has_class(user, "mimic-hlt_heater", "bf-mm")


async def test_a_vessel_fills_with_its_volume_and_a_value_not_live_is_marked_as_on_a_tile(user: User) -> None:
    await user.open("/mimic")
    await online()
    rt = runtime()
    await drawn(user, "mimic-fv1-temperature", "°C", absent=("?",))
    # the HLT holds 60 of its 80 L: the fill is drawn three quarters up the vessel's inside
    await user.should_see(marker="mimic-fill-hlt", retries=100)  # drawn once the volume is read
    fill = _element(user, "mimic-fill-hlt")
    inner = 220 - 6
    assert fill._props["height"] == round(inner * 60 / 80, 1)
    assert fill._props["y"] == round(185 - 110 + 3 + inner - inner * 60 / 80, 1)
    assert "bf-mm-fill-live" in fill.classes
    await rt.drivers["cellar_probe"].stop()  # FV1's probe stops answering (no comms verdict yet)
    await until(lambda: rt.plant.states[50].server_time is not None)
    rt.plant.sweep_stale(utcnow() + timedelta(seconds=7))
    assert rt.plant.states[50].quality is Quality.UNCERTAIN
    text = await drawn(user, "mimic-fv1-temperature", "?", "°C", "STALE")
    assert text.startswith("? ")
    rt.plant.sweep_stale(utcnow() + timedelta(seconds=30))
    await drawn(user, "mimic-fv1-temperature", "? BAD")
    await drawn(user, "mimic-hlt-temperature", "°C", absent=("?",))  # the brewhouse is unaffected


async def test_a_viewer_taps_a_symbol_and_sees_its_values_without_controls(auth_required: Path, user: User) -> None:
    sign_in(user, "vera", "viewer")
    await user.open("/mimic")
    await online()
    await tap(user, "pump_1")
    await shows(user, "value-23", "STOPPED")
    await user.should_not_see(marker="on-23")


@pytest.fixture
def kiosk_on_mimic(bevforge_env: Path) -> Path:
    """ui.kiosk_start: mimic (list it before `user`: the config is read when the app starts)."""
    write_config(bevforge_env / "config.yaml", lambda doc: doc.update(ui={"kiosk_start": "mimic"}))
    return bevforge_env


async def test_a_kiosk_can_start_on_the_mimic_and_still_reach_the_tiles(kiosk_on_mimic: Path, user: User) -> None:
    await user.open("/?kiosk=1")
    await user.should_see(marker="mimic")
    await user.should_not_see(marker="tile-hlt")
    await user.open("/?view=tiles&kiosk=1")
    await user.should_see(marker="tile-hlt")
    await user.open("/")  # not a kiosk: the tiles as before
    await user.should_see(marker="tile-hlt")


def test_what_the_picture_says_is_decided_from_live_values_only() -> None:
    """Flow, fill and words (pure): a stale OPEN is not open, a fill follows the volume or the level."""
    from bevforge.config import load_config
    from bevforge.domain import EndpointState
    from tests.support.server import PLANT_FIXTURE
    from ui.mimic import fill_fraction, pipe_flows

    layout = load_config(PLANT_FIXTURE).layout
    assert layout is not None
    pipe = next(p for p in layout.pipes if p.id == "hlt_to_mlt")

    def states(v1: bool, pump: bool, quality: Quality = Quality.GOOD) -> dict[int, EndpointState]:
        return {22: EndpointState(22, v1, quality, None, utcnow(), None),
                23: EndpointState(23, pump, Quality.GOOD, None, utcnow(), None)}

    assert pipe_flows(pipe, layout, states(True, True))
    assert not pipe_flows(pipe, layout, states(True, False))
    assert not pipe_flows(pipe, layout, states(False, True))
    assert not pipe_flows(pipe, layout, states(True, True, Quality.UNCERTAIN))  # stale: not known to be open
    assert not pipe_flows(pipe, layout, {})
    hlt, bk = layout.symbol("hlt"), layout.symbol("bk")
    assert fill_fraction(hlt, 80, {14: EndpointState(14, 60.0, Quality.GOOD, None, utcnow(), None)}) == 0.75
    assert fill_fraction(hlt, 80, {14: EndpointState(14, 120.0, Quality.GOOD, None, utcnow(), None)}) == 1.0
    assert fill_fraction(hlt, 80, {}) is None
    bk_level_only = bk.model_copy(update={"volume": None})
    assert fill_fraction(bk_level_only, 80, {32: EndpointState(32, False, Quality.GOOD, None, utcnow(), None)}) == 0.25


async def test_a_vessel_in_alarm_is_outlined_with_the_alarm_word_and_shape(user: User) -> None:
    from bevforge.domain import Reading

    await user.open("/mimic")
    await online()
    await user.should_not_see(marker="mimic-alarm-hlt")
    runtime().plant.ingest([Reading(10, 99.5)])  # HLT temperature over its HIHI limit (critical)
    await user.should_see(marker="mimic-alarm-hlt", retries=100)
    assert _element(user, "mimic-alarm-hlt").text == "◆ HIHI CRITICAL"
    await user.should_not_see(marker="mimic-alarm-bk")


@pytest.fixture
def rims_on_the_mimic(bevforge_env: Path) -> Path:
    """The fixture brewhouse with the MLT's RIMS loop, its vessel and element tied to it on the mimic."""
    from tests.support.controllers import FAST_POLL_S, RIMS, with_controllers

    def adjust(doc: dict[str, Any]) -> None:
        with_controllers([RIMS])(doc)
        for endpoint in doc["endpoints"]:
            if endpoint.get("poll_interval_s") == FAST_POLL_S:
                endpoint["poll_interval_s"] = 0.5  # the screen tests need no fast sampling
                endpoint.pop("stale_after_s", None)
        for symbol in doc["layout"]["symbols"]:
            if symbol["id"] == "mlt":
                symbol.update(setpoint=140, controller="mlt_rims")
        doc["layout"]["symbols"].append({"id": "mlt_element", "kind": "heater", "label": "RIMS", "x": 440, "y": 268,
                                         "endpoint": 40, "controller": "mlt_rims"})
    write_config(bevforge_env / "config.yaml", adjust)
    return bevforge_env


async def test_a_vessel_tied_to_a_loop_opens_its_faceplate_and_the_loop_answers(rims_on_the_mimic: Path,
                                                                               user: User) -> None:
    await user.open("/mimic")
    await online()
    await drawn(user, "mimic-mlt-setpoint", "SP 65.0 °C")
    await drawn(user, "mimic-mlt_element-state", "OFF")
    await tap(user, "mlt")
    await shows(user, "fp-mode-mlt_rims", "MODE OFF")
    await shows(user, "value-140", "65.0 °C")  # the loop's software setpoint, as on its tile
    user.find(marker="fp-mode-manual-mlt_rims").click()  # through the controller service, as on the panel
    await shows(user, "fp-mode-mlt_rims", "MODE MANUAL")
    assert runtime().controllers.views(Actor(user="check"))[0]["mode"] == "manual"
    user.find(marker="mimic-dialog-close").click()
    await user.should_not_see(marker="fp-mode-mlt_rims")
    await tap(user, "mlt_element")  # the element's dialog shows the same loop
    await shows(user, "fp-mode-mlt_rims", "MODE MANUAL")


@pytest.fixture
def no_layout(bevforge_env: Path) -> Path:
    write_config(bevforge_env / "config.yaml", lambda doc: doc.pop("layout"))
    return bevforge_env


async def test_without_a_layout_there_is_no_mimic_to_offer(no_layout: Path, user: User) -> None:
    await user.open("/")
    await user.should_see(marker="tile-hlt")
    await user.should_not_see(marker="nav-mimic")
    await user.open("/mimic")
    await user.should_see(marker="no-layout")


async def test_a_command_on_its_way_shows_pending_on_the_symbol_never_the_new_state(user: User) -> None:
    from tests.ui.support import sim

    await user.open("/mimic")
    await online()
    sim().faults_for("brewhouse_io").write_delay_s = 0.8
    await tap(user, "v1")
    user.find(marker="on-22").click()
    await shows(user, "command-22", "OPEN pending")  # the dialog's tile row
    assert await drawn(user, "mimic-v1-state", "CLOSED …") == "CLOSED …"  # not OPEN before the readback
    await drawn(user, "mimic-v1-state", "OPEN", absent=("…", "CLOSED"))
