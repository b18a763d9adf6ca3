"""A controller's faceplate on the Control Panel: PV, SP, output, mode, state and a 30-minute mini-trend.

Which controllers a user sees is the controller service's answer (`ControllerService.views`, the
node rule); every action goes through the service's methods, which check the role and the node
again, store and audit the change — the faceplate only asks and shows the outcome (a refusal
through `ui.errors.notify_error`). What it shows comes from the bus: the controller's own
`controller` frames and its input's telemetry, handed over by the page's LiveView at ≤ 5 Hz, and
applied as explicit, compared element updates (nothing is bound).

A technician also tunes the loop here: TUNING (gains on the keypad) and AUTOTUNE (a relay test's
options on the keypad, why it cannot start in the service's words, its progress, ABORT, and the
proposed gains beside the present ones with ACCEPT / DISCARD). Everyone sees the test's line; only
a technician gets its buttons, and the service checks the role again.

ISA-101: everything normal is grey; a state that needs the operator (tripped, input fault, held)
is drawn with a word, a shape and a border, and a PV that is not live is hatched and prefixed "?"
exactly as a tile's value is (`words.shown_value`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from nicegui import ui
from nicegui.client import Client

from bevforge import permissions
from bevforge.config import Controller, Endpoint, SoftwareSetpoint
from bevforge.domain import Actor, EndpointState, Quality, utcnow
from bevforge.errors import BevForgeError
from bevforge.runtime import Runtime
from ui import keypad, session, words
from ui.controls import confirm_critical, tag
from ui.errors import notify_error

TREND_SPAN = timedelta(minutes=30)
TREND_POINTS = 180  # one point per 10 s over 30 minutes
TREND_STEP_MS = int(TREND_SPAN.total_seconds() * 1000 / TREND_POINTS)
TREND_REDRAW_S = 1.0
OUT_HOLD_BUCKETS = 3  # the output record's 10 s heartbeat, with room for one late record

# State → (word, shape, CSS modifier). Abnormal states carry a shape and a word, never colour alone.
STATE_WORDS: dict[str, tuple[str, str, str]] = {
    "regulating": ("REGULATING", "", "normal"),
    "manual": ("MANUAL", "", "normal"),
    "off": ("OFF", "", "normal"),
    "autotuning": ("AUTOTUNING", "◇", "notice"),
    "held": ("HELD BY INTERLOCK", "■", "held"),
    "input_fault": ("INPUT FAULT", "▲", "fault"),
    "tripped": ("TRIPPED", "◆", "tripped"),
}
MODES = ("auto", "manual", "off")

# The tuning a technician may change, in the frame's names, with the keypad's unit and limits.
TUNING_FIELDS: tuple[tuple[str, str, str, float | None, float | None], ...] = (
    ("kp", "Kp", "%/°C", 0.0, None),
    ("ki", "Ki", "%/(°C·s)", 0.0, None),
    ("kd", "Kd", "%·s/°C", 0.0, None),
    ("derivativeFilterS", "Derivative filter", "s", 0.0, None),
    ("outMin", "Output min", "%", -100.0, 100.0),
    ("outMax", "Output max", "%", -100.0, 100.0),
    ("rampCPerMin", "Setpoint ramp", "°C/min", 0.0, None),
    ("boilThresholdC", "Boil threshold", "°C", None, None),
    ("boilOutputPct", "Boil output", "%", 0.0, 100.0),
)
# The relay test's options a technician may change before START: (frame-style key, label, keypad rules,
# the service's default shown until edited, the service's option name, factor from the shown unit to it).
AUTOTUNE_OPTIONS: tuple[tuple[str, str, keypad.EntryRules, float | None, str, float], ...] = (
    ("amplitudePct", "Relay amplitude ±", keypad.EntryRules(1.0, 100.0, "%", 0, 5.0), 40.0, "amplitude_pct", 1.0),
    ("biasPct", "Relay bias", keypad.EntryRules(0.0, 100.0, "%", 0, 5.0), None, "bias_pct", 1.0),
    ("hysteresisC", "Noise band ε", keypad.EntryRules(0.0, 2.0, "°C", 2, 0.05), 0.2, "hysteresis_c", 1.0),
    ("bandC", "Abort outside SP ±", keypad.EntryRules(0.5, 20.0, "°C", 1, 0.5), 5.0, "band_c", 1.0),
    ("maxDurationMin", "Give up after", keypad.EntryRules(1.0, 1440.0, "min", 0, 10.0), 120.0, "max_duration_s",
     60.0),
    ("cycles", "Agreeing cycles", keypad.EntryRules(2.0, 20.0, "", 0, 1.0), 3.0, "cycles", 1.0),
)
SNAKE = {"kp": "kp", "ki": "ki", "kd": "kd", "derivativeFilterS": "derivative_filter_s", "outMin": "out_min",
         "outMax": "out_max", "rampCPerMin": "ramp_c_per_min", "boilThresholdC": "boil_threshold_c",
         "boilOutputPct": "boil_output_pct"}


def state_view(state: str) -> tuple[str, str]:
    """The state's text (shape + word) and its CSS modifier."""
    word, shape, css = STATE_WORDS.get(state, (state.upper(), "?", "notice"))
    return (f"{shape} {word}" if shape else word), css


