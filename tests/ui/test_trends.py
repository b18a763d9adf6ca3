"""Trends: SQL-bucketed history (real SQLite file) and the multi-pen /trends page (issue 16.7): pens of
several units on their own axes, views (vessel defaults, saved ones), command and alarm markers, zoom that
stops the live tail, and the CSV of what is shown."""

from __future__ import annotations

import asyncio
import csv
import io
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nicegui.testing import User
from sqlalchemy import insert

from bevforge.domain import Actor, Quality, Reading, Severity
from bevforge.store import TelemetryReading, create_schema, make_engine
from bevforge.store import queries as history
from tests.support.controllers import FAST_POLL_S, RIMS, with_controllers
from tests.ui.conftest import write_config
from tests.ui.support import online, runtime, shows, until
from ui.trends import held_buckets

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
FV1_TEMP = 50
HLT_TEMP, HLT_SETPOINT, HLT_VOLUME = 10, 12, 14
MLT_SETPOINT, MLT_OUTPUT = 140, 141
OLGA = Actor(user="olga", station="kiosk", role="operator")


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


def _chart(user: User) -> object:
    return next(iter(user.find(marker="trend-chart").elements))


def _samples(user: User, label: str) -> int:
    """The good-sample count the summary shows for one pen."""
    text = next(iter(user.find(marker="trend-summary").elements)).text
    return int(text.split(f"{label}: ")[1].split(" ")[0])


def _pen_series(user: User) -> list[dict]:
    return [s for s in _chart(user).options["series"] if s["id"].startswith("pen-")]


def _markers(user: User, kind: str) -> list[dict]:
    series = next(s for s in _chart(user).options["series"] if s["id"] == f"markers-{kind}")
    return series["markLine"]["data"]


async def open_trends(user: User, path: str) -> None:
    """Open the trend page and wait until its first load has drawn (its summary says what it shows):
    a pen picked before that would race the page's own first load."""
    await user.open(path)
    await until(lambda: " · " in next(iter(user.find(marker="trend-summary").elements)).text)


async def _add_pen(user: User, endpoint_id: int) -> None:
    next(iter(user.find(marker="trend-add-pen").elements)).value = endpoint_id
    await until(lambda: user._sees(None, None, f"trend-pen-{endpoint_id}", None))


async def test_trend_page_opens_on_the_first_vessel_view_appends_live_and_exports(user: User) -> None:
    await user.open("/")
    await online()
    rt = runtime()
    await until(lambda: rt.history_writer.rows_written > 20)
    await open_trends(user, "/trends")
    await shows(user, "trend-summary", "HLT temperature", "HLT setpoint", "following live")
    await until(lambda: [s["name"] for s in _pen_series(user)] == ["HLT temperature (°C)", "HLT setpoint (°C)"])
    assert any(point[1] is not None for point in _pen_series(user)[0]["data"])
    samples_at_open = _samples(user, "HLT temperature")
    await until(lambda: _samples(user, "HLT temperature") > samples_at_open)  # live append
    user.find(marker="trend-export").click()
    response = await user.download.next(timeout=5)
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert len([r for r in table if r["endpoint"] == "hlt_temperature"]) >= samples_at_open
    assert {(r["endpoint_id"], r["endpoint"], r["label"], r["unit"]) for r in table} == {
        ("10", "hlt_temperature", "HLT temperature", "°C"), ("12", "hlt_setpoint", "HLT setpoint", "°C")}


async def test_pens_of_two_units_are_drawn_on_two_axes_and_a_pen_can_be_removed(user: User) -> None:
    await user.open("/")
    await online()
    await open_trends(user, f"/trends?endpoint={HLT_TEMP}")
    await shows(user, "trend-summary", "HLT temperature")
    await _add_pen(user, HLT_VOLUME)
    await shows(user, "trend-summary", "HLT volume")
    options = _chart(user).options
    assert [(a["name"], a["position"]) for a in options["yAxis"]] == [("°C", "left"), ("L", "right")]
    assert [(s["name"], s["yAxisIndex"]) for s in _pen_series(user)] == [("HLT temperature (°C)", 0),
                                                                          ("HLT volume (L)", 1)]
    await _add_pen(user, HLT_SETPOINT)  # a second °C pen shares the °C axis
    await until(lambda: len(_pen_series(user)) == 3)
    assert [s["yAxisIndex"] for s in _pen_series(user)] == [0, 1, 0] and len(_chart(user).options["yAxis"]) == 2
    user.find(marker=f"trend-pen-{HLT_VOLUME}").click()
    await until(lambda: [s["name"] for s in _pen_series(user)] == ["HLT temperature (°C)", "HLT setpoint (°C)"])
    assert [a["name"] for a in _chart(user).options["yAxis"]] == ["°C"]


