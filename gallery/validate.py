"""The one validation of what enters the gallery: identity ids and embeddings."""

from __future__ import annotations

import unicodedata

import numpy as np
import numpy.typing as npt

from .errors import InvalidEmbeddingError, InvalidInputError

MAX_IDENTITY_ID = 255   # characters: identities.identity_id is VARCHAR(255) (schema.py)
MAX_TEXT_BYTES = 4 * 255   # UTF-8 bytes of a VARCHAR(255) value: under PostgreSQL's btree key limit (2,704)


def text_problem(value: str, what: str, max_chars: int) -> str | None:
    """Why a string cannot go into a VARCHAR(max_chars) column on both databases, or None.

    PostgreSQL counts characters and refuses NUL; a lone surrogate (possible from Python callers,
    never from protobuf) is not UTF-8 at all; SQLite stores anything, so these are checked here.
    """
    if len(value) > max_chars:
        return f"{what} is {len(value)} characters; at most {max_chars}"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return f"{what} is not valid UTF-8"
    if size > 4 * max_chars:
        return f"{what} is {size} bytes; at most {4 * max_chars}"
    if "\x00" in value:
        return f"{what} contains a NUL character"
    return None


def check_identity_id(identity_id: str) -> str:
    """1 to 255 characters of UTF-8, no control or format characters (NUL included)."""
    if not identity_id:
        raise InvalidInputError("identity_id is empty")
    if problem := text_problem(identity_id, "identity_id", MAX_IDENTITY_ID):
        raise InvalidInputError(problem)
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in identity_id):
        raise InvalidInputError("identity_id contains control characters")
    return identity_id


def unit_vectors(embeddings: object, dimension: int, model_id: str,
                 what: str = "embedding") -> npt.NDArray[np.float32]:
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
    unit: npt.NDArray[np.float32] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    if not np.all(np.isfinite(unit)):
        raise InvalidEmbeddingError(f"{what} cannot be normalised")
    return unit
