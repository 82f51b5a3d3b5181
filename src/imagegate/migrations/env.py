"""Alembic environment. Always driven from ``imagegate.store.migrate`` with a live
connection handed over in ``config.attributes``; there is no alembic.ini to keep in sync."""

from __future__ import annotations

from alembic import context

from imagegate.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
