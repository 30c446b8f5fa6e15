"""Frozen-base features of every training image and its fixed augmented copies.

Below the cut nothing trains, so base(image) never changes: computing it once
leaves only the head to run per step (the fast path, on by default).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facesearch.embedder.preprocess import preprocess

from .augment import augmented_copy
from .data import Sample

AUGMENT_VERSION = 1   # bump when augment.py changes what a copy looks like


def feature_key(model_id: str, trainable_from: str, copies: int, seed: int, crops_folder: Path) -> str:
    doc = {"model": model_id, "cut": trainable_from, "copies": copies, "seed": seed,
           "crops": Path(crops_folder).name, "augment": AUGMENT_VERSION}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def compute_features(base, samples: list[Sample], crops: dict[str, np.ndarray], *, copies: int, seed: int,
                     folder: Path, image_size: int, standardization: str, batch_size: int = 32,
                     progress: bool = True) -> np.ndarray:
    """(len(samples), copies, *feature_shape) float32, cached per image in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    shape = tuple(base.output.shape[1:])
    out = np.empty((len(samples), copies) + shape, dtype=np.float32)
    todo = []
    for i, s in enumerate(samples):
        path = folder / f"{s.sha256}.npy"
        cached = np.load(path) if path.is_file() else None
        if cached is not None and cached.shape == (copies,) + shape:
            out[i] = cached
        else:
            todo.append(i)
    bar = tqdm(total=len(todo) * copies, desc="base features", unit="img", disable=not progress or not todo,
               leave=False)
    for start in range(0, len(todo), max(1, batch_size // copies)):
        rows = todo[start:start + max(1, batch_size // copies)]
        images = [augmented_copy(crops[samples[i].sha256], seed, samples[i].sha256, c)
                  for i in rows for c in range(copies)]
        x = preprocess(images, image_size, standardization)
        feats = np.asarray(base.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
        feats = feats.reshape((len(rows), copies) + shape)
        for j, i in enumerate(rows):
            out[i] = feats[j]
            tmp = folder / f".{samples[i].sha256}.{os.getpid()}.tmp.npy"
            np.save(tmp, feats[j])
            os.replace(tmp, folder / f"{samples[i].sha256}.npy")
        bar.update(len(images))
    bar.close()
    return out
