"""The command pipeline's front door: validate → interlocks → queued (or blocked), and interlock trips.

A command request from the UI, REST or `/ws` enters here. A request that is wrong in itself is
refused with a typed error (`Invalid`, or `NotFound` for no such endpoint); one blocked by an
interlock is stored as `blocked` with its reasons and never reaches a device; an allowed one is
stored `queued` and handed to its output's worker. An interlock trip enters the same way, with the
output's safe value and no interlock check.
The lifecycle after queueing is `command_runner.py`; the stored record and lookups `command_log.py`.
This module keeps the names callers import from `bevforge.commands`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from bevforge.alarms import AlarmService
from bevforge.audit import AuditLog
from bevforge.bus import EventBus
from bevforge.command_log import Command, audit_value, shown_value
from bevforge.command_runner import CommandRunner
from bevforge.config import Endpoint, PlantConfig
from bevforge.devices import Driver
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
    INVALID_COMMAND_ID,
    INVALID_ENDPOINT_ID,
    INVALID_VALUE,
    NOT_WRITABLE,
    OUT_OF_RANGE,
    UNKNOWN_ENDPOINT,
    BevForgeError,
    Invalid,
    NotFound,
)
from bevforge.plant import Plant
from bevforge.store import Database

__all__ = ["MAX_COMMAND_ID", "Command", "CommandRejected", "CommandService"]

log = logging.getLogger(__name__)

MAX_COMMAND_ID = 64


# A request wrong in itself is refused with a typed error (`Invalid`, or `NotFound` for an endpoint
# that does not exist); the old name still catches every one of them.
CommandRejected = BevForgeError


class CommandService(CommandRunner):
    """Accepts, refuses or blocks command requests; drives tripped outputs to their safe value."""

    def __init__(self, config: PlantConfig, plant: Plant, bus: EventBus, db: Database,
                 alarms: AlarmService, drivers: dict[str, Driver], audit: AuditLog | None = None) -> None:
        super().__init__(config, plant, bus, db, drivers, audit)
        self.alarms = alarms
        self._submitting: dict[str, asyncio.Future[Command]] = {}
        self._tripping: set[int] = set()

    # -- submission ------------------------------------------------------------------------

    async def submit(self, endpoint_id: Any, value: Any, command_id: Any = None, *,
                     actor: Actor | None = None, origin: str = "api",
                     check_interlocks: bool = True) -> tuple[Command, bool]:
        """Run a command request through validation and interlocks; return (command, created).

        Raises `Invalid` / `NotFound` (old name: CommandRejected) for requests that are wrong in
        themselves (unknown endpoint, not writable, bad value). A request blocked by an interlock is
        *not* an exception: it is a stored command with status `blocked` and its reasons.
        """
        actor = actor or Actor()
        command_id = self._check_command_id(command_id)
        if command_id is not None:
            existing = await self.find(command_id)
            if existing is not None:
                return existing, False
            pending = self._submitting.get(command_id)
            if pending is not None:
                return await asyncio.shield(pending), False
        endpoint = self._check_endpoint(endpoint_id)
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
            await self.db.write(self._insert, command.row())
            self._remember(command)
            self._publish(command)
            if self.audit is not None:
                self.audit.record(actor, "command.request", target=endpoint.name,
                                  old=audit_value(self.plant.states[endpoint.feedback_id].value), new=value,
                                  result=command.status.value, command_id=command.id,
                                  detail=command.error if command.status is CommandStatus.BLOCKED else origin)
            if command.status is CommandStatus.BLOCKED:
                self.alarms.raise_alarm(
                    f"blocked:{command.id}", "interlock_block", Severity.MEDIUM,
                    f"Command blocked: {endpoint.display_name} → {shown_value(value)}: "
                    + "; ".join(r["reason"] for r in reasons),
                    endpoint_id=endpoint.id, value=value, momentary=True,
                )
            else:
                self._output(endpoint.id).queue.put_nowait(command)
            future.set_result(command)
            return command, True
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

    def _check_endpoint(self, endpoint_id: Any) -> Endpoint:
        if isinstance(endpoint_id, bool) or not isinstance(endpoint_id, int):
            raise Invalid("endpointId must be an integer", code=INVALID_ENDPOINT_ID, field="endpointId")
        endpoint = self.plant.endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"no endpoint with id {endpoint_id}", code=UNKNOWN_ENDPOINT, field="endpointId")
        if not endpoint.writable:
            raise Invalid(f"endpoint {endpoint.name} is read-only", code=NOT_WRITABLE, field="endpointId")
        return endpoint

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
        asyncio.get_running_loop().create_task(self._trip(endpoint))

    async def _trip(self, endpoint: Endpoint) -> None:
        try:
            await self.submit(endpoint.id, endpoint.safe_value, actor=Actor.system(), origin="interlock",
                              check_interlocks=False)
        except Exception:
            log.exception("interlock trip of %s failed", endpoint.name)
            self._tripping.discard(endpoint.id)

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

