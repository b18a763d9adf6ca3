"""The one authority on who may see and do what: roles and node limits, for every transport.

REST, `/ws`, SSE, CSV exports and the screens never compare roles or test `actor.nodes`
themselves: they ask here, and the core's services raise `Forbidden` / `NotFound` from here.
Two transports can then never give two answers to the same question.

Node rule (docs/security.md): a thing belongs to a set of nodes. An endpoint, a tile, a command
and an alarm on an endpoint belong to their node. A device-level thing (a device's comms alarm,
`comms:<device>`, stored with node null) belongs to the nodes of that device's endpoints, so the
HLT operator sees that the HLT controller is offline. A thing that belongs to no node at all (a
system alarm such as low disk space; sign-ins and users in the audit journal) is shown only to
actors without a node limit.

The live feed files each bus event under what it belongs to (`Event.node`: one node, a frozenset
for a device alarm, or none) and filters with `node_filter`, made once per subscriber, because it
runs at publish time for every subscriber.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from bevforge.domain import Actor
from bevforge.errors import (
    INVALID_VALUE,
    UNKNOWN_ALARM,
    UNKNOWN_ALARM_DEFINITION,
    UNKNOWN_COMMAND,
    UNKNOWN_ENDPOINT,
    UNKNOWN_SITE,
    Forbidden,
    Invalid,
    NotFound,
)

if TYPE_CHECKING:
    from bevforge.config import Endpoint, Interlock, PlantConfig, Tile

ROLES = ("viewer", "operator", "technician", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}

VIEWER, OPERATOR, TECHNICIAN, ADMIN = ROLES

# What a thing belongs to: one node (the common case, no allocation), several (a device's alarm),
# or none (None or an empty set: a system thing).
Owners = str | frozenset[str] | None
NO_NODE: frozenset[str] = frozenset()

T = TypeVar("T")


class AlarmLike(Protocol):
    """An alarm occurrence or point as this module needs it (`Alarm` and the journal's rows alike)."""

    rule_id: str
    node: str | None
    endpoint_id: int | None


class CommandLike(Protocol):
    endpoint_id: int


# -- roles -------------------------------------------------------------------------------------------


def is_role(role: str) -> bool:
    return role in ROLE_RANK


def has_role(actor: Actor | None, role: str) -> bool:
    """Whether `actor` holds at least `role` (roles are ranked: admin ⊃ technician ⊃ operator ⊃ viewer)."""
    return actor is not None and ROLE_RANK.get(actor.role, -1) >= ROLE_RANK[role]


def require_role(actor: Actor, role: str) -> Actor:
    if not has_role(actor, role):
        raise Forbidden(f"this needs the {role} role; you are {actor.role}")
    return actor


# -- /metrics: a scraper by its address, or a credential that sees the whole plant ----------------------


def scrape_address_allowed(station: str, allow_from: Iterable[IPv4Network | IPv6Network]) -> bool:
    """Whether a request from `station` (its peer address) may read /metrics without credentials.

    The address is the one uvicorn hands over (behind the shipped nginx: the forwarded client
    address, docs/deployment.md), so a proxy on this machine does not make every client local."""
    try:
        address = ip_address(station)
    except ValueError:  # "unknown", a Unix socket's peer: no address to match
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:a.b.c.d from a dual-stack socket is a.b.c.d
    if mapped is not None:
        address = mapped
    return any(address.version == network.version and address in network for network in allow_from)


def require_metrics_reader(actor: Actor, role: str) -> Actor:
    """A credential may read /metrics with at least `role` and no node limit (the figures span every
    device and node, so a node-limited user would see other nodes' devices there)."""
    require_role(actor, role)
    if not sees_all_nodes(actor):
        raise Forbidden("the metrics cover every node; this credential is limited to some")
    return actor


# -- nodes: the one node rule ----------------------------------------------------------------------


def sees_all_nodes(actor: Actor | None) -> bool:
    return actor is not None and actor.nodes is None


def node_limit(actor: Actor) -> list[str] | None:
    """The actor's node limit for showing it (`whoami`, the header): sorted, or None for every node."""
    return sorted(actor.nodes) if actor.nodes is not None else None


def may_see_nodes(actor: Actor | None, nodes: Iterable[str | None] | str | None) -> bool:
    """Whether `actor` may see a thing that belongs to `nodes` (one node, several, or none).

    A node-limited actor sees a thing when one of its nodes is theirs; a thing of no node (None or an
    empty set) only when they have no node limit. Nobody (`None`: not signed in) sees nothing.
    """
    if actor is None:
        return False
    if actor.nodes is None:
        return True
    if nodes is None or isinstance(nodes, str):
        return nodes is not None and nodes in actor.nodes
    return any(node is not None and node in actor.nodes for node in nodes)


def _everything(_nodes: Owners) -> bool:
    return True


def _nothing(_nodes: Owners) -> bool:
    return False


def node_filter(actor: Actor | None) -> Callable[[Owners], bool]:
    """`may_see_nodes` for one actor, made once: the live feed runs it for every event it publishes.

    The same rule as `may_see_nodes`, specialised so that an unlimited actor costs one call and a
    node-limited one a set look-up.
    """
    if actor is None:
        return _nothing
    mine = actor.nodes
    if mine is None:
        return _everything

    def sees(nodes: Owners) -> bool:
        if nodes is None:
            return False
        if isinstance(nodes, str):
            return nodes in mine
        return not mine.isdisjoint(nodes)

    return sees


def require_visible(actor: Actor, nodes: Iterable[str | None] | str | None, not_found: NotFound) -> None:
    """Raise `not_found` when `actor` may not see it: a hidden thing and a missing one look the same."""
    if not may_see_nodes(actor, nodes):
        raise not_found


# -- endpoints, tiles, nodes -------------------------------------------------------------------------


def may_see_node(actor: Actor | None, node_id: str) -> bool:
    return may_see_nodes(actor, node_id)


def may_see_endpoint(actor: Actor | None, endpoint: Endpoint) -> bool:
    return may_see_nodes(actor, endpoint.node)


def may_see_tile(actor: Actor | None, tile: Tile) -> bool:
    return may_see_nodes(actor, tile.node)


def visible_endpoints(actor: Actor | None, endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    return [e for e in endpoints if may_see_nodes(actor, e.node)]


def visible_endpoint_ids(actor: Actor | None, config: PlantConfig) -> list[int] | None:
    """The ids of the endpoints `actor` may see, or None when they see every one (no filter needed)."""
    if sees_all_nodes(actor):
        return None
    return [e.id for e in config.endpoints if may_see_nodes(actor, e.node)]


def require_endpoint(actor: Actor, endpoint: Endpoint | None, endpoint_id: Any, field: str | None) -> Endpoint:
    """The endpoint, if `actor` may see it; otherwise NotFound, exactly as for an id that does not exist."""
    if endpoint is None or not may_see_nodes(actor, endpoint.node):
        raise NotFound(f"no endpoint with id {endpoint_id}", code=UNKNOWN_ENDPOINT, field=field)
    return endpoint


def may_operate(actor: Actor | None, endpoint: Endpoint) -> bool:
    """Command an output: an operator (or above) whose nodes include the endpoint's."""
    return has_role(actor, OPERATOR) and may_see_nodes(actor, endpoint.node)


def require_ingest(actor: Actor, endpoint: Endpoint | None, endpoint_id: Any, field: str) -> Endpoint:
    """The endpoint a reading names, if `actor` may feed it (its node is theirs).

    Another node's endpoint is answered exactly like an id that does not exist (422 `unknown_endpoint`
    naming the reading's field), so a sender learns nothing of the other nodes. The role (technician)
    is the route's to check; the endpoint's owner (`source: external`) is `bevforge/ingest.py`'s.
    """
    if endpoint is None or not may_see_nodes(actor, endpoint.node):
        raise Invalid(f"no endpoint with id {endpoint_id}", code=UNKNOWN_ENDPOINT, field=field)
    return endpoint


# -- alarms ------------------------------------------------------------------------------------------

_ENDPOINT_KEYS = ("stale:", "trip:", "tripfail:")  # system alarms about one endpoint: `<kind>:<endpointId>`
_DEVICE_KEY = "comms:"  # a device's comms loss: `comms:<deviceId>`


def device_nodes(config: PlantConfig, device_id: str) -> frozenset[str]:
    """The nodes a device serves: those of its endpoints (config: every endpoint names its device and node)."""
    return config.nodes_of_device(device_id)


def alarm_nodes(config: PlantConfig, rule_id: str, node: str | None = None,
                endpoint_id: int | None = None) -> Owners:
    """The nodes an alarm (point, occurrence or journal entry) belongs to.

    An alarm on an endpoint belongs to that endpoint's node; a device-level alarm (`comms:<device>`,
    stored with node null) to the nodes of that device's endpoints; anything else (the store, the
    disk) is a system alarm and belongs to no node.
    """
    if node is not None:
        return node
    by_id = config.endpoints_by_id
    if endpoint_id is not None and endpoint_id in by_id:
        return by_id[endpoint_id].node
    if rule_id.startswith(_DEVICE_KEY):
        return device_nodes(config, rule_id[len(_DEVICE_KEY):])
    for prefix in _ENDPOINT_KEYS:
        if rule_id.startswith(prefix):
            raw = rule_id[len(prefix):]
            if raw.isdigit() and int(raw) in by_id:
                return by_id[int(raw)].node
            return NO_NODE
    definition = config.alarm_definition(rule_id)
    if definition is not None:
        if definition.endpoint is not None and definition.endpoint in by_id:
            return by_id[definition.endpoint].node
        if definition.device is not None:
            return device_nodes(config, definition.device)
    return NO_NODE


def alarm_owners(config: PlantConfig, alarm: AlarmLike) -> Owners:
    return alarm_nodes(config, alarm.rule_id, alarm.node, alarm.endpoint_id)


def may_see_alarm(actor: Actor | None, config: PlantConfig, alarm: AlarmLike) -> bool:
    return sees_all_nodes(actor) or may_see_nodes(actor, alarm_owners(config, alarm))


def visible_alarms(actor: Actor | None, config: PlantConfig, alarms: Iterable[T]) -> list[T]:
    if sees_all_nodes(actor):
        return list(alarms)
    return [a for a in alarms if may_see_nodes(actor, alarm_owners(config, a))]  # type: ignore[arg-type]


def require_alarm(actor: Actor, config: PlantConfig, alarm: T | None, alarm_id: int) -> T:
    if alarm is None or not may_see_alarm(actor, config, alarm):  # type: ignore[arg-type]
        raise NotFound(f"no alarm with id {alarm_id}", code=UNKNOWN_ALARM, field="alarm_id")
    return alarm


def alarm_key_filter(actor: Actor | None, config: PlantConfig,
                     points: Mapping[str, Any] | None = None) -> Callable[[str], bool] | None:
    """Which alarm keys (`ruleId`s of the journal and the statistics) `actor` may see; None: all of them.

    `points` are the alarm service's live points: a point knows its endpoint even when its key does
    not say it (a blocked command's alarm).
    """
    if sees_all_nodes(actor):
        return None
    points = points or {}

    def sees(rule_id: str) -> bool:
        point = points.get(rule_id)
        if point is not None:
            return may_see_nodes(actor, alarm_nodes(config, rule_id, point.node, point.endpoint_id))
        return may_see_nodes(actor, alarm_nodes(config, rule_id))

    return sees


def require_alarm_point(actor: Actor, config: PlantConfig, point: T | None, rule_id: str,
                        remote_kinds: Collection[str] = ()) -> T:
    """A configured alarm definition `actor` may see; NotFound otherwise (and for system points). A point of one of
    `remote_kinds` (another BevForge's: a site's alarm at a central panel) counts as a definition: it is its
    owner's, where an action on it is sent."""
    if (point is None or (getattr(point, "rule", None) is None and getattr(point, "kind", None) not in remote_kinds)
            or not may_see_nodes(actor, alarm_nodes(config, rule_id, point.node, point.endpoint_id))):  # type: ignore[attr-defined]
        raise NotFound(f"no alarm definition {rule_id!r}", code=UNKNOWN_ALARM_DEFINITION, field="rule_id")
    return point


# -- commands ----------------------------------------------------------------------------------------


def command_owner(config: PlantConfig, command: CommandLike) -> Owners:
    endpoint = config.endpoints_by_id.get(command.endpoint_id)
    return endpoint.node if endpoint is not None else NO_NODE


def may_see_command(actor: Actor | None, config: PlantConfig, command: CommandLike) -> bool:
    return may_see_nodes(actor, command_owner(config, command))


def require_command(actor: Actor, config: PlantConfig, command: T | None, command_id: str) -> T:
    if command is None or not may_see_command(actor, config, command):  # type: ignore[arg-type]
        raise NotFound(f"no command with id {command_id}", code=UNKNOWN_COMMAND, field="command_id")
    return command


# -- interlocks --------------------------------------------------------------------------------------


def may_see_interlock(actor: Actor | None, config: PlantConfig, rule: Interlock) -> bool:
    """An interlock rule is shown to whoever may see the output it guards."""
    target = config.endpoints_by_id.get(rule.target)
    return target is not None and may_see_nodes(actor, target.node)


def value_filter(actor: Actor | None, config: PlantConfig) -> Callable[[int], bool]:
    """Whose live values `actor` may read, by endpoint id: an interlock's condition on another node's
    endpoint is shown by name but without its value."""
    if sees_all_nodes(actor):
        return lambda _endpoint_id: True
    by_id = config.endpoints_by_id

    def shown(endpoint_id: int) -> bool:
        endpoint = by_id.get(endpoint_id)
        return endpoint is not None and may_see_nodes(actor, endpoint.node)

    return shown


# -- the audit journal -------------------------------------------------------------------------------


def audit_entry_nodes(config: PlantConfig, entry: Mapping[str, Any], endpoint_nodes: Mapping[str, str],
                      points: Mapping[str, Any] | None = None) -> Owners:
    """The nodes an audit entry is about: a command's endpoint, an alarm's nodes; otherwise none.

    Sign-ins, users, tokens and station actions (silencing a horn) belong to no node: they are
    shown only to actors without a node limit.
    """
    action = entry.get("action") or ""
    target = entry.get("target")
    if not isinstance(target, str):
        return NO_NODE
    if action.startswith("command."):
        return endpoint_nodes.get(target, NO_NODE)
    if action.startswith("alarm.") and action != "alarm.silence":
        point = (points or {}).get(target)
        if point is not None:
            return alarm_nodes(config, target, point.node, point.endpoint_id)
        return alarm_nodes(config, target)
    return NO_NODE


def visible_audit(actor: Actor | None, config: PlantConfig, entries: list[dict[str, Any]],
                  points: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The audit entries `actor` may read (JSON and CSV alike)."""
    if sees_all_nodes(actor):
        return entries
    endpoint_nodes = {e.name: e.node for e in config.endpoints}
    return [e for e in entries if may_see_nodes(actor, audit_entry_nodes(config, e, endpoint_nodes, points))]


def visible_site_journal(actor: Actor | None, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A forwarding site's alarm-journal entries `actor` may read: those on this panel's nodes they see (an
    entry of no node here — the site's own, or a node this panel does not show — only without a node limit)."""
    if sees_all_nodes(actor):
        return entries
    return [e for e in entries if may_see_nodes(actor, e.get("node"))]


def require_site_audit(actor: Actor) -> None:
    """A site's audit journal is the whole site's, not node by node: a node-limited technician does not read it."""
    require_role(actor, "technician")
    if not sees_all_nodes(actor):
        raise Forbidden("a site's audit journal covers the whole site: it needs a technician without a node limit",
                        field="site")


def require_forwarded_site(config: PlantConfig, site: str) -> None:
    """`site` is a site this central panel takes forwarded history and events from (a `site` device with
    `history: forwarded`); NotFound naming the field otherwise."""
    if site not in config.forwarded_sites():
        raise NotFound(f"no site {site!r} forwards to this panel (a site device with history: forwarded)",
                       code=UNKNOWN_SITE, field="site")


# -- shelving ----------------------------------------------------------------------------------------


# the role each alarm action needs, whichever way it comes (the REST routes, the screens, MQTT): by the names of
# the REST routes; a shelf without a duration (one-shot) needs a technician, a timed one an operator
ALARM_ACTION_ROLES = {"ack": OPERATOR, "reset": OPERATOR, "shelve": OPERATOR, "unshelve": OPERATOR,
                      "out-of-service": TECHNICIAN, "in-service": TECHNICIAN}


def alarm_action_role(action: str, timed: bool = False) -> str:
    """The role `action` (ALARM_ACTION_ROLES) needs; `timed`: a shelf with a duration."""
    if action == "shelve" and not timed:
        return TECHNICIAN
    return ALARM_ACTION_ROLES[action]



def shelve_durations(actor: Actor, policy: Mapping[str, Sequence[float]]) -> tuple[float, ...]:
    """The timed shelves (seconds) `actor` may choose: the configured list of their role, or of the
    highest listed role below it (`auth.shelve_durations_s`); none for a role below every listed one."""
    rank = ROLE_RANK.get(actor.role, -1)
    for role in reversed(ROLES[: rank + 1]):
        if role in policy:
            return tuple(float(d) for d in policy[role])
    return ()


def require_shelve_duration(actor: Actor, duration_s: float, policy: Mapping[str, Sequence[float]],
                            field: str = "durationS") -> None:
    """Refuse (422 naming `field`) a timed shelf whose duration is not one configured for `actor`'s role."""
    allowed = shelve_durations(actor, policy)
    if any(abs(duration_s - d) < 1e-6 for d in allowed):
        return
    if not allowed:
        raise Forbidden(f"the {actor.role} role may not shelve alarms")
    shown = ", ".join(f"{d:g}" for d in allowed)
    raise Invalid(f"{field} must be one of {shown} s for the {actor.role} role (got {duration_s:g})",
                  code=INVALID_VALUE, field=field, allowed=list(allowed))
