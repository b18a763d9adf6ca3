"""The seed's /ws message protocol: what each client frame means and how it is answered.

Transport-free: frames come in as text, answers go out through the connection's bus Subscriber
(so replies, snapshots and live events leave in one order, from one sender). Each message type is
registered once, with the pydantic schema of the frame it accepts (`@handles("subscribe", SubscribeIn)`):
adding a message type is one schema and one function. A frame that breaks its schema, or that a
handler refuses, raises a typed `BevForgeError`; the connection turns it into the one error frame
(`messages.error_of`) and stays open.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, StrictInt, ValidationError, WrapValidator, model_validator
from pydantic_core import PydanticCustomError

from bevforge import messages, permissions
from bevforge.api.errors import field_path
from bevforge.api.livefeed import (
    CHANNELS,
    Interest,
    alarm_snapshot,
    command_snapshot,
    controller_snapshot,
    program_snapshot,
    reply,
    telemetry_snapshot,
)
from bevforge.commands import MAX_COMMAND_ID
from bevforge.domain import Actor
from bevforge.errors import (
    ALREADY_AUTHENTICATED,
    INVALID_COMMAND_ID,
    INVALID_FIELD,
    INVALID_JSON,
    INVALID_MESSAGE,
    MISSING_FIELD,
    TOO_LARGE,
    TOO_MANY_SUBSCRIPTIONS,
    UNKNOWN_CHANNEL,
    UNKNOWN_ENDPOINT,
    UNKNOWN_FIELD,
    UNKNOWN_TYPE,
    BevForgeError,
    Conflict,
    Invalid,
    Malformed,
    TooLarge,
    TooManyRequests,
)

if TYPE_CHECKING:
    from bevforge.bus import Subscriber
    from bevforge.config import RealtimeSettings
    from bevforge.runtime import Runtime

# -- schemas of the client frames ----------------------------------------------------------------

def refuse(code: str, message: str) -> WrapValidator:
    """Any failure of the field's own validation is reported as `code` with `message` (the words and
    code docs/protocol.md promise), instead of pydantic's generic ones."""

    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except (ValidationError, ValueError):
            raise PydanticCustomError(code, message) from None

    return WrapValidator(wrap)


def _present_list(value: list[Any] | None) -> list[Any]:
    if not value:  # explicit null or []: a list of ids must name at least one
        raise ValueError("empty")
    return list(dict.fromkeys(value))  # each id once, in the order given


def _command_id(value: str) -> str:
    if not value.strip() or len(value) > MAX_COMMAND_ID:
        raise ValueError("blank or too long")
    return value


def _channel(value: Any) -> str:
    if not isinstance(value, str) or value not in CHANNELS:
        raise PydanticCustomError(UNKNOWN_CHANNEL, "unknown channel {channel}; expected one of {choices}",
                                  {"channel": repr(value), "choices": ", ".join(CHANNELS)})
    return value


Channel = Annotated[Any, AfterValidator(_channel)]
EndpointIds = Annotated[list[StrictInt] | None, AfterValidator(_present_list),
                        refuse(INVALID_FIELD, "endpointIds must be a non-empty list of integers")]
CommandIds = Annotated[list[Annotated[str, AfterValidator(_command_id)]] | None, AfterValidator(_present_list),
                       refuse(INVALID_FIELD, f"commandIds must be a non-empty list of strings of at most "
                                             f"{MAX_COMMAND_ID} characters")]
CommandId = Annotated[str | None, AfterValidator(lambda v: v if v is None else _command_id(v)),
                      refuse(INVALID_COMMAND_ID,
                             f"commandId must be a non-empty string of at most {MAX_COMMAND_ID} characters")]


