"""The history writer on PostgreSQL (issue 17.1): rows/s through HistoryWriter.write_batch (COPY) into a
throwaway PostgreSQL server this script starts itself (Debian's postgresql: scripts/ensure-postgres.sh),
with PostgreSQL's default durability (fsync on, synchronous commit), one transaction per batch.

    .venv/bin/python bench/pg_writer.py [--rows 500000] [--batch 5000]
Target: ≥ 50,000 rows/s on this 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, table
from bevforge.domain import utcnow
from bevforge.store import Database, HistoryWriter, create_schema
from tests.support.postgres import PostgresCluster

TARGET = 50_000
ENDPOINTS = 100


def writer_throughput(rows_total: int, batch: int) -> tuple[float, int]:
    """Rows/s written and the rows the table holds afterwards (every row counted, none lost)."""
    cluster = PostgresCluster(durable=True).start()
    try:
        db = Database(cluster.create_database("bench"))
        create_schema(db.engine)
        writer = HistoryWriter(db)
        now = utcnow()
        ts = now.timestamp()
        batches = rows_total // batch
        # What a flush sees (many endpoints, advancing time), built before the clock starts: the figure is
        # the writer's, not this script's dict building (the server builds its rows as readings arrive).
        prepared = [[{"endpoint_id": i % ENDPOINTS, "value": 20.0 + (i % 97) * 0.1, "quality": "good",
                      "source_ts": ts + b + i * 1e-4, "server_ts": ts + b + i * 1e-4} for i in range(batch)]
                    for b in range(batches)]
        current = [{"endpoint_id": e, "value": 21.0, "quality": "good", "source_time": now, "server_time": now}
                   for e in range(ENDPOINTS)]
        started = time.perf_counter()
        for batch_rows in prepared:
            writer.write_batch(batch_rows, current)
        elapsed = time.perf_counter() - started
        with db.engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT count(*) FROM telemetry_readings").scalar() or 0
        db.close()
    finally:
        cluster.stop()
    return batches * batch / elapsed, int(stored)


def rows(rows_total: int = 500_000, batch: int = 5000) -> list[Row]:
    rate, stored = writer_throughput(rows_total, batch)
    command = f"python bench/pg_writer.py --rows {rows_total} --batch {batch}"
    return [
        Row(f"history writer on PostgreSQL (COPY, one transaction per {batch:,} rows, fsync on; {stored:,} rows "
            "stored)", f"{rate:,.0f} rows/s", f"≥ {TARGET:,} rows/s", rate >= TARGET and stored == rows_total,
            command),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    print(table(["measure", "result", "target"], [[r.measure, r.result, r.target] for r in rows(args.rows,
                                                                                              args.batch)]))


if __name__ == "__main__":
    main()
