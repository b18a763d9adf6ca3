"""Disk discipline: raw telemetry → 1-minute rollups → deleted, and a watch on the disk's free space.

The history writer appends ~170 000 rows a day per fast probe; on a panel PC with a small SSD that
fills the disk in months, and a full disk stops every write, commands included. So:

- raw rows older than `raw_days` are folded into `telemetry_rollups` (min/avg/max/samples of the good
  samples of each minute) and deleted, a bounded batch per transaction on the DB writer thread, so a
  history flush or a command write never waits long behind pruning;
- rollups older than `rollup_days` are deleted;
- free space under `min_free_mb` raises a high-priority alarm, cleared when space is back.

SQLite reuses the pages freed by deletes, so once retention reaches its steady state the file stops
growing (it does not shrink without a VACUUM, which would block writes for minutes).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bevforge.domain import Severity
from bevforge.store import retention_rows
from bevforge.store.retention_rows import minute_floor
from bevforge.tasks import stop_task

if TYPE_CHECKING:
    from bevforge.config import RetentionSettings
    from bevforge.store.writer import Database

log = logging.getLogger(__name__)

DAY_S = 86400.0
# The first pruning pass waits out start-up (at most this long, or `check_interval_s` if shorter): its ~40
# write transactions (one per endpoint, most with nothing due) and their first SQL compilations would
# otherwise share the writer thread and the interpreter with the imports and the first answers of a restart
# (bench/programs.py). The disk check, which raises the disk-space alarm, runs at once.
FIRST_PASS_AFTER_S = 10.0
DISK_ALARM_KEY = "system:disk_space"
DISK_ALARM_KIND = "disk_space"


class AlarmRaiser(Protocol):
    """What retention needs from the alarm service."""

    def raise_alarm(self, key: str, kind: str, severity: Severity, message: str) -> Any: ...

    def clear(self, key: str) -> None: ...


@dataclass
class RetentionStats:
    raw_rows_pruned: int = 0
    rollups_written: int = 0
    rollups_deleted: int = 0
    batches: int = 0
    last_run_at: float | None = None
    last_error: str | None = None
    free_mb: float | None = None
    disk_low: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"rawRowsPruned": self.raw_rows_pruned, "rollupsWritten": self.rollups_written,
                "rollupsDeleted": self.rollups_deleted, "batches": self.batches,
                "lastRunAt": self.last_run_at, "lastError": self.last_error,
                "freeMb": None if self.free_mb is None else round(self.free_mb, 1), "diskLow": self.disk_low}


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for memory or another database)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    return None if not path or path == ":memory:" else Path(path)


class RetentionService:
    """Runs `run_once()` every `check_interval_s` from a task the runtime starts (the disk check at once, the
    first pass once start-up is over: FIRST_PASS_AFTER_S)."""

    def __init__(self, settings: RetentionSettings, db: Database, alarms: AlarmRaiser,
                 clock: Callable[[], float] = time.time,
                 disk_usage: Callable[[Path], Any] = shutil.disk_usage) -> None:
        self.settings = settings
        self.db = db
        self.alarms = alarms
        self.clock = clock
        self.disk_usage = disk_usage
        self.stats = RetentionStats()
        self._task: asyncio.Task[None] | None = None
        self.runs = 0
        # a site that forwards its history (mqtt.forward) counts on row ids only growing: the newest row is
        # then never pruned, so SQLite never hands its id out again (bevforge/store/forward_rows.py)
        self.keep_newest = False

    # -- the periodic task --------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _loop(self) -> None:
        try:
            self.check_disk()
        except Exception as exc:  # the pass below tries again and says why
            log.warning("disk check at start failed: %s", exc)
        await asyncio.sleep(min(FIRST_PASS_AFTER_S, self.settings.check_interval_s))
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a locked or full disk must not end the task: say so, retry later
                self.stats.last_error = str(exc)
                log.exception("retention run failed")
            await asyncio.sleep(self.settings.check_interval_s)

    async def run_once(self) -> None:
        """Check the disk, then prune raw rows and old rollups batch by batch until none are due."""
        self.check_disk()
        now = self.clock()
        raw_cutoff = minute_floor(now - self.settings.raw_days * DAY_S)
        if self.keep_newest:
            newest = await self.db.read(retention_rows.newest_row_time, self.db)
            if newest is not None:
                raw_cutoff = min(raw_cutoff, newest)
        for endpoint_id in await self.db.read(self._endpoint_ids):
            while True:
                moved, written = await self.db.write(self.roll_up_batch, endpoint_id, raw_cutoff)
                self.stats.raw_rows_pruned += moved
                self.stats.rollups_written += written
                if not moved:  # batches end on minute boundaries, so only an empty one means "done"
                    break
                self.stats.batches += 1
                await asyncio.sleep(0)  # let queued history flushes and command writes go first
        rollup_cutoff = now - self.settings.rollup_days * DAY_S
        self.stats.rollups_deleted += await self.db.write(self.delete_old_rollups, rollup_cutoff)
        self.stats.last_run_at = now
        self.stats.last_error = None
        self.runs += 1

    def _endpoint_ids(self) -> list[int]:
        """Every endpoint ever configured (the endpoints table keeps removed ones, so does history)."""
        return retention_rows.endpoint_ids(self.db)

    # -- writer-thread work (one transaction each; the SQL is store.retention_rows) -------------

    def roll_up_batch(self, endpoint_id: int, cutoff: float) -> tuple[int, int]:
        """Fold up to ~`batch_rows` raw rows of one endpoint older than `cutoff` into rollups, delete them.

        Every query seeks the (endpoint_id, server_ts) index, so a batch costs the same on a
        year-old database as on a new one. The batch ends on a minute boundary so each minute is
        rolled up from all its rows at once; an existing rollup of the same minute is merged.
        Returns (raw rows deleted, rollup rows written).
        """
        return retention_rows.roll_up_batch(self.db, endpoint_id, cutoff, self.settings.batch_rows)

    def delete_old_rollups(self, cutoff: float) -> int:
        return retention_rows.delete_old_rollups(self.db, cutoff)

    # -- free space ---------------------------------------------------------------------------

    def check_disk(self) -> float | None:
        """Raise or clear the disk-space alarm; returns the free MB (None: not a local file database)."""
        path = sqlite_path(self.db.url)
        if path is None:
            return None
        probe = path.parent if path.parent.exists() else Path(".")
        free_mb = self.disk_usage(probe).free / 1_048_576
        self.stats.free_mb = free_mb
        low = free_mb < self.settings.min_free_mb
        if low:
            self.alarms.raise_alarm(
                DISK_ALARM_KEY, DISK_ALARM_KIND, Severity.HIGH,
                f"Disk space low: {free_mb:.0f} MB free for the database at {probe} "
                f"(alarm below {self.settings.min_free_mb:g} MB) — history stops when it is full")
        elif self.stats.disk_low:
            self.alarms.clear(DISK_ALARM_KEY)
        self.stats.disk_low = low
        return free_mb
