"""The store fails under a running plant: read-only, locked by another program, or the disk full.

Each fault is real SQLite failing under the live server (a real file, the real engine): a
connection made read-only (`PRAGMA query_only`: SQLite's own SQLITE_READONLY, as from read-only
files — chmod does not stop root, who runs these tests), a second process holding the write lock
(`BEGIN EXCLUSIVE` in another `python`), and a tiny tmpfs filled to the last byte (skipped where
`mount` is not permitted). Under each:

- the process lives on, readings keep arriving, the store alarm (`store:database`) is raised, and
  an interlock still trips a running heater (its command record is held and written afterwards);
- a command, a sign-in, a user change and an alarm acknowledgement are each refused with 503
  `store_unavailable` naming the store, and none of them is half-done (no command stored or queued,
  no session, the role unchanged, the alarm still unacknowledged);
- when the fault ends, writing resumes by itself: the alarm clears, the history and the alarm
  journal held meanwhile are written, and the same requests succeed.

Before this, the same faults answered 500 `internal_error` (and the history of the fault was lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from bevforge.store.faults import STORE_ALARM_KEY
from tests.support.server import LiveServer, brewhouse_config, build_runtime, free_port, wait_for

V1 = 22  # hlt_out_valve: writable, no interlock
HLT_HEATER = 11  # interlocked: ON only while the HLT level switch (13) is high
LEVEL = 13  # a reading that keeps arriving
Fault = Callable[[], Awaitable[None]]


def _adjust(doc: dict[str, Any]) -> None:
    doc["auth"] = {"mode": "required"}
    doc["store"] = {"flush_interval_s": 0.05, "busy_timeout_s": 0.2}


@contextlib.asynccontextmanager
async def brewhouse(db_path: Path) -> AsyncIterator[LiveServer]:
    live = LiveServer(build_runtime(brewhouse_config(_adjust), db_path), free_port())
    await live.start()
    try:
        await wait_for(lambda: all(live.runtime.plant.device_online.values()), timeout=15)
        live.runtime.auth.add_user("olga", "olga-secret-1", "operator", None)
        live.runtime.auth.add_user("ada", "ada-secret-12", "admin", None)
        live.http.headers["origin"] = live.base_url  # a browser on our own pages (see test_csrf.py)
        yield live
    finally:
        await live.stop()


async def sign_in(server: LiveServer, user: str, password: str) -> httpx.Response:
    response = await server.http.post("/api/os/auth/login", json={"username": user, "password": password})
    server.http.cookies.clear()
    return response


def refused_naming_the_store(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    body = response.json()
    assert body["error"] == "store_unavailable" and "store" in body["message"], body


def store_alarm(alarms: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((a for a in alarms if a["ruleId"] == STORE_ALARM_KEY), None)


def journal_of_store_alarm(db_path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        return [row[0] for row in db.execute("SELECT event FROM alarm_journal WHERE rule_id = ? ORDER BY id",
                                             (STORE_ALARM_KEY,))]


def stored_trips(db_path: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        return db.execute("SELECT origin, status FROM commands WHERE endpoint_id = ? AND origin = 'interlock'",
                          (HLT_HEATER,)).fetchall()


def audit_of_trips(db_path: Path) -> list[tuple[str, str]]:
    """The audit rows of the heater's interlock trips (stored with the command, in its transactions)."""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        return db.execute("SELECT a.action, a.result FROM audit a JOIN commands c ON a.command_id = c.id "
                          "WHERE c.endpoint_id = ? AND c.origin = 'interlock' ORDER BY a.id", (HLT_HEATER,)).fetchall()


def telemetry_rows_since(db_path: Path, since: float) -> int:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        return db.execute("SELECT count(*) FROM telemetry_readings WHERE server_ts >= ?", (since,)).fetchone()[0]