def _ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)


class MiniTrend:
    """PV, SP and output over the last 30 minutes: one point per 10 s, redrawn at most once a second.

    The past comes from history: the PV as bucket averages of GOOD samples (a gap where it was not
    live); the setpoint held from one record to the next (a software setpoint is recorded when it
    changes); the output from the loop's `output_record`, held across at most `OUT_HOLD_BUCKETS`
    (it is recorded at least every 10 s while the loop runs, so a longer hole is a real gap). A loop
    without an output record draws OUT from the frames this screen received since it opened. From
    then on the frames add points; a PV that is not live adds a gap, never a point.
    """

    def __init__(self, marker: str, unit: str) -> None:
        self.pv: list[list[Any]] = []
        self.sp: list[list[Any]] = []
        self.out: list[list[Any]] = []
        self._dirty = False
        self._last_draw = 0.0
        line = {"type": "line", "showSymbol": False, "connectNulls": False, "animation": False}
        self.chart = tag(ui.echart({
            "animation": False,
            "legend": {"data": ["PV", "SP", "OUT %"], "top": 0, "right": 0, "textStyle": {"fontSize": 10}},
            "grid": {"left": 36, "right": 32, "top": 18, "bottom": 18},
            "xAxis": {"type": "time", "axisLabel": {"fontSize": 9}},
            "yAxis": [{"type": "value", "name": unit, "scale": True, "axisLabel": {"fontSize": 9}},
                      {"type": "value", "name": "%", "min": -100, "max": 100, "axisLabel": {"fontSize": 9}}],
            "series": [
                {**line, "name": "PV", "data": [], "lineStyle": {"color": "#202020", "width": 2},
                 "itemStyle": {"color": "#202020"}},
                {**line, "name": "SP", "data": [], "step": "end",
                 "lineStyle": {"color": "#6d6d6d", "type": "dashed", "width": 1}, "itemStyle": {"color": "#6d6d6d"}},
                {**line, "name": "OUT %", "data": [], "yAxisIndex": 1, "step": "end",
                 "lineStyle": {"color": "#9e9e9e", "width": 1}, "itemStyle": {"color": "#9e9e9e"}},
            ],
        }).classes("bf-faceplate-trend"), marker)

    def load_history(self, pv: list[Any], sp: list[Any], out: list[Any] | None) -> None:
        self.pv = _held_points(pv, 0)
        self.sp = _held_points(sp, TREND_POINTS)
        if out is not None:
            self.out = _held_points(out, OUT_HOLD_BUCKETS)
        self._dirty = True

    def add(self, at: int, pv: float | None, sp: float | None, out: float | None) -> None:
        """The present values at `at` (ms): within one 10 s step the newest wins; None is a gap."""
        horizon = at - int(TREND_SPAN.total_seconds() * 1000)
        for series, value in ((self.pv, pv), (self.sp, sp), (self.out, out)):
            if series and at < series[-1][0] + TREND_STEP_MS:
                series[-1][1] = value
            else:
                series.append([at, value])
            while series and series[0][0] < horizon:
                series.pop(0)
        self._dirty = True

    def draw(self) -> None:
        """Redraw if something changed, at most once a second (called by the panel's 1 s timer)."""
        now = time.monotonic()
        if not self._dirty or now - self._last_draw < TREND_REDRAW_S:
            return
        self._last_draw = now
        self._dirty = False
        series = self.chart.options["series"]
        series[0]["data"] = [list(p) for p in self.pv]
        series[1]["data"] = [list(p) for p in self.sp]
        series[2]["data"] = [list(p) for p in self.out]
        self.chart.update()


