"""Switching the gallery to another model by re-embedding the stored crops.

The new vectors fill a new index built aside, while searches go on against the old one;
one SQL transaction then rewrites the embeddings, the model and the generation, and the
index is swapped in under the lock. With Milvus the new index is a new collection, named
for the new model and generation (milvus_names.py): if anything fails before the commit
it is dropped and the gallery stays as it was; after the swap the old collection is
dropped. Other replicas follow the generation SQL holds (follow.py) within their follow
interval, opening the new collection (searches on them fail until then).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import numpy.typing as npt
from filelock import FileLock, Timeout
from sqlalchemy import bindparam, func, select, text, update

from .errors import GalleryError
from .index import Index
from .schema import faces
from .sql import REINDEX_LOCK, bump_generation, generation, raise_index_ts, serialise_writes, set_meta
from .state import GalleryState

log = logging.getLogger(__name__)


class Reindex(GalleryState):
    def reindex(self, model_id: str, dimension: int, embed_crops: Callable[[list[bytes]], np.ndarray],
                batch_size: int = 64, progress: Callable[[int, int], None] | None = None) -> int:
        """Re-embed every stored crop with another model and switch to it atomically.

        embed_crops: JPEG crops -> (n, dimension) embeddings. Writes wait until the
        switch; searches go on against the old model meanwhile. Returns the face count.
        """
        with self._write, self._reindexing():
            with self.engine.connect() as conn:
                total = int(conn.execute(select(func.count()).select_from(faces)).scalar_one())
                missing = int(conn.execute(select(func.count()).select_from(faces)
                                           .where(faces.c.crop_jpeg.is_(None))).scalar_one())
                target = generation(conn) + 1
            if missing:
                raise GalleryError(f"{missing} of {total} faces have no stored crop, so they cannot be "
                                   "re-embedded; enrol them again from their images")
            ids: list[int] = []
            vectors: list[npt.NDArray[np.float32]] = []
            after = 0
            while batch := self.face_crops(after, batch_size):
                crops = [c for _, c in batch if c is not None]
                if len(crops) != len(batch):
                    raise GalleryError("a face lost its stored crop during the reindex; nothing changed: run it again")
                out = np.asarray(embed_crops(crops), np.float32)
                if out.shape != (len(batch), dimension):
                    raise GalleryError(f"embed_crops returned shape {out.shape}, expected ({len(batch)}, {dimension})")
                ids += [i for i, _ in batch]
                vectors.append(out / np.linalg.norm(out, axis=1, keepdims=True))
                after = batch[-1][0]
                if progress:
                    progress(len(ids), total)
            new_vectors = np.vstack(vectors) if vectors else np.zeros((0, dimension), np.float32)
            fresh = self._index_aside(model_id, dimension, target)
            try:
                fresh.add(np.array(ids, np.int64), new_vectors)
                self._maintain_unshared(fresh)
                with self.engine.begin() as conn:
                    serialise_writes(conn)
                    if conn.execute(select(func.count()).select_from(faces).where(faces.c.id > after)).scalar():
                        raise GalleryError("faces were enrolled by another process during the reindex; "
                                           "nothing changed: run it again")
                    if ids:
                        conn.execute(update(faces).where(faces.c.id == bindparam("fid")).values(
                            embedding=bindparam("emb"), model_id=model_id),
                            [{"fid": i, "emb": v.astype("<f4").tobytes()} for i, v in zip(ids, new_vectors)])
                    set_meta(conn, model_id, dimension)
                    if fresh.durable:
                        raise_index_ts(conn, fresh.write_ts)   # searches on it see all it holds
                    self.forget_calibration(conn)
                    if bump_generation(conn) != target:   # rolls the transaction back
                        raise GalleryError("another process reindexed the gallery meanwhile; nothing changed here")
            except BaseException:
                with self.engine.connect() as conn:
                    live = generation(conn) >= target
                if live:   # another reindex (one without this lock) made that generation current: keep it
                    fresh.close()
                else:
                    _discard(fresh)   # SQL still names the old generation: the new index was never current
                raise
            with self._rw.write():
                old, self.index, self.model_id, self.dimension = self.index, fresh, model_id, dimension
                self.generation = target
            _discard(old)   # Milvus: the old collection goes; other replicas re-open by generation
        self.snapshot()
        return len(ids)

    @contextmanager
    def _reindexing(self) -> Iterator[None]:
        """One reindex at a time across every process of the database (two would both fill generation
        N+1, and the loser's clean-up would drop the winner's live collection): a session-level
        advisory lock on PostgreSQL, a lock file beside the database file on SQLite."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                if not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": REINDEX_LOCK}).scalar():
                    raise GalleryError("another process is reindexing this gallery; wait for it to finish")
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": REINDEX_LOCK})
                    conn.commit()
            return
        lock = FileLock(f"{self.engine.url.database}.reindex.lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise GalleryError("another process is reindexing this gallery; wait for it to finish") from None
        try:
            yield
        finally:
            lock.release()

    def _index_aside(self, model_id: str, dimension: int, target: int) -> Index:
        """An empty index for the new model and generation, beside the one in use."""
        fresh = self._new_index(dimension, model_id=model_id, generation=target)
        if not fresh.durable:
            return fresh
        name = fresh.collection
        if self.index.durable and name == self.index.collection:
            fresh.close()   # never drop it: it is the one in use
            raise GalleryError(f"the new model's Milvus collection would be {name}, the one in use; "
                               "set FACESEARCH_MILVUS_COLLECTION to tell them apart")
        if fresh.opened_existing:   # left by a reindex that failed before its commit
            log.warning("dropping the Milvus collection %s, left by an unfinished reindex", name)
            fresh.drop()
            fresh = self._new_index(dimension, model_id=model_id, generation=target)
        return fresh


def _discard(index: Index) -> None:
    """Drop an index no search uses any more; a failure only leaves it behind."""
    try:
        index.drop()
    except Exception:
        log.exception("could not drop the %s index no longer in use; drop it by hand",
                      index.collection if index.durable else index.description)
