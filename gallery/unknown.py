"""Unknown faces (--keep-unknown-days, docs/clustering.md "Unknown visitors"): the faces Identify
answered as unknown, kept in `unknown_faces` and grouped into clusters in the background.

SQL is the only store: the embeddings never enter the vector index, and a clustering pass reads
them from SQL, so every replica sharing the database sees the same clusters. Purges and deletes
are logged in the change log ("forget" rows, which no index applies) like every other removal.

Clustering is incremental, with the algorithm of `cluster` (clustering.py): a waiting face joins
the cluster of its nearest clustered face within max_distance; the faces still waiting are then
clustered among themselves (DBSCAN on the k-NN graph), and each new cluster takes the id of its
first face. A face that joins nothing waits for the next pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Sequence

import faiss
import numpy as np
from sqlalchemy import Connection, delete, func, insert, select, update

from facesearch.embedder.distances import to_squared_l2

from .clustering import cluster
from .errors import NotFoundError
from .paging import decode_token, encode_token
from .records import aware, decode_vectors
from .schema import unknown_faces as uf
from .sql import database_now, in_chunks, serialise_writes
from .state import GalleryState

SAMPLES = 8   # face ids and sources shown per cluster


@dataclass(frozen=True)
class UnknownFace:
    """What is kept of a face Identify answered as unknown; nothing else."""
    embedding: np.ndarray
    crop_jpeg: bytes | None
    source: str = ""


@dataclass(frozen=True)
class UnknownCluster:
    cluster_id: int
    size: int
    first_seen: datetime
    last_seen: datetime
    sample_face_ids: list[int] = field(default_factory=list)   # the most recent first
    sources: list[str] = field(default_factory=list)           # distinct, at most SAMPLES


@dataclass(frozen=True)
class UnknownPage:
    clusters: list[UnknownCluster]
    next_page_token: str
    waiting: int      # faces in no cluster yet
    total: int        # every face kept


class Unknown(GalleryState):
    """Gallery methods for unknown faces."""

    def keep_unknown(self, kept: Sequence[UnknownFace]) -> list[int]:
        """Insert, stamped with the database's time; the new ids."""
        if not kept:
            return []
        vectors = self._embeddings([k.embedding for k in kept])
        with self.engine.begin() as conn:
            when = database_now(conn)
            rows = [{"embedding": v.astype("<f4").tobytes(), "model_id": self.model_id, "crop_jpeg": k.crop_jpeg,
                     "source": (k.source or "")[:255], "seen_at": when, "cluster_id": None}
                    for k, v in zip(kept, vectors)]
            result = conn.execute(insert(uf).returning(uf.c.id, sort_by_parameter_order=True), rows)
            return [r.id for r in result]

    def cluster_unknown(self, max_distance: float, min_faces: int) -> int:
        """One incremental clustering pass (the module's docstring); how many faces found a cluster.
        The update only claims faces still waiting, so a racing replica's pass wins cleanly."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(uf.c.id, uf.c.cluster_id, uf.c.embedding)
                                .where(uf.c.model_id == self.model_id).order_by(uf.c.id)).all()
        ids = np.array([r.id for r in rows], np.int64)
        owner = np.array([-1 if r.cluster_id is None else r.cluster_id for r in rows], np.int64)
        waiting = np.flatnonzero(owner < 0)
        if not len(waiting):
            return 0
        vectors = decode_vectors([r.embedding for r in rows], self.dimension)
        reach = float(to_squared_l2(max_distance))
        found = np.full(len(rows), -1, np.int64)
        clustered = np.flatnonzero(owner >= 0)
        if len(clustered):   # 1. join the nearest clustered face's cluster
            index = faiss.IndexFlatL2(self.dimension)
            index.add(np.ascontiguousarray(vectors[clustered]))
            dist, nearest = index.search(np.ascontiguousarray(vectors[waiting]), 1)
            near = dist[:, 0] <= reach
            found[waiting[near]] = owner[clustered[nearest[near, 0]]]
        rest = waiting[found[waiting] < 0]
        if len(rest) >= min_faces:   # 2. the others among themselves: new clusters
            labels = cluster(vectors[rest], max_distance, min_faces)
            for label in np.unique(labels[labels >= 0]):
                members = rest[labels == label]
                found[members] = ids[members].min()
        claimed = 0
        with self.engine.begin() as conn:
            for cid in np.unique(found[found >= 0]):
                for chunk in in_chunks(ids[found == cid].tolist()):
                    claimed += conn.execute(update(uf).where(uf.c.id.in_(chunk), uf.c.cluster_id.is_(None))
                                            .values(cluster_id=int(cid))).rowcount
        return claimed

    def purge_unknown(self, keep_days: float, max_faces: int, now: datetime | None = None) -> int:
        """Delete the faces seen more than keep_days ago (by the database's clock, or `now`), and
        the oldest beyond max_faces (0: no limit); how many went. Logged as "forget"."""
        def doomed(conn: Connection) -> list[int]:
            ids: set[int] = set()
            if keep_days > 0:
                since = (now or database_now(conn)) - timedelta(days=keep_days)
                ids.update(conn.execute(select(uf.c.id).where(uf.c.seen_at < since)).scalars())
            if max_faces > 0:
                ids.update(conn.execute(select(uf.c.id).order_by(uf.c.seen_at.desc(), uf.c.id.desc())
                                        .offset(max_faces)).scalars())
            return sorted(ids)
        return self._forget(doomed)

    def forget_unknown(self, cluster_id: int | None = None, face_ids: Sequence[int] | None = None) -> int:
        """Delete one cluster's faces, these faces, or (neither given) every unknown face; how many went.
        NotFound for a cluster with no faces."""
        def doomed(conn: Connection) -> list[int]:
            query = select(uf.c.id)
            if cluster_id is not None:
                query = query.where(uf.c.cluster_id == int(cluster_id))
            ids = list(conn.execute(query).scalars())
            if face_ids is not None:
                ids = sorted(set(ids) & {int(i) for i in face_ids})
            if cluster_id is not None and not ids:
                raise NotFoundError(f"no unknown cluster {cluster_id}")
            return ids
        return self._forget(doomed)

    def _forget(self, doomed: Callable[[Connection], list[int]]) -> int:
        with self._write:
            with self.engine.begin() as conn:
                before = serialise_writes(conn)
                ids = doomed(conn)
                for chunk in in_chunks(ids):
                    conn.execute(delete(uf).where(uf.c.id.in_(chunk)))
                last = self._log(conn, "forget", ids) if ids else None
            if last is not None:   # nothing in the index to change; the watermark moves on
                self._apply(lambda: None, (before, last))
        return len(ids)

    def unknown_clusters(self, page_size: int, page_token: str = "") -> UnknownPage:
        """Clusters largest first (ties: the older cluster first), a page at a time."""
        offset = decode_token(page_token, "u")
        with self.engine.connect() as conn:
            size = func.count().label("size")
            rows = conn.execute(select(uf.c.cluster_id, size, func.min(uf.c.seen_at).label("first"),
                                       func.max(uf.c.seen_at).label("last"))
                                .where(uf.c.cluster_id.is_not(None)).group_by(uf.c.cluster_id)
                                .order_by(size.desc(), uf.c.cluster_id).offset(offset).limit(page_size + 1)).all()
            out: list[UnknownCluster] = []
            for r in rows[:page_size]:
                samples = list(conn.execute(select(uf.c.id).where(uf.c.cluster_id == r.cluster_id)
                                            .order_by(uf.c.seen_at.desc(), uf.c.id.desc()).limit(SAMPLES)).scalars())
                sources = sorted(conn.execute(select(uf.c.source).where(uf.c.cluster_id == r.cluster_id)
                                              .distinct().limit(SAMPLES)).scalars())
                out.append(UnknownCluster(r.cluster_id, r.size, aware(r.first), aware(r.last), samples, sources))
            waiting = conn.execute(select(func.count()).where(uf.c.cluster_id.is_(None))).scalar() or 0
            total = conn.execute(select(func.count()).select_from(uf)).scalar() or 0
        token = encode_token(offset + page_size, "u") if len(rows) > page_size else ""
        return UnknownPage(out, token, waiting, total)

    def unknown_face_image(self, face_id: int) -> bytes:
        with self.engine.connect() as conn:
            row = conn.execute(select(uf.c.crop_jpeg).where(uf.c.id == int(face_id))).first()
        if row is None or row.crop_jpeg is None:
            raise NotFoundError(f"no unknown face {face_id}" if row is None else f"unknown face {face_id} has no image")
        return bytes(row.crop_jpeg)

    def unknown_cluster_faces(self, cluster_id: int) -> list[tuple[int, np.ndarray, bytes | None]]:
        """(face id, embedding, crop JPEG) of one cluster's faces of this gallery's model, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(uf.c.id, uf.c.embedding, uf.c.crop_jpeg)
                                .where(uf.c.cluster_id == int(cluster_id), uf.c.model_id == self.model_id)
                                .order_by(uf.c.id)).all()
        if not rows:
            raise NotFoundError(f"no unknown cluster {cluster_id}")
        vectors = decode_vectors([r.embedding for r in rows], self.dimension)
        return [(r.id, v, None if r.crop_jpeg is None else bytes(r.crop_jpeg)) for r, v in zip(rows, vectors)]

    def unknown_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(uf)).scalar_one())
