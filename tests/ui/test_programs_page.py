"""The Programs screen, the prompt dialog on every page and the panel's program line (issue 15.6), in NiceGUI's User.

The fixture brewhouse gets the mash tun's RIMS loop and a `brewhouse` program unit on it. The templates use
`wait` and `prompt` steps, whose timers run on the process clock whatever the plant does, so nothing here
waits on control maths — only on what the program service and the screens show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nicegui.testing import User

from bevforge.domain import Actor
from tests.support.controllers import FAST_POLL_S, KETTLE, RIMS, with_controllers
from tests.ui.conftest import write_config
from tests.ui.support import online, open_signed_in, runtime, shows, sign_in, text_of, until
from ui.programs import countdown, step_word, tile_line

UNIT = "brewhouse"
OPERATOR = Actor(user="olga", role="operator", station="test")
MASH = {"id": "mash", "name": "Step mash", "unit": UNIT, "steps": [
    {"type": "wait", "name": "Mash rest 2", "minutes": 60},
    {"type": "wait", "name": "Mash out", "minutes": 10},
    {"type": "prompt", "name": "Sparge", "message": "Start the sparge"},
]}
ASK = {"id": "grain", "name": "Grain in", "unit": UNIT, "steps": [
    {"type": "prompt", "name": "Grain", "message": "Add 5.2 kg grain"},
    {"type": "wait", "name": "Rest", "minutes": 30},
]}


def programs_config(path: Path, auth: bool = False, kettle: bool = False) -> None:
    def adjust(doc: dict[str, Any]) -> None:
        with_controllers([dict(RIMS), dict(KETTLE)] if kettle else [dict(RIMS)])(doc)
        for endpoint in doc["endpoints"]:
            if endpoint.get("poll_interval_s") == FAST_POLL_S:
                endpoint["poll_interval_s"] = 0.5  # the screen tests need no fast sampling
                endpoint.pop("stale_after_s", None)
        units = [{"id": UNIT, "name": "Brewhouse", "controllers": ["mlt_rims"]}]
        if kettle:
            units.append({"id": "kettle", "name": "Kettle", "kind": "fermenter", "controllers": ["bk_element"]})
        doc["programs"] = {"units": units, "templates": [MASH, ASK]}
        if auth:
            doc["auth"] = {"mode": "required"}
    write_config(path / "config.yaml", adjust)


@pytest.fixture
def programs(bevforge_env: Path) -> Path:
    """The brewhouse program unit, no sign-in (an anonymous admin)."""
    programs_config(bevforge_env)
    return bevforge_env


@pytest.fixture
def programs_signed(bevforge_env: Path) -> Path:
    """The brewhouse program unit with auth required (list it before `user`)."""
    programs_config(bevforge_env, auth=True)
    return bevforge_env


@pytest.fixture
def two_units(bevforge_env: Path) -> Path:
    """The brewhouse (MLT) and a kettle (BK) unit, auth required (list it before `user`)."""
    programs_config(bevforge_env, auth=True, kettle=True)
    return bevforge_env


def frame() -> dict[str, Any]:
    service = runtime().programs
    return service.frame(service.units[UNIT])


def state() -> str:
    return frame()["state"]


def step_index() -> int | None:
    step = frame()["step"]
    return None if step is None else step["index"]


def prompt_open(user: User) -> bool:
    """Whether the prompt dialog (drawn on every page, closed when nothing waits) is open on this screen."""
    card = next(iter(user.find(marker="prompt-dialog").elements))
    return bool(card.parent_slot.parent.value)


def classes(user: User, marker: str) -> list[str]:
    return list(next(iter(user.find(marker=marker).elements)).classes)


async def test_the_page_lists_the_steps_highlights_the_current_one_and_counts_down(programs: Path,
                                                                                   user: User) -> None:
    await user.open("/programs")
    await online()
    await shows(user, f"prog-state-{UNIT}", "IDLE")
    await runtime().programs.start_program(OPERATOR, UNIT, "mash")
    await shows(user, f"prog-state-{UNIT}", "RUNNING")
    await shows(user, f"prog-template-{UNIT}", "Step mash")
    for i, name in enumerate(("Mash rest 2", "Mash out", "Sparge")):
        await shows(user, f"prog-step-{UNIT}-{i}", f"{i + 1}. {name}")
    await until(lambda: "bf-step-current" in classes(user, f"prog-step-{UNIT}-0"))
    assert text_of(user, f"prog-step-{UNIT}-0").startswith("▶")
    assert "bf-step-current" not in classes(user, f"prog-step-{UNIT}-1")
    await shows(user, f"prog-step-{UNIT}", "STEP 1 OF 3", "Mash rest 2")
    await shows(user, f"prog-prompt-{UNIT}", "next: Sparge: Start the sparge")

    def counted() -> bool:  # the pushed countdown is the service's time left (it moves every second)
        return text_of(user, f"prog-countdown-{UNIT}") == countdown(frame()["step"]["remainingS"])

    await until(counted)
    await until(lambda: counted() and text_of(user, f"prog-countdown-{UNIT}").startswith("59:"))  # it counts down
    await runtime().programs.skip(OPERATOR, UNIT)
    await until(lambda: "bf-step-current" in classes(user, f"prog-step-{UNIT}-1"))
    assert "bf-step-current" not in classes(user, f"prog-step-{UNIT}-0")
    assert "bf-step-done" in classes(user, f"prog-step-{UNIT}-0")
    await until(lambda: counted() and text_of(user, f"prog-countdown-{UNIT}").startswith("09:"))


def test_the_countdown_reads_mm_ss_or_h_mm_ss() -> None:
    assert countdown(42 * 60 + 10) == "42:10"
    assert countdown(59.2) == "01:00"  # whole seconds rounded up: 00:00 only when the time is up
    assert countdown(3 * 3600 + 5 * 60 + 7) == "3:05:07"
    assert countdown(0) == "00:00" and countdown(None) == "--:--"


def test_the_step_status_is_said_in_words_with_a_shape_when_abnormal() -> None:
    def running(status: str, prompts: list[Any] | None = None, state: str = "running") -> dict[str, Any]:
        return {"state": state, "prompts": prompts or [],
                "step": {"index": 1, "name": "Mash rest 2", "status": status, "remainingS": 2530.0}}

    assert step_word(running("heating to 65.5 °C (now 61.2 °C)")) == ("HEATING · heating to 65.5 °C (now 61.2 °C)",
                                                                       "normal")
    assert step_word(running("holding 65.5 °C")) == ("IN BAND · holding 65.5 °C", "normal")
    assert step_word(running("holding 65.5 °C: out of band"))[0].startswith("▲ OUT OF BAND")
    assert step_word(running("timer stopped: waiting for 65.5 °C")) == (
        "■ PAUSED, OUT OF BAND · timer stopped: waiting for 65.5 °C", "held")
    assert step_word(running("waiting for the operator"))[0].startswith("? WAITING FOR OPERATOR")
    assert step_word(running("holding 65.5 °C", state="paused")) == ("‖ PAUSED · Mash rest 2", "held")
    assert tile_line(running("holding 65.5 °C")) == "Mash rest 2 · 42:10"
    assert tile_line({"state": "completed", "prompts": [], "step": None}) == ""


async def test_the_buttons_start_pause_resume_skip_and_abort_only_after_confirmation(programs: Path,
                                                                                       user: User) -> None:
    await user.open(f"/programs/{UNIT}")
    await online()
    await shows(user, f"prog-state-{UNIT}", "IDLE")
    choice = next(iter(user.find(marker=f"prog-choice-{UNIT}").elements))
    choice.value = "mash"
    user.find(marker=f"prog-start-{UNIT}").click()
    await until(lambda: state() == "running")
    await shows(user, f"prog-state-{UNIT}", "RUNNING")
    user.find(marker=f"prog-pause-{UNIT}").click()
    await until(lambda: state() == "paused")
    await shows(user, f"prog-state-{UNIT}", "PAUSED")
    await shows(user, f"prog-status-{UNIT}", "PAUSED")
    await shows(user, f"prog-message-{UNIT}", "paused by")
    paused_left = frame()["step"]["remainingS"]
    await shows(user, f"prog-countdown-{UNIT}", countdown(paused_left))
    user.find(marker=f"prog-extend-{UNIT}").click()
    await until(lambda: frame()["step"]["remainingS"] == pytest.approx(paused_left + 300))
    await shows(user, f"prog-countdown-{UNIT}", countdown(paused_left + 300))
    user.find(marker=f"prog-resume-{UNIT}").click()
    await until(lambda: state() == "running")
    user.find(marker=f"prog-skip-{UNIT}").click()
    await until(lambda: step_index() == 1)
    await shows(user, f"prog-step-{UNIT}", "STEP 2 OF 3", "Mash out")
    user.find(marker=f"prog-abort-{UNIT}").click()
    await user.should_see(marker="confirm-cancel")
    await shows(user, "confirm-change", "RUNNING → ABORTED")
    user.find(marker="confirm-cancel").click()
    await user.should_not_see(marker="confirm-cancel")
    assert state() == "running"  # cancelled: nothing happened
    user.find(marker=f"prog-abort-{UNIT}").click()
    await user.should_see(marker="confirm-ok")
    user.find(marker="confirm-ok").click()
    await until(lambda: state() == "aborted")
    await shows(user, f"prog-state-{UNIT}", "ABORTED")
    assert len(await runtime().audit.query(action="program.abort")) == 1


async def test_a_viewer_sees_the_program_but_no_buttons(programs_signed: Path, user: User) -> None:
    await open_signed_in(user, "vera", "viewer", "/programs")
    await runtime().programs.start_program(OPERATOR, UNIT, "mash")
    await shows(user, f"prog-state-{UNIT}", "RUNNING")
    await shows(user, f"prog-step-{UNIT}", "Mash rest 2")
    for key in ("start", "pause", "resume", "skip", "back", "extend", "shorten", "abort", "choice"):
        await user.should_not_see(marker=f"prog-{key}-{UNIT}")
    await runtime().programs.skip(OPERATOR, UNIT)
    await runtime().programs.skip(OPERATOR, UNIT)  # the prompt step: the dialog, without CONFIRM
    await shows(user, f"prompt-text-{UNIT}-confirm", "Start the sparge")
    await user.should_not_see(marker=f"prompt-confirm-{UNIT}-confirm")
    assert prompt_open(user)
    user.find(marker="prompt-close").click()
    await until(lambda: not prompt_open(user))


async def test_an_operator_sees_the_buttons(programs_signed: Path, user: User) -> None:
    await open_signed_in(user, "olga", "operator", "/programs")
    await user.should_see(marker=f"prog-start-{UNIT}")
    await user.should_see(marker=f"prog-abort-{UNIT}")


async def test_a_prompt_step_opens_the_dialog_on_the_panel_and_confirming_advances_the_program(
        programs: Path, user: User, create_user: Any) -> None:
    await user.open("/")
    await online()
    other = create_user()  # a second station, on the alarms page
    await other.open("/alarms")
    assert not prompt_open(user)
    await runtime().programs.start_program(OPERATOR, UNIT, "grain")
    await shows(user, f"prompt-text-{UNIT}-confirm", "Add 5.2 kg grain")
    await shows(other, f"prompt-text-{UNIT}-confirm", "Add 5.2 kg grain")
    assert prompt_open(user) and prompt_open(other)
    user.find(marker=f"prompt-confirm-{UNIT}-confirm").click()
    await until(lambda: step_index() == 1)
    assert frame()["prompts"] == []
    await until(lambda: not prompt_open(user))
    await until(lambda: not prompt_open(other))  # answered on one station: closed on all
    await user.should_not_see(marker=f"prompt-text-{UNIT}-confirm")
    entries = await runtime().audit.query(action="program.confirm")
    assert [e["detail"] for e in entries] == ["Add 5.2 kg grain"]


async def test_the_panel_tile_shows_the_running_step_and_its_time_left(programs: Path, user: User) -> None:
    await user.open("/")
    await online()
    await user.should_see(marker="faceplate-mlt_rims")
    await user.should_not_see(marker=f"tile-program-{UNIT}")
    await runtime().programs.start_program(OPERATOR, UNIT, "mash")
    await shows(user, f"tile-program-{UNIT}", "Mash rest 2 · 59:")
    await runtime().programs.pause(OPERATOR, UNIT)
    left = countdown(frame()["step"]["remainingS"])
    await shows(user, f"tile-program-{UNIT}", f"‖ PAUSED · Mash rest 2 · {left}")
    await runtime().programs.abort(OPERATOR, UNIT)
    await user.should_not_see(marker=f"tile-program-{UNIT}", retries=100)


async def test_after_a_restart_the_dialog_asks_resume_restart_step_or_abort(programs: Path, user: User) -> None:
    """The program service's own restore (`load`, as at a start over the stored row) brings the running program
    back paused with its question; RESUME on the dialog sets it going again and closes the dialog."""
    await user.open("/trends")
    await online()
    service = runtime().programs
    await service.start_program(OPERATOR, UNIT, "mash")
    await until(lambda: frame()["step"]["remainingS"] < 3600)
    await service.stop()  # stored as it is, its ticking stopped, as at a shutdown
    service.load()
    service.start()
    assert state() == "paused"
    await shows(user, f"prompt-text-{UNIT}-restart", "Mash rest 2", "when the panel stopped")
    assert prompt_open(user)
    await user.should_see(marker=f"prompt-restart-{UNIT}")
    await user.should_see(marker=f"prompt-abort-{UNIT}")
    user.find(marker=f"prompt-resume-{UNIT}").click()
    await until(lambda: state() == "running")
    await until(lambda: not prompt_open(user))
    assert step_index() == 0


async def test_a_prompt_sounds_the_kiosk_tone_until_it_is_answered(programs: Path, user: User) -> None:
    await user.open("/alarms?kiosk=1")
    await online()
    await runtime().programs.start_program(OPERATOR, UNIT, "grain")
    await shows(user, "tone-state", "PROGRAM PROMPT TONE")
    await user.should_see(marker="prompt-silence")
    user.find(marker=f"prompt-confirm-{UNIT}-confirm").click()
    await until(lambda: step_index() == 1)
    await user.should_not_see(marker="tone-state", retries=100)


async def test_restart_step_after_a_restart_starts_the_step_over_and_goes_on(programs: Path, user: User) -> None:
    await user.open("/")
    await online()
    service = runtime().programs
    await service.start_program(OPERATOR, UNIT, "mash")
    await until(lambda: frame()["step"]["remainingS"] < 3596)
    await service.stop()
    left = frame()["step"]["remainingS"]
    service.load()
    service.start()
    await shows(user, f"prompt-text-{UNIT}-restart", "when the panel stopped")
    user.find(marker=f"prompt-restart-{UNIT}").click()
    await until(lambda: state() == "running")
    assert step_index() == 0 and frame()["step"]["remainingS"] > left  # the hour again, not what was left
    await until(lambda: not prompt_open(user))
    assert [e["action"] for e in await runtime().audit.query(action="program.back")] == ["program.back"]


async def test_each_user_sees_the_units_of_their_nodes_and_one_unit_by_its_address(two_units: Path,
                                                                                  user: User) -> None:
    await open_signed_in(user, "olga", "operator", "/programs")
    await user.should_see(marker=f"prog-unit-{UNIT}")
    await user.should_see(marker="prog-unit-kettle")
    await user.should_see(marker="prog-open-kettle")
    await user.open("/programs/kettle")
    await user.should_see(marker="prog-unit-kettle")
    await user.should_not_see(marker=f"prog-unit-{UNIT}")
    await user.open("/programs/nowhere")
    await shows(user, "prog-none", "No program unit 'nowhere'")
    await runtime().programs.start_program(OPERATOR, UNIT, "grain")  # a prompt on the brewhouse
    sign_in(user, "bea", "operator", ["BK"])  # this screen again, as an operator of the kettle's node only
    await user.open("/programs")
    await shows(user, "prog-state-kettle", "IDLE")
    await user.should_see(marker="prog-unit-kettle")
    await user.should_not_see(marker=f"prog-unit-{UNIT}")  # not her node: not there at all
    await user.should_see(marker="prog-start-kettle")
    assert not prompt_open(user)  # the brewhouse's prompt is not hers
