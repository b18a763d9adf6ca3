"""Every message BevForge sends, built in one place: live frames, their snapshots, REST views, timestamps.

Why one module: `/ws`, SSE, the REST views and the screens all show the same things (an endpoint's
value, a command's status, an alarm), and each used to build its own dict — so a field renamed in one
drifted from the others. Here each shape has exactly one builder; the field names are requirements
(docs/protocol.md, docs/api.md) and tests/unit/test_messages.py pins them.

Nothing here does I/O or decides anything: a builder takes domain objects and returns a JSON-ready
dict. The core publishes what these return; transports only wrap them (a bus `Event`, an SSE line,
an HTTP body). Timestamps are ISO-8601 UTC with a trailing `Z`, made only by `iso()`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bevforge.bus import ALARM, COMMAND_STATUS, CONTROLLER, PROGRAM, TELEMETRY
from bevforge.domain import ControllerStatus, EndpointState, ProgramStatus, Quality, epoch_time, plain_value

if TYPE_CHECKING:  # types only: the modules defining these import this one
    from collections.abc import Sequence

    from bevforge.alarms.points import Alarm
    from bevforge.commands.record import Command
    from bevforge.config import Endpoint, ProgramTemplate
    from bevforge.errors import BevForgeError
    from bevforge.trends import Marker, TrendLayout

# Frame types a live client receives besides the three bus events.
CONNECTED = "connected"
AUTHENTICATED = "authenticated"
SUBSCRIBED = "subscribed"
UNSUBSCRIBED = "unsubscribed"
PING = "ping"
PONG = "pong"
ERROR = "error"
RESYNC = "resync"


# -- timestamps ----------------------------------------------------------------------------------

_last_iso: tuple[datetime | None, str | None] = (None, None)  # the last time formatted, and its text


def iso(ts: datetime | None) -> str | None:
    """ISO-8601 in UTC with a trailing Z, as the seed's messages show timestamps (None stays None).

    None too for a time that has no UTC form (year 1 at +14:00): a read must never fail on a stored time.
    The last answer is kept: every reading of an ingested batch shares one server time object, so a
    batch of 500 formats it once (datetimes are immutable: the same object always gives the same text).
    """
    global _last_iso
    if ts is None:
        return None
    last = _last_iso
    if ts is last[0]:
        return last[1]
    if ts.tzinfo is None:
        utc = ts.replace(tzinfo=UTC)
    else:
        utc = ts
    try:
        text = utc.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, ValueError):
        text = None
    _last_iso = (ts, text)
    return text


def iso_epoch(ts: Any) -> str | None:
    """ISO-8601 for an epoch-seconds timestamp (how history rows store time); None for one no datetime holds."""
    return iso(epoch_time(ts))


def from_iso(text: str | None) -> datetime | None:
    """The datetime an `iso()` string stands for (a screen reading back a pushed frame)."""
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def now_iso() -> str:
    """The present moment as a frame shows it (pong, ping, connected)."""
    return iso(datetime.now(UTC)) or ""


# -- bus events (published by the core, sent as is by /ws and SSE) --------------------------------

def telemetry(endpoint: Endpoint, state: EndpointState) -> dict[str, Any]:
    """An endpoint's value as pushed: `error` only when there is one (docs/protocol.md)."""
    frame: dict[str, Any] = {
        "type": TELEMETRY, "endpointId": endpoint.id, "value": plain_value(state.value),
        "timestamp": iso(state.server_time),
        "quality": state.quality.value, "unit": endpoint.unit,
    }
    if state.error:
        frame["error"] = state.error
    return frame


def command_status(command: Command) -> dict[str, Any]:
    """One transition of a command; `completedAt` is the time of this transition."""
    return {
        "type": COMMAND_STATUS, "commandId": command.id, "status": command.status.value,
        "actualValue": command.actual_value, "completedAt": iso(command.completed_at or command.updated_at),
        "endpointId": command.endpoint_id, "requestedValue": command.requested_value, "error": command.error,
        "reasons": list(command.reasons), "user": command.user, "origin": command.origin,
    }


