"""The MQTT topic tree of one site, in one place (docs/mqtt.md "Topic tree").

    <root>/status                                   birth / will: online or offline (retained)
    <root>/<node>/<endpoint>/state                  an endpoint's present value (retained)
    <root>/alarms/<alarmId>                         an alarm occurrence while it stands (retained)
    <root>/commands/<commandId>                     each transition of a command (not retained)
    <root>/cmd/<mqtt user>/<node>/<endpoint>/set    a command from that MQTT user (BevForge subscribes)
    <root>/cmd/<mqtt user>/error                    why that user's last message was refused
    <root>/history                                  store-and-forward: the site's history rows (not retained)
    <root>/cmd/<mqtt user>/ack                      a centre (as that user) acknowledges the rows it committed
    <root>/cmd/<mqtt user>/alarms/<id>/ack          that user (a centre's operator through it) acknowledges an alarm
    <root>/cmd/<mqtt user>/alarms/<id>/<action>     … or shelves, unshelves, resets it, takes it out of service or
                                                    returns it (shelve, unshelve, reset, out-of-service, in-service)

`<root>` is `<topic_prefix>/<site>` (config `mqtt:`). Pure functions: no I/O, no decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUS = "status"
ALARMS = "alarms"
COMMANDS = "commands"
COMMANDS_IN = "cmd"
STATE = "state"
SET = "set"
ERROR = "error"

_ESCAPED = {"%": "%25", "/": "%2F", "+": "%2B", "#": "%23", "\0": "%00"}


def level(text: str) -> str:
    """`text` as one topic level: `/`, `+`, `#`, NUL and `%` percent-encoded (a REST client may choose a
    commandId with a slash; it must not open levels of its own or act as a wildcard)."""
    if not any(c in text for c in _ESCAPED):
        return text
    return "".join(_ESCAPED.get(c, c) for c in text)


def status(root: str) -> str:
    return f"{root}/{STATUS}"


def state(root: str, node: str, endpoint: str) -> str:
    return f"{root}/{node}/{endpoint}/{STATE}"


def alarm(root: str, alarm_id: int) -> str:
    return f"{root}/{ALARMS}/{alarm_id}"


def alarm_subscription(root: str) -> str:
    """BevForge reads its own alarm topics back once per connection: a retained alarm left from before
    (it ended while BevForge was stopped or cut off) is then removed."""
    return f"{root}/{ALARMS}/+"


def alarm_id_of(root: str, topic: str) -> int | None:
    prefix = f"{root}/{ALARMS}/"
    if not topic.startswith(prefix):
        return None
    try:
        return int(topic[len(prefix):])
    except ValueError:
        return None


def command(root: str, command_id: str) -> str:
    return f"{root}/{COMMANDS}/{level(command_id)}"


def command_subscription(root: str) -> str:
    """What BevForge subscribes to: every user's set topics (the broker's ACL decides who may publish)."""
    return f"{root}/{COMMANDS_IN}/+/+/+/{SET}"


def user_error(root: str, user: str) -> str:
    return f"{root}/{COMMANDS_IN}/{level(user)}/{ERROR}"


@dataclass(frozen=True, slots=True)
class SetTopic:
    """A command topic taken apart: who published it (the ACL guarantees the level) and what it sets."""

    user: str
    node: str
    endpoint: str


def parse_set(root: str, topic: str) -> SetTopic | None:
    """`<root>/cmd/<user>/<node>/<endpoint>/set` → its parts; None for any other topic."""
    prefix = f"{root}/{COMMANDS_IN}/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix):].split("/")
    if len(parts) != 4 or parts[3] != SET or not all(parts[:3]):
        return None
    return SetTopic(parts[0], parts[1], parts[2])


def user_of(root: str, topic: str) -> str | None:
    """The user level of any topic under `<root>/cmd/` (where to answer a message that is not a set topic)."""
    prefix = f"{root}/{COMMANDS_IN}/"
    if not topic.startswith(prefix):
        return None
    user = topic[len(prefix):].split("/", 1)[0]
    return user or None


HISTORY = "history"
ACK = "ack"


def history(root: str) -> str:
    """Where a site forwards its history (store-and-forward; not retained)."""
    return f"{root}/{HISTORY}"


def ack(root: str, user: str) -> str:
    """Where a centre, as MQTT user `user`, acknowledges the history it has committed."""
    return f"{root}/{COMMANDS_IN}/{level(user)}/{ACK}"


def ack_subscription(root: str) -> str:
    return f"{root}/{COMMANDS_IN}/+/{ACK}"


def parse_ack(root: str, topic: str) -> str | None:
    """`<root>/cmd/<user>/ack` → the user (the ACL guarantees it); None for any other topic."""
    prefix = f"{root}/{COMMANDS_IN}/"
    if not topic.startswith(prefix) or not topic.endswith(f"/{ACK}"):
        return None
    user = topic[len(prefix):-len(ACK) - 1]
    return user if user and "/" not in user else None


ALARMS_IN = "alarms"
SHELVE, UNSHELVE, RESET, OUT_OF_SERVICE, IN_SERVICE = "shelve", "unshelve", "reset", "out-of-service", "in-service"
# what an MQTT user (a central panel, for its operators) may do to a standing alarm of this site: the alarm
# actions of the REST API (docs/protocol.md), by the same names as its routes
ALARM_ACTIONS = (ACK, SHELVE, UNSHELVE, RESET, OUT_OF_SERVICE, IN_SERVICE)


def alarm_action(root: str, user: str, alarm_id: int, action: str) -> str:
    """Where MQTT user `user` (a central panel) asks for `action` (ALARM_ACTIONS) on alarm `alarm_id` of this site."""
    return f"{root}/{COMMANDS_IN}/{level(user)}/{ALARMS_IN}/{alarm_id}/{action}"


def alarm_ack(root: str, user: str, alarm_id: int) -> str:
    """Where MQTT user `user` (a central panel) acknowledges alarm `alarm_id` of this site."""
    return alarm_action(root, user, alarm_id, ACK)


def alarm_action_subscriptions(root: str) -> list[str]:
    """One per action (not `…/alarms/+/+`, which a set topic on a node named `alarms` would also match)."""
    return [f"{root}/{COMMANDS_IN}/+/{ALARMS_IN}/+/{action}" for action in ALARM_ACTIONS]


def parse_alarm_action(root: str, topic: str) -> tuple[str, int, str] | None:
    """`<root>/cmd/<user>/alarms/<alarmId>/<action>` → (user, alarmId, action); None for any other topic."""
    prefix = f"{root}/{COMMANDS_IN}/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix):].split("/")
    if (len(parts) != 4 or parts[1] != ALARMS_IN or parts[3] not in ALARM_ACTIONS or not parts[0]
            or not parts[2].isdigit()):
        return None
    return parts[0], int(parts[2]), parts[3]
