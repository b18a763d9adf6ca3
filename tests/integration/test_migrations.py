"""Schema migrations (issue 17.1): Alembic, run at start-up, on SQLite and on a real PostgreSQL server.

The upgrade test builds a database the way BevForge did before migrations (create_all and a
`schema_version` row), puts rows in it, starts the store on it, and reads every row back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlmodel import Session, SQLModel, select

from bevforge.store import (
    SCHEMA_VERSION,
    AlarmRow,
    CommandRow,
    EndpointRow,
    SchemaVersion,
    TelemetryReading,
    UserRow,
    create_schema,
    make_engine,
)
from bevforge.store.migrate import SchemaTooNew, compare, state
from tests.integration.test_startup import main_py

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
# Indexes the revisions after the baseline add (0002: PostgreSQL's BRIN on history time).
ADDED_SINCE_BASELINE = ("ix_telemetry_time_brin", "ix_rollup_time_brin")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bevforge.db'}"
    return request.getfixturevalue("postgres_url")


def legacy_database(url: str, skip: tuple[str, ...] = ()) -> None:
    """A database as BevForge made it before migrations: create_all, schema_version 1, and rows."""
    engine = make_engine(url)
    tables = [t for name, t in SQLModel.metadata.tables.items() if name not in skip]
    SQLModel.metadata.create_all(engine, tables=tables)
    with engine.begin() as conn:  # today's models less what the later revisions add: main's schema exactly
        for index in ADDED_SINCE_BASELINE:
            conn.execute(text(f"DROP INDEX IF EXISTS {index}"))
        if conn.dialect.name == "postgresql":  # main's (endpoint_id, server_ts) index carried no INCLUDE
            conn.execute(text("DROP INDEX ix_telemetry_endpoint_time"))
            conn.execute(text("CREATE INDEX ix_telemetry_endpoint_time ON telemetry_readings (endpoint_id, server_ts)"))
    with Session(engine) as session:
        session.add(SchemaVersion(version=1, applied_at=T0))
        session.add(EndpointRow(id=10, name="hlt_temperature", node="HLT", kind="temperature", unit="°C",
                                data_type="float", writable=False))
        session.add(UserRow(username="brewer", password_hash="x", role="operator", nodes=["HLT"], created_at=T0,
                            updated_at=T0))
        session.add(CommandRow(id="c-1", endpoint_id=11, requested_value=True, status="completed", user="brewer",
                               station="panel", created_at=T0, updated_at=T0))
        session.add(AlarmRow(rule_id="hlt_high", endpoint_id=10, kind="high", severity="high", message="HLT hot",
                             value=81.5, raised_at=T0))
        for i in range(500):
            session.add(TelemetryReading(endpoint_id=10, value=60.0 + i / 10, quality="good",
                                         server_ts=T0.timestamp() + i))
        session.commit()
    engine.dispose()


def test_a_database_from_before_migrations_is_upgraded_with_its_rows_kept(db_url: str) -> None:
    legacy_database(db_url, skip=("recipe_drafts",))  # and from an older BevForge: one table it never had
    engine = make_engine(db_url)
    assert state(engine).legacy and state(engine).current is None
    create_schema(engine)
    assert state(engine).up_to_date
    with Session(engine) as session:
        assert session.exec(select(EndpointRow)).one().name == "hlt_temperature"
        assert session.exec(select(UserRow)).one().nodes == ["HLT"]
        assert session.exec(select(CommandRow)).one().requested_value is True
        alarm = session.exec(select(AlarmRow)).one()
        assert (alarm.value, alarm.raised_at) == (81.5, T0)
        values = session.exec(select(TelemetryReading.value).order_by(TelemetryReading.server_ts)).all()
        assert len(values) == 500 and values[0] == 60.0 and values[-1] == pytest.approx(109.9)
        assert max(session.exec(select(SchemaVersion.version)).all()) == SCHEMA_VERSION
    assert inspect(engine).has_table("recipe_drafts")
    indexes = {i["name"] for i in inspect(engine).get_indexes("telemetry_readings")}
    assert "ix_telemetry_endpoint_time" in indexes
    assert ("ix_telemetry_time_brin" in indexes) == (engine.dialect.name == "postgresql")
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            definition = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                           "'ix_telemetry_endpoint_time'")).scalar()
        assert "INCLUDE (value, quality)" in definition
    assert compare(engine) == []  # the adopted database now matches the models exactly
    engine.dispose()


def test_an_empty_database_is_migrated_to_head_and_matches_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    assert state(engine).current is None and not state(engine).legacy
    create_schema(engine)
    create_schema(engine)  # a second start changes nothing
    now = state(engine)
    assert now.up_to_date and not now.legacy
    assert compare(engine) == []  # the migrations create exactly what the models declare
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM schema_version")).scalar() == 1
    engine.dispose()


def test_a_database_from_a_newer_bevforge_is_refused(db_url: str) -> None:
    engine = make_engine(db_url)
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaTooNew, match="9999_from_the_future"):
        create_schema(engine)
    engine.dispose()


def test_a_schema_version_above_this_code_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    legacy_database(url)
    engine = make_engine(url)
    with Session(engine) as session:
        session.add(SchemaVersion(version=SCHEMA_VERSION + 1, applied_at=T0))
        session.commit()
    with pytest.raises(SchemaTooNew, match="newer than this BevForge"):
        create_schema(engine)
    assert state(engine).current is None  # refused before anything was changed
    engine.dispose()


def test_the_db_command_shows_and_runs_the_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    legacy_database(url)
    status = main_py("db", "status", "--db", url)
    assert status.returncode == 0, status.stderr
    assert "made before migrations" in status.stdout and "an upgrade is due" in status.stdout
    done = main_py("db", "upgrade", "--db", url)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
    engine = make_engine(url)
    assert state(engine).up_to_date
    with Session(engine) as session:
        assert len(session.exec(select(TelemetryReading)).all()) == 500
    engine.dispose()


def test_two_instances_starting_together_on_postgresql_migrate_once(postgres_url: str) -> None:
    """Two central instances sharing one PostgreSQL start at the same moment: the advisory lock lets one
    migrate while the other waits, then finds the schema up to date (no "table already exists")."""
    from concurrent.futures import ThreadPoolExecutor

    engines = [make_engine(postgres_url), make_engine(postgres_url)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in [pool.submit(create_schema, engine) for engine in engines]:
            done.result()
    assert all(state(engine).up_to_date for engine in engines)
    with engines[0].connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM schema_version")).scalar() == 1
    for engine in engines:
        engine.dispose()


def test_head_is_the_newest_shipped_revision() -> None:
    """migrate.HEAD lets every start skip Alembic on an up-to-date database: it must name the newest file."""
    from alembic.script import ScriptDirectory

    from bevforge.store.migrate import HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD


def test_a_start_on_an_up_to_date_database_does_not_load_alembic(db_url: str) -> None:
    """Alembic costs ~0.13 s of CPU at every start (before the screens answer); only a database that is
    behind needs it. Checked in a fresh interpreter: this test process has imported Alembic already."""
    import subprocess
    import sys

    create_schema(make_engine(db_url))  # migrated to head here
    probe = ("import sys; from bevforge.store import create_schema, make_engine; "
             f"create_schema(make_engine({db_url!r})); print('alembic' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
