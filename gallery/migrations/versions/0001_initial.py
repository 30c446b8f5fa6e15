"""initial schema: gallery_meta, identities, faces, changes

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

FACE_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "gallery_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("identity_id", sa.String(255), nullable=False, unique=True),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "faces",
        sa.Column("id", FACE_ID, primary_key=True, autoincrement=True),
        sa.Column("identity_pk", sa.Integer, sa.ForeignKey("identities.id", ondelete="CASCADE"), nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("source_sha256", sa.String(64)),
        sa.Column("source_path", sa.Text),
        sa.Column("box_x", sa.Integer),
        sa.Column("box_y", sa.Integer),
        sa.Column("box_w", sa.Integer),
        sa.Column("box_h", sa.Integer),
        sa.Column("detection_score", sa.Float),
        sa.Column("crop_jpeg", sa.LargeBinary),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_faces_identity_source", "faces", ["identity_pk", "source_sha256"])
    op.create_table(
        "changes",
        sa.Column("seq", FACE_ID, primary_key=True, autoincrement=True),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("face_id", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("changes")
    op.drop_index("ix_faces_identity_source", "faces")
    op.drop_table("faces")
    op.drop_table("identities")
    op.drop_table("gallery_meta")
