"""unknown_faces: faces Identify answered as unknown, kept with --keep-unknown-days (gallery/unknown.py)

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unknown_faces",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("crop_jpeg", sa.LargeBinary, nullable=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cluster_id", sa.BigInteger, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_unknown_faces_seen_at", "unknown_faces", ["seen_at"])
    op.create_index("ix_unknown_faces_cluster_id", "unknown_faces", ["cluster_id"])


def downgrade() -> None:
    op.drop_table("unknown_faces")
