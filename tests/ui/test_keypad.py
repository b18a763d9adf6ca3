"""The on-screen keypad for setpoints (issue 14.7, issue 16 "touch-only input"), in NiceGUI's User.

The HLT setpoint (endpoint 12: 0…99 °C, one decimal, 75.0 °C in the simulator) is entered by taps
only; SET sends exactly what was typed through the normal command path; an out-of-range entry keeps
its text and SET disabled (issue 16: 150 used to become 99 silently).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nicegui.testing import User

from bevforge.config import Endpoint
from bevforge.domain import IN_FLIGHT, CommandStatus
from tests.ui.conftest import write_config
from tests.ui.support import online, open_signed_in, runtime, shows, sign_in, sim, text_of
from ui.keypad import Entry, EntryRules, rules_for


async def settled_commands(endpoint_id: int) -> list:
    """The endpoint's commands once none is still on its way (the value shows before the record is final)."""
    found: list = []
    for _ in range(500):  # polled like tests/support/server.wait_for, for up to ~10 s
        found = await runtime().commands.query(endpoint_id, None, 10)
        if found and not any(c.status in IN_FLIGHT for c in found):
            break
        await asyncio.sleep(0.02)
    return found



def tap(user: User, *keys: str) -> None:
    """Tap keypad keys by their marker suffix: digits, 'dot', 'back', 'clear', 'up', 'down', 'set' …"""
    for key in keys:
        user.find(marker=f"keypad-{key}").click()


def enabled(user: User, marker: str) -> bool:
    element = next(iter(user.find(marker=marker).elements))
    return bool(element.enabled)


def press(user: User, key: str) -> None:
    """A key on a physical keyboard, as the browser's keyboard listener reports it."""
    user.find(marker="keypad-keyboard").trigger("key", {
        "action": "keydown", "key": key, "code": key, "location": 0, "repeat": False,
        "altKey": False, "ctrlKey": False, "metaKey": False, "shiftKey": False})


async def open_keypad(user: User, marker: str = "entry-12") -> None:
    await shows(user, "value-12", "75.0 °C")
    user.find(marker=marker).click()
    await user.should_see(marker="keypad")


async def test_keypad_shows_what_is_changed_and_set_sends_exactly_the_typed_value(user: User) -> None:
    await user.open("/")
    await online()
    sim().faults_for("hlt_controller").write_delay_s = 0.8
    await open_keypad(user)
    assert text_of(user, "keypad-title") == "HLT setpoint"
    assert text_of(user, "keypad-current") == "now 75.0 °C"
    assert text_of(user, "keypad-range") == "range 0 … 99 °C"
    await user.should_not_see(marker="keypad-sign")  # 0…99 allows no negatives
    assert not enabled(user, "keypad-set")  # nothing typed yet
    tap(user, "6", "6", "dot", "5")
    assert text_of(user, "keypad-text") == "66.5"
    assert enabled(user, "keypad-set")
    tap(user, "set")
    await user.should_not_see(marker="keypad")
    await shows(user, "command-12", "66.5 °C pending")  # the normal pending feedback of the command path
    await shows(user, "value-12", "66.5 °C", absent=("?",))
    commands = await settled_commands(12)
    assert [(c.requested_value, c.status, c.origin) for c in commands] == [(66.5, CommandStatus.SUCCEEDED, "ui")]


async def test_out_of_range_keeps_set_disabled_and_the_typed_text(user: User) -> None:
    await user.open("/")
    await online()
    await open_keypad(user)
    tap(user, "1", "5", "0")
    assert text_of(user, "keypad-text") == "150"
    assert text_of(user, "keypad-reason") == "✖ max 99 °C"
    assert not enabled(user, "keypad-set")
    tap(user, "set")  # a disabled key does nothing…
    press(user, "Enter")  # …and neither does Enter on a keyboard
    await user.should_see(marker="keypad")
    assert text_of(user, "keypad-text") == "150"  # never replaced by a clamped 99
    assert not enabled(user, "keypad-set")
    tap(user, "dot", "2", "5")  # 150.25: out of range and too many decimals, the text still as typed
    assert text_of(user, "keypad-text") == "150.25"
    tap(user, "back", "back", "back", "back")
    assert text_of(user, "keypad-text") == "15"
    assert enabled(user, "keypad-set")
    tap(user, "cancel")
    await user.should_not_see(marker="keypad")
    assert await runtime().commands.query(12, None, 10) == []
    await shows(user, "value-12", "75.0 °C")


async def test_cancel_and_escape_send_nothing(user: User) -> None:
    await user.open("/")
    await online()
    await open_keypad(user)
    tap(user, "7", "0")
    tap(user, "cancel")
    await user.should_not_see(marker="keypad")
    await open_keypad(user, "value-12")  # tapping the value itself opens the keypad too
    assert text_of(user, "keypad-text") == ""  # a new keypad starts empty
    press(user, "4")
    press(user, "Escape")
    await user.should_not_see(marker="keypad")
    assert await runtime().commands.query(12, None, 10) == []


