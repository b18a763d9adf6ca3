"""The program runner: one program at a time per unit (the brewhouse, each fermenter), on the process clock.

States: `idle` → `running` ⇄ `paused` → `completed` | `aborted` (and a new start from either end).
Each tick (`TICK_S` of process time) the current step (`steps.py`) is handed what the plant shows and
answers what it wants; the runner makes it so, always through the same doors a person uses:

- setpoints and modes through the controller service (`set_setpoint` / `set_mode`) as the actor
  `program:<unit>`, so the command pipeline (range, interlocks, readback, record) and the audit apply;
- valves, pumps and `set` endpoints as commands through the command service (interlocks apply; a
  blocked command pauses the program with its reasons). The runner never writes a driver.

While it runs the program owns its controllers' setpoints and modes: one that no longer shows what the
program last set (an operator typed another setpoint, or switched the loop off) **pauses** the program
with a message saying so, rather than fighting the operator. RESUME takes the controllers back.

Every transition people cause (start, pause, resume, skip, back, extend, shorten, abort, confirm) is
checked here (role and node through `permissions`), audited, stored (`store/program_rows.py`) and
published (`program` events, `messages.program`). The runner's own transitions (a step done, the
program paused by an override or a blocked command) are stored and published too, and a running program
is stored at least every `programs.save_every_s`.

Safe resume (`load`): a brewhouse program found running or paused comes back **paused** at the same step
with its time left (the time away is not counted), its outputs safe (its step's exit writes made and its
controllers switched off, once the inputs are read again) and a message saying what happened: the time
offline and how far each controller's process value moved. A fermentation profile (`resume: schedule`)
carries on by itself, its current step's timer moved on by the time offline (and the time past a step's
end counted in the next step), so a ramp's target is the wall-clock schedule's.

The steps are handed an instant in epoch seconds that is the clock's date at start moved on by its
monotonic time: a wall clock that NTP steps while a hold runs is not counted as time in band. The time
offline is the clock's date now less the date stored; a clock that went back (a scaled clock starts again
at the time of day) counts none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bevforge import messages, permissions
from bevforge.bus import PROGRAM
from bevforge.config import ProgramTemplate, ProgramUnit, check_program_template
from bevforge.domain import Actor, CommandStatus, ProgramPrompt, ProgramStatus, Quality, Severity
from bevforge.errors import (
    INVALID_VALUE,
    NOT_ALLOWED_NOW,
    UNKNOWN_TEMPLATE,
    UNKNOWN_UNIT,
    BevForgeError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
)
from bevforge.programs.batches import BatchRecorder
from bevforge.programs.steps import Inputs, Step, StepRefused, Wants, build
from bevforge.store import ProgramRow, program_rows, recipe_rows
from bevforge.tasks import stop_task

if TYPE_CHECKING:
    from bevforge.alarms import AlarmService
    from bevforge.audit import AuditLog
    from bevforge.bus import EventBus
    from bevforge.clock import Clock
    from bevforge.commands import CommandService
    from bevforge.config import PlantConfig
    from bevforge.controllers import ControllerService
    from bevforge.plant import Plant
    from bevforge.store.writer import Database

log = logging.getLogger(__name__)

ORIGIN = "program"
TICK_S = 1.0  # process seconds between two looks at the current step
PUBLISH_EVERY_S = 1.0  # real seconds between unchanged frames of one unit
SETPOINT_TOLERANCE_C = 0.05  # a setpoint this close to the program's is the program's
RESTORE_WAIT_S = 30.0  # process seconds a restored program waits for its inputs before saying how they moved
EXIT_WAIT_S = 5.0  # real seconds a stopped pump is waited for before its valves close
RESEND_AFTER_S = 15.0  # process seconds before a write the plant does not show yet is sent again
RECIPE_PREFIX = "recipe:"  # a stored program's template id `recipe:<draft id>`: a recipe draft's program


class ProgramState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"


ACTIVE = (ProgramState.RUNNING, ProgramState.PAUSED)


def program_actor(unit_id: str) -> Actor:
    """Who a program's setpoints and commands are from: `program:<unit>`, allowed what an operator is."""
    return Actor(user=f"{ORIGIN}:{unit_id}", station=ORIGIN, role=permissions.OPERATOR)