class Frame(BaseModel):
    """A client frame: only its own fields (an unknown one is `unknown_field`), ids strictly typed."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PingIn(Frame):
    pass


class PongIn(Frame):
    pass


class AuthIn(Frame):
    token: Any = None


class SubscribeIn(Frame):
    channel: Channel
    endpointIds: EndpointIds = None
    commandIds: CommandIds = None

    @model_validator(mode="before")
    @classmethod
    def _ids_fit_channel(cls, data: Any) -> Any:
        """endpointIds belong to telemetry, commandIds to commands, neither to alarms or controllers
        (`unknown_field`)."""
        if not isinstance(data, dict) or set(data) - set(cls.model_fields) or data.get("channel") not in CHANNELS:
            return data  # unknown fields and channels are reported by the fields themselves
        channel = data["channel"]
        stray = {"telemetry": "commandIds", "commands": "endpointIds", "alarms": None, "controllers": None,
                 "programs": None}[channel]
        for key in ("endpointIds", "commandIds"):
            if key in data and (key == stray or channel in ("alarms", "controllers", "programs")):
                raise PydanticCustomError(UNKNOWN_FIELD, "{key} does not apply to the {channel} channel",
                                          {"key": key, "channel": channel, "field": key})
        return data


class UnsubscribeIn(SubscribeIn):
    pass


class CommandIn(Frame):
    endpointId: Any
    value: Any
    commandId: CommandId = None


# -- the registry --------------------------------------------------------------------------------

Handler = Callable[["Protocol", Any], Awaitable[None]]
HANDLERS: dict[str, tuple[type[Frame], Handler]] = {}


def handles(kind: str, schema: type[Frame]) -> Callable[[Handler], Handler]:
    """Register the handler of client frames of `type` `kind`, which must fit `schema`."""

    def register(handler: Handler) -> Handler:
        HANDLERS[kind] = (schema, handler)
        return handler

    return register


def schema_error(kind: str, exc: ValidationError) -> BevForgeError:
    """The first thing wrong with a frame, as the error docs/protocol.md lists for it.

    Unknown fields are reported first (alphabetically), then missing and wrong ones in field order.
    """
    problems = exc.errors(include_url=False)
    extra = sorted((e for e in problems if e["type"] == "extra_forbidden"), key=lambda e: str(e["loc"]))
    first = extra[0] if extra else problems[0]
    context = first.get("ctx") or {}
    field = context.get("field") or field_path(first["loc"]) or None
    if first["type"] == "extra_forbidden":
        return Invalid(f"unknown field {field!r} in a {kind} message", code=UNKNOWN_FIELD, field=field)
    if first["type"] == "missing":
        return Invalid(f"{field} is required", code=MISSING_FIELD, field=field)
    if first["type"] in (UNKNOWN_CHANNEL, UNKNOWN_FIELD, INVALID_FIELD, INVALID_COMMAND_ID):
        return Invalid(first["msg"], code=first["type"], field=field)
    return Invalid(f"{field}: {first['msg']}", code=INVALID_FIELD, field=field)


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
    """Text → a registered message with only its schema's fields, or a typed error naming the problem.

    Only the envelope is checked here (size, JSON, `type`, field names): the rest of the schema is
    checked when the frame is handled, so an unauthenticated client learns only that it must sign in.
    """
    size = len(text.encode())
    if size > max_bytes:
        raise TooLarge(f"message of {size} bytes is over the limit of {max_bytes}", code=TOO_LARGE)
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Malformed("message is not valid JSON", code=INVALID_JSON) from None
    if not isinstance(message, dict):
        raise Malformed("a message must be a JSON object with a \"type\"", code=INVALID_MESSAGE)
    kind = message.get("type")
    if not isinstance(kind, str):
        if "type" in message:
            raise Invalid("type must be a string", code=INVALID_FIELD, field="type")
        raise Invalid("type is required", code=MISSING_FIELD, field="type")
    if kind not in HANDLERS:
        raise Invalid(f"unknown message type {kind!r}; expected one of " + ", ".join(sorted(HANDLERS)),
                      code=UNKNOWN_TYPE, field="type")
    unknown = set(message) - set(HANDLERS[kind][0].model_fields) - {"type"}
    if unknown:
        key = sorted(unknown)[0]
        raise Invalid(f"unknown field {key!r} in a {kind} message", code=UNKNOWN_FIELD, field=key)
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
        """Check `message` against its type's schema and run that type's handler."""
        kind = message["type"]
        schema, handler = HANDLERS[kind]
        try:
            frame = schema.model_validate({k: v for k, v in message.items() if k != "type"})
        except ValidationError as exc:
            raise schema_error(kind, exc) from None
        await handler(self, frame)

    # -- subscriptions ---------------------------------------------------------------------

    def _endpoint_ids(self, frame: SubscribeIn) -> list[int] | None:
        ids = frame.endpointIds
        if ids is None:
            return None
        endpoints = self.runtime.plant.endpoints
        unknown = [i for i in ids if i not in endpoints or not self.interest.visible(endpoints[i].node)]
        if unknown:
            raise Invalid("no endpoint with id " + ", ".join(map(str, unknown)), code=UNKNOWN_ENDPOINT,
                          field="endpointIds", endpointIds=unknown)
        return ids

    def _check_room(self, adding: int) -> None:
        limit = self.settings.max_subscriptions
        if self.interest.count + adding > limit:
            raise TooManyRequests(f"at most {limit} subscriptions per connection; this one holds "
                                  f"{self.interest.count}", code=TOO_MANY_SUBSCRIPTIONS, limit=limit,
                                  subscriptions=self.interest.count)

    async def subscribe(self, frame: SubscribeIn) -> None:
        channel = frame.channel
        interest = self.interest
        if channel == "telemetry":
            ids = self._endpoint_ids(frame)
            if ids is None:
                self._check_room(0 if interest.all_telemetry else 1)
                interest.all_telemetry = True
                endpoints = self.runtime.plant.endpoints.values()
                ids = [e.id for e in permissions.visible_endpoints(interest.actor, endpoints)]
                self._ack(messages.SUBSCRIBED, channel)
            else:
                self._check_room(len(set(ids) - interest.endpoints))
                interest.endpoints.update(ids)
                self._ack(messages.SUBSCRIBED, channel, endpointIds=ids)
            for event in telemetry_snapshot(self.runtime, ids):
                self.out(event)
        elif channel == "alarms":
            self._check_room(0 if interest.alarms else 1)
            interest.alarms = True
            self._ack(messages.SUBSCRIBED, channel)
            for event in alarm_snapshot(self.runtime, interest):
                self.out(event)
        elif channel == "controllers":
            self._check_room(0 if interest.controllers else 1)
            interest.controllers = True
            self._ack(messages.SUBSCRIBED, channel)
            for event in controller_snapshot(self.runtime, interest):
                self.out(event)
        elif channel == "programs":
            self._check_room(0 if interest.programs else 1)
            interest.programs = True
            self._ack(messages.SUBSCRIBED, channel)
            for event in program_snapshot(self.runtime, interest):
                self.out(event)
        else:
            command_ids = frame.commandIds
            if command_ids is None:
                self._check_room(0 if interest.all_commands else 1)
                interest.all_commands = True
                self._ack(messages.SUBSCRIBED, channel)
                return
            self._check_room(len(set(command_ids) - interest.commands))
            interest.commands.update(command_ids)
            self._ack(messages.SUBSCRIBED, channel, commandIds=command_ids)
            for command_id in command_ids:
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

    def unsubscribe(self, frame: UnsubscribeIn) -> None:
        channel = frame.channel
        interest = self.interest
        if channel == "telemetry":
            self._drop(channel, "endpointIds", self._endpoint_ids(frame), interest.endpoints, "all_telemetry")
        elif channel == "alarms":
            interest.alarms = False
            self._ack(messages.UNSUBSCRIBED, channel)
        elif channel == "controllers":
            interest.controllers = False
            self._ack(messages.UNSUBSCRIBED, channel)
        elif channel == "programs":
            interest.programs = False
            self._ack(messages.UNSUBSCRIBED, channel)
        else:
            self._drop(channel, "commandIds", frame.commandIds, interest.commands, "all_commands")

    def _drop(self, channel: str, key: str, ids: list[Any] | None, followed: set[Any],
              whole: Literal["all_telemetry", "all_commands"]) -> None:
        """Telemetry and commands unsubscribe alike: without ids the whole channel ends (the
        channel-wide subscription and every id held), with ids only those ids, echoed under `key`."""
        if ids is None:
            setattr(self.interest, whole, False)
            followed.clear()
            self._ack(messages.UNSUBSCRIBED, channel)
        else:
            followed.difference_update(ids)
            self._ack(messages.UNSUBSCRIBED, channel, **{key: ids})

    def _ack(self, kind: str, channel: str, **ids: Any) -> None:
        self.out(reply(messages.subscription(kind, channel, self.interest.count, **ids)))

    # -- commands --------------------------------------------------------------------------

    async def command(self, frame: CommandIn) -> None:
        """The same pipeline as POST /api/os/command; the sender follows the command's statuses."""
        command_id = frame.commandId if frame.commandId is not None else str(uuid.uuid4())
        endpoint_id = frame.endpointId  # role and node are the command service's to check
        followed = self.interest.sent
        already = command_id in followed
        followed.add(command_id)  # before submit: its first status is published inside submit()
        try:
            command, created = await self.runtime.commands.submit(
                endpoint_id, frame.value, command_id, actor=self.actor, origin="ws")
        except BevForgeError as exc:
            if not already:
                followed.discard(command_id)
            exc.extra["commandId"] = command_id
            raise
        if not created:  # a repeated commandId: idempotent, answer with where that command stands
            await self._present(command.id, followed)


# -- the handlers, one per message type ----------------------------------------------------------

@handles("ping", PingIn)
async def _ping(protocol: Protocol, _frame: PingIn) -> None:
    protocol.out(reply(messages.pong()))


@handles("pong", PongIn)
async def _pong(_protocol: Protocol, _frame: PongIn) -> None:
    """An answer to our heartbeat: receiving it already counted as life."""


@handles("auth", AuthIn)
async def _auth(protocol: Protocol, _frame: AuthIn) -> None:
    """Credentials are taken before the first handled frame (`Connection`); a second time is refused."""
    raise Conflict(f"this connection is already authenticated as {protocol.actor.user}", code=ALREADY_AUTHENTICATED)


@handles("subscribe", SubscribeIn)
async def _subscribe(protocol: Protocol, frame: SubscribeIn) -> None:
    await protocol.subscribe(frame)


@handles("unsubscribe", UnsubscribeIn)
async def _unsubscribe(protocol: Protocol, frame: UnsubscribeIn) -> None:
    protocol.unsubscribe(frame)


@handles("command", CommandIn)
async def _command(protocol: Protocol, frame: CommandIn) -> None:
    await protocol.command(frame)