async def refuses_whole_then_resumes(server: LiveServer, db_path: Path, start_fault: Fault, end_fault: Fault) -> None:
    rt = server.runtime
    ada = (await sign_in(server, "ada", "ada-secret-12")).cookies
    assert ada
    heater_on = await server.http.post("/api/os/command", json={"endpointId": HLT_HEATER, "value": True}, cookies=ada)
    assert heater_on.status_code == 202, heater_on.text
    await wait_for(lambda: server.sim.model.vessels["hlt"].heater_enabled is True, timeout=15)

    await start_fault()
    fault_began = time.time()
    await wait_for(lambda: rt.alarms.is_active(STORE_ALARM_KEY), timeout=15)
    state = rt.plant.states[LEVEL]
    seen = state.seq
    await wait_for(lambda: state.seq > seen + 2)  # readings go on: the plant is alive and polling
    server.sim.model.vessels["hlt"].volume_l = 5.0  # the HLT drains below its level switch: the interlock trips
    await wait_for(lambda: server.sim.model.vessels["hlt"].heater_enabled is False, timeout=15)

    health = (await server.http.get("/api/os/health", cookies=ada)).json()
    assert health["database"]["writable"] is False

    command_id = f"during-fault-{uuid.uuid4().hex[:8]}"
    refused_naming_the_store(await server.http.post(
        "/api/os/command", json={"endpointId": V1, "value": True, "commandId": command_id}, cookies=ada))
    assert (await server.http.get(f"/api/os/commands/{command_id}", cookies=ada)).status_code == 404  # not kept
    sessions = len(rt.auth._sessions)
    refused_naming_the_store(await sign_in(server, "olga", "olga-secret-1"))
    assert len(rt.auth._sessions) == sessions  # no session half-made
    refused_naming_the_store(await server.http.patch("/api/os/users/olga", json={"role": "viewer"}, cookies=ada))
    alarms = (await server.http.get("/api/os/alarms", cookies=ada)).json()
    alarm = store_alarm(alarms)
    assert alarm is not None and alarm["active"] and "cannot be written" in alarm["message"], alarms
    refused_naming_the_store(await server.http.post(f"/api/os/alarms/{alarm['alarmId']}/ack", json={}, cookies=ada))
    assert not rt.alarms.current[alarm["alarmId"]].acked

    await end_fault()
    await wait_for(lambda: not rt.alarms.is_active(STORE_ALARM_KEY), timeout=30)
    await wait_for(lambda: rt.history_writer.pending < 1000 and rt.history_writer.retry_delay == 0, timeout=15)
    assert telemetry_rows_since(db_path, fault_began) > 0  # the history held during the fault is written
    await rt.db.barrier()
    assert journal_of_store_alarm(db_path)[:2] == ["raised", "cleared"]  # journalled, though raised in the fault
    assert ("interlock", "succeeded") in stored_trips(db_path)  # the trip's record, held, is written too
    trip_audit = audit_of_trips(db_path)  # and its audit rows, each written once as a new row
    assert ("command.request", "queued") in trip_audit and ("command.result", "succeeded") in trip_audit, trip_audit
    assert (await server.http.get(f"/api/os/commands/{command_id}", cookies=ada)).status_code == 404
    assert next(u for u in rt.auth.list_users() if u["username"] == "olga")["role"] == "operator"

    assert (await sign_in(server, "olga", "olga-secret-1")).status_code == 200
    answer = await server.http.post("/api/os/command", json={"endpointId": V1, "value": True}, cookies=ada)
    assert answer.status_code == 202, answer.text
    assert (await server.http.post(f"/api/os/alarms/{alarm['alarmId']}/ack", json={}, cookies=ada)).status_code == 200
    with rt.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == 0  # a failed write is an error, not SIGBUS


async def test_read_only_store_refuses_writes_with_503_and_resumes(tmp_path: Path) -> None:
    db_path = tmp_path / "bevforge.db"
    async with brewhouse(db_path) as server:
        read_only = False

        def each_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            dbapi_connection.execute(f"PRAGMA query_only={'ON' if read_only else 'OFF'}")

        event.listen(server.runtime.db.engine, "checkout", each_checkout)

        async def start() -> None:
            nonlocal read_only
            read_only = True

        async def end() -> None:
            nonlocal read_only
            read_only = False

        await refuses_whole_then_resumes(server, db_path, start, end)


async def test_store_locked_by_another_process_refuses_writes_with_503_and_resumes(tmp_path: Path) -> None:
    db_path = tmp_path / "bevforge.db"
    async with brewhouse(db_path) as server:
        holder: asyncio.subprocess.Process | None = None
        script = ("import sqlite3, sys; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
                  "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read(); db.rollback()")

        async def start() -> None:
            nonlocal holder
            holder = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(db_path),
                                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert holder.stdout is not None
            assert (await holder.stdout.readline()).strip() == b"locked"

        async def end() -> None:
            assert holder is not None and holder.stdin is not None
            holder.stdin.close()
            await holder.wait()

        try:
            await refuses_whole_then_resumes(server, db_path, start, end)
        finally:
            if holder is not None and holder.returncode is None:
                holder.kill()
                await holder.wait()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Any:
    """A 6 MB tmpfs of its own (root only: tests run as root here; skipped where mount is refused)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_full_disk_refuses_writes_with_503_and_resumes(tiny_disk: Path) -> None:
    db_path = tiny_disk / "bevforge.db"
    filler = tiny_disk / "filler"
    async with brewhouse(db_path) as server:

        async def start() -> None:
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            try:
                for chunk in (65536, 4096, 1):  # to the last byte: ENOSPC ends each size
                    with contextlib.suppress(OSError):
                        while True:
                            os.write(fd, b"\0" * chunk)
            finally:
                os.close(fd)

        async def end() -> None:
            filler.unlink()

        await refuses_whole_then_resumes(server, db_path, start, end)
