"""A real BevForge server on a free loopback port inside the test's event loop."""

from __future__ import annotations

import asyncio
import copy
import functools
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from bevforge.app import create_app
from bevforge.config import PlantConfig, parse_config
from bevforge.runtime import Runtime
from drivers import driver_factories
from drivers.sim.inprocess import SimulatedBrewhouse
from drivers.sim.ports import use_simulator_ports
from tests.support.postgres import test_db_url

ROOT = Path(__file__).resolve().parents[2]
# The tests' own brewhouse: the shipped config.yaml is the technician's sample and may change freely.
PLANT_FIXTURE = ROOT / "tests" / "fixtures" / "plant.yaml"
DEFAULT_CONFIG = PLANT_FIXTURE  # the former name, kept so tests written against it keep working


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# libyaml when installed: the pure-Python loader and dumper took ~0.4 s per server fixture, read and
# written three times per test; the fixture file is read once per process and handed out as copies
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@functools.cache
def _fixture_document(mtime_ns: int) -> dict[str, Any]:
    return yaml.load(PLANT_FIXTURE.read_text(encoding="utf-8"), Loader=_SafeLoader)  # a safe loader


def config_document() -> dict[str, Any]:
    """The tests' fixture brewhouse (tests/fixtures/plant.yaml) as a dict for tests to adjust: a fresh copy."""
    return copy.deepcopy(_fixture_document(PLANT_FIXTURE.stat().st_mtime_ns))


def dump_yaml(doc: Any) -> str:
    """`yaml.safe_dump(doc, allow_unicode=True)`, through libyaml when it is installed."""
    return yaml.dump(doc, Dumper=_SafeDumper, allow_unicode=True)


def write_plant(path: Path, doc: dict[str, Any] | None = None) -> Path:
    """Write `doc` (default: the fixture brewhouse) to `path` for a `main.py --config` subprocess."""
    path.write_text(dump_yaml(config_document() if doc is None else doc), encoding="utf-8")
    return path


def brewhouse_config(adjust: Callable[[dict[str, Any]], None] | None = None) -> PlantConfig:
    """The fixture brewhouse with short timeouts so failure paths finish quickly.

    Its devices talk real Modbus TCP and serial to the simulator, which the drivers start in the
    test's loop on a free port and a pty under a fresh temporary directory.
    """
    return parse_config(dump_yaml(brewhouse_document(adjust)), "test-config.yaml")


def brewhouse_document(adjust: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """`brewhouse_config`'s document (free simulator ports, short timeouts), for a test that writes it
    to a file and edits it (a live config reload)."""
    doc = config_document()
    use_simulator_ports(doc, free_port(), str(Path(tempfile.mkdtemp(prefix="bevforge-sim-")) / "probe"))
    doc["commands"] = {"readback_timeout_s": 1.0, "write_timeout_s": 0.5, "expiry_s": 10}
    doc["store"] = {"flush_interval_s": 0.05}
    for device in doc["devices"]:
        device["comms_timeout_s"] = 1.0
    for rule in doc.get("alarms", []):
        rule.pop("on_delay_s", None)  # delays are table-tested in tests/unit/test_alarm_rules.py
    if adjust is not None:
        adjust(doc)
    return doc


def fed_externally(*endpoint_ids: int) -> Callable[[dict[str, Any]], None]:
    """A config adjustment: these endpoints lose their device and are fed only by the ingest API.

    Readings have one owner (docs/config.md): a device-polled endpoint refuses client readings, so a
    test that exercises REST ingest uses endpoints whose `source` is `external`.
    """
    def adjust(doc: dict[str, Any]) -> None:
        for endpoint in doc["endpoints"]:
            if endpoint["id"] in endpoint_ids:
                endpoint.pop("device", None)
                endpoint.pop("address", None)
                endpoint["source"] = "external"
    return adjust


@functools.cache
def _migrated_template() -> Path:
    from bevforge.store import create_schema, make_engine

    path = Path(tempfile.mkdtemp(prefix="bevforge-schema-")) / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        create_schema(engine)
    finally:
        engine.dispose()
    with sqlite3.connect(path) as conn:  # everything in the main file: the copy needs no -wal beside it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def migrated_sqlite(db_path: Path) -> Path:
    """A new SQLite file at `db_path` holds today's empty schema, copied from one migrated once per process.

    Running the migrations took ~0.2 s of every runtime's start; a file already at the newest revision takes
    the start-up's fast path (bevforge/store/migrate.py `at_head`). An existing file is left as it is; the
    migrations themselves are tested from an empty file in tests/integration/test_migrations.py."""
    if not db_path.exists():
        db_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_migrated_template(), db_path)
    return db_path


class LiveServer:
    def __init__(self, runtime: Runtime, port: int, manage_runtime: bool = True) -> None:
        self.runtime = runtime
        self.manage_runtime = manage_runtime  # False: serve a runtime a fixture already started (and stops)
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws"
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=10)

    @property
    def sim(self) -> SimulatedBrewhouse:
        return self.runtime.attachments["simulator"]

    async def start(self) -> None:
        app = create_app(self.runtime, manage_runtime=self.manage_runtime)
        # a bounded graceful shutdown: a test's open stream or socket must never hang its teardown
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                ws="websockets-sansio", lifespan="on", timeout_graceful_shutdown=3)
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise RuntimeError("server stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        await self.http.aclose()
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            try:
                await asyncio.wait_for(self.task, 30)
            except TimeoutError:
                self.server.force_exit = True
                raise AssertionError("the server did not shut down within 30 s") from None


def build_runtime(config: PlantConfig, db_path: Path) -> Runtime:
    factories, sim = driver_factories(config)
    url = test_db_url(db_path)
    if url.startswith("sqlite:"):
        migrated_sqlite(Path(db_path))
    runtime = Runtime(config, url, factories)
    runtime.attachments["simulator"] = sim
    return runtime


async def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll a cheap in-process predicate until it is truthy (for state reached by other tasks)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError("condition not reached within timeout")
        await asyncio.sleep(interval)


async def wait_for_command(server: LiveServer, command_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """Wait for a command to reach a final status through its own bus events."""
    runtime = server.runtime
    command = await runtime.commands.find(command_id)
    if command is not None and command.status.is_final:
        return (await server.http.get(f"/api/os/commands/{command_id}")).json()
    sub = runtime.bus.subscribe(lambda e: e.type == "command_status" and e.payload["commandId"] == command_id)
    try:
        async with asyncio.timeout(timeout):
            while True:
                command = await runtime.commands.find(command_id)
                if command is not None and command.status.is_final:
                    break
                await sub.get()
    finally:
        sub.close("done")
    return (await server.http.get(f"/api/os/commands/{command_id}")).json()


class ThreadedServer:
    """The app served from its own thread and loop, for synchronous tests (hypothesis, schemathesis)."""

    def __init__(self, runtime: Runtime) -> None:
        import threading

        self.runtime = runtime
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(runtime), host="127.0.0.1", port=self.port, log_level="warning",
                                ws="websockets-sansio", lifespan="on", timeout_graceful_shutdown=3)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="bevforge-test-server", daemon=True)

    def __enter__(self) -> ThreadedServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
