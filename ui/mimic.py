"""The process mimic (/mimic): the brewhouse as a picture, drawn from the config's `layout:`.

Vessels with their fill level, temperature and setpoint; valves and pumps with their state; pipes
that carry flow while their valves are open and their pump runs; heaters and the glycol supply with
their output. ISA-101: everything normal is grey (a running pump or an open valve is dark grey, a
flowing pipe dark with a moving dash); colour appears only for an alarm on a vessel, always with its
shape and word; a value that is not live reads exactly as on a tile (`words.shown_value`: "? 72.4 °C"
plus STALE / BAD) and its symbol is hatched.

The SVG is drawn once from NiceGUI elements and then changed only by explicit, compared attribute
and text updates (`_set`), from the page's LiveView at ≤ 5 Hz; nothing is bound. Tapping a symbol
opens its dialog: a tile row (`ui.tiles.EndpointRow`) for each of its points — the same buttons,
keypad, `Commander` pipeline, confirmation of critical outputs and interlock reasons as the Control
Panel — and, when the symbol names a controller, that controller's faceplate. While a command to a
symbol's output is on its way (from any screen or the API) the symbol keeps its present state with
" …" after it: pending, never the new state before the device's readback.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui
from nicegui.elements.mixins.text_element import TextElement

from bevforge import messages, permissions
from bevforge.alarms import Alarm
from bevforge.config import Endpoint
from bevforge.domain import Actor, EndpointState, Quality
from bevforge.layout import LayoutPipe, LayoutSymbol, PlantLayout
from bevforge.runtime import Runtime
from ui import words
from ui.controls import Commander, tag
from ui.faceplate import TREND_REDRAW_S, Faceplate
from ui.panel import worst_alarms
from ui.theme import SEVERITY_COLOURS, SEVERITY_SHAPES
from ui.tiles import ALARM_WORDS, FINAL, EndpointRow

HIT_MIN = 80.0  # canvas units: a symbol's tap area is at least this square (≥ 64 px at 1024 px wide)
# On a screen narrower than 900 px (a phone) the drawing is never scaled below this, so a tap area stays
# ≥ 64 px and 15-unit labels ≥ 12 px; it scrolls sideways inside its box instead (theme.py: .bf-mimic).
MIMIC_PHONE_SCALE = 0.8
LEVEL_FILL = {True: 1.0, False: 0.25}  # a vessel with only a level switch: full when HIGH, a quarter when LOW
# The drawing's height is what the header leaves (theme.py: .bf-mimic-svg); the header's height changes with
# the screen's width (it wraps on a phone), so the browser tells the CSS what it is.
HEADER_HEIGHT_SCRIPT = """<script>
(function () {
  function watch() {
    const header = document.querySelector('.q-header');
    if (!header) { setTimeout(watch, 50); return; }
    new ResizeObserver(() => document.documentElement.style.setProperty('--bf-header-h', header.offsetHeight + 'px'))
      .observe(header);
  }
  watch();
})();
</script>"""
DRAW_ORDER = {"vessel": 0, "glycol": 0, "heater": 1, "valve": 2, "pump": 2}


# -- pure: what the picture says --------------------------------------------------------------


def is_live_true(state: EndpointState | None) -> bool:
    """A bool point that reads ON / OPEN / RUNNING with a live value (a stale "open" is not open)."""
    return state is not None and state.quality is Quality.GOOD and state.value is True


def pipe_flows(pipe: LayoutPipe, layout: PlantLayout, states: dict[int, EndpointState]) -> bool:
    """A pipe carries flow while every valve on it is OPEN and its pump (if any) RUNNING, all live."""
    ids = [layout.symbol(v).endpoint for v in pipe.valves]
    if pipe.pump is not None:
        ids.append(layout.symbol(pipe.pump).endpoint)
    return bool(ids) and all(eid is not None and is_live_true(states.get(eid)) for eid in ids)


def capacity_of(runtime: Runtime, symbol: LayoutSymbol) -> float:
    """The volume of a full vessel: the symbol's capacity_l, its node's volume_l, its volume's range max."""
    if symbol.capacity_l is not None:
        return symbol.capacity_l
    node = next((n for n in runtime.config.nodes if n.id == symbol.node), None)
    if node is not None and node.volume_l is not None:
        return node.volume_l
    volume = runtime.plant.endpoints.get(symbol.volume) if symbol.volume is not None else None
    if volume is not None and volume.range is not None and volume.range.max > 0:
        return volume.range.max
    return 100.0