def controller(status: ControllerStatus) -> dict[str, Any]:
    """A controller's state as pushed on the `controllers` channel and answered by its REST view.

    `outputs` maps each output endpoint id (as a string, JSON keys are strings) to the value last
    sent (true/false, or a %), null before the first.
    """
    return {
        "type": CONTROLLER, "id": status.id, "name": status.name, "node": status.node, "kind": status.kind,
        "mode": status.mode, "state": status.state, "reason": status.reason,
        "pv": _rounded(status.pv), "sp": _rounded(status.setpoint), "setpointId": status.setpoint_id,
        "output": _rounded(status.output), "outputs": {str(k): plain_value(v) for k, v in status.outputs.items()},
        "manualOutput": _rounded(status.manual_output),
        "tuning": None if status.tuning is None else {_camel(k): v for k, v in status.tuning.items()},
        "unit": status.unit,
        "autotune": None if status.autotune is None else {
            _camel(k): ({_camel(rk): rv for rk, rv in v.items()} if isinstance(v, dict) else v)
            for k, v in status.autotune.items()},
        "timestamp": iso(status.time),
    }


def program(status: ProgramStatus) -> dict[str, Any]:
    """A unit's program as pushed on the `programs` channel and answered by its REST view.

    `step` is null when no step is current (idle, completed, aborted); `remainingS` is the current
    step's time left in seconds (null for a step without a timer); `prompts` are the questions waiting
    for an operator's confirmation (`POST /api/os/programs/{unit}/confirm` with `step` and `key`);
    `resumeQuestion` is true while a program that came back paused after a restart waits for resume, back
    (restart the step) or abort.
    """
    step = None
    if status.step_index is not None and 0 <= status.step_index < len(status.steps):
        name, kind = status.steps[status.step_index]
        step = {"index": status.step_index, "name": name, "type": kind, "status": status.step_status,
                "remainingS": None if status.remaining_s is None else round(status.remaining_s, 1),
                "startedAt": iso(status.step_started_at)}
    return {
        "type": PROGRAM, "unit": status.unit, "name": status.name, "kind": status.kind, "state": status.state,
        "templateId": status.template_id, "templateName": status.template_name,
        "steps": [{"name": n, "type": k} for n, k in status.steps], "step": step,
        "prompts": [{"step": p.step, "key": p.key, "message": p.message, "since": iso(p.since),
                     "overdue": p.overdue} for p in status.prompts],
        "message": status.message, "startedAt": iso(status.started_at), "startedBy": status.started_by,
        "endedAt": iso(status.ended_at), "controllers": list(status.controllers), "timestamp": iso(status.time),
        "resumeQuestion": status.asks_resume,
    }


def program_template(template: ProgramTemplate) -> dict[str, Any]:
    """A program template as `GET /api/os/programs/templates` lists it: its unit and its steps, each with the
    keys it was configured with (snake_case as in config.yaml, besides `type` and `name`)."""
    return {"id": template.id, "name": template.name, "unit": template.unit,
            "steps": [{"type": s.type, "name": s.title,
                       "settings": s.model_dump(mode="json", exclude_unset=True, exclude={"type", "name"})}
                      for s in template.steps]}


