"""Store-and-forward (docs/mqtt.md "Store-and-forward"): a site's history reaches the centre complete and once.

Real parts: Mosquitto (tests/support/mosquitto.py), the fixture brewhouse as the site (real Modbus, its own
SQLite file), the centre on a real PostgreSQL server (tests/support/postgres.py). The broker is stopped while
the site goes on; a centre is killed with SIGKILL while a second one on the same database goes on; afterwards
the centre's history of every forwarded endpoint is the site's history, row for row, each row once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest
import yaml
from sqlalchemy import create_engine, text

from bevforge.config import parse_config
from bevforge.domain import Actor, Quality
from bevforge.mqtt.forward import ALARM_KEY
from bevforge.runtime import Runtime
from bevforge.store import create_schema, make_engine
from bevforge.store.forward_rows import (
    forward_mark,
    newest_audit_id,
    newest_history_id,
    newest_journal_id,
    take_forwarded,
    take_forwarded_events,
    watermark,
)
from bevforge.tasks import stop_task
from drivers import driver_factories
from tests.support.mosquitto import ACL, Mosquitto, Watcher
from tests.support.server import LiveServer, brewhouse_config, build_runtime, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
USERS = {"bevforge": "plant-secret-1", "central": "central-secret-1", "cellar": "cellar-secret-1"}
# the second site, cellar, owns its tree as the first owns bevforge/test (tests/support/mosquitto.py ACL)
CENTRAL_ACL = ACL + ("\nuser central\ntopic readwrite bevforge/central/#\n"
                     "\nuser cellar\ntopic readwrite bevforge/cellar/#\n"
                     "\npattern read bevforge/cellar/#\npattern write bevforge/cellar/cmd/%u/#\n")
SECOND = 1000  # the second site's endpoints at the centre: its endpoint id there + this
SHOWN = {"hlt_temperature": 10, "hlt_setpoint": 12, "mlt_temperature": 20, "bk_heater": 31}  # site name → centre id
FORWARD = {"batch_rows": 40, "window_batches": 3, "ack_timeout_s": 1.0, "alarm_after_s": 2.0}
OUTAGE_S = 30.0  # the broker is down while the site stores this much of its own history


# -- the store: a batch is stored once; a gap is refused ------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def centre_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'centre.db'}"
    return str(request.getfixturevalue("postgres_url"))


def rows_of(engine: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT endpoint_id, value, quality, server_ts FROM telemetry_readings ORDER BY server_ts, endpoint_id"))]


def test_a_batch_sent_twice_is_stored_once_and_one_that_does_not_join_on_is_refused(centre_url: str) -> None:
    engine = make_engine(centre_url)
    create_schema(engine)
    batch = [(1, 10, 20.5, "good", None, 1000.0), (2, None, 1.0, "good", None, 1000.0),  # not shown here: skipped
             (3, 12, 66.0, "good", 999.5, 1000.5)]
    assert take_forwarded(engine, "cellar", "store-a", 0, 3, batch) == (3, False)
    assert take_forwarded(engine, "cellar", "store-a", 0, 3, batch) == (3, False)  # a re-send: nothing new
    assert take_forwarded(engine, "cellar", "store-a", 2, 4, [(3, 12, 66.0, "good", 999.5, 1000.5),
                                                              (4, 10, 20.6, "good", None, 1001.0)]) == (4, False)
    assert take_forwarded(engine, "cellar", "store-a", 7, 9, [(8, 10, 21.0, "good", None, 1003.0)]) == (4, True)
    assert rows_of(engine) == [(10, 20.5, "good", 1000.0), (12, 66.0, "good", 1000.5), (10, 20.6, "good", 1001.0)]
    # a site whose database was replaced (another store name) counts from the start, apart from the first
    assert take_forwarded(engine, "cellar", "store-b", 0, 1, [(1, 10, 30.0, "good", None, 2000.0)]) == (1, False)
    assert watermark(engine, "cellar", "store-a") == 4 and watermark(engine, "cellar", "store-b") == 1
    engine.dispose()


def test_a_site_s_events_are_stored_once_in_their_own_tables_and_a_gap_is_refused(centre_url: str) -> None:
    engine = make_engine(centre_url)
    create_schema(engine)
    when = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)

    def entry(n: int) -> dict[str, Any]:
        return {"site_id": n, "time": when + timedelta(seconds=n), "alarm_id": 7, "rule_id": "hlt_high",
                "event": "raised", "user": "system", "comment": None, "value": {"v": n}, "state": "unacknowledged",
                "priority": "high", "message": f"HLT high {n}", "node": "HLT"}

    assert take_forwarded_events(engine, "cellar", "store-a", "alarm_journal", 0, 2, [entry(1), entry(2)]) == (2, False)
    assert take_forwarded_events(engine, "cellar", "store-a", "alarm_journal", 0, 3,
                                 [entry(1), entry(2), entry(3)]) == (3, False)  # a re-send: only 3 is new
    assert take_forwarded_events(engine, "cellar", "store-a", "alarm_journal", 5, 6, [entry(6)]) == (3, True)
    audit = {"site_id": 1, "time": when, "user": "brewer", "role": "operator", "station": "10.0.0.9",
             "action": "alarm.ack", "target": "hlt_high", "old": None, "new": None, "result": "ok",
             "command_id": None, "detail": None}
    assert take_forwarded_events(engine, "cellar", "store-a", "audit", 0, 1, [audit]) == (1, False)
    assert watermark(engine, "cellar", "store-a", "alarm_journal") == 3
    assert watermark(engine, "cellar", "store-a", "audit") == 1 and watermark(engine, "cellar", "store-a") == 0
    with engine.connect() as conn:
        journal = [tuple(r) for r in conn.execute(text(
            "SELECT site, site_id, message, node FROM site_alarm_journal ORDER BY site_id"))]
        audited = [tuple(r) for r in conn.execute(text("SELECT site, site_id, action FROM site_audit"))]
    assert journal == [("cellar", n, f"HLT high {n}", "HLT") for n in (1, 2, 3)]
    assert audited == [("cellar", 1, "alarm.ack")]
    engine.dispose()


def test_two_central_instances_storing_the_same_batch_at_once_store_it_once(postgres_url: str) -> None:
    engines = [make_engine(postgres_url) for _ in range(2)]
    create_schema(engines[0])
    batch = [(n, 10, float(n), "good", None, 1000.0 + n) for n in range(1, 501)]
    start = threading.Barrier(2)
    answers: list[tuple[int, bool]] = []

    def centre(engine: Any) -> None:
        start.wait()
        answers.append(take_forwarded(engine, "cellar", "store-a", 0, 500, batch))

    threads = [threading.Thread(target=centre, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [(500, False), (500, False)]
    assert len(rows_of(engines[0])) == 500
    for engine in engines:
        engine.dispose()


# -- a site and a centre on a real broker ---------------------------------------------------------------------

@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path / "mosquitto", USERS, acl=CENTRAL_ACL)
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


@contextlib.asynccontextmanager
async def edge_site(db_path: Path, mqtt: dict[str, Any]) -> AsyncIterator[Runtime]:
    """The fixture brewhouse as an edge site with this `mqtt:` section, started and its devices online."""
    def adjust(doc: dict[str, Any]) -> None:
        doc["mqtt"] = mqtt

    runtime = build_runtime(brewhouse_config(adjust), db_path)
    await runtime.start()
    try:
        await wait_for(lambda: all(runtime.plant.device_online.values()), timeout=15)
        yield runtime
    finally:
        await runtime.stop()


@pytest.fixture
async def site(tmp_path: Path, broker: Mosquitto) -> AsyncIterator[Runtime]:
    async with edge_site(tmp_path / "site.db",
                         broker.settings(users={"central": {"role": "operator"}}, forward=FORWARD)) as runtime:
        yield runtime


def centre_document(broker: Mosquitto, client_id: str = "central",
                    sites: tuple[str, ...] = ("test",)) -> dict[str, Any]:
    """A central panel showing four endpoints of each site (the n-th site's ids + n × SECOND, named
    `<site>_<name>` after the first), with each site's history forwarded."""
    def endpoint(n: int, site: str, name: str, kind: str, **more: Any) -> dict[str, Any]:
        return {"id": SHOWN[name] + n * SECOND, "name": name if n == 0 else f"{site}_{name}",
                "node": name.split("_")[0].upper(), "device": f"site_{site}", "kind": kind, "stale_after_s": 30,
                "address": {"endpoint": name}, **more}

    endpoints = []
    for n, site in enumerate(sites):
        endpoints += [endpoint(n, site, "hlt_temperature", "temperature", unit="°C"),
                      endpoint(n, site, "hlt_setpoint", "setpoint", unit="°C", writable=True,
                               range={"min": 0, "max": 99}),
                      endpoint(n, site, "mlt_temperature", "temperature", unit="°C"),
                      endpoint(n, site, "bk_heater", "heater", data_type="bool", writable=True, safe_value=False)]
    return {
        "site": {"name": "Central panel"},
        "nodes": [{"id": "HLT", "name": "HLT"}, {"id": "MLT", "name": "MLT"}, {"id": "BK", "name": "BK"}],
        "devices": [{"id": f"site_{site}", "driver": "site", "history": "forwarded", "settings": {"site": site}}
                    for site in sites],
        "endpoints": endpoints,
        "simulator": {"enabled": False},
        "mqtt": broker.settings(site="central", username="central", password_env="BEVFORGE_TEST_CENTRAL_PASSWORD",
                                client_id=client_id),
    }


