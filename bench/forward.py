"""Store-and-forward catch-up (issue 17): how fast a central panel takes in a site's history after an outage.

    python bench/forward.py [--backlog 100000,500000] [--db sqlite|postgresql]

What `make run-sites` runs, for one site: Mosquitto with passwords and the ACL (scripts/run_sites.py), the site
(the shipped config.yaml with its own simulated brewhouse, `mqtt.forward: {}` with its defaults) and a central
panel made by `python main.py sites central-config`, on SQLite or on a throwaway PostgreSQL server
(tests/support/postgres.py, fsync on). Before the site starts, its database is given a backlog of history rows
no centre has acknowledged — what a broker or centre outage leaves behind: the site's own endpoints, one row a
second each, oldest first. The site then runs (and keeps storing new samples); the centre starts, and the
bench reads the centre's watermark for the site until it passes the backlog's last row.

Reported: the time from the centre's first stored batch to the end of the backlog, the rows a second that
makes, and the time from the centre's start (its own start-up included). All on one 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from run_sites import PASSWORD_ENV, broker_files, site_file  # noqa: E402

from bench.common import Row, free_port, stop_process, table  # noqa: E402
from bevforge.central import central_document  # noqa: E402
from bevforge.config import parse_config  # noqa: E402
from bevforge.store import EndpointRow, TelemetryReading, create_schema, make_engine, sync_endpoints  # noqa: E402
from bevforge.store.writer import insert_rows  # noqa: E402

COMMAND = "python bench/forward.py"


def _backlog(db_url: str, config_path: Path, rows: int) -> None:
    """The site's database with `rows` history rows of its endpoints (one a second each, ending now)."""
    config = parse_config(config_path.read_text(encoding="utf-8"), str(config_path))
    engine = make_engine(db_url)
    create_schema(engine)
    sync_endpoints(engine, (EndpointRow(id=e.id, name=e.name, node=e.node, kind=e.kind.value, unit=e.unit,
                                        data_type=e.data_type.value, writable=e.writable) for e in config.endpoints))
    ids = [e.id for e in config.endpoints]
    start = time.time() - rows / len(ids)
    chunk = 20_000
    with engine.begin() as conn:
        for first in range(0, rows, chunk):
            batch = [{"endpoint_id": ids[n % len(ids)], "value": 20.0 + (n % 97) * 0.1, "quality": "good",
                      "source_ts": None, "server_ts": start + n / len(ids)}
                     for n in range(first, min(rows, first + chunk))]
            insert_rows(conn, TelemetryReading.__table__, batch)  # type: ignore[attr-defined]
    engine.dispose()


def _panel(config: Path, port: int, db_url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(config), "--port", str(port),
                             "--host", "127.0.0.1", "--db", db_url, "--log-level", "warning"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_health(port: int, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"a panel exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/os/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("a panel did not answer within its start-up time")


def catch_up(backlog: int, centre_db: str) -> dict[str, Any]:
    """One run: a site with `backlog` unacknowledged rows, a centre on `centre_db` (sqlite or postgresql)."""
    folder = Path(tempfile.mkdtemp(prefix="bevforge-forward-"))
    cluster = None
    processes: list[subprocess.Popen[bytes]] = []
    try:
        passwords = {"brewhouse": secrets.token_urlsafe(12), "central": secrets.token_urlsafe(12)}
        broker_port = free_port()
        conf = broker_files(folder / "broker", broker_port, passwords)
        processes.append(subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                                          stderr=subprocess.DEVNULL))
        site_config = site_file(folder / "brewhouse", "brewhouse", broker_port, free_port())
        site_db = f"sqlite:///{folder / 'brewhouse' / 'bevforge.db'}"
        _backlog(site_db, site_config, backlog)
        made = [(str(site_config), parse_config(site_config.read_text(encoding="utf-8"), str(site_config)))]
        centre_doc = central_document(made, {"host": "127.0.0.1", "port": broker_port, "site": "central",
                                             "username": "central", "password_env": PASSWORD_ENV})
        centre_config = folder / "central" / "config.yaml"
        centre_config.parent.mkdir(parents=True)
        centre_config.write_text(yaml.safe_dump(centre_doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        if centre_db == "postgresql":
            from tests.support.postgres import PostgresCluster

            cluster = PostgresCluster(durable=True).start()
            centre_url = cluster.create_database("centre")
        else:
            centre_url = f"sqlite:///{folder / 'central' / 'bevforge.db'}"
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        site_port, centre_port = free_port(), free_port()
        site = _panel(site_config, site_port, site_db, env | {PASSWORD_ENV: passwords["brewhouse"]})
        processes.append(site)
        _wait_health(site_port, site)
        centre_started = time.monotonic()
        centre = _panel(centre_config, centre_port, centre_url, env | {PASSWORD_ENV: passwords["central"]})
        processes.append(centre)
        engine = create_engine(centre_url)
        first_at: float | None = None
        first_mark = 0
        deadline = centre_started + 1800
        while True:
            if time.monotonic() > deadline or centre.poll() is not None or site.poll() is not None:
                raise RuntimeError("the centre did not catch up (or a panel exited)")
            try:
                with engine.connect() as conn:
                    mark = conn.execute(text(
                        "SELECT max(last_id) FROM site_watermarks WHERE stream = 'telemetry'")).scalar() or 0
            except Exception:  # the centre has not made its tables yet
                mark = 0
            now = time.monotonic()
            if mark and first_at is None:
                first_at, first_mark = now, mark
            if mark >= backlog:
                break
            time.sleep(0.05)
        engine.dispose()
        assert first_at is not None
        taken = max(now - first_at, 1e-3)
        return {"backlog": backlog, "db": centre_db, "seconds": taken, "rate": (backlog - first_mark) / taken,
                "from_start": now - centre_started}
    finally:
        for process in reversed(processes):
            stop_process(process)
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def rows(backlogs: tuple[int, ...] = (100_000,), centre_db: str = "sqlite") -> list[Row]:
    result = []
    for backlog in backlogs:
        run = catch_up(backlog, centre_db)
        command = f"{COMMAND} --backlog {backlog} --db {centre_db}"
        result.append(Row(f"store-and-forward: a {backlog:,}-row backlog taken in by a centre on {centre_db} "
                          "(batches of 500, 4 ahead)",
                          f"{run['rate']:,.0f} rows/s ({run['seconds']:.1f} s from its first batch, "
                          f"{run['from_start']:.1f} s from its start)", "", None, command))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", default="100000", help="comma-separated backlog sizes (rows)")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite", help="the centre's database")
    args = parser.parse_args()
    measured = rows(tuple(int(n) for n in args.backlog.split(",")), args.db)
    print(table(["measure", "result", "target", "met", "command"], [r.cells() for r in measured]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