async def test_a_saved_view_is_restored_with_its_pens_and_span(user: User) -> None:
    await user.open("/")
    await online()
    rt = runtime()
    await open_trends(user, f"/trends?endpoint={HLT_TEMP}")
    await shows(user, "trend-summary", "HLT temperature")
    await _add_pen(user, HLT_VOLUME)
    next(iter(user.find(marker="trend-range").elements)).value = "8 h"
    await shows(user, "trend-summary", "buckets of 48 s")
    user.find(marker="trend-save").click()
    await until(lambda: user._sees(None, None, "trend-save-name", None))
    next(iter(user.find(marker="trend-save-name").elements)).value = "HLT fill"
    user.find(marker="trend-save-confirm").click()
    select = next(iter(user.find(marker="trend-view").elements))
    key = await until(lambda: next((k for k, v in select.options.items() if v == "Mine: HLT fill"), None))
    [saved] = [v for v in await rt.trends.views(Actor()) if v.key == key]  # stored: the anonymous user's own
    assert saved.pens == [HLT_TEMP, HLT_VOLUME] and saved.span_s == 8 * 3600

    await open_trends(user, "/trends")  # a fresh page: the first vessel view
    await shows(user, "trend-summary", "HLT setpoint")
    select = next(iter(user.find(marker="trend-view").elements))
    assert select.options[key] == "Mine: HLT fill"
    select.value = key
    await shows(user, "trend-summary", "HLT volume", "buckets of 48 s", absent=("HLT setpoint",))
    assert [s["name"] for s in _pen_series(user)] == ["HLT temperature (°C)", "HLT volume (L)"]
    assert next(iter(user.find(marker="trend-range").elements)).value == "8 h"


async def test_a_command_and_an_alarm_show_as_markers_with_who_what_and_result(user: User) -> None:
    await user.open("/")
    await online()
    rt = runtime()
    await open_trends(user, "/trends")
    await shows(user, "trend-summary", "HLT setpoint", "0 commands, 0 alarm events")
    command, _created = await rt.commands.submit(HLT_SETPOINT, 70.0, actor=OLGA)
    rt.alarms.raise_alarm("test:hlt_probe", "system", Severity.HIGH, "HLT probe check", endpoint_id=HLT_TEMP)
    await until(lambda: any("succeeded" in m["name"] for m in _markers(user, "command")))
    [marker] = _markers(user, "command")
    assert marker["name"] == "olga set HLT setpoint to 70 °C: succeeded" and marker["label"]["formatter"] == "70 °C"
    assert abs(marker["xAxis"] - command.created_at.timestamp() * 1000) < 1000
    await until(lambda: _markers(user, "alarm"))
    [alarm] = _markers(user, "alarm")
    assert alarm["label"]["formatter"] == "raised" and "HLT probe check" in alarm["name"]
    await shows(user, "trend-summary", "1 command, 1 alarm event")