@pytest.fixture
async def cellar(tmp_path: Path, broker: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runtime]:
    """A second edge site, `cellar`: the fixture brewhouse again, its own simulator, database and broker user."""
    monkeypatch.setenv("BEVFORGE_TEST_CELLAR_PASSWORD", USERS["cellar"])
    mqtt = broker.settings(site="cellar", username="cellar", password_env="BEVFORGE_TEST_CELLAR_PASSWORD",
                           users={"central": {"role": "operator"}}, forward=FORWARD)
    async with edge_site(tmp_path / "cellar.db", mqtt) as runtime:
        yield runtime


@pytest.fixture
async def centre_of_two(tmp_path: Path, broker: Mosquitto, site: Runtime, cellar: Runtime, postgres_url: str,
                        monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runtime]:
    monkeypatch.setenv("BEVFORGE_TEST_CENTRAL_PASSWORD", USERS["central"])
    document = centre_document(broker, sites=("test", "cellar"))
    config = parse_config(yaml.safe_dump(document, allow_unicode=True), "central.yaml")
    runtime = Runtime(config, postgres_url, driver_factories(config)[0])
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


@pytest.fixture
async def centre(tmp_path: Path, broker: Mosquitto, site: Runtime, postgres_url: str,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runtime]:
    monkeypatch.setenv("BEVFORGE_TEST_CENTRAL_PASSWORD", USERS["central"])
    config = parse_config(yaml.safe_dump(centre_document(broker), allow_unicode=True), "central.yaml")
    factories, _ = driver_factories(config)
    runtime = Runtime(config, postgres_url, factories)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


