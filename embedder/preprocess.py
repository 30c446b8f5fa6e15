"""Preprocessing exactly as the seed (docs/architecture.md#preprocessing): RGB, resized to 160x160,
float32, then per-image standardisation (x - mean) / max(std, 1/sqrt(size)).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .facenet_arch import IMAGE_SIZE


def per_image_standardize(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    std = max(float(x.std()), 1.0 / np.sqrt(x.size))
    out: np.ndarray = (x - x.mean()) / np.float32(std)
    return out


def fixed_standardize(x: np.ndarray) -> np.ndarray:
    """(x - 127.5) / 127.5, used by keras-facenet's 2018 models."""
    return (x.astype(np.float32) - 127.5) / 127.5


STANDARDIZERS = {"per_image": per_image_standardize, "fixed": fixed_standardize}


def resize(rgb: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)


def preprocess(crops: Sequence[np.ndarray], size: int = IMAGE_SIZE, standardization: str = "per_image") -> np.ndarray:
    """RGB uint8 crops of any size -> (N, size, size, 3) float32 model input."""
    standardize = STANDARDIZERS[standardization]
    out = np.empty((len(crops), size, size, 3), dtype=np.float32)
    for i, crop in enumerate(crops):
        if crop.ndim != 3 or crop.shape[2] != 3:
            raise ValueError(f"crop {i} has shape {crop.shape}; expected (H, W, 3) RGB")
        out[i] = standardize(resize(crop, size))
    return out
