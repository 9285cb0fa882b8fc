"""Audit store with a hash chain, the signed messages and signed checkpoints.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None



def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(200), nullable=False, unique=True),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("message_id", sa.String(64)),
        sa.Column("root_id", sa.Text),
        sa.Column("kind", sa.String(16)),
        sa.Column("sender", sa.String(16)),
        sa.Column("recipient", sa.String(16)),
        sa.Column("status", sa.String(2)),
        sa.Column("reason_code", sa.String(40)),
        sa.Column("reason", sa.Text),
        sa.Column("source_topic", sa.Text, nullable=False),
        sa.Column("source_partition", sa.Integer, nullable=False),
        sa.Column("source_offset", sa.BigInteger, nullable=False),
        sa.Column("content_sha256", sa.String(64)),
        sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("row_hash", sa.LargeBinary(32), nullable=False),
    )
    for column in ("message_id", "root_id", "sender", "recipient", "at_ms"):
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column])
    op.create_table(
        "audit_messages",
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("statement", sa.LargeBinary, nullable=False),
        sa.Column("signature", sa.LargeBinary, nullable=False),
        sa.Column("certificate_fingerprint", sa.String(64), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
    )
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("row_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("checkpoint_seq", sa.BigInteger, nullable=False),
        sa.Column("checkpoint_at_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_chain_head", "audit_checkpoints", "audit_messages", "audit_events"):
        op.drop_table(table)
