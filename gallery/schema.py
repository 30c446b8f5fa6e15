"""The gallery's tables (SQLAlchemy Core). SQL is the source of truth.

Migrations live in migrations/versions; change both together.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# One row per key: model_id, dimension (a gallery belongs to one model).
gallery_meta = Table(
    "gallery_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

identities = Table(
    "identities", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("identity_id", String(255), nullable=False, unique=True),
    Column("display_name", String(255), nullable=False, default=""),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)

# faces.id is also the FAISS id. AUTOINCREMENT: ids are never reused, so a
# stale snapshot can never mistake a new face for a deleted one.
faces = Table(
    "faces", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("identity_pk", Integer, ForeignKey("identities.id", ondelete="CASCADE"), nullable=False),
    Column("embedding", LargeBinary, nullable=False),      # float32, little-endian, `dimension` values
    Column("model_id", String(255), nullable=False),
    Column("source_sha256", String(64), nullable=True),    # sha256 of the image bytes
    Column("embedding_sha256", String(64), nullable=True), # embedding-only faces: sha256 of `embedding` as enrolled
    Column("source_path", Text, nullable=True),
    Column("box_x", Integer, nullable=True),
    Column("box_y", Integer, nullable=True),
    Column("box_w", Integer, nullable=True),
    Column("box_h", Integer, nullable=True),
    Column("detection_score", Float, nullable=True),
    Column("crop_jpeg", LargeBinary, nullable=True),        # aligned crop, so reindex needs no originals
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Enrolment is idempotent: the same image, or the same embedding, once per identity.
    Index("uq_faces_identity_source", "identity_pk", "source_sha256", unique=True),
    Index("uq_faces_identity_embedding", "identity_pk", "embedding_sha256", unique=True),
    sqlite_autoincrement=True,
)

# Append-only log of index changes: "add" and "delete" of a face (face_id), "move" of a face
# to another identity (face_id; moves.py), and "identity" (face_id holds the identity's pk)
# when an existing identity is renamed or merged away.
# Seqs commit in order (sql.serialise_writes). A snapshot records the last seq it
# holds and start-up replays the rows after it; replicas sharing the database
# follow it (follow.py). Rows every replica has are pruned (gallery_meta's
# pruned_through says how far).
changes = Table(
    "changes", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("op", String(8), nullable=False),                # "add", "delete", "move" or "identity"
    Column("face_id", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

# One row per process serving this database: the change-log seq it can restart from
# (its snapshot's watermark; with a durable index, what it applied) and when it last
# said so. Pruning keeps every row a replica seen within REPLICA_TTL_S still needs.
replicas = Table(
    "replicas", metadata,
    Column("name", String(255), primary_key=True),          # host:data directory
    Column("seq", BigInteger, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)

# Faces Identify answered as unknown, kept only with --keep-unknown-days (gallery/unknown.py):
# the embedding, the crop, when (database time) and the caller's `source`; nothing else.
# cluster_id: NULL while waiting for a cluster, else the id of the cluster's first face.
# Never in the vector index. AUTOINCREMENT: ids (and so cluster ids) are never reused.
unknown_faces = Table(
    "unknown_faces", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("embedding", LargeBinary, nullable=False),      # float32, little-endian
    Column("model_id", String(255), nullable=False),
    Column("crop_jpeg", LargeBinary, nullable=True),
    Column("source", String(255), nullable=False, default=""),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("cluster_id", BigInteger, nullable=True),
    Index("ix_unknown_faces_seen_at", "seen_at"),
    Index("ix_unknown_faces_cluster_id", "cluster_id"),
    sqlite_autoincrement=True,
)
