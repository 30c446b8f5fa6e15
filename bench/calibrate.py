"""Calibrate on a synthetic clustered 100k-face gallery: the pure calibration and Gallery.calibrate.

Identities with several noisy faces each (about as far apart as FaceNet's: genuine
median ~1.5, impostors ~6 on the service scale). Writes bench/results/calibrate.json.
The issue's bar: under 10 s at 100k faces on this machine.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common

from facesearch.gallery import Enrolment, Gallery, GalleryConfig, NewFace
from facesearch.gallery import calibration as cal

FACES, PER_IDENTITY, DIM = 100_000, 8, 128


def clustered(faces: int, per: int, noise: float = 0.055, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.arange(faces) // per
    centres = rng.normal(size=(labels[-1] + 1, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[labels] + noise * rng.normal(size=(faces, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def main() -> None:
    x, y = clustered(FACES, PER_IDENTITY)
    t = time.perf_counter()
    result = cal.calibrate(x, y, target_fnir=0.01)
    pure_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        with Gallery.open(GalleryConfig(data_dir=Path(tmp)), model_id="bench", dimension=DIM) as g:
            order = np.argsort(y, kind="stable")
            bounds = np.flatnonzero(np.diff(y[order])) + 1
            groups = np.split(order, bounds)
            enrolments = [Enrolment(f"id{i}", [NewFace(x[j]) for j in g_]) for i, g_ in enumerate(groups)]
            for start in range(0, len(enrolments), 2000):
                g.add_batch(enrolments[start:start + 2000])
            t = time.perf_counter()
            applied = g.calibrate(target_fnir=0.01, apply=True)
            gallery_s = time.perf_counter() - t
    print(f"Calibrate at {FACES:,} faces: {gallery_s:.2f} s through the Gallery (SQL read and apply included), "
          f"{pure_s:.2f} s pure; max_distance {applied.max_distance:.3f}, FPIR {applied.expected_fpir:.4f}, "
          f"FNIR {applied.expected_fnir:.4f}, {applied.faces} query faces (sampled: {applied.sampled})")
    common.write("calibrate", {
        "faces": FACES, "faces_per_identity": PER_IDENTITY, "identities": len(groups),
        "gallery_calibrate_s": round(gallery_s, 3), "pure_calibrate_s": round(pure_s, 3),
        "under_10_s": gallery_s < 10, "result": applied.to_dict()})


if __name__ == "__main__":
    main()
