"""The Gallery: identities and faces in SQL, searched through a vector index.

SQL is the source of truth. A write commits to SQL first (with a row in the
`changes` log) and only then touches the index, so an acknowledged enrolment
survives any crash: start-up loads the newest snapshot and replays the log
after its watermark, or rebuilds the index from SQL.

Writers are serialised; the index and the in-memory face map (face id ->
identity) sit behind a readers-writer lock and change together, so searches
run concurrently and never see a half-applied change.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from filelock import FileLock, Timeout
from sqlalchemy import (
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

from facesearch.embedder.distances import DEFAULT_CUTOFF, SCALE, from_squared_l2, to_squared_l2

from . import calibration, snapshot
from .calibration import Calibration
from .config import GalleryConfig
from .errors import (
    CalibrationError,
    GalleryError,
    GalleryLockedError,
    InvalidEmbeddingError,
    ModelMismatchError,
    NotFoundError,
)
from .facemap import GONE, FaceMap
from .index import FaissIndex, VectorIndex
from .migrate import upgrade
from .rwlock import RWLock
from .schema import changes, faces, gallery_meta, identities

log = logging.getLogger(__name__)

REBUILD_CHUNK = 50_000
CALIBRATION_KEY = "calibration"   # gallery_meta row: the applied calibration as JSON
CALIBRATION_TTL_S = 2.0           # how stale a process's copy of the applied cutoff may be (other writers)


@dataclass
class NewFace:
    embedding: np.ndarray
    source_sha256: str | None = None
    source_path: str | None = None
    box: tuple[int, int, int, int] | None = None   # x, y, width, height
    detection_score: float | None = None
    crop_jpeg: bytes | None = None


@dataclass
class Enrolment:
    identity_id: str
    faces: list[NewFace]
    display_name: str | None = None   # None keeps the stored value
    metadata: dict | None = None


@dataclass
class AddResult:
    identity_id: str
    created: bool
    face_ids: list[int]


@dataclass
class Identity:
    identity_id: str
    display_name: str
    metadata: dict
    face_ids: list[int] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def face_count(self) -> int:
        return len(self.face_ids)


@dataclass(frozen=True)
class Match:
    identity_id: str
    display_name: str
    distance: float   # service scale: 3 * ||a - b||^2
    face_id: int


@dataclass(frozen=True)
class GalleryInfo:
    model_id: str
    dimension: int
    identity_count: int
    face_count: int
    index_type: str


@dataclass(frozen=True)
class AppliedCalibration:
    """A calibration stored in gallery_meta, with when it was applied and the change it saw last."""
    calibration: Calibration
    calibrated_at: datetime
    seq: int                       # the change log's last seq when the faces were read
    changes_since: int = 0         # faces enrolled or deleted since (filled in by calibration_status)

    @property
    def stale(self) -> bool:
        return self.changes_since > 0


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")   # an acknowledged commit survives power loss too
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()


class Gallery:
    """Open with Gallery.open(); close() (or a with-block) snapshots the index."""

    def __init__(self, engine: Engine, config: GalleryConfig, model_id: str, dimension: int,
                 index: VectorIndex, lock: FileLock | None):
        self.engine = engine
        self.config = config
        self.model_id = model_id
        self.dimension = dimension
        self.index = index
        self.map = FaceMap()
        self._lock_file = lock
        self._write = threading.Lock()
        self._rw = RWLock()
        self._applied_seq = 0
        self._snapshot_seq = 0
        self._closed = False
        self._cutoff_cache: tuple[float, float | None] = (-np.inf, None)   # (read at, calibrated cutoff)

    # -- opening --------------------------------------------------------------
    @classmethod
    def open(cls, config: GalleryConfig | None = None, *, model_id: str | None = None,
             dimension: int | None = None, lock: bool = True) -> "Gallery":
        """Open (creating or migrating) the gallery and load or rebuild its index.

        model_id/dimension: the model this process embeds with. A gallery with
        faces of another model is refused (reindex it); an empty one adopts it.
        lock: hold the data directory so that no other process writes it.
        """
        config = config or GalleryConfig.from_env()
        data_dir = Path(config.data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GalleryError(f"cannot create the data directory {data_dir}: {exc}") from None
        if not os.access(data_dir, os.W_OK):
            raise GalleryError(f"the data directory {data_dir} is not writable")
        file_lock = _hold(data_dir) if lock else None
        try:
            engine = create_engine(config.url)
            if engine.dialect.name == "sqlite":
                _sqlite_pragmas(engine)
            upgrade(engine)
            model_id, dimension = _bind_model(engine, model_id, dimension)
            gallery = cls(engine, config, model_id, dimension, FaissIndex(dimension, config.index), file_lock)
            gallery._load_index()
            return gallery
        except BaseException:
            if file_lock is not None:
                file_lock.release()
            raise

    def _snapshot_key(self) -> snapshot.SnapshotKey:
        return snapshot.SnapshotKey(self.model_id, self.dimension, self.config.index.label)

    @property
    def snapshot_dir(self) -> Path:
        return Path(self.config.data_dir) / "index"

    def _load_map(self, conn) -> None:
        self.map = FaceMap()
        self.map.names = {r.id: (r.identity_id, r.display_name) for r in conn.execute(
            select(identities.c.id, identities.c.identity_id, identities.c.display_name))}
        last_id = 0
        while rows := conn.execute(select(faces.c.id, faces.c.identity_pk).where(faces.c.id > last_id)
                                   .order_by(faces.c.id).limit(REBUILD_CHUNK * 4)).all():
            self.map.add([r.id for r in rows], [r.identity_pk for r in rows])
            last_id = rows[-1].id

    def _load_index(self) -> None:
        watermark = snapshot.read(self.snapshot_dir, self._snapshot_key(), self.index)
        with self.engine.connect() as conn:
            self._load_map(conn)
            last = conn.execute(select(func.max(changes.c.seq))).scalar() or 0
            first = conn.execute(select(func.min(changes.c.seq))).scalar()
            if watermark is not None and watermark > last:
                log.warning("index snapshot is newer than the database (seq %d > %d); rebuilding", watermark, last)
                watermark = None
            if watermark is not None and first is not None and first > watermark + 1:
                log.warning("change log no longer reaches back to the snapshot; rebuilding")
                watermark = None
            if watermark is None:
                self.index = FaissIndex(self.dimension, self.config.index)
                self._rebuild(conn)
                self._applied_seq = last
                self.snapshot()
                return
            self._replay(conn, watermark)
            self._applied_seq, self._snapshot_seq = last, watermark
            log.info("loaded index snapshot at seq %d and replayed %d change(s)", watermark, last - watermark)

    def _rebuild(self, conn) -> None:
        """Index every face in SQL in one add, so IVF trains on all of them and HNSW builds once."""
        id_parts, vector_parts, last_id = [], [], 0
        while True:
            rows = conn.execute(select(faces.c.id, faces.c.embedding).where(faces.c.id > last_id)
                                .order_by(faces.c.id).limit(REBUILD_CHUNK)).all()
            if not rows:
                break
            id_parts.append(np.fromiter((r.id for r in rows), np.int64, len(rows)))
            vector_parts.append(self._vectors(r.embedding for r in rows))
            last_id = int(id_parts[-1][-1])
        if id_parts:
            self.index.add(np.concatenate(id_parts), np.vstack(vector_parts))
        log.info("rebuilt the %s index from SQL: %d faces", self.config.index.kind, len(self.index))

    def _replay(self, conn, watermark: int) -> None:
        rows = conn.execute(select(changes.c.op, changes.c.face_id).where(changes.c.seq > watermark)
                            .order_by(changes.c.seq)).all()
        deleted = np.array([r.face_id for r in rows if r.op == "delete"], np.int64)
        added = {r.face_id for r in rows if r.op == "add"} - set(deleted.tolist())
        if len(deleted):
            self.index.remove(deleted)
        if added:
            present = conn.execute(select(faces.c.id, faces.c.embedding).where(faces.c.id.in_(sorted(added)))
                                   .order_by(faces.c.id)).all()
            ids = np.fromiter((r.id for r in present), np.int64, len(present))
            fresh = ~np.isin(ids, self.index.ids())
            self.index.add(ids[fresh], self._vectors(r.embedding for r in present)[fresh])

    # -- validation -------------------------------------------------------------
    def _vectors(self, blobs: Iterable[bytes]) -> np.ndarray:
        arr = [np.frombuffer(b, dtype="<f4") for b in blobs]
        return np.vstack(arr).astype(np.float32) if arr else np.zeros((0, self.dimension), np.float32)

    def check_model(self, model_id: str | None) -> None:
        if model_id is not None and model_id != self.model_id:
            raise ModelMismatchError(
                f"embeddings from model {model_id!r} cannot be used with this gallery, which holds "
                f"{self.model_id!r}; reindex the gallery or use {self.model_id!r}")

    def _embeddings(self, embeddings, what: str = "embedding") -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.dimension:
            raise InvalidEmbeddingError(
                f"{what} has {x.shape[-1] if x.ndim else 0} values; model {self.model_id} needs {self.dimension}")
        if not np.all(np.isfinite(x)):
            raise InvalidEmbeddingError(f"{what} holds NaN or infinite values")
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if np.any(norms < 1e-6):
            raise InvalidEmbeddingError(f"{what} is all zeros")
        return x / norms

    # -- writes -----------------------------------------------------------------
    def add_faces(self, identity_id: str, new_faces: Sequence[NewFace], *, display_name: str | None = None,
                  metadata: dict | None = None, model_id: str | None = None) -> AddResult:
        """Add faces to an identity, creating it if new. Returns once committed and searchable."""
        return self.add_batch([Enrolment(identity_id, list(new_faces), display_name, metadata)], model_id=model_id)[0]

    def add_batch(self, enrolments: Sequence["Enrolment"], *, model_id: str | None = None) -> list[AddResult]:
        """Several add_faces in one transaction: all are committed, or none."""
        self.check_model(model_id)
        for e in enrolments:
            if not e.identity_id or len(e.identity_id) > 255:
                raise InvalidEmbeddingError("identity_id must be 1 to 255 characters")
        all_faces = [f for e in enrolments for f in e.faces]
        vectors = self._embeddings([f.embedding for f in all_faces]) if all_faces else \
            np.zeros((0, self.dimension), np.float32)
        now = _now()
        with self._write:
            with self.engine.begin() as conn:
                pks, created = self._identities_for(conn, enrolments, now)
                owners = [pks[e.identity_id] for e in enrolments for _ in e.faces]
                face_ids: list[int] = []
                if all_faces:
                    rows = [_face_row(pk, f, v, self.model_id, now) for pk, f, v in zip(owners, all_faces, vectors)]
                    result = conn.execute(insert(faces).returning(faces.c.id, sort_by_parameter_order=True), rows)
                    face_ids = [r.id for r in result]
                last = self._log(conn, "add", face_ids) if face_ids else None
                names = {pk: (iid, name) for iid, (pk, name) in self._names_of(conn, pks).items()}

            def change():
                self.map.names.update(names)
                if face_ids:
                    self.index.add(np.array(face_ids, np.int64), vectors)
                    self.map.add(face_ids, owners)

            self._apply(change, last)
        results, offset, seen = [], 0, set()
        for e in enrolments:
            first = e.identity_id not in seen
            seen.add(e.identity_id)
            results.append(AddResult(e.identity_id, first and e.identity_id in created,
                                     face_ids[offset:offset + len(e.faces)]))
            offset += len(e.faces)
        return results

    def _identities_for(self, conn, enrolments, now) -> tuple[dict[str, int], set[str]]:
        """Primary keys of the enrolments' identities, creating the new ones in one statement."""
        wanted = list(dict.fromkeys(e.identity_id for e in enrolments))
        pks = {}
        for i in range(0, len(wanted), 500):
            pks.update(conn.execute(select(identities.c.identity_id, identities.c.id)
                                    .where(identities.c.identity_id.in_(wanted[i:i + 500]))).all())
        first = {}
        for e in enrolments:
            first.setdefault(e.identity_id, e)
        new = [iid for iid in wanted if iid not in pks]
        if new:
            rows = [{"identity_id": iid, "display_name": first[iid].display_name or "",
                     "metadata": dict(first[iid].metadata or {}), "created_at": now, "updated_at": now} for iid in new]
            result = conn.execute(insert(identities).returning(identities.c.identity_id, identities.c.id,
                                                               sort_by_parameter_order=True), rows)
            pks.update({r.identity_id: r.id for r in result})
        for e in enrolments:  # enrolments of existing identities may rename them
            if e.identity_id not in new or e is not first[e.identity_id]:
                self._update_identity(conn, pks[e.identity_id], e.display_name, e.metadata, now)
        return pks, set(new)

    @staticmethod
    def _names_of(conn, pks: dict[str, int]) -> dict[str, tuple[int, str]]:
        out = {}
        values = list(pks.values())
        for i in range(0, len(values), 500):
            for r in conn.execute(select(identities.c.id, identities.c.identity_id, identities.c.display_name)
                                  .where(identities.c.id.in_(values[i:i + 500]))):
                out[r.identity_id] = (r.id, r.display_name)
        return out

    @staticmethod
    def _update_identity(conn, pk: int, display_name: str | None, metadata: dict | None, now) -> None:
        values = {}
        if display_name is not None:
            values["display_name"] = display_name
        if metadata is not None:
            values["metadata"] = dict(metadata)
        if values:
            conn.execute(update(identities).where(identities.c.id == pk).values(updated_at=now, **values))

    @staticmethod
    def _log(conn, op: str, face_ids: list[int]) -> int:
        conn.execute(insert(changes), [{"op": op, "face_id": i} for i in face_ids])
        return conn.execute(select(func.max(changes.c.seq))).scalar()

    def _apply(self, change: Callable[[], object], seq: int | None) -> None:
        """Apply a committed change to the index and face map; on failure rebuild both from SQL."""
        with self._rw.write():
            try:
                change()
            except Exception:
                log.exception("index update failed after commit; rebuilding the index from SQL")
                self.index = FaissIndex(self.dimension, self.config.index)
                with self.engine.connect() as conn:
                    self._load_map(conn)
                    self._rebuild(conn)
            if seq is not None:
                self._applied_seq = seq

    def delete_face(self, face_id: int) -> None:
        with self._write:
            with self.engine.begin() as conn:
                if conn.execute(delete(faces).where(faces.c.id == int(face_id))).rowcount == 0:
                    raise NotFoundError(f"no face {face_id}")
                last = self._log(conn, "delete", [int(face_id)])

            def change():
                self.index.remove(np.array([face_id], np.int64))
                self.map.remove([face_id])

            self._apply(change, last)

    def delete_identity(self, identity_id: str) -> int:
        """Delete an identity and all its faces; returns how many faces went."""
        with self._write:
            with self.engine.begin() as conn:
                pk = self._pk(conn, identity_id)
                ids = list(conn.execute(select(faces.c.id).where(faces.c.identity_pk == pk)).scalars())
                conn.execute(delete(faces).where(faces.c.identity_pk == pk))
                conn.execute(delete(identities).where(identities.c.id == pk))
                last = self._log(conn, "delete", ids) if ids else None

            def change():
                self.map.names.pop(pk, None)
                if ids:
                    self.index.remove(np.array(ids, np.int64))
                    self.map.remove(ids)

            self._apply(change, last)
        return len(ids)

    def update_identity(self, identity_id: str, *, display_name: str | None = None,
                        metadata: dict | None = None) -> Identity:
        with self._write:
            with self.engine.begin() as conn:
                pk = self._pk(conn, identity_id)
                self._update_identity(conn, pk, display_name, metadata, _now())
                name = conn.execute(select(identities.c.display_name).where(identities.c.id == pk)).scalar()
            self._apply(lambda: self.map.names.__setitem__(pk, (identity_id, name)), None)
        return self.get_identity(identity_id)

    @staticmethod
    def _pk(conn, identity_id: str) -> int:
        pk = conn.execute(select(identities.c.id).where(identities.c.identity_id == identity_id)).scalar()
        if pk is None:
            raise NotFoundError(f"no identity {identity_id!r}")
        return pk

    # -- reads ------------------------------------------------------------------
    def get_identity(self, identity_id: str) -> Identity:
        with self.engine.connect() as conn:
            row = conn.execute(select(identities).where(identities.c.identity_id == identity_id)).first()
            if row is None:
                raise NotFoundError(f"no identity {identity_id!r}")
            ids = list(conn.execute(select(faces.c.id).where(faces.c.identity_pk == row.id)
                                    .order_by(faces.c.id)).scalars())
        return Identity(row.identity_id, row.display_name, row.metadata, ids, row.created_at, row.updated_at)

    def list_identities(self, page_size: int = 100, page_token: str = "") -> tuple[list[Identity], str]:
        """A page of identities in creation order; the token stays valid across writes."""
        page_size = max(1, min(int(page_size or 100), 1000))
        after = _decode_token(page_token)
        with self.engine.connect() as conn:
            rows = conn.execute(select(identities).where(identities.c.id > after)
                                .order_by(identities.c.id).limit(page_size + 1)).all()
            more, rows = len(rows) > page_size, rows[:page_size]
            by_pk: dict[int, list[int]] = {r.id: [] for r in rows}
            if rows:
                for pk, fid in conn.execute(select(faces.c.identity_pk, faces.c.id)
                                            .where(faces.c.identity_pk.in_(list(by_pk))).order_by(faces.c.id)):
                    by_pk[pk].append(fid)
        out = [Identity(r.identity_id, r.display_name, r.metadata, by_pk[r.id], r.created_at, r.updated_at)
               for r in rows]
        return out, (_encode_token(rows[-1].id) if more else "")

    def existing_sources(self, identity_id: str, sha256s: Iterable[str]) -> set[str]:
        """Which of these image hashes this identity already has faces from."""
        wanted = list(set(sha256s))
        if not wanted:
            return set()
        with self.engine.connect() as conn:
            q = (select(faces.c.source_sha256).join(identities, identities.c.id == faces.c.identity_pk)
                 .where(identities.c.identity_id == identity_id, faces.c.source_sha256.in_(wanted)))
            return set(conn.execute(q).scalars())

    def faces_of(self, identity_id: str) -> list[dict]:
        """An identity's faces with embeddings, for export."""
        with self.engine.connect() as conn:
            pk = self._pk(conn, identity_id)
            rows = conn.execute(select(faces).where(faces.c.identity_pk == pk).order_by(faces.c.id)).all()
        return [{"face_id": r.id, "embedding": np.frombuffer(r.embedding, "<f4").tolist(), "model_id": r.model_id,
                 "source_sha256": r.source_sha256, "source_path": r.source_path,
                 "box": [r.box_x, r.box_y, r.box_w, r.box_h] if r.box_x is not None else None} for r in rows]

    def face_crops(self, after_id: int = 0, limit: int = 256) -> list[tuple[int, bytes | None]]:
        """(face id, crop JPEG or None) in id order, for reindexing."""
        with self.engine.connect() as conn:
            return [(r.id, r.crop_jpeg) for r in conn.execute(
                select(faces.c.id, faces.c.crop_jpeg).where(faces.c.id > after_id).order_by(faces.c.id).limit(limit))]

    def info(self) -> GalleryInfo:
        with self.engine.connect() as conn:
            n_ids = conn.execute(select(func.count()).select_from(identities)).scalar()
            n_faces = conn.execute(select(func.count()).select_from(faces)).scalar()
        with self._rw.read():
            description = self.index.description
        return GalleryInfo(self.model_id, self.dimension, n_ids, n_faces, description)

    def search(self, embeddings, top_k: int = 1, max_distance: float | None = DEFAULT_CUTOFF,
               model_id: str | None = None) -> list[list[Match]]:
        """For each query, the best face of each identity, best first, at most top_k
        identities, distances on the service scale; max_distance=None: no cutoff."""
        self.check_model(model_id)
        queries = self._embeddings(embeddings, "query")
        top_k = max(1, int(top_k))
        cutoff = np.inf if max_distance is None else float(to_squared_l2(max_distance))
        results: list[list[Match] | None] = [None] * len(queries)
        todo = np.arange(len(queries))
        k = top_k * 4 + 4
        while len(todo):
            with self._rw.read():  # index and face map change together under the write side
                total = len(self.index)
                k = min(k, total)
                if k == 0:
                    for qi in todo:
                        results[qi] = []
                    break
                dist, ids = self.index.search(queries[todo], k)
                owners = self.map.owners(ids)
                names = self.map.names
                if top_k == 1:
                    per_query = _nearest(dist, ids, owners, names, cutoff)
                else:
                    per_query = [_group(d, i, o, names, cutoff, top_k) for d, i, o in zip(dist, ids, owners)]
            retry = []
            for qi, matches, farthest in zip(todo.tolist(), per_query, dist[:, -1].tolist()):
                # too few identities, yet the k-th face was still inside the cutoff: look deeper
                if len(matches) < top_k and k < total and farthest <= cutoff:
                    retry.append(qi)
                results[qi] = matches
            todo, k = np.array(retry, np.int64), k * 4
        return results  # type: ignore[return-value]

    def verify(self, embedding, identity_id: str, model_id: str | None = None) -> Match:
        """The distance from embedding to the nearest face of one identity (exact)."""
        self.check_model(model_id)
        query = self._embeddings(embedding)[0]
        with self.engine.connect() as conn:
            row = conn.execute(select(identities).where(identities.c.identity_id == identity_id)).first()
            if row is None:
                raise NotFoundError(f"no identity {identity_id!r}")
            stored = conn.execute(select(faces.c.id, faces.c.embedding).where(faces.c.identity_pk == row.id)).all()
        if not stored:
            raise NotFoundError(f"identity {identity_id!r} has no faces")
        diffs = self._vectors(r.embedding for r in stored) - query
        sq = np.einsum("ij,ij->i", diffs, diffs)
        best = int(np.argmin(sq))
        return Match(row.identity_id, row.display_name, float(from_squared_l2(sq[best])), stored[best].id)

    # -- calibration (docs/calibration.md) -------------------------------------------
    def labelled_vectors(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(identity pk per face, unit vectors, last change seq) of every face, read from SQL in one snapshot."""
        with self.engine.connect() as conn, conn.begin():
            seq = conn.execute(select(func.max(changes.c.seq))).scalar() or 0
            # plain driver tuples: SQLAlchemy rows cost seconds at 100k faces
            rows = conn.exec_driver_sql("SELECT identity_pk, embedding FROM faces").fetchall()
        labels = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        vectors = np.frombuffer(b"".join(r[1] for r in rows), "<f4").reshape(len(rows), self.dimension)
        return labels, vectors.astype(np.float32), seq

    def calibrate(self, target_fpir: float = 0.0, target_fnir: float = 0.0, apply: bool = False) -> Calibration:
        """Fit the cutoff to the enrolled faces (gallery.calibration); apply: store it for every process.

        Raises InvalidTargetError for a target outside [0, 1), CalibrationError when there is not
        enough data or no cutoff reaches the target.
        """
        calibration.targets(target_fpir, target_fnir)
        labels, vectors, seq = self.labelled_vectors()
        result = calibration.calibrate(vectors, labels, target_fpir, target_fnir)
        if apply:
            record = {**result.to_dict(), "calibrated_at": _now().isoformat(), "seq": seq, "model_id": self.model_id}
            with self.engine.begin() as conn:
                conn.execute(delete(gallery_meta).where(gallery_meta.c.key == CALIBRATION_KEY))
                conn.execute(insert(gallery_meta).values(key=CALIBRATION_KEY, value=json.dumps(record)))
            self._cutoff_cache = (time.monotonic(), result.max_distance)
            log.info("calibrated: max_distance %.4f (FPIR %.4f, FNIR %.4f) on %d faces of %d identities",
                     result.max_distance, result.expected_fpir, result.expected_fnir, result.faces, result.identities)
        return result

    def calibration_status(self) -> AppliedCalibration | None:
        """The applied calibration with how many faces changed since (from the change log); None if none."""
        with self.engine.connect() as conn:
            raw = conn.execute(select(gallery_meta.c.value).where(gallery_meta.c.key == CALIBRATION_KEY)).scalar()
            if raw is None:
                return None
            last = conn.execute(select(func.max(changes.c.seq))).scalar() or 0
        record = json.loads(raw)
        return AppliedCalibration(Calibration.from_dict(record), datetime.fromisoformat(record["calibrated_at"]),
                                  record["seq"], max(0, last - record["seq"]))

    def calibrated_cutoff(self) -> float | None:
        """The applied calibration's cutoff (None if none), re-read from SQL at most every CALIBRATION_TTL_S."""
        read_at, cutoff = self._cutoff_cache
        now = time.monotonic()
        if now - read_at >= CALIBRATION_TTL_S:
            with self.engine.connect() as conn:
                raw = conn.execute(select(gallery_meta.c.value).where(gallery_meta.c.key == CALIBRATION_KEY)).scalar()
            cutoff = json.loads(raw)["max_distance"] if raw is not None else None
            self._cutoff_cache = (now, cutoff)
        return cutoff

    def recalibrate_if_due(self, every: int) -> Calibration | None:
        """Recalibrate with the applied calibration's targets once `every` faces changed since; else None."""
        status = self.calibration_status()
        if every <= 0 or status is None or status.changes_since < every:
            return None
        c = status.calibration
        try:
            return self.calibrate(c.target_fpir, c.target_fnir, apply=True)
        except CalibrationError as exc:
            log.warning("recalibration after %d changes failed, keeping max_distance %.4f: %s",
                        status.changes_since, c.max_distance, exc)
            return None

    # -- maintenance --------------------------------------------------------------
    @property
    def changes_since_snapshot(self) -> int:
        return self._applied_seq - self._snapshot_seq

    def snapshot(self) -> Path:
        """Write the index atomically with its watermark; prune the change log up to it."""
        with self._write, self._rw.read():
            path = snapshot.write(self.snapshot_dir, self._snapshot_key(), self._applied_seq, self.index)
            seq = self._applied_seq
        with self.engine.begin() as conn:
            conn.execute(delete(changes).where(changes.c.seq <= seq).where(
                changes.c.seq < select(func.max(changes.c.seq)).scalar_subquery()))
        self._snapshot_seq = seq
        return path

    def reindex(self, model_id: str, dimension: int, embed_crops: Callable[[list[bytes]], np.ndarray],
                batch_size: int = 64, progress: Callable[[int, int], None] | None = None) -> int:
        """Re-embed every stored crop with another model and switch to it atomically.

        embed_crops: JPEG crops -> (n, dimension) embeddings. Writes wait until the
        switch; searches go on against the old model meanwhile. Returns the face count.
        """
        with self._write:
            with self.engine.connect() as conn:
                total = conn.execute(select(func.count()).select_from(faces)).scalar()
                missing = conn.execute(select(func.count()).select_from(faces)
                                       .where(faces.c.crop_jpeg.is_(None))).scalar()
            if missing:
                raise GalleryError(f"{missing} of {total} faces have no stored crop, so they cannot be "
                                   "re-embedded; enrol them again from their images")
            ids, vectors, after = [], [], 0
            while batch := self.face_crops(after, batch_size):
                out = np.asarray(embed_crops([c for _, c in batch]), np.float32)
                if out.shape != (len(batch), dimension):
                    raise GalleryError(f"embed_crops returned shape {out.shape}, expected ({len(batch)}, {dimension})")
                ids += [i for i, _ in batch]
                vectors.append(out / np.linalg.norm(out, axis=1, keepdims=True))
                after = batch[-1][0]
                if progress:
                    progress(len(ids), total)
            new_vectors = np.vstack(vectors) if vectors else np.zeros((0, dimension), np.float32)
            fresh = FaissIndex(dimension, self.config.index)
            fresh.add(np.array(ids, np.int64), new_vectors)
            with self.engine.begin() as conn:
                if ids:
                    conn.execute(update(faces).where(faces.c.id == bindparam("fid")).values(
                        embedding=bindparam("emb"), model_id=model_id),
                        [{"fid": i, "emb": v.astype("<f4").tobytes()} for i, v in zip(ids, new_vectors)])
                _set_meta(conn, model_id, dimension)
                # a cutoff fitted to the old model's distances means nothing for the new one
                conn.execute(delete(gallery_meta).where(gallery_meta.c.key == CALIBRATION_KEY))
            self._cutoff_cache = (-np.inf, None)
            with self._rw.write():
                self.index, self.model_id, self.dimension = fresh, model_id, dimension
        self.snapshot()
        return len(ids)

    def close(self, snapshot: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if snapshot and self.changes_since_snapshot:
                self.snapshot()
        finally:
            self.engine.dispose()
            if self._lock_file is not None:
                self._lock_file.release()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _face_row(identity_pk: int, face: NewFace, vector: np.ndarray, model_id: str, now: datetime) -> dict:
    x, y, w, h = face.box if face.box else (None, None, None, None)
    return {"identity_pk": identity_pk, "embedding": vector.astype("<f4").tobytes(), "model_id": model_id,
            "source_sha256": face.source_sha256, "source_path": face.source_path,
            "box_x": x, "box_y": y, "box_w": w, "box_h": h, "detection_score": face.detection_score,
            "crop_jpeg": face.crop_jpeg, "created_at": now}


def _nearest(dist, ids, owners, names: dict, cutoff: float) -> list[list[Match]]:
    """_group for top_k = 1, vectorised: the first live face within the cutoff of each row."""
    valid = (owners != GONE) & (dist <= cutoff)
    rows, cols = np.arange(len(dist)), valid.argmax(1)
    out = []
    for ok, d, fid, owner in zip(valid.any(1).tolist(), dist[rows, cols].tolist(), ids[rows, cols].tolist(),
                                 owners[rows, cols].tolist()):
        if ok:
            identity_id, name = names[owner]
            out.append([Match(identity_id, name, SCALE * max(d, 0.0), fid)])
        else:
            out.append([])
    return out


def _group(dist, ids, owners, names: dict, cutoff: float, top_k: int) -> list[Match]:
    best: dict[int, Match] = {}
    for d, fid, owner in zip(dist.tolist(), ids.tolist(), owners.tolist()):
        if d > cutoff:
            break  # ascending: the rest are farther
        if owner == GONE or owner in best:
            continue  # empty slot or deleted face, or an identity already placed
        identity_id, name = names[owner]
        best[owner] = Match(identity_id, name, float(from_squared_l2(max(d, 0.0))), fid)
        if len(best) == top_k:
            break
    return list(best.values())


def _encode_token(pk: int) -> str:
    return base64.urlsafe_b64encode(f"i:{pk}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, value = raw.split(":", 1)
        if kind != "i":
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidEmbeddingError(f"page_token {token!r} is not one this service issued") from None


def _hold(data_dir: Path) -> FileLock:
    lock = FileLock(str(data_dir / "gallery.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = (data_dir / "gallery.pid").read_text().strip() if (data_dir / "gallery.pid").exists() else "?"
        raise GalleryLockedError(
            f"the data directory {data_dir} is in use by another process (pid {holder}); stop it, "
            "or send the work through that server (--server)") from None
    (data_dir / "gallery.pid").write_text(str(os.getpid()))
    return lock


def _bind_model(engine: Engine, model_id: str | None, dimension: int | None) -> tuple[str, int]:
    with engine.begin() as conn:
        meta = dict(conn.execute(select(gallery_meta.c.key, gallery_meta.c.value)).all())
        has_faces = conn.execute(select(faces.c.id).limit(1)).first() is not None
        if "model_id" in meta and (has_faces or model_id is None):
            stored = (meta["model_id"], int(meta["dimension"]))
            if model_id is not None and (model_id, dimension or stored[1]) != stored:
                raise ModelMismatchError(
                    f"this gallery holds faces embedded by {stored[0]!r} ({stored[1]}-d), not {model_id!r}; "
                    f"run `facesearch-indexer reindex --model {model_id}` to switch it")
            return stored
        if model_id is None or dimension is None:
            raise GalleryError("a new gallery needs the model id and dimension it will hold")
        _set_meta(conn, model_id, dimension)
        return model_id, dimension


def _set_meta(conn, model_id: str, dimension: int) -> None:
    conn.execute(delete(gallery_meta).where(gallery_meta.c.key.in_(["model_id", "dimension"])))
    conn.execute(insert(gallery_meta), [{"key": "model_id", "value": model_id},
                                        {"key": "dimension", "value": str(dimension)}])
