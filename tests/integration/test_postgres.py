"""PostgreSQL as a supported store (issue 17.1): the server runs on a real PostgreSQL server the test
starts itself (tests/support/postgres.py), whatever database the rest of this run uses."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bevforge.runtime import Runtime
from drivers import driver_factories
from tests.support.postgres import PostgresCluster
from tests.support.server import LiveServer, brewhouse_config, fed_externally, free_port, wait_for

FV1_TEMP, HLT_TEMP = 50, 10
V1 = 22  # hlt_out_valve: writable, no interlock


async def test_the_server_runs_on_postgresql_and_keeps_history_there(postgres_url: str, tmp_path: Path) -> None:
    config = brewhouse_config(fed_externally(FV1_TEMP))
    factories, sim = driver_factories(config)
    runtime = Runtime(config, postgres_url, factories)
    runtime.attachments["simulator"] = sim
    assert runtime.db.engine.dialect.name == "postgresql"
    live = LiveServer(runtime, free_port())
    await live.start()
    try:
        await wait_for(lambda: all(runtime.plant.device_online.values()))
        sent = await live.http.post("/api/os/telemetry/ingest", json={"endpointId": FV1_TEMP, "value": 19.25})
        assert sent.status_code in (200, 202), sent.text
        await runtime.history_writer.flush()
        history = (await live.http.get("/api/os/telemetry", params={"endpointId": FV1_TEMP, "limit": 5})).json()
        assert history["readings"][-1]["value"] == 19.25
        assert (await live.http.get(f"/api/os/endpoints/{FV1_TEMP}")).json()["value"] == 19.25
    finally:
        await live.stop()


def test_the_throwaway_cluster_hands_out_empty_databases(postgres: PostgresCluster) -> None:
    import psycopg

    url = postgres.create_database()
    name = url.rsplit("/", 1)[1]
    try:
        with psycopg.connect(f"host=127.0.0.1 port={postgres.port} user=postgres dbname={name}") as conn:
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables == (0,)
    finally:
        postgres.drop_database(name)


def test_the_history_writer_copies_rows_into_postgresql(postgres_url: str) -> None:
    """COPY (binary) is the PostgreSQL fast path: every row arrives as written, nulls included, and no
    INSERT into the history table is sent."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import event

    from bevforge.store import Database, HistoryWriter, create_schema
    from bevforge.store.queries import readings

    db = Database(postgres_url)
    create_schema(db.engine)
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    t0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    rows = [{"endpoint_id": 50, "value": None if i % 7 == 0 else 18.0 + i / 100, "quality": "bad" if i % 7 == 0
             else "good", "source_ts": None if i % 2 else t0.timestamp() + i, "server_ts": t0.timestamp() + i}
            for i in range(2000)]
    current = [{"endpoint_id": 50, "value": 37.99, "quality": "good", "source_time": t0, "server_time": t0}]
    try:
        HistoryWriter(db).write_batch(rows, current)
        back = list(readings(db.engine, 50, t0, t0 + timedelta(hours=1)))
    finally:
        db.close()
    assert not [s for s in statements if "INSERT INTO telemetry_readings" in s]
    assert len(back) == 2000
    assert back[0] == (t0, None, "bad", t0)
    assert back[1] == (t0 + timedelta(seconds=1), 18.01, "good", None)
    assert back[2] == (t0 + timedelta(seconds=2), 18.02, "good", t0 + timedelta(seconds=2))


async def test_a_database_outage_never_stops_control_and_writing_resumes(tmp_path: Path) -> None:
    """PostgreSQL stopped under a running server: readings go on, the store alarm is raised, a command is
    refused with 503 naming the store; started again: the alarm clears and the held history is written."""
    import time

    from bevforge.store.faults import STORE_ALARM_KEY

    cluster = PostgresCluster().start()  # its own server: this test stops it
    try:
        config = brewhouse_config()
        factories, sim = driver_factories(config)
        runtime = Runtime(config, cluster.create_database("plant"), factories)
        runtime.attachments["simulator"] = sim
        live = LiveServer(runtime, free_port())
        await live.start()
        try:
            await wait_for(lambda: all(runtime.plant.device_online.values()))
            await asyncio.to_thread(cluster.stop_server)
            outage_began = time.time()
            await wait_for(lambda: runtime.alarms.is_active(STORE_ALARM_KEY), timeout=15)
            state = runtime.plant.states[HLT_TEMP]
            seen = state.seq
            await wait_for(lambda: state.seq > seen + 2)  # the plant keeps polling
            refused = await live.http.post("/api/os/command", json={"endpointId": V1, "value": True})
            assert refused.status_code == 503 and refused.json()["error"] == "store_unavailable", refused.text
            await asyncio.to_thread(cluster.start_server)
            await wait_for(lambda: not runtime.alarms.is_active(STORE_ALARM_KEY), timeout=30)
            await wait_for(lambda: runtime.history_writer.retry_delay == 0 and runtime.history_writer.pending < 500,
                           timeout=15)
            with runtime.db.engine.connect() as conn:
                held = conn.exec_driver_sql("SELECT count(*) FROM telemetry_readings WHERE server_ts >= %(t)s",
                                            {"t": outage_began}).scalar()
            assert held and held > 0
        finally:
            await live.stop()
    finally:
        cluster.stop()


def test_the_integrity_check_reads_a_postgresql_database(postgres_url: str) -> None:
    from bevforge.store import create_schema, integrity_ok, make_engine

    engine = make_engine(postgres_url)
    create_schema(engine)
    assert integrity_ok(engine)  # SQLite's PRAGMA integrity_check is a syntax error on PostgreSQL
    engine.dispose()


async def test_a_lock_held_by_another_session_is_refused_after_the_busy_timeout(postgres_url: str) -> None:
    """store.busy_timeout_s bounds a wait for another PostgreSQL session's lock, as it does SQLite's: the
    command is refused with 503 naming the store, not left hanging."""
    import psycopg

    config = brewhouse_config(lambda doc: doc["store"].update(busy_timeout_s=0.5))
    factories, sim = driver_factories(config)
    runtime = Runtime(config, postgres_url, factories)
    runtime.attachments["simulator"] = sim
    live = LiveServer(runtime, free_port())
    await live.start()
    try:
        await wait_for(lambda: all(runtime.plant.device_online.values()))
        name = postgres_url.rsplit("/", 1)[1]
        port = runtime.db.engine.url.port
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname={name}") as other:
            other.execute("LOCK TABLE commands IN ACCESS EXCLUSIVE MODE")  # held until this block ends
            refused = await live.http.post("/api/os/command", json={"endpointId": V1, "value": True})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "store_unavailable" and "locked" in refused.json()["message"]
        answer = await live.http.post("/api/os/command", json={"endpointId": V1, "value": True})
        assert answer.status_code == 202, answer.text
    finally:
        await live.stop()
