"""enrolment is idempotent: a face's source bytes, or for an embedding-only face the
embedding's own hash, are unique per identity (faces.embedding_sha256, two unique indexes)

Unique indexes rather than table constraints: they are enforced alike on SQLite and
PostgreSQL and need no batch-mode copy of `faces` on SQLite, which would drop its
AUTOINCREMENT (face ids must never be reused).

Faces enrolled twice before this revision keep their rows: the first keeps its key,
the later ones lose it (source_sha256 / embedding_sha256 set to NULL; NULLs never clash).

Revision ID: 0002
Revises: 0001
"""
import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CHUNK = 5000

faces = sa.table("faces", sa.column("id", sa.BigInteger), sa.column("identity_pk", sa.Integer),
                 sa.column("source_sha256", sa.String), sa.column("embedding", sa.LargeBinary),
                 sa.column("embedding_sha256", sa.String))


def upgrade() -> None:
    op.add_column("faces", sa.Column("embedding_sha256", sa.String(64), nullable=True))
    conn = op.get_bind()
    seen, last = set(), 0
    while rows := conn.execute(sa.select(faces.c.id, faces.c.identity_pk, faces.c.embedding)
                               .where(faces.c.source_sha256.is_(None), faces.c.id > last)
                               .order_by(faces.c.id).limit(CHUNK)).all():
        updates = []
        for r in rows:
            key = (r.identity_pk, hashlib.sha256(bytes(r.embedding)).hexdigest())
            if key not in seen:
                seen.add(key)
                updates.append({"fid": r.id, "digest": key[1]})
        if updates:
            conn.execute(sa.update(faces).where(faces.c.id == sa.bindparam("fid"))
                         .values(embedding_sha256=sa.bindparam("digest")), updates)
        last = rows[-1].id
    earlier = sa.table("faces", sa.column("id"), sa.column("identity_pk"), sa.column("source_sha256")).alias("earlier")
    conn.execute(sa.update(faces).where(faces.c.source_sha256.is_not(None), sa.exists().where(
        earlier.c.identity_pk == faces.c.identity_pk, earlier.c.source_sha256 == faces.c.source_sha256,
        earlier.c.id < faces.c.id)).values(source_sha256=None))
    op.drop_index("ix_faces_identity_source", "faces")
    op.create_index("uq_faces_identity_source", "faces", ["identity_pk", "source_sha256"], unique=True)
    op.create_index("uq_faces_identity_embedding", "faces", ["identity_pk", "embedding_sha256"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_faces_identity_embedding", "faces")
    op.drop_index("uq_faces_identity_source", "faces")
    op.create_index("ix_faces_identity_source", "faces", ["identity_pk", "source_sha256"])
    with op.batch_alter_table("faces") as batch:
        batch.drop_column("embedding_sha256")