def fill_fraction(symbol: LayoutSymbol, capacity: float, states: dict[int, EndpointState]) -> float | None:
    """How full the vessel is drawn (0…1), from its volume, else its level switch; None: nothing to draw
    from. A value that is not live still draws its last value (hatched by the caller)."""
    if symbol.volume is not None:
        state = states.get(symbol.volume)
        if state is None or not isinstance(state.value, int | float) or isinstance(state.value, bool):
            return None
        return max(0.0, min(1.0, float(state.value) / capacity))
    if symbol.level is not None:
        state = states.get(symbol.level)
        if state is None or not isinstance(state.value, bool):
            return None
        return LEVEL_FILL[state.value]
    return None


def shown(endpoint: Endpoint, state: EndpointState) -> str:
    """A value as a tile shows it, with the tile's STALE / BAD word when it is not live."""
    view = words.quality_view(state)
    text = words.shown_value(endpoint, state)
    return text if view.live else f"{text} {view.word}"


# -- drawing helpers ------------------------------------------------------------------------


def _svg(tag_name: str, css: str = "", **attrs: Any) -> ui.element:
    element = ui.element(tag_name)
    element._props.update({k.replace("_", "-"): v for k, v in attrs.items()})
    if css:
        element.classes(css)
    return element


def _text(text: str, x: float, y: float, css: str) -> TextElement:
    element = TextElement(tag="text", text=text)
    element._props.update({"x": round(x, 1), "y": round(y, 1)})
    element.classes(css)
    return element


def _set(element: ui.element, **attrs: Any) -> None:
    """Change attributes only when they differ: an unchanged value sends nothing to the browser."""
    changed = False
    for key, value in attrs.items():
        key = key.replace("_", "-")
        if element._props.get(key) != value:
            element._props[key] = value
            changed = True
    if changed:
        element.update()


def _set_text(element: TextElement, text: str) -> None:
    if element.text != text:
        element.text = text


class _Look:
    """One element's state class (bf-mm-on / -off / -notlive …), swapped only when it changes."""

    def __init__(self, element: ui.element) -> None:
        self.element = element
        self.css = ""

    def set(self, css: str) -> None:
        if css != self.css:
            self.element.classes(remove=self.css or None, add=css)
            self.css = css


# -- the symbols ----------------------------------------------------------------------------


class SymbolView:
    """One drawn symbol; `show` redraws what changed from the present states."""

    def __init__(self, mimic: Mimic, symbol: LayoutSymbol) -> None:
        self.mimic = mimic
        self.symbol = symbol
        self.endpoints = {eid: mimic.runtime.plant.endpoints[eid] for eid in symbol.endpoint_ids}
        width, height = symbol.size
        self.left, self.top = symbol.x - width / 2, symbol.y - height / 2
        self.width, self.height = width, height
        with tag(_svg("g", f"bf-mm bf-mm-sym-{symbol.kind}"), f"mimic-{symbol.id}") as self.group:
            self.group.on("click", lambda: mimic.open(symbol))
            self.draw()
            hit_w, hit_h = max(width, HIT_MIN), max(height, HIT_MIN)
            tag(_svg("rect", "bf-mm-hit", x=round(symbol.x - hit_w / 2, 1), y=round(symbol.y - hit_h / 2, 1),
                     width=hit_w, height=hit_h), f"mimic-hit-{symbol.id}")

    @property
    def label(self) -> str:
        if self.symbol.label:
            return self.symbol.label
        if self.symbol.endpoint is not None:
            return self.endpoints[self.symbol.endpoint].display_name
        return self.symbol.id

    def draw(self) -> None:
        raise NotImplementedError

    def show(self, states: dict[int, EndpointState]) -> None:
        raise NotImplementedError

    def show_alarm(self, alarm: Alarm | None) -> None:
        """Only vessels carry alarm tags (their temperatures and volumes are what alarms watch)."""

    def _pending(self, eid: int) -> str:
        """" …" after the state while a command to this output is on its way (pending, never optimistic)."""
        return " …" if eid in self.mimic.pending else ""

    def _state_look(self, state: EndpointState | None) -> str:
        if state is None or not words.quality_view(state).live:
            return "bf-mm-notlive"
        return "bf-mm-on" if state.value is True else "bf-mm-off"


