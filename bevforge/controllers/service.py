"""The controller service: one task per configured loop, ticking on the process clock.

Each tick reads the loop's process value from the plant, lets the loop decide (`loop.py`), asks the
power budget which elements may be on, and sends every output **change** as a command through the
command service, as `controller:<id>` with origin `controller` — so interlocks, readback and the
command record apply exactly as to a person's click, and a controller never writes a driver.

- An input that is not GOOD (bad, stale, missing) is an **input fault**: the outputs go safe at
  that tick (within one period), the state says `input_fault` and an alarm is raised until it returns.
- An output **blocked** by an interlock puts the loop in `held` with an alarm; it is asked again
  once a period, not every tick (one blocked command and one momentary alarm per period at most).
- **Runaway** and **over-temperature** trip the loop: outputs safe, state `tripped`, an alarm, until
  a person changes the mode (the reset).
- What people change — mode, setpoint, manual output, tuning — is checked here (role and node
  through `permissions`), stored (`store/controller_rows.py`) so a restart resumes it, and audited;
  a PWM edge is a command in the command record, not an audit row.
- The state is published on the bus (`controller` events, `messages.controller`) when it changes and
  otherwise at most every `PUBLISH_EVERY_S` of real time per controller.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from bevforge import messages, permissions
from bevforge.bus import CONTROLLER
from bevforge.config import OUTPUT_RECORD_EVERY_S, SoftwareSetpoint
from bevforge.control.autotune import AbortReason, AutotuneSettings
from bevforge.control.power_budget import Element, PowerBudget
from bevforge.controllers.loop import TUNING_KEYS, ControllerMode, ControllerState, Loop, pid_tuning
from bevforge.domain import Actor, CommandStatus, ControllerStatus, DataType, Quality, Reading, Severity, utcnow
from bevforge.errors import (
    BLOCKED,
    INVALID_VALUE,
    NOT_ALLOWED_NOW,
    OUT_OF_RANGE,
    UNKNOWN_CONTROLLER,
    UNKNOWN_FIELD,
    BevForgeError,
    Conflict,
    Invalid,
    NotFound,
)
from bevforge.store import ControllerRow, controller_rows
from bevforge.tasks import stop_task

if TYPE_CHECKING:
    from bevforge.alarms import AlarmService
    from bevforge.audit import AuditLog
    from bevforge.bus import EventBus
    from bevforge.clock import Clock
    from bevforge.commands import CommandService
    from bevforge.config import PlantConfig
    from bevforge.plant import Plant
    from bevforge.store.writer import Database

log = logging.getLogger(__name__)

ORIGIN = "controller"
PUBLISH_EVERY_S = 0.5  # real seconds between unchanged frames of one controller
MIN_GAP_S = 0.2  # real seconds between any two frames of one controller, but a person's change (a few a second at most)
STOP_SAFE_S = 3.0  # real seconds a shutdown waits for the outputs' safe-state commands
MAX_TICK_S = 1.0  # a bool output's window is updated at least ten times a period, and at least every second


def controller_actor(controller_id: str) -> Actor:
    """Who a controller's commands are from: `controller:<id>`, allowed what an operator is."""
    return Actor(user=f"{ORIGIN}:{controller_id}", station=ORIGIN, role=permissions.OPERATOR)


