"""The store's mirror of the configured endpoints (start-up and a live reload, bevforge/store/engine.py):
new endpoints added, changed ones updated, removed ones kept for their history; the table is read once,
not once per endpoint, and an unchanged endpoint is not written (a restart with the same config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlmodel import Session, select

from bevforge.store import EndpointRow, create_schema, make_engine, sync_endpoints


def rows(count: int) -> list[EndpointRow]:
    return [EndpointRow(id=i, name=f"probe_{i}", node="HLT", kind="temperature", unit="°C", data_type="float",
                        writable=False) for i in range(1, count + 1)]


def test_the_mirror_adds_updates_and_keeps_in_one_read_and_writes_only_changes(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'plant.db'}")
    create_schema(engine)
    sync_endpoints(engine, rows(40))
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()).upper())

    event.listen(engine, "before_cursor_execute", seen)
    sync_endpoints(engine, rows(40))  # a restart with the same config
    assert [s for s in statements if "ENDPOINTS" in s] == [s for s in statements if s.startswith("SELECT")]
    assert len([s for s in statements if s.startswith("SELECT")]) == 1  # one read, no write

    statements.clear()
    changed = rows(39)  # probe_40 is no longer configured
    changed[2].name, changed[2].writable = "hlt_probe", True
    changed.append(EndpointRow(id=100, name="new_valve", node="MLT", kind="valve", unit="", data_type="bool",
                               writable=True))
    sync_endpoints(engine, changed)
    assert len([s for s in statements if s.startswith("SELECT")]) == 1
    assert len([s for s in statements if s.startswith("UPDATE")]) == 1
    assert len([s for s in statements if s.startswith("INSERT")]) == 1
    with Session(engine) as session:
        stored = {row.id: row for row in session.exec(select(EndpointRow)).all()}
    assert (stored[3].name, stored[3].writable) == ("hlt_probe", True)
    assert stored[100].name == "new_valve" and stored[40].name == "probe_40"  # kept for its history
    assert stored[4].name == "probe_4"
    engine.dispose()
