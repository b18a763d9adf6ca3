"""Trends: SQL-bucketed history (real SQLite file), the /trends page and its CSV export."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nicegui.testing import User
from sqlalchemy import insert

from bevforge.domain import Reading
from bevforge.store import TelemetryReading, create_schema, make_engine
from bevforge.store import queries as history
from tests.ui.support import online, runtime, shows, until

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
FV1_TEMP = 50


def _engine_with_rows(path: Path, rows: list[dict]) -> object:
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(insert(TelemetryReading), rows)
    return engine


def _row(seconds: float, value: float | None, quality: str = "good", endpoint_id: int = 10) -> dict:
    return {"endpoint_id": endpoint_id, "value": value, "quality": quality,
            "server_ts": (T0 + timedelta(seconds=seconds)).timestamp(), "source_ts": None}


def test_trend_buckets_min_avg_max_in_sql_and_keeps_gaps(tmp_path: Path) -> None:
    rows = [_row(s, 20.0 + s / 10) for s in range(0, 60)]  # first minute: 20.0 … 25.9
    rows += [_row(s, 999.0, "bad") for s in range(60, 120)]  # second minute: only bad samples
    rows += [_row(s, 30.0) for s in range(180, 240)]  # fourth minute: steady 30
    rows += [_row(s, 50.0, endpoint_id=11) for s in range(0, 240)]  # another endpoint
    engine = _engine_with_rows(tmp_path / "h.db", rows)
    buckets = history.trend(engine, 10, T0, T0 + timedelta(minutes=4), buckets=4)
    assert [b.start for b in buckets] == [T0 + timedelta(minutes=i) for i in range(4)]
    first, second, third, fourth = buckets
    assert (first.minimum, first.maximum, first.samples) == (20.0, 25.9, 60)
    assert abs(first.average - 22.95) < 1e-9
    assert second.samples == 0 and second.average is None  # bad values never enter an aggregate
    assert third.samples == 0 and third.average is None  # no data: a gap, not an interpolation
    assert (fourth.minimum, fourth.average, fourth.maximum) == (30.0, 30.0, 30.0)


def test_long_range_is_bounded_by_the_bucket_count(tmp_path: Path) -> None:
    rows = [_row(s * 0.5, 60.0 + (s % 100) / 10) for s in range(0, 12 * 3600 * 2, 7)]  # 12 h sparse
    engine = _engine_with_rows(tmp_path / "h.db", rows)
    buckets = history.trend(engine, 10, T0, T0 + timedelta(hours=12), buckets=600)
    assert len(buckets) == 600
    assert sum(b.samples for b in buckets) == len(rows)
    assert history.bucket_width(T0, T0 + timedelta(hours=12), 600) == 72.0


def test_export_csv_has_every_raw_sample_of_the_range(tmp_path: Path) -> None:
    rows = [_row(s, 20.0 + s) for s in range(10)] + [_row(10, None, "bad")]
    engine = _engine_with_rows(tmp_path / "h.db", rows)
    since, until_ = T0 + timedelta(seconds=2), T0 + timedelta(seconds=10)
    text = history.export_csv(engine, 10, "hlt_temperature", "°C", since, until_)
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["value"] for r in table] == [repr(20.0 + s) for s in range(2, 10)] + [""]
    assert table[0]["timestamp_utc"] == "2026-03-01T08:00:02.000Z"
    assert table[-1]["quality"] == "bad" and table[0]["unit"] == "°C"


async def test_trend_page_draws_history_appends_live_and_exports(user: User) -> None:
    await user.open("/")
    await online()
    rt = runtime()
    await until(lambda: rt.history_writer.rows_written > 20)
    await user.open("/trends")
    summary = await shows(user, "trend-summary", "HLT temperature", "good samples")
    chart = next(iter(user.find(marker="trend-chart").elements))
    avg = chart.options["series"][1]["data"]
    assert len(avg) >= 1 and any(point[1] is not None for point in avg)
    samples_at_open = int(summary.split(": ")[1].split(" ")[0])
    await until(lambda: int(next(iter(user.find(marker="trend-summary").elements)).text.split(": ")[1].split(" ")[0])
                > samples_at_open)  # live append
    user.find(marker="trend-export").click()
    response = await user.download.next(timeout=5)
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert len(table) >= samples_at_open
    assert {r["endpoint"] for r in table} == {"hlt_temperature"}


async def test_a_steady_live_value_keeps_its_line_between_pushed_frames(user: User) -> None:
    """Telemetry is pushed by exception: the line must not break while a steady value stays live."""
    await user.open("/")
    await online()
    rt = runtime()
    await rt.drivers["cellar_probe"].stop()  # FV1 temperature now comes from this test only
    rt.plant.refresh_s = 3600  # a repeated sample is not pushed again during the test
    rt.plant.ingest([Reading(FV1_TEMP, 12.5)])
    pushed_at = rt.bus.last_seq

    async def keep_sampling() -> None:  # fresh samples of the same value: GOOD, never pushed
        while True:
            await asyncio.sleep(0.5)
            rt.plant.ingest([Reading(FV1_TEMP, 12.5)])

    sampling = asyncio.create_task(keep_sampling())
    try:
        await user.open(f"/trends?endpoint={FV1_TEMP}")
        await shows(user, "trend-summary", "FV1 temperature")
        toggle = next(iter(user.find(marker="trend-range").elements))
        toggle.value = "15 min"  # 2 s buckets
        await shows(user, "trend-summary", "buckets of 2 s")
        chart = next(iter(user.find(marker="trend-chart").elements))

        def live_buckets() -> int:
            avg = chart.options["series"][1]["data"]
            return sum(1 for at, value in avg if value == 12.5 and at / 1000 > pushed_wall)

        pushed_wall = rt.plant.states[FV1_TEMP].server_time.timestamp()
        await until(lambda: live_buckets() >= 3)
    finally:
        sampling.cancel()
    repushed = [e for e in rt.bus.since(pushed_at) or [] if e.type == "telemetry"
                and e.payload["endpointId"] == FV1_TEMP]
    assert repushed == []  # the line grew from the carried value, not from new frames
