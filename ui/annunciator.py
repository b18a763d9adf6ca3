"""Kiosk annunciation: an audible tone for new high and critical alarms, silenced apart from ACK.

The tone is made in the browser with the Web Audio API (an oscillator, no sound files): a fast
pulse for critical, a slower one for high. It sounds while an unacknowledged high/critical alarm
this station has not silenced is present. SILENCE stops the tone on this station only (it is a
local horn) and acknowledges nothing: the alarm stays unacknowledged in the banner and the list.
A new alarm, or one that comes back (shelf expired, unshelved, unsuppressed, back in service while
still unacknowledged), sounds again. Silencing is recorded in the audit journal.

An open program prompt (ui/programs.py) sounds too, a slower, lower tone than the alarms' (which go
first): until it is answered, or SILENCE is pressed on this station (a new prompt sounds again).

Browsers allow sound only after a user gesture: any touch on the kiosk unlocks it; a dedicated
panel starts Chromium with `--autoplay-policy=no-user-gesture-required` (docs/operator.md).
"""

from __future__ import annotations

import weakref
from typing import Any

from nicegui import ui
from nicegui.client import Client

from bevforge.domain import Actor, Severity
from bevforge.runtime import Runtime
from ui import session
from ui.alarms import unacknowledged
from ui.controls import tag
from ui.theme import SEVERITY_SHAPES

SOUNDING = (Severity.CRITICAL, Severity.HIGH)
COMES_BACK = {"raised", "shelf_expired", "unshelved", "unsuppressed", "in_service"}

TONE_SCRIPT = """
<script>
window.bevforgeTone = (function () {
  let ctx = null, osc = null, gain = null, pulse = null, playing = null;
  function context() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    if (!ctx) ctx = new Ctx();
    if (ctx.state === 'suspended') ctx.resume();
    return ctx;
  }
  ['pointerdown', 'keydown'].forEach((t) => document.addEventListener(t, () => { if (playing) context(); },
                                                                      { passive: true }));
  function stop() {
    playing = null;
    if (pulse) clearInterval(pulse);
    pulse = null;
    if (osc) { osc.stop(); osc.disconnect(); gain.disconnect(); }
    osc = null; gain = null;
  }
  function start(priority) {
    if (playing === priority && osc) return;
    stop();
    playing = priority;
    const c = context();
    if (!c) return;
    osc = c.createOscillator(); gain = c.createGain();
    osc.type = 'square';
    osc.frequency.value = priority === 'critical' ? 880 : priority === 'high' ? 660 : 520;
    gain.gain.value = 0;
    osc.connect(gain); gain.connect(c.destination); osc.start();
    let on = false;
    pulse = setInterval(() => { on = !on; gain.gain.setValueAtTime(on ? 0.25 : 0, c.currentTime); },
                        priority === 'critical' ? 250 : priority === 'high' ? 500 : 1000);
  }
  return { start, stop, status: () => ({ playing, oscillator: !!osc, audio: ctx ? ctx.state : 'none' }) };
})();
</script>
"""

_silenced: dict[str, set[int]] = {}  # station → alarm ids silenced there
_silenced_prompts: dict[str, set[Any]] = {}  # station → program prompts (ui/programs.py keys) silenced there
_stations: dict[str, weakref.WeakSet[Annunciator]] = {}


class Annunciator:
    """The tone and its SILENCE button on one kiosk page (a LiveView sink)."""

    def __init__(self, runtime: Runtime, client: Client, actor: Actor) -> None:
        self.runtime = runtime
        self.client = client
        self.actor = actor
        self.station = actor.station
        self.sounding: str | None = None
        self.open_prompts: set[Any] = set()  # the program prompts open on this page (PromptDialog)
        ui.add_body_html(TONE_SCRIPT)
        with tag(ui.row().classes("bf-annunciator items-center gap-2"), "annunciator") as self.box:
            self.word = tag(ui.label("").classes("font-bold"), "tone-state")
            tag(ui.button("SILENCE", on_click=self.silence).classes("bf-btn bf-control"), "silence")
        self.box.set_visibility(False)
        self.mirrors: list[ui.button] = []  # SILENCE buttons elsewhere (the critical dialog covers the header)
        _stations.setdefault(self.station, weakref.WeakSet()).add(self)

    def mirror(self, marker: str) -> ui.button:
        """Another SILENCE button (drawn in the current context), shown while the tone sounds."""
        button = tag(ui.button("SILENCE", on_click=self.silence).classes("bf-btn bf-control"), marker)
        button.set_visibility(self.sounding is not None)
        self.mirrors.append(button)
        return button

    def due(self) -> list[Any]:
        """Alarms that should be sounding on this station now."""
        silenced = _silenced.get(self.station, set())
        return [a for a in unacknowledged(self.runtime, self.actor)
                if a.severity in SOUNDING and a.id not in silenced]

    def prompts(self, keys: set[Any]) -> None:
        """The program prompts now open (ui/programs.py): they sound unless silenced on this station."""
        self.open_prompts = set(keys)
        silenced = _silenced_prompts.get(self.station)
        if silenced:
            silenced &= self.open_prompts  # an answered prompt is forgotten; a new one sounds
        self._update()

    def _prompt_due(self) -> bool:
        return bool(self.open_prompts - _silenced_prompts.get(self.station, set()))

    def resync(self) -> None:
        silenced = _silenced.get(self.station)
        if silenced:
            silenced &= set(self.runtime.alarms.current)  # forget alarms that are closed
        self._update()

    def telemetry(self, frames: dict[int, dict[str, Any]]) -> None:
        pass

    def command(self, payload: dict[str, Any]) -> None:
        pass

    def alarms(self, payloads: list[dict[str, Any]]) -> None:
        silenced = _silenced.get(self.station)
        if silenced:
            for payload in payloads:
                if payload.get("event") in COMES_BACK and not payload.get("acked"):
                    silenced.discard(payload["alarmId"])
        self._update()

    def _update(self) -> None:
        due = self.due()
        priority = None
        if due:
            priority = "critical" if any(a.severity is Severity.CRITICAL for a in due) else "high"
        elif self._prompt_due():
            priority = "prompt"
        if priority == self.sounding:
            return
        self.sounding = priority
        for button in self.mirrors:
            button.set_visibility(priority is not None)
        if priority is None:
            ui.run_javascript("window.bevforgeTone && window.bevforgeTone.stop()")
            self.box.set_visibility(False)
            return
        ui.run_javascript(f"window.bevforgeTone && window.bevforgeTone.start('{priority}')")
        self.word.text = "? PROGRAM PROMPT TONE" if priority == "prompt" else \
            f"{SEVERITY_SHAPES[priority]} {priority.upper()} ALARM TONE"
        self.box.set_visibility(True)

    def silence(self) -> None:
        """Stop the tone on this station; acknowledge nothing."""
        actor = session.actor_of(self.client)
        if actor is None:
            return
        ids = sorted(a.id for a in self.due())
        _silenced.setdefault(self.station, set()).update(ids)
        _silenced_prompts.setdefault(self.station, set()).update(self.open_prompts)
        detail = f"alarms {', '.join(map(str, ids))} (not acknowledged)" if ids or not self.open_prompts else \
            "program prompts (not answered)"
        self.runtime.audit.record(actor, "alarm.silence", target=self.station, detail=detail)
        for other in list(_stations.get(self.station, ())):
            if not other.client.is_deleted:
                with other.client:
                    other._update()
