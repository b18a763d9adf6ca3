"""The command pipeline: validate → interlocks → queued → sent → acked → succeeded | failed.

"Acked" means the device accepted the write; "succeeded" means a reading of the feedback endpoint
confirmed the value within the readback timeout. One command is in flight per output: discrete
commands run in order, setpoints are latest-wins (an older queued setpoint is superseded). A command
that waited longer than its expiry is never sent, so clicks made while a screen was cut off are
not replayed. Every transition is stored (in order, on the DB writer thread) and published.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import select

from bevforge import interlocks
from bevforge.alarms import AlarmService
from bevforge.audit import AuditLog
from bevforge.bus import COMMAND_STATUS, EventBus
from bevforge.config import Endpoint, PlantConfig
from bevforge.devices import DeviceError, Driver
from bevforge.domain import (
    Actor,
    CommandStatus,
    DataType,
    InterlockVerdict,
    InvalidValue,
    Quality,
    Severity,
    Value,
    coerce_value,
    iso,
    utcnow,
)
from bevforge.plant import Plant, value_matches
from bevforge.store import CommandRow, Database

log = logging.getLogger(__name__)

MAX_COMMAND_ID = 64


class CommandRejected(Exception):
    """The request itself is wrong (4xx): `field` names what, `status` is the HTTP code."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


@dataclass(slots=True)
class Command:
    id: str
    endpoint_id: int
    requested_value: Value
    status: CommandStatus
    user: str
    station: str
    origin: str
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None = None
    sent_at: datetime | None = None
    acked_at: datetime | None = None
    completed_at: datetime | None = None
    actual_value: Value | None = None
    error: str | None = None
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "commandId": self.id,
            "endpointId": self.endpoint_id,
            "value": self.requested_value,
            "requestedValue": self.requested_value,
            "status": self.status.value,
            "actualValue": self.actual_value,
            "error": self.error,
            "reasons": self.reasons,
            "user": self.user,
            "station": self.station,
            "origin": self.origin,
            "createdAt": iso(self.created_at),
            "queuedAt": iso(self.queued_at),
            "sentAt": iso(self.sent_at),
            "ackedAt": iso(self.acked_at),
            "completedAt": iso(self.completed_at),
            "updatedAt": iso(self.updated_at),
        }

    def row(self) -> CommandRow:
        return CommandRow(
            id=self.id, endpoint_id=self.endpoint_id, requested_value=self.requested_value,
            actual_value=self.actual_value, status=self.status.value, error=self.error,
            reasons=self.reasons or None, user=self.user, station=self.station, origin=self.origin,
            created_at=self.created_at, queued_at=self.queued_at, sent_at=self.sent_at,
            acked_at=self.acked_at, completed_at=self.completed_at, updated_at=self.updated_at,
        )

    @staticmethod
    def from_row(row: CommandRow) -> Command:
        return Command(
            id=row.id, endpoint_id=row.endpoint_id, requested_value=row.requested_value,
            status=CommandStatus(row.status), user=row.user, station=row.station, origin=row.origin,
            created_at=row.created_at, updated_at=row.updated_at, queued_at=row.queued_at,
            sent_at=row.sent_at, acked_at=row.acked_at, completed_at=row.completed_at,
            actual_value=row.actual_value, error=row.error, reasons=row.reasons or [],
        )


