"""Disk discipline on a real SQLite file: old raw rows become 1-minute rollups, long queries read them,
old rollups go, the file stops growing, and low free space raises (then clears) a high alarm."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text

from bevforge.config import ConfigError, parse_config
from bevforge.retention import DAY_S, DISK_ALARM_KEY, minute_floor
from bevforge.store import TelemetryReading, TelemetryRollup
from bevforge.store import queries as history
from tests.support.server import LiveServer, config_document

HLT_TEMP = 10  # the default brewhouse's HLT and FV1 temperature probes
FV1_TEMP = 50

RAW = TelemetryReading.__table__
ROLL = TelemetryRollup.__table__


def insert_rows(server: LiveServer, rows: list[dict]) -> None:
    with server.runtime.db.engine.begin() as conn:
        conn.execute(insert(RAW), rows)


def row(endpoint_id: int, ts: float, value: float | None, quality: str = "good") -> dict:
    return {"endpoint_id": endpoint_id, "value": value, "quality": quality, "source_ts": ts, "server_ts": ts}


def count(server: LiveServer, table, *where) -> int:
    with server.runtime.db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()


async def test_old_raw_rows_fold_into_minute_rollups_and_recent_rows_stay(server: LiveServer) -> None:
    now = time.time()
    old_minute = minute_floor(now - 40 * DAY_S)
    # three samples in one old minute, one bad sample (not aggregated), one good in the next minute
    insert_rows(server, [row(FV1_TEMP, old_minute + 1, 10.0), row(FV1_TEMP, old_minute + 20, 14.0),
                         row(FV1_TEMP, old_minute + 40, 12.0), row(FV1_TEMP, old_minute + 50, 999.0, "bad"),
                         row(FV1_TEMP, old_minute + 61, 20.0),
                         row(FV1_TEMP, now - 5 * DAY_S, 30.0)])
    await server.runtime.retention.run_once()

    old_range = (RAW.c.endpoint_id == FV1_TEMP, RAW.c.server_ts < now - 30 * DAY_S)
    assert count(server, RAW, *old_range) == 0
    assert count(server, RAW, RAW.c.endpoint_id == FV1_TEMP, RAW.c.server_ts == now - 5 * DAY_S) == 1
    with server.runtime.db.engine.connect() as conn:
        rollups = conn.execute(select(ROLL).where(ROLL.c.endpoint_id == FV1_TEMP).order_by(ROLL.c.minute_ts)).all()
    assert [(r.minute_ts, r.minimum, r.average, r.maximum, r.samples) for r in rollups] == [
        (old_minute, 10.0, 12.0, 14.0, 3), (old_minute + 60, 20.0, 20.0, 20.0, 1)]
    assert server.runtime.retention.stats.raw_rows_pruned >= 5

    # a trend over 45 days still shows the pruned minutes (from rollups) and the raw sample
    until = datetime.fromtimestamp(now, UTC)
    engine = server.runtime.db.engine
    buckets = history.trend(engine, FV1_TEMP, until - timedelta(days=45), until, buckets=45)
    old = [b for b in buckets if b.samples and b.start.timestamp() < now - 30 * DAY_S]
    assert sum(b.samples for b in old) == 4 and min(b.minimum for b in old) == 10.0
    assert max(b.maximum for b in old) == 20.0
    assert any(b.samples and b.maximum == 30.0 for b in buckets)
    start = datetime.fromtimestamp(old_minute, UTC)
    (both,) = history.trend(engine, FV1_TEMP, start, start + timedelta(seconds=119), buckets=1)
    assert (both.minimum, both.maximum, both.samples) == (10.0, 20.0, 4)
    assert both.average == pytest.approx((10 + 14 + 12 + 20) / 4)

    # the REST history reads the rollups where raw rows were pruned, marked as such
    since = datetime.fromtimestamp(old_minute - 60, UTC).isoformat()
    answer = (await server.http.get("/api/os/telemetry", params={"endpointId": FV1_TEMP, "since": since})).json()
    rolled = [r for r in answer["readings"] if "rollup" in r]
    assert [(r["value"], r["rollup"]["minimum"], r["rollup"]["maximum"], r["rollup"]["samples"]) for r in rolled] \
        == [(12.0, 10.0, 14.0, 3), (20.0, 20.0, 20.0, 1)]
    stamps = [r["timestamp"] for r in answer["readings"]]
    assert stamps == sorted(stamps)  # still oldest first, rollups before the raw samples


async def test_pruning_runs_in_bounded_batches_and_loses_no_sample(server: LiveServer) -> None:
    server.runtime.retention.settings = server.runtime.retention.settings.model_copy(update={"batch_rows": 100})
    base = minute_floor(time.time() - 60 * DAY_S)
    insert_rows(server, [row(HLT_TEMP, base + i * 1.5, float(i % 50)) for i in range(1000)])  # 25 minutes
    before = server.runtime.retention.stats.batches
    await server.runtime.retention.run_once()
    assert server.runtime.retention.stats.batches - before >= 5  # not one huge transaction
    assert count(server, RAW, RAW.c.endpoint_id == HLT_TEMP, RAW.c.server_ts < base + DAY_S) == 0
    with server.runtime.db.engine.connect() as conn:
        samples, minutes = conn.execute(select(func.sum(ROLL.c.samples), func.count())
                                        .where(ROLL.c.endpoint_id == HLT_TEMP, ROLL.c.minute_ts < base + DAY_S)).one()
    assert (samples, minutes) == (1000, 25)


async def test_rollups_older_than_their_window_are_deleted(server: LiveServer) -> None:
    now = time.time()
    with server.runtime.db.engine.begin() as conn:
        conn.execute(insert(ROLL), [
            {"endpoint_id": FV1_TEMP, "minute_ts": minute_floor(now - 800 * DAY_S), "minimum": 1, "average": 1,
             "maximum": 1, "samples": 1},
            {"endpoint_id": FV1_TEMP, "minute_ts": minute_floor(now - 100 * DAY_S), "minimum": 2, "average": 2,
             "maximum": 2, "samples": 1}])
    await server.runtime.retention.run_once()
    with server.runtime.db.engine.connect() as conn:
        kept = conn.execute(select(ROLL.c.average).where(ROLL.c.endpoint_id == FV1_TEMP)).scalars().all()
    assert kept == [2.0]


async def test_database_file_stops_growing_once_retention_is_steady(server: LiveServer) -> None:
    """Each cycle writes 20 000 samples older than every window and prunes them: the freed pages are
    reused, so the file grows by a small fraction of one cycle's raw footprint (live samples only)."""
    retention = server.runtime.retention
    retention.settings = retention.settings.model_copy(update={"raw_days": 30, "rollup_days": 30})
    engine = server.runtime.db.engine

    def page_count() -> int:
        with engine.begin() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            return conn.execute(text("PRAGMA page_count")).scalar()

    pages, peaks = [], []
    for cycle in range(6):
        start = minute_floor(time.time() - (90 - cycle) * DAY_S)
        before = page_count()
        insert_rows(server, [row(FV1_TEMP, start + i * 0.5, 20.0 + (i % 7)) for i in range(20000)])
        peaks.append(page_count() - before)
        await retention.run_once()
        pages.append(page_count())
    footprint = max(peaks)
    assert footprint > 100, peaks  # the raw rows of one cycle really take room
    assert pages[-1] - pages[1] < footprint * 0.1, (pages, peaks)


