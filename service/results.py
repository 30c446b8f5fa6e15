"""What the service answers: plain data, free of any transport's types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from facesearch.embedder import Box
from facesearch.gallery import Calibration, Identity, Match, StoredFace

__all__ = ["CalibrateResult", "Calibration", "EmbedResult", "EmbeddedFace", "EnrollResult", "FaceMatches",
           "FaceRecord", "IdentifyResult", "Identity", "Match", "Rejection", "ServiceInfo", "VerifyResult"]


@dataclass(frozen=True)
class FaceMatches:
    box: Box | None                 # None for an embedding query
    detection_score: float
    matches: list[Match]            # best first, one per identity, all within the cutoff

    @property
    def known(self) -> bool:
        return bool(self.matches)


@dataclass(frozen=True)
class IdentifyResult:
    faces: list[FaceMatches]
    model_id: str


@dataclass(frozen=True)
class Rejection:
    index: int                      # position of the image in the request
    reason: str


@dataclass
class EnrollResult:
    identity_id: str
    created: bool = False
    face_ids: list[int] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[Rejection] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)   # images this identity already had (then embeddings,
    #                                                       numbered after the images)


@dataclass(frozen=True)
class VerifyResult:
    match: bool
    distance: float
    face_id: int | None
    face_found: bool


@dataclass(frozen=True)
class EmbeddedFace:
    box: Box
    detection_score: float
    vector: np.ndarray              # unit norm


@dataclass(frozen=True)
class EmbedResult:
    faces: list[EmbeddedFace]
    model_id: str


@dataclass(frozen=True)
class CalibrateResult:
    calibration: Calibration
    applied: bool


@dataclass(frozen=True)
class ServiceInfo:
    model_id: str
    dimension: int
    default_max_distance: float
    identity_count: int
    face_count: int
    index_type: str
    version: str
    default_max_distance_source: str = "default"   # request, configured, calibrated or default
    calibration_stale: bool = False
    changes_since_calibration: int = 0
    calibrated_at: float = 0.0                       # Unix time; 0: never calibrated
    keep_unknown_days: float = 0.0                   # --keep-unknown-days of this server; 0: none kept


@dataclass(frozen=True)
class FaceRecord:
    """One stored face, without its embedding (ListFaces)."""
    face_id: str
    identity_id: str
    model_id: str
    box: Box | None                 # in the source photo; None for a face enrolled as an embedding
    detection_score: float          # 0.0 when none
    source_sha256: str              # "" when none
    source_path: str                # "" when none
    created_at: datetime            # UTC
    has_image: bool                 # a crop is stored (FaceSearchService.face_image)

    @classmethod
    def of(cls, face: StoredFace) -> "FaceRecord":
        return cls(str(face.face_id), face.identity_id, face.model_id, None if face.box is None else Box(*face.box),
                   face.detection_score or 0.0, face.source_sha256 or "", face.source_path or "", face.created_at,
                   face.has_image)