def site_rows(site: Runtime, up_to: int | None = None, offset: int = 0) -> Counter[tuple[int, Any, str, float]]:
    """The site's history of the endpoints the centre shows (rows up to id `up_to`), under the centre's ids
    (the site's id + `offset`)."""
    with site.db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT e.name, t.value, t.quality, t.server_ts FROM telemetry_readings t JOIN endpoints e "
            "ON e.id = t.endpoint_id WHERE t.id <= :up_to"), {"up_to": up_to if up_to is not None else 2**62})
        return Counter((SHOWN[name] + offset, value, quality, ts) for name, value, quality, ts in rows
                       if name in SHOWN)


def centre_rows(url: str) -> Counter[tuple[int, Any, str, float]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return Counter(tuple(r) for r in conn.execute(text(  # type: ignore[misc]
                "SELECT endpoint_id, value, quality, server_ts FROM telemetry_readings")))
    finally:
        engine.dispose()


async def assert_complete_once(site: Runtime, url: str, up_to: int,
                               offset: int = 0) -> Counter[tuple[int, Any, str, float]]:
    """The centre holds every forwarded row of the site up to `up_to`, each once, and nothing the site lacks
    (the site's endpoints at the centre: its ids + `offset`)."""
    ids = {eid + offset for eid in SHOWN.values()}
    stored = Counter({row: n for row, n in centre_rows(url).items() if row[0] in ids})
    await site.history_writer.flush()
    everything = site_rows(site, offset=offset)
    missing = site_rows(site, up_to, offset) - stored
    assert not missing, f"rows missing at the centre: {sorted(missing)[:20]} of {sum(missing.values())}"
    assert not stored - everything, "rows at the centre the site does not have (or has fewer times)"
    assert max(everything.values()) == 1 and max(stored.values()) == 1
    return stored


async def caught_up(site: Runtime, centre_url: str, timeout: float = 60, name: str = "test") -> int:
    """Wait until the centre's watermark has reached the site's newest stored row; that row's id."""
    await site.history_writer.flush()
    newest = newest_history_id(site.db.engine)
    assert site.mqtt is not None and site.mqtt.forwarder is not None
    store = site.mqtt.forwarder.store
    engine = create_engine(centre_url)
    try:
        await wait_for(lambda: watermark(engine, name, store) >= newest, timeout=timeout, interval=0.2)
    finally:
        engine.dispose()
    return newest


def without(entry: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in keys}


async def events_caught_up(site: Runtime, centre_url: str, name: str,
                           timeout: float = 60) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Wait until the centre's watermarks of the site's alarm journal and audit journal reach the site's newest
    entries; those entries (newest first, as the site's REST lists them) up to there."""
    await site.db.barrier()
    assert site.mqtt is not None and site.mqtt.forwarder is not None
    store = site.mqtt.forwarder.store
    newest = {"alarm_journal": newest_journal_id(site.db.engine), "audit": newest_audit_id(site.db.engine)}
    engine = create_engine(centre_url)
    try:
        await wait_for(lambda: all(watermark(engine, name, store, stream) >= up_to for stream, up_to in newest.items()),
                       timeout=timeout, interval=0.2)
    finally:
        engine.dispose()
    journal = [e for e in await site.alarms.journal(None, limit=100_000) if e["id"] <= newest["alarm_journal"]]
    audit = [e for e in await site.audit.query(limit=100_000) if e["id"] <= newest["audit"]]
    return journal, audit


async def test_the_broker_stopped_for_30_s_two_sites_go_on_and_the_centre_gets_every_sample_once(
        site: Runtime, cellar: Runtime, centre_of_two: Runtime, broker: Mosquitto, postgres_url: str) -> None:
    centre, sites = centre_of_two, ((site, "test", 0), (cellar, "cellar", SECOND))
    for edge, name, _ in sites:
        await caught_up(edge, postgres_url, name=name)
    await wait_for(lambda: all(centre.plant.states[10 + n].quality is Quality.GOOD for n in (0, SECOND)), timeout=10)
    ingested = [edge.plant.readings_ingested for edge, _, _ in sites]

    await broker.stop_async()
    stopped_at = site.plant.states[10].server_time
    assert stopped_at is not None
    # the centre shows both sites stale, never live; the sites keep polling, storing and alarming
    await wait_for(lambda: not any(centre.plant.device_online.values()), timeout=15)
    assert all(centre.plant.states[10 + n].quality is not Quality.GOOD for n in (0, SECOND))
    for edge, _, _ in sites:
        await wait_for(lambda edge=edge: edge.alarms.is_active(ALARM_KEY), timeout=15)  # its forwarding alarm
        # an operator at the site acknowledges it meanwhile: an alarm-journal and an audit entry, kept there
        alarm = next(a for a in edge.alarms.current.values() if a.rule_id == ALARM_KEY)
        edge.alarms.ack(alarm.id, Actor(user="brewer", station="10.0.0.9", role="operator"), "broker down, known")

    def outage_stored() -> bool:
        newest = [edge.plant.states[10].server_time for edge, _, _ in sites]
        return all(t is not None and (t - stopped_at).total_seconds() >= OUTAGE_S for t in newest)

    await wait_for(outage_stored, timeout=OUTAGE_S + 30, interval=0.5)
    for (edge, _, _), before in zip(sites, ingested, strict=True):
        assert edge.plant.readings_ingested > before + OUTAGE_S  # every endpoint polled about once a second
        assert all(edge.plant.device_online.values())

    await broker.start_async()
    for edge, name, offset in sites:
        newest = await caught_up(edge, postgres_url, timeout=90, name=name)
        await wait_for(lambda edge=edge: not edge.alarms.is_active(ALARM_KEY), timeout=15)
        stored = await assert_complete_once(edge, postgres_url, newest, offset)
        during = [ts for _, _, _, ts in stored if stopped_at.timestamp() < ts < stopped_at.timestamp() + OUTAGE_S]
        assert len(during) >= len(SHOWN) * (OUTAGE_S - 2)  # the outage's samples, about one a second each
    await wait_for(lambda: all(centre.plant.device_online.values()), timeout=15)
    # the sites' events too: each site's alarm journal and audit journal at the centre, entry for entry, once
    for edge, name, _ in sites:
        journal, audit = await events_caught_up(edge, postgres_url, name)
        at_centre = await centre.alarms.site_journal(None, name, limit=100_000)
        assert [e["site"] for e in at_centre] == [name] * len(at_centre)
        assert [without(e, "site", "node") for e in at_centre] == [e for e in journal]
        acked = [e for e in at_centre if e["ruleId"] == ALARM_KEY and e["event"] == "acked"]
        assert [(e["user"], e["comment"]) for e in acked] == [("brewer", "broker down, known")]
        audited = await centre.audit.site_query(name, limit=100_000)
        assert [without(e, "site") for e in audited] == audit
        assert any(e["action"] == "alarm.ack" and e["user"] == "brewer" for e in audited)


async def test_the_centre_does_not_store_the_live_values_of_a_forwarded_site_twice(
        site: Runtime, centre: Runtime, postgres_url: str) -> None:
    newest = await caught_up(site, postgres_url)
    await wait_for(lambda: centre.plant.states[10].quality is Quality.GOOD, timeout=10)
    await centre.history_writer.flush()
    await assert_complete_once(site, postgres_url, newest)
    assert centre.history_writer.rows_written == 0  # the live readings updated the current values only


class CentreProcess:
    """`python main.py` as a central instance (its own MQTT client id and port) on the shared database."""

    def __init__(self, folder: Path, broker: Mosquitto, url: str, client_id: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "central.yaml"
        self.config.write_text(yaml.safe_dump(centre_document(broker, client_id), allow_unicode=True), "utf-8")
        self.url, self.port, self.log = url, free_port(), folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST" and not k.startswith("NICEGUI_")}
        env["BEVFORGE_TEST_CENTRAL_PASSWORD"] = USERS["central"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "main.py", "--port", str(self.port), "--db", self.url, "--config", str(self.config),
                 "--log-level", "warning"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    async def history(self) -> dict[str, Any] | None:
        """The site driver's forwarded-history figures from /api/os/health (None until it answers)."""
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                health = (await http.get(f"http://127.0.0.1:{self.port}/api/os/health")).json()
        except httpx.HTTPError:
            return None
        history = health["drivers"][0].get("history")
        return None if history is None else history["streams"].get("telemetry")

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, whatever was under way is cut off."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)
            self.process = None

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.process.wait, 60)
        self.process = None


@pytest.mark.slow
async def test_two_centres_on_one_database_and_kill_9_lose_no_sample_and_store_none_twice(
        tmp_path: Path, site: Runtime, broker: Mosquitto, postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    create_schema(engine)  # both instances start on a migrated database (each would migrate it once, locked)
    engine.dispose()
    centres = [CentreProcess(tmp_path / name, broker, postgres_url, f"central-{name}") for name in ("a", "b")]
    try:
        for centre in centres:
            centre.start()
        await caught_up(site, postgres_url, timeout=90)
        for centre in centres:  # both took the site's batches (the first to commit one stored it)
            figures = None
            for _ in range(300):
                figures = await centre.history()
                if figures is not None and figures["batches"] > 0:
                    break
                await asyncio.sleep(0.1)
            assert figures is not None and figures["batches"] > 0 and figures["watermark"] > 0

        centres[0].kill()  # one instance dies mid-stream; the other keeps storing
        await caught_up(site, postgres_url, timeout=60)
        centres[1].kill()  # then the other: nobody stores while the site goes on
        assert site.mqtt is not None and site.mqtt.forwarder is not None
        history = site.mqtt.forwarder.streams["telemetry"]
        before = history.acked
        await wait_for(lambda: newest_history_id(site.db.engine) > before + 20 * len(SHOWN), timeout=60, interval=0.2)
        assert history.acked >= before  # a dead centre acknowledges nothing new, nothing is lost

        centres[0].start()  # back after a SIGKILL: its persistent session and the site's re-send
        newest = await caught_up(site, postgres_url, timeout=90)
        await assert_complete_once(site, postgres_url, newest)
    finally:
        for centre in centres:
            await centre.stop()


async def test_the_site_moves_on_only_on_a_mapped_user_s_ack_of_its_own_store(site: Runtime, broker: Mosquitto) -> None:
    """An ack is a promise that the rows are stored: only a centre's user (mqtt.forward.centres) may give it, for
    this database's store; the batches themselves are what a subscriber of <root>/history sees."""
    assert site.mqtt is not None and site.mqtt.forwarder is not None
    forwarder = site.mqtt.forwarder.streams["telemetry"]
    async with Watcher(broker, "central", "bevforge/test/history") as centre_side:
        _, batch, _ = await centre_side.wait_for(
            lambda topic, body, _: isinstance(body, dict) and body.get("stream") == "telemetry", timeout=15)
        assert batch["type"] == "history" and batch["store"] == forwarder.store and batch["after"] == 0
        assert batch["upTo"] == batch["rows"][-1][0] and len(batch["rows"]) <= FORWARD["batch_rows"]
        first = batch["rows"][0]
        assert isinstance(first[0], int) and isinstance(first[1], str) and isinstance(first[2], str)
        async with Watcher(broker, "bevforge", "bevforge/test/cmd/#") as stranger:
            await stranger.publish("bevforge/test/cmd/bevforge/ack", {"store": forwarder.store, "upTo": 10**9})
            await wait_for(lambda: forwarder.acks_refused == 1, timeout=10)
        await centre_side.publish("bevforge/test/cmd/central/ack", {"store": "another", "upTo": 10**9})
        await wait_for(lambda: forwarder.acks_refused == 2, timeout=10)
        assert forwarder.acked == 0
        await centre_side.publish("bevforge/test/cmd/central/ack", {"store": forwarder.store, "upTo": batch["upTo"]})
        await wait_for(lambda: forwarder.acked == batch["upTo"], timeout=10)
    await site.db.barrier()
    assert forward_mark(site.db.engine) == (forwarder.store, batch["upTo"])  # kept for the next start


async def test_a_centre_that_connects_is_sent_the_backlog_at_once_not_after_the_site_s_resend_wait(
        tmp_path: Path, broker: Mosquitto, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A site that found no centre waits ack_timeout_s (doubling) before sending again; a centre that connects says
    so (`hello`), and the site sends from its last acknowledged row at once. Here the wait is ten minutes."""
    def adjust(doc: dict[str, Any]) -> None:
        doc["mqtt"] = broker.settings(users={"central": {"role": "operator"}}, forward=FORWARD | {"ack_timeout_s": 600})

    edge = build_runtime(brewhouse_config(adjust), tmp_path / "site.db")
    await edge.start()
    try:
        assert edge.mqtt is not None and edge.mqtt.forwarder is not None
        forwarder = edge.mqtt.forwarder.streams["telemetry"]
        await wait_for(lambda: forwarder.batches_sent >= 1, timeout=15)  # sent to nobody: now it waits 600 s
        monkeypatch.setenv("BEVFORGE_TEST_CENTRAL_PASSWORD", USERS["central"])
        config = parse_config(yaml.safe_dump(centre_document(broker), allow_unicode=True), "central.yaml")
        centre = Runtime(config, postgres_url, driver_factories(config)[0])
        await centre.start()
        try:
            newest = await caught_up(edge, postgres_url, timeout=30)
            await wait_for(lambda: forwarder.acked >= newest, timeout=10)  # the ack follows the centre's commit
            assert forwarder.hellos >= 1
        finally:
            await centre.stop()
    finally:
        await edge.stop()


async def test_the_centre_lists_a_site_s_journals_over_rest_and_csv(tmp_path: Path, broker: Mosquitto,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`GET /api/os/alarms/history?site=` and `/api/os/audit?site=`: what the site forwarded, in the local
    journals' shape plus `site` (and `node`, this panel's), newest first, filtered like the local ones."""
    monkeypatch.setenv("BEVFORGE_TEST_CENTRAL_PASSWORD", USERS["central"])
    config = parse_config(yaml.safe_dump(centre_document(broker), allow_unicode=True), "central.yaml")
    centre = Runtime(config, f"sqlite:///{tmp_path / 'centre.db'}", driver_factories(config)[0])
    server = LiveServer(centre, free_port())  # the app starts and stops the runtime
    await server.start()
    try:
        when = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
        journal = [{"site_id": n, "time": when + timedelta(seconds=n), "alarm_id": n, "rule_id": rule,
                    "event": "raised", "user": "system", "comment": None, "value": 81.5, "state": "unacknowledged",
                    "priority": "high", "message": f"test: {rule}", "node": node}
                   for n, (rule, node) in enumerate([("hlt_high", "HLT"), ("=cmd|' /C calc'!A0", None)], start=1)]
        audit = [{"site_id": 5, "time": when, "user": "brewer", "role": "operator", "station": "10.0.0.9",
                  "action": "command.request", "target": "hlt_setpoint", "old": 60, "new": 66, "result": "ok",
                  "command_id": "c-1", "detail": None}]
        await centre.db.write(take_forwarded_events, centre.db.engine, "test", "store-a", "alarm_journal", 0, 2,
                              journal)
        await centre.db.write(take_forwarded_events, centre.db.engine, "test", "store-a", "audit", 0, 5, audit)
        http = server.http
        listed = (await http.get("/api/os/alarms/history", params={"site": "test"})).json()
        assert [(e["site"], e["id"], e["ruleId"], e["node"]) for e in listed] == [
            ("test", 2, "=cmd|' /C calc'!A0", None), ("test", 1, "hlt_high", "HLT")]
        assert listed[1]["time"] == "2026-11-30T06:00:01.000Z" and listed[1]["value"] == 81.5
        only = (await http.get("/api/os/alarms/history", params={"site": "test", "ruleId": "hlt_high"})).json()
        assert [e["id"] for e in only] == [1]
        own = (await http.get("/api/os/alarms/history")).json()
        assert all("site" not in e for e in own) and {e["ruleId"] for e in own}.isdisjoint({"hlt_high"})
        exported = await http.get("/api/os/alarms/history", params={"site": "test", "format": "csv"})
        lines = exported.text.splitlines()
        assert lines[0] == "site,id,time,alarmId,ruleId,event,user,comment,value,state,priority,message,node"
        assert "'=cmd" in lines[1]  # a cell that would be a formula is not one
        assert 'filename="alarm-journal-test.csv"' in exported.headers["content-disposition"]
        audited = (await http.get("/api/os/audit", params={"site": "test"})).json()
        assert audited == [{"site": "test", "id": 5, "time": "2026-11-30T06:00:00.000Z", "user": "brewer",
                            "role": "operator", "station": "10.0.0.9", "action": "command.request",
                            "target": "hlt_setpoint", "old": 60, "new": 66, "result": "ok", "commandId": "c-1",
                            "detail": None}]
        assert (await http.get("/api/os/audit", params={"site": "test", "action": "alarm."})).json() == []
        for path in ("/api/os/alarms/history", "/api/os/audit"):
            refused = await http.get(path, params={"site": "taproom"})
            assert refused.status_code == 404
            assert refused.json()["error"] == "unknown_site" and refused.json()["field"] == "site"
    finally:
        await server.stop()


async def test_a_hello_while_a_batch_is_read_never_labels_those_rows_as_following_on_from_the_start(
        tmp_path: Path, broker: Mosquitto) -> None:
    """A centre's hello (or a gap, or an ack) rewinds the site's position while the next batch is being read from
    the store: that batch must go out labelled with the position it was read from (or not at all), never with the
    rewound one — else the centre takes rows 81…120 as following on from 0 and rows 1…80 are never sent."""
    from bevforge.alarms import AlarmService
    from bevforge.bus import EventBus
    from bevforge.config import MqttForward
    from bevforge.mqtt.forward import Stream, StreamForwarder
    from bevforge.store import Database

    config = brewhouse_config()
    db = Database(f"sqlite:///{tmp_path / 'site.db'}")
    create_schema(db.engine)
    loop = asyncio.get_running_loop()
    forwarder: StreamForwarder | None = None
    hello_at = {80}  # the read of the third batch (rows 81…120): a centre says hello meanwhile

    def rows(engine: Any, after: int, limit: int) -> list[list[Any]]:
        if after in hello_at:
            hello_at.clear()
            assert forwarder is not None
            loop.call_soon_threadsafe(forwarder.take_ack, "central", {"hello": True})  # before this read returns
        return [[n, "HLT", "hlt_temperature", 60.0, "good", None, 1000.0 + n]
                for n in range(after + 1, min(after + limit, 400) + 1)]

    stream = Stream("telemetry", "History", rows, lambda row: int(row[0]), lambda engine: 400)
    settings = MqttForward(batch_rows=40, window_batches=3, ack_timeout_s=600)
    forwarder = StreamForwarder(settings, "bevforge/test", 1, db, AlarmService(config, EventBus(), db, None),
                                frozenset({"central"}), stream)
    await forwarder.start()
    async with Watcher(broker, "central", "bevforge/test/history") as centre_side, \
            aiomqtt.Client("127.0.0.1", broker.port, username="bevforge", password=USERS["bevforge"]) as client:
        sending = asyncio.create_task(forwarder.run(client))
        try:
            await wait_for(lambda: forwarder.hellos == 1 and len(centre_side.messages) >= 5, timeout=15)
            # an ack for each batch, as the bridge hands a centre's on: the site goes on to the end
            for upto in range(40, 401, 40):
                forwarder.take_ack("central", {"store": forwarder.store, "upTo": upto})
                await wait_for(lambda upto=upto: any(orjson.loads(m.payload)["upTo"] == min(400, upto + 120)
                                                     for m in centre_side.messages), timeout=15)
        finally:
            await stop_task(sending)
            await forwarder.stop()
    batches = [orjson.loads(m.payload) for m in centre_side.messages]
    for batch in batches:  # every batch says truly where it follows on from
        assert batch["rows"][0][0] == batch["after"] + 1 and batch["rows"][-1][0] == batch["upTo"]
    db.engine.dispose()
