"""Switching the gallery to another model by re-embedding the stored crops."""

from __future__ import annotations

from typing import Callable

import numpy as np
from sqlalchemy import bindparam, func, select, update

from .errors import GalleryError
from .schema import faces
from .sql import bump_generation, set_meta


class Reindex:
    def reindex(self, model_id: str, dimension: int, embed_crops: Callable[[list[bytes]], np.ndarray],
                batch_size: int = 64, progress: Callable[[int, int], None] | None = None) -> int:
        """Re-embed every stored crop with another model and switch to it atomically.

        embed_crops: JPEG crops -> (n, dimension) embeddings. Writes wait until the
        switch; searches go on against the old model meanwhile. Returns the face count.
        """
        if self.index.durable:
            raise GalleryError(f"reindex is not supported yet with the {self.index.description} index; "
                               "use FACESEARCH_VECTOR_BACKEND=faiss to reindex")
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
            fresh = self._new_index(dimension)
            fresh.add(np.array(ids, np.int64), new_vectors)
            self._maintain_unshared(fresh)
            with self.engine.begin() as conn:
                if ids:
                    conn.execute(update(faces).where(faces.c.id == bindparam("fid")).values(
                        embedding=bindparam("emb"), model_id=model_id),
                        [{"fid": i, "emb": v.astype("<f4").tobytes()} for i, v in zip(ids, new_vectors)])
                set_meta(conn, model_id, dimension)
                self.forget_calibration(conn)
                new_generation = bump_generation(conn)
            with self._rw.write():
                old, self.index, self.model_id, self.dimension = self.index, fresh, model_id, dimension
                self.generation = new_generation
            old.close()
        self.snapshot()
        return len(ids)
