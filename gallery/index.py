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

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Protocol, get_args

import numpy as np

from facesearch.settings import Settings, fixed, setting

from .errors import GalleryError
from .milvus_names import collection_name

if TYPE_CHECKING:
    from .config import GalleryConfig

IndexKind = Literal["flat", "ivf", "hnsw"]
INDEX_TYPES: tuple[str, ...] = get_args(IndexKind)
VectorBackend = Literal["faiss", "milvus"]
VECTOR_BACKENDS: tuple[str, ...] = get_args(VectorBackend)


class IndexConfig(Settings):
    """The vector index (FACESEARCH_INDEX and its tuning)."""

    kind: IndexKind = setting("flat", "vector index: flat (exact), ivf or hnsw (FAISS and Milvus alike)", env="INDEX")
    ivf_nlist: int = setting(0, "IVF lists; 0 = 4·√N when trained", ge=0)
    ivf_nprobe: int = setting(16, "IVF lists searched per query", ge=1)
    ivf_train_size: int = setting(20_000, "faces needed before IVF is trained; below it search is flat", ge=1000)
    hnsw_m: int = setting(32, "HNSW graph degree", ge=4)
    hnsw_ef_search: int = setting(128, "HNSW search breadth", ge=1)
    use_gpu: bool = setting(True, "0 keeps flat and IVF on the CPU even when faiss sees a GPU", env="FAISS_GPU",
                            shown="1")
    hnsw_ef_construction: int = fixed(40)
    hnsw_compact_ratio: float = fixed(0.3, "rebuild HNSW once this share of its vectors is deleted")
    parallel_batch: int = fixed(8, "batches at least this big search on every OpenMP thread")

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
    def save(self, folder: Path, tag: str) -> dict[str, str] | dict[str, dict]:
        """In-process only: write the index's files into folder (fsynced); {role: file name}, or
        {role: {"name", "size", "sha256"}} when hashed while written (FaissIndex)."""
    def load(self, folder: Path, files: dict[str, str]) -> None:
        """In-process only: replace the contents with what save() wrote."""
    def close(self) -> None: ...
    def drop(self) -> None:
        """Delete what it keeps outside the process (a durable index's collection), then close."""


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


def build_index(config: "GalleryConfig", dimension: int, model_id: str = "", generation: int = 0) -> VectorIndex:
    """The one place an index is made, for config.vector_backend (FACESEARCH_VECTOR_BACKEND).

    model_id, generation: the gallery's. Milvus keeps each in a collection of its own
    (milvus_names.collection_name): its builder gets a copy of config naming that collection.
    """
    builder = BUILDERS.get(config.vector_backend)
    if builder is None:
        raise GalleryError(f"unknown vector backend {config.vector_backend!r}; "
                           f"choose one of {', '.join(VECTOR_BACKENDS)}")
    if config.vector_backend == "milvus":
        name = collection_name(config.milvus_collection, model_id, generation)
        config = config.model_copy(update={"milvus_collection": name})
    return builder(config, dimension)


def snapshot_label(backend: str, config: IndexConfig) -> str:
    """What a snapshot must match to be reused (FAISS snapshots keep their historical labels)."""
    return config.label if backend == "faiss" else f"{backend}:{config.label}"
