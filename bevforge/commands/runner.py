"""The command lifecycle: one worker per output takes queued commands to sent → acked → succeeded | failed.

"Acked" means the device accepted the write; "succeeded" means a reading of the feedback endpoint
confirmed the value within the readback timeout. One command is in flight per output: discrete
commands run in order, setpoints are latest-wins (an older queued setpoint is superseded). A command
that waited longer than its expiry is never sent, so clicks made while a screen was cut off are
not replayed, and the interlocks are checked again just before sending. Every transition is stored
(in order, on the DB writer thread; a final one with its audit row in the same transaction) and
published only once it is stored, so a screen never shows a status the record does not have.

Kept apart from submission (`service.py`) because this half talks to drivers and runs on its own
tasks; submission only decides whether a request may join an output's queue. The runner is handed
the command record (`CommandLog`) and a callback for finished interlock trips when it is built.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bevforge import interlocks, messages
from bevforge.audit import entry
from bevforge.bus import COMMAND_STATUS, EventBus
from bevforge.commands.record import Command, CommandLog, audit_value, shown_value
from bevforge.devices import DeviceError, Driver
from bevforge.domain import Actor, CommandStatus, DataType, Quality, Reading, Value, utcnow
from bevforge.tallies import COMMAND_BUCKETS, Timings

if TYPE_CHECKING:
    from bevforge.audit import AuditLog
    from bevforge.config import Endpoint, PlantConfig
    from bevforge.plant import Plant

TripDone = Callable[[Command, CommandStatus, "str | None"], None]

# Logged under the service's name, as before the split, so log filters set up for it keep working.
log = logging.getLogger("bevforge.commands")


class _Output:
    """The queue and worker of one writable endpoint (one command in flight per output)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Command] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.current: Command | None = None


# What became of a command, as /metrics labels its latency: the final status, and for a failure its kind,
# read from the start of the error the runner wrote (the words below are the runner's own).
OUTCOMES = ("succeeded", "blocked", "timeout", "mismatch", "device_error", "expired", "superseded", "interrupted",
            "failed")
_FAILURE_KINDS = (("timeout", "timeout"), ("mismatch", "mismatch"), ("device error", "device_error"),
                  ("blocked", "blocked"), ("expired", "expired"), ("superseded", "superseded"),
                  ("interrupted", "interrupted"))


def outcome_of(command: Command) -> str:
    """One of OUTCOMES for a command in a final status (`blocked` also for one an interlock or an
    offline device stopped just before sending: in both cases nothing reached the device)."""
    if command.status is CommandStatus.SUCCEEDED:
        return "succeeded"
    if command.status is CommandStatus.BLOCKED:
        return "blocked"
    error = command.error or ""
    for start, outcome in _FAILURE_KINDS:
        if error.startswith(start):
            return outcome
    return "failed"


