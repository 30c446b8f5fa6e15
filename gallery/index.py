"""Vector indexes behind one Protocol, built by one factory from configuration.

The Gallery uses nothing of an index beyond VectorIndex, so a second engine
(Milvus, milvus_index.py) is a second class and one entry in BUILDERS, and no
change to the Gallery. Two lifecycles:

- in-process (durable = False, FaissIndex): lost with the process. The Gallery
  snapshots it through save()/load() and replays the SQL change log after the
  snapshot, or rebuilds it from SQL.
- durable (durable = True, MilvusIndex, a Milvus collection): keeps its own state. The
  Gallery writes no snapshot and, at open, reconciles the index with SQL
  (adds what is missing, removes what SQL no longer has).

Vectors are unit-norm float32; distances are squared L2 (the service scale is
facesearch.embedder.distances.SCALE times that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from .errors import GalleryError

if TYPE_CHECKING:
    from .config import GalleryConfig

INDEX_TYPES = ("flat", "ivf", "hnsw")
VECTOR_BACKENDS = ("faiss", "milvus")


@dataclass(frozen=True)
class IndexConfig:
    kind: str = "flat"               # FACESEARCH_INDEX: flat (exact), ivf or hnsw
    ivf_nlist: int = 0               # FACESEARCH_IVF_NLIST; 0 = 4 * sqrt(N) when trained
    ivf_nprobe: int = 16             # FACESEARCH_IVF_NPROBE
    ivf_train_size: int = 20_000     # FACESEARCH_IVF_TRAIN_SIZE: below this many faces, ivf searches flat
    hnsw_m: int = 32                 # FACESEARCH_HNSW_M
    hnsw_ef_search: int = 128        # FACESEARCH_HNSW_EF_SEARCH
    hnsw_ef_construction: int = 40
    hnsw_compact_ratio: float = 0.3  # rebuild HNSW once this share of its vectors is deleted
    use_gpu: bool = True             # move flat/ivf to the GPU when faiss sees one
    parallel_batch: int = 8          # batches at least this big search on every OpenMP thread

    def __post_init__(self):
        if self.kind not in INDEX_TYPES:
            raise ValueError(f"unknown index type {self.kind!r}; choose one of {', '.join(INDEX_TYPES)}")

    @property
    def label(self) -> str:
        """What a snapshot must match to be reused."""
        if self.kind == "ivf":
            return f"ivf(nlist={self.ivf_nlist or 'auto'},train={self.ivf_train_size})"
        if self.kind == "hnsw":
            return f"hnsw(M={self.hnsw_m},efc={self.hnsw_ef_construction})"
        return "flat"


class VectorIndex(Protocol):
    """What the Gallery needs from a vector index. Not thread-safe: the Gallery locks.

    Ids are the faces' SQL ids (int64). A search answers (squared L2 distances, ids),
    each (n, k), ascending, with id -1 in slots it could not fill.
    """

    dimension: int
    durable: bool   # True: keeps its own state across restarts; save/load are never called

    @property
    def description(self) -> str:
        """What the index is, for GalleryInfo.index_type and logs."""

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray) -> int: ...
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def ids(self) -> np.ndarray:
        """The indexed ids, ascending."""
    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids, in order; KeyError for an id not indexed."""
    def __len__(self) -> int: ...
    def save(self, folder: Path, tag: str) -> dict[str, str]:
        """In-process only: write the index's files into folder (fsynced); {role: file name}."""
    def load(self, folder: Path, files: dict[str, str]) -> None:
        """In-process only: replace the contents with what save() wrote."""
    def close(self) -> None: ...


def _faiss(config: "GalleryConfig", dimension: int) -> VectorIndex:
    from .faiss_index import FaissIndex

    return FaissIndex(dimension, config.index)


def _milvus(config: "GalleryConfig", dimension: int) -> VectorIndex:
    try:
        from .milvus_index import MilvusIndex
    except ImportError as exc:
        raise GalleryError(f"FACESEARCH_VECTOR_BACKEND=milvus needs pymilvus (pip install "
                           f"'facesearch[milvus]'): {exc}") from None
    return MilvusIndex(dimension, config)


# backend name -> builder(gallery config, dimension); a new backend is one entry here.
BUILDERS: dict[str, Callable[["GalleryConfig", int], VectorIndex]] = {"faiss": _faiss, "milvus": _milvus}


def build_index(config: "GalleryConfig", dimension: int) -> VectorIndex:
    """The one place an index is made, for config.vector_backend (FACESEARCH_VECTOR_BACKEND)."""
    builder = BUILDERS.get(config.vector_backend)
    if builder is None:
        raise GalleryError(f"unknown vector backend {config.vector_backend!r}; "
                           f"choose one of {', '.join(VECTOR_BACKENDS)}")
    return builder(config, dimension)


def snapshot_label(backend: str, config: IndexConfig) -> str:
    """What a snapshot must match to be reused (FAISS snapshots keep their historical labels)."""
    return config.label if backend == "faiss" else f"{backend}:{config.label}"
