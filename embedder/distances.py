"""Distances on the service scale (docs/architecture.md#distance-scale-and-cutoff).

    distance = SCALE * ||a - b||^2    for unit-norm embeddings a, b

The seed compared three stacked copies of the unit embedding by summed squared
difference, which is exactly this with SCALE = 3. The range is 0 to 12.
FAISS IndexFlatL2 returns ||a - b||^2, so service = SCALE * faiss.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from facesearch.settings import setting

SCALE = 3.0
MAX_DISTANCE = 4.0 * SCALE
DEFAULT_CUTOFF = 3.5


def max_distance_setting() -> Any:
    """FACESEARCH_MAX_DISTANCE, the same field wherever it is read (the server, the trainer's reports)."""
    return setting(DEFAULT_CUTOFF, f"default cutoff on the service scale, above 0 and at most {MAX_DISTANCE:g}: "
                                   "a match is known when its distance is within it", gt=0, le=MAX_DISTANCE)


def from_squared_l2(squared_l2: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """FAISS/L2^2 distance(s) to the service scale."""
    return np.asarray(squared_l2, dtype=np.float32) * np.float32(SCALE)


def to_squared_l2(distance: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Service-scale distance(s) to L2^2, e.g. to turn a cutoff into a FAISS radius."""
    return np.asarray(distance, dtype=np.float32) / np.float32(SCALE)


def distance(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Service-scale distance between two embeddings."""
    d = np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)
    return float(SCALE * np.dot(d, d))


def pairwise(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Service-scale distances between the rows of a (n, d) and b (m, d): shape (n, m)."""
    x = np.asarray(a, dtype=np.float32)
    y = np.asarray(b, dtype=np.float32)
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return from_squared_l2(np.maximum(sq, 0.0))


def l2_normalize(x: npt.ArrayLike, eps: float = 1e-12) -> npt.NDArray[np.float32]:
    """Rows scaled to unit L2 norm, as float32."""
    v = np.asarray(x, dtype=np.float32)
    unit: npt.NDArray[np.float32] = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)
    return unit
