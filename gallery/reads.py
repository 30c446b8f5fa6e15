"""Reads: identities and faces from SQL; searches through the index and the face map."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, or_, select

from facesearch.embedder.distances import DEFAULT_CUTOFF, from_squared_l2, to_squared_l2

from .errors import ModelMismatchError, NotFoundError
from .grouping import MAX_CANDIDATES, group, nearest
from .paging import decode_token, encode_token
from .records import GalleryInfo, Identity, Match, StoredFace, decode_vectors, identity_of, stored_face
from .schema import faces, identities
from .sql import in_chunks, index_ts
from .validate import unit_vectors
from .state import GalleryState

MAX_PAGE = 1000
# What list_faces and get_face read of a face: everything but the embedding and the crop itself.
FACE_COLUMNS = (faces.c.id, identities.c.identity_id, faces.c.model_id, faces.c.box_x, faces.c.box_y,
                faces.c.box_w, faces.c.box_h, faces.c.detection_score, faces.c.source_sha256,
                faces.c.source_path, faces.c.created_at, faces.c.crop_jpeg.is_not(None).label("has_image"))


class Reads(GalleryState):
    """Gallery methods that only read."""

    def check_model(self, model_id: str | None) -> None:
        if model_id is not None and model_id != self.model_id:
            raise ModelMismatchError(
                f"embeddings from model {model_id!r} cannot be used with this gallery, which holds "
                f"{self.model_id!r}; reindex the gallery or use {self.model_id!r}")

    def _embeddings(self, embeddings: object, what: str = "embedding") -> npt.NDArray[np.float32]:
        return unit_vectors(embeddings, self.dimension, self.model_id, what)

    def get_identity(self, identity_id: str) -> Identity:
        with self.engine.connect() as conn:
            row = conn.execute(select(identities).where(identities.c.identity_id == identity_id)).first()
            if row is None:
                raise NotFoundError(f"no identity {identity_id!r}")
            ids = list(conn.execute(select(faces.c.id).where(faces.c.identity_pk == row.id)
                                    .order_by(faces.c.id)).scalars())
        return identity_of(row, ids)

    def list_identities(self, page_size: int = 100, page_token: str = "",
                        prefix: str = "") -> tuple[list[Identity], str]:
        """A page of identities in creation order; the token stays valid across writes.
        prefix: only identities whose identity_id or display_name starts with it (case-sensitive,
        alike on every database); pass the same prefix with the page token."""
        page_size = max(1, min(int(page_size or 100), MAX_PAGE))
        after = decode_token(page_token)
        query = select(identities).where(identities.c.id > after)
        if prefix:
            query = query.where(or_(*(func.substr(column, 1, len(prefix)) == prefix
                                      for column in (identities.c.identity_id, identities.c.display_name))))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(identities.c.id).limit(page_size + 1)).all()
            more, rows = len(rows) > page_size, rows[:page_size]
            by_pk: dict[int, list[int]] = {r.id: [] for r in rows}
            for chunk in in_chunks(list(by_pk)):
                for pk, fid in conn.execute(select(faces.c.identity_pk, faces.c.id)
                                            .where(faces.c.identity_pk.in_(chunk)).order_by(faces.c.id)):
                    by_pk[pk].append(fid)
        return [identity_of(r, by_pk[r.id]) for r in rows], (encode_token(rows[-1].id) if more else "")

    def list_faces(self, identity_id: str, page_size: int = 100, page_token: str = "") -> tuple[list[StoredFace], str]:
        """A page of an identity's faces in enrolment (face id) order; NotFoundError for no such identity."""
        page_size = max(1, min(int(page_size or 100), MAX_PAGE))
        after = decode_token(page_token, "f")
        with self.engine.connect() as conn:
            pk = self._pk(conn, identity_id)
            rows = conn.execute(select(*FACE_COLUMNS).join(identities, identities.c.id == faces.c.identity_pk)
                                .where(faces.c.identity_pk == pk, faces.c.id > after)
                                .order_by(faces.c.id).limit(page_size + 1)).all()
        more, rows = len(rows) > page_size, rows[:page_size]
        return [stored_face(r) for r in rows], (encode_token(rows[-1].id, "f") if more else "")

    def get_face(self, face_id: int) -> StoredFace:
        with self.engine.connect() as conn:
            row = conn.execute(select(*FACE_COLUMNS).join(identities, identities.c.id == faces.c.identity_pk)
                               .where(faces.c.id == int(face_id))).first()
        if row is None:
            raise NotFoundError(f"no face {face_id}")
        return stored_face(row)

    def face_image(self, face_id: int) -> bytes:
        """The face's stored crop (JPEG); NotFoundError when there is no such face or it has no crop."""
        with self.engine.connect() as conn:
            row = conn.execute(select(faces.c.crop_jpeg).where(faces.c.id == int(face_id))).first()
        if row is None:
            raise NotFoundError(f"no face {face_id}")
        if row.crop_jpeg is None:
            raise NotFoundError(f"face {face_id} has no stored image")
        return bytes(row.crop_jpeg)

    def existing_sources(self, identity_id: str, sha256s: Iterable[str]) -> set[str]:
        """Which of these image hashes this identity already has faces from."""
        wanted = sorted(set(sha256s))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in in_chunks(wanted):
                q = (select(faces.c.source_sha256).join(identities, identities.c.id == faces.c.identity_pk)
                     .where(identities.c.identity_id == identity_id, faces.c.source_sha256.in_(chunk)))
                found.update(conn.execute(q).scalars())
        return found

    def faces_of(self, identity_id: str) -> list[dict[str, Any]]:
        """An identity's faces with embeddings, for export."""
        with self.engine.connect() as conn:
            pk = self._pk(conn, identity_id)
            rows = conn.execute(select(faces).where(faces.c.identity_pk == pk).order_by(faces.c.id)).all()
        return [{"face_id": r.id, "embedding": np.frombuffer(bytes(r.embedding), "<f4").tolist(),
                 "model_id": r.model_id, "source_sha256": r.source_sha256, "source_path": r.source_path,
                 "box": [r.box_x, r.box_y, r.box_w, r.box_h] if r.box_x is not None else None} for r in rows]

    def face_crops(self, after_id: int = 0, limit: int = 256) -> list[tuple[int, bytes | None]]:
        """(face id, crop JPEG or None) in id order, for reindexing."""
        with self.engine.connect() as conn:
            return [(r.id, None if r.crop_jpeg is None else bytes(r.crop_jpeg)) for r in conn.execute(
                select(faces.c.id, faces.c.crop_jpeg).where(faces.c.id > after_id).order_by(faces.c.id).limit(limit))]

    def info(self) -> GalleryInfo:
        with self.engine.connect() as conn:
            n_ids = int(conn.execute(select(func.count()).select_from(identities)).scalar_one())
            n_faces = int(conn.execute(select(func.count()).select_from(faces)).scalar_one())
        return GalleryInfo(self.model_id, self.dimension, n_ids, n_faces, self.index_description)

    # -- the index, without reaching into it ------------------------------------
    @property
    def index_description(self) -> str:
        """What the vector index is, e.g. "flat" or "ivf(nlist=64,nprobe=16)"."""
        with self._rw.read():
            return self.index.description

    def indexed_count(self) -> int:
        """How many faces the vector index holds (equal to SQL's count once open)."""
        with self._rw.read():
            return len(self.index)

    def indexed_ids(self) -> np.ndarray:
        """The face ids in the vector index, ascending."""
        with self._rw.read():
            return self.index.ids()

    def indexed_vectors(self, face_ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The vectors the index holds for these face ids (KeyError for one it lacks)."""
        with self._rw.read():
            return self.index.vectors(np.asarray(face_ids, np.int64).reshape(-1))

    def nearest_faces(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The index's raw answer: (squared L2 distances, face ids), each (n, k), no grouping,
        no validation (queries must be unit float32 vectors). For benchmarks and checks."""
        with self._rw.read():
            return self.index.search(queries, k)

    # -- search -------------------------------------------------------------------
    def search(self, embeddings: object, top_k: int = 1, max_distance: float | None = DEFAULT_CUTOFF,
               model_id: str | None = None) -> list[list[Match]]:
        """For each query, the best face of each identity, best first, at most top_k
        identities, distances on the service scale; max_distance=None: no cutoff. A query
        looks at its MAX_CANDIDATES nearest faces at most (grouping.py).
        model_id: the model the queries were embedded by, checked against the gallery's (again
        under the index lock, so a reindex followed meanwhile cannot slip between)."""
        self.check_model(model_id)
        queries = self._embeddings(embeddings, "query")
        top_k = max(1, int(top_k))
        cutoff = np.inf if max_distance is None else float(to_squared_l2(max_distance))
        results: list[list[Match] | None] = [None] * len(queries)
        todo = np.arange(len(queries))
        k = top_k * 4 + 4
        followed = False
        # a shared durable index: see every write any replica acknowledged (milvus_index.py)
        seen_ts = self._committed_index_ts() if self.index.durable else 0
        while len(todo):
            with self._rw.read():  # index and face map change together under the write side
                self.check_model(model_id)
                if seen_ts and self.index.durable:
                    self.index.read_after(seen_ts)
                # a shared durable index may hold more than this process counted (another replica's writes)
                total = np.inf if self.index.durable else len(self.index)
                k = int(min(k, total, MAX_CANDIDATES))
                if k == 0:
                    for empty in todo.tolist():
                        results[empty] = []
                    break
                dist, ids = self.index.search(queries[todo], k)
                unknown = self._unknown(ids, seen_ts) if self.index.durable and not followed else ()
                if not len(unknown):
                    owners = self.map.owners(ids)
                    names = self.map.names
                    if top_k == 1:
                        per_query = nearest(dist, ids, owners, names, cutoff)
                    else:
                        per_query = group(dist, ids, owners, names, cutoff, top_k)
            if len(unknown):   # another replica's write, in the shared index before our face map
                self.follow()
                followed = True
                self._orphans.update(dict.fromkeys(unknown[~self.map.known(unknown)].tolist(), seen_ts))
                continue
            retry: list[int] = []
            for qi, matches, farthest, kth in zip(todo.tolist(), per_query, dist[:, -1].tolist(), ids[:, -1].tolist()):
                # too few identities, yet there is a k-th face and it was still inside the cutoff: look deeper
                if len(matches) < top_k and k < min(total, MAX_CANDIDATES) and kth >= 0 and farthest <= cutoff:
                    retry.append(qi)
                results[qi] = matches
            todo, k = np.array(retry, np.int64), k * 4
        return [r if r is not None else [] for r in results]   # every query got its answer above

    def _unknown(self, ids: np.ndarray, seen_ts: int) -> np.ndarray:
        """Face ids in a search answer that the face map never saw, less the orphans found since the
        last committed write: an id in the index before its writer committed is looked up again once
        a newer write has committed (it may be that one), not left for the follower."""
        found = ids[ids >= 0]
        fresh = found[~self.map.known(found)]
        return np.array([i for i in set(fresh.tolist()) if self._orphans.get(i, -1) < seen_ts], np.int64)

    def _committed_index_ts(self) -> int:
        """The newest committed write's timestamp in the shared index, from SQL (one keyed row)."""
        with self.engine.connect() as conn:
            return index_ts(conn)

    def verify(self, embedding: object, identity_id: str, model_id: str | None = None) -> Match:
        """The distance from embedding to the nearest face of one identity (exact); model_id: the
        model that embedded it, checked against the gallery's and the stored faces' own."""
        self.check_model(model_id)
        query = self._embeddings(embedding)[0]
        with self.engine.connect() as conn:
            row = conn.execute(select(identities).where(identities.c.identity_id == identity_id)).first()
            if row is None:
                raise NotFoundError(f"no identity {identity_id!r}")
            stored = conn.execute(select(faces.c.id, faces.c.embedding, faces.c.model_id)
                                  .where(faces.c.identity_pk == row.id).order_by(faces.c.id)).all()
        for r in stored[:1]:
            self.check_model(model_id)   # the gallery may have followed a reindex meanwhile
            if model_id is not None and r.model_id != model_id:
                raise ModelMismatchError(f"identity {identity_id!r} holds faces of model {r.model_id!r}, "
                                         f"not {model_id!r}")
        if not stored:
            raise NotFoundError(f"identity {identity_id!r} has no faces")
        diffs = decode_vectors((r.embedding for r in stored), self.dimension) - query
        sq = np.einsum("ij,ij->i", diffs, diffs)
        best = int(np.argmin(sq))
        return Match(row.identity_id, row.display_name, float(from_squared_l2(sq[best])), stored[best].id)
