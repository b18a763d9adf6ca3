"""Fixtures shared by the suites: a live server over the tests' fixture brewhouse (simulated hardware).

The suites build their plant from tests/fixtures/plant.yaml, never from the shipped config.yaml (the
technician's sample, free to change). As a safety net, `python main.py` started by a test without
`--config` also reads the fixture: BEVFORGE_CONFIG is set for the whole run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresCluster, drop_test_databases, session_cluster, stop_session_cluster
from tests.support.server import PLANT_FIXTURE, LiveServer, brewhouse_config, build_runtime, free_port


def pytest_configure(config: pytest.Config) -> None:
    os.environ["BEVFORGE_CONFIG"] = str(PLANT_FIXTURE)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_session_cluster()  # the throwaway PostgreSQL of this run, if one was started


@pytest.fixture(autouse=True, scope="module")
def _drop_postgres_databases() -> Iterator[None]:
    """On a PostgreSQL run (BEVFORGE_TEST_DB=postgresql) the fresh databases of a test file's tests are dropped
    after the file (not after each test: a module-scoped server keeps its database across the file's tests)."""
    yield
    drop_test_databases()


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Forget the statements cached per engine after each test. SQLAlchemy keeps the ORM's compiled
    statements per mapped class (up to 100 each) and the history writer its multi-row INSERTs (16), both
    keyed by the engine's dialect, and a dialect holds its engine's listeners and through them the test's
    whole runtime (plant, simulator, store): a worker kept up to a hundred finished runtimes alive, and
    every garbage collection (NiceGUI's user fixture runs two per test) walked them, seconds per screen
    test late in a run."""
    from sqlmodel import SQLModel

    from bevforge.store import writer

    for mapper in SQLModel._sa_registry.mappers:
        mapper.__dict__.pop("_compiled_cache", None)  # a memoized property: rebuilt empty on next use
    writer._multi_row_insert.cache_clear()


@pytest.fixture(scope="session")
def postgres() -> PostgresCluster:
    """A real PostgreSQL server for this run (started on first use, stopped at the end of the session)."""
    return session_cluster()


@pytest.fixture
def postgres_url(postgres: PostgresCluster) -> Iterator[str]:
    """A fresh, empty database on the run's PostgreSQL server, dropped after the test."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url.rsplit("/", 1)[1])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`: `-n 2 --dist loadfile --no-loadscope-reorder`), hand out the
    long modules first: those holding a test marked slow, the reliability runs (kill -9 cycles of
    minutes) before the others. A long module handed out last would run alone at the end while the
    other worker idles. A plain run keeps the collection order."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    slow_modules = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::")[0]
        if module not in slow_modules:
            return 2
        return 0 if module.startswith("tests/reliability/") else 1

    items.sort(key=rank)  # stable: each module's tests keep their order, every worker sorts alike


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """The fixture brewhouse on a real HTTP server with a real SQLite file in tmp_path (or a fresh PostgreSQL
    database on a PostgreSQL run: tests/support/postgres.py)."""
    live = LiveServer(build_runtime(brewhouse_config(), tmp_path / "bevforge.db"), free_port())
    await live.start()
    await _wait_online(live)
    try:
        yield live
    finally:
        await live.stop()


async def _wait_online(live: LiveServer) -> None:
    from tests.support.server import wait_for

    await wait_for(lambda: all(live.runtime.plant.device_online.values()))
