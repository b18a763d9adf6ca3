"""History queries on a large PostgreSQL table (issue 17.1: "indexes that keep history queries fast at 100 M
rows"): fills telemetry_readings of a throwaway PostgreSQL server (started here; Debian's postgresql) with
`--rows` samples of `--endpoints` endpoints, one per endpoint per second, in time order as the writer
appends them, then times the store's own queries (bevforge.store.queries, retention_rows) on it.

    .venv/bin/python bench/pg_history.py [--rows 10000000] [--endpoints 200]
Target: each query ≤ 100 ms however long the table (the indexes bound the rows read, not the table size).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, table
from bevforge.store import Database, create_schema
from bevforge.store.queries import last_before, readings, recent_readings, trend
from tests.support.postgres import PostgresCluster

TARGET_MS = 100.0
START = datetime(2025, 1, 1, tzinfo=UTC)


def fill(db: Database, rows: int, endpoints: int) -> float:
    """`rows` samples straight into the table (server side: generate_series), indexes built as the writer
    would have kept them; returns the end of the history (epoch seconds)."""
    seconds = rows // endpoints
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO telemetry_readings (endpoint_id, value, quality, source_ts, server_ts) "
            "SELECT e, 20 + (s %% 600) / 10.0, 'good', %(t0)s + s, %(t0)s + s + e / 1000.0 "
            "FROM generate_series(0, %(n)s - 1) AS s, generate_series(1, %(e)s) AS e ORDER BY s, e",
            {"t0": START.timestamp(), "n": seconds, "e": endpoints})
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE telemetry_readings")
    return START.timestamp() + seconds


def timed(fn: Callable[[], Any], runs: int = 5) -> float:
    fn()  # the first run reads the pages in: the figure is the steady one a trend screen sees
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def rows(rows_total: int = 10_000_000, endpoints: int = 200) -> list[Row]:
    cluster = PostgresCluster(durable=True).start()
    try:
        db = Database(cluster.create_database("history"))
        create_schema(db.engine)
        started = time.perf_counter()
        end = datetime.fromtimestamp(fill(db, rows_total, endpoints), UTC)
        fill_s = time.perf_counter() - started
        engine = db.engine
        middle = START + (end - START) / 2
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT count(*) FROM telemetry_readings").scalar() or 0
            size = conn.exec_driver_sql("SELECT pg_size_pretty(pg_total_relation_size('telemetry_readings'))").scalar()
        queries: list[tuple[str, Callable[[], Any]]] = [
            ("trend: one endpoint, last 12 h, 600 buckets",
             lambda: trend(engine, 7, end - timedelta(hours=12), end, 600)),
            ("export: one endpoint, last 1 h raw",
             lambda: list(readings(engine, 7, end - timedelta(hours=1), end))),
            ("listing: every endpoint, last 10 s, newest 1,000",
             lambda: recent_readings(engine, None, end - timedelta(seconds=10), None, 1000)),
            ("listing: every endpoint, a 10 s window halfway back, newest 1,000",
             lambda: recent_readings(engine, None, middle - timedelta(seconds=10), middle, 1000)),
            ("last value before a trend's start", lambda: last_before(engine, 7, end - timedelta(hours=12))),
        ]
        results = [(name, timed(fn)) for name, fn in queries]
        db.close()
    finally:
        cluster.stop()
    command = f"python bench/pg_history.py --rows {rows_total} --endpoints {endpoints}"
    out = [Row(f"PostgreSQL history of {stored:,} rows ({size}, filled in {fill_s:.0f} s): {name}",
               f"{ms:.1f} ms", f"≤ {TARGET_MS:g} ms", ms <= TARGET_MS, command) for name, ms in results]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--endpoints", type=int, default=200)
    args = parser.parse_args()
    print(table(["measure", "result", "target"], [[r.measure, r.result, r.target] for r in rows(args.rows,
                                                                                              args.endpoints)]))


if __name__ == "__main__":
    main()
