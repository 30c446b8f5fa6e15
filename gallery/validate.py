"""The one validation of what enters the gallery: identity ids and embeddings."""

from __future__ import annotations

import unicodedata

import numpy as np

from .errors import InvalidEmbeddingError, InvalidInputError

MAX_IDENTITY_ID = 255


def check_identity_id(identity_id: str) -> str:
    """1 to 255 characters, no control or format characters."""
    if not identity_id:
        raise InvalidInputError("identity_id is empty")
    if len(identity_id) > MAX_IDENTITY_ID:
        raise InvalidInputError(f"identity_id is {len(identity_id)} characters; at most {MAX_IDENTITY_ID}")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in identity_id):
        raise InvalidInputError("identity_id contains control characters")
    return identity_id


def unit_vectors(embeddings, dimension: int, model_id: str, what: str = "embedding") -> np.ndarray:
    """(n, dimension) float32 unit vectors, or InvalidEmbeddingError naming what is wrong.

    Normalised in float64, so finite values that are huge or tiny neither
    overflow nor underflow; the result is checked again after the cast.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != dimension:
        raise InvalidEmbeddingError(
            f"{what} has {x.shape[-1] if x.ndim else 0} values; model {model_id} needs {dimension}")
    if not np.all(np.isfinite(x)):
        raise InvalidEmbeddingError(f"{what} holds NaN or infinite values")
    peak = np.max(np.abs(x), axis=1, keepdims=True)
    if np.any(peak == 0):
        raise InvalidEmbeddingError(f"{what} is all zeros")
    x = x / peak                        # scale first: the norm of huge values would overflow
    unit = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    if not np.all(np.isfinite(unit)):
        raise InvalidEmbeddingError(f"{what} cannot be normalised")
    return unit
