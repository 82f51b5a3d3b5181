"""The schema. Alembic migrations in ``imagegate/migrations`` must produce exactly this
(a drift test checks it), so change both together."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

# Explicit constraint names so that migrations are stable across SQLite and PostgreSQL,
# and batch mode on SQLite can find constraints by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Times are naive UTC everywhere: SQLite has no time zones, and one convention on both
# databases keeps comparisons (leases, list filters) identical.
accounts = Table(
    "accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime, nullable=True),
    Column("last_used_at", DateTime, nullable=True),
)

predictions = Table(
    "predictions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("route", String(200), nullable=False),
    Column("task", String(40), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", JSON, nullable=False),
    Column("reference_keys", JSON, nullable=False),
    Column("outputs", JSON, nullable=False),
    Column("nsfw", JSON, nullable=False),
    Column("error", Text, nullable=True),
    Column("execution_ms", Integer, nullable=False, default=0),
    Column("inference_ms", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    # The model's step while the job runs, written with the heartbeat.
    Column("progress_step", Integer, nullable=False, default=0, server_default="0"),
    Column("progress_total", Integer, nullable=False, default=0, server_default="0"),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", DateTime, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime, nullable=True),
    Column("finished_at", DateTime, nullable=True),
    # The claim scans (status, id); the account's list scans (account_id, id).
    Index("ix_predictions_status_id", "status", "id"),
    Index("ix_predictions_account_id_id", "account_id", "id"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(127), nullable=False),
    Column("size", Integer, nullable=False),
    Column("blob_key", String(300), nullable=False),
    Column("stored", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
)
