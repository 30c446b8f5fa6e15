"""Bringing the index back in line with SQL, the source of truth.

In-process index: at open, load the newest snapshot and replay the change log
after its watermark, or rebuild from SQL; snapshot() writes a new one and prunes
the log. Durable index: at open, reconcile it with SQL; snapshot() only prunes.
A change that fails in the index after its commit rebuilds index and face map.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, select

from . import snapshot
from .errors import GalleryError
from .facemap import FaceMap
from .index import Index, build_index, snapshot_label
from .records import decode_vectors
from .schema import changes, faces, identities
from .sql import generation, in_chunks, last_seq, pruned_through, raise_index_ts, serialise_writes
from .sql import snapshot as sql_snapshot
from .state import GalleryState, Logged

log = logging.getLogger(__name__)

REBUILD_CHUNK = 50_000
REPLAY_CHUNK = 50_000   # change-log rows per statement during replay


class Recovery(GalleryState):
    """Gallery methods that load, rebuild, replay and snapshot the index."""

    def _new_index(self, dimension: int | None = None, *, model_id: str | None = None,
                   generation: int | None = None) -> Index:
        """An index for the gallery's model and generation, or those given (a reindex's). With
        Milvus: that collection, opened as it is (created if missing or of another dimension)."""
        return build_index(self.config, dimension or self.dimension, model_id or self.model_id,
                           self.generation if generation is None else generation)

    def _maintain(self) -> None:
        """IVF (re)training or HNSW compaction, if due: built beside the index lock, so searches
        go on meanwhile, and swapped in under it. Call with the writer lock held (no changes)."""
        index = self.index
        if index.durable or not index.maintenance_due():
            return
        try:
            state = index.rebuilt()
        except Exception:   # the index as it is still answers correctly; tried again after the next write
            log.exception("rebuilding the %s index aside failed", index.description)
            return
        with self._rw.write():
            index.install(state)

    @staticmethod
    def _maintain_unshared(index: Index) -> None:
        """The same for an index no search sees yet."""
        if not index.durable and index.maintenance_due():
            index.install(index.rebuilt())

    def _snapshot_key(self) -> snapshot.SnapshotKey:
        return snapshot.SnapshotKey(self.model_id, self.dimension,
                                    snapshot_label(self.config.vector_backend, self.config.index), self.generation)

    @property
    def snapshot_dir(self) -> Path:
        return Path(self.config.data_dir) / "index"

    @property
    def changes_since_snapshot(self) -> int:
        return self._applied_seq - self._snapshot_seq

    def _load_map(self, conn: Connection) -> None:
        self.map = self._read_map(conn)

    @staticmethod
    def _read_map(conn: Connection) -> FaceMap:
        """The face map as SQL has it."""
        fmap = FaceMap()
        fmap.names = {r.id: (r.identity_id, r.display_name) for r in conn.execute(
            select(identities.c.id, identities.c.identity_id, identities.c.display_name))}
        last_id = 0
        while rows := conn.execute(select(faces.c.id, faces.c.identity_pk).where(faces.c.id > last_id)
                                   .order_by(faces.c.id).limit(REBUILD_CHUNK * 4)).all():
            fmap.add([r.id for r in rows], [r.identity_pk for r in rows])
            last_id = rows[-1].id
        return fmap

    def _load_index(self) -> None:
        if self.index.durable:
            self._reconcile_all()
            self._snapshot_seq = self._applied_seq
            return
        watermark = snapshot.read(self.snapshot_dir, self._snapshot_key(), self.index)
        with sql_snapshot(self.engine) as conn:   # map, index and last seq as of one moment
            self._load_map(conn)
            last = last_seq(conn)
            if watermark is not None and watermark > last:
                log.warning("index snapshot is newer than the database (seq %d > %d); rebuilding", watermark, last)
                watermark = None
            if watermark is not None and pruned_through(conn) > watermark:
                log.warning("change log no longer reaches back to the snapshot; rebuilding")
                watermark = None
            if watermark is None:
                self.index = self._new_index()
                self._rebuild(conn)
                self._applied_seq = last
                self.snapshot()
                return
            self._replay(conn, watermark)
            self._maintain_unshared(self.index)
            self._applied_seq, self._snapshot_seq = last, watermark
            log.info("loaded index snapshot at seq %d and replayed %d change(s)", watermark, last - watermark)

    def _stored(self, conn: Connection, ids: Iterable[int] | npt.NDArray[np.int64]
                ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """(ids, vectors, identity pks) of those of these face ids that SQL holds, ascending."""
        id_parts: list[npt.NDArray[np.int64]] = []
        vector_parts: list[npt.NDArray[np.float32]] = []
        owner_parts: list[npt.NDArray[np.int64]] = []
        for chunk in in_chunks(sorted(int(i) for i in ids)):
            rows = conn.execute(select(faces.c.id, faces.c.embedding, faces.c.identity_pk)
                                .where(faces.c.id.in_(chunk)).order_by(faces.c.id)).all()
            id_parts.append(np.fromiter((r.id for r in rows), np.int64, len(rows)))
            vector_parts.append(decode_vectors((r.embedding for r in rows), self.dimension))
            owner_parts.append(np.fromiter((r.identity_pk for r in rows), np.int64, len(rows)))
        if not id_parts:
            return np.zeros(0, np.int64), np.zeros((0, self.dimension), np.float32), np.zeros(0, np.int64)
        return np.concatenate(id_parts), np.vstack(vector_parts), np.concatenate(owner_parts)

    def _rebuild(self, conn: Connection, index: Index | None = None) -> None:
        """Index every face in SQL in one add, so IVF trains on all of them and HNSW builds once.
        index: a fresh index to fill instead of self.index."""
        index = self.index if index is None else index
        id_parts: list[npt.NDArray[np.int64]] = []
        vector_parts: list[npt.NDArray[np.float32]] = []
        last_id = 0
        while True:
            rows = conn.execute(select(faces.c.id, faces.c.embedding).where(faces.c.id > last_id)
                                .order_by(faces.c.id).limit(REBUILD_CHUNK)).all()
            if not rows:
                break
            id_parts.append(np.fromiter((r.id for r in rows), np.int64, len(rows)))
            vector_parts.append(decode_vectors((r.embedding for r in rows), self.dimension))
            last_id = int(id_parts[-1][-1])
        if id_parts:
            index.add(np.concatenate(id_parts), np.vstack(vector_parts))
            self._maintain_unshared(index)
        log.info("rebuilt the %s index from SQL: %d faces", index.description, len(index))

    def _replay(self, conn: Connection, watermark: int) -> None:
        """Apply the change log after the watermark, REPLAY_CHUNK rows at a time in seq order, so
        memory and statement size stay bounded however many changes are pending. In order, chunk by
        chunk, is exact: face ids are never reused, and an add whose face a later change deleted finds
        no row in SQL."""
        present = self.index.ids()   # what the snapshot held; replayed adds are new ids
        after = watermark
        while rows := conn.execute(select(changes.c.seq, changes.c.op, changes.c.face_id)
                                   .where(changes.c.seq > after).order_by(changes.c.seq)
                                   .limit(REPLAY_CHUNK)).all():
            after = rows[-1].seq
            deleted = np.array([r.face_id for r in rows if r.op == "delete"], np.int64)
            added = {r.face_id for r in rows if r.op == "add"} - set(deleted.tolist())
            if len(deleted):
                self.index.remove(deleted)
            if added:
                ids, vectors, _ = self._stored(conn, added)
                fresh = ~np.isin(ids, present)
                self.index.add(ids[fresh], vectors[fresh])

    def _reconcile_all(self) -> None:
        """A durable index: face map from SQL and index reconciled with it, holding every process's
        writers off meanwhile (a face another writer put in the index before its commit would
        otherwise look like an orphan and be removed)."""
        with self.engine.begin() as conn:
            self._applied_seq = serialise_writes(conn)
            self._load_map(conn)
            self._reconcile(conn)
        self._orphans = {}

    def _reconcile(self, conn: Connection) -> None:
        """A durable index: add the faces SQL has and it lacks, remove those SQL no longer has."""
        in_sql = np.sort(self.map.live_ids())
        in_index = self.index.ids()
        extra = np.setdiff1d(in_index, in_sql)
        if len(extra):
            self.index.remove(extra)
        missing = np.setdiff1d(in_sql, in_index)
        if len(missing):
            ids, vectors, _ = self._stored(conn, missing)
            self.index.add(ids, vectors)
            if self.index.durable:
                raise_index_ts(conn, self.index.write_ts)   # other replicas' searches see them too
        log.info("reconciled the %s index with SQL: %d added, %d removed", self.index.description,
                 len(missing), len(extra))

    def _apply(self, change: Callable[[], object], logged: Logged) -> None:
        """Apply a committed change to the index and face map; on failure rebuild both from SQL.

        logged: (the last seq committed before the change, its own last seq). The watermark moves
        to the latter only if this process had applied the former: otherwise another process's
        changes lie between, and follow() applies them (and this one again, idempotently).

        The rebuild is built aside and swapped in only once complete. If it fails too, the
        gallery is unhealthy (see `healthy`): snapshots are refused, so a partial index is never
        saved under a current watermark, and the next write (or recover()) tries again."""
        if self.unhealthy_reason is not None:  # an earlier rebuild failed: SQL already has this change
            self._recover_locked()
            return
        with self._rw.write():
            try:
                change()
                if logged is not None and logged[0] <= self._applied_seq:
                    self._applied_seq = logged[1]
                failed = False
            except Exception:
                log.exception("index update failed after commit; rebuilding the index from SQL")
                failed = True
        if failed:
            self._recover_locked()
        else:
            self._maintain()

    @property
    def healthy(self) -> bool:
        """False while the index may miss committed changes (a rebuild after a failed update failed)."""
        return self.unhealthy_reason is None

    def _set_health(self, reason: str | None) -> None:
        changed = reason != self.unhealthy_reason
        self.unhealthy_reason = reason
        if changed and self.on_health is not None:
            try:
                self.on_health(reason)
            except Exception:
                log.exception("the on_health hook failed")

    def recover(self) -> bool:
        """Rebuild the index from SQL if the gallery is unhealthy; True if healthy afterwards."""
        if self.unhealthy_reason is None:
            return True
        with self._write:
            return self._recover_locked()

    def _recover_locked(self) -> bool:
        """Rebuild index and face map from SQL aside, then swap them in (writer lock held)."""
        try:
            if self.index.durable:   # a new client too: one whose server went away may not reconnect
                with self.engine.connect() as conn:
                    if generation(conn) != self.generation:   # never recreate a reindex's dropped collection
                        self._follow_reindex()
                        return self.healthy
                fresh, old = self._new_index(), self.index
                with self._rw.write():
                    self.index = fresh
                    self._reconcile_all()
                _close_quietly(old)
            else:
                with sql_snapshot(self.engine) as conn:   # index, map and last seq as of one moment
                    last = last_seq(conn)
                    fresh_index = self._new_index()
                    try:
                        self._rebuild(conn, fresh_index)
                        fresh_map = self._read_map(conn)
                    except BaseException:
                        fresh_index.close()
                        raise
                    old_index = self.index
                    with self._rw.write():
                        self.index, self.map, self._applied_seq = fresh_index, fresh_map, last
                    old_index.close()
        except Exception as exc:
            log.exception("rebuilding the index from SQL failed; the gallery is unhealthy until a rebuild succeeds")
            self._set_health(f"the index may miss committed changes: the rebuild from SQL failed ({exc!r})")
            return False
        if self.unhealthy_reason is not None:
            log.warning("the index was rebuilt from SQL; the gallery is healthy again")
        self._set_health(None)
        return True

    def snapshot(self) -> Path | None:
        """Write the index atomically with its watermark; prune the change log up to it, or to
        the oldest watermark of another live replica (follow.py). A durable index needs no
        snapshot: only the log is pruned (and None returned).
        Refused (GalleryError) while the gallery is unhealthy: the index may miss changes."""
        # Only the writer lock: every index change holds it, so the index and its watermark stay
        # still while the files are written, and searches never wait (taking the read side would
        # queue them behind the next writer, the lock being writer-preferring).
        with self._write:
            if self.unhealthy_reason is not None:
                raise GalleryError(f"no snapshot while the gallery is unhealthy: {self.unhealthy_reason}")
            path = None if self.index.durable else \
                snapshot.write(self.snapshot_dir, self._snapshot_key(), self._applied_seq, self.index)
            seq = self._applied_seq
        self._snapshot_seq = seq
        self._prune(seq)
        return path


def _close_quietly(index: Index) -> None:
    try:
        index.close()
    except Exception:
        log.warning("closing the replaced %s index failed", index.description, exc_info=True)
