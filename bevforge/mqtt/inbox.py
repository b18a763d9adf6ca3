"""Commands that arrive over MQTT: who sent them, what they set, and into the one command pipeline.

MQTT does not tell a subscriber who published a message. The identity is made real by the topic:
a user publishes only under `<root>/cmd/<their username>/…` because the broker's ACL says so
(`pattern write <root>/cmd/%u/#`, docs/mqtt.md). Here that username is looked up in `mqtt.users`,
which gives the BevForge role and nodes it acts with; an unknown user is refused. The command then
goes through `CommandService.submit` exactly as an operator's press does (role and node checks in
permissions.py, interlocks, readback, audit as `mqtt:<username>`); its lifecycle comes back on
`<root>/commands/<id>` through the outbox. A message that cannot be taken answers an error frame on
`<root>/cmd/<user>/error` and changes nothing.

The site's standing alarms are handled the same way on `<root>/cmd/<user>/alarms/<alarmId>/<action>`
(ack, shelve, unshelve, reset, out-of-service, in-service): the user's role from mqtt.users must be the one
the REST action needs (`permissions.alarm_action_role`), and the site's own alarm service does it, journaled
and audited as `mqtt:<username>`. That is how a central panel's operators act on a site's alarms.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from bevforge import messages, permissions
from bevforge.alarms import MAX_SHELF_S, AlarmNotFound
from bevforge.commands.service import MAX_COMMAND_ID
from bevforge.domain import Actor
from bevforge.errors import (
    FORBIDDEN,
    INVALID_COMMAND_ID,
    INVALID_JSON,
    INVALID_REQUEST,
    MISSING_FIELD,
    TOO_LARGE,
    UNKNOWN_ALARM,
    UNKNOWN_ENDPOINT,
    BevForgeError,
    Forbidden,
    Invalid,
    Malformed,
    NotFound,
    TooLarge,
)
from bevforge.ingest import RateLimiter
from bevforge.mqtt import topics
from bevforge.mqtt.outbox import Outgoing

if TYPE_CHECKING:
    from bevforge.alarms import AlarmService
    from bevforge.commands import CommandService
    from bevforge.config import Endpoint, PlantConfig

log = logging.getLogger(__name__)

ORIGIN = "mqtt"  # the commands' origin, as the record and the frames show it
STATION = "mqtt"
MAX_PAYLOAD = 4096
REQUEST_IDS_KEPT = 10_000


def actor_name(username: str) -> str:
    """How records and audit rows name an MQTT user: `mqtt:<username>`."""
    return f"{ORIGIN}:{username}"


def parse_ack_comment(payload: bytes) -> str | None:
    """An alarm acknowledgement's body: empty, or `{"comment": "…"}` (at most 500 characters)."""
    if len(payload) > MAX_PAYLOAD:
        raise TooLarge(f"a message is at most {MAX_PAYLOAD} bytes", code=TOO_LARGE, field="payload")
    if not payload.strip():
        return None
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise Malformed("an acknowledgement is empty or a JSON object", code=INVALID_JSON, field="payload") from None
    if not isinstance(body, dict) or sorted(set(body) - {"comment"}):
        raise Invalid("an acknowledgement takes only a comment", code=INVALID_REQUEST, field="payload")
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 500):
        raise Invalid("comment: text of at most 500 characters", code=INVALID_REQUEST, field="comment")
    return comment


@dataclass(frozen=True, slots=True)
class AlarmRequest:
    """What an alarm action's body asks: a shelf's duration (None: one-shot) and the comment for the journal."""

    duration_s: float | None = None
    comment: str | None = None


def parse_alarm_request(payload: bytes, action: str) -> AlarmRequest:
    """An alarm action's body (not an acknowledgement's): a JSON object (`{}`: nothing to add) with `comment`
    (at most 500 characters) and, for a shelve, `durationS` (seconds, above 0 and at most MAX_SHELF_S; absent or
    null: a one-shot shelf): the fields the REST route takes. A bad one names its field. (An empty message never
    comes here: the bridge takes it for the emptying of a retained topic.)"""
    if len(payload) > MAX_PAYLOAD:
        raise TooLarge(f"a message is at most {MAX_PAYLOAD} bytes", code=TOO_LARGE, field="payload")
    if not payload.strip():
        return AlarmRequest()
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise Malformed(f"an alarm {action} is empty or a JSON object", code=INVALID_JSON, field="payload") from None
    if not isinstance(body, dict):
        raise Invalid(f"an alarm {action} is empty or a JSON object", code=INVALID_REQUEST, field="payload")
    fields = ("durationS", "comment") if action == topics.SHELVE else ("comment",)
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise Invalid(f"unknown field {unknown[0]!r} (an alarm {action} takes {' and '.join(fields)})",
                      code=INVALID_REQUEST, field=unknown[0])
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 500):
        raise Invalid("comment: text of at most 500 characters", code=INVALID_REQUEST, field="comment")
    duration = body.get("durationS")
    if duration is not None and (not isinstance(duration, int | float) or isinstance(duration, bool)
                                 or not 0 < duration <= MAX_SHELF_S):
        raise Invalid(f"durationS: seconds above 0 and at most {MAX_SHELF_S:g} (absent for a one-shot shelf)",
                      code=INVALID_REQUEST, field="durationS")
    return AlarmRequest(None if duration is None else float(duration), comment)


