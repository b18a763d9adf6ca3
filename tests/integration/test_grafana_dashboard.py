"""The Grafana dashboard in docs/grafana/bevforge.json (issue 18.4): it imports in one step (valid JSON, both
data sources asked for through `__inputs`), every Prometheus panel names metrics /metrics really exports, and
every SQL panel runs against a real PostgreSQL holding what a running BevForge wrote into it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from bevforge.runtime import Runtime
from drivers import driver_factories
from tests.support.live import ingest
from tests.support.server import LiveServer, brewhouse_config, free_port, wait_for, wait_for_command

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "bevforge.json"
INPUTS = {"DS_PROMETHEUS": "prometheus", "DS_BEVFORGE_POSTGRESQL": "grafana-postgresql-datasource"}
HLT_TEMP, HLT_SETPOINT, V1 = 10, 12, 22


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in doc["panels"] if p["type"] != "row"]


def queries(doc: dict[str, Any], plugin: str) -> list[tuple[str, str]]:
    """(panel title, query) of every target on a data source of `plugin`, and the template variables'."""
    uid = "${" + next(name for name, p in INPUTS.items() if p == plugin) + "}"
    out = []
    for panel in panels(doc):
        for target in panel["targets"]:
            if target["datasource"]["uid"] == uid:
                out.append((panel["title"], target["rawSql"] if "rawSql" in target else target["expr"]))
    for variable in doc["templating"]["list"]:
        if variable["datasource"]["uid"] == uid:
            query = variable["query"]
            out.append((f"${variable['name']}", query["query"] if isinstance(query, dict) else query))
    return out


def test_the_dashboard_imports_in_one_step_asking_for_its_two_data_sources() -> None:
    doc = dashboard()
    assert {i["name"]: i["pluginId"] for i in doc["__inputs"]} == INPUTS
    assert all(i["type"] == "datasource" for i in doc["__inputs"])
    assert doc["uid"] and doc["title"] and "id" not in doc  # an import makes its own id
    used = set(re.findall(r"\$\{(DS_[A-Z_]+)\}", DASHBOARD.read_text(encoding="utf-8")))
    assert used == set(INPUTS)  # every data source reference is an input (no uid of someone else's Grafana)
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(doc):
        assert panel["targets"], panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        plugin = INPUTS[panel["datasource"]["uid"][2:-1]]
        assert panel["datasource"]["type"] == plugin
    assert {v["name"] for v in doc["templating"]["list"]} == {"endpoint", "instance"}
    assert queries(doc, "prometheus") and queries(doc, "grafana-postgresql-datasource")


# -- Grafana's SQL macros, expanded as its PostgreSQL data source documents them --------------------------


def expand(sql: str, start: datetime, end: datetime, interval_s: int, endpoints: list[int]) -> str:
    """The SQL Grafana sends: template variables first ($__interval, a multi-value $endpoint as quoted
    values), then the macros. A macro this does not know is left in and fails the query."""
    sql = sql.replace("$__interval", f"{interval_s}s")
    sql = sql.replace("$endpoint", ",".join(f"'{e}'" for e in endpoints))
    lo, hi = start.timestamp(), end.timestamp()
    sql = re.sub(r"\$__unixEpochFilter\(([^)]+)\)", lambda m: f"{m[1]} >= {lo:.0f} AND {m[1]} <= {hi:.0f}", sql)
    sql = re.sub(r"\$__unixEpochGroupAlias\(([^,]+),\s*(\d+)s\)",
                 lambda m: f'floor({m[1]}/{m[2]})*{m[2]} AS "time"', sql)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    return re.sub(r"\$__timeFilter\(([^)]+)\)",
                  lambda m: f"{m[1]} BETWEEN '{start.strftime(iso)}' AND '{end.strftime(iso)}'", sql)


async def test_every_panel_reads_what_a_running_bevforge_writes_and_exports(postgres_url: str) -> None:
    config = brewhouse_config()
    factories, sim = driver_factories(config)
    runtime = Runtime(config, postgres_url, factories)
    runtime.attachments["simulator"] = sim
    live = LiveServer(runtime, free_port())
    started = datetime.now(UTC) - timedelta(minutes=1)
    await live.start()
    try:
        await wait_for(lambda: all(runtime.plant.device_online.values()))
        done = await live.http.post("/api/os/command", json={"endpointId": V1, "value": True})
        await wait_for_command(live, done.json()["commandId"])
        sim.model.vessels["hlt"].temperature_c = 101.0
        await ingest(live, HLT_TEMP, 101.0)  # a critical HIHI alarm, journalled in the alarms table
        await wait_for(lambda: runtime.alarms.is_active("hlt_temperature_hihi"))
        await runtime.history_writer.flush()
        scrape = (await live.http.get("/metrics")).text
        exported = {s.name for f in text_string_to_metric_families(scrape) for s in f.samples}
    finally:
        await live.stop()
    doc = dashboard()

    for title, expr in queries(doc, "prometheus"):
        named = set(re.findall(r"\b((?:bevforge|process)_[a-z_]+)\b", expr))
        assert named, f"{title}: no metric in {expr}"
        assert named <= exported, f"{title}: {sorted(named - exported)} not on /metrics"

    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            rows: dict[str, list[Any]] = {}
            for title, sql in queries(doc, "grafana-postgresql-datasource"):
                ran = expand(sql, started, datetime.now(UTC) + timedelta(minutes=1), 60, [HLT_TEMP, HLT_SETPOINT])
                assert "$" not in ran, f"{title}: unexpanded {ran}"
                rows[title] = list(conn.execute(text(ran)))
    finally:
        engine.dispose()
    assert ("hlt_temperature (HLT)", HLT_TEMP) in {(r[0], r[1]) for r in rows["$endpoint"]}
    assert {r[1] for r in rows["Endpoint values"]} == {"hlt_temperature", "hlt_setpoint"}  # the chosen two
    assert any(r[1] == "critical" and r[2] == "unacknowledged" for r in rows["Alarms raised"])
