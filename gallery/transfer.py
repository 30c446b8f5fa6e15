"""Moving a gallery to another database and vector backend (facesearch-indexer migrate).

SQL first, then the index, then a check:

1. rows: gallery_meta, then identities and faces (every column, the same primary keys, so
   face ids and the index's ids stay the same) are copied in id order, in transactions of
   `batch` rows. A copy that stops anywhere resumes where it stopped: what the target
   holds up to its largest id is skipped. The target must be empty or an earlier run of
   the same migration (checked on its last rows).
2. index: the target Gallery opens on its backend and builds its index from SQL (FAISS:
   rebuild and snapshot; Milvus: reconcile, which adds only the faces the collection
   lacks, so it resumes too).
3. verify: identity and face counts and the index count equal; `sample` faces, drawn
   at random, searched by their stored embedding in both galleries, must have the same
   top-1 face.

Replicas may already serve the target: each batch of faces is logged in its change log
(serialised with their writes), so they follow the copy as it lands. gallery_meta keys the
target lacks (generation, calibration) are copied even when a replica has bound the model.
A FAISS target needs a data directory of its own: its snapshots would otherwise overwrite
the source's (a snapshot's key names the model and index, not the database).

The source should not change during the copy: its Gallery is opened, which holds its
data directory (a running server on it makes the migration fail with GalleryLockedError).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from sqlalchemy import Connection, Engine, RowMapping, Table, func, insert, select, text

from .config import GalleryConfig
from .errors import GalleryError
from .migrate import upgrade
from .records import aware, decode_vectors
from .schema import changes, faces, gallery_meta, identities
from .sql import INDEX_TS, connect, put_meta, serialise_writes, shown

if TYPE_CHECKING:
    from .store import Gallery

Progress = Callable[[str, int, int], None]   # (table, copied so far, total)
LOG_KEYS = ("pruned_through", INDEX_TS)   # describe the source's change log and index, which are not copied


@dataclass
class MigrationReport:
    identities: int = 0
    faces: int = 0
    copied_identities: int = 0      # in this run (the rest were there already)
    copied_faces: int = 0
    indexed: int = 0
    index: str = ""
    sampled: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.indexed == self.faces


def _count(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _last_id(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.max(table.c.id))).scalar() or 0)


def _check_target(src: Connection, dst: Connection) -> None:
    """The target is empty or holds a prefix of this very source (an interrupted run)."""
    for table, key in ((identities, identities.c.identity_id), (faces, faces.c.identity_pk)):
        last = _last_id(dst, table)
        if not last:
            continue
        theirs = dst.execute(select(key).where(table.c.id == last)).scalar()
        ours = src.execute(select(key).where(table.c.id == last)).scalar()
        if theirs != ours:
            raise GalleryError(f"the target database already holds another gallery ({table.name} {last} "
                               "differs from the source's); migrate into an empty database")
    meta = dict(dst.execute(select(gallery_meta.c.key, gallery_meta.c.value)).all())
    mine = dict(src.execute(select(gallery_meta.c.key, gallery_meta.c.value)).all())
    if meta.get("model_id") and (meta.get("model_id"), meta.get("dimension")) != \
            (mine.get("model_id"), mine.get("dimension")):
        raise GalleryError(f"the target holds a {meta.get('model_id')} gallery, the source {mine.get('model_id')}")


def _copy_table(src_engine: Engine, dst_engine: Engine, table: Table, batch: int,
                progress: Progress | None) -> tuple[int, int]:
    """Rows of table with ids above the target's largest, in id order; (copied now, total)."""
    with src_engine.connect() as src:
        total = _count(src, table)
    with dst_engine.connect() as dst:
        last = _last_id(dst, table)
        done = _count(dst, table)
    copied = 0
    while True:
        with src_engine.connect() as src:
            rows = src.execute(select(table).where(table.c.id > last).order_by(table.c.id).limit(batch)).mappings().all()
        if not rows:
            break
        with dst_engine.begin() as dst:   # one transaction per batch: a stop loses at most this batch
            if table is faces:   # replicas already serving the target follow the copy
                serialise_writes(dst)
            dst.execute(insert(table), [_portable(r) for r in rows])
            if table is faces:
                dst.execute(insert(changes), [{"op": "add", "face_id": r["id"]} for r in rows])
        last = rows[-1]["id"]
        copied += len(rows)
        if progress:
            progress(table.name, done + copied, total)
    return copied, total