def parse_payload(payload: bytes) -> tuple[Any, str | None]:
    """`{"value": …, "requestId": "…"}` or a bare JSON value (`72.5`, `true`); bare text is taken as a
    string value (`on`) for the endpoint's type check to judge. → (value, requestId)."""
    if len(payload) > MAX_PAYLOAD:
        raise TooLarge(f"a command message is at most {MAX_PAYLOAD} bytes", code=TOO_LARGE, field="payload")
    if not payload.strip():
        raise Malformed("empty command message: send a value", code=INVALID_REQUEST, field="value")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        try:
            return payload.decode().strip(), None
        except UnicodeDecodeError:
            raise Malformed("a command message is JSON or UTF-8 text", code=INVALID_JSON, field="payload") from None
    if not isinstance(body, dict):
        return body, None
    unknown = sorted(set(body) - {"value", "requestId"})
    if unknown:
        raise Invalid(f"unknown field {unknown[0]!r} (a command takes value and requestId)", code=INVALID_REQUEST,
                      field=unknown[0])
    if "value" not in body:
        raise Invalid("value is required", code=MISSING_FIELD, field="value")
    request_id = body.get("requestId")
    if request_id is not None and (not isinstance(request_id, str) or not request_id.strip()
                                   or len(request_id) > MAX_COMMAND_ID):
        raise Invalid(f"requestId must be a non-empty string of at most {MAX_COMMAND_ID} characters",
                      code=INVALID_COMMAND_ID, field="requestId")
    return body["value"], request_id