async def test_a_physical_keyboard_types_and_enter_sets(user: User) -> None:
    await user.open("/")
    await online()
    await open_keypad(user)
    for key in ("7", "3", "Backspace", "2", ",", "5"):
        press(user, key)
    assert text_of(user, "keypad-text") == "72.5"
    press(user, "Enter")
    await user.should_not_see(marker="keypad")
    await shows(user, "value-12", "72.5 °C", absent=("?",))
    commands = await runtime().commands.query(12, None, 10)
    assert [c.requested_value for c in commands] == [72.5]


async def test_nudge_keys_step_from_the_present_value_and_stop_at_the_range(user: User) -> None:
    await user.open("/")
    await online()
    await open_keypad(user)
    assert text_of(user, "keypad-up") == "+0.5" and text_of(user, "keypad-down") == "−0.5"
    tap(user, "up")  # from the present 75.0 °C
    assert text_of(user, "keypad-text") == "75.5"
    tap(user, "clear", "9", "8", "dot", "7", "up")
    assert text_of(user, "keypad-text") == "99.0"  # 99.2 would be out of range: the nudge stops at max
    assert not enabled(user, "keypad-up") and enabled(user, "keypad-down")
    tap(user, "clear", "0")
    assert not enabled(user, "keypad-down")
    tap(user, "down")
    assert text_of(user, "keypad-text") == "0"
    tap(user, "clear", "2", "0", "0")  # out of range: no nudge from an entry that cannot be sent
    assert not enabled(user, "keypad-up") and not enabled(user, "keypad-down")
    tap(user, "clear", "9", "8", "dot", "7", "up", "set")
    await shows(user, "value-12", "99.0 °C", absent=("?",))
    commands = await runtime().commands.query(12, None, 10)
    assert [c.requested_value for c in commands] == [99.0]


async def test_a_viewer_cannot_open_the_keypad(auth_required, user: User, create_user) -> None:
    operator = create_user()
    sign_in(operator, "olga", "operator")
    await operator.open("/")
    await online()
    await shows(operator, "value-12", "75.0 °C")
    operator.find(marker="value-12").click()
    await operator.should_see(marker="keypad")  # an operator's value opens it…
    await open_signed_in(user, "vera", "viewer", "/")
    await shows(user, "value-12", "75.0 °C")
    user.find(marker="value-12").click()  # …a viewer's is read-only
    await user.should_not_see(marker="keypad")
    await user.should_not_see(marker="entry-12")


def test_entry_rules_for_negative_ranges_and_whole_numbers() -> None:
    """The keypad's rules without a screen: the sign key only where negatives are allowed, whole
    numbers stay whole, a nudge with nothing typed and no live value starts at the range's low end."""
    glycol = Entry(EntryRules(low=-5, high=30, unit="°C", decimals=1, step=0.5), present=None)
    assert glycol.rules.negatives
    for key in ("±", "2", ".", "5"):
        glycol.key(key)
    assert glycol.text == "-2.5" and glycol.verdict() == (-2.5, "")
    glycol.key("±")
    assert glycol.text == "2.5"
    glycol.key("clear")
    glycol.nudge(1)
    assert glycol.text == "-4.5"  # from the low end (-5), one step up
    for key in ("clear", "±", "9"):
        glycol.key(key)
    assert glycol.verdict() == (None, "min -5 °C") and glycol.text == "-9"
    count = Entry(EntryRules(low=0, high=10, unit="", decimals=0, step=1.0), present=3)
    assert not count.rules.negatives
    for key in ("±", "0", "7", "."):
        count.key(key)  # no sign, no decimal point; a leading 0 is replaced
    assert count.text == "7"
    value, why = count.verdict()
    assert (value, why) == (7, "") and isinstance(value, int)
    count.key("clear")
    count.nudge(-1)
    assert count.text == "2"  # from the present 3
    speed = rules_for(pump_speed_endpoint())
    assert (speed.low, speed.high, speed.decimals, speed.step) == (0, 100, 1, 1.0)


def pump_speed_endpoint() -> Endpoint:
    return Endpoint(id=24, name="pump_1_speed", node="MLT", device="pump1_vfd", kind="speed", unit="%",
                    writable=True, range={"min": 0, "max": 100})


@pytest.fixture
def critical_setpoint(bevforge_env: Path) -> Path:
    """The HLT setpoint marked `critical: true` (list it before `user`)."""
    def adjust(doc: dict) -> None:
        next(e for e in doc["endpoints"] if e["id"] == 12)["critical"] = True
    write_config(bevforge_env / "config.yaml", adjust)
    return bevforge_env


async def test_set_on_a_critical_setpoint_still_asks_to_confirm(critical_setpoint, user: User) -> None:
    await user.open("/")
    await online()
    await open_keypad(user)
    tap(user, "8", "0", "set")
    await shows(user, "confirm-change", "75.0 °C → 80.0 °C")  # the Commander's confirmation, as for a heater
    user.find(marker="confirm-cancel").click()
    await user.should_not_see(marker="confirm-change")
    assert await runtime().commands.query(12, None, 10) == []
    await open_keypad(user)
    tap(user, "8", "0", "set")
    await shows(user, "confirm-change", "75.0 °C → 80.0 °C")
    user.find(marker="confirm-ok").click()
    await shows(user, "value-12", "80.0 °C", absent=("?",))
    commands = await runtime().commands.query(12, None, 10)
    assert [(c.requested_value, c.status) for c in commands] == [(80.0, CommandStatus.SUCCEEDED)]
