"""facesearch.gallery: the identity store.

SQL (SQLite by default, any SQLAlchemy URL by design) is the source of truth;
a FAISS index (flat, ivf or hnsw) is derived from it, snapshotted atomically
and replayed from a change log at start.

    from facesearch.gallery import Gallery, GalleryConfig, NewFace
    with Gallery.open(GalleryConfig.from_env(), model_id="facenet-128", dimension=128) as g:
        g.add_faces("chris_evans", [NewFace(vec)], display_name="Chris Evans")
        g.search(query_vecs, top_k=1, max_distance=3.5)   # [[Match(...)], ...]
"""

from .config import GalleryConfig
from .calibration import Calibration
from .errors import (
    CalibrationError,
    GalleryError,
    GalleryLockedError,
    InvalidEmbeddingError,
    InvalidTargetError,
    ModelMismatchError,
    NotFoundError,
)
from .index import INDEX_TYPES, FaissIndex, IndexConfig, VectorIndex
from .store import AddResult, AppliedCalibration, Enrolment, Gallery, GalleryInfo, Identity, Match, NewFace

__all__ = [
    "AddResult", "AppliedCalibration", "Calibration", "CalibrationError", "Enrolment", "FaissIndex", "Gallery", "GalleryConfig",
    "GalleryError", "GalleryInfo", "GalleryLockedError", "INDEX_TYPES", "Identity", "IndexConfig",
    "InvalidEmbeddingError", "InvalidTargetError", "Match", "ModelMismatchError", "NewFace", "NotFoundError",
    "VectorIndex",
]
