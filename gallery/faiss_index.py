"""FaissIndex: the in-process vector index (flat, ivf or hnsw), and its snapshot files.

Vectors are unit-norm float32; distances are squared L2, as FAISS returns them
(the service scale is facesearch.embedder.distances.SCALE times that).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from .index import FileRecord, IndexConfig, MaintenanceState

log = logging.getLogger(__name__)

GPU_K_LIMIT = 2048   # faiss-gpu refuses k above this (flat and IVF); such searches run on the CPU index
GPU_STALE_SHARE = 0.05   # deleted ids the GPU copy may still hold (masked out) before it is uploaded again


class FaissIndex:
    """In-process, so not durable: the Gallery snapshots it (save/load) and replays the
    change log after the snapshot.

    flat: IndexIDMap2(IndexFlatL2), exact.
    ivf:  IndexIVFFlat, trained once there are ivf_train_size faces; flat below.
    hnsw: IndexIDMap2(IndexHNSWFlat); deleted ids are filtered out of every
          search by an IDSelector, and the graph is rebuilt once too many pile up.
    """

    durable: Literal[False] = False

    def __init__(self, dimension: int, config: IndexConfig = IndexConfig(), *, defer_maintenance: bool = False):
        self.dimension = dimension
        self.config = config
        self.deleted: set[int] = set()   # hnsw only
        self._trained_on = 0              # ivf: faces at the last training
        self._filter: tuple[Any, Any, Any] | None = None   # (params, selector, batch)
        self._gpu: Any = None
        self._gpu_stale = np.zeros(0, np.int64)   # removed from the CPU index, still on the GPU copy
        # True: add() and remove() never rebuild inline; the owner runs maintenance (the Gallery, beside its lock)
        self.defer_maintenance = defer_maintenance
        self.cpu = self._empty()

    # -- construction -----------------------------------------------------
    def _empty(self) -> Any:
        d, c = self.dimension, self.config
        if c.kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(d, c.hnsw_m)
            hnsw.hnsw.efConstruction = c.hnsw_ef_construction
            hnsw.hnsw.efSearch = c.hnsw_ef_search
            return faiss.IndexIDMap2(hnsw)
        return faiss.IndexIDMap2(faiss.IndexFlatL2(d))

    @property
    def trained_ivf(self) -> bool:
        return isinstance(self.cpu, faiss.IndexIVF)

    @property
    def description(self) -> str:
        if self.config.kind == "ivf" and not self.trained_ivf:
            return f"ivf (flat until {self.config.ivf_train_size} faces)"
        if self.trained_ivf:
            return f"ivf(nlist={self.cpu.nlist},nprobe={self.cpu.nprobe})"
        return self.config.label

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the live entries."""
        if self.trained_ivf:  # IVFFlat stores the raw float32 vectors in its lists
            lists, id_parts, vector_parts = self.cpu.invlists, [], []
            for i in range(self.cpu.nlist):
                n = lists.list_size(i)
                if n:
                    id_parts.append(faiss.rev_swig_ptr(lists.get_ids(i), n).copy())
                    codes = faiss.rev_swig_ptr(lists.get_codes(i), n * lists.code_size)
                    vector_parts.append(codes.view(np.float32).reshape(n, self.dimension).copy())
            if not id_parts:
                return np.zeros(0, np.int64), np.zeros((0, self.dimension), np.float32)
            return np.concatenate(id_parts).astype(np.int64), np.vstack(vector_parts)
        ids = faiss.vector_to_array(self.cpu.id_map).astype(np.int64)
        vectors = self.cpu.index.reconstruct_n(0, self.cpu.index.ntotal) if len(ids) else \
            np.zeros((0, self.dimension), np.float32)
        if self.deleted:
            keep = ~np.isin(ids, np.fromiter(self.deleted, np.int64))
            ids, vectors = ids[keep], vectors[keep]
        return ids, vectors

    # -- maintenance: IVF (re)training and HNSW compaction ----------------------
    # Both rebuild the whole index. Standalone, add() and remove() run them inline. The Gallery
    # sets defer_maintenance and calls rebuilt() beside the index lock (searches go on against
    # this index meanwhile; the Gallery's writer lock keeps changes out), then install() under
    # it, which is a swap of a few fields.

    def maintenance_due(self) -> bool:
        c = self.config
        if c.kind == "ivf":
            return bool(len(self) >= c.ivf_train_size and len(self) >= 4 * self._trained_on)
        if c.kind == "hnsw":
            return bool(len(self.deleted) > c.hnsw_compact_ratio * max(self.cpu.ntotal, 1))
        return False

    def rebuilt(self) -> MaintenanceState:
        """A new index state built aside from the live entries: IVF trained (nlist = 4 sqrt(N)
        follows N, retrained each time the gallery grows 4x), HNSW without its deleted entries.
        Reads this index only."""
        ids, vectors = self._all_vectors()
        if self.config.kind == "ivf":
            return self._trained_ivf(ids, vectors)
        cpu = self._empty()
        if len(ids):
            cpu.add_with_ids(vectors, ids)
        log.info("compacted HNSW index to %d vectors", len(ids))
        return {"cpu": cpu, "deleted": set()}

    def _trained_ivf(self, ids: np.ndarray, vectors: np.ndarray) -> MaintenanceState:
        c = self.config
        nlist = c.ivf_nlist or max(16, min(int(4 * math.sqrt(len(ids))), len(ids) // 39))
        quantizer = faiss.IndexFlatL2(self.dimension)
        ivf = faiss.IndexIVFFlat(quantizer, self.dimension, nlist, faiss.METRIC_L2)
        ivf.cp.seed = 1234
        ivf.train(vectors)
        ivf.nprobe = c.ivf_nprobe
        ivf.add_with_ids(vectors, ids)
        log.info("trained IVF with nlist=%d on %d faces", nlist, len(ids))
        return {"cpu": ivf, "_quantizer": quantizer, "_trained_on": len(ids)}  # IVF does not own its quantizer

    def install(self, state: MaintenanceState) -> None:
        """Swap in what rebuilt() built (no change may have come in between)."""
        for name, value in state.items():
            setattr(self, name, value)
        self._filter = None
        self._drop_gpu()

    def _maintain_inline(self) -> None:
        if not self.defer_maintenance and self.maintenance_due():
            self.install(self.rebuilt())

    # -- VectorIndex ------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[1:] != (self.dimension,):
            raise ValueError(f"vectors have shape {vectors.shape}, expected (n, {self.dimension})")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.cpu.add_with_ids(vectors, ids)
        if self._gpu is not None:   # keep the GPU copy in step rather than upload the whole index again
            try:
                self._gpu.add_with_ids(vectors, ids)
            except Exception:
                log.warning("adding to the GPU index failed; it is uploaded again at the next search",
                            exc_info=True)
                self._drop_gpu()
        self._maintain_inline()

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return 0
        if self.config.kind == "hnsw":
            present = ids[np.isin(ids, faiss.vector_to_array(self.cpu.id_map))]
            newly = set(present.tolist()) - self.deleted
            self.deleted |= newly
            self._filter = None
            self._maintain_inline()
            return len(newly)
        gone = int(self.cpu.remove_ids(faiss.IDSelectorBatch(ids)))
        if self._gpu is not None:   # faiss-gpu cannot remove: mask them out, upload again only once many
            self._gpu_stale = np.union1d(self._gpu_stale, ids)
            if len(self._gpu_stale) > max(64, GPU_STALE_SHARE * len(self)):
                self._drop_gpu()
        return gone

    def _drop_gpu(self) -> None:
        self._gpu, self._gpu_stale = None, np.zeros(0, np.int64)

    def compact(self) -> None:
        """Rebuild without the deleted entries (HNSW cannot remove in place)."""
        if self.deleted:
            self.install(self.rebuilt() if self.config.kind == "hnsw" else {})

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n = len(queries)
        if len(self) == 0 or k <= 0:
            return np.full((n, max(k, 0)), np.inf, np.float32), np.full((n, max(k, 0)), -1, np.int64)
        # Small batches run on one OpenMP thread: with more, threads spin against each other and
        # everything else in the process (a single flat query went from 0.06 ms to 7 ms here).
        # The setting is per calling thread, and restored afterwards.
        previous = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1 if n < self.config.parallel_batch else previous)
        try:
            if self.config.kind == "hnsw" and self.deleted:
                dist, ids = self.cpu.search(queries, k, params=self._deleted_filter())
            else:
                searcher = self._searcher(k + len(self._gpu_stale))
                if searcher is self._gpu and len(self._gpu_stale):
                    found, hits = searcher.search(queries, k + len(self._gpu_stale))
                    dist, ids = _without(found, hits, self._gpu_stale, k)
                else:
                    dist, ids = searcher.search(queries, k)
        finally:
            faiss.omp_set_num_threads(previous)
        dist = np.where(ids < 0, np.inf, dist).astype(np.float32)
        return dist, ids.astype(np.int64)

    def _deleted_filter(self) -> Any:
        """Search parameters that skip deleted ids; rebuilt only after a delete."""
        if self._filter is None:
            batch = faiss.IDSelectorBatch(np.fromiter(self.deleted, np.int64, len(self.deleted)))
            selector = faiss.IDSelectorNot(batch)
            params = faiss.SearchParametersHNSW(  # type: ignore[attr-defined]  # faiss's stub lacks it
                sel=selector, efSearch=self.config.hnsw_ef_search)
            self._filter = (params, selector, batch)  # the selectors must outlive the params
        return self._filter[0]

    def _searcher(self, k: int = 1) -> Any:
        """The GPU copy when there is a GPU and k is within its limit; else the CPU index."""
        if not (self.config.use_gpu and self.config.kind != "hnsw" and k <= GPU_K_LIMIT
                and faiss.get_num_gpus() > 0):
            return self.cpu
        if self._gpu is None:  # uploaded once, then kept in step by add() and masked by remove()
            self._gpu, self._gpu_stale = faiss.index_cpu_to_all_gpus(self.cpu), np.zeros(0, np.int64)
        return self._gpu

    def ids(self) -> np.ndarray:
        if self.trained_ivf:
            invlists = self.cpu.invlists
            parts = [faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
                     for i in range(self.cpu.nlist) if invlists.list_size(i)]
            return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)
        ids = faiss.vector_to_array(self.cpu.id_map).astype(np.int64)
        if self.deleted:
            ids = ids[~np.isin(ids, np.fromiter(self.deleted, np.int64))]
        return np.sort(ids)

    def __len__(self) -> int:
        return int(self.cpu.ntotal) - len(self.deleted)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids, in their order (KeyError for one not indexed)."""
        have, vectors = self._all_vectors()
        pos = {int(i): n for n, i in enumerate(have.tolist())}
        try:
            return vectors[[pos[int(i)] for i in np.asarray(ids).tolist()]].reshape(-1, self.dimension)
        except KeyError as exc:
            raise KeyError(f"face {exc.args[0]} is not in the index") from None

    def close(self) -> None:
        self._drop_gpu()

    def drop(self) -> None:
        """Nothing of it is stored outside the process: the same as close()."""
        self.close()

    # -- snapshot files -------------------------------------------------------
    def save(self, folder: Path, tag: str) -> dict[str, FileRecord]:
        """Write the index and its deleted ids into folder, each fsynced, hashing as they are
        written (no second read pass); {role: {"name", "size", "sha256"}}."""
        files = {"index": f"index-{tag}.faiss", "deleted": f"deleted-{tag}.npy"}
        out: dict[str, FileRecord] = {}
        with _HashingFile(folder / files["index"]) as f:
            writer = faiss.PyCallbackIOWriter(f.write)  # type: ignore[attr-defined]  # not in faiss's stub
            faiss.write_index(self.cpu, writer)
            del writer
        out["index"] = f.record
        with _HashingFile(folder / files["deleted"]) as f:
            np.save(f, np.fromiter(self.deleted, np.int64, len(self.deleted)))
        out["deleted"] = f.record
        return out

    def load(self, folder: Path, files: dict[str, str] | dict[str, FileRecord]) -> None:
        """Replace this index with the one save() wrote (files already checked by the caller);
        files: {role: name} or save()'s own answer."""
        names = {role: str(f["name"]) if isinstance(f, dict) else f for role, f in files.items()}
        index: Any = faiss.read_index(str(folder / names["index"]))
        deleted = np.load(folder / names["deleted"])
        if index.d != self.dimension:
            raise ValueError(f"snapshot has dimension {index.d}, expected {self.dimension}")
        if isinstance(index, faiss.IndexIVF):
            index.nprobe = self.config.ivf_nprobe
            self._trained_on = index.ntotal
        elif self.config.kind == "hnsw":
            hnsw: Any = faiss.downcast_index(index.index)
            hnsw.hnsw.efSearch = self.config.hnsw_ef_search
        self.cpu = index
        self.deleted = set(np.asarray(deleted, np.int64).tolist())
        self._filter = None
        self._drop_gpu()