def _portable(row: RowMapping) -> dict[str, Any]:
    """A row as the target takes it: SQLite's naive datetimes are UTC (records.aware)."""
    return {k: aware(v) if isinstance(v, datetime) else v for k, v in row.items()}


def _bump_sequences(engine: Engine) -> None:
    """PostgreSQL: explicit ids leave the serial sequences behind; move them past the copied rows."""
    if engine.dialect.name != "postgresql":
        return   # SQLite AUTOINCREMENT follows explicit ids by itself
    with engine.begin() as conn:
        for table in ("identities", "faces"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                              f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))"))


def migrate(source: GalleryConfig, target: GalleryConfig, *, batch: int = 1000, sample: int = 200,
            seed: int = 0, progress: Progress | None = None) -> MigrationReport:
    """Copy source's gallery into target (database and vector index), then verify. Resumable."""
    from .store import Gallery

    if source.url == target.url:
        raise GalleryError("the source and the target are the same database")
    if target.vector_backend == "faiss" and Path(target.data_dir).resolve() == Path(source.data_dir).resolve():
        raise GalleryError("a FAISS target needs a data directory of its own (--to-data-dir): its index "
                           "snapshots would overwrite the source's")
    report = MigrationReport()
    with Gallery.open(source) as old:   # holds the source's data directory; builds its index if needed
        dst_engine = connect(target.url)
        try:
            try:
                upgrade(dst_engine)
            except Exception as exc:
                raise GalleryError(f"cannot open the target database {shown(dst_engine)}: {exc}") from None
            with old.engine.connect() as src, dst_engine.begin() as dst:
                _check_target(src, dst)
                have = set(dst.execute(select(gallery_meta.c.key)).scalars())
                for r in src.execute(select(gallery_meta).where(gallery_meta.c.key.not_in(LOG_KEYS))).mappings():
                    if r["key"] not in have:   # generation, calibration: also once a replica bound the model
                        put_meta(dst, r["key"], r["value"])
            report.copied_identities, report.identities = _copy_table(old.engine, dst_engine, identities, batch,
                                                                      progress)
            report.copied_faces, report.faces = _copy_table(old.engine, dst_engine, faces, batch, progress)
            _bump_sequences(dst_engine)
            with dst_engine.connect() as dst:
                counts = (_count(dst, identities), _count(dst, faces))
        finally:
            dst_engine.dispose()
        if counts != (report.identities, report.faces):
            raise GalleryError(f"the target holds {counts[0]} identities and {counts[1]} faces, the source "
                               f"{report.identities} and {report.faces}")
        # the index: FAISS rebuilds from SQL, Milvus reconciles (adds what the collection lacks)
        with Gallery.open(target, lock=target.data_dir != source.data_dir) as new:
            report.indexed = new.indexed_count()
            report.index = new.index_description
            ids = _sample_ids(old, sample, seed)
            with old.engine.connect() as conn:
                rows = conn.execute(select(faces.c.id, faces.c.embedding).where(faces.c.id.in_(ids))
                                    .order_by(faces.c.id)).all() if ids else []
            if rows:
                queries = decode_vectors((r.embedding for r in rows), old.dimension)
                before = old.search(queries, top_k=1, max_distance=None)
                after = new.search(queries, top_k=1, max_distance=None)
                for row, a, b in zip(rows, before, after):
                    fa = (a[0].face_id, a[0].identity_id) if a else None
                    fb = (b[0].face_id, b[0].identity_id) if b else None
                    if fa != fb:
                        report.mismatches.append({"face": row.id, "source": fa, "target": fb})
            report.sampled = len(rows)
    return report


def _sample_ids(gallery: Gallery, sample: int, seed: int) -> list[int]:
    ids = gallery.indexed_ids()
    if len(ids) <= sample:
        return [int(i) for i in ids]
    return sorted(int(i) for i in np.random.default_rng(seed).choice(ids, sample, replace=False))
