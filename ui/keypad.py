"""The on-screen numeric keypad: how a setpoint is entered on a kiosk, which has no keyboard.

Tapping a writable number (a setpoint, a pump speed) opens this keypad as a dialog. It shows what
is being changed (label, unit, present value, allowed range) and builds the new value from taps:
digits, a decimal point (decimal endpoints only), a sign key (only when the range allows negatives),
⌫, CLEAR and −/+ nudges of one step. A physical keyboard works too (digits, `.`, `-`, Backspace,
Delete, ↑/↓ nudge, Enter = SET, Escape = CANCEL).

What the operator typed is never changed behind their back: an entry outside the range, or with
more decimals than the screen shows, keeps its text, SET stays disabled and the keypad says why
("max 99 °C"). (Issue 16: the old number box clamped 150 to 99 on blur, so a second SET sent 99
without a question.) Only the nudge keys write the text for the operator, and they stop at the
range's ends.

The keypad only *asks*: it returns the value, and the caller submits it through
`ui.controls.Commander`, so confirmation of critical outputs, interlocks, audit and the
pending → confirmed / failed feedback are exactly those of every other command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nicegui import events, ui

from bevforge.config import Endpoint
from bevforge.domain import DataType, EndpointState, Value
from ui import words
from ui.controls import tag

MAX_DIGITS = 9  # more digits than any brewery value needs; a longer entry is a stuck finger
TEMPERATURE_UNITS = ("°C", "°F", "K")
DIGITS = "0123456789"


@dataclass(frozen=True, slots=True)
class EntryRules:
    """What one endpoint accepts: its range, the decimals the screen shows, and the nudge step."""

    low: float | None
    high: float | None
    unit: str
    decimals: int
    step: float

    @property
    def negatives(self) -> bool:
        """The sign key is offered only when a negative value could be accepted."""
        return self.low is None or self.low < 0

    def bounds_text(self) -> str:
        if self.low is None and self.high is None:
            return "any value"
        if self.high is None:
            return f"≥ {self.low:g} {self.unit}".strip()
        if self.low is None:
            return f"≤ {self.high:g} {self.unit}".strip()
        return f"{self.low:g} … {self.high:g} {self.unit}".strip()


def unit_rules(unit: str, low: float | None = None, high: float | None = None, whole: bool = False) -> EntryRules:
    """Whole numbers take steps of 1; decimals take one decimal place (what the screen shows) and
    nudge by 0.5 for a temperature, 1 for a percentage or seconds, 0.1 otherwise."""
    if whole:
        return EntryRules(low, high, unit, 0, 1.0)
    if unit in TEMPERATURE_UNITS:
        step = 0.5
    elif unit in ("%", "s"):
        step = 1.0
    else:
        step = 0.1
    return EntryRules(low, high, unit, 1, step)


def rules_for(endpoint: Endpoint) -> EntryRules:
    """A writable endpoint's entry rules: its configured range and unit, whole numbers for an int."""
    low, high = (endpoint.range.min, endpoint.range.max) if endpoint.range else (None, None)
    return unit_rules(endpoint.unit, low, high, whole=endpoint.data_type is DataType.INT)


