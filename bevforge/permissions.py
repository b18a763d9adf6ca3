"""The one authority on who may see and do what: roles and node limits, for every transport.

REST, `/ws`, SSE, CSV exports and the screens never compare roles or test `actor.nodes`
themselves: they ask here, and the core's services raise `Forbidden` / `NotFound` from here.
Two transports can then never give two answers to the same question.

Node rule (docs/security.md): a thing belongs to a set of nodes. An endpoint, a tile, a command
and an alarm point belong to their node. A device-level thing (a device's comms alarm, a driver's
status) belongs to the nodes of that device's endpoints, so the HLT operator sees that the HLT
controller is offline. A thing that belongs to no node at all (a system alarm such as the store
being unwritable) is shown only to actors without a node limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bevforge.domain import Actor
from bevforge.errors import INVALID_VALUE, Forbidden, Invalid, NotFound

ROLES = ("viewer", "operator", "technician", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}

VIEWER, OPERATOR, TECHNICIAN, ADMIN = ROLES


def is_role(role: str) -> bool:
    return role in ROLE_RANK


def has_role(actor: Actor | None, role: str) -> bool:
    """Whether `actor` holds at least `role` (roles are ranked: admin ⊃ technician ⊃ operator ⊃ viewer)."""
    return actor is not None and ROLE_RANK.get(actor.role, -1) >= ROLE_RANK[role]


def require_role(actor: Actor, role: str) -> Actor:
    if not has_role(actor, role):
        raise Forbidden(f"this needs the {role} role; you are {actor.role}")
    return actor


def sees_all_nodes(actor: Actor) -> bool:
    return actor.nodes is None


def may_see_nodes(actor: Actor, nodes: Iterable[str | None] | str | None) -> bool:
    """Whether `actor` may see a thing that belongs to `nodes` (one node, several, or none).

    A node-limited actor sees a thing when one of its nodes is theirs; a thing of no node (None or an
    empty set) only when they have no node limit.
    """
    if actor.nodes is None:
        return True
    if nodes is None or isinstance(nodes, str):
        return nodes is not None and nodes in actor.nodes
    return any(node is not None and node in actor.nodes for node in nodes)


def require_visible(actor: Actor, nodes: Iterable[str | None] | str | None, not_found: NotFound) -> None:
    """Raise `not_found` when `actor` may not see it: a hidden thing and a missing one look the same."""
    if not may_see_nodes(actor, nodes):
        raise not_found


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
