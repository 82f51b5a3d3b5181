"""accounts: balances, limits, key scopes and expiry, job prices, the ledger, idempotency
keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("balance_micros", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("max_concurrent", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rate_limit", sa.String(40), nullable=True))
        batch.add_column(sa.Column("webhook_secret", sa.String(64), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("models", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("max_concurrent", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rate_limit", sa.String(40), nullable=True))
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("key_id", sa.String(32), nullable=True))
        batch.add_column(
            sa.Column("price_micros", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.create_index("ix_predictions_account_id_status", ["account_id", "status"])
        batch.create_index("ix_predictions_key_id_status", ["key_id", "status"])
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("prediction_id", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_ledger_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
        sa.UniqueConstraint("prediction_id", "kind", name="uq_ledger_prediction_id"),
    )
    op.create_index("ix_ledger_account_id_id", "ledger", ["account_id", "id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("prediction_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_idempotency_keys_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("account_id", "key", name="pk_idempotency_keys"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_index("ix_ledger_account_id_id", table_name="ledger")
    op.drop_table("ledger")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_index("ix_predictions_key_id_status")
        batch.drop_index("ix_predictions_account_id_status")
        batch.drop_column("price_micros")
        batch.drop_column("key_id")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("rate_limit")
        batch.drop_column("max_concurrent")
        batch.drop_column("expires_at")
        batch.drop_column("models")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("webhook_secret")
        batch.drop_column("rate_limit")
        batch.drop_column("max_concurrent")
        batch.drop_column("balance_micros")