class Entry:
    """The text being typed and what it means. Pure (no NiceGUI), so the rules are easy to follow."""

    def __init__(self, rules: EntryRules, present: float | None) -> None:
        self.rules = rules
        self.present = present  # the endpoint's value now: where a nudge on an empty entry starts
        self.text = ""

    def key(self, key: str) -> None:
        """One key: a digit, '.', '±' (sign), 'back' or 'clear'. Keys the endpoint cannot use do nothing."""
        if key in DIGITS and len(key) == 1:
            if sum(c.isdigit() for c in self.text) >= MAX_DIGITS:
                return
            self.text = self.text[:-1] + key if self.text in ("0", "-0") else self.text + key
        elif key == ".":
            if self.rules.decimals > 0 and "." not in self.text:
                self.text += "0." if self.text in ("", "-") else "."
        elif key == "±":
            if self.rules.negatives:
                self.text = self.text[1:] if self.text.startswith("-") else "-" + self.text
        elif key == "back":
            self.text = self.text[:-1]
        elif key == "clear":
            self.text = ""

    def verdict(self) -> tuple[Value | None, str]:
        """(the value to send, "") when the entry may be sent; (None, why not) otherwise."""
        text = self.text
        if text == "":
            return None, "Type the new value"
        try:
            number = float(text)
        except ValueError:
            return None, "Not a number yet"
        rules = self.rules
        decimals = len(text.partition(".")[2])
        if decimals > rules.decimals:
            return None, "Whole numbers only" if rules.decimals == 0 else f"At most {rules.decimals} decimal place"
        if rules.high is not None and number > rules.high:
            return None, f"max {rules.high:g} {rules.unit}".strip()
        if rules.low is not None and number < rules.low:
            return None, f"min {rules.low:g} {rules.unit}".strip()
        return (int(number) if rules.decimals == 0 else number), ""

    def _base(self) -> float | None:
        """Where a nudge starts: the valid entry, or the present value when nothing is typed."""
        if self.text == "":
            if self.present is not None:
                return self.present
            return self.rules.low if self.rules.low is not None else 0.0
        value, _why = self.verdict()
        return None if value is None else float(value)

    def can_nudge(self, direction: int) -> bool:
        """A nudge needs a valid starting point and room left in its direction."""
        base = self._base()
        if base is None:
            return False
        if direction > 0:
            return self.rules.high is None or base < self.rules.high
        return self.rules.low is None or base > self.rules.low

    def nudge(self, direction: int) -> None:
        """One step up (+1) or down (−1), stopping at the range's end."""
        if not self.can_nudge(direction):
            return
        base = self._base()
        assert base is not None
        value = round(base + direction * self.rules.step, self.rules.decimals)
        if self.rules.high is not None:
            value = min(value, self.rules.high)
        if self.rules.low is not None:
            value = max(value, self.rules.low)
        self.text = f"{value:.{self.rules.decimals}f}"


