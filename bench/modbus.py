"""Modbus driver bench against the simulator (real pymodbus server and client on loopback).

    python bench/modbus.py [--seconds 3] [--commands 200]

Prints a Markdown table:
- points/s polled with block reads vs one request per register (64 holding registers);
- command round trip, POST /api/os/command → `succeeded` (Modbus write + readback), p50/p99,
  with 10 devices polling every 100 ms over Modbus TCP.
Targets (issue 5): block reads ≥ 5× the points/s of per-register reads; round trip p99 ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.modbus import LinePool, ModbusDriver  # noqa: E402
from tests.support.fieldbus import Recorder, endpoint, memory_device, modbus_device, server_for  # noqa: E402
from tests.support.server import LiveServer, brewhouse_config, build_runtime, free_port, wait_for  # noqa: E402

POINTS = 64
HLT_SETPOINT, V1 = 12, 22


async def points_per_second(seconds: float, max_block: int) -> tuple[float, int]:
    device_map, _ = memory_device("bench", 1, holding=range(POINTS))
    server, _ = server_for([device_map])
    port = await server.start_tcp("127.0.0.1", 0)
    rec = Recorder()
    eps = [endpoint(i + 1, "bench", {"address": i}, poll_interval_s=0.001) for i in range(POINTS)]
    driver = ModbusDriver(modbus_device("bench", 1, host="127.0.0.1", port=port, max_block=max_block, max_gap=0),
                          eps, rec, LinePool())
    await driver.start()
    await wait_for(lambda: rec.online)
    start_count, started = len(rec.received), time.perf_counter()
    await asyncio.sleep(seconds)
    points = len(rec.received) - start_count
    elapsed = time.perf_counter() - started
    transactions = driver.line.transactions
    await driver.stop()
    await server.stop()
    return points / elapsed, transactions


def ten_devices(doc: dict[str, Any]) -> None:
    """The default brewhouse (6 Modbus devices + the serial probe) plus 3 monitoring devices: 10 polling."""
    sim_port = doc["simulator"]["modbus_port"]
    for unit in (3, 4, 5):
        doc["devices"].append({"id": f"monitor_{unit}", "driver": "modbus",
                               "settings": {"host": "127.0.0.1", "port": sim_port, "device_id": unit}})
        doc["endpoints"].append({"id": 900 + unit, "name": f"monitor_{unit}", "node": "HLT",
                                 "device": f"monitor_{unit}", "kind": "status", "data_type": "int",
                                 "poll_interval_s": 0.1,
                                 "address": {"table": "holding", "address": 0x2100 if unit < 5 else 0}})
    for ep in doc["endpoints"]:
        ep["poll_interval_s"] = 0.1
    doc["commands"] = {"readback_timeout_s": 2, "write_timeout_s": 1, "expiry_s": 10}


async def round_trips(count: int) -> list[float]:
    db = Path(tempfile.mkdtemp(prefix="bevforge-bench-")) / "bench.db"
    live = LiveServer(build_runtime(brewhouse_config(ten_devices), db), free_port())
    await live.start()
    try:
        await wait_for(lambda: all(live.runtime.plant.device_online.values()), timeout=15)
        assert len(live.runtime.drivers) == 10
        times: list[float] = []
        warmup = 5  # first commands pay for connection set-up and imports: not counted
        for i in range(count + warmup):
            endpoint_id, value = (HLT_SETPOINT, 60 + (i % 20)) if i % 2 else (V1, bool(i % 4))
            sub = live.runtime.bus.subscribe(lambda e: e.type == "command_status")
            started = time.perf_counter()
            r = await live.http.post("/api/os/command", json={"endpointId": endpoint_id, "value": value})
            command_id = r.json()["commandId"]
            while True:
                events = await sub.get_many()
                final = [e for e in events if e.payload["commandId"] == command_id
                         and e.payload["status"] in ("succeeded", "failed")]
                if final:
                    break
            sub.close("done")
            if final[0].payload["status"] != "succeeded":
                raise RuntimeError(f"command failed: {final[0].payload}")
            if i >= warmup:
                times.append((time.perf_counter() - started) * 1000)
        return times
    finally:
        await live.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def main(seconds: float, commands: int) -> None:
    block, block_tx = await points_per_second(seconds, max_block=POINTS)
    single, single_tx = await points_per_second(seconds, max_block=1)
    times = await round_trips(commands)
    p50, p99 = statistics.median(times), percentile(times, 99)
    print("| Modbus TCP on loopback (simulator) | Value | Target |")
    print("|---|---|---|")
    print(f"| Points/s, block reads ({POINTS} registers, 1 request per cycle; {block_tx:,} requests) "
          f"| {block:,.0f} | |")
    print(f"| Points/s, one request per register ({single_tx:,} requests) | {single:,.0f} | |")
    print(f"| Block / per-register ratio | {block / single:.1f}× | ≥ 5× {'✅' if block / single >= 5 else '❌'} |")
    print(f"| Command round trip p50 (POST → succeeded, 10 devices polling @100 ms, n={len(times)}) "
          f"| {p50:.1f} ms | |")
    print(f"| Command round trip p99 | {p99:.1f} ms | ≤ 100 ms {'✅' if p99 <= 100 else '❌'} |")
    print(f"| Command round trip max | {max(times):.1f} ms | |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--commands", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.commands))
