"""Ingest throughput: readings/s through POST /api/os/telemetry/ingest (batches of 500), and the
rows/s the batched history writer sustains on SQLite.

    .venv/bin/python bench/ingest.py [--seconds 5] [--clients 2]
Targets on a 2-core machine: ≥ 20,000 readings/s through the API; ≥ 100,000 rows/s in the writer.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, AppProcess, Row, table
from bevforge.domain import utcnow
from bevforge.store import Database, HistoryWriter, create_schema

BATCH = 500
FV_ENDPOINTS = (50, 60)


async def api_throughput(base_url: str, seconds: float, clients: int) -> tuple[float, int]:
    body = orjson.dumps({"readings": [{"endpointId": FV_ENDPOINTS[i % 2], "value": 10 + (i % 100) * 0.1}
                                      for i in range(BATCH)]})
    accepted = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal accepted
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            while time.perf_counter() < deadline:
                r = await http.post("/api/os/telemetry/ingest", content=body,
                                    headers={"content-type": "application/json"})
                r.raise_for_status()
                accepted += r.json()["accepted"]

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return accepted / (time.perf_counter() - started), accepted


def writer_throughput(rows_total: int = 300_000, batch: int = 5000) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        create_schema(db.engine)
        writer = HistoryWriter(db)
        now = utcnow()
        ts = now.timestamp()
        rows = [{"endpoint_id": 50, "value": float(i), "quality": "good", "source_ts": ts, "server_ts": ts}
                for i in range(batch)]
        current = [{"endpoint_id": 50, "value": 1.0, "quality": "good", "source_time": now, "server_time": now}]
        started = time.perf_counter()
        for _ in range(rows_total // batch):
            writer.write_batch(rows, current)
        elapsed = time.perf_counter() - started
        db.close()
        return rows_total / elapsed


def history_dropped(base_url: str, timeout_s: float = 60.0) -> int:
    """Rows the history writer dropped, once it has caught up: a writer that cannot keep up with ingest
    fills its bounded backlog and drops the oldest rows (counted in GET /api/os/health)."""
    deadline = time.monotonic() + timeout_s
    while True:
        database = httpx.get(f"{base_url}/api/os/health", timeout=10).json()["database"]
        if database["historyPending"] == 0 or time.monotonic() > deadline:
            return int(database["historyDropped"])
        time.sleep(0.2)


def bench_config(directory: Path) -> Path:
    """The default brewhouse with the fermenter probes fed over the API (only an endpoint whose source is
    `external` accepts readings from clients) and the per-credential ingest rate out of the way."""
    doc = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    for endpoint in doc["endpoints"]:
        if endpoint["id"] in FV_ENDPOINTS:
            endpoint.pop("device")
            endpoint.pop("address")
            endpoint["source"] = "external"
    doc["devices"] = [d for d in doc["devices"] if d["id"] != "cellar_probe"]
    doc["ingest"] = {"rate_per_s": 1e9, "burst": BATCH}
    path = directory / "bench-config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def rows(seconds: float = 5.0, clients: int = 2) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bevforge-bench-config-") as directory, \
            AppProcess(config=bench_config(Path(directory))) as app:
        rate, total = asyncio.run(api_throughput(app.base_url, seconds, clients))
        dropped = history_dropped(app.base_url)
    rows_per_s = writer_throughput()
    command = f"python bench/ingest.py --seconds {seconds:g} --clients {clients}"
    return [
        Row(f"API ingest, batches of {BATCH} ({clients} clients, {total} readings)", f"{rate:,.0f} readings/s",
            "≥ 20,000 readings/s", rate >= 20_000, command),
        Row("history rows dropped during that API ingest (the writer kept up)", f"{dropped:,}", "0", dropped == 0,
            command),
        Row("history writer (multi-row INSERT, one transaction per 5,000 rows)", f"{rows_per_s:,.0f} rows/s",
            "≥ 100,000 rows/s", rows_per_s >= 100_000, command),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()
    print(table(["measure", "result", "target"], [[r.measure, r.result, r.target] for r in rows(args.seconds,
                                                                                              args.clients)]))


if __name__ == "__main__":
    main()