class Keypad:
    """The keypad dialog for one number. `ask()` opens it and returns the value, or None on CANCEL."""

    def __init__(self, title: str, rules: EntryRules, present_text: str, present: float | None) -> None:
        self.entry = Entry(rules, present)
        with ui.dialog().props("persistent") as self.dialog, \
                tag(ui.card().classes("bf-keypad"), "keypad"):
            tag(ui.label(title).classes("bf-keypad-title"), "keypad-title")
            with ui.row().classes("w-full justify-between no-wrap gap-2"):
                tag(ui.label(f"now {present_text}"), "keypad-current")
                tag(ui.label(f"range {rules.bounds_text()}"), "keypad-range")
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                self.down = self._key(f"−{rules.step:g}", lambda: self._nudge(-1), "keypad-down", "bf-key-fn")
                with ui.row().classes("bf-keypad-display items-center no-wrap"):
                    self.text = tag(ui.label("").classes("bf-keypad-text"), "keypad-text")
                    ui.label(rules.unit).classes("bf-keypad-unit")
                self.up = self._key(f"+{rules.step:g}", lambda: self._nudge(1), "keypad-up", "bf-key-fn")
            self.reason = tag(ui.label("").classes("bf-keypad-reason"), "keypad-reason")
            with ui.grid(columns=4).classes("bf-keypad-keys"):
                for row, side in (("789", ("⌫", "back", "keypad-back")), ("456", ("CLEAR", "clear", "keypad-clear"))):
                    for digit in row:
                        self._digit(digit)
                    self._key(side[0], lambda k=side[1]: self._press(k), side[2], "bf-key-fn")
                for digit in "123":
                    self._digit(digit)
                self._key("CANCEL", self.cancel, "keypad-cancel", "bf-key-fn")
                if rules.negatives:
                    self._key("±", lambda: self._press("±"), "keypad-sign")
                else:
                    ui.element("div")
                self._digit("0")
                if rules.decimals > 0:
                    self._key(".", lambda: self._press("."), "keypad-dot")
                else:
                    ui.element("div")
                self.set_button = self._key("SET", self.set, "keypad-set", "bf-key-set")
            # A physical keyboard, when there is one. Buttons never take focus (see _key), so the
            # keys reach this listener and Enter never also "clicks" a focused key.
            keys = tag(ui.keyboard(on_key=self._typed, ignore=["input", "select", "textarea"]), "keypad-keyboard")
            keys.props["events"] = ["keydown"]
        self._show()

    async def ask(self) -> Value | None:
        self.dialog.open()
        try:
            return await self.dialog
        finally:
            self.dialog.delete()

    # -- keys -------------------------------------------------------------------------------

    def _key(self, text: str, action: Callable[[], object], marker: str, css: str = "") -> ui.button:
        button = ui.button(text, on_click=action, color=None).classes(f"bf-key {css}").props("unelevated no-caps")
        button.on("mousedown", js_handler="(e) => e.preventDefault()")  # keep focus off the key
        return tag(button, marker)

    def _digit(self, digit: str) -> None:
        self._key(digit, lambda: self._press(digit), f"keypad-{digit}")

    def _press(self, key: str) -> None:
        self.entry.key(key)
        self._show()

    def _nudge(self, direction: int) -> None:
        self.entry.nudge(direction)
        self._show()

    def set(self) -> None:
        value, _why = self.entry.verdict()
        if value is not None:
            self.dialog.submit(value)

    def cancel(self) -> None:
        self.dialog.submit(None)

    def _typed(self, e: events.KeyEventArguments) -> None:
        if not e.action.keydown or e.modifiers.ctrl or e.modifiers.meta or e.modifiers.alt:
            return
        name = e.key.name
        if name in DIGITS and len(name) == 1:
            self._press(name)
        elif name in (".", ","):
            self._press(".")
        elif name == "-":
            self._press("±")
        elif name == "Backspace":
            self._press("back")
        elif name == "Delete":
            self._press("clear")
        elif name == "ArrowUp":
            self._nudge(1)
        elif name == "ArrowDown":
            self._nudge(-1)
        elif name == "Enter":
            self.set()
        elif name == "Escape":
            self.cancel()

    # -- showing ----------------------------------------------------------------------------

    def _show(self) -> None:
        """Show the text as typed, and enable SET only when it may be sent (else say why)."""
        value, why = self.entry.verdict()
        if self.text.text != self.entry.text:
            self.text.text = self.entry.text
        if self.reason.text != (shown := why if self.entry.text == "" or not why else f"✖ {why}"):
            self.reason.text = shown
        self.reason.classes(replace="bf-keypad-reason" + (" bf-keypad-refused" if why and self.entry.text else ""))
        self.set_button.set_enabled(value is not None)
        self.down.set_enabled(self.entry.can_nudge(-1))
        self.up.set_enabled(self.entry.can_nudge(1))


async def enter_value(endpoint: Endpoint, state: EndpointState) -> Value | None:
    """Open the keypad for a writable endpoint; the value to send, or None when the operator cancelled.

    The caller sends it through `Commander.press`. A nudge starts from the present value only when it
    is live: a stale or bad value is shown ("now ? 75.0 °C") but never used as a starting point.
    """
    live = words.quality_view(state).live
    present = float(state.value) if live and isinstance(state.value, int | float) else None
    return await enter_number(endpoint.display_name, rules_for(endpoint), words.shown_value(endpoint, state), present)


async def enter_number(title: str, rules: EntryRules, present_text: str, present: float | None = None) -> Value | None:
    """Open the keypad for any number (not only an endpoint's: a tuning gain, an alarm limit)."""
    return await Keypad(title, rules, present_text, present).ask()