class CommandRunner:
    """Runs queued commands against the drivers and records every transition."""

    def __init__(self, config: PlantConfig, plant: Plant, bus: EventBus, record: CommandLog,
                 drivers: dict[str, Driver], audit: AuditLog | None = None,
                 trip_done: TripDone | None = None) -> None:
        self.record = record
        self.db = record.db
        self.audit = audit
        self.trip_done = trip_done
        self.config = config
        self.settings = config.commands
        self.plant = plant
        self.bus = bus
        self.drivers = drivers
        self._outputs: dict[int, _Output] = {}
        self._closed = False
        # request → final status of every command, by outcome (read by /metrics: bevforge/metrics)
        self.latency: dict[str, Timings] = {outcome: Timings(COMMAND_BUCKETS) for outcome in OUTCOMES}

    def ended(self, command: Command) -> None:
        """Count a command that reached its final status: its latency from the request, under its outcome."""
        done = command.completed_at or utcnow()
        self.latency[outcome_of(command)].observe(max(0.0, (done - command.created_at).total_seconds()))

    def blockers(self, endpoint: Endpoint, value: Value) -> list[dict[str, Any]]:
        """Why commanding `endpoint` to `value` is not allowed now (empty list: allowed)."""
        reasons: list[dict[str, Any]] = []
        device_online = self.plant.device_online.get(endpoint.device, False)
        driver = self.drivers.get(endpoint.device)
        if endpoint.source != "software" and (driver is None or not device_online):
            reasons.append({"id": f"comms:{endpoint.device}", "reason": f"device {endpoint.device} is offline",
                            "failedConditions": []})
        verdicts = interlocks.blocking_rules(
            self.config.interlocks, self.plant.endpoints, self.plant.states, endpoint.id, value
        )
        reasons.extend({"id": v.rule_id, "reason": v.reason, "failedConditions": v.failed_conditions}
                       for v in verdicts)
        return reasons

    # -- the per-output worker ------------------------------------------------------------

    def enqueue(self, command: Command) -> None:
        """Hand an accepted command to its output's worker (started on first use)."""
        self._output(command.endpoint_id).queue.put_nowait(command)

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
                output.queue.task_done()

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
        if endpoint.source == "software":  # a value the panel holds: written to the plant, read back from it
            self._transition(command, CommandStatus.SENT)
            self.plant.ingest([Reading(endpoint.id, command.requested_value, Quality.GOOD, source_time=utcnow())])
            self._transition(command, CommandStatus.ACKED)
            self._finish(command, CommandStatus.SUCCEEDED, actual=self.plant.states[endpoint.id].value)
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
                         error=f"mismatch: readback {shown_value(state.value)}, "
                               f"expected {shown_value(command.requested_value)} after {timeout}")
        else:
            self._finish(command, CommandStatus.FAILED,
                         error=f"timeout: no readback of {self.plant.endpoints[feedback_id].name} within {timeout}")

    async def _refresh(self, driver: Driver, feedback_id: int) -> None:
        try:
            await driver.refresh(self.plant.endpoints[feedback_id])
        except Exception as exc:  # the regular poll will still deliver the readback
            log.debug("refresh of %s failed: %s", feedback_id, exc)

    # -- transitions -----------------------------------------------------------------------

    def _transition(self, command: Command, status: CommandStatus, audit: Any = None) -> None:
        """Record one transition and push it once it is stored (with `audit` in the same transaction)."""
        now = utcnow()
        command.status = status
        command.updated_at = now
        if status is CommandStatus.SENT:
            command.sent_at = now
        elif status is CommandStatus.ACKED:
            command.acked_at = now
        elif status.is_final:
            command.completed_at = now
        payload, node = self.status_frame(command)
        stored = replace(command, reasons=list(command.reasons))  # the command as this write stores it

        def stored_then() -> None:  # lookups and screens see a status once it is in the database
            self.record.remember(stored)
            self.bus.publish(COMMAND_STATUS, payload, node=node)

        self.db.write_later(self.record.update, command.row(), audit, then=stored_then)

    def _finish(self, command: Command, status: CommandStatus, *, error: str | None = None,
                actual: Value | None = None) -> None:
        command.error = error
        if actual is not None:
            command.actual_value = actual
        audit = None
        if self.audit is not None and command.origin != "controller":  # a loop's PWM edge is no person's action
            endpoint = self.plant.endpoints[command.endpoint_id]
            audit = entry(Actor(user=command.user, station=command.station, role="-"), "command.result",
                          target=endpoint.name, new=audit_value(command.actual_value), result=status.value,
                          command_id=command.id, detail=error)
        self._transition(command, status, audit)
        self.ended(command)
        if command.origin == "interlock" and self.trip_done is not None:
            self.trip_done(command, status, error)

    def status_frame(self, command: Command) -> tuple[dict[str, Any], str]:
        """The `command_status` event of `command` as it is now (built by `messages`), and its node."""
        return messages.command_status(command), self.plant.endpoints[command.endpoint_id].node

    def publish(self, command: Command) -> None:
        """Push `command`'s status now (the caller has stored it already)."""
        payload, node = self.status_frame(command)
        self.bus.publish(COMMAND_STATUS, payload, node=node)

    def in_flight(self, endpoint_id: int) -> Command | None:
        """The command an output is working on, as last stored (what a screen may be shown)."""
        output = self._outputs.get(endpoint_id)
        current = output.current if output else None
        return None if current is None else self.record.stored(current.id) or current

    async def drained(self, endpoint_ids: list[int], timeout_s: float) -> bool:
        """Wait until every command queued for these outputs has ended (or `timeout_s`); True if they all did."""
        joins = [self._outputs[e].queue.join() for e in endpoint_ids if e in self._outputs]
        if not joins:
            return True
        try:
            await asyncio.wait_for(asyncio.gather(*joins), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        self._closed = True
        tasks = [o.task for o in self._outputs.values() if o.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def value_matches(endpoint: Endpoint, requested: Value, actual: Value | None) -> bool:
    """Readback comparison: exact for bool/int, within the endpoint's tolerance for floats."""
    if actual is None:
        return False
    if endpoint.data_type is DataType.BOOL:
        return bool(actual) == bool(requested)
    tolerance = endpoint.tolerance or (1e-6 * max(1.0, abs(float(requested))))
    return abs(float(actual) - float(requested)) <= tolerance
