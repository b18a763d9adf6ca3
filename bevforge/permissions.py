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

from collections.abc import Iterable

from bevforge.domain import Actor
from bevforge.errors import Forbidden, NotFound

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
