"""The seed's /ws message protocol: what each client frame means and how it is answered.

Transport-free: frames come in as text, answers go out through the connection's bus Subscriber
(so replies, snapshots and live events leave in one order, from one sender). A bad frame raises
FrameError, which the connection turns into an `{"type":"error",...}` frame and stays open.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Literal

import orjson

from bevforge import permissions
from bevforge.api.livefeed import (
    CHANNELS,
    Interest,
    alarm_snapshot,
    command_snapshot,
    reply,
    telemetry_snapshot,
)
from bevforge.commands import MAX_COMMAND_ID, CommandRejected
from bevforge.domain import Actor, iso, utcnow

if TYPE_CHECKING:
    from bevforge.bus import Subscriber
    from bevforge.config import RealtimeSettings
    from bevforge.runtime import Runtime

FIELDS = {
    "ping": set(), "pong": set(), "auth": {"token"},
    "subscribe": {"channel", "endpointIds", "commandIds"}, "unsubscribe": {"channel", "endpointIds", "commandIds"},
    "command": {"endpointId", "value", "commandId"},
}


class FrameError(Exception):
    """A client frame that cannot be honoured; becomes an error frame, the connection stays open."""

    def __init__(self, code: str, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra

    def frame(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        out.update(self.extra)
        return out


class RateLimiter:
    """Token bucket of `rate` messages a second (bursts up to one second's worth).

    Every message over the limit is a strike; strikes reset after a full second without one, so
    only *sustained* excess reaches `max_strikes` and gets the connection closed.
    """

    def __init__(self, rate: float, max_strikes: int) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.max_strikes = max_strikes
        self.strikes = 0
        self._last = time.monotonic()
        self._last_strike = 0.0

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now
        if self.strikes and now - self._last_strike >= 1.0:
            self.strikes = 0
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.strikes += 1
        self._last_strike = now
        return False

    @property
    def abusive(self) -> bool:
        return self.strikes >= self.max_strikes


def parse_frame(text: str, max_bytes: int) -> dict[str, Any]:
    """Text → a known message with only its known fields, or FrameError naming the problem."""
    size = len(text.encode())
    if size > max_bytes:
        raise FrameError("too_large", f"message of {size} bytes is over the limit of {max_bytes}")
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError("invalid_json", "message is not valid JSON") from None
    if not isinstance(message, dict):
        raise FrameError("invalid_message", "a message must be a JSON object with a \"type\"")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise FrameError("invalid_field" if "type" in message else "missing_field",
                         "type must be a string" if "type" in message else "type is required", "type")
    if kind not in FIELDS:
        raise FrameError("unknown_type", f"unknown message type {kind!r}; expected one of "
                         + ", ".join(sorted(FIELDS)), "type")
    unknown = set(message) - FIELDS[kind] - {"type"}
    if unknown:
        key = sorted(unknown)[0]
        raise FrameError("unknown_field", f"unknown field {key!r} in a {kind} message", key)
    return message


class Protocol:
    """Answers one connection's frames for `actor`; replies and snapshots go to `subscriber`."""

    def __init__(self, runtime: Runtime, settings: RealtimeSettings, actor: Actor, interest: Interest,
                 subscriber: Subscriber) -> None:
        self.runtime = runtime
        self.settings = settings
        self.actor = actor
        self.interest = interest
        self.out = subscriber.push

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ping":
            self.out(reply("pong", timestamp=iso(utcnow())))
        elif kind == "pong":
            pass  # an answer to our heartbeat: receiving it already counted as life
        elif kind == "subscribe":
            await self._subscribe(message)
        elif kind == "unsubscribe":
            self._unsubscribe(message)
        elif kind == "command":
            await self._command(message)
        elif kind == "auth":
            raise FrameError("already_authenticated", f"this connection is already authenticated as {self.actor.user}")

    # -- subscriptions ---------------------------------------------------------------------

    def _channel(self, message: dict[str, Any]) -> str:
        channel = message.get("channel")
        if channel is None:
            raise FrameError("missing_field", "channel is required", "channel")
        if not isinstance(channel, str) or channel not in CHANNELS:
            raise FrameError("unknown_channel", f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}",
                             "channel")
        stray = {"telemetry": "commandIds", "commands": "endpointIds", "alarms": None}[channel]
        for key in ("endpointIds", "commandIds"):
            if key in message and (key == stray or channel == "alarms"):
                raise FrameError("unknown_field", f"{key} does not apply to the {channel} channel", key)
        return channel

    def _endpoint_ids(self, message: dict[str, Any]) -> list[int] | None:
        if "endpointIds" not in message:
            return None
        ids = message["endpointIds"]
        if not isinstance(ids, list) or not ids or any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
            raise FrameError("invalid_field", "endpointIds must be a non-empty list of integers", "endpointIds")
        endpoints = self.runtime.plant.endpoints
        unknown = [i for i in ids if i not in endpoints or not self.interest.visible(endpoints[i].node)]
        if unknown:
            raise FrameError("unknown_endpoint", "no endpoint with id " + ", ".join(map(str, unknown)),
                             "endpointIds", endpointIds=unknown)
        return list(dict.fromkeys(ids))

    def _command_ids(self, message: dict[str, Any]) -> list[str] | None:
        if "commandIds" not in message:
            return None
        ids = message["commandIds"]
        if (not isinstance(ids, list) or not ids
                or any(not isinstance(i, str) or not i.strip() or len(i) > MAX_COMMAND_ID for i in ids)):
            raise FrameError("invalid_field", f"commandIds must be a non-empty list of strings of at most "
                             f"{MAX_COMMAND_ID} characters", "commandIds")
        return list(dict.fromkeys(ids))

    def _check_room(self, adding: int) -> None:
        limit = self.settings.max_subscriptions
        if self.interest.count + adding > limit:
            raise FrameError("too_many_subscriptions",
                             f"at most {limit} subscriptions per connection; this one holds {self.interest.count}",
                             limit=limit, subscriptions=self.interest.count)

    async def _subscribe(self, message: dict[str, Any]) -> None:
        channel = self._channel(message)
        interest = self.interest
        if channel == "telemetry":
            ids = self._endpoint_ids(message)
            if ids is None:
                self._check_room(0 if interest.all_telemetry else 1)
                interest.all_telemetry = True
                endpoints = self.runtime.plant.endpoints.values()
                ids = [e.id for e in permissions.visible_endpoints(interest.actor, endpoints)]
                self._ack("subscribed", channel)
            else:
                self._check_room(len(set(ids) - interest.endpoints))
                interest.endpoints.update(ids)
                self._ack("subscribed", channel, endpointIds=ids)
            for event in telemetry_snapshot(self.runtime, ids):
                self.out(event)
        elif channel == "alarms":
            self._check_room(0 if interest.alarms else 1)
            interest.alarms = True
            self._ack("subscribed", channel)
            for event in alarm_snapshot(self.runtime, interest):
                self.out(event)
        else:
            ids = self._command_ids(message)
            if ids is None:
                self._check_room(0 if interest.all_commands else 1)
                interest.all_commands = True
                self._ack("subscribed", channel)
                return
            self._check_room(len(set(ids) - interest.commands))
            interest.commands.update(ids)
            self._ack("subscribed", channel, commandIds=ids)
            for command_id in ids:
                await self._present(command_id, interest.commands)

    async def _present(self, command_id: str, followed: set[str]) -> None:
        """Send a known command's present status; a finished one needs following no longer."""
        command = await self.runtime.commands.find(command_id)
        if command is None or command_id not in followed:
            return  # unknown yet (may be sent later), or its final status already went out live
        if not permissions.may_see_command(self.interest.actor, self.runtime.config, command):
            followed.discard(command_id)
            return
        self.out(command_snapshot(self.runtime, command))
        if command.status.is_final:
            followed.discard(command_id)

    def _unsubscribe(self, message: dict[str, Any]) -> None:
        channel = self._channel(message)
        interest = self.interest
        if channel == "telemetry":
            self._drop(channel, "endpointIds", self._endpoint_ids(message), interest.endpoints, "all_telemetry")
        elif channel == "alarms":
            interest.alarms = False
            self._ack("unsubscribed", channel)
        else:
            self._drop(channel, "commandIds", self._command_ids(message), interest.commands, "all_commands")

    def _drop(self, channel: str, key: str, ids: list[Any] | None, followed: set[Any],
              whole: Literal["all_telemetry", "all_commands"]) -> None:
        """Telemetry and commands unsubscribe alike: without ids the whole channel ends (the
        channel-wide subscription and every id held), with ids only those ids, echoed under `key`."""
        if ids is None:
            setattr(self.interest, whole, False)
            followed.clear()
            self._ack("unsubscribed", channel)
        else:
            followed.difference_update(ids)
            self._ack("unsubscribed", channel, **{key: ids})

    def _ack(self, kind: str, channel: str, **ids: Any) -> None:
        self.out(reply(kind, channel=channel, **ids, subscriptions=self.interest.count))

    # -- commands --------------------------------------------------------------------------

    async def _command(self, message: dict[str, Any]) -> None:
        """The same pipeline as POST /api/os/command; the sender follows the command's statuses."""
        for key in ("endpointId", "value"):
            if key not in message:
                raise FrameError("missing_field", f"{key} is required", key)
        command_id = message.get("commandId")
        if command_id is None:
            command_id = str(uuid.uuid4())
        elif not isinstance(command_id, str) or not command_id.strip() or len(command_id) > MAX_COMMAND_ID:
            raise FrameError("invalid_command_id",
                             f"commandId must be a non-empty string of at most {MAX_COMMAND_ID} characters",
                             "commandId")
        endpoint_id = message["endpointId"]  # role and node are the command service's to check
        followed = self.interest.sent
        already = command_id in followed
        followed.add(command_id)  # before submit: its first status is published inside submit()
        try:
            command, created = await self.runtime.commands.submit(
                endpoint_id, message["value"], command_id, actor=self.actor, origin="ws")
        except CommandRejected as exc:
            if not already:
                followed.discard(command_id)
            raise FrameError(exc.code, exc.message, exc.field, commandId=command_id) from None
        if not created:  # a repeated commandId: idempotent, answer with where that command stands
            await self._present(command.id, followed)
