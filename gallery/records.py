"""What the Gallery takes and returns, and how a face becomes a row."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Unpack, overload

import numpy as np
from sqlalchemy import Row


@dataclass
class NewFace:
    embedding: np.ndarray
    source_sha256: str | None = None
    source_path: str | None = None
    box: tuple[int, int, int, int] | None = None   # x, y, width, height
    detection_score: float | None = None
    crop_jpeg: bytes | None = None


AnyRow = Row[Unpack[tuple[Any, ...]]]   # a result row of any columns
Metadata = dict[str, Any]   # an identity's free-form metadata (a JSON object)


@dataclass
class Enrolment:
    identity_id: str
    faces: list[NewFace]
    display_name: str | None = None   # None keeps the stored value
    metadata: Metadata | None = None


@dataclass
class AddResult:
    identity_id: str
    created: bool
    face_ids: list[int]                                        # of the faces added, in order
    duplicates: list[int] = field(default_factory=list)        # positions in Enrolment.faces already held


@dataclass
class Identity:
    identity_id: str
    display_name: str
    metadata: Metadata
    face_ids: list[int] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def face_count(self) -> int:
        return len(self.face_ids)


@dataclass(frozen=True)
class StoredFace:
    """A face as the gallery holds it, without its embedding or crop (Reads.list_faces)."""
    face_id: int
    identity_id: str
    model_id: str
    box: tuple[int, int, int, int] | None   # x, y, width, height in the source photo; None for an embedding
    detection_score: float | None
    source_sha256: str | None
    source_path: str | None
    created_at: datetime
    has_image: bool                          # a crop_jpeg is stored


@dataclass(frozen=True)
class Match:
    identity_id: str
    display_name: str
    distance: float   # service scale: 3 * ||a - b||^2
    face_id: int


@dataclass(frozen=True)
class GalleryInfo:
    model_id: str
    dimension: int
    identity_count: int
    face_count: int
    index_type: str


def now() -> datetime:
    return datetime.now(timezone.utc)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """UTC-aware on every database: SQLite hands back naive datetimes, PostgreSQL aware ones."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def identity_of(row: AnyRow, face_ids: list[int]) -> Identity:
    return Identity(row.identity_id, row.display_name, row.metadata, face_ids, aware(row.created_at),
                    aware(row.updated_at))


def stored_face(row: AnyRow) -> StoredFace:
    """A row of Reads.FACE_COLUMNS as a StoredFace."""
    box = None if row.box_x is None else (row.box_x, row.box_y, row.box_w, row.box_h)
    return StoredFace(row.id, row.identity_id, row.model_id, box, row.detection_score, row.source_sha256,
                      row.source_path, aware(row.created_at), bool(row.has_image))


def face_row(identity_pk: int, face: NewFace, vector: np.ndarray, model_id: str, when: datetime) -> dict[str, Any]:
    x, y, w, h = face.box if face.box else (None, None, None, None)
    return {"identity_pk": identity_pk, "embedding": vector.astype("<f4").tobytes(), "model_id": model_id,
            "source_sha256": face.source_sha256,
            "embedding_sha256": None if face.source_sha256 else embedding_sha256(vector),
            "source_path": face.source_path,
            "box_x": x, "box_y": y, "box_w": w, "box_h": h, "detection_score": face.detection_score,
            "crop_jpeg": face.crop_jpeg, "created_at": when}


def embedding_sha256(vector: np.ndarray) -> str:
    """The idempotency key of an embedding-only face: sha256 of its stored bytes."""
    return hashlib.sha256(np.asarray(vector).astype("<f4").tobytes()).hexdigest()


def dedupe_key(face: NewFace, vector: np.ndarray) -> tuple[str, str]:
    """What makes a face a duplicate within its identity: its image's bytes, else its embedding."""
    return ("source", face.source_sha256) if face.source_sha256 else ("embedding", embedding_sha256(vector))


def decode_vectors(blobs: Iterable[bytes], dimension: int) -> np.ndarray:
    """Stored embeddings (float32, little-endian) as an (n, dimension) array."""
    arr = [np.frombuffer(bytes(b), dtype="<f4") for b in blobs]
    return np.vstack(arr).astype(np.float32) if arr else np.zeros((0, dimension), np.float32)