async def test_zooming_into_the_past_pauses_the_tail_and_the_csv_is_what_is_shown(user: User) -> None:
    await user.open("/")
    await online()
    rt = runtime()
    await until(lambda: rt.history_writer.rows_written > 20)
    await open_trends(user, f"/trends?endpoint={HLT_TEMP}")
    await _add_pen(user, HLT_VOLUME)
    await shows(user, "trend-summary", "HLT volume", "following live")
    chart = _chart(user)
    user.find(marker="trend-chart").trigger("chart:datazoom", {"batch": [{"start": 0, "end": 50}]})
    await shows(user, "trend-summary", "paused (zoomed into the past)")
    frozen = [list(p) for p in _pen_series(user)[0]["data"]]
    await until(lambda: _samples(user, "HLT temperature") > 0)
    user.find(marker="trend-export").click()
    response = await user.download.next(timeout=5)
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert table == []  # the shown half is the first half hour of the range: the plant started after it
    assert [list(p) for p in _pen_series(user)[0]["data"]] == frozen  # nothing appended while paused
    user.find(marker="trend-live").click()
    await shows(user, "trend-summary", "following live")
    user.find(marker="trend-export").click()
    response = await user.download.next(timeout=5)
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert {(r["endpoint_id"], r["label"], r["unit"]) for r in table} == {("10", "HLT temperature", "°C"),
                                                                         ("14", "HLT volume", "L")}
    assert chart is _chart(user)


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
        await open_trends(user, f"/trends?endpoint={FV1_TEMP}")
        await shows(user, "trend-summary", "FV1 temperature")
        toggle = next(iter(user.find(marker="trend-range").elements))
        toggle.value = "15 min"  # 2 s buckets
        await shows(user, "trend-summary", "buckets of 2 s")

        def live_buckets() -> int:
            line = _pen_series(user)[0]["data"]
            return sum(1 for at, value in line if value == 12.5 and at / 1000 > pushed_wall)

        pushed_wall = rt.plant.states[FV1_TEMP].server_time.timestamp()
        await until(lambda: live_buckets() >= 3)
    finally:
        sampling.cancel()
    repushed = [e for e in rt.bus.since(pushed_at) or [] if e.type == "telemetry"
                and e.payload["endpointId"] == FV1_TEMP]
    assert repushed == []  # the line grew from the carried value, not from new frames


async def test_a_custom_range_in_the_past_is_fixed_and_live_returns_to_following(user: User) -> None:
    await user.open("/")
    await online()
    rt = runtime()
    await until(lambda: rt.history_writer.rows_written > 20)
    await open_trends(user, f"/trends?endpoint={HLT_TEMP}")
    await shows(user, "trend-summary", "following live")
    next(iter(user.find(marker="trend-range").elements)).value = "Custom"
    await until(lambda: user._sees(None, None, "trend-custom-show", None))
    now = datetime.now(UTC)
    start = now - timedelta(hours=2)
    next(iter(user.find(marker="trend-custom-day").elements)).value = start.strftime("%Y-%m-%d")
    next(iter(user.find(marker="trend-custom-from").elements)).value = start.strftime("%H:%M")
    next(iter(user.find(marker="trend-custom-to").elements)).value = (start + timedelta(minutes=30)).strftime("%H:%M")
    user.find(marker="trend-custom-show").click()
    await shows(user, "trend-summary", "HLT temperature: 0 good samples", "buckets of 3 s", "fixed range")
    assert all(value is None for _at, value in _pen_series(user)[0]["data"])  # before the plant started: all gap
    first_at = _pen_series(user)[0]["data"][0][0]
    assert first_at == int(datetime.fromisoformat(start.strftime("%Y-%m-%dT%H:%M")).replace(tzinfo=UTC)
                           .timestamp() * 1000)
    user.find(marker="trend-live").click()
    await shows(user, "trend-summary", "following live", absent=("HLT temperature: 0 good samples",))


async def test_a_pen_that_goes_bad_is_a_gap_while_the_others_keep_following(user: User) -> None:
    await user.open("/")
    await online()
    rt = runtime()
    await rt.drivers["cellar_probe"].stop()  # FV1 temperature now comes from this test only
    rt.plant.ingest([Reading(FV1_TEMP, 12.5)])
    await open_trends(user, f"/trends?endpoint={FV1_TEMP}")
    await _add_pen(user, HLT_TEMP)
    next(iter(user.find(marker="trend-range").elements)).value = "15 min"  # 2 s buckets
    await shows(user, "trend-summary", "HLT temperature", "buckets of 2 s")
    rt.plant.ingest([Reading(FV1_TEMP, None, Quality.BAD)])
    bad_at = datetime.now(UTC).timestamp() * 1000 + 2000  # from the next bucket on

    def after_bad(endpoint_id: int) -> list[float | None]:
        line = next(s for s in _pen_series(user) if s["id"] == f"pen-{endpoint_id}")["data"]
        return [value for at, value in line if at > bad_at]

    await until(lambda: len([v for v in after_bad(HLT_TEMP) if v is not None]) >= 3)  # the live pen went on
    assert [v for v in after_bad(FV1_TEMP) if v is not None] == []  # the bad one: no point, no line