class VesselView(SymbolView):
    def draw(self) -> None:
        s, x = self.symbol, self.symbol.x
        node = next((n for n in self.mimic.runtime.config.nodes if n.id == s.node), None)
        title = s.label or (node.name if node is not None else s.id)
        self.capacity = capacity_of(self.mimic.runtime, s)
        self.outline = _svg("rect", "bf-mm-vessel", x=self.left, y=self.top, width=self.width, height=self.height,
                            rx=10)
        self.fill = tag(_svg("rect", "bf-mm-fill", x=self.left + 3, y=self.top + self.height - 3,
                             width=self.width - 6, height=0, rx=7), f"mimic-fill-{s.id}")
        self.fill_look = _Look(self.fill)
        self.fill.set_visibility(False)
        _text(title, x, self.top - 10, "bf-mm-title")
        self.alarm = tag(_text("", x, self.top - 32, "bf-mm-alarm"), f"mimic-alarm-{s.id}")
        self.alarm.set_visibility(False)
        self.lines: dict[str, TextElement] = {}
        y = self.top + 34
        for name, css in (("temperature", "bf-mm-value"), ("setpoint", "bf-mm-small"), ("volume", "bf-mm-small"),
                          ("level", "bf-mm-small")):
            if getattr(s, name) is not None:
                self.lines[name] = tag(_text("—", x, y, css), f"mimic-{s.id}-{name}")
                y += 30 if name == "temperature" else 24

    def show(self, states: dict[int, EndpointState]) -> None:
        s = self.symbol
        for name, line in self.lines.items():
            eid = getattr(s, name)
            state = states.get(eid)
            if state is None:
                continue
            endpoint = self.endpoints[eid]
            text = shown(endpoint, state)
            if name == "setpoint":
                text = f"SP {text}"
            elif name == "level":
                text = f"LEVEL {text}"
            _set_text(line, text)
        fraction = fill_fraction(s, self.capacity, states)
        if fraction is None:
            if self.fill.visible:
                self.fill.set_visibility(False)
            return
        inner = self.height - 6
        height = round(inner * fraction, 1)
        _set(self.fill, y=round(self.top + 3 + inner - height, 1), height=height)
        source = states.get(s.volume if s.volume is not None else s.level)  # type: ignore[arg-type]
        self.fill_look.set("bf-mm-fill-live" if source is not None and words.quality_view(source).live
                           else "bf-mm-notlive")
        if not self.fill.visible:
            self.fill.set_visibility(True)

    def show_alarm(self, alarm: Alarm | None) -> None:
        if alarm is None:
            if self.alarm.visible:
                self.alarm.set_visibility(False)
                self.outline.style(replace="")
            return
        severity = alarm.severity.value
        text = f"{SEVERITY_SHAPES[severity]} {ALARM_WORDS.get(alarm.kind, 'ALM')} {severity.upper()}"
        if self.alarm.text != text:
            self.alarm.text = text
            colour = SEVERITY_COLOURS[severity]
            self.alarm.style(replace=f"fill:{colour}")
            self.outline.style(replace=f"stroke:{colour};stroke-width:5")
        if not self.alarm.visible:
            self.alarm.set_visibility(True)


class ValveView(SymbolView):
    def draw(self) -> None:
        s, x, y = self.symbol, self.symbol.x, self.symbol.y
        w, h = self.width / 2, self.height / 2
        points = f"{x - w},{y - h} {x + w},{y + h} {x + w},{y - h} {x - w},{y + h}"  # the bow-tie
        self.body = _Look(_svg("polygon", "bf-mm-body", points=points))
        _text(self.label, x, y - h - 8, "bf-mm-label")
        self.state = tag(_text("—", x, y + h + 18, "bf-mm-state"), f"mimic-{s.id}-state")

    def show(self, states: dict[int, EndpointState]) -> None:
        eid = self.symbol.endpoint
        state = states.get(eid)  # type: ignore[arg-type]
        self.body.set(self._state_look(state))
        if state is not None:
            _set_text(self.state, shown(self.endpoints[eid], state) + self._pending(eid))  # type: ignore[arg-type]