def recipe_draft(draft_id: int, name: str, fmt: str, unit: str, recipe: Any, program: Any, created_by: str,
                 created_at: datetime, edited_by: str | None, edited_at: datetime | None,
                 running: bool) -> dict[str, Any]:
    """A recipe draft as `/api/os/recipes` answers it: what was read from the file (`recipe`), the program it
    made for its unit (`program`: name and steps, each step with the keys it takes, snake_case as a config.yaml
    template's: the body a PUT sends back edited), the id the program runs under (`programId`) and whether it
    is running or paused on its unit now."""
    return {"id": draft_id, "name": name, "format": fmt, "unit": unit, "recipe": recipe, "program": program,
            "programId": f"recipe:{draft_id}", "running": running, "createdBy": created_by,
            "createdAt": iso(created_at), "editedBy": edited_by, "editedAt": iso(edited_at)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def alarm(occurrence: Alarm, event: str) -> dict[str, Any]:
    """An alarm transition (`event`: raised, cleared, acked, ... or `standing` in a snapshot)."""
    return {"type": ALARM, "event": event, **alarm_view(occurrence)}


def snapshot(frame: dict[str, Any], seq: int) -> dict[str, Any]:
    """A live frame standing for the present (a late joiner's first frames): same shape, plus
    the bus position it was taken at and `"snapshot": true`."""
    frame["seq"] = seq
    frame["snapshot"] = True
    return frame


def config_reloaded(config_hash: str, removed_endpoint_ids: list[int], changed_endpoint_ids: list[int],
                    sections: list[str]) -> dict[str, Any]:
    """`config`: a reloaded config.yaml is live (bevforge/reload.py). It is the notice that ends every
    subscription to a removed endpoint (no telemetry of it follows); screens redraw from it."""
    return {"type": "config", "event": "reloaded", "configHash": config_hash,
            "removedEndpointIds": removed_endpoint_ids, "changedEndpointIds": changed_endpoint_ids,
            "sections": sections, "timestamp": now_iso()}


def site_status(online: bool, site: str, reason: str | None = None) -> dict[str, Any]:
    """`<root>/status` on MQTT (docs/mqtt.md): the birth (`online`) and the will / goodbye (`offline`).
    The will is registered when the link connects, so its `timestamp` is that moment, not the death's."""
    frame: dict[str, Any] = {"type": "status", "status": "online" if online else "offline", "site": site,
                             "timestamp": now_iso()}
    if reason is not None:
        frame["reason"] = reason
    return frame


def history_batch(store: str, after: int, up_to: int, rows: Sequence[Sequence[Any] | dict[str, Any]],
                  stream: str = "telemetry") -> dict[str, Any]:
    """`<root>/history` on MQTT (docs/mqtt.md "Store-and-forward"): one stream's rows with ids in (after, upTo]:
    history rows as `[id, node, endpoint, value, quality, sourceTs, serverTs]` (times in epoch seconds), alarm
    journal and audit entries as the objects their REST routes list."""
    return {"type": "history", "stream": stream, "store": store, "after": after, "upTo": up_to,
            "rows": [row if isinstance(row, dict) else list(row) for row in rows]}


def history_hello(stream: str = "telemetry") -> dict[str, Any]:
    """`<root>/cmd/<centre user>/ack` when a centre (re)connects: it listens now, so the site sends again from its
    last acknowledged row at once instead of after its re-send wait."""
    return {"type": "historyAck", "stream": stream, "hello": True}


def history_ack(store: str, up_to: int, gap: bool, stream: str = "telemetry") -> dict[str, Any]:
    """`<root>/cmd/<centre user>/ack`: the centre has committed the site's rows up to `upTo`; `gap`: the last
    batch did not join on (a message was lost), send again from `upTo`."""
    return {"type": "historyAck", "stream": stream, "store": store, "upTo": up_to, "gap": gap}


# -- replies to one client (never published) ------------------------------------------------------

def connected(client_id: str, authenticated: bool, seq: int) -> dict[str, Any]:
    return {"type": CONNECTED, "clientId": client_id, "authenticated": authenticated, "serverTime": now_iso(),
            "seq": seq}


def authenticated_as(user: str, role: str) -> dict[str, Any]:
    return {"type": AUTHENTICATED, "user": user, "role": role}


def subscription(kind: str, channel: str, subscriptions: int, **ids: Any) -> dict[str, Any]:
    """`subscribed` / `unsubscribed`: the ids echoed (endpointIds or commandIds) when some were named."""
    return {"type": kind, "channel": channel, **ids, "subscriptions": subscriptions}


def ping() -> dict[str, Any]:
    return {"type": PING, "timestamp": now_iso()}


def pong() -> dict[str, Any]:
    return {"type": PONG, "timestamp": now_iso()}


def resync(reason: str, seq: int) -> dict[str, Any]:
    return {"type": RESYNC, "reason": reason, "seq": seq}


def error(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """The live error frame: `code`, `message`, `field` when one is at fault, then any extra."""
    frame: dict[str, Any] = {"type": ERROR, "code": code, "message": message}
    if field is not None:
        frame["field"] = field
    frame.update(extra)
    return frame


def error_of(exc: BevForgeError) -> dict[str, Any]:
    """The live error frame for a typed error (the one /ws and SSE translator)."""
    return error(exc.code, exc.message, exc.field, **exc.extra)


# -- views (REST answers, and the parts frames share with them) ----------------------------------

def endpoint_view(endpoint: Endpoint, state: EndpointState) -> dict[str, Any]:
    """An endpoint with its configuration and present value (GET /endpoints, /tiles)."""
    return {
        "endpointId": endpoint.id,
        "name": endpoint.name,
        "label": endpoint.display_name,
        "node": endpoint.node,
        "kind": endpoint.kind.value,
        "unit": endpoint.unit,
        "dataType": endpoint.data_type.value,
        "writable": endpoint.writable,
        "critical": endpoint.critical,
        "range": {"min": endpoint.range.min, "max": endpoint.range.max} if endpoint.range else None,
        "safeValue": endpoint.safe_value,
        "feedbackEndpointId": endpoint.feedback_id,
        "pollIntervalS": endpoint.poll_interval_s,
        "staleAfterS": endpoint.stale_after,
        "value": plain_value(state.value) if state.quality is not Quality.BAD else None,
        "lastValue": plain_value(state.value),
        "quality": state.quality.value,
        "timestamp": iso(state.server_time),
        "sourceTimestamp": iso(state.source_time),
        "error": state.error,
    }


def state_view(state: EndpointState) -> dict[str, Any]:
    """An endpoint's present value alone."""
    return {
        "endpointId": state.endpoint_id,
        "value": plain_value(state.value),
        "quality": state.quality.value,
        "sourceTimestamp": iso(state.source_time),
        "timestamp": iso(state.server_time),
        "error": state.error,
    }


def state_of(frame: dict[str, Any]) -> EndpointState:
    """The endpoint state a telemetry frame reports (what a screen shows from a pushed frame)."""
    return EndpointState(frame["endpointId"], value=frame["value"], quality=Quality(frame["quality"]),
                         server_time=from_iso(frame.get("timestamp")), error=frame.get("error"),
                         seq=frame.get("seq", 0))


def history_reading(endpoint_id: int, value: Any, quality: str, server_ts: Any,
                    source_ts: Any) -> dict[str, Any]:
    """One stored sample (GET /telemetry); stored values and times are formatted defensively (a hand-edited
    row must never break a read)."""
    return {"endpointId": endpoint_id, "value": plain_value(value), "quality": quality,
            "timestamp": iso_epoch(server_ts), "sourceTimestamp": iso_epoch(source_ts)}


def history_rollup(endpoint_id: int, minute_ts: Any, average: Any, minimum: Any, maximum: Any,
                   samples: Any) -> dict[str, Any]:
    """One 1-minute rollup standing for pruned raw samples (GET /telemetry)."""
    return {"endpointId": endpoint_id, "value": plain_value(average), "quality": "good",
            "timestamp": iso_epoch(minute_ts), "sourceTimestamp": None,
            "rollup": {"periodS": 60, "minimum": plain_value(minimum), "maximum": plain_value(maximum),
                       "samples": plain_value(samples)}}


def trend_view(view: TrendLayout) -> dict[str, Any]:
    """A trend view the picker lists (GET/POST /trends/views): `scope` vessel, shared or mine."""
    return {"key": view.key, "name": view.name, "pens": list(view.pens), "spanS": view.span_s, "scope": view.scope,
            "id": view.id}


def trend_marker(marker: Marker) -> dict[str, Any]:
    """A command or alarm event on a trend's time axis (GET /trends/markers)."""
    return {"kind": marker.kind, "time": iso(marker.time), "endpointId": marker.endpoint_id, "title": marker.title,
            "text": marker.text, **marker.extra}


def command_view(command: Command) -> dict[str, Any]:
    """A command with every lifecycle timestamp (GET /commands, POST /command answers)."""
    return {
        "commandId": command.id,
        "endpointId": command.endpoint_id,
        "value": command.requested_value,
        "requestedValue": command.requested_value,
        "status": command.status.value,
        "actualValue": command.actual_value,
        "error": command.error,
        "reasons": command.reasons,
        "user": command.user,
        "station": command.station,
        "origin": command.origin,
        "createdAt": iso(command.created_at),
        "queuedAt": iso(command.queued_at),
        "sentAt": iso(command.sent_at),
        "ackedAt": iso(command.acked_at),
        "completedAt": iso(command.completed_at),
        "updatedAt": iso(command.updated_at),
    }


def alarm_view(occurrence: Alarm) -> dict[str, Any]:
    """An alarm occurrence as the API, the frames and the screens show it."""
    point = occurrence.point
    return {
        "alarmId": occurrence.id, "ruleId": occurrence.rule_id, "kind": occurrence.kind,
        "severity": occurrence.severity.value, "priority": occurrence.severity.value,
        "message": occurrence.message, "endpointId": occurrence.endpoint_id, "node": occurrence.node,
        "value": occurrence.value,
        "state": occurrence.state, "active": point.active, "acked": point.acked,
        "latched": point.latched, "shelved": point.shelf, "shelvedUntil": iso(point.shelved_until),
        "suppressed": point.suppressed, "outOfService": point.out_of_service,
        "chattering": occurrence.chattering, "firstOut": occurrence.first_out,
        "timestamp": iso(occurrence.raised_at), "raisedAt": iso(occurrence.raised_at),
        "clearedAt": iso(occurrence.cleared_at),
        "ackedAt": iso(occurrence.acked_at), "ackedBy": occurrence.acked_by, "ackComment": occurrence.ack_comment,
    }
