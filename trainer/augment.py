"""Light augmentation of face crops: flip, a small crop, brightness.

Brightness changes by gamma: the model's per-image standardisation would undo
a linear change (x * a + b) entirely.
"""

from __future__ import annotations

import numpy as np


def augment(crop: np.ndarray, rng: np.random.Generator, *, min_crop: float = 0.9,
            gamma: float = 0.25) -> np.ndarray:
    """A randomly flipped, cropped and brightened copy of an RGB uint8 crop."""
    out = crop[:, ::-1] if rng.random() < 0.5 else crop
    h, w = out.shape[:2]
    s = rng.uniform(min_crop, 1.0)
    ch, cw = max(1, round(h * s)), max(1, round(w * s))
    y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
    out = out[y:y + ch, x:x + cw].astype(np.float32)
    out = 255.0 * (out / 255.0) ** rng.uniform(1 - gamma, 1 + gamma)
    return np.clip(out, 0, 255).astype(np.uint8)


def copy_rng(seed: int, sha256: str, copy: int) -> np.random.Generator:
    """The same (seed, image, copy) always gives the same augmentation, whatever the order."""
    return np.random.default_rng([seed, int(sha256[:12], 16), copy])


def augmented_copy(crop: np.ndarray, seed: int, sha256: str, copy: int) -> np.ndarray:
    """Copy 0 is the crop itself; copies 1.. are fixed augmentations."""
    return crop if copy == 0 else augment(crop, copy_rng(seed, sha256, copy))