class _Output:
    """The queue and worker of one writable endpoint (one command in flight per output)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Command] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.current: Command | None = None


class CommandService:
    def __init__(self, config: PlantConfig, plant: Plant, bus: EventBus, db: Database,
                 alarms: AlarmService, drivers: dict[str, Driver], audit: AuditLog | None = None) -> None:
        self.audit = audit
        self.config = config
        self.settings = config.commands
        self.plant = plant
        self.bus = bus
        self.db = db
        self.alarms = alarms
        self.drivers = drivers
        self._outputs: dict[int, _Output] = {}
        self._recent: OrderedDict[str, Command] = OrderedDict()
        self._submitting: dict[str, asyncio.Future[Command]] = {}
        self._tripping: set[int] = set()
        self._closed = False

    # -- submission ------------------------------------------------------------------------

    async def submit(self, endpoint_id: Any, value: Any, command_id: Any = None, *,
                     actor: Actor | None = None, origin: str = "api",
                     check_interlocks: bool = True) -> tuple[Command, bool]:
        """Run a command request through validation and interlocks; return (command, created).

        Raises CommandRejected for requests that are wrong in themselves (unknown endpoint, not
        writable, bad value). A request blocked by an interlock is *not* an exception: it is a
        stored command with status `blocked` and its reasons.
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
            raise CommandRejected(422, "invalid_value", exc.message, "value") from None
        if endpoint.range is not None and not endpoint.range.min <= float(value) <= endpoint.range.max:
            raise CommandRejected(
                422, "out_of_range",
                f"value {value} is outside {endpoint.name}'s range {endpoint.range.min:g}…{endpoint.range.max:g}",
                "value",
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
                                  old=_plain(self.plant.states[endpoint.feedback_id].value), new=value,
                                  result=command.status.value, command_id=command.id,
                                  detail=command.error if command.status is CommandStatus.BLOCKED else origin)
            if command.status is CommandStatus.BLOCKED:
                self.alarms.raise_alarm(
                    f"blocked:{command.id}", "interlock_block", Severity.MEDIUM,
                    f"Command blocked: {endpoint.display_name} → {_fmt(value)}: "
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

    def blockers(self, endpoint: Endpoint, value: Value) -> list[dict[str, Any]]:
        """Why commanding `endpoint` to `value` is not allowed now (empty list: allowed)."""
        reasons: list[dict[str, Any]] = []
        device_online = self.plant.device_online.get(endpoint.device, False)
        driver = self.drivers.get(endpoint.device)
        if driver is None or not device_online:
            reasons.append({"id": f"comms:{endpoint.device}", "reason": f"device {endpoint.device} is offline",
                            "failedConditions": []})
        verdicts = interlocks.blocking_rules(
            self.config.interlocks, self.plant.endpoints, self.plant.states, endpoint.id, value
        )
        reasons.extend({"id": v.rule_id, "reason": v.reason, "failedConditions": v.failed_conditions}
                       for v in verdicts)
        return reasons

    def _check_command_id(self, command_id: Any) -> str | None:
        if command_id is None:
            return None
        if not isinstance(command_id, str) or not command_id.strip():
            raise CommandRejected(422, "invalid_command_id", "commandId must be a non-empty string", "commandId")
        if len(command_id) > MAX_COMMAND_ID:
            raise CommandRejected(422, "invalid_command_id",
                                  f"commandId must be at most {MAX_COMMAND_ID} characters", "commandId")
        return command_id

    def _check_endpoint(self, endpoint_id: Any) -> Endpoint:
        if isinstance(endpoint_id, bool) or not isinstance(endpoint_id, int):
            raise CommandRejected(422, "invalid_endpoint_id", "endpointId must be an integer", "endpointId")
        endpoint = self.plant.endpoints.get(endpoint_id)
        if endpoint is None:
            raise CommandRejected(404, "unknown_endpoint", f"no endpoint with id {endpoint_id}", "endpointId")
        if not endpoint.writable:
            raise CommandRejected(422, "not_writable", f"endpoint {endpoint.name} is read-only", "endpointId")
        return endpoint

    # -- the per-output worker ------------------------------------------------------------

    def _output(self, endpoint_id: int) -> _Output:
        output = self._outputs.get(endpoint_id)
        if output is None:
            output = _Output()
            self._outputs[endpoint_id] = output
        if output.task is None or output.task.done():
            output.task = asyncio.create_task(self._work(endpoint_id, output), name=f"output-{endpoint_id}")
        return output

    async def _work(self, endpoint_id: int, output: _Output) -> None:
        endpoint = self.plant.endpoints[endpoint_id]
        while True:
            command = await output.queue.get()
            output.current = command
            try:
                await self._execute(endpoint, output, command)
            except asyncio.CancelledError:
                self._finish(command, CommandStatus.FAILED, error="interrupted by shutdown")
                raise
            except Exception as exc:  # a worker must survive any one command
                log.exception("command %s crashed", command.id)
                self._finish(command, CommandStatus.FAILED, error=f"internal error: {exc}")
            finally:
                output.current = None

    async def _execute(self, endpoint: Endpoint, output: _Output, command: Command) -> None:
        if endpoint.data_type is not DataType.BOOL and not output.queue.empty():
            newest = output.queue._queue[-1]  # type: ignore[attr-defined]
            self._finish(command, CommandStatus.FAILED, error=f"superseded by {newest.id}")
            return
        age = (utcnow() - command.created_at).total_seconds()
        if age > self.settings.expiry_s:
            self._finish(command, CommandStatus.FAILED, error=f"expired: waited {age:.1f} s before it could be sent")
            return
        if command.origin != "interlock":
            reasons = self.blockers(endpoint, command.requested_value)
            if reasons:
                command.reasons = reasons
                self._finish(command, CommandStatus.FAILED,
                             error="blocked before sending: " + "; ".join(r["reason"] for r in reasons))
                return
        driver = self.drivers.get(endpoint.device)
        if driver is None:
            self._finish(command, CommandStatus.FAILED, error=f"no driver for device {endpoint.device}")
            return
        feedback_id = endpoint.feedback_id
        self._transition(command, CommandStatus.SENT)
        try:
            await asyncio.wait_for(driver.write(endpoint, command.requested_value), self.settings.write_timeout_s)
        except TimeoutError:
            self._finish(command, CommandStatus.FAILED,
                         error=f"timeout: device did not answer the write within {self.settings.write_timeout_s:g} s")
            return
        except DeviceError as exc:
            self._finish(command, CommandStatus.FAILED, error=f"device error: {exc}")
            return
        self._transition(command, CommandStatus.ACKED)
        await self._readback(endpoint, feedback_id, driver, command)

    async def _readback(self, endpoint: Endpoint, feedback_id: int, driver: Driver, command: Command) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.readback_timeout_s
        seen_fresh = False
        start_seq = self.plant.states[feedback_id].seq
        refresh = asyncio.create_task(self._refresh(driver, feedback_id))
        try:
            while True:
                state = self.plant.states[feedback_id]
                if state.seq != start_seq and state.quality is Quality.GOOD:
                    seen_fresh = True
                    if value_matches(endpoint, command.requested_value, state.value):
                        self._finish(command, CommandStatus.SUCCEEDED, actual=state.value)
                        return
                remaining = deadline - loop.time()
                if remaining <= 0 or not await self.plant.next_sample(feedback_id, remaining):
                    break
        finally:
            refresh.cancel()
        state = self.plant.states[feedback_id]
        timeout = f"{self.settings.readback_timeout_s:g} s"
        if seen_fresh:
            self._finish(command, CommandStatus.FAILED, actual=state.value,
                         error=f"mismatch: readback {_fmt(state.value)}, expected {_fmt(command.requested_value)} "
                               f"after {timeout}")
        else:
            self._finish(command, CommandStatus.FAILED,
                         error=f"timeout: no readback of {self.plant.endpoints[feedback_id].name} within {timeout}")

    async def _refresh(self, driver: Driver, feedback_id: int) -> None:
        try:
            await driver.refresh(self.plant.endpoints[feedback_id])
        except Exception as exc:  # the regular poll will still deliver the readback
            log.debug("refresh of %s failed: %s", feedback_id, exc)

    # -- transitions -----------------------------------------------------------------------

    def _transition(self, command: Command, status: CommandStatus) -> None:
        now = utcnow()
        command.status = status
        command.updated_at = now
        if status is CommandStatus.SENT:
            command.sent_at = now
        elif status is CommandStatus.ACKED:
            command.acked_at = now
        elif status.is_final:
            command.completed_at = now
        self.db.write_later(self._update, command.row())
        self._publish(command)

    def _finish(self, command: Command, status: CommandStatus, *, error: str | None = None,
                actual: Value | None = None) -> None:
        command.error = error
        if actual is not None:
            command.actual_value = actual
        self._transition(command, status)
        if self.audit is not None:
            endpoint = self.plant.endpoints[command.endpoint_id]
            self.audit.record(Actor(user=command.user, station=command.station, role="-"), "command.result",
                              target=endpoint.name, new=_plain(command.actual_value), result=status.value,
                              command_id=command.id, detail=error)
        if command.origin == "interlock":
            self._trip_done(command, status, error)

    def _publish(self, command: Command) -> None:
        payload = {
            "type": COMMAND_STATUS,
            "commandId": command.id,
            "status": command.status.value,
            "actualValue": command.actual_value,
            "completedAt": iso(command.completed_at or command.updated_at),
            "endpointId": command.endpoint_id,
            "requestedValue": command.requested_value,
            "error": command.error,
            "reasons": command.reasons,
            "user": command.user,
            "origin": command.origin,
        }
        node = self.plant.endpoints[command.endpoint_id].node
        self.bus.publish(COMMAND_STATUS, payload, node=node)

    def _remember(self, command: Command) -> None:
        self._recent[command.id] = command
        while len(self._recent) > 10_000:
            self._recent.popitem(last=False)

    def _insert(self, row: CommandRow) -> None:
        with self.db.session() as session:
            session.add(row)
            session.commit()

    def _update(self, row: CommandRow) -> None:
        with self.db.session() as session:
            session.merge(row)
            session.commit()

    # -- lookups ---------------------------------------------------------------------------

    async def find(self, command_id: str) -> Command | None:
        command = self._recent.get(command_id)
        if command is not None:
            return command
        row = await self.db.read(self._fetch, command_id)
        return Command.from_row(row) if row is not None else None

    def _fetch(self, command_id: str) -> CommandRow | None:
        with self.db.session() as session:
            return session.get(CommandRow, command_id)

    async def query(self, endpoint_id: int | None, status: CommandStatus | None, limit: int) -> list[Command]:
        rows = await self.db.read(self._query, endpoint_id, status, limit)
        commands = [self._recent.get(r.id) or Command.from_row(r) for r in rows]
        return commands

    def _query(self, endpoint_id: int | None, status: CommandStatus | None, limit: int) -> list[CommandRow]:
        statement = select(CommandRow)
        if endpoint_id is not None:
            statement = statement.where(CommandRow.endpoint_id == endpoint_id)
        if status is not None:
            statement = statement.where(CommandRow.status == status.value)
        statement = statement.order_by(CommandRow.created_at.desc()).limit(limit)  # type: ignore[attr-defined]
        with self.db.session() as session:
            return list(session.exec(statement).all())

    def in_flight(self, endpoint_id: int) -> Command | None:
        output = self._outputs.get(endpoint_id)
        return output.current if output else None

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

    async def stop(self) -> None:
        self._closed = True
        tasks = [o.task for o in self._outputs.values() if o.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _plain(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | str) or value is None else str(value)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