class PumpView(ValveView):
    def draw(self) -> None:
        s, x, y = self.symbol, self.symbol.x, self.symbol.y
        r = min(self.width, self.height) / 2
        self.body = _Look(_svg("circle", "bf-mm-body", cx=x, cy=y, r=r))
        _svg("polygon", "bf-mm-impeller", points=f"{x - r * 0.45},{y - r * 0.55} {x + r * 0.65},{y} "
                                                 f"{x - r * 0.45},{y + r * 0.55}")
        _text(self.label, x, y - r - 8, "bf-mm-label")
        self.state = tag(_text("—", x, y + r + 18, "bf-mm-state"), f"mimic-{s.id}-state")


class HeaterView(SymbolView):
    def draw(self) -> None:
        s, x = self.symbol, self.symbol.x
        self.body = _Look(_svg("rect", "bf-mm-body", x=self.left, y=self.top, width=self.width, height=self.height,
                               rx=4))
        self.name = _Look(_text(self.label, x, self.top + self.height / 2 - 3, "bf-mm-inside"))
        self.state_text = tag(_text("—", x, self.top + self.height / 2 + 13, "bf-mm-inside"), f"mimic-{s.id}-state")
        self.state = _Look(self.state_text)

    def show(self, states: dict[int, EndpointState]) -> None:
        s = self.symbol
        state = states.get(s.endpoint)  # type: ignore[arg-type]
        look = self._state_look(state)
        self.body.set(look)
        self.name.set(look)
        self.state.set(look)
        if state is None:
            return
        text = shown(self.endpoints[s.endpoint], state)  # type: ignore[index]
        out = states.get(s.output) if s.output is not None else None
        if out is not None and out.value is not None:
            text += f" · {words.shown_value(self.endpoints[s.output], out)}"  # type: ignore[index]
        _set_text(self.state_text, text + self._pending(s.endpoint))  # type: ignore[arg-type]


class GlycolView(SymbolView):
    def draw(self) -> None:
        s, x = self.symbol, self.symbol.x
        self.body = _Look(_svg("rect", "bf-mm-body bf-mm-off", x=self.left, y=self.top, width=self.width,
                               height=self.height, rx=6))
        _text(self.label, x, self.top + 20, "bf-mm-label")
        self.lines: list[tuple[int, TextElement]] = []
        y = self.top + 42
        for eid in (s.temperature, s.endpoint, s.output):
            if eid is not None:
                self.lines.append((eid, tag(_text("—", x, y, "bf-mm-state"), f"mimic-{s.id}-{eid}")))
                y += 18

    def show(self, states: dict[int, EndpointState]) -> None:
        if self.symbol.endpoint is not None:
            self.body.set(self._state_look(states.get(self.symbol.endpoint)))
        for eid, line in self.lines:
            state = states.get(eid)
            if state is not None:
                _set_text(line, shown(self.endpoints[eid], state))


VIEWS: dict[str, type[SymbolView]] = {"vessel": VesselView, "valve": ValveView, "pump": PumpView,
                                      "heater": HeaterView, "glycol": GlycolView}


# -- the page body --------------------------------------------------------------------------