class CommandInbox:
    """Turns `<root>/cmd/<user>/<node>/<endpoint>/set` messages into commands, or into error answers."""

    def __init__(self, root: str, config_of: Callable[[], PlantConfig], commands: CommandService,
                 rate_per_s: float, burst: int, alarms: AlarmService) -> None:
        self.root = root
        self.alarms = alarms
        self.rate = RateLimiter(rate_per_s, burst, what=("MQTT command", "commands"))  # per MQTT user
        self.config_of = config_of
        self.commands = commands
        self._request_ids: OrderedDict[str, str] = OrderedDict()  # commandId → requestId (MQTT commands)
        self.accepted = 0
        self.refused = 0

    def request_id(self, command_id: str) -> str | None:
        return self._request_ids.get(command_id)

    def actor(self, username: str) -> Actor:
        """The BevForge actor an MQTT user acts as (mqtt.users); anyone not listed is refused."""
        settings = self.config_of().mqtt
        user = settings.users.get(username) if settings is not None else None
        if user is None:
            raise Forbidden(f"MQTT user {username!r} may not send commands (not in mqtt.users)", code=FORBIDDEN,
                            field="user")
        return Actor(user=actor_name(username), station=STATION, role=user.role,
                     nodes=None if user.nodes is None else frozenset(user.nodes))

    def acknowledge(self, topic: str, username: str, alarm_id: int, payload: bytes) -> Outgoing | None:
        """`<root>/cmd/<user>/alarms/<id>/ack`: the alarm acknowledged as `mqtt:<user>` with the role and nodes
        of mqtt.users (an operator at least), journaled and audited as the REST acknowledgement is; one already
        closed changes nothing. Returns the error answer to publish, or None."""
        try:
            actor = permissions.require_role(self.actor(username), "operator")
            comment = parse_ack_comment(payload)
            self.rate.take(username, 1)
            try:
                self.alarms.ack(alarm_id, actor, comment)
            except AlarmNotFound:
                pass  # closed already (or on a node the user does not see): nothing to acknowledge
        except BevForgeError as exc:
            self.refused += 1
            log.info("MQTT alarm acknowledgement on %s refused: %s", topic, exc.message)
            frame = messages.error_of(exc)
            frame["topic"] = topic
            return Outgoing(topics.user_error(self.root, username), orjson.dumps(frame), False)
        self.accepted += 1
        log.info("MQTT alarm %d acknowledged by %s", alarm_id, actor.user)
        return None

    def alarm_action(self, topic: str, username: str, alarm_id: int, action: str, payload: bytes) -> Outgoing | None:
        """`<root>/cmd/<user>/alarms/<id>/<action>` (shelve, unshelve, reset, out-of-service, in-service): the site's
        alarm service does it as `mqtt:<user>`, with the role the REST route needs (a one-shot shelf: technician)
        and the user's nodes; shelves and service act on the alarm's definition, as the screens do. Journaled and
        audited as the REST action is. Returns the error answer to publish (a bad body names its field), or None."""
        try:
            actor = self.actor(username)
            request = parse_alarm_request(payload, action)
            permissions.require_role(actor, permissions.alarm_action_role(action, request.duration_s is not None))
            self.rate.take(username, 1)
            self._act_on_alarm(alarm_id, action, actor, request)
        except BevForgeError as exc:
            self.refused += 1
            log.info("MQTT alarm %s on %s refused: %s", action, topic, exc.message)
            frame = messages.error_of(exc)
            frame["topic"] = topic
            return Outgoing(topics.user_error(self.root, username), orjson.dumps(frame), False)
        self.accepted += 1
        log.info("MQTT alarm %d: %s by %s", alarm_id, action, actor.user)
        return None

    def _act_on_alarm(self, alarm_id: int, action: str, actor: Actor, request: AlarmRequest) -> None:
        alarms = self.alarms
        try:
            if action == topics.RESET:
                alarms.reset(alarm_id, actor, request.comment)
                return
            alarm = alarms.current.get(alarm_id)
            if alarm is None or not alarms.may_see(actor, alarm):
                raise AlarmNotFound(alarm_id)
            if action == topics.SHELVE:
                alarms.shelve(alarm.rule_id, actor, request.duration_s, request.comment)
            elif action == topics.UNSHELVE:
                alarms.unshelve(alarm.rule_id, actor, request.comment)
            else:
                alarms.set_in_service(alarm.rule_id, action == topics.IN_SERVICE, actor, request.comment)
        except AlarmNotFound:
            # closed already, on a node the user does not see, or one that cannot be shelved (a momentary event)
            raise NotFound(f"no standing alarm {alarm_id} to {action}", code=UNKNOWN_ALARM, field="alarmId") from None

    def endpoint(self, node: str, name: str) -> Endpoint:
        for endpoint in self.config_of().endpoints:
            if endpoint.name == name and endpoint.node == node:
                return endpoint
        raise NotFound(f"no endpoint {name!r} on node {node!r}", code=UNKNOWN_ENDPOINT, field="topic")

    def refuse_retained(self, topic: str) -> Outgoing | None:
        """A command published with the retain flag is not run (the broker would hand it over again at every
        reconnect, and it would run again); the bridge has removed it from the broker."""
        self.refused += 1
        user = topics.user_of(self.root, topic)
        if user is None:
            return None
        log.warning("MQTT command on %s refused: it was retained", topic)
        frame = messages.error(INVALID_REQUEST, "a command kept on the broker (retained) is never run later: "
                               "publish commands without the retain flag (it was removed)", "retain", topic=topic)
        return Outgoing(topics.user_error(self.root, user), orjson.dumps(frame), False)

    async def handle(self, topic: str, payload: bytes) -> Outgoing | None:
        """Take one message; return the error answer to publish, or None when the command was submitted
        (its statuses follow on the bus). Never raises for anything the sender did."""
        on_alarm = topics.parse_alarm_action(self.root, topic)
        if on_alarm is not None:
            user, alarm_id, action = on_alarm
            if action == topics.ACK:
                return self.acknowledge(topic, user, alarm_id, payload)
            return self.alarm_action(topic, user, alarm_id, action, payload)
        parsed = topics.parse_set(self.root, topic)
        user = parsed.user if parsed is not None else topics.user_of(self.root, topic)
        request_id: str | None = None
        added: str | None = None  # a requestId remembered for this message (forgotten again if it is refused)
        try:
            if parsed is None:
                raise Invalid(f"not a command topic: {topic!r} (use {self.root}/cmd/<user>/<node>/<endpoint>/set)",
                              code=INVALID_REQUEST, field="topic")
            actor = self.actor(parsed.user)
            value, request_id = parse_payload(payload)
            self.rate.take(parsed.user, 1)
            endpoint = self.endpoint(parsed.node, parsed.endpoint)
            if request_id is not None and request_id not in self._request_ids:
                # the requestId is the commandId: a redelivered message is not run twice
                added = request_id
                self._request_ids[request_id] = request_id
                self._request_ids.move_to_end(request_id)
                while len(self._request_ids) > REQUEST_IDS_KEPT:
                    self._request_ids.popitem(last=False)
            command, created = await self.commands.submit(endpoint.id, value, request_id, actor=actor, origin=ORIGIN)
        except BevForgeError as exc:
            self.refused += 1
            if added is not None:
                self._request_ids.pop(added, None)
            log.info("MQTT command on %s refused: %s", topic, exc.message)
            if user is None:
                return None
            frame = messages.error_of(exc)
            frame["topic"] = topic
            if request_id is not None:
                frame["requestId"] = request_id
            return Outgoing(topics.user_error(self.root, user), orjson.dumps(frame), False)
        self.accepted += 1
        log.info("MQTT command %s from %s: %s → %r (%s)", command.id, actor.user, endpoint.name, value,
                 command.status.value if created else "already received")
        return None