async def test_low_free_space_raises_a_high_alarm_and_clears_when_space_returns(server: LiveServer) -> None:
    retention = server.runtime.retention
    retention.settings = retention.settings.model_copy(update={"min_free_mb": 1e12})  # more than any disk
    retention.check_disk()
    assert server.runtime.alarms.is_active(DISK_ALARM_KEY)
    alarms = (await server.http.get("/api/os/alarms")).json()
    disk = [a for a in alarms if a["kind"] == "disk_space"]
    assert len(disk) == 1 and disk[0]["priority"] == "high" and "Disk space low" in disk[0]["message"]
    for path in ("/api/os/alarms/summary", "/api/os/alarms/definitions", "/api/os/alarms/stats",
                 "/api/os/alarms/history"):
        assert (await server.http.get(path)).status_code == 200, path
    health = (await server.http.get("/api/os/health")).json()
    assert health["retention"]["diskLow"] is True and health["retention"]["freeMb"] > 0
    assert health["tasks"] > 0

    retention.settings = retention.settings.model_copy(update={"min_free_mb": 0})
    retention.check_disk()
    assert not server.runtime.alarms.is_active(DISK_ALARM_KEY)


def test_retention_settings_are_checked_with_their_line() -> None:
    import yaml

    doc = config_document()
    doc["retention"] = {"raw_days": 30, "rollup_days": 7}
    with pytest.raises(ConfigError) as err:
        parse_config(yaml.safe_dump(doc), "plant.yaml")
    problem = err.value.problems[0]
    assert problem.file == "plant.yaml" and problem.field == "retention" and problem.line is not None
    assert "rollup_days must be at least raw_days" in problem.message


async def test_a_site_that_forwards_its_history_never_prunes_its_newest_row(server: LiveServer) -> None:
    """SQLite gives the next row max(id) + 1: were the newest row pruned, a forwarding site would hand out ids the
    centre has already stored, and the centre would skip them as seen."""
    runtime = server.runtime
    await runtime.history_writer.stop()  # the plant's own rows stay in memory: the table holds still
    with runtime.db.engine.connect() as conn:
        newest_id, newest_ts = conn.execute(select(RAW.c.id, RAW.c.server_ts).order_by(RAW.c.id.desc()).limit(1)).one()
    runtime.retention.clock = lambda: time.time() + 90 * DAY_S  # every row is past its raw_days
    runtime.retention.keep_newest = True
    await runtime.retention.run_once()
    with runtime.db.engine.connect() as conn:
        assert conn.execute(select(func.max(RAW.c.id))).scalar() == newest_id
        assert conn.execute(select(func.min(RAW.c.server_ts))).scalar() == newest_ts  # older rows were pruned

    runtime.retention.keep_newest = False  # a site that does not forward: everything past raw_days goes
    await runtime.retention.run_once()
    assert count(server, RAW) == 0