class Mimic:
    """The mimic of one page: a LiveView sink (telemetry, commands, alarms, controller frames)."""

    def __init__(self, runtime: Runtime, commander: Commander, actor: Actor) -> None:
        layout = runtime.config.layout
        assert layout is not None, "the mimic page is offered only with a layout"
        self.runtime = runtime
        self.layout = layout
        self.commander = commander
        self.actor = actor
        self.controls = permissions.has_role(actor, permissions.OPERATOR)
        commander.on_submitted.append(lambda command: self.command(command.as_dict()))
        self.states: dict[int, EndpointState] = dict(runtime.plant.states)
        self.views: dict[str, SymbolView] = {}
        self.pipes: dict[str, tuple[LayoutPipe, ui.element, _Look]] = {}
        self.dialog_rows: dict[int, list[EndpointRow]] = {}
        self.dialog_faceplates: dict[str, Faceplate] = {}
        self.pending: dict[int, str] = {}  # endpoint → the command in flight to it (from any screen or the API)
        shown_ids = {s.id for s in layout.symbols if self._may_see(s)}
        ui.add_body_html(HEADER_HEIGHT_SCRIPT)
        with tag(ui.element("div").classes("bf-mimic")
                 .style(f"--bf-mimic-phone-w: {layout.width * MIMIC_PHONE_SCALE:g}px"), "mimic"):
            with _svg("svg", "bf-mimic-svg", viewBox=f"0 0 {layout.width:g} {layout.height:g}",
                      preserveAspectRatio="xMidYMid meet", role="img",
                      style=f"aspect-ratio: {layout.width:g} / {layout.height:g}"):
                with _svg("defs"), _svg("pattern", id="bf-hatch", patternUnits="userSpaceOnUse", width=10,
                                        height=10, patternTransform="rotate(45)"):
                    _svg("rect", width=10, height=10, fill="#e4e4e4")
                    _svg("rect", width=4, height=10, fill="#9a9a9a")
                for pipe in layout.pipes:
                    if {pipe.source, pipe.target, *pipe.valves, *([pipe.pump] if pipe.pump else [])} <= shown_ids:
                        self._draw_pipe(pipe)
                for symbol in sorted(layout.symbols, key=lambda s: DRAW_ORDER[s.kind]):
                    if symbol.id in shown_ids:
                        self.views[symbol.id] = VIEWS[symbol.kind](self, symbol)
        self._show_all()

    def _may_see(self, symbol: LayoutSymbol) -> bool:
        """A symbol is drawn for a user who may see its node and every point it shows (the node rule)."""
        if symbol.node is not None and not permissions.may_see_node(self.actor, symbol.node):
            return False
        return all(permissions.may_see_endpoint(self.actor, self.runtime.plant.endpoints[eid])
                   for eid in symbol.endpoint_ids)

    def _draw_pipe(self, pipe: LayoutPipe) -> None:
        start, end = self.layout.symbol(pipe.source), self.layout.symbol(pipe.target)
        points = [(start.x, start.y), *pipe.points, (end.x, end.y)]
        line = tag(_svg("polyline", "bf-pipe", points=" ".join(f"{x:g},{y:g}" for x, y in points)),
                   f"mimic-pipe-{pipe.id}")
        self.pipes[pipe.id] = (pipe, line, _Look(line))

    # -- what it watches ----------------------------------------------------------------------

    @property
    def endpoint_ids(self) -> set[int]:
        ids = {eid for view in self.views.values() for eid in view.symbol.endpoint_ids}
        loops = self.controller_ids  # a dialog's faceplate shows its loop's input
        return ids | {c.input for c in self.runtime.config.controllers if c.id in loops}

    @property
    def controller_ids(self) -> set[str]:
        return {s.controller for s in (v.symbol for v in self.views.values()) if s.controller is not None}

    # -- the LiveView's calls -----------------------------------------------------------------

    def resync(self) -> None:
        self.states = dict(self.runtime.plant.states)
        self.pending = {}
        for eid in self.endpoint_ids:
            in_flight = self.runtime.commands.in_flight(eid)
            if in_flight is not None:
                self.pending[eid] = in_flight.id
        self._show_all()
        for eid, rows in self.dialog_rows.items():
            in_flight = self.runtime.commands.in_flight(eid)
            for row in rows:
                row.show_state(self.states[eid])
                if in_flight is not None:
                    row.show_command(in_flight.as_dict())
                elif row.current_command is not None:
                    row.clear_pending()
        if self.dialog_faceplates:
            views = {view["id"]: view for view in self.runtime.controllers.views(self.actor)}
            for cid, faceplate in self.dialog_faceplates.items():
                faceplate.show_input(self.states[faceplate.input.id])
                if cid in views:
                    faceplate.show_frame(views[cid])
        self.alarms([])

    def telemetry(self, frames: dict[int, dict[str, Any]]) -> None:
        for eid, frame in frames.items():
            state = messages.state_of(frame)  # the value pushed, not a re-read of the plant
            self.states[eid] = state
            for row in self.dialog_rows.get(eid, ()):
                row.show_state(state)
            for faceplate in self.dialog_faceplates.values():
                if faceplate.input.id == eid:
                    faceplate.show_input(state)
        self._show_all(set(frames))

    def command(self, payload: dict[str, Any]) -> None:
        eid = payload["endpointId"]
        for row in self.dialog_rows.get(eid, ()):
            row.show_command(payload)
        if payload["status"] not in FINAL:
            self.pending[eid] = payload["commandId"]
        elif self.pending.get(eid) in (None, payload["commandId"]):  # a late end of an older one changes nothing
            self.pending.pop(eid, None)
        self._show_all({eid})
        if payload["status"] in FINAL:
            self.commander.finished(payload)

    def alarms(self, payloads: list[dict[str, Any]]) -> None:
        worst = worst_alarms(self.runtime, self.actor)
        for view in self.views.values():
            found = [worst[eid] for eid in view.symbol.endpoint_ids if eid in worst]
            view.show_alarm(min(found, key=_rank) if found else None)

    def controllers(self, frames: dict[str, dict[str, Any]]) -> None:
        for cid, frame in frames.items():
            faceplate = self.dialog_faceplates.get(cid)
            if faceplate is not None:
                faceplate.show_frame(frame)

    def _show_all(self, changed: set[int] | None = None) -> None:
        for view in self.views.values():
            if changed is None or changed & set(view.symbol.endpoint_ids):
                view.show(self.states)
        for pipe, _line, look in self.pipes.values():
            look.set("bf-pipe-flow" if pipe_flows(pipe, self.layout, self.states) else "bf-pipe-still")

    # -- a tap on a symbol --------------------------------------------------------------------

    async def open(self, symbol: LayoutSymbol) -> None:
        """The symbol's dialog: a tile row per point (commands through the Commander) and its loop's faceplate."""
        view = self.views[symbol.id]
        rows: list[EndpointRow] = []
        faceplate: Faceplate | None = None
        with ui.dialog() as dialog, tag(ui.card().classes("bf-mimic-dialog"), f"mimic-dialog-{symbol.id}"):
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                ui.label(view.label if symbol.kind != "vessel" else _vessel_title(self.runtime, symbol)) \
                    .classes("bf-tile-title")
                ui.space()
                tag(ui.button("CLOSE", on_click=dialog.close).classes("bf-btn"), "mimic-dialog-close")
            for eid in symbol.endpoint_ids:
                row = EndpointRow(self.runtime, self.runtime.plant.endpoints[eid], self.commander, self.controls)
                row.show_state(self.states[eid])
                in_flight = self.runtime.commands.in_flight(eid)
                if in_flight is not None:
                    row.show_command(in_flight.as_dict())
                rows.append(row)
                self.dialog_rows.setdefault(eid, []).append(row)
            if symbol.controller is not None:
                loop = next((v for v in self.runtime.controllers.views(self.actor) if v["id"] == symbol.controller),
                            None)
                if loop is not None:
                    faceplate = Faceplate(self.runtime, self.commander.client, self.actor, loop)
                    self.dialog_faceplates[symbol.controller] = faceplate
                    ui.timer(TREND_REDRAW_S, faceplate.trend.draw)

        def closed(event: Any) -> None:
            if event.value:
                return
            for row in rows:
                self.dialog_rows[row.endpoint.id].remove(row)
            if faceplate is not None and self.dialog_faceplates.get(faceplate.id) is faceplate:
                del self.dialog_faceplates[faceplate.id]
            dialog.delete()

        dialog.on_value_change(closed)
        dialog.open()
        if faceplate is not None:
            await faceplate.load_trend()


def _vessel_title(runtime: Runtime, symbol: LayoutSymbol) -> str:
    node = next((n for n in runtime.config.nodes if n.id == symbol.node), None)
    return symbol.label or (f"{node.id} · {node.name}" if node is not None else symbol.id)


def _rank(alarm: Alarm) -> int:
    return ("critical", "high", "medium", "low", "alert").index(alarm.severity.value)


__all__ = ["Mimic", "capacity_of", "fill_fraction", "pipe_flows"]