def _without(dist: np.ndarray, ids: np.ndarray, stale: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first k results of each row that are not stale ids, padded with (inf, -1)."""
    keep = ~np.isin(ids, stale)
    out_d, out_i = np.full((len(ids), k), np.inf, np.float32), np.full((len(ids), k), -1, np.int64)
    for row in range(len(ids)):
        d, i = dist[row][keep[row]][:k], ids[row][keep[row]][:k]
        out_d[row, :len(d)], out_i[row, :len(i)] = d, i
    return out_d, out_i


class _HashingFile:
    """A file written through a temporary name, hashed as it is written, fsynced, then renamed."""

    def __init__(self, path: Path) -> None:
        self.path, self.tmp = path, path.with_name(path.name + ".tmp")
        self._h, self._size = hashlib.sha256(), 0
        self.record: FileRecord = {}   # set once written

    def __enter__(self) -> _HashingFile:
        self._f = open(self.tmp, "wb")
        return self

    def write(self, data: bytes | bytearray | memoryview) -> int:
        data = bytes(data)
        self._f.write(data)
        self._h.update(data)
        self._size += len(data)
        return len(data)

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if exc_type is None:
                self._f.flush()
                os.fsync(self._f.fileno())
        finally:
            self._f.close()
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        os.replace(self.tmp, self.path)
        self.record = {"name": self.path.name, "size": self._size, "sha256": self._h.hexdigest()}
