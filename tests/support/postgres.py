"""A real, throwaway PostgreSQL server for the tests and the benchmarks.

`PostgresCluster` runs Debian's `initdb`/`pg_ctl` (scripts/ensure-postgres.sh installs them) on a
fresh data directory under a temporary folder, listening on a free 127.0.0.1 port, and removes it
all on `stop()`. PostgreSQL refuses to run as root, so as root (CI) the cluster runs as the system
user `postgres` and its folder is chowned to it; otherwise it runs as the current user.

Which database the integration suite uses: `BEVFORGE_TEST_DB=postgresql` (`make test-postgres`)
makes `test_db_url()` hand every test a fresh database on one cluster started for the session
(dropped again after the test file, tests/conftest.py); unset, tests keep their SQLite file.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import pytest

SUPERUSER = "postgres"


def on_postgresql() -> bool:
    """True when this run's integration tests use PostgreSQL (BEVFORGE_TEST_DB=postgresql)."""
    return os.environ.get("BEVFORGE_TEST_DB", "sqlite").lower() in {"postgresql", "postgres", "pg"}


def sqlite_only(reason: str) -> pytest.MarkDecorator:
    """Skip a test that is about SQLite itself (WAL, its file, PRAGMAs) on a PostgreSQL run, saying why."""
    return pytest.mark.skipif(on_postgresql(), reason=f"SQLite only: {reason}")


def _bin_dir() -> Path:
    """Debian keeps the server programs in /usr/lib/postgresql/<major>/bin (not on PATH): the newest one."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parents[1].name))
    if versions:
        return versions[-1].parent
    found = shutil.which("pg_ctl")
    if found is None:
        raise RuntimeError("PostgreSQL is not installed: run scripts/ensure-postgres.sh (apt-get install postgresql)")
    return Path(found).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """One PostgreSQL server in a temporary folder: start, create databases, stop (and remove the folder).

    `durable=False` (the tests) turns fsync off: a test's data never needs to survive a power cut, and
    each commit then costs no disk flush. The benchmark keeps PostgreSQL's defaults (`durable=True`).
    """

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="bevforge-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        self.running = False
        self._lock = threading.Lock()

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done

    def start(self) -> PostgresCluster:
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8",
                  "--no-sync")
        return self.start_server()

    def start_server(self) -> PostgresCluster:
        """Start (or start again, after `stop_server`) the server on its data folder and port."""
        options = [f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-k {self.root}",
                   "-c max_connections=300", "-c shared_buffers=128MB"]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "-o", " ".join(options), "start")
        self.running = True
        return self

    def stop_server(self) -> None:
        """Stop the server and keep its data (`start_server` brings it back): a database outage."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.running = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE cannot run inside one)."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        with self._lock:
            self.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self._lock:
            self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.running:
            self.running = False
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except RuntimeError:
                pass  # already gone: the folder goes anyway
        shutil.rmtree(self.root, ignore_errors=True)


_session: PostgresCluster | None = None
_created: dict[Path, str] = {}  # the databases handed out during the current test file, by the path they stand for


def session_cluster() -> PostgresCluster:
    """The one cluster of this test run, started on first use and stopped when the run ends."""
    global _session
    if _session is None:
        _session = PostgresCluster().start()
        atexit.register(stop_session_cluster)  # also when a run ends without pytest's session teardown
    return _session


def stop_session_cluster() -> None:
    global _session
    cluster, _session = _session, None
    if cluster is not None:
        cluster.stop()


def test_db_url(db_path: Path) -> str:
    """The database a test uses: SQLite at `db_path`, or on a PostgreSQL run a fresh PostgreSQL database,
    the same one each time the test names the same path (a restart on "the same file"); dropped after
    the test file by `drop_test_databases`."""
    if not on_postgresql():
        return f"sqlite:///{db_path}"
    key = Path(db_path).resolve()
    if key not in _created:
        _created[key] = session_cluster().create_database()
    return _created[key]


def drop_test_databases() -> None:
    """Drop the databases handed out since the last call (after each test file: a long run stays small)."""
    while _created:
        _path, url = _created.popitem()
        if _session is not None:
            _session.drop_database(url.rsplit("/", 1)[1])


test_db_url.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test pytest should collect
