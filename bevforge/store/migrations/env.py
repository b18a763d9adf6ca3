"""Alembic's environment for BevForge's own migrations (bevforge/store/migrate.py runs them).

No alembic.ini: `migrate.py` builds the Alembic Config in code and hands over the open connection in
`config.attributes["connection"]`, so the migrations run on the server's own engine (SQLite with its
pragmas, PostgreSQL with its pool). SQLite alters tables in "batch" mode (copy and swap).
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import bevforge.store.tables  # noqa: F401  (the models fill SQLModel.metadata: what autogenerate compares to)
from bevforge.store.migrate import include_object

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("BevForge's migrations run through bevforge.store.migrate (python main.py db upgrade)")
context.configure(connection=connection, target_metadata=SQLModel.metadata, include_object=include_object,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