class Faceplate:
    """One controller, drawn once; `show_frame` and `show_input` change only what differs."""

    def __init__(self, runtime: Runtime, client: Client, actor: Actor, view: dict[str, Any]) -> None:
        self.runtime = runtime
        self.client = client
        self.id: str = view["id"]
        self.cfg: Controller = next(c for c in runtime.config.controllers if c.id == self.id)
        self.input: Endpoint = runtime.plant.endpoints[self.cfg.input]
        self.frame: dict[str, Any] = view
        self.input_state: EndpointState = runtime.plant.states[self.input.id]
        self._state_css = ""
        self._pv_css = ""
        self._mode_buttons: dict[str, ui.button] = {}
        self._output_button: ui.button | None = None
        self._reset_button: ui.button | None = None
        operator = permissions.has_role(actor, permissions.OPERATOR)  # a viewer gets no controls at all
        technician = permissions.has_role(actor, permissions.TECHNICIAN)
        self.technician = technician
        self._autotune_start: ui.button | None = None
        self._autotune_shown: Any = ()
        cid = self.id
        with tag(ui.card().classes("bf-tile bf-faceplate"), f"faceplate-{cid}") as self.card:
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                ui.label(view["name"]).classes("bf-tile-title")
                ui.space()
                self.mode = tag(ui.label("").classes("bf-badge bf-badge-good"), f"fp-mode-{cid}")
            self.state = tag(ui.label("").classes("bf-fp-state"), f"fp-state-{cid}")
            self.reason = tag(ui.label("").classes("bf-detail"), f"fp-reason-{cid}")
            with ui.column().classes("bf-row gap-1") as self.pv_box:
                with ui.row().classes("w-full items-center no-wrap gap-3"):
                    ui.label("PV").classes("bf-name")
                    self.pv = tag(ui.label("—").classes("bf-value"), f"fp-pv-{cid}")
                    self.pv_badge = tag(ui.label("").classes("bf-badge"), f"fp-pv-quality-{cid}")
            with ui.row().classes("bf-row w-full items-center no-wrap gap-3"):
                ui.label("SP").classes("bf-name")
                self.sp = tag(ui.label("—").classes("bf-value"), f"fp-sp-{cid}")
                if operator:
                    tag(ui.button("SET", on_click=self._enter_setpoint).classes("bf-btn bf-control"),
                        f"fp-set-sp-{cid}")
            with ui.row().classes("bf-row w-full items-center no-wrap gap-3"):
                ui.label("OUT").classes("bf-name")
                self.out = tag(ui.label("—").classes("bf-value"), f"fp-out-{cid}")
                if operator:
                    self._output_button = tag(ui.button("SET %", on_click=self._enter_output)
                                              .classes("bf-btn bf-control"), f"fp-set-out-{cid}")
            if operator:
                with ui.row().classes("w-full items-center gap-2"):
                    for mode in MODES:
                        button = ui.button(mode.upper(), on_click=lambda m=mode: self._set_mode(m), color=None)
                        self._mode_buttons[mode] = tag(button.classes("bf-btn bf-control bf-mode")
                                                       .props("unelevated"), f"fp-mode-{mode}-{cid}")
                    self._reset_button = tag(ui.button("RESET", on_click=self._reset)
                                             .classes("bf-btn bf-btn-stop bf-control"), f"fp-reset-{cid}")
                    if technician and self.cfg.kind == "pid":
                        tag(ui.button("TUNING", on_click=self._open_tuning).classes("bf-btn bf-control"),
                            f"fp-tuning-{cid}")
                        self._autotune_start = tag(ui.button("AUTOTUNE", on_click=self._open_autotune)
                                                   .classes("bf-btn bf-control"), f"fp-autotune-start-{cid}")
            self.autotune_box = tag(ui.column().classes("bf-row w-full gap-1"), f"fp-autotune-{cid}")
            self.autotune_box.set_visibility(False)
            self.trend = MiniTrend(f"fp-trend-{cid}", view.get("unit") or "")
        self.show_frame(view)
        self.show_input(self.input_state)

    # -- what is shown -----------------------------------------------------------------------

    def show_frame(self, frame: dict[str, Any]) -> None:
        """A pushed `controller` frame (or the service's present view on a redraw)."""
        self.frame = frame
        unit = frame.get("unit") or ""
        _set_text(self.mode, f"MODE {frame['mode'].upper()}")
        text, css = state_view(frame["state"])
        _set_text(self.state, text)
        if css != self._state_css:
            self.card.classes(remove=f"bf-fp-{self._state_css}" if self._state_css else None,
                              add=f"bf-fp-{css}")
            self._state_css = css
        _set_text(self.reason, frame.get("reason") or "")
        sp = frame.get("sp")
        _set_text(self.sp, "—" if sp is None else f"{sp:.1f} {unit}".strip())
        off = frame["state"] in ("off", "tripped", "input_fault")
        out = frame.get("output")
        _set_text(self.out, "—" if out is None else f"{out:.0f} %" + (" (safe)" if off else ""))
        for mode, button in self._mode_buttons.items():
            current = mode == frame["mode"]
            button.classes(add="bf-mode-on" if current else "bf-mode-off",
                           remove="bf-mode-off" if current else "bf-mode-on")
        if self._output_button is not None and self._output_button.visible != (frame["mode"] == "manual"):
            self._output_button.set_visibility(frame["mode"] == "manual")
        if self._reset_button is not None and self._reset_button.visible != (frame["state"] == "tripped"):
            self._reset_button.set_visibility(frame["state"] == "tripped")
        if self._autotune_start is not None and self._autotune_start.visible == (frame["state"] == "autotuning"):
            self._autotune_start.set_visibility(frame["state"] != "autotuning")
        self._show_autotune(frame)
        self._show_pv()
        self.trend.add(_ms(utcnow()), self._live_pv(), sp, out)

    def _show_autotune(self, frame: dict[str, Any]) -> None:
        """The last relay test: running (cycles measured, ABORT), aborted (why, DISMISS) or finished (the
        proposed gains beside the present ones, ACCEPT / DISCARD). Redrawn only when what it shows changes;
        everyone sees it, only a technician gets the buttons."""
        tune = frame.get("autotune")
        tuning = frame.get("tuning") or {}
        shown = None if tune is None else (repr(tune), tuple(tuning.get(k) for k in ("kp", "ki", "kd")))
        if shown == self._autotune_shown:
            return
        self._autotune_shown = shown
        box, cid = self.autotune_box, self.id
        box.clear()
        box.set_visibility(tune is not None)
        if tune is None:
            return
        with box:
            state, cycles = tune["state"], tune.get("cyclesMeasured") or 0
            if state == "running":
                text = f"◇ AUTOTUNE RUNNING — {cycles} cycle{'' if cycles == 1 else 's'} measured"
            elif state == "aborted":
                text = f"AUTOTUNE ENDED WITHOUT GAINS — {tune.get('reason') or 'aborted'}"
            else:
                text = f"AUTOTUNE FINISHED — {cycles} cycles measured; proposed gains:"
            tag(ui.label(text).classes("bf-detail font-bold"), f"fp-autotune-state-{cid}")
            result = tune.get("result")
            if state == "succeeded" and result:
                with tag(ui.grid(columns=3).classes("w-full gap-x-3 gap-y-0"), f"fp-autotune-gains-{cid}"):
                    for head in ("", "NOW", "PROPOSED"):
                        ui.label(head).classes("bf-name")
                    for key, label in (("kp", "Kp %/°C"), ("ki", "Ki %/(°C·s)"), ("kd", "Kd %·s/°C")):
                        ui.label(label).classes("bf-name")
                        tag(ui.label(_gain(tuning.get(key))), f"fp-autotune-now-{key}-{cid}")
                        tag(ui.label(_gain(result.get(key))).classes("font-bold"), f"fp-autotune-new-{key}-{cid}")
                tag(ui.label(f"Ku {_gain(result.get('ku'))} %/°C · Pu {_gain(result.get('puS'))} s · "
                             f"{result.get('rule') or ''}").classes("bf-detail"), f"fp-autotune-ultimate-{cid}")
            if not self.technician:
                return
            with ui.row().classes("w-full gap-2"):
                if state == "running":
                    tag(ui.button("ABORT AUTOTUNE", on_click=self._abort_autotune)
                        .classes("bf-btn bf-btn-stop bf-control"), f"fp-autotune-abort-{cid}")
                elif state == "succeeded":
                    tag(ui.button("ACCEPT", on_click=self._accept_autotune).classes("bf-btn bf-control"),
                        f"fp-autotune-accept-{cid}")
                    tag(ui.button("DISCARD", on_click=self._discard_autotune).classes("bf-btn bf-control"),
                        f"fp-autotune-discard-{cid}")
                else:
                    tag(ui.button("DISMISS", on_click=self._discard_autotune).classes("bf-btn bf-control"),
                        f"fp-autotune-discard-{cid}")

    def show_input(self, state: EndpointState) -> None:
        """A pushed telemetry frame of the controller's input (the same value its tile shows)."""
        self.input_state = state
        self._show_pv()

    def _live_pv(self) -> float | None:
        state = self.input_state
        if state.quality is not Quality.GOOD or state.value is None or self.frame["state"] == "input_fault":
            return None
        return float(state.value)

    def _show_pv(self) -> None:
        state = self.input_state
        view = words.quality_view(state)
        text, word, css = words.shown_value(self.input, state), view.word, view.css
        if view.live and self.frame["state"] == "input_fault":  # the loop refuses it (its own stale time)
            text, word, css = f"? {text}", "FAULT", "stale"
        _set_text(self.pv, text)
        _set_text(self.pv_badge, word)
        if css != self._pv_css:
            if self._pv_css:
                self.pv_box.classes(remove=f"bf-row-{self._pv_css}")
                self.pv_badge.classes(remove=f"bf-badge-{self._pv_css}")
            self.pv_box.classes(add=f"bf-row-{css}")
            self.pv_badge.classes(add=f"bf-badge-{css}")
            self._pv_css = css

    async def load_trend(self) -> None:
        until = utcnow()
        since = until - TREND_SPAN
        reader, record = self.runtime.history_reader, self.cfg.output_record
        pv = await reader.trend(self.input.id, since, until, TREND_POINTS)
        sp = await reader.trend(self.cfg.setpoint_id, since, until, TREND_POINTS)
        out = None if record is None else await reader.trend(record.id, since, until, TREND_POINTS)
        self.trend.load_history(pv, sp, out)
        self.trend.draw()

    # -- what people do ----------------------------------------------------------------------

    async def _act(self, what: str, role: str, action: Callable[[Actor], Awaitable[dict[str, Any]]]) -> None:
        """Ask the service as the person at this screen now; show the answer or the refusal."""
        actor = session.allowed(self.client, role, what)
        if actor is None:
            return
        try:
            frame = await action(actor)
        except BevForgeError as exc:
            notify_error(what, exc)
            return
        self.show_frame(frame)

    async def _enter_setpoint(self) -> None:
        sp = self.cfg.setpoint
        if isinstance(sp, SoftwareSetpoint):
            rules = keypad.unit_rules(sp.unit, sp.min, sp.max)
        else:
            rules = keypad.rules_for(self.runtime.plant.endpoints[sp])
        now = self.frame.get("sp")
        unit = self.frame.get("unit") or ""
        value = await keypad.enter_number(f"{self.frame['name']} setpoint", rules,
                                          "—" if now is None else f"{now:.1f} {unit}".strip(), now)
        if value is None:
            return
        await self._act(f"{self.frame['name']}: setpoint {value:g} {unit}".strip(), permissions.OPERATOR,
                        lambda actor: self.runtime.controllers.set_setpoint(actor, self.id, value,
                                                                                origin="ui"))

    async def _enter_output(self) -> None:
        tuning = self.frame.get("tuning") or {}
        low, high = float(tuning.get("outMin", 0.0)), float(tuning.get("outMax", 100.0))
        now = self.frame.get("manualOutput")
        value = await keypad.enter_number(f"{self.frame['name']} manual output", keypad.unit_rules("%", low, high),
                                          "—" if now is None else f"{now:.0f} %", now)
        if value is None:
            return
        await self._act(f"{self.frame['name']}: output {value:g} %", permissions.OPERATOR,
                        lambda actor: self.runtime.controllers.set_output(actor, self.id, value))

    async def _set_mode(self, mode: str) -> None:
        what = f"{self.frame['name']}: {mode.upper()}"
        if mode != "off" and self._critical() and not await self._confirm(mode):
            return
        await self._act(what, permissions.OPERATOR,
                        lambda actor: self.runtime.controllers.set_mode(actor, self.id, mode))

    async def _reset(self) -> None:
        await self._act(f"{self.frame['name']}: RESET", permissions.OPERATOR,
                        lambda actor: self.runtime.controllers.reset(actor, self.id))

    def _critical(self) -> bool:
        return any(self.runtime.plant.endpoints[eid].critical for eid in self.cfg.outputs)

    async def _confirm(self, mode: str) -> bool:
        """A loop that drives a critical output (a heater) asks "current → target" before it may switch it."""
        return await confirm_critical(self.frame["name"], f"{self.frame['mode'].upper()} → {mode.upper()}",
                                      "This loop switches a critical output. Check the vessel before you confirm.",
                                      f"CONFIRM {mode.upper()}")

    async def _open_autotune(self) -> None:
        """The technician's relay-test dialog: why it cannot start now (the service's words), or its options
        on the keypad (defaults shown) and START."""
        name = self.frame["name"]
        actor = session.allowed(self.client, permissions.TECHNICIAN, f"{name}: autotune")
        if actor is None:
            return
        cid = self.id
        try:
            refusal = self.runtime.controllers.autotune_refusal(actor, cid)
        except BevForgeError as exc:
            notify_error(f"{name}: autotune", exc)
            return
        changed: dict[str, float] = {}
        unit = self.frame.get("unit") or ""
        sp = self.frame.get("sp")
        with ui.dialog().props("persistent") as dialog, \
                tag(ui.card().classes("bf-confirm"), f"fp-autotune-dialog-{cid}"):
            ui.label(f"Autotune: {name}").classes("text-xl font-bold")
            ui.label(f"A relay test around the setpoint {'—' if sp is None else f'{sp:.1f} {unit}'}: the output "
                     "switches between bias + amplitude and bias − amplitude until the temperature swings "
                     "evenly, then PID gains are proposed. Nothing changes in the tuning until you accept "
                     "them.").classes("bf-detail")
            if refusal is not None:
                tag(ui.label(f"Cannot start: {refusal}").classes("bf-detail font-bold"), f"fp-autotune-refusal-{cid}")
            for key, label, rules, default, _option, _factor in AUTOTUNE_OPTIONS:
                with ui.row().classes("w-full items-center no-wrap gap-3"):
                    ui.label(f"{label} ({rules.unit})" if rules.unit else label).classes("bf-name")
                    present = "present output" if default is None else f"{default:g}"
                    shown = tag(ui.label(f"{present} (default)").classes("bf-value"), f"fp-autotune-{key}-{cid}")

                    async def edit(key: str = key, label: str = label, rules: keypad.EntryRules = rules,
                                   default: float | None = default, shown: ui.label = shown) -> None:
                        now = changed.get(key, default)
                        value = await keypad.enter_number(f"{name} autotune: {label}", rules,
                                                          "present output" if now is None else f"{now:g}", now)
                        if value is not None:
                            changed[key] = float(value)
                            shown.text = f"{float(value):g} (new)"

                    tag(ui.button("EDIT", on_click=edit).classes("bf-btn bf-control"), f"fp-autotune-edit-{key}-{cid}")
            with ui.row().classes("w-full justify-between"):
                tag(ui.button("CANCEL", on_click=lambda: dialog.submit(False)).classes("bf-btn bf-control"),
                    f"fp-autotune-cancel-{cid}")
                start = tag(ui.button("START", on_click=lambda: dialog.submit(True)).classes("bf-btn bf-control"),
                            f"fp-autotune-go-{cid}")
                start.set_enabled(refusal is None)
        dialog.open()
        try:
            go = bool(await dialog)
        finally:
            dialog.delete()
        if not go:
            return
        options: dict[str, float] = {}
        for key, _label, _rules, _default, option, factor in AUTOTUNE_OPTIONS:
            if key in changed:
                options[option] = changed[key] * factor
        await self._act(f"{name}: autotune", permissions.TECHNICIAN,
                        lambda actor: self.runtime.controllers.start_autotune(actor, self.id, options))

    async def _abort_autotune(self) -> None:
        await self._act(f"{self.frame['name']}: abort autotune", permissions.TECHNICIAN,
                        lambda actor: self.runtime.controllers.abort_autotune(actor, self.id))

    async def _accept_autotune(self) -> None:
        await self._act(f"{self.frame['name']}: accept autotune gains", permissions.TECHNICIAN,
                        lambda actor: self.runtime.controllers.accept_autotune(actor, self.id))

    async def _discard_autotune(self) -> None:
        await self._act(f"{self.frame['name']}: discard autotune", permissions.TECHNICIAN,
                        lambda actor: self.runtime.controllers.discard_autotune(actor, self.id))

    async def _open_tuning(self) -> None:
        """The technician's tuning dialog: each value on the keypad, sent together with APPLY."""
        if session.allowed(self.client, permissions.TECHNICIAN, f"{self.frame['name']}: tuning") is None:
            return
        tuning = dict(self.frame.get("tuning") or {})
        changed: dict[str, float] = {}
        cid = self.id
        with ui.dialog().props("persistent") as dialog, tag(ui.card().classes("bf-confirm"), f"fp-tuning-dialog-{cid}"):
            ui.label(f"Tuning: {self.frame['name']}").classes("text-xl font-bold")
            for key, label, unit, low, high in TUNING_FIELDS:
                with ui.row().classes("w-full items-center no-wrap gap-3"):
                    ui.label(f"{label} ({unit})").classes("bf-name")
                    shown = tag(ui.label(_gain(tuning.get(key))).classes("bf-value"), f"fp-tuning-{key}-{cid}")

                    async def edit(key: str = key, label: str = label, unit: str = unit, low: float | None = low,
                                   high: float | None = high, shown: ui.label = shown) -> None:
                        present = changed.get(key, tuning.get(key))
                        rules = keypad.EntryRules(low, high, unit, 4, 0.1 if unit != "%" else 1.0)
                        value = await keypad.enter_number(f"{self.frame['name']} {label}", rules, _gain(present),
                                                          present)
                        if value is not None:
                            changed[key] = float(value)
                            shown.text = f"{_gain(value)} (new)"

                    tag(ui.button("EDIT", on_click=edit).classes("bf-btn bf-control"), f"fp-tuning-edit-{key}-{cid}")
            with ui.row().classes("w-full justify-between"):
                tag(ui.button("CANCEL", on_click=lambda: dialog.submit(False)).classes("bf-btn bf-control"),
                    f"fp-tuning-cancel-{cid}")
                tag(ui.button("APPLY", on_click=lambda: dialog.submit(True)).classes("bf-btn bf-control"),
                    f"fp-tuning-apply-{cid}")
        dialog.open()
        try:
            apply = bool(await dialog)
        finally:
            dialog.delete()
        if not apply or not changed:
            return
        values = {SNAKE[k]: v for k, v in changed.items()}
        await self._act(f"{self.frame['name']}: tuning", permissions.TECHNICIAN,
                        lambda actor: self.runtime.controllers.set_tuning(actor, self.id, values))


def _held_points(buckets: list[Any], hold: int) -> list[list[Any]]:
    """Bucket averages as chart points; an empty bucket repeats the last value for up to `hold` buckets
    (a value recorded only when it changes is still in force), after that it is a gap."""
    points: list[list[Any]] = []
    last: float | None = None
    empty = 0
    for bucket in buckets:
        if bucket.average is not None:
            last, empty = round(bucket.average, 3), 0
        else:
            empty += 1
            if empty > hold:
                last = None
        points.append([_ms(bucket.start), last])
    return points


def _gain(value: Any) -> str:
    return "—" if value is None else f"{float(value):.4g}"


def _set_text(label: ui.label, text: str) -> None:
    if label.text != text:
        label.text = text


__all__ = ["Faceplate", "MiniTrend", "state_view"]
