"""The schema. Alembic migrations in ``imagegate/migrations`` must produce exactly this
(a drift test checks it), so change both together."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
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
    # Micro-dollars; NULL is an unmetered account (nothing is charged, nothing logged).
    Column("balance_micros", BigInteger, nullable=True),
    # Unfinished jobs at once, and requests per window ("60/minute"); NULL: no limit.
    Column("max_concurrent", Integer, nullable=True),
    Column("rate_limit", String(40), nullable=True),
    # Signs the account's webhook deliveries (Standard Webhooks, "whsec_..."); NULL for
    # accounts made before it existed, which get one on first use.
    Column("webhook_secret", String(64), nullable=True),
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
    # Route globs the key may use ("acme/*"); NULL: every route.
    Column("models", JSON, nullable=True),
    Column("expires_at", DateTime, nullable=True),
    Column("max_concurrent", Integer, nullable=True),
    Column("rate_limit", String(40), nullable=True),
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
    Column("key_id", String(32), nullable=True),
    # What the submit charged (micro-dollars), refunded if the job fails.
    Column("price_micros", BigInteger, nullable=False, default=0, server_default="0"),
    # Where the job runs: the workers' model slots ("local") or the upstream pool, at
    # ``target`` (an index into the route's targets); ``plan`` is the order of targets it
    # may try, ``hop`` how far along it is.
    Column("lane", String(8), nullable=False, default="local", server_default="local"),
    Column("target", Integer, nullable=False, default=0, server_default="0"),
    Column("plan", JSON, nullable=True),
    Column("hop", Integer, nullable=False, default=0, server_default="0"),
    Column("ran_on", String(64), nullable=True),  # the target's name, once it ran
    # The job at the provider: "submitting" is written before the request is sent, so a
    # worker that dies before the answer knows the outcome is unknown and never sends it
    # blindly again; "submitted" with the provider's id, resumed after any restart.
    Column("upstream_state", String(16), nullable=True),
    Column("upstream_key", String(16), nullable=True),  # which key (a fingerprint)
    Column("upstream_id", String(200), nullable=True),
    Column("cost_micros", BigInteger, nullable=False, default=0, server_default="0"),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", DateTime, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime, nullable=True),
    Column("finished_at", DateTime, nullable=True),
    # The claim scans (lane, status, id); the account's list scans (account_id, id).
    Index("ix_predictions_lane_status_id", "lane", "status", "id"),
    Index("ix_predictions_account_id_id", "account_id", "id"),
    # Concurrency limits count an account's or a key's unfinished jobs.
    Index("ix_predictions_account_id_status", "account_id", "status"),
    Index("ix_predictions_key_id_status", "key_id", "status"),
)

# Every movement of an account's balance. The balance always equals the sum of its rows;
# a prediction has at most one charge and one refund, which the unique index makes sure of
# even if a code path tried twice.
ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("prediction_id", String(32), nullable=True),
    Column("kind", String(16), nullable=False),  # charge | refund | topup
    Column("amount_micros", BigInteger, nullable=False),  # signed: a charge is negative
    Column("created_at", DateTime, nullable=False),
    Index("ix_ledger_account_id_id", "account_id", "id"),
    UniqueConstraint("prediction_id", "kind"),
)

# An Idempotency-Key seen on a submit, kept 24 h: a retry with the same key and body gets
# the job the first one made, never a second job or a second charge.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", String(32), ForeignKey("accounts.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("prediction_id", String(32), nullable=False),
    Column("created_at", DateTime, nullable=False),
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