class ControllerService:
    """Runs every configured controller; the operator's and technician's actions on them come in here."""

    def __init__(self, config: PlantConfig, plant: Plant, commands: CommandService, alarms: AlarmService,
                 bus: EventBus, db: Database, audit: AuditLog | None, clock: Clock) -> None:
        self.config = config
        self.plant = plant
        self.commands = commands
        self.alarms = alarms
        self.bus = bus
        self.db = db
        self.audit = audit
        self.clock = clock
        self.loops: dict[str, Loop] = {}
        for cfg in config.controllers:
            default = cfg.setpoint.default if isinstance(cfg.setpoint, SoftwareSetpoint) else None
            self.loops[cfg.id] = Loop.build(cfg, config.endpoints_by_id, default)
        self._owner: dict[int, str] = {eid: c.id for c in config.controllers for eid in c.outputs}
        self.budget: PowerBudget | None = None
        self._elements: dict[int, str] = {}
        if config.power is not None and config.power.elements:
            p = config.power
            priority = {eid: c.priority for c in config.controllers for eid in c.outputs}
            self._elements = {e.output: str(e.output) for e in p.elements}
            self.budget = PowerBudget(p.limit_w, [Element(str(e.output), e.watts, priority[e.output])
                                                  for e in p.elements],
                                      slice_s=p.slice_s, aging_s=p.aging_s, release_s=p.release_s)
        self._wants: dict[str, bool] = dict.fromkeys(self._elements.values(), False)
        self._sent: dict[int, Any] = {}  # output endpoint → the value last accepted by the command service
        self._held_until: dict[str, float] = {}
        self._published: dict[str, tuple[tuple[Any, ...], float]] = {}
        self._locks: dict[str, asyncio.Lock] = {cid: asyncio.Lock() for cid in self.loops}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stored_setpoint: dict[str, float] = {}
        self._recorded: dict[str, tuple[float, float, float]] = {}  # id → (output %, process time, real time)
        self.ticks = 0

    # -- start, stop, restart ----------------------------------------------------------------------

    def load(self, rows: dict[str, ControllerRow] | None = None, only: set[str] | None = None) -> None:
        """Apply what was stored before the restart, by the `resume` rule (heater loops: off by default).

        A live config reload (`reconfigure`) calls it again for the loops it rebuilt only, with the rows
        read off the event loop: a rebuilt loop resumes exactly as it would after a restart.
        """
        rows = controller_rows.load_all(self.db) if rows is None else rows
        for cid, loop in self.loops.items():
            if only is not None and cid not in only:
                continue
            row = rows.get(cid)
            sp = loop.cfg.setpoint
            if isinstance(sp, SoftwareSetpoint):  # the software setpoint endpoint starts at its stored value
                if row is not None and row.setpoint is not None:
                    loop.setpoint = min(sp.max, max(sp.min, row.setpoint))
                if loop.setpoint is not None:
                    self._stored_setpoint[cid] = loop.setpoint
                self.plant.ingest([Reading(sp.id, loop.setpoint, Quality.GOOD, source_time=utcnow())])
            if row is None:
                continue
            if row.tuning and loop.pid is not None:
                try:
                    loop.retune({**loop.tuning, **{k: v for k, v in row.tuning.items() if k in TUNING_KEYS}})
                except (ValueError, TypeError):
                    log.warning("controller %s: stored tuning refused, the config's is used", cid)
            resume = loop.cfg.resume or ("off" if loop.heats else "auto")
            stored = ControllerMode(row.mode) if row.mode in ControllerMode._value2member_map_ else ControllerMode.OFF
            if resume == "auto":
                mode, reason = stored, f"resumed {stored.value} after a restart (resume: auto)"
            elif stored is ControllerMode.OFF:
                mode, reason = stored, "off"
            else:
                mode, reason = ControllerMode.OFF, (f"was {stored.value} before the restart; a heater loop starts "
                                                    "off (resume: off) until an operator switches it on")
            loop.set_mode(mode, reason)
            loop.set_manual_output(row.manual_output)

    def start(self) -> None:
        for cid in self.loops:
            self._tasks[cid] = asyncio.create_task(self._run(cid), name=f"controller-{cid}")

    async def stop(self) -> None:
        """Stop the loops, then put every output they left on in its safe state and wait for it (up to
        `STOP_SAFE_S`): a panel that stops controlling must not leave an element heating, since a device
        without a watchdog keeps its last command. The drivers stop after this (runtime order)."""
        for task in list(self._tasks.values()):
            await stop_task(task)
        self._tasks.clear()
        await self._outputs_safe()

    async def stop_loops(self, ids: set[str]) -> None:
        """A live config reload changes or removes these controllers: stop their tasks and put their
        outputs safe (as at shutdown), under the config they ran with. The other loops go on."""
        for cid in ids:
            await stop_task(self._tasks.pop(cid, None))
        await self._outputs_safe(ids)

    def reconfigure(self, config: PlantConfig, rebuild: set[str], rows: dict[str, ControllerRow]) -> None:
        """Take a reloaded config (bevforge/reload.py) in one synchronous step, after `stop_loops`.

        Loops in `rebuild` (changed or new) are built from the new config and resume as after a
        restart (their stored mode, setpoint and tuning by the `resume` rule); loops no longer in the
        config are forgotten; the others keep running untouched. The reload refuses any change to
        `power` or to a controller whose output is a budgeted element, so the budget is not rebuilt.
        """
        keep = {c.id for c in config.controllers}
        for cid in [c for c in self.loops if c not in keep or c in rebuild]:
            loop = self.loops.pop(cid)
            for eid in loop.outputs:
                self._sent.pop(eid, None)
            for table in (self._held_until, self._published, self._locks, self._stored_setpoint, self._recorded):
                table.pop(cid, None)
        self.config = config
        for cfg in config.controllers:
            if cfg.id in rebuild:
                default = cfg.setpoint.default if isinstance(cfg.setpoint, SoftwareSetpoint) else None
                self.loops[cfg.id] = Loop.build(cfg, config.endpoints_by_id, default)
                self._locks[cfg.id] = asyncio.Lock()
        self._owner = {eid: c.id for c in config.controllers for eid in c.outputs}
        self.load(rows, only=rebuild)

    def start_loops(self, ids: set[str]) -> None:
        """Start the tasks of loops rebuilt by a live config reload."""
        for cid in ids:
            if cid in self.loops and cid not in self._tasks:
                self._tasks[cid] = asyncio.create_task(self._run(cid), name=f"controller-{cid}")

    async def load_rows(self) -> dict[str, ControllerRow]:
        """Every controller's stored settings, read off the event loop (for a reload's rebuilt loops)."""
        return await asyncio.to_thread(controller_rows.load_all, self.db)

    async def _outputs_safe(self, only: set[str] | None = None) -> None:
        sent: list[int] = []
        for cid, loop in self.loops.items():
            if only is not None and cid not in only:
                continue
            for eid in loop.outputs:
                safe, current = self.config.endpoint(eid).safe_value, self._current(eid)
                if current is None or current == safe:
                    continue
                try:  # going safe is never held back by an interlock (as an interlock trip is not)
                    await self.commands.submit(eid, safe, actor=controller_actor(cid), origin=ORIGIN,
                                               check_interlocks=False)
                except BevForgeError as exc:
                    log.error("controller %s: %s not put safe at shutdown: %s", cid, eid, exc.message)
                    continue
                self._sent[eid] = safe
                sent.append(eid)
        if sent and not await self.commands.drained(sent, STOP_SAFE_S):
            log.error("controllers: the safe-state commands at shutdown did not all end within %.0f s", STOP_SAFE_S)

    async def _run(self, cid: str) -> None:
        loop = self.loops[cid]
        tick_s = min(MAX_TICK_S, loop.cfg.period_s / 10.0)
        while True:
            try:
                async with self._locks[cid]:
                    await self.tick(loop)
            except asyncio.CancelledError:
                raise
            except Exception:  # a loop must never die silently: log, go safe on the next tick's terms
                log.exception("controller %s: tick failed", cid)
            await self.clock.sleep(tick_s)

    # -- one tick ----------------------------------------------------------------------------------

    def _read_input(self, loop: Loop) -> tuple[float | None, str | None]:
        """The process value, or None and why it cannot be used (an input fault)."""
        cfg = loop.cfg
        endpoint = self.config.endpoint(cfg.input)
        state = self.plant.states[cfg.input]
        value = state.value
        if state.quality is not Quality.GOOD or value is None or isinstance(value, bool):
            return None, f"input {endpoint.display_name} is {state.quality.value}: {state.error or 'no value'}"
        number = float(value)
        if not math.isfinite(number):
            return None, f"input {endpoint.display_name} is not a number"
        limit = cfg.safety.input_stale_s if cfg.safety.input_stale_s is not None else endpoint.stale_after
        if state.server_time is not None:
            age = (utcnow() - state.server_time).total_seconds()
            if age > limit:
                return None, f"input {endpoint.display_name} is stale: no sample for {age:.0f} s"
        return number, None

    def _setpoint(self, loop: Loop) -> float | None:
        """The setpoint endpoint's value: a device's SV as read, or the software setpoint the plant holds."""
        state = self.plant.states[loop.cfg.setpoint_id]
        if state.quality is Quality.GOOD and isinstance(state.value, int | float) and not isinstance(state.value, bool):
            return float(state.value)
        return None

    async def tick(self, loop: Loop) -> None:
        """Read, decide, share the power, send changes, raise or clear alarms, publish."""
        self.ticks += 1
        now = self.clock.monotonic()
        pv, fault = self._read_input(loop)
        loop.setpoint = self._setpoint(loop)
        self._keep_setpoint(loop)
        if loop.setpoint is None and fault is None:
            fault = "the setpoint is not known (its endpoint has no GOOD value)"
        self._reconcile(loop)
        demands = loop.step(now, pv, fault)
        safe = loop.state in (ControllerState.OFF, ControllerState.INPUT_FAULT, ControllerState.TRIPPED)
        wanted: dict[int, Any] = {}
        for eid, drive in loop.outputs.items():
            demand = demands.get(eid, 0.0)
            if drive.tp is not None:
                wanted[eid] = False if safe else drive.tp.update(now, demand)
                if safe:
                    drive.tp.force_off(now)
            else:
                assert drive.numeric is not None
                value = drive.numeric.update(0.0 if safe else demand)
                if value is not None:
                    wanted[eid] = value
        self._pair_break_before_make(loop, now, wanted)
        held = self._held_until.get(loop.cfg.id)
        if held is not None and now < held:  # blocked: asked again once a period, not every tick
            for eid, value in list(wanted.items()):
                if value != self.config.endpoint(eid).safe_value and value != self._current(eid):
                    wanted[eid] = self._current(eid)
                    drive = loop.outputs[eid]
                    if drive.tp is not None:
                        drive.tp.refused(now)
        elif held is not None and all(d <= 0.0 for d in demands.values()):
            # the loop no longer wants what was refused (the setpoint came down): nothing is held any more
            loop.held = None
            self._held_until.pop(loop.cfg.id, None)
            self.alarms.clear(_alarm_key(loop.cfg.id, "held"))
        await self._share_power(loop, now, wanted)
        for eid, value in wanted.items():
            current = self._current(eid)
            if value is None or value == current:
                continue
            if current is None and value == self.config.endpoint(eid).safe_value:
                continue  # unknown yet (its device not read): nothing to switch off until it reads otherwise
            await self._send(loop, eid, value, now)
        self._alarms(loop)
        self._record_output(loop, now)
        self.publish(loop)

    def _record_output(self, loop: Loop, now: float) -> None:
        """The output % as a reading on the loop's `output_record` endpoint (history, trends, tiles).

        Rate-limited: a change is recorded at most once per period (a PWM loop's % moves every tick),
        a drop to 0 (off, a fault, a trip) at once, and an unchanged output every
        `OUTPUT_RECORD_EVERY_S` real seconds so the reading stays live while the loop runs."""
        record = loop.cfg.output_record
        if record is None:
            return
        value = round(loop.output_pct, 1)
        real = time.monotonic()
        last = self._recorded.get(loop.cfg.id)
        if last is not None:
            last_value, last_at, last_real = last
            changed = abs(value - last_value) >= 0.5
            due = real - last_real >= OUTPUT_RECORD_EVERY_S
            to_zero = value == 0.0 and last_value != 0.0
            if not (due or to_zero or (changed and now - last_at >= loop.cfg.period_s)):
                return
        self._recorded[loop.cfg.id] = (value, now, real)
        self.plant.ingest([Reading(record.id, value, Quality.GOOD, source_time=utcnow())])

    def _reconcile(self, loop: Loop) -> None:
        """An output that reads other than what was last sent, with nothing in flight (a command that failed
        after it was accepted, an interlock trip, a device that reset), is taken as it reads: the next
        change is decided against the real output, so an off that did not happen is sent again."""
        for eid, drive in loop.outputs.items():
            if eid not in self._sent or self.commands.in_flight(eid) is not None:
                continue
            state = self.plant.states[eid]
            if state.quality is not Quality.GOOD or state.value is None:
                continue
            endpoint = self.config.endpoint(eid)
            sent = self._sent[eid]
            differs = state.value != sent if endpoint.data_type is DataType.BOOL else \
                abs(float(state.value) - float(sent)) > max(endpoint.tolerance, 0.5)
            if differs:
                del self._sent[eid]
                if drive.numeric is not None:
                    drive.numeric.forget()

    def _keep_setpoint(self, loop: Loop) -> None:
        """A software setpoint changed (a command from a tile, REST or /ws): stored, so a restart keeps it."""
        cid = loop.cfg.id
        if not isinstance(loop.cfg.setpoint, SoftwareSetpoint) or loop.setpoint is None:
            return
        if self._stored_setpoint.get(cid) != loop.setpoint:
            self._stored_setpoint[cid] = loop.setpoint
            self.db.write_later(controller_rows.save, self.db, self._row(loop, "setpoint command"))

    def _pair_break_before_make(self, loop: Loop, now: float, wanted: dict[int, Any]) -> None:
        """A heat/cool pair: the side being left is off (and its off sent) before the other side's first pulse."""
        if loop.cfg.cool_output is None:
            return
        heat, cool = loop.cfg.output, loop.cfg.cool_output
        for on_side, other in ((heat, cool), (cool, heat)):
            if _is_on(wanted.get(on_side)) and _is_on(self._current(other)):
                drive = loop.outputs[other]
                if drive.tp is not None:
                    drive.tp.force_off(now)
                wanted[other] = drive.safe_value() if drive.tp is None else False
                wanted[on_side] = self._current(on_side)

    async def _share_power(self, loop: Loop, now: float, wanted: dict[int, Any]) -> None:
        """The elements of this loop may be on only if the budget grants it; grants taken from others go off now."""
        if self.budget is None:
            return
        for eid in loop.outputs:
            name = self._elements.get(eid)
            if name is not None and eid in wanted:
                self._wants[name] = bool(wanted[eid])
            elif name is not None:
                self._wants[name] = bool(self._current(eid))
        granted = self.budget.allocate(now, self._wants)
        for eid, name in self._elements.items():
            if name in granted:
                continue
            owner = self.loops[self._owner[eid]]
            if owner is loop:
                if wanted.get(eid):
                    wanted[eid] = False
                    drive = loop.outputs[eid]
                    if drive.tp is not None:
                        drive.tp.refused(now)
            elif _is_on(self._current(eid)):  # preempted: its off goes before anything else is switched on
                drive = owner.outputs[eid]
                if drive.tp is not None:
                    drive.tp.refused(now)
                await self._send(owner, eid, False, now)

    def _current(self, eid: int) -> Any:
        """What the output is taken to be: the last value sent, else its reading (None: unknown)."""
        if eid in self._sent:
            return self._sent[eid]
        state = self.plant.states[eid]
        return state.value if state.quality is Quality.GOOD else None

    async def _send(self, loop: Loop, eid: int, value: Any, now: float) -> None:
        endpoint = self.config.endpoint(eid)
        if endpoint.data_type is not DataType.BOOL and endpoint.data_type is not DataType.FLOAT:
            value = round(float(value))
        cid = loop.cfg.id
        try:
            command, _ = await self.commands.submit(eid, value, actor=controller_actor(cid), origin=ORIGIN)
        except BevForgeError as exc:
            self._hold(loop, now, f"{endpoint.display_name} → {value}: {exc.message}")
            return
        if command.status is CommandStatus.BLOCKED:
            self._hold(loop, now, f"{endpoint.display_name} blocked: "
                                  + "; ".join(r["reason"] for r in command.reasons))
            return
        self._sent[eid] = value
        if value != endpoint.safe_value and loop.held is not None:
            loop.held = None
            self._held_until.pop(cid, None)
            self.alarms.clear(_alarm_key(cid, "held"))

    def _hold(self, loop: Loop, now: float, why: str) -> None:
        cid = loop.cfg.id
        loop.held = why
        self._held_until[cid] = now + loop.cfg.period_s
        self.alarms.raise_alarm(_alarm_key(cid, "held"), "controller_held", Severity.MEDIUM,
                                f"{loop.cfg.name}: output held — {why}", node=loop.cfg.node, ref=cid)

    def _alarms(self, loop: Loop) -> None:
        cid, cfg = loop.cfg.id, loop.cfg
        key = _alarm_key(cid, "input_fault")
        if loop.state is ControllerState.INPUT_FAULT:
            self.alarms.raise_alarm(key, "controller_input_fault", Severity.HIGH,
                                    f"{cfg.name}: {loop.input_fault} — outputs off", node=cfg.node, ref=cid)
        else:
            self.alarms.clear(key)
        key = _alarm_key(cid, "tripped")
        if loop.tripped is not None:
            self.alarms.raise_alarm(key, "controller_tripped", Severity.HIGH,
                                    f"{cfg.name} tripped: {loop.tripped} — outputs off until reset",
                                    node=cfg.node, ref=cid)
        else:
            self.alarms.clear(key)
        if loop.held is None or loop.mode is ControllerMode.OFF:
            self.alarms.clear(_alarm_key(cid, "held"))

    # -- what is shown -----------------------------------------------------------------------------

    def status(self, loop: Loop) -> ControllerStatus:
        cfg = loop.cfg
        unit = cfg.setpoint.unit if isinstance(cfg.setpoint, SoftwareSetpoint) else \
            self.config.endpoint(cfg.setpoint).unit
        state = loop.state
        reason = {ControllerState.INPUT_FAULT: loop.input_fault, ControllerState.HELD: loop.held,
                  ControllerState.TRIPPED: loop.tripped}.get(state) or loop.reason
        return ControllerStatus(
            id=cfg.id, name=cfg.name, node=cfg.node, kind=cfg.kind, mode=loop.mode.value, state=state.value,
            reason=reason, pv=loop.pv, setpoint=loop.setpoint, setpoint_id=cfg.setpoint_id,
            output=loop.output_pct, outputs={eid: self._sent.get(eid) for eid in loop.outputs},
            manual_output=loop.manual_output, tuning=dict(loop.tuning) if loop.pid is not None else None,
            unit=unit, time=self.clock.now(), autotune=_autotune_view(loop),
        )

    def frame(self, loop: Loop) -> dict[str, Any]:
        return messages.controller(self.status(loop))

    def publish(self, loop: Loop, force: bool = False) -> None:
        cid = loop.cfg.id
        frame = self.frame(loop)
        marker = (frame["mode"], frame["state"], frame["reason"], frame["sp"], tuple(frame["outputs"].items()),
                  repr(frame["autotune"]))
        last = self._published.get(cid)
        real = time.monotonic()
        if not force and last is not None and real - last[1] < (PUBLISH_EVERY_S if last[0] == marker else MIN_GAP_S):
            return  # a changed frame waits for the gap too (a fast clock ticks often): a later tick sends it
        self._published[cid] = (marker, real)
        self.bus.publish(CONTROLLER, frame, key=cid, node=loop.cfg.node)

    def find(self, actor: Actor | None, controller_id: str) -> Loop:
        """The controller `actor` may see (another node's looks missing, as an endpoint does)."""
        loop = self.loops.get(controller_id) if isinstance(controller_id, str) else None
        if loop is None or not permissions.may_see_node(actor, loop.cfg.node):
            raise NotFound(f"no controller {controller_id!r}", code=UNKNOWN_CONTROLLER, field="controllerId")
        return loop

    def views(self, actor: Actor | None, node: str | None = None) -> list[dict[str, Any]]:
        return [self.frame(loop) for loop in self.loops.values()
                if permissions.may_see_node(actor, loop.cfg.node) and (node is None or loop.cfg.node == node)]

    # -- what people change ------------------------------------------------------------------------

    async def set_mode(self, actor: Actor, controller_id: str, mode: Any) -> dict[str, Any]:
        """Auto, manual or off; any mode change resets a trip (the operator has looked)."""
        loop = self._for_operator(actor, controller_id)
        if mode not in ControllerMode._value2member_map_:
            raise Invalid("mode must be auto, manual or off", code=INVALID_VALUE, field="mode")
        new = ControllerMode(mode)
        async with self._locks[loop.cfg.id]:
            old, was_tripped = loop.mode, loop.tripped
            loop.set_mode(new, f"set {new.value} by {actor.user}")
            self._held_until.pop(loop.cfg.id, None)
            await self._save(loop, actor)
            detail = f"reset trip: {was_tripped}" if was_tripped else None
            self._audit(actor, "controller.mode", loop, old.value, new.value, detail)
            await self._acted(loop)
        return self.frame(loop)

    async def reset(self, actor: Actor, controller_id: str) -> dict[str, Any]:
        """Reset a trip: the loop goes off (the operator then chooses auto or manual)."""
        loop = self._for_operator(actor, controller_id)
        if loop.tripped is None:
            raise Conflict("the controller is not tripped", code=NOT_ALLOWED_NOW, field="controllerId")
        return await self.set_mode(actor, controller_id, ControllerMode.OFF.value)

    async def set_setpoint(self, actor: Actor, controller_id: str, value: Any, origin: str = "api") -> dict[str, Any]:
        """The setpoint, sent as the person's command to the setpoint endpoint (a device's SV, or the
        controller's software setpoint): the pipeline checks the range, interlocks and audits it.

        `origin` is where the person pressed: "api" for REST and /ws, "ui" for the faceplate — the
        command record and its audit row keep it, as they do for a tile's command."""
        loop = self._for_operator(actor, controller_id)
        number = _number(value, "value")
        sp_id = loop.cfg.setpoint_id
        before = self.plant.states[sp_id].seq
        command, _ = await self.commands.submit(sp_id, number, actor=actor, origin=origin)
        if command.status is CommandStatus.BLOCKED:
            raise Conflict(command.error or "blocked", code=BLOCKED, field="value")
        if isinstance(loop.cfg.setpoint, SoftwareSetpoint):  # applied by the runner in a moment: answer with it
            for _ in range(20):
                if self.plant.states[sp_id].seq != before:
                    break
                await self.plant.next_sample(sp_id, 0.1)
        async with self._locks[loop.cfg.id]:
            await self._acted(loop)
        return self.frame(loop)

    async def set_output(self, actor: Actor, controller_id: str, value: Any) -> dict[str, Any]:
        """The manual output in %; only in manual mode (in auto the loop owns the output)."""
        loop = self._for_operator(actor, controller_id)
        number = _number(value, "value")
        lo, hi = loop.out_range
        if not lo <= number <= hi:
            raise Invalid(f"output {number:g} % is outside {lo:g}…{hi:g} %", code=OUT_OF_RANGE, field="value")
        if loop.mode is not ControllerMode.MANUAL:
            raise Conflict("the output is set by hand only in manual mode", code=NOT_ALLOWED_NOW, field="value")
        async with self._locks[loop.cfg.id]:
            old = loop.manual_output
            loop.set_manual_output(number)
            await self._save(loop, actor)
            self._audit(actor, "controller.output", loop, old, number)
            await self._acted(loop)
        return self.frame(loop)

    async def set_tuning(self, actor: Actor, controller_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """New gains or limits (technician), applied bumplessly; unknown keys and bad combinations refused."""
        permissions.require_role(actor, permissions.TECHNICIAN)
        loop = self.find(actor, controller_id)
        if loop.pid is None:
            raise Conflict("a hysteresis controller has no PID tuning", code=NOT_ALLOWED_NOW, field="tuning")
        for key in values:
            if key not in TUNING_KEYS:
                raise Invalid(f"unknown tuning key {key!r} (keys: {', '.join(TUNING_KEYS)})", code=UNKNOWN_FIELD,
                              field=f"tuning.{key}")
        merged = {**loop.tuning}
        for key, value in values.items():
            merged[key] = None if value is None and key in ("ramp_c_per_min", "boil_threshold_c") else \
                _number(value, f"tuning.{key}")
        try:
            pid_tuning(merged)
        except ValueError as exc:
            raise Invalid(str(exc), code=INVALID_VALUE, field="tuning") from None
        async with self._locks[loop.cfg.id]:
            old = {k: loop.tuning.get(k) for k in values}
            loop.retune(merged)
            await self._save(loop, actor)
            self._audit(actor, "controller.tuning", loop, old, {k: merged[k] for k in values})
            await self._acted(loop)
        return self.frame(loop)

    async def _acted(self, loop: Loop) -> None:
        """A person's change takes effect at once (a tick now), not at the next tick; its frame goes out."""
        try:
            await self.tick(loop)
        except Exception:  # the change is stored; the loop's own task ticks again shortly
            log.exception("controller %s: tick after a change failed", loop.cfg.id)
        self.publish(loop, force=True)

    # -- autotune (technician) ----------------------------------------------------------------------

    async def start_autotune(self, actor: Actor, controller_id: str, options: dict[str, Any]) -> dict[str, Any]:
        """A relay test around the present setpoint (the loop must be regulating in auto, heat only)."""
        permissions.require_role(actor, permissions.TECHNICIAN)
        loop = self.find(actor, controller_id)
        refusal = _autotune_refusal(loop)
        if refusal is not None:
            raise Conflict(refusal, code=NOT_ALLOWED_NOW, field="controllerId")
        lo, hi = loop.out_range
        amplitude = _number(options.get("amplitude_pct", 40.0), "amplitudePct")
        bias = _number(options.get("bias_pct", min(hi - amplitude, max(lo + amplitude, loop.output_pct))), "biasPct")
        try:
            settings = AutotuneSettings(
                setpoint_c=loop.setpoint, bias_pct=bias, amplitude_pct=amplitude,
                hysteresis_c=_number(options.get("hysteresis_c", 0.2), "hysteresisC"),
                band_c=_number(options.get("band_c", 5.0), "bandC"),
                max_duration_s=_number(options.get("max_duration_s", 7200.0), "maxDurationS"),
                cycles=int(_number(options.get("cycles", 3), "cycles")), out_min=lo, out_max=hi)
        except ValueError as exc:
            raise Invalid(str(exc), code=INVALID_VALUE, field="autotune") from None
        async with self._locks[loop.cfg.id]:
            loop.start_autotune(self.clock.monotonic(), settings)
            self._audit(actor, "controller.autotune.start", loop, None,
                        {"setpointC": settings.setpoint_c, "biasPct": bias, "amplitudePct": amplitude})
            await self._acted(loop)
        return self.frame(loop)

    def autotune_refusal(self, actor: Actor | None, controller_id: str) -> str | None:
        """Why `start_autotune` would refuse this loop now, in words (None: it may start).

        The faceplate shows it before a technician fills in the options; `start_autotune` asks the
        same question again when they press START, so a state that changed meanwhile still refuses."""
        return _autotune_refusal(self.find(actor, controller_id))

    async def abort_autotune(self, actor: Actor, controller_id: str) -> dict[str, Any]:
        permissions.require_role(actor, permissions.TECHNICIAN)
        loop = self.find(actor, controller_id)
        if not loop.autotuning:
            raise Conflict("no autotune is running", code=NOT_ALLOWED_NOW, field="controllerId")
        async with self._locks[loop.cfg.id]:
            loop.end_autotune(AbortReason.ABORTED_BY_CALLER)
            self._audit(actor, "controller.autotune.abort", loop, None, None)
            await self._acted(loop)
        return self.frame(loop)

    async def accept_autotune(self, actor: Actor, controller_id: str) -> dict[str, Any]:
        """Take the gains a finished relay test proposes (kp, ki, kd), bumplessly, as a tuning change."""
        permissions.require_role(actor, permissions.TECHNICIAN)
        loop = self.find(actor, controller_id)
        result = loop.autotune.result if loop.autotune is not None else None
        if result is None:
            raise Conflict("no finished autotune result to accept", code=NOT_ALLOWED_NOW, field="controllerId")
        await self.set_tuning(actor, controller_id, {"kp": result.kp, "ki": result.ki, "kd": result.kd})
        self._audit(actor, "controller.autotune.accept", loop, None,
                    {"ku": result.ku, "puS": result.pu_s, "rule": result.rule})
        loop.autotune = None  # taken: the proposal is now the tuning
        self.publish(loop, force=True)
        return self.frame(loop)

    async def discard_autotune(self, actor: Actor, controller_id: str) -> dict[str, Any]:
        """Set aside a finished relay test without taking its gains (or dismiss an aborted one's record).

        The tuning stays as it is; the proposal (or the abort's reason) is gone from the frame and the
        audit keeps what was discarded. A running test is stopped with abort, not discarded (409)."""
        permissions.require_role(actor, permissions.TECHNICIAN)
        loop = self.find(actor, controller_id)
        tune = loop.autotune
        if tune is None or loop.autotuning:
            raise Conflict("no finished autotune to discard" + (" (it is running: abort it)" if loop.autotuning
                                                                  else ""),
                           code=NOT_ALLOWED_NOW, field="controllerId")
        async with self._locks[loop.cfg.id]:
            discarded = _autotune_view(loop)
            loop.autotune = None
            self._audit(actor, "controller.autotune.discard", loop, discarded, None)
            self.publish(loop, force=True)
        return self.frame(loop)

    def _for_operator(self, actor: Actor, controller_id: str) -> Loop:
        permissions.require_role(actor, permissions.OPERATOR)
        return self.find(actor, controller_id)

    def _row(self, loop: Loop, by: str) -> ControllerRow:
        software = isinstance(loop.cfg.setpoint, SoftwareSetpoint)
        return ControllerRow(controller_id=loop.cfg.id, mode=loop.mode.value,
                             setpoint=self._stored_setpoint.get(loop.cfg.id) if software else None,
                             manual_output=loop.manual_output, tuning=dict(loop.tuning) or None,
                             updated_at=utcnow(), updated_by=by)

    async def _save(self, loop: Loop, actor: Actor) -> None:
        await self.db.write(controller_rows.save, self.db, self._row(loop, actor.user))

    def _audit(self, actor: Actor, action: str, loop: Loop, old: Any, new: Any, detail: str | None = None) -> None:
        if self.audit is not None:
            self.audit.record(actor, action, target=loop.cfg.id, old=old, new=new, detail=detail)


STATE_WORDS = {ControllerState.OFF: "off", ControllerState.MANUAL: "in manual",
               ControllerState.INPUT_FAULT: "in input fault", ControllerState.HELD: "held by an interlock",
               ControllerState.TRIPPED: "tripped", ControllerState.AUTOTUNING: "already autotuning"}


def _autotune_refusal(loop: Loop) -> str | None:
    """Why a relay test cannot start on `loop` now (None: it can): it needs a PID loop with one heating
    output, regulating in auto at a known setpoint."""
    if loop.pid is None:
        return "autotune is for a PID loop with one (heating) output; this is an on/off (hysteresis) loop"
    if loop.cfg.cool_output is not None:
        return "autotune is for a PID loop with one (heating) output; this loop heats and cools"
    if loop.state is not ControllerState.REGULATING or loop.setpoint is None:
        now = STATE_WORDS.get(loop.state, loop.state.value) if loop.setpoint is not None else \
            "without a known setpoint"
        return (f"autotune starts from a regulating loop in auto (it is {now}): switch it to AUTO and let it "
                "settle near the setpoint first")
    return None


def _autotune_view(loop: Loop) -> dict[str, Any] | None:
    tune = loop.autotune
    if tune is None:
        return None
    result = tune.result
    return {"state": tune.state.value, "reason": tune.reason.value if tune.reason else None,
            "cycles_measured": tune.cycles_measured,
            "result": None if result is None else {"ku": result.ku, "pu_s": result.pu_s, "kp": result.kp,
                                                   "ki": result.ki, "kd": result.kd, "rule": result.rule}}


def _alarm_key(controller_id: str, what: str) -> str:
    return f"controller:{controller_id}:{what}"


def _is_on(value: Any) -> bool:
    return value is True or (not isinstance(value, bool) and isinstance(value, int | float) and value > 0)


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid(f"{field} must be a number", code=INVALID_VALUE, field=field)
    return float(value)


__all__ = ["ORIGIN", "ControllerService", "controller_actor"]
