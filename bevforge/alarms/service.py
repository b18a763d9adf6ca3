"""The alarm service: the one object the runtime, the API and the screens hold for alarms.

- A *point* is one definition from config.yaml (or a system condition: a device's comms, an
  interlock trip, a blocked command). It carries the runtime state (`alarm_states.PointState`).
- An *occurrence* (`Alarm`, the seed's `alarmId`) opens when the point becomes abnormal and closes
  when it is back to normal, acknowledged and (if latching) reset.

Its parts live in their own modules, one job each: `alarm_points` (the types), `alarm_engine`
(evaluation and the state of points), `alarm_recorder` (journal, rows, bus), `alarm_actions`
(operator actions), `alarm_queries` (lists and summary). This module puts them together and keeps
the names callers import from `bevforge.alarms`.
"""

from __future__ import annotations

from bevforge.alarm_actions import AlarmActions
from bevforge.alarm_engine import CHATTER_CYCLES, CHATTER_WINDOW_S, FLOOD_COUNT, FLOOD_WINDOW_S
from bevforge.alarm_points import STATES, Alarm, AlarmNotFound, Point
from bevforge.alarm_queries import AlarmQueries

__all__ = [
    "CHATTER_CYCLES",
    "CHATTER_WINDOW_S",
    "FLOOD_COUNT",
    "FLOOD_WINDOW_S",
    "STATES",
    "Alarm",
    "AlarmNotFound",
    "AlarmService",
    "Point",
]


class AlarmService(AlarmActions, AlarmQueries):
    """Raises, clears, acknowledges, shelves, resets; publishes and journals every transition."""
