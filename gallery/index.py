"""Vector indexes: one core Protocol, two lifecycles, built by one factory from configuration.

VectorIndex is what every part of the Gallery searches and changes. An engine has one of two
lifecycles, fixed by its class and so chosen once, when build_index makes it:

- InProcessIndex (durable = False, FaissIndex): lost with the process. The Gallery snapshots it
  through save()/load() and replays the SQL change log after the snapshot, or rebuilds it from
  SQL; its long rebuilds (IVF training, HNSW compaction) run beside the Gallery's lock
  (maintenance_due/rebuilt/install).
- DurableIndex (durable = True, MilvusIndex, a Milvus collection): keeps its own state, shared
  by replicas. The Gallery writes no snapshot and, at open, reconciles the index with SQL (adds
  what is missing, removes what SQL no longer has); reads wait for the writes they must see
  (read_after, write_ts).

Index is their union: `if index.durable:` narrows it to one lifecycle for the type checker, so
no capability is probed at run time. A new engine is a class of one lifecycle and one entry in
BUILDERS, each builder taking the same arguments.

Vectors are unit-norm float32; distances are squared L2 (the service scale is
facesearch.embedder.distances.SCALE times that).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Protocol, Union, get_args

import numpy as np
import numpy.typing as npt

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


Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]
Distances = npt.NDArray[np.float32]


class VectorIndex(Protocol):
    """What the Gallery needs of any vector index. Not thread-safe: the Gallery locks.

    Ids are the faces' SQL ids (int64). A search answers (squared L2 distances, ids),
    each (n, k), ascending, with id -1 in slots it could not fill.
    """

    dimension: int

    @property
    def description(self) -> str:
        """What the index is, for GalleryInfo.index_type and logs."""

    def add(self, ids: Ids, vectors: Vectors) -> None: ...
    def remove(self, ids: Ids) -> int: ...
    def search(self, queries: Vectors, k: int) -> tuple[Distances, Ids]: ...
    def ids(self) -> Ids:
        """The indexed ids, ascending."""
    def vectors(self, ids: Ids) -> Vectors:
        """The stored vectors of these ids, in order; KeyError for an id not indexed."""
    def __len__(self) -> int: ...
    def close(self) -> None: ...
    def drop(self) -> None:
        """Delete what it keeps outside the process (a durable index's collection), then close."""


# One snapshot file as save() records it: {"name", "size", "sha256"}.
FileRecord = dict[str, Any]
# What rebuilt() builds aside for install() to swap in: attribute name -> value.
MaintenanceState = dict[str, Any]


class InProcessIndex(VectorIndex, Protocol):
    """An index lost with the process: snapshotted by the Gallery, and maintained beside its lock."""

    @property
    def durable(self) -> Literal[False]: ...

    def save(self, folder: Path, tag: str) -> dict[str, FileRecord]:
        """Write the index's files into folder (fsynced); {role: {"name", "size", "sha256"}}."""
    def load(self, folder: Path, files: dict[str, str] | dict[str, FileRecord]) -> None:
        """Replace the contents with what save() wrote."""
    def maintenance_due(self) -> bool:
        """True when a rebuild (IVF training, HNSW compaction) is due."""
    def rebuilt(self) -> MaintenanceState:
        """That rebuild, built aside from this index (which it only reads)."""
    def install(self, state: MaintenanceState) -> None:
        """Swap in what rebuilt() built; no change may have come in between."""


class DurableIndex(VectorIndex, Protocol):
    """An index that keeps its own state (a Milvus collection), shared by replicas."""

    collection: str          # where it is kept: a reindex's new index must not be the live one
    opened_existing: bool    # the collection was there already when opened
    write_ts: int            # a timestamp no older than this client's last write

    @property
    def durable(self) -> Literal[True]: ...

    def probe(self) -> None:
        """Raise when the index cannot be used (its server or collection gone)."""
    def read_after(self, ts: int) -> None:
        """Make the following searches see every write up to this timestamp."""


Index = Union[InProcessIndex, DurableIndex]
Builder = Callable[["GalleryConfig", int, str, int], Index]


def _faiss(config: "GalleryConfig", dimension: int, model_id: str, generation: int) -> Index:
    """The Gallery runs its long rebuilds beside its lock (Recovery._maintain), never inline."""
    from .faiss_index import FaissIndex

    return FaissIndex(dimension, config.index, defer_maintenance=True)


def _milvus(config: "GalleryConfig", dimension: int, model_id: str, generation: int) -> Index:
    """Each model and generation in a collection of its own (milvus_names.collection_name)."""
    try:
        from .milvus_index import MilvusIndex
    except ImportError as exc:
        raise GalleryError(f"FACESEARCH_VECTOR_BACKEND=milvus needs pymilvus (pip install "
                           f"'facesearch[milvus]'): {exc}") from None
    name = collection_name(config.milvus_collection, model_id, generation)
    return MilvusIndex(dimension, config.model_copy(update={"milvus_collection": name}))


# backend name -> builder(gallery config, dimension, model id, generation); a new backend is one entry.
BUILDERS: dict[str, Builder] = {"faiss": _faiss, "milvus": _milvus}


def build_index(config: "GalleryConfig", dimension: int, model_id: str = "", generation: int = 0) -> Index:
    """The one place an index is made, for config.vector_backend (FACESEARCH_VECTOR_BACKEND).
    model_id, generation: the gallery's (an engine that keeps state outside the process keys it by them)."""
    builder = BUILDERS.get(config.vector_backend)
    if builder is None:
        raise GalleryError(f"unknown vector backend {config.vector_backend!r}; "
                           f"choose one of {', '.join(VECTOR_BACKENDS)}")
    return builder(config, dimension, model_id, generation)


def snapshot_label(backend: str, config: IndexConfig) -> str:
    """What a snapshot must match to be reused (FAISS snapshots keep their historical labels)."""
    return config.label if backend == "faiss" else f"{backend}:{config.label}"
