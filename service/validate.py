"""Request checks of the service. Identity ids and embeddings are checked by the gallery's own
validators (facesearch.gallery.validate), so every way in applies the same rules."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from facesearch.embedder import FaceMode
from facesearch.embedder.distances import MAX_DISTANCE
from facesearch.gallery import Gallery
from facesearch.gallery.validate import check_identity_id, text_problem, unit_vectors

from .errors import InvalidArgument

MAX_PAGE_SIZE = 1000
INT64_MAX = (1 << 63) - 1
# Caps on what an identity carries besides faces (README "Limits"): named in every refusal.
MAX_DISPLAY_NAME = 255          # characters: identities.display_name is VARCHAR(255)
MAX_METADATA_KEYS = 64
MAX_METADATA_KEY = 128          # characters
MAX_METADATA_VALUE = 2048       # characters
MAX_METADATA_BYTES = 16 * 1024  # UTF-8 bytes of all keys and values together
MAX_IDS = 1000                  # face ids of one MoveFaces, source identities of one MergeIdentities
UPDATE_PATHS = ("display_name", "metadata")   # UpdateIdentity's update_mask

__all__ = ["check_identity_id", "cutoff", "face_id", "face_ids", "face_mode", "identity_ids", "page_size", "prefix",
           "profile", "top_k", "update_mask", "vector", "EmbeddingInput"]


@dataclass(frozen=True)
class EmbeddingInput:
    """An embedding sent by a caller: raw values and the model that made them (None: unknown)."""
    values: np.ndarray | list[float]
    model_id: str | None = None


def cutoff(requested: float, default: float) -> float:
    """A request's max_distance; 0 means the service default."""
    if requested < 0 or not np.isfinite(requested):
        raise InvalidArgument(f"max_distance {requested} must be between 0 and {MAX_DISTANCE} (0: the default)")
    if requested > MAX_DISTANCE:
        raise InvalidArgument(f"max_distance {requested} is over {MAX_DISTANCE}, the largest distance there is")
    return float(requested) or default


def face_mode(value: int) -> FaceMode:
    """0 (unspecified) means DETECT."""
    try:
        return FaceMode(value or FaceMode.DETECT)
    except ValueError:
        raise InvalidArgument(f"face_mode {value} is not one of {', '.join(f'{m.value} ({m.name})' for m in FaceMode)}"
                              ) from None


def top_k(requested: int, limit: int) -> int:
    if requested > limit:
        raise InvalidArgument(f"top_k {requested} is over the limit of {limit}")
    return int(requested) or 1


def page_size(requested: int, default: int = 100) -> int:
    if requested > MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size {requested} is over the limit of {MAX_PAGE_SIZE}")
    return int(requested) or default


def face_id(text: str, what: str = "face_id") -> int:
    """A face id (or an unknown face's, or an unknown cluster's) as issued by the service: a positive
    decimal integer within int64."""
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= INT64_MAX:
        raise InvalidArgument(f"{what} {text[:40]!r} is not a {what.replace('_', ' ')} this service issued")
    return int(text)


def source(text: str) -> str:
    """Identify's source: a short label such as a camera's name."""
    if len(text) > 255:
        raise InvalidArgument(f"source is {len(text)} characters; at most 255")
    return text


def vector(embedding: EmbeddingInput, gallery: Gallery) -> np.ndarray:
    """One caller embedding as a unit float32 vector of the gallery's model."""
    gallery.check_model(embedding.model_id or None)
    unit: np.ndarray = unit_vectors(embedding.values, gallery.dimension, gallery.model_id)[0]
    return unit


def profile(display_name: str, metadata: dict[str, str] | None) -> None:
    """An identity's display name and metadata, within their documented caps and their columns on
    both databases (characters, UTF-8 bytes, no NUL: gallery.validate.text_problem)."""
    if problem := text_problem(display_name, "display_name", MAX_DISPLAY_NAME):
        raise InvalidArgument(problem)
    metadata = metadata or {}
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidArgument(f"metadata has {len(metadata)} keys; at most {MAX_METADATA_KEYS}")
    total = 0
    for key, value in metadata.items():
        if not key or len(key) > MAX_METADATA_KEY:
            raise InvalidArgument(f"metadata key {key[:40]!r} must be 1 to {MAX_METADATA_KEY} characters")
        if len(value) > MAX_METADATA_VALUE:
            raise InvalidArgument(f"metadata value of {key[:40]!r} is {len(value)} characters; "
                                  f"at most {MAX_METADATA_VALUE}")
        for what, text in ((f"metadata key {key[:40]!r}", key), (f"metadata value of {key[:40]!r}", value)):
            if problem := text_problem(text, what, MAX_METADATA_VALUE):
                raise InvalidArgument(problem)
        total += len(key.encode()) + len(value.encode())
    if total > MAX_METADATA_BYTES:
        raise InvalidArgument(f"metadata is {total} bytes in all; at most {MAX_METADATA_BYTES}")


def face_ids(texts: Sequence[str]) -> list[int]:
    """1 to MAX_IDS face ids, each as face_id() checks it."""
    if not texts:
        raise InvalidArgument("no face_ids given")
    if len(texts) > MAX_IDS:
        raise InvalidArgument(f"{len(texts)} face_ids in one call; at most {MAX_IDS}")
    return [face_id(t) for t in texts]


def identity_ids(ids: Sequence[str], what: str) -> list[str]:
    """1 to MAX_IDS identity ids, each as check_identity_id() checks it."""
    if not ids:
        raise InvalidArgument(f"no {what} given")
    if len(ids) > MAX_IDS:
        raise InvalidArgument(f"{len(ids)} {what} in one call; at most {MAX_IDS}")
    return [check_identity_id(i) for i in ids]


def update_mask(paths: Sequence[str]) -> set[str]:
    """The fields an UpdateIdentity changes: its mask's paths, each one of UPDATE_PATHS."""
    unknown = [p for p in paths if p not in UPDATE_PATHS]
    if unknown:
        raise InvalidArgument(f"update_mask path {unknown[0][:40]!r} is not one of {', '.join(UPDATE_PATHS)}")
    return set(paths)


def prefix(text: str) -> str:
    """A ListIdentities filter: at most MAX_DISPLAY_NAME characters (longer matches nothing), no control
    characters (NUL included, which PostgreSQL refuses)."""
    if len(text) > MAX_DISPLAY_NAME:
        raise InvalidArgument(f"prefix is {len(text)} characters; at most {MAX_DISPLAY_NAME}")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise InvalidArgument("prefix contains control characters")
    return text
