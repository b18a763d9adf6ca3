"""The command pipeline's front door: validate → interlocks → queued (or blocked), and interlock trips.

A command request from the UI, REST or `/ws` enters here. A request that is wrong in itself is
refused with a typed error (`Invalid`, or `NotFound` for no such endpoint); one blocked by an
interlock is stored as `blocked` with its reasons and never reaches a device; an allowed one is
stored `queued` and handed to its output's worker. An interlock trip enters the same way, with the
output's safe value and no interlock check.
The service is composed at construction time: a `CommandLog` (the stored record and lookups,
`record.py`) and a `CommandRunner` (the lifecycle after queueing, `runner.py`), each handed its
collaborators in `__init__`; the service forwards to them and never reaches into their insides.
An accepted command's row and its `command.request` audit row are stored in one transaction before
the request is answered.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bevforge import permissions
from bevforge.audit import entry
from bevforge.commands.record import Command, CommandLog, audit_value, shown_value
from bevforge.commands.runner import CommandRunner
from bevforge.domain import (
    Actor,
    CommandStatus,
    InterlockVerdict,
    InvalidValue,
    Severity,
    coerce_value,
    utcnow,
)
from bevforge.errors import (
    COMMAND_ID_IN_USE,
    FORBIDDEN,
    INVALID_COMMAND_ID,
    INVALID_ENDPOINT_ID,
    INVALID_VALUE,
    NOT_WRITABLE,
    OUT_OF_RANGE,
    UNKNOWN_ENDPOINT,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
)
from bevforge.store.faults import StoreUnavailable

if TYPE_CHECKING:
    from bevforge.alarms import AlarmService
    from bevforge.audit import AuditLog
    from bevforge.bus import EventBus
    from bevforge.config import Endpoint, PlantConfig
    from bevforge.devices import Driver
    from bevforge.plant import Plant
    from bevforge.store.tables import AuditRow
    from bevforge.store.writer import Database

__all__ = ["MAX_COMMAND_ID", "Command", "CommandService"]

log = logging.getLogger(__name__)

MAX_COMMAND_ID = 64
# commands a control loop sends (bevforge/controllers): recorded as commands, not audited per edge
CONTROLLER_ORIGIN = "controller"



class CommandService:
    """Accepts, refuses or blocks command requests; drives tripped outputs to their safe value."""

    def __init__(self, config: PlantConfig, plant: Plant, bus: EventBus, db: Database,
                 alarms: AlarmService, drivers: dict[str, Driver], audit: AuditLog | None = None) -> None:
        self.config = config
        self.plant = plant
        self.db = db
        self.alarms = alarms
        self.audit = audit
        self.record = CommandLog(db)
        self.runner = CommandRunner(config, plant, bus, self.record, drivers, audit, trip_done=self._trip_done)
        self._submitting: dict[str, asyncio.Future[Command]] = {}
        self._tripping: set[int] = set()
        self._trip_tasks: set[asyncio.Task[None]] = set()  # kept: a running trip is never collected mid-run
        self._stopping = False

    # -- the parts, as callers use them --------------------------------------------------------

    async def find(self, command_id: str) -> Command | None:
        return await self.record.find(command_id)

    async def query(self, endpoint_id: int | None, status: CommandStatus | None, limit: int) -> list[Command]:
        return await self.record.query(endpoint_id, status, limit)

    def blockers(self, endpoint: Endpoint, value: Any) -> list[dict[str, Any]]:
        return self.runner.blockers(endpoint, value)

    def in_flight(self, endpoint_id: int) -> Command | None:
        return self.runner.in_flight(endpoint_id)

    async def drained(self, endpoint_ids: list[int], timeout_s: float) -> bool:
        """Wait until the commands queued for these outputs have ended (a shutdown's safe-state commands)."""
        return await self.runner.drained(endpoint_ids, timeout_s)

    def reconfigure(self, config: PlantConfig) -> None:
        """A reloaded config (bevforge/reload.py): new interlocks, endpoints and command timeouts for
        every command from now on (the drivers dict is shared with the runtime and changed there)."""
        self.config = config
        self.runner.config = config
        self.runner.settings = config.commands

    @property
    def trip_tasks(self) -> frozenset[asyncio.Task[None]]:
        """The interlock trips under way (each kept here from its start until it ends)."""
        return frozenset(self._trip_tasks)

    async def stop(self) -> None:
        """Cancel the interlock trips under way, then the output workers."""
        self._stopping = True
        trips = list(self._trip_tasks)
        for task in trips:
            task.cancel()
        await asyncio.gather(*trips, return_exceptions=True)
        await self.runner.stop()

    # -- submission ------------------------------------------------------------------------

    async def submit(self, endpoint_id: Any, value: Any, command_id: Any = None, *,
                     actor: Actor | None = None, origin: str = "api",
                     check_interlocks: bool = True) -> tuple[Command, bool]:
        """Run a command request through validation and interlocks; return (command, created).

        Raises `Invalid` / `NotFound` / `Forbidden` / `Conflict` for
        requests that are wrong in themselves (unknown endpoint, not writable, bad value) or not the
        actor's to make (a viewer; another node's endpoint looks unknown). A request blocked by an
        interlock is *not* an exception: it is a stored command with status `blocked` and its
        reasons. A `commandId` already used for a command the actor may not see is refused as taken
        (409), never answered with that command.
        """
        actor = actor or Actor()
        command_id = self._check_command_id(command_id)
        if not permissions.has_role(actor, permissions.OPERATOR):
            raise Forbidden(f"a {actor.role} may not send commands", code=FORBIDDEN, field="endpointId")
        if command_id is not None:
            existing = await self.record.find(command_id)
            if existing is None and command_id in self._submitting:
                existing = await asyncio.shield(self._submitting[command_id])
            if existing is not None:
                if not permissions.may_see_command(actor, self.config, existing):
                    raise Conflict(f"commandId {command_id!r} is already in use; send a new one",
                                   code=COMMAND_ID_IN_USE, field="commandId")
                return existing, False
        endpoint = self._check_endpoint(endpoint_id, actor)
        try:
            value = coerce_value(value, endpoint.data_type)
        except InvalidValue as exc:
            raise Invalid(exc.message, code=INVALID_VALUE, field="value") from None
        if endpoint.range is not None and not endpoint.range.min <= float(value) <= endpoint.range.max:
            raise Invalid(
                f"value {value} is outside {endpoint.name}'s range {endpoint.range.min:g}…{endpoint.range.max:g}",
                code=OUT_OF_RANGE, field="value",
            )
        now = utcnow()
        command = Command(
            id=command_id or str(uuid.uuid4()), endpoint_id=endpoint.id, requested_value=value,
            status=CommandStatus.QUEUED, user=actor.user, station=actor.station, origin=origin,
            created_at=now, updated_at=now,
        )
        future: asyncio.Future[Command] = asyncio.get_running_loop().create_future()
        self._submitting[command.id] = future
        try:
            reasons = self.blockers(endpoint, value) if check_interlocks else []
            if reasons:
                command.status = CommandStatus.BLOCKED
                command.reasons = reasons
                command.completed_at = now
                command.error = "blocked: " + "; ".join(r["reason"] for r in reasons)
            else:
                command.queued_at = now
            audit = None
            if self.audit is not None and origin != CONTROLLER_ORIGIN:  # a loop's PWM edges are in the record only
                audit = entry(actor, "command.request", target=endpoint.name,
                              old=audit_value(self.plant.states[endpoint.feedback_id].value), new=value,
                              result=command.status.value, command_id=command.id,
                              detail=command.error if command.status is CommandStatus.BLOCKED else origin)
            await self._store_new(command, audit)  # stored, with its audit row (a trip does not wait for it)
            stored = replace(command, reasons=list(command.reasons))  # the runner moves `command` on from here
            self.record.remember(stored)
            self.runner.publish(stored)
            if command.status is CommandStatus.BLOCKED:
                self.runner.ended(stored)
                self.alarms.raise_alarm(  # an alert (no ACK) unless the config words the rule as an alarm
                    f"blocked:{command.id}", "interlock_block", Severity.ALERT,
                    f"Command blocked: {endpoint.display_name} → {shown_value(value)}: "
                    + "; ".join(r["reason"] for r in reasons),
                    endpoint_id=endpoint.id, value=value, momentary=True, ref=reasons[0]["id"],
                )
            else:
                self.runner.enqueue(command)
            future.set_result(stored)
            return stored, True
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved
            raise
        finally:
            self._submitting.pop(command.id, None)


    def _check_command_id(self, command_id: Any) -> str | None:
        if command_id is None:
            return None
        if not isinstance(command_id, str) or not command_id.strip():
            raise Invalid("commandId must be a non-empty string", code=INVALID_COMMAND_ID, field="commandId")
        if len(command_id) > MAX_COMMAND_ID:
            raise Invalid(f"commandId must be at most {MAX_COMMAND_ID} characters", code=INVALID_COMMAND_ID,
                          field="commandId")
        return command_id

    def _check_endpoint(self, endpoint_id: Any, actor: Actor) -> Endpoint:
        if isinstance(endpoint_id, bool) or not isinstance(endpoint_id, int):
            raise Invalid("endpointId must be an integer", code=INVALID_ENDPOINT_ID, field="endpointId")
        endpoint = self.plant.endpoints.get(endpoint_id)
        if endpoint is None or not permissions.may_operate(actor, endpoint):
            raise NotFound(f"no endpoint with id {endpoint_id}", code=UNKNOWN_ENDPOINT, field="endpointId")
        if not endpoint.writable:
            raise Invalid(f"endpoint {endpoint.name} is read-only", code=NOT_WRITABLE, field="endpointId")
        return endpoint

    async def _store_new(self, command: Command, audit: AuditRow | None) -> None:
        """Store the command (and its audit row) before anything acts on it; a trip does not wait for the store.

        A store that cannot be written refuses a person's command (StoreUnavailable: 503, nothing
        done). A trip is safety: it goes on, and its record is held and written when the store can.
        """
        try:
            await self.db.write(self.record.insert, command.row(), audit)
        except StoreUnavailable:
            if command.origin != "interlock":
                raise
            # a merge (and a fresh audit row): safe to retry after a refused commit
            self.db.write_later(self.record.update, command.row(), audit)

    # -- safety ----------------------------------------------------------------------------

    def trip(self, verdict: InterlockVerdict) -> None:
        """A running output violates its interlock: command it to its safe value, raise an alarm.

        The trip alarm stays active until the safe value is confirmed by readback; a trip that
        fails raises a critical alarm and is tried again on the next reading.
        """
        endpoint = self.plant.endpoints[verdict.target]
        if endpoint.id in self._tripping:
            return
        self._tripping.add(endpoint.id)
        self.alarms.raise_alarm(
            f"trip:{endpoint.id}", "interlock_trip", Severity.HIGH,
            f"Interlock trip: {endpoint.display_name} driven to safe state — {verdict.reason} "
            f"({'; '.join(verdict.failed_conditions)})",
            endpoint_id=endpoint.id, ref=verdict.rule_id,
        )
        task = asyncio.get_running_loop().create_task(self._trip(endpoint), name=f"interlock-trip-{endpoint.id}")
        self._trip_tasks.add(task)
        task.add_done_callback(lambda done: self._trip_ended(done, endpoint))

    async def _trip(self, endpoint: Endpoint) -> None:
        try:
            await self.submit(endpoint.id, endpoint.safe_value, actor=Actor.system(), origin="interlock",
                              check_interlocks=False)
        except Exception:
            log.exception("interlock trip of %s failed", endpoint.name)
            self._trip_failed(endpoint, "the safe-state command could not be submitted")

    def _trip_ended(self, task: asyncio.Task[None], endpoint: Endpoint) -> None:
        """A trip task ended: forget it; if it died instead of finishing, say so loudly (never silently)."""
        self._trip_tasks.discard(task)
        if task.cancelled():
            if self._stopping:
                log.warning("interlock trip of %s cancelled: shutting down", endpoint.name)
                self._tripping.discard(endpoint.id)
            else:
                log.error("interlock trip of %s was cancelled", endpoint.name)
                self._trip_failed(endpoint, "the trip was cancelled before the safe-state command was queued")
            return
        exc = task.exception()
        if exc is not None:  # _trip catches Exception: this is a BaseException escaping a safety path
            log.error("interlock trip of %s died: %r", endpoint.name, exc)
            self._trip_failed(endpoint, f"the trip task died: {exc!r}")

    def _trip_failed(self, endpoint: Endpoint, why: str) -> None:
        """The safe state was not commanded: critical alarm; the next reading tries the trip again."""
        self._tripping.discard(endpoint.id)
        self.alarms.raise_alarm(f"tripfail:{endpoint.id}", "interlock_trip", Severity.CRITICAL,
                                f"Could not drive {endpoint.display_name} to its safe state: {why}",
                                endpoint_id=endpoint.id)

    def _trip_done(self, command: Command, status: CommandStatus, error: str | None) -> None:
        endpoint = self.plant.endpoints[command.endpoint_id]
        self._tripping.discard(endpoint.id)
        if status is CommandStatus.SUCCEEDED:
            self.alarms.clear(f"trip:{endpoint.id}")
            self.alarms.clear(f"tripfail:{endpoint.id}")
        elif status is CommandStatus.FAILED:
            self.alarms.raise_alarm(f"tripfail:{endpoint.id}", "interlock_trip", Severity.CRITICAL,
                                    f"Could not drive {endpoint.display_name} to its safe state: {error}",
                                    endpoint_id=endpoint.id)

