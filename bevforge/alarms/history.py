"""Queries over the alarm journal: filtered history, CSV export and the technician's statistics.

The alarm package's read side on the database (the journal and closed occurrences; the SQL is
`bevforge.store.alarm_rows`); callers run these on a reader thread (`Database.read`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bevforge.domain import utcnow
from bevforge.journals import csv_text
from bevforge.messages import iso
from bevforge.store import alarm_rows
from bevforge.store.tables import AlarmJournalRow, SiteJournalRow

if TYPE_CHECKING:
    from bevforge.store.writer import Database

HIDDEN_STATES = ("suppressed", "shelved", "out_of_service")
JOURNAL_FIELDS = ("id", "time", "alarmId", "ruleId", "event", "user", "comment", "value", "state", "priority",
                  "message")
# a site's journal at a central panel: `id` is the entry's id at the site, `node` this panel's node (or empty)
SITE_JOURNAL_FIELDS = ("site", *JOURNAL_FIELDS, "node")


def journal_view(row: AlarmJournalRow | SiteJournalRow) -> dict[str, Any]:
    return {"id": row.id, "time": iso(row.time), "alarmId": row.alarm_id, "ruleId": row.rule_id,
            "event": row.event, "user": row.user, "comment": row.comment, "value": row.value,
            "state": row.state, "priority": row.priority, "message": row.message}


def history(db: Database, *, since: datetime | None = None, until: datetime | None = None,
            rule_id: str | None = None, event: str | None = None, alarm_id: int | None = None,
            limit: int = 1000) -> list[dict[str, Any]]:
    rows = alarm_rows.journal(db, since=since, until=until, rule_id=rule_id, event=event, alarm_id=alarm_id,
                              limit=limit)
    return [journal_view(r) for r in rows]


def site_history(db: Database, site: str, *, since: datetime | None = None, until: datetime | None = None,
                 rule_id: str | None = None, event: str | None = None, alarm_id: int | None = None,
                 limit: int = 1000) -> list[dict[str, Any]]:
    """A site's alarm journal as a central panel has it (forwarded: docs/mqtt.md "Store-and-forward"), newest
    first, in the local journal's shape plus `site` and `node`."""
    rows = alarm_rows.site_journal(db, site, since=since, until=until, rule_id=rule_id, event=event, alarm_id=alarm_id,
                        limit=limit)
    return [{"site": r.site} | journal_view(r) | {"id": r.site_id, "node": r.node} for r in rows]


def to_csv(entries: list[dict[str, Any]], site: bool = False) -> str:
    return csv_text(SITE_JOURNAL_FIELDS if site else JOURNAL_FIELDS, entries)


def statistics(db: Database, chattering: list[str], now: datetime | None = None,
               visible: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Alarm load for a technician: per 10 minutes (last 24 h), top 10, chattering, stale (> 24 h).

    `visible` (from `permissions.alarm_key_filter`) keeps only the alarm keys the asker may see.
    """
    now = now or utcnow()
    day_ago = now - timedelta(hours=24)
    # only annunciated raises are alarm load: a shelved, suppressed or out-of-service one reached nobody
    raised, stale = alarm_rows.load_since(db, day_ago, HIDDEN_STATES)
    if visible is not None:
        raised = [r for r in raised if visible(r[1])]
        stale = [a for a in stale if visible(a.rule_id)]
        chattering = [key for key in chattering if visible(key)]
    buckets: Counter[str] = Counter()
    for ts, _ in raised:
        start = ts.replace(minute=ts.minute - ts.minute % 10, second=0, microsecond=0)
        buckets[iso(start) or ""] += 1
    per_rule = Counter(rule for _, rule in raised)
    worst = max(buckets.values(), default=0)
    return {
        "since": iso(day_ago),
        "raisedLast24h": len(raised),
        "per10Minutes": [{"start": k, "count": v} for k, v in sorted(buckets.items())],
        "peakPer10Minutes": worst,
        "floodThreshold": 10,
        "averagePer10Minutes": round(len(raised) / 144, 2),
        "top10": [{"ruleId": r, "count": c} for r, c in per_rule.most_common(10)],
        "chattering": chattering,
        "staleAlarms": [{"alarmId": a.id, "ruleId": a.rule_id, "raisedAt": iso(a.raised_at), "message": a.message}
                        for a in stale],
    }