def test_a_value_recorded_on_change_holds_until_its_next_sample_and_a_polled_one_does_not() -> None:
    rows = [[0, None, None, None, 0], [1000, 66.0, 66.0, 66.0, 1], [2000, None, None, None, 0],
            [3000, None, None, None, 0], [4000, 68.0, 68.0, 68.0, 1], [5000, None, None, None, 0]]
    assert [b[2] for b in held_buckets(rows, math.inf)] == [None, 66.0, 66.0, 66.0, 68.0, 68.0]
    assert [b[2] for b in held_buckets(rows, 1.0)] == [None, 66.0, 66.0, None, 68.0, 68.0]  # held 1 s, then a gap
    assert held_buckets(rows, math.inf, seed=(-5000, 65.0))[0][2] == 65.0  # set before the range
    assert [b[4] for b in held_buckets(rows, math.inf)] == [0, 1, 0, 0, 1, 0]  # a held value adds no sample
    assert held_buckets(rows, None) == rows  # a polled value: an empty bucket is a gap
    changed = [[0, 64.0, 64.5, 65.0, 2], [1000, None, None, None, 0]]  # 65, then 64 within one bucket
    assert [b[2] for b in held_buckets(changed, math.inf, lasts={0: 64.0})] == [64.5, 64.0]  # holds the last


@pytest.fixture
def rims(bevforge_env: Path) -> Path:
    """The fixture brewhouse with the mash tun's RIMS loop, its software setpoint (140) and output record (141)."""
    def adjust(doc: dict) -> None:
        with_controllers([{**RIMS, "output_record": {"id": MLT_OUTPUT, "name": "mlt_output"}}])(doc)
        for endpoint in doc["endpoints"]:
            if endpoint.get("poll_interval_s") == FAST_POLL_S:
                endpoint["poll_interval_s"] = 0.5  # the screen tests need no fast sampling
                endpoint.pop("stale_after_s", None)
    write_config(bevforge_env / "config.yaml", adjust)
    return bevforge_env


async def test_the_mlt_view_holds_its_software_setpoint_between_changes(rims: Path, user: User) -> None:
    await user.open("/")
    await online()
    rt = runtime()
    await rt.commands.submit(MLT_SETPOINT, 64.0, actor=OLGA)
    await until(lambda: rt.plant.states[MLT_SETPOINT].value == 64.0)
    changed = rt.plant.states[MLT_SETPOINT].server_time
    # the probe's samples go on for three more 2 s buckets; the setpoint records none (unchanged)
    def probe_samples_later() -> bool:  # the probe has no time until its first reading reaches the plant
        at = rt.plant.states[20].server_time
        return at is not None and (at - changed).total_seconds() > 6.5
    await until(probe_samples_later)
    await open_trends(user, "/trends?view=MLT")
    await shows(user, "trend-summary", "MLT temperature", "Mash temperature setpoint", "Mash temperature output")
    next(iter(user.find(marker="trend-range").elements)).value = "15 min"  # 2 s buckets
    await shows(user, "trend-summary", "buckets of 2 s")
    line = next(s for s in _pen_series(user) if s["id"] == f"pen-{MLT_SETPOINT}")["data"]
    first = next(i for i, (_at, value) in enumerate(line) if value is not None)
    assert all(64.0 <= value <= 65.0 for _at, value in line[first:] if value is not None)  # 65 (default), then 64
    assert all(value is not None for _at, value in line[first:])  # one sample per change, a line all along
    assert [value for at, value in line if at / 1000 > changed.timestamp()][-3:] == [64.0, 64.0, 64.0]
