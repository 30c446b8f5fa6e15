"""facesearch.gallery: the identity store.

SQL (SQLite by default, PostgreSQL through FACESEARCH_DATABASE_URL) is the source of
truth; a vector index (FACESEARCH_VECTOR_BACKEND: FAISS, snapshotted atomically and
replayed from a change log at start, or a durable Milvus collection reconciled with SQL
at start; flat, ivf or hnsw) is derived from it.

    from facesearch.gallery import Gallery, GalleryConfig, NewFace
    with Gallery.open(GalleryConfig.from_env(), model_id="facenet-128", dimension=128) as g:
        g.add_faces("chris_evans", [NewFace(vec)], display_name="Chris Evans")
        g.search(query_vecs, top_k=1, max_distance=3.5)   # [[Match(...)], ...]

Layout: store (open/close) composes writes, moves (move faces, merge identities), reads,
recovery (snapshot, replay, rebuild) and reindex; records (the dataclasses), sql (engine and
dialect setup), schema + migrations, index (the VectorIndex Protocol and its factory),
faiss_index, milvus_index (with milvus_names), snapshot (manifest), facemap, grouping, paging, validate;
unknown (faces Identify answered as unknown, --keep-unknown-days).
"""

from .config import GalleryConfig
from .calibration import Calibration
from .calibrated import AppliedCalibration
from .errors import (
    CalibrationBudgetError,
    CalibrationCancelled,
    DATABASE_UNAVAILABLE,
    CalibrationError,
    GalleryError,
    GalleryLockedError,
    IndexUnavailableError,
    InvalidEmbeddingError,
    InvalidInputError,
    InvalidTargetError,
    ModelMismatchError,
    NotFoundError,
)
from .faiss_index import FaissIndex
from .index import INDEX_TYPES, VECTOR_BACKENDS, IndexConfig, VectorIndex, build_index
from .records import AddResult, Enrolment, GalleryInfo, Identity, Match, Metadata, NewFace, StoredFace
from .store import Gallery
from .unknown import UnknownCluster, UnknownFace, UnknownPage

__all__ = [
    "AddResult", "AppliedCalibration", "Calibration", "CalibrationBudgetError", "CalibrationCancelled",
    "CalibrationError", "DATABASE_UNAVAILABLE", "Enrolment", "FaissIndex", "Gallery",
    "GalleryConfig", "GalleryError", "GalleryInfo", "GalleryLockedError", "INDEX_TYPES", "Identity", "IndexConfig",
    "IndexUnavailableError",
    "InvalidEmbeddingError", "InvalidInputError", "InvalidTargetError", "Match", "Metadata", "ModelMismatchError", "NewFace",
    "NotFoundError", "StoredFace", "UnknownCluster", "UnknownFace", "UnknownPage", "VECTOR_BACKENDS", "VectorIndex",
    "build_index",
]