@dataclass
class UnitRun:
    """One unit and the program it runs (or ran last)."""

    unit: ProgramUnit
    nodes: frozenset[str]
    state: ProgramState = ProgramState.IDLE
    template: ProgramTemplate | None = None
    index: int = 0
    step: Step | None = None
    wants: Wants | None = None
    message: str | None = None
    started_at: datetime | None = None
    started_by: str | None = None
    step_started_at: datetime | None = None
    ended_at: datetime | None = None
    owned: dict[str, tuple[float | None, str | None]] = field(default_factory=dict)  # controller → (sp, mode) set
    saved_at: float = 0.0  # process time of the last save
    overdue_keys: set[str] = field(default_factory=set)
    sent: dict[int, tuple[Any, float]] = field(default_factory=dict)  # endpoint → (value, process time) accepted
    restored: tuple[dict[str, Any], str, float] | None = None  # after a restart: (values then, note, since)
    asks_resume: bool = False  # came back paused after a restart: resume / restart the step / abort, until answered


class ProgramService:
    """Runs each unit's program; the operator's actions on programs come in here."""

    def __init__(self, config: PlantConfig, plant: Plant, controllers: ControllerService, commands: CommandService,
                 alarms: AlarmService, bus: EventBus, db: Database, audit: AuditLog | None, clock: Clock) -> None:
        self.config = config
        self.plant = plant
        self.controllers = controllers
        self.commands = commands
        self.alarms = alarms
        self.bus = bus
        self.db = db
        self.audit = audit
        self.clock = clock
        self.templates = {t.id: t for t in config.programs.templates}
        self._controller_cfg = {c.id: c for c in config.controllers}
        self.units: dict[str, UnitRun] = {}
        for unit in config.programs.units:
            nodes = frozenset(self._controller_cfg[c].node for c in unit.controllers)
            self.units[unit.id] = UnitRun(unit, nodes)
        self._locks = {uid: asyncio.Lock() for uid in self.units}
        # the steps' instant: the clock's date at start, moved on by its monotonic time (a wall clock stepped
        # by NTP while a hold runs must not count the step as time in band)
        self._epoch = clock.now().timestamp() - clock.monotonic()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._published: dict[str, tuple[tuple[Any, ...], float]] = {}
        self.batches = BatchRecorder(self)  # the batch record (programs/batches.py), told at each transition

    # -- start, stop, restart ----------------------------------------------------------------------

    def load(self) -> None:
        """Bring back what was stored before the restart, by each unit's `resume` rule."""
        rows = program_rows.load_all(self.db)
        for uid, run in self.units.items():
            row = rows.get(uid)
            template = self._stored_template(row.template_id, uid) if row is not None else None
            if row is None or template is None:
                if row is not None:
                    log.warning("program of unit %s: template %r is no longer configured; the unit is idle",
                                uid, row.template_id)
                continue
            run.template, run.index = template, row.step_index
            run.started_at, run.started_by, run.ended_at = row.started_at, row.started_by, row.ended_at
            run.step_started_at, run.message = row.step_started_at, row.message
            state = ProgramState(row.state) if row.state in ProgramState._value2member_map_ else ProgramState.IDLE
            run.state = state
            if state not in ACTIVE or not 0 <= run.index < len(template.steps):
                run.state = state if state not in ACTIVE else ProgramState.ABORTED
                continue
            run.step = build(template.steps[run.index], self._controller_cfg, row.step_state)
            run.step.pause()  # the time away is not a running timer's (unless the schedule says so below)
            saved_at = row.saved_at if row.saved_at.tzinfo is not None else row.saved_at.replace(tzinfo=UTC)
            offline_s = max(0.0, (self.clock.now() - saved_at).total_seconds())
            offline = f"offline {offline_s / 60:.0f} min"
            if state is ProgramState.RUNNING and run.unit.resume_rule == "schedule":
                run.step.catch_up(offline_s)
                note = f"resumed on its schedule after a restart ({offline}{{drift}})"
            else:
                left = run.step.remaining()
                step_cfg = template.steps[run.index]
                time_left = "" if left is None or step_cfg.duration_s is None else \
                    f": {left / 60:.0f} of {(run.step.duration() or 0) / 60:.0f} min left"
                was = "paused" if state is ProgramState.PAUSED else "running"
                run.state, run.asks_resume = ProgramState.PAUSED, True
                note = (f"{step_cfg.title}{time_left}; {offline}{{drift}}; the program was {was} when the panel "
                        "stopped. Resume, restart the step (back) or abort.")
            # the drift is known once the controllers' inputs are read again (`_restored`, at the first ticks)
            run.restored = (dict(row.process_values or {}), note, self.clock.monotonic())
            run.message = note.replace("{drift}", "")

    def _stored_template(self, template_id: str, unit_id: str) -> ProgramTemplate | None:
        """The program a stored row names: a config.yaml template, or a recipe draft's program
        (`recipe:<draft id>`, read from the drafts table and checked as a template is at start-up)."""
        if not template_id.startswith(RECIPE_PREFIX):
            return self.templates.get(template_id)
        try:
            row = recipe_rows.get(self.db, int(template_id.removeprefix(RECIPE_PREFIX)))
        except ValueError:
            return None
        if row is None or row.unit_id != unit_id or not isinstance(row.program, dict):
            return None
        try:
            template = ProgramTemplate.model_validate({"id": "recipe", "name": row.program.get("name") or row.name,
                                                       "unit": unit_id, "steps": row.program.get("steps")})
        except ValueError as exc:
            log.warning("program of unit %s: the program of %s no longer reads: %s", unit_id, template_id, exc)
            return None
        problems = check_program_template(self.config, template)
        if problems:
            log.warning("program of unit %s: the program of %s no longer fits the plant: %s", unit_id,
                        template_id, problems[0][1])
            return None
        return template.model_copy(update={"id": template_id})

    async def _restored(self, run: UnitRun) -> None:
        """After a restart, once the inputs are read again (or after `RESTORE_WAIT_S`): say how far each process
        value moved, and make a program that came back paused safe — its step's exit writes (a transfer's pump
        stopped, its valves closed) and a brewhouse's controllers off, whatever their own `resume` rule did."""
        if run.restored is None:
            return
        before, note, since = run.restored
        known = all(self._pv(cid) is not None for cid in run.unit.controllers)
        if not known and self.clock.monotonic() - since < RESTORE_WAIT_S:
            return
        drift = self._drift(run, before)
        run.message = note.replace("{drift}", f"; {drift}" if drift else "")
        run.restored = None
        if run.state is ProgramState.PAUSED:
            await self._exit_writes(run)
            if run.unit.kind == "brewhouse":
                await self._controllers_off(run)
        await self._save_quietly(run)
        self.publish(run, force=True)

    async def _controllers_off(self, run: UnitRun) -> None:
        for cid in run.unit.controllers:
            if self.controllers.loops[cid].mode.value != "off":
                try:
                    await self.controllers.set_mode(program_actor(run.unit.id), cid, "off")
                except BevForgeError as exc:
                    log.error("program of unit %s: %s not switched off: %s", run.unit.id, cid, exc.message)

    def _drift(self, run: UnitRun, before: dict[str, Any]) -> str:
        """How each controller's process value moved while the panel was off, in words."""
        parts = []
        for cid in run.unit.controllers:
            old, new = before.get(cid), self._pv(cid)
            if isinstance(old, int | float) and new is not None and abs(new - old) >= 0.1:
                parts.append(f"{self._controller_cfg[cid].name} {'fell' if new < old else 'rose'} "
                             f"{old:.1f} → {new:.1f} °C")
        return ", ".join(parts)

    def start(self) -> None:
        for uid in self.units:
            self._tasks[uid] = asyncio.create_task(self._run(uid), name=f"program-{uid}")

    async def stop(self) -> None:
        """Stop ticking and store every active program as it is (its timer stops with the process)."""
        for task in list(self._tasks.values()):
            await stop_task(task)
        self._tasks.clear()
        for run in self.units.values():
            if run.state in ACTIVE:
                try:
                    await self._save(run)
                except BevForgeError as exc:
                    log.error("program of unit %s not stored at shutdown: %s", run.unit.id, exc.message)

    def busy(self) -> bool:
        """Whether a unit's runner is in the middle of a tick or an operator's action (a tick may wait on the
        database writer). A stepped clock must let it finish before the next step, or ticks are lost."""
        return any(lock.locked() for lock in self._locks.values())

    async def _run(self, uid: str) -> None:
        while True:
            try:
                async with self._locks[uid]:
                    await self.tick(self.units[uid])
            except asyncio.CancelledError:
                raise
            except Exception:  # a runner must never die silently
                log.exception("program of unit %s: tick failed", uid)
            await self.clock.sleep(TICK_S)

    # -- one tick ----------------------------------------------------------------------------------

    def _pv(self, cid: str) -> float | None:
        return self._good_number(self._controller_cfg[cid].input)

    def _good_number(self, eid: int) -> float | None:
        state = self.plant.states.get(eid)
        if state is None or state.quality is not Quality.GOOD or isinstance(state.value, bool):
            return None
        return float(state.value) if isinstance(state.value, int | float) else None

    def _inputs(self, run: UnitRun) -> Inputs:
        values = {eid: s.value for eid, s in self.plant.states.items() if s.quality is Quality.GOOD}
        return Inputs(now=self._epoch + self.clock.monotonic(),
                      pv={cid: self._pv(cid) for cid in run.unit.controllers},
                      setpoint={cid: self._good_number(self._controller_cfg[cid].setpoint_id)
                                for cid in run.unit.controllers},
                      values=values)

    async def tick(self, run: UnitRun) -> None:
        """Look at the current step, make what it wants so, move on when it is done, publish."""
        await self._restored(run)
        if run.state is ProgramState.RUNNING and run.step is not None:
            override = self._overridden(run)
            if override is not None:
                await self._pause(run, override)
            else:
                await self._drive(run)
        self._overdue(run)
        now = self.clock.monotonic()
        if run.state is ProgramState.RUNNING and now - run.saved_at >= self.config.programs.save_every_s:
            await self._save_quietly(run)
        self.publish(run)

    def _overridden(self, run: UnitRun) -> str | None:
        """Why the program is no longer in charge of a controller (someone else changed it), or None."""
        for cid, (setpoint, mode) in run.owned.items():
            loop = self.controllers.loops[cid]
            name = self._controller_cfg[cid].name
            if mode is not None and loop.mode.value != mode:
                return (f"{name} was switched {loop.mode.value} by hand while the program had it in {mode}: "
                        "program paused. Resume to give it back to the program.")
            sp_id = self._controller_cfg[cid].setpoint_id
            present = self._good_number(sp_id)
            if setpoint is not None and present is not None and abs(present - setpoint) > SETPOINT_TOLERANCE_C \
                    and self.commands.in_flight(sp_id) is None and not self._just_sent(run, sp_id, setpoint):
                return (f"{name} setpoint changed by hand to {present:g} °C (the program had {setpoint:g} °C): "
                        "program paused. Resume to give it back to the program.")
        return None

    async def _drive(self, run: UnitRun) -> None:
        assert run.step is not None and run.template is not None
        wants = run.step.update(self._inputs(run))
        run.wants = wants
        actor = program_actor(run.unit.id)
        try:
            for cid, mode in wants.modes.items():
                if self.controllers.loops[cid].mode.value != mode:
                    await self.controllers.set_mode(actor, cid, mode)
                setpoint = run.owned.get(cid, (None, None))[0]
                run.owned[cid] = (setpoint, mode)
            for cid, target in wants.setpoints.items():
                sp_id = self._controller_cfg[cid].setpoint_id
                present = self._good_number(sp_id)
                if present is not None and abs(present - target) <= SETPOINT_TOLERANCE_C:
                    run.sent.pop(sp_id, None)  # the plant shows it: no longer "just sent" (an override shows)
                elif self.commands.in_flight(sp_id) is None and not self._just_sent(run, sp_id, target):
                    await self.controllers.set_setpoint(actor, cid, target, origin=ORIGIN)
                    run.sent[sp_id] = (target, self.clock.monotonic())
                run.owned[cid] = (target, run.owned.get(cid, (None, None))[1])
        except BevForgeError as exc:
            await self._pause(run, f"{run.template.steps[run.index].title}: the program could not set its "
                                   f"controller: {exc.message}. Program paused.")
            return
        written = await self._write(run, wants.writes)
        if written and wants.done:
            await self._next(run, run.index + 1, None)

    async def _write(self, run: UnitRun, writes: list[tuple[int, Any]]) -> bool:
        """Send the first write not yet made (one at a time, in order); True once all of them are made."""
        now = self.clock.monotonic()
        for eid, value in writes:
            state = self.plant.states.get(eid)
            if state is not None and state.value == value and state.quality is Quality.GOOD:
                run.sent.pop(eid, None)
                continue
            if self.commands.in_flight(eid) is not None:
                return False
            if self._just_sent(run, eid, value):
                return False  # accepted a moment ago: the plant shows it at the endpoint's next poll
            assert run.template is not None
            title = run.template.steps[run.index].title
            try:
                command, _ = await self.commands.submit(eid, value, actor=program_actor(run.unit.id), origin=ORIGIN)
            except BevForgeError as exc:
                await self._pause(run, f"{title}: {self._label(eid)} refused: {exc.message}. Program paused.")
                return False
            if command.status is CommandStatus.BLOCKED:
                await self._pause(run, f"{title}: {self._label(eid)} blocked: {command.error or 'interlock'}. "
                                       "Program paused.")
                return False
            if command.status is CommandStatus.FAILED:
                await self._pause(run, f"{title}: {self._label(eid)} failed: {command.error}. Program paused.")
                return False
            run.sent[eid] = (value, now)
            return run.step is not None and run.step.cfg.type == "set"  # a set is done once its write is accepted
        return True

    def _just_sent(self, run: UnitRun, eid: int, value: Any) -> bool:
        """The program had `value` accepted for `eid` a moment ago (a device shows it at its next poll)."""
        sent = run.sent.get(eid)
        return sent is not None and sent[0] == value and self.clock.monotonic() - sent[1] < RESEND_AFTER_S

    def _label(self, eid: int) -> str:
        return self.config.endpoint(eid).display_name

    async def _exit_writes(self, run: UnitRun) -> None:
        """What the step must undo when it is left (a transfer: stop the pump, then close the valves)."""
        run.sent.clear()
        if run.step is None:
            return
        actor = program_actor(run.unit.id)
        for eid, value in run.step.exit_writes():
            state = self.plant.states.get(eid)
            if state is not None and state.value == value and self.commands.in_flight(eid) is None:
                continue
            safe = self.config.endpoint(eid).safe_value == value
            try:
                await self.commands.submit(eid, value, actor=actor, origin=ORIGIN, check_interlocks=not safe)
            except BevForgeError as exc:
                log.error("program of unit %s: %s not set to %r: %s", run.unit.id, eid, value, exc.message)
                continue
            if not await self.commands.drained([eid], EXIT_WAIT_S):
                log.error("program of unit %s: %s did not reach %r in time", run.unit.id, eid, value)

    def _overdue(self, run: UnitRun) -> None:
        """An unanswered prompt past its time raises an alarm; it clears when answered or the step changes."""
        keys = set()
        if run.state in ACTIVE and run.wants is not None:
            for prompt in run.wants.prompts:
                if prompt.overdue:
                    key = f"program:{run.unit.id}:{run.index}:{prompt.key}"
                    keys.add(key)
                    if key not in run.overdue_keys:
                        self.alarms.raise_alarm(key, "program_prompt_overdue", Severity.MEDIUM,
                                                f"{run.unit.name}: prompt unanswered — {prompt.message}",
                                                node=next(iter(sorted(run.nodes)), None), ref=run.unit.id)
        for key in run.overdue_keys - keys:
            self.alarms.clear(key)
        run.overdue_keys = keys

    # -- transitions ---------------------------------------------------------------------------------

    async def _next(self, run: UnitRun, index: int, actor: Actor | None) -> None:
        """Leave the current step (its exit writes first) for step `index`, or complete the program."""
        assert run.template is not None
        await self.batches.leaving(run, index, actor)
        await self._exit_writes(run)
        run.wants, run.asks_resume = None, False
        overrun = self._overrun(run, index, actor)
        if index >= len(run.template.steps):
            run.state, run.step, run.ended_at = ProgramState.COMPLETED, None, self.clock.now()
            run.message = "completed"
            run.owned.clear()
        else:
            run.index = index
            run.step = build(run.template.steps[index], self._controller_cfg)
            run.step_started_at = self.clock.now()
            if overrun > 0:
                run.step.catch_up(overrun)
                run.step_started_at -= timedelta(seconds=overrun)
        await self.batches.moved(run)
        await self._save_quietly(run)
        self.publish(run, force=True)

    @staticmethod
    def _overrun(run: UnitRun, index: int, actor: Actor | None) -> float:
        """A schedule's time past the end of the step it completes by itself (a fermenter off for longer
        than its step had left): counted in the next step, so the profile stays on its wall-clock schedule."""
        step = run.step
        if actor is not None or index != run.index + 1 or run.unit.resume_rule != "schedule" or step is None \
                or not step.timed:
            return 0.0
        total = step.duration()
        return 0.0 if total is None else max(0.0, step.state["elapsed"] - total)

    async def _pause(self, run: UnitRun, message: str) -> None:
        run.state, run.message = ProgramState.PAUSED, message
        if run.step is not None:
            run.step.pause()
        await self._exit_writes(run)
        run.owned.clear()
        log.info("program of unit %s paused: %s", run.unit.id, message)
        await self._save_quietly(run)
        self.publish(run, force=True)

    async def _save_quietly(self, run: UnitRun) -> None:
        try:
            await self._save(run)
        except BevForgeError as exc:  # the store alarm says so; the program goes on
            log.error("program of unit %s not stored: %s", run.unit.id, exc.message)

    async def _save(self, run: UnitRun) -> None:
        if run.template is None:
            return
        run.saved_at = self.clock.monotonic()
        row = ProgramRow(unit_id=run.unit.id, template_id=run.template.id, state=run.state.value,
                         step_index=run.index, step_state=dict(run.step.state) if run.step is not None else None,
                         step_started_at=run.step_started_at, started_at=run.started_at,
                         started_by=run.started_by, ended_at=run.ended_at, message=run.message,
                         process_values={cid: self._pv(cid) for cid in run.unit.controllers},
                         saved_at=self.clock.now())
        await self.db.write(program_rows.save, self.db, row)

    # -- what the outside sees -------------------------------------------------------------------------

    def status(self, run: UnitRun) -> ProgramStatus:
        template = run.template
        prompts = []
        if run.wants is not None and run.state in ACTIVE:
            prompts = [ProgramPrompt(run.index, p.key, p.message, datetime.fromtimestamp(p.since, UTC),
                                     p.overdue) for p in run.wants.prompts]
        current = run.state in ACTIVE and run.step is not None
        return ProgramStatus(
            unit=run.unit.id, name=run.unit.name, kind=run.unit.kind, state=run.state.value,
            template_id=template.id if template else None, template_name=template.name if template else None,
            steps=[(s.title, s.type) for s in template.steps] if template else [],
            step_index=run.index if current else None,
            step_status=(run.wants.status if run.wants is not None else "paused") if current else None,
            remaining_s=run.step.remaining() if current and run.step is not None else None,
            step_started_at=run.step_started_at if current else None, prompts=prompts, message=run.message,
            started_at=run.started_at, started_by=run.started_by, ended_at=run.ended_at,
            controllers=list(run.unit.controllers), time=self.clock.now(),
            asks_resume=run.asks_resume and run.state is ProgramState.PAUSED)

    def frame(self, run: UnitRun) -> dict[str, Any]:
        return messages.program(self.status(run))

    def publish(self, run: UnitRun, force: bool = False) -> None:
        """The unit's frame on the bus when it changed (the countdown by whole seconds), else every
        `PUBLISH_EVERY_S` real seconds."""
        frame = self.frame(run)
        step = frame["step"] or {}
        remaining = step.get("remainingS")
        marker = (frame["state"], step.get("index"), step.get("status"), None if remaining is None else int(remaining),
                  tuple((p["key"], p["overdue"]) for p in frame["prompts"]), frame["message"])
        last = self._published.get(run.unit.id)
        real = time.monotonic()
        if not force and last is not None and last[0] == marker and real - last[1] < PUBLISH_EVERY_S:
            return
        self._published[run.unit.id] = (marker, real)
        self.bus.publish(PROGRAM, frame, key=run.unit.id, node=run.nodes)

    def find(self, actor: Actor | None, unit_id: Any) -> UnitRun:
        """The unit `actor` may see (one whose controllers are all on nodes it may not see looks missing)."""
        run = self.units.get(unit_id) if isinstance(unit_id, str) else None
        if run is None or not permissions.may_see_nodes(actor, run.nodes):
            raise NotFound(f"no program unit {unit_id!r}", code=UNKNOWN_UNIT, field="unit")
        return run

    def views(self, actor: Actor | None) -> list[dict[str, Any]]:
        return [self.frame(run) for run in self.units.values() if permissions.may_see_nodes(actor, run.nodes)]

    def template_views(self, actor: Actor | None) -> list[dict[str, Any]]:
        visible = {uid for uid, run in self.units.items() if permissions.may_see_nodes(actor, run.nodes)}
        return [messages.program_template(t) for t in self.templates.values() if t.unit in visible]

    # -- what people do ----------------------------------------------------------------------------------

    async def start_program(self, actor: Actor, unit_id: Any, template_id: Any,
                            inline: ProgramTemplate | None = None) -> dict[str, Any]:
        """Start a template on its unit (idle, completed or aborted): step 1, controllers taken over.

        `inline` is a program not in config.yaml — a recipe draft's, checked by the recipe service, with the
        id `recipe:<draft id>` under which `load()` finds it again in the drafts table after a restart."""
        run = self._for_operator(actor, unit_id)
        if inline is not None:
            template = inline if inline.id == template_id and inline.id.startswith(RECIPE_PREFIX) else None
        else:
            template = self.templates.get(template_id) if isinstance(template_id, str) else None
        if template is None or template.unit != run.unit.id:
            raise Invalid(f"no template {template_id!r} for unit {run.unit.id!r}", code=UNKNOWN_TEMPLATE,
                          field="templateId")
        async with self._locks[run.unit.id]:
            if run.state in ACTIVE:
                raise Conflict(f"{run.unit.name} is already {run.state.value} "
                               f"{run.template.name if run.template else ''}: abort it first",
                               code=NOT_ALLOWED_NOW, field="unit")
            run.template, run.state, run.index = template, ProgramState.RUNNING, 0
            run.started_at, run.started_by, run.ended_at = self.clock.now(), actor.user, None
            run.message, run.owned, run.wants, run.asks_resume = None, {}, None, False
            run.step = build(template.steps[0], self._controller_cfg)
            run.step_started_at = self.clock.now()
            await self.batches.started(run)
            self._audit(actor, "program.start", run, None, template.id)
            await self._save_quietly(run)
            await self.tick(run)
            self.publish(run, force=True)
        return self.frame(run)

    async def pause(self, actor: Actor, unit_id: Any) -> dict[str, Any]:
        run = self._for_operator(actor, unit_id)
        async with self._locks[run.unit.id]:
            self._require(run, ProgramState.RUNNING, "pause")
            self._audit(actor, "program.pause", run, ProgramState.RUNNING.value, ProgramState.PAUSED.value)
            await self._pause(run, f"paused by {actor.user}")
        return self.frame(run)

    async def resume(self, actor: Actor, unit_id: Any) -> dict[str, Any]:
        """Go on from where it stopped: the controllers are taken back (setpoints and modes set again)."""
        run = self._for_operator(actor, unit_id)
        async with self._locks[run.unit.id]:
            self._require(run, ProgramState.PAUSED, "resume")
            self._audit(actor, "program.resume", run, ProgramState.PAUSED.value, ProgramState.RUNNING.value)
            run.state, run.message, run.owned, run.asks_resume = ProgramState.RUNNING, None, {}, False
            await self._save_quietly(run)
            await self.tick(run)
            self.publish(run, force=True)
        return self.frame(run)

    async def skip(self, actor: Actor, unit_id: Any) -> dict[str, Any]:
        """End the current step now and go to the next (the last: the program completes)."""
        run = self._for_operator(actor, unit_id)
        async with self._locks[run.unit.id]:
            self._require_active(run, "skip a step of")
            self._audit(actor, "program.skip", run, run.index, run.index + 1)
            await self._next(run, run.index + 1, actor)
            if run.state is ProgramState.RUNNING:
                await self.tick(run)
        return self.frame(run)

    async def back(self, actor: Actor, unit_id: Any) -> dict[str, Any]:
        """Restart the current step from its beginning if it has run, else go back one step."""
        run = self._for_operator(actor, unit_id)
        async with self._locks[run.unit.id]:
            self._require_active(run, "go back in")
            assert run.step is not None
            fresh = run.step.state.get("elapsed", 0.0) == 0.0 and not run.step.state.get("confirmed")
            target = max(0, run.index - 1) if fresh else run.index
            self._audit(actor, "program.back", run, run.index, target)
            await self._next(run, target, actor)
            if run.state is ProgramState.RUNNING:
                await self.tick(run)
        return self.frame(run)

    async def extend(self, actor: Actor, unit_id: Any, minutes: Any) -> dict[str, Any]:
        """More (positive) or less (negative: shorten) time for the current timed step."""
        run = self._for_operator(actor, unit_id)
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes == 0 or \
                abs(minutes) > 525_600:
            raise Invalid("minutes must be a number of minutes, not 0 (negative shortens)", code=INVALID_VALUE,
                          field="minutes")
        async with self._locks[run.unit.id]:
            self._require_active(run, "extend a step of")
            assert run.step is not None
            before = run.step.remaining()
            try:
                run.step.extend(float(minutes) * 60.0)
            except StepRefused as exc:
                raise Conflict(str(exc), code=NOT_ALLOWED_NOW, field="minutes") from None
            action = "program.extend" if minutes > 0 else "program.shorten"
            after = run.step.remaining()  # the time left in whole seconds: the record shows it as it was shown
            self._audit(actor, action, run, None if before is None else round(before),
                        None if after is None else round(after), detail=f"{minutes:+g} min")
            await self._save_quietly(run)
            self.publish(run, force=True)
        return self.frame(run)

    async def abort(self, actor: Actor, unit_id: Any) -> dict[str, Any]:
        """Stop the program for good. A brewhouse's controllers are switched off (safe); a fermenter's keep
        their present setpoint (a fermenter must stay controlled)."""
        run = self._for_operator(actor, unit_id)
        async with self._locks[run.unit.id]:
            self._require_active(run, "abort")
            self._audit(actor, "program.abort", run, run.state.value, ProgramState.ABORTED.value)
            await self._exit_writes(run)
            if run.unit.kind == "brewhouse":
                await self._controllers_off(run)
            run.state, run.step, run.wants, run.ended_at = ProgramState.ABORTED, None, None, self.clock.now()
            run.message, run.owned, run.asks_resume = f"aborted by {actor.user}", {}, False
            await self.batches.ended(run, "aborted")
            self._overdue(run)
            await self._save_quietly(run)
            self.publish(run, force=True)
        return self.frame(run)

    async def confirm(self, actor: Actor, unit_id: Any, step: Any, key: Any) -> dict[str, Any]:
        """The operator's answer to a prompt of the current step (`step` guards against answering a later one)."""
        run = self._for_operator(actor, unit_id)
        if isinstance(step, bool) or not isinstance(step, int):
            raise Invalid("step must be the index of the prompt's step", code=INVALID_VALUE, field="step")
        if not isinstance(key, str):
            raise Invalid("key must be the prompt's key", code=INVALID_VALUE, field="key")
        async with self._locks[run.unit.id]:
            self._require_active(run, "answer a prompt of")
            if step != run.index or run.step is None:
                raise Conflict(f"step {step} is not the current step ({run.index})", code=NOT_ALLOWED_NOW,
                               field="step")
            shown = run.wants.prompts if run.wants is not None else []
            try:
                run.step.confirm(key, shown)
            except StepRefused as exc:
                raise Conflict(str(exc), code=NOT_ALLOWED_NOW, field="key") from None
            message = next(p.message for p in shown if p.key == key)
            self._audit(actor, "program.confirm", run, None, key, detail=message)
            await self._save_quietly(run)
            if run.state is ProgramState.RUNNING:
                await self.tick(run)
            else:
                run.wants = Wants(prompts=[p for p in shown if p.key != key], status=run.wants.status if run.wants
                                  else "")
            self.publish(run, force=True)
        return self.frame(run)

    def _require(self, run: UnitRun, state: ProgramState, what: str) -> None:
        if run.state is not state:
            raise Conflict(f"cannot {what}: the program of {run.unit.name} is {run.state.value}",
                           code=NOT_ALLOWED_NOW, field="unit")

    def _require_active(self, run: UnitRun, what: str) -> None:
        if run.state not in ACTIVE:
            raise Conflict(f"cannot {what} the program of {run.unit.name}: it is {run.state.value}",
                           code=NOT_ALLOWED_NOW, field="unit")

    def _for_operator(self, actor: Actor, unit_id: Any) -> UnitRun:
        """An operator may run a unit's program only if every node of the unit is theirs (its commands reach
        them all); one who sees only some of them sees the program but may not run it."""
        permissions.require_role(actor, permissions.OPERATOR)
        run = self.find(actor, unit_id)
        if not all(permissions.may_see_node(actor, node) for node in run.nodes):
            raise Forbidden(f"running {run.unit.name}'s program needs every one of its nodes "
                            f"({', '.join(sorted(run.nodes))})", field="unit")
        return run

    def _audit(self, actor: Actor, action: str, run: UnitRun, old: Any, new: Any, detail: str | None = None) -> None:
        if self.audit is not None:
            self.audit.record(actor, action, target=run.unit.id, old=old, new=new, detail=detail)


__all__ = ["ORIGIN", "RECIPE_PREFIX", "ProgramService", "ProgramState", "program_actor"]
