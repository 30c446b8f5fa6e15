"""Distances on the service scale (docs/architecture.md#distance-scale-and-cutoff).

    distance = SCALE * ||a - b||^2    for unit-norm embeddings a, b

The seed compared three stacked copies of the unit embedding by summed squared
difference, which is exactly this with SCALE = 3. The range is 0 to 12.
FAISS IndexFlatL2 returns ||a - b||^2, so service = SCALE * faiss.
"""

from __future__ import annotations

import numpy as np

from facesearch.settings import setting

SCALE = 3.0
MAX_DISTANCE = 4.0 * SCALE
DEFAULT_CUTOFF = 3.5


def max_distance_setting():
    """FACESEARCH_MAX_DISTANCE, the same field wherever it is read (the server, the trainer's reports)."""
    return setting(DEFAULT_CUTOFF, f"default cutoff on the service scale, above 0 and at most {MAX_DISTANCE:g}: "
                                   "a match is known when its distance is within it", gt=0, le=MAX_DISTANCE)


def from_squared_l2(squared_l2):
    """FAISS/L2^2 distance(s) to the service scale."""
    return np.asarray(squared_l2, dtype=np.float32) * np.float32(SCALE)


def to_squared_l2(distance):
    """Service-scale distance(s) to L2^2, e.g. to turn a cutoff into a FAISS radius."""
    return np.asarray(distance, dtype=np.float32) / np.float32(SCALE)


def distance(a, b) -> float:
    """Service-scale distance between two embeddings."""
    d = np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)
    return float(SCALE * np.dot(d, d))


def pairwise(a, b) -> np.ndarray:
    """Service-scale distances between the rows of a (n, d) and b (m, d): shape (n, m)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return from_squared_l2(np.maximum(sq, 0.0))


def l2_normalize(x, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)
