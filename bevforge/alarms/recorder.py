"""How an alarm transition leaves the engine: journal rows, the occurrence row, the bus event.

Split from the engine so the engine reads as the state logic alone: the engine is handed a recorder
when it is built and calls its public methods; it knows nothing of rows or the bus. Every write goes
through the DB writer thread (`Database.write_later`), in order, so the event loop never waits on
SQLite; the newest occurrences are kept in memory (`recent`) so a query sees them before the writer has.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bevforge import messages, permissions
from bevforge.alarms.points import Alarm, Point, settings_row
from bevforge.bus import ALARM, EventBus
from bevforge.domain import utcnow
from bevforge.store import alarm_rows
from bevforge.store.tables import AlarmJournalRow, AlarmRow

if TYPE_CHECKING:
    from bevforge.config import PlantConfig
    from bevforge.store.writer import Database

RECENT_KEPT = 2000


class AlarmRecorder:
    """Journals, stores and publishes alarm transitions; tells in-process listeners (the screens)."""

    def __init__(self, bus: EventBus, db: Database, config: PlantConfig | None = None) -> None:
        self.bus = bus
        self.db = db
        self.config = config  # the plant, for what each alarm belongs to (`owners`)
        self.recent: OrderedDict[int, Alarm] = OrderedDict()  # newest transitions, ahead of the DB writer
        self.listeners: list[Callable[[Alarm, str], None]] = []

    def journal(self, alarm: Alarm | None, point: Point, words: list[str], user: str, comment: str | None,
                 value: Any, message: str, now: datetime) -> None:
        rows = [AlarmJournalRow(time=now, alarm_id=alarm.id if alarm else None, rule_id=point.key, event=word,
                                user=user, comment=comment, value=value, state=point.state.display.value,
                                priority=point.priority.value, message=message) for word in words]
        self.db.write_later(self._append_journal, rows)

    def _append_journal(self, rows: list[AlarmJournalRow]) -> None:
        alarm_rows.append_journal(self.db, rows)  # a retry after a refused commit inserts new rows

    def publish(self, alarm: Alarm, event: str) -> None:
        self.recent[alarm.id] = alarm
        self.recent.move_to_end(alarm.id)
        while len(self.recent) > RECENT_KEPT:
            self.recent.popitem(last=False)
        self.db.write_later(self._persist, alarm.row())
        self.bus.publish(ALARM, messages.alarm(alarm, event), node=self.owners(alarm))
        for listener in self.listeners:
            listener(alarm, event)

    def owners(self, alarm: Alarm) -> permissions.Owners:
        """The nodes the live feed files `alarm` under: a device's alarm belongs to the nodes of the
        device's endpoints (the rule is `permissions.alarm_owners`)."""
        if self.config is None:
            return alarm.node
        return permissions.alarm_owners(self.config, alarm)

    def _persist(self, row: AlarmRow) -> None:
        alarm_rows.save(self.db, row)

    def save_point(self, point: Point, user: str) -> None:
        row = settings_row(point, user, utcnow())

        def save() -> None:
            alarm_rows.save(self.db, row)

        self.db.write_later(save)
