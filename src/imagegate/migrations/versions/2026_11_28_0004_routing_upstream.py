"""routing: each job's target, lane and failover plan; the upstream job it became; what
the provider cost

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("lane", sa.String(8), server_default="local", nullable=False))
        batch.add_column(sa.Column("target", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("plan", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("hop", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("ran_on", sa.String(64), nullable=True))
        batch.add_column(sa.Column("upstream_state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("upstream_key", sa.String(16), nullable=True))
        batch.add_column(sa.Column("upstream_id", sa.String(200), nullable=True))
        batch.add_column(
            sa.Column("cost_micros", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.drop_index("ix_predictions_status_id")
        batch.create_index("ix_predictions_lane_status_id", ["lane", "status", "id"])


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_index("ix_predictions_lane_status_id")
        batch.create_index("ix_predictions_status_id", ["status", "id"])
        for column in (
            "cost_micros",
            "upstream_id",
            "upstream_key",
            "upstream_state",
            "ran_on",
            "hop",
            "plan",
            "target",
            "lane",
        ):
            batch.drop_column(column)
