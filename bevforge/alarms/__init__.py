"""Alarms (ISA-18.2): definitions and system conditions → points → occurrences, as one service.

The parts, one job each: `points` (what a point and an occurrence are), `states` (the pure state
machine), `rules` (deadband and delays), `recorder` (journal, rows, bus), `engine` (evaluation and
the state of points), `actions` (operator actions), `queries` (lists and summary), `history` (the
journal's history and statistics) and `service` (composes them). Callers import from here.
"""

from __future__ import annotations

from bevforge.alarms.actions import MAX_SHELF_S
from bevforge.alarms.engine import CHATTER_CYCLES, CHATTER_WINDOW_S, FLOOD_COUNT, FLOOD_WINDOW_S
from bevforge.alarms.points import STATES, Alarm, AlarmNotFound, Point
from bevforge.alarms.service import AlarmService
from bevforge.alarms.states import TransitionRefused

__all__ = [
    "CHATTER_CYCLES",
    "CHATTER_WINDOW_S",
    "FLOOD_COUNT",
    "FLOOD_WINDOW_S",
    "MAX_SHELF_S",
    "STATES",
    "Alarm",
    "AlarmNotFound",
    "AlarmService",
    "Point",
    "TransitionRefused",
]
